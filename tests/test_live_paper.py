"""The paper account: fills at the next bar's open with the fee, persisted across restarts."""

from __future__ import annotations

import ccxt
import pandas as pd
import pytest
from binance_spot_sim import binance_markets

from cryptorl.live.paper import PaperExchange

D0 = pd.Timestamp("2024-01-01", tz="UTC")
D1, D2 = D0 + pd.Timedelta(days=1), D0 + pd.Timedelta(days=2)


def bar(o, c, h=None, low=None):
    return {"open": o, "high": h or max(o, c), "low": low or min(o, c), "close": c}


@pytest.fixture(scope="module")
def markets():
    return binance_markets()


@pytest.fixture
def paper(tmp_path, markets):
    ex = PaperExchange(tmp_path / "paper.sqlite", markets, interval="1d", fee=0.001, initial_balance={"USDT": 10_000})
    yield ex
    ex.close()


def test_market_order_fills_at_next_bar_open_with_fee(paper):
    paper.on_bar(D0, {"ETH/USDT": bar(1990, 2000)})
    order = paper.create_order("ETH/USDT", "market", "buy", 1.0, None, {"clientOrderId": "b1"})
    assert order["status"] == "open" and order["timestamp"] == D1.value // 1_000_000
    assert paper.fetch_balance()["total"] == {"USDT": 10_000}  # nothing fills at the close it was placed at

    assert paper.on_bar(D1, {"ETH/USDT": bar(2010, 2020)}) == 1
    b = paper.fetch_balance()["total"]
    assert b["USDT"] == pytest.approx(10_000 - 2010)  # 1 ETH at the open, 2010
    assert b["ETH"] == pytest.approx(0.999)  # fee 0.1 % taken in the coin received
    filled = paper.fetch_order(None, "ETH/USDT", {"clientOrderId": "b1"})
    assert (filled["status"], filled["price"], filled["cost"]) == ("closed", 2010, 2010)
    assert filled["fee"]["cost"] == pytest.approx(0.001) and filled["fee"]["currency"] == "ETH"

    paper.create_order("ETH/USDT", "market", "sell", 0.5, None, {"clientOrderId": "s1"})
    paper.on_bar(D2, {"ETH/USDT": bar(1990, 1980)})
    b = paper.fetch_balance()["total"]
    assert b["USDT"] == pytest.approx(7990 + 0.5 * 1990 * 0.999)  # = 8984.005
    assert b["ETH"] == pytest.approx(0.499)
    sold = paper.fetch_order(None, "ETH/USDT", {"clientOrderId": "s1"})
    assert sold["fee"]["cost"] == pytest.approx(0.995) and sold["fee"]["currency"] == "USDT"
    equity = paper.equity()
    assert list(equity.index) == [D1, D2, D2 + pd.Timedelta(days=1)]  # value at each bar's close
    assert equity.iloc[-1] == pytest.approx(8984.005 + 0.499 * 1980)


def test_account_survives_a_restart_and_replayed_bars_never_fill_twice(tmp_path, markets):
    path = tmp_path / "paper.sqlite"
    first = PaperExchange(path, markets, interval="1d", initial_balance={"USDT": 1000})
    first.on_bar(D0, {"BTC/USDT": bar(40_000, 40_000)})
    first.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "x"})
    first.close()

    again = PaperExchange(path)  # everything comes from the file
    assert again.fee == 0.001 and again.interval == "1d" and "BTC/USDT" in again.markets
    assert again.fetch_open_orders("BTC/USDT")[0]["clientOrderId"] == "x"
    assert again.on_bar(D1, {"BTC/USDT": bar(41_000, 42_000)}) == 1
    assert again.on_bar(D1, {"BTC/USDT": bar(41_000, 42_000)}) == 0  # same bar again: ignored
    frames = {"BTC/USDT": pd.DataFrame([bar(41_000, 42_000), bar(42_000, 43_000)], index=[D0, D1])}
    assert again.on_bars(frames) == 0  # nothing newer than D1
    assert again.fetch_balance()["total"]["USDT"] == pytest.approx(1000 - 410)
    assert again.fetch_balance()["total"]["BTC"] == pytest.approx(0.01 * 0.999)
    again.close()
    with pytest.raises(ValueError, match="created with fee=0.001"):
        PaperExchange(path, fee=0.002)
    with pytest.raises(ValueError, match="does not exist yet"):
        PaperExchange(tmp_path / "new.sqlite")


def test_paper_refuses_orders_like_the_exchange(paper):
    with pytest.raises(ccxt.ExchangeError, match="no bar for BTC/USDT"):
        paper.create_order("BTC/USDT", "market", "buy", 0.01)
    paper.on_bar(D0, {"BTC/USDT": bar(40_000, 40_000)})
    with pytest.raises(ccxt.InvalidOrder, match="NOTIONAL"):
        paper.create_order("BTC/USDT", "market", "buy", 0.0001)  # 4 USDT < 5
    with pytest.raises(ccxt.InsufficientFunds):
        paper.create_order("BTC/USDT", "market", "sell", 0.01)
    with pytest.raises(ccxt.InsufficientFunds):
        paper.create_order("BTC/USDT", "market", "buy", 0.3)  # 12 000 USDT > 10 000
    with pytest.raises(ccxt.NotSupported):
        paper.create_order("BTC/USDT", "limit", "buy", 0.01, 39_000)
    with pytest.raises(ccxt.BadSymbol):
        paper.create_order("DOGE/USDT", "market", "buy", 100)
    paper.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="duplicate"):
        paper.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.OrderNotFound):
        paper.fetch_order(None, "BTC/USDT", {"clientOrderId": "never"})


def test_amounts_are_rounded_like_ccxt_binance(paper, markets):
    reference = ccxt.binance()
    reference.set_markets(markets)
    for symbol, amount in [("BTC/USDT", 0.123456789), ("ETH/USDT", 1.99999), ("LINK/USDT", 68.6899)]:
        assert paper.amount_to_precision(symbol, amount) == reference.amount_to_precision(symbol, amount)
    assert paper.amount_to_precision("BTC/USDT", 0.123456789) == "0.12345"
    paper.on_bar(D0, {"BTC/USDT": bar(40_000, 40_000)})
    assert paper.create_order("BTC/USDT", "market", "buy", 0.0123456)["amount"] == 0.01234


def test_buy_the_cash_cannot_pay_at_the_open_is_rejected(paper):
    paper.on_bar(D0, {"ETH/USDT": bar(2000, 2000)})
    paper.create_order("ETH/USDT", "market", "buy", 4.9, None, {"clientOrderId": "big"})  # 9 800 at the close
    paper.on_bar(D1, {"ETH/USDT": bar(2100, 2100)})  # gaps up: 10 290 > 10 000
    order = paper.fetch_order(None, "ETH/USDT", {"clientOrderId": "big"})
    assert order["status"] == "rejected" and "insufficient USDT" in order["info"]["reason"]
    assert paper.fetch_balance()["total"] == {"USDT": 10_000}
