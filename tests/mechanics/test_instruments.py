"""Instruments: contract sizes and symbol mapping (Binance COIN-M specifications)."""

from __future__ import annotations

import pytest

from perphedge.errors import InputError, UnknownSymbolError
from perphedge.mechanics.instruments import (
    ContractKind,
    PerpContract,
    binance_id_from_ccxt,
    default_contract_size_usd,
    split_exchange_id,
)


def test_coin_m_contract_sizes_btc_100_others_10() -> None:
    # dev.binance.vision 11463: 1,000 USD of BTCUSD = 10 contracts; of ETHUSD = 100 contracts
    assert 1_000 / default_contract_size_usd("BTC") == 10
    assert 1_000 / default_contract_size_usd("eth") == 100


def test_inverse_notional_in_coin() -> None:
    perp = PerpContract(symbol="BTCUSD_PERP", base="BTC", kind=ContractKind.INVERSE, contract_size_usd=100)
    assert perp.notional_coin(100, 25_000) == pytest.approx(0.4)  # COIN-M FAQ example


def test_contract_size_only_for_inverse() -> None:
    with pytest.raises(InputError, match="needs contract_size_usd"):
        PerpContract(symbol="BTCUSD_PERP", base="BTC", kind=ContractKind.INVERSE)
    with pytest.raises(InputError, match="has no USD contract size"):
        PerpContract(symbol="BTCUSDT", base="BTC", kind=ContractKind.LINEAR, contract_size_usd=100)


@pytest.mark.parametrize(
    ("ccxt_symbol", "binance_id"),
    [
        ("BTC/USDT:USDT", "BTCUSDT"),
        ("BTC/USDT", "BTCUSDT"),
        ("ETH/USDT:USDT-241227", "ETHUSDT_241227"),
        ("btcusdt", "BTCUSDT"),
    ],
)
def test_binance_id_from_ccxt(ccxt_symbol: str, binance_id: str) -> None:
    assert binance_id_from_ccxt(ccxt_symbol) == binance_id


def test_split_exchange_id() -> None:
    assert split_exchange_id("BTCUSDT") == ("BTC", "USDT")
    assert split_exchange_id("1000PEPEUSDC") == ("1000PEPE", "USDC")
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'BTC'"):
        split_exchange_id("BTC")
