"""Live API keys: from the environment, else from the OS keyring (a real ``keyring`` backend in memory)."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest
from keyring.backend import KeyringBackend

from perphedge.cli.keep_cmd import KEYRING_SERVICE, _credentials
from perphedge.errors import ConfigError


class MemoryKeyring(KeyringBackend):
    """A keyring backend holding passwords in a dict (keyring's documented extension point)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    for name in ("PERPHEDGE_BYBIT_API_KEY", "PERPHEDGE_BYBIT_SECRET", "PERPHEDGE_BYBIT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_keys_come_from_the_keyring_when_the_environment_has_none(memory_keyring: MemoryKeyring) -> None:
    keyring.set_password(KEYRING_SERVICE, "bybit:api_key", "kr-key-123")
    keyring.set_password(KEYRING_SERVICE, "bybit:secret", "kr-secret-456")
    creds, secrets = _credentials("bybit")
    assert (creds.api_key, creds.secret, creds.password) == ("kr-key-123", "kr-secret-456", None)
    assert set(secrets) == {"kr-key-123", "kr-secret-456"}  # handed to the log redactor
    assert "kr-secret-456" not in repr(creds)


def test_the_environment_wins_over_the_keyring(memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_password(KEYRING_SERVICE, "bybit:api_key", "kr-key")
    keyring.set_password(KEYRING_SERVICE, "bybit:secret", "kr-secret")
    monkeypatch.setenv("PERPHEDGE_BYBIT_API_KEY", "env-key")
    monkeypatch.setenv("PERPHEDGE_BYBIT_SECRET", "env-secret")
    creds, _ = _credentials("bybit")
    assert (creds.api_key, creds.secret) == ("env-key", "env-secret")


def test_no_keys_anywhere_says_both_ways_to_give_them(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ConfigError, match=r"PERPHEDGE_BYBIT_API_KEY.*'bybit:api_key'.*'perphedge'"):
        _credentials("bybit")
