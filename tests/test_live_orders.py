"""Target weights -> orders: ccxt rounding, exchange minimums, sells before buys, cash never exceeded."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from binance_spot_sim import connect_sim
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.live.orders import (
    CLIENT_ID_PATTERN,
    account_id,
    client_order_id,
    plan_orders,
    target_weights,
)

PRICES = {"BTCUSDT": 43210.55, "ETHUSDT": 2250.12, "LINKUSDT": 14.56}
ASSETS = ["BTC", "ETH", "LINK"]
CLOSE = pd.Timestamp("2024-01-01 12:00", tz="UTC")


@pytest.fixture(scope="module")
def binance():
    """A real ccxt.binance whose markets came through the simulated exchangeInfo."""
    _, exchange = connect_sim({"USDT": 10_000}, PRICES)
    exchange.load_markets()
    return exchange


def _balance(free: dict[str, float], used: dict[str, float] | None = None) -> dict:
    used = used or {}
    codes = set(free) | set(used)
    return {"free": dict(free), "used": dict(used), "total": {c: free.get(c, 0.0) + used.get(c, 0.0) for c in codes}}


def _plan(binance, target, balance, **kw):
    prices = {"BTC": PRICES["BTCUSDT"], "ETH": PRICES["ETHUSDT"], "LINK": PRICES["LINKUSDT"]}
    return plan_orders(
        binance, target, assets=ASSETS, portfolio_id="pf", close_time=CLOSE, balance=balance, prices=prices, **kw
    )


def test_client_order_id_is_deterministic_short_and_binance_valid():
    a = client_order_id("pf", CLOSE, "BTC")
    assert a == client_order_id("pf", "2024-01-01T12:00:00Z", "btc")  # same instant, same asset
    assert len(a) <= 36 and CLIENT_ID_PATTERN.match(a)
    others = {
        client_order_id("pf", CLOSE, "ETH"),
        client_order_id("pf2", CLOSE, "BTC"),
        client_order_id("pf", CLOSE + pd.Timedelta("6h"), "BTC"),
    }
    assert a not in others and len(others) == 3
    with pytest.raises(ValueError, match="account"):
        client_order_id(" ", CLOSE, "BTC")


def test_amounts_are_rounded_down_by_ccxt_to_the_lot_step(binance):
    # 10 000 USDT, target 50/30/10 %: 9 000 USDT of buys x 1.001 fits, so nothing is scaled.
    plan = _plan(binance, {"BTC": 0.5, "ETH": 0.3, "LINK": 0.1}, _balance({"USDT": 10_000}), price_buffer=0.0)
    got = {o.asset: o.amount for o in plan.orders}
    # 5000 / 43210.55 = 0.1157124..., step 0.00001 -> 0.11571
    # 3000 / 2250.12  = 1.3332622..., step 0.0001  -> 1.3332
    # 1000 / 14.56    = 68.681318..., step 0.01    -> 68.68
    assert got == {"BTC": 0.11571, "ETH": 1.3332, "LINK": 68.68}
    for o in plan.orders:
        assert o.side == "buy" and o.amount == float(binance.amount_to_precision(o.symbol, o.amount))
        assert o.client_order_id == client_order_id(account_id(binance), CLOSE, o.asset)
    assert plan.value == pytest.approx(10_000) and plan.buy_scale == 1.0


def test_sells_come_before_buys(binance):
    # hold 0.2 BTC (8 642.11 USDT) + 10 000 USDT = 18 642.11; target 10 % BTC, 40 % LINK, 30 % ETH
    plan = _plan(binance, {"LINK": 0.4, "BTC": 0.1, "ETH": 0.3}, _balance({"USDT": 10_000, "BTC": 0.2}))
    assert [(o.side, o.asset) for o in plan.orders] == [("sell", "BTC"), ("buy", "ETH"), ("buy", "LINK")]
    # sell 0.2 - 0.1 * 18642.11 / 43210.55 = 0.156857... -> 0.15685
    assert plan.orders[0].amount == 0.15685


def test_orders_below_the_market_minimums_are_skipped_and_reported(binance):
    plan = _plan(binance, {"LINK": 0.0004, "BTC": 1e-7, "ETH": 0.5}, _balance({"USDT": 10_000}))
    assert [o.asset for o in plan.orders] == ["ETH"]
    reasons = {s.asset: s.reason for s in plan.skipped}
    assert "minimum cost 5.0 USDT" in reasons["LINK"]  # 4 USDT < Binance's 5 USDT NOTIONAL
    assert "rounds to 0" in reasons["BTC"]  # 0.0000000231 BTC < one lot step
    assert "LINK" in plan.summary() and "skip" in plan.summary()
    # a sell of dust: 0.0001 BTC = 4.32 USDT
    dust = _plan(binance, {}, _balance({"USDT": 100, "BTC": 0.0001}))
    assert dust.orders == [] and dust.skipped[0].side == "sell" and "minimum cost" in dust.skipped[0].reason


def test_sells_only_what_is_free(binance):
    plan = _plan(binance, {}, _balance({"USDT": 0, "BTC": 0.5}, used={"BTC": 0.5}))
    assert [(o.side, o.amount) for o in plan.orders] == [("sell", 0.5)]


def test_buys_are_scaled_to_fit_cash_with_fee_buffer(binance):
    plan = _plan(binance, {"BTC": 0.5, "ETH": 0.5}, _balance({"USDT": 10_000}), fee_rate=0.001, price_buffer=0.002)
    spent = sum(o.notional for o in plan.orders)
    assert plan.buy_scale == pytest.approx(1 / 1.003)
    assert spent * 1.003 <= 10_000 and spent > 9_960


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"BTC": -0.1}, r"\[BTC\].*>= 0"),
        ({"ETH": float("nan")}, r"\[ETH\].*finite"),
        ({"DOGE": 0.1}, r"\[DOGE\].*outside"),
        ({"BTC": 0.7, "ETH": 0.5}, "sum to 1.2"),
        ({"BTC": 0.5, "cash": 0.2}, "cash"),
        ({"BTC": "lots"}, r"\[BTC\].*not a number"),
    ],
)
def test_bad_weights_get_one_clear_error(weights, match):
    with pytest.raises(ValueError, match=match):
        target_weights(weights, ASSETS)


def test_unknown_market_is_a_clear_error(binance):
    with pytest.raises(ValueError, match=r"\[DOGE\] no market DOGE/USDT"):
        plan_orders(
            binance,
            {"DOGE": 0.5},
            assets=["DOGE"],
            portfolio_id="pf",
            close_time=CLOSE,
            balance=_balance({"USDT": 100}),
            prices={"DOGE": 0.1},
        )


weights_st = st.lists(st.floats(0, 1), min_size=4, max_size=4).map(lambda v: [x / (sum(v) or 1) for x in v])


@settings(max_examples=60, deadline=None)
@given(
    w=weights_st,
    usdt=st.floats(0, 50_000),
    held=st.tuples(st.floats(0, 2), st.floats(0, 20), st.floats(0, 3000)),
    locked=st.floats(0, 1),
    moves=st.tuples(st.floats(0.5, 2), st.floats(0.5, 2), st.floats(0.5, 2)),
    fee=st.sampled_from([0.0, 0.001, 0.0075]),
)
def test_plan_invariants(binance, w, usdt, held, locked, moves, fee):
    prices = {"BTC": 43210.55 * moves[0], "ETH": 2250.12 * moves[1], "LINK": 14.56 * moves[2]}
    free = {"USDT": usdt, "BTC": held[0] * (1 - locked), "ETH": held[1], "LINK": held[2]}
    used = {"BTC": held[0] * locked}
    value = usdt + sum(h * prices[a] for h, a in zip(held, ASSETS))
    if value <= 0:
        return
    target = dict(zip(ASSETS, w[1:]))  # w[0] is cash
    plan = plan_orders(
        binance,
        target,
        assets=ASSETS,
        portfolio_id="pf",
        close_time=CLOSE,
        balance=_balance(free, used),
        prices=prices,
        fee_rate=fee,
        price_buffer=0.002,
    )
    sides = [o.side for o in plan.orders]
    assert sides == sorted(sides, key=lambda s: s != "sell")  # every sell before every buy
    assert len({o.asset for o in plan.orders}) == len(plan.orders)  # one order per asset
    proceeds = 0.0
    for o in plan.orders:
        m = binance.markets[o.symbol]
        assert o.amount == float(binance.amount_to_precision(o.symbol, o.amount))  # on the lot grid
        assert o.amount >= m["limits"]["amount"]["min"] and o.notional >= m["limits"]["cost"]["min"]
        # the order moves the asset's weight towards its target
        assert (o.side == "buy") == (target[o.asset] > plan.current[o.asset])
        if o.side == "sell":
            assert o.amount <= free[o.asset] + 1e-12
            proceeds += o.notional * (1 - fee)
    buys = sum(o.notional for o in plan.orders if o.side == "buy")
    assert buys * (1 + fee + 0.002) <= usdt + proceeds + 1e-6
    assert math.isclose(sum(plan.current.values()) + usdt / value, 1.0, rel_tol=1e-9)
