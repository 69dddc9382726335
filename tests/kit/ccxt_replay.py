"""Real ccxt exchange objects that answer from recorded exchange responses (no network).

The recipe is ccxt's own static-test recipe (``python/ccxt/test/tests_helpers.py``), described in
``tests/fixtures/ccxt/README.md``: build the real exchange class with dummy credentials, load the
recorded markets twice, and replace the instance's low-level ``fetch`` (the HTTP call that returns
the decoded JSON body) by one that serves recorded bodies by URL fragment. ccxt's real request
building, signing and parsing then run on real response bodies.

Fixtures are MIT-licensed recordings from the ccxt project (``tests/fixtures/ccxt/LICENSE-ccxt-MIT.txt``).

Usage::

    body = fixture_body("bybit", "static_response", "fetchFundingRates")
    ex = replay_exchange("bybit", {"/v5/market/tickers": body})
    rates = ex.fetch_funding_rates(["BTC/USDT:USDT"])
    assert ex.replay_calls[0].url.startswith("https://api.bybit.com/v5/market/tickers")

A route value may be a body, an ``InOrder([...])`` list of bodies (served one per call, the last repeated), an
Exception instance (raised, to simulate exchange errors), or a callable ``(url, method, body) ->
response body``. An unmatched URL raises ``AssertionError`` naming the URL, so a test never
silently talks to nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "ccxt"


@dataclass(frozen=True)
class ReplayCall:
    """One HTTP call the exchange object made."""

    url: str
    method: str
    body: Any


def fixture(exchange_id: str, kind: str, method: str) -> dict[str, Any]:
    """Return the whole fixture file ``<exchange>/<kind>/<method>.json`` (kind: static_response|source_comment)."""
    path = FIXTURES_DIR / exchange_id / kind / f"{method}.json"
    return json.loads(path.read_text())


def fixture_entry(exchange_id: str, kind: str, method: str, index: int = 0) -> dict[str, Any]:
    """Return one recorded entry: ``input``, ``httpResponse``, ``parsed_ccxt_4_5_90`` and the request/calls."""
    return fixture(exchange_id, kind, method)["entries"][index]


def fixture_body(exchange_id: str, kind: str, method: str, index: int = 0) -> Any:
    """Return the recorded HTTP response body of one entry."""
    return fixture_entry(exchange_id, kind, method, index)["httpResponse"]


def fixture_markets(exchange_id: str) -> dict[str, dict[str, Any]]:
    """Return the recorded unified markets, precision converted to ccxt 4.5's tick sizes."""
    markets = json.loads((FIXTURES_DIR / exchange_id / "markets.json").read_text())
    meta = json.loads((FIXTURES_DIR / exchange_id / "meta.json").read_text())
    markets = {k: v for k, v in markets.items() if not k.startswith("_")}
    if meta.get("fixturePrecision") == "decimal":
        for market in markets.values():
            precision = market.get("precision", {})
            for key, value in list(precision.items()):
                if isinstance(value, int) and not isinstance(value, bool):
                    precision[key] = 10.0 ** (-value)
    return markets


def fixture_meta(exchange_id: str) -> dict[str, Any]:
    """Return ``meta.json``: the exchange options the fixtures were recorded with."""
    return json.loads((FIXTURES_DIR / exchange_id / "meta.json").read_text())


Route = Any  # body | list[body] | Exception | Callable[[str, str, Any], Any]


class _Router:
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)
        self.served: dict[str, int] = {}
        self.calls: list[ReplayCall] = []

    def answer(self, url: str, method: str, body: Any) -> Any:
        self.calls.append(ReplayCall(url=url, method=method, body=body))
        # the longest matching fragment wins, so "/fapi/v1/fundingRate" beats "/fapi/v1/"
        matches = [frag for frag in self.routes if frag in url]
        if not matches:
            raise AssertionError(f"no recorded response for {method} {url}; routes are {list(self.routes)}")
        frag = max(matches, key=len)
        route = self.routes[frag]
        if isinstance(route, BaseException):
            raise route
        if callable(route):
            return copy.deepcopy(route(url, method, body))
        if isinstance(route, list) and route and getattr(route, "_sequence", False):
            i = self.served.get(frag, 0)
            self.served[frag] = i + 1
            item = route[min(i, len(route) - 1)]
            if isinstance(item, BaseException):
                raise item
            return copy.deepcopy(item)
        return copy.deepcopy(route)


class InOrder(list):
    """Bodies served one per call, in order; the last one is repeated."""

    _sequence = True


def _build(exchange_id: str, async_: bool, options: Mapping[str, Any] | None) -> Any:
    if async_:
        import ccxt.async_support as ccxt_mod
    else:
        import ccxt as ccxt_mod
    cls = getattr(ccxt_mod, exchange_id)
    exchange = cls(
        {
            "apiKey": "replay-key",
            "secret": "replay-secret",
            "password": "replay-password",
            "uid": "replay-uid",
            "enableRateLimit": False,
        }
    )
    meta = fixture_meta(exchange_id)
    exchange.extend_exchange_options(meta.get("options") or {})
    if options:
        exchange.extend_exchange_options(dict(options))
    markets = fixture_markets(exchange_id)
    exchange.set_markets(markets)
    exchange.set_markets(list(exchange.markets.values()))
    return exchange


def replay_exchange(
    exchange_id: str,
    routes: Mapping[str, Route],
    *,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Return a real synchronous ccxt exchange whose HTTP layer answers from ``routes``.

    The calls it made are in ``exchange.replay_calls`` (a list of :class:`ReplayCall`).
    """
    exchange = _build(exchange_id, False, options)
    router = _Router(routes)

    def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return router.answer(url, method, body)

    exchange.fetch = fetch
    exchange.replay_calls = router.calls
    return exchange


def replay_exchange_async(
    exchange_id: str,
    routes: Mapping[str, Route],
    *,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Return a real ``ccxt.async_support`` exchange answering from ``routes``; ``await ex.close()`` after."""
    exchange = _build(exchange_id, True, options)
    router = _Router(routes)

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return router.answer(url, method, body)

    exchange.fetch = fetch
    exchange.replay_calls = router.calls
    return exchange


RouteFactory = Callable[[str, str, Any], Any]
