"""Structured keeper log: one JSON object per line, timestamped, for every decision and action.

Each line has ``ts`` (ISO 8601 UTC of the keeper's clock), ``ts_ms``, ``level`` (info | warning |
alarm | refuse | halt), ``event`` (a dotted name such as ``order.filled``) and the event's fields.
Refusals carry a one-line ``reason``. Secrets handed to :class:`KeeperLog` are replaced by ``***``
in every line before it is written (belt and braces: the keeper never logs credentials anyway).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from perphedge.units import ts_ms_to_datetime

LEVELS = ("info", "warning", "alarm", "refuse", "halt")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


class KeeperLog:
    """Append JSON lines to a file and hand each line to an optional ``sink`` (the CLI's console)."""

    def __init__(
        self,
        path: Path | None,
        *,
        sink: Callable[[dict[str, Any]], None] | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.sink = sink
        self._secrets = [s for s in secrets if s]
        self._handle: TextIO | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.lines: list[dict[str, Any]] = []  # this process's lines, for tests and the CLI summary

    def write(self, ts_ms: int, event: str, *, level: str = "info", **fields: Any) -> dict[str, Any]:
        """Write one line and return it (as parsed back from JSON)."""
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {LEVELS}; it was {level!r}")
        record = {
            "ts": ts_ms_to_datetime(ts_ms).isoformat().replace("+00:00", "Z"),
            "ts_ms": ts_ms,
            "level": level,
            "event": event,
            **fields,
        }
        text = json.dumps(record, default=_default, sort_keys=False)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if self._handle is not None:
            self._handle.write(text + "\n")
            self._handle.flush()
        parsed = json.loads(text)
        self.lines.append(parsed)
        if self.sink is not None:
            self.sink(parsed)
        return parsed

    def refuse(self, ts_ms: int, event: str, reason: str, **fields: Any) -> dict[str, Any]:
        """Log a refusal to act with its one-line reason."""
        return self.write(ts_ms, event, level="refuse", reason=reason, **fields)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
