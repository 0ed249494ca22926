"""The live loop against a real ccxt.binance on a simulated Binance spot API, and on the paper account.

Covers: closed bars only, one run per interval, crash between two orders then restart, a reply
lost to a timeout, the kill switch, order and daily-turnover limits, the live-trading gate and
keys kept out of logs, and a paper portfolio that survives restarts.
"""

from __future__ import annotations

import logging

import ccxt
import pandas as pd
import pytest
import requests
from binance_spot_sim import (
    API_KEY,
    SECRET,
    SimulatedCrash,
    binance_markets,
    connect_sim,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.live import (
    DemoBars,
    Limits,
    LiveTrader,
    PaperExchange,
    account_id,
    client_order_id,
    equal_weight,
    last_closed,
    live_exchange,
    paper_feeder,
)

PRICES = {"BTCUSDT": 43210.55, "ETHUSDT": 2250.12, "LINKUSDT": 14.56}
ASSETS = ["BTC", "ETH", "LINK"]
NOW = pd.Timestamp("2024-01-01 12:00:05", tz="UTC")  # 6h bars: the 06:00 bar closed at 12:00
BAR, CLOSE = pd.Timestamp("2024-01-01 06:00", tz="UTC"), pd.Timestamp("2024-01-01 12:00", tz="UTC")
TARGET = {"BTC": 0.2, "ETH": 0.3, "LINK": 0.1}


class FakeClock:
    def __init__(self, now):
        self.t = pd.Timestamp(now)
        self.slept: list[float] = []

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.t += pd.Timedelta(seconds=seconds)


class Recorder:
    """A decision function that records the bar times it was asked about."""

    def __init__(self, weights):
        self.weights, self.calls = weights, []

    def __call__(self, bar_time):
        self.calls.append(bar_time)
        return dict(self.weights)


def make_trader(exchange, tmp_path, decide, **kw):
    kw.setdefault("kill_switch_path", tmp_path / "KILL")
    return LiveTrader(
        decide,
        exchange,
        assets=ASSETS,
        interval="6h",
        portfolio_id="pf",
        live=True,
        journal_path=tmp_path / "journal.sqlite",
        clock=FakeClock(NOW),
        **kw,
    )


def restart(sim):
    """A new process: a fresh ccxt.binance on the same (simulated) exchange account."""
    exchange = live_exchange(
        "binance", confirm=lambda m: True, env={"BINANCE_API_KEY": API_KEY, "BINANCE_SECRET": SECRET}
    )
    return sim.install(exchange)


def posts(sim):
    return [r for r in sim.requests if r[0] == "POST"]


def test_one_run_places_the_plan_sells_first_with_deterministic_ids(tmp_path):
    sim, ex = connect_sim({"USDT": 10_000, "BTC": 0.1}, PRICES)
    decide = Recorder(TARGET)
    report = make_trader(ex, tmp_path, decide).run_once(NOW)
    assert decide.calls == [BAR]  # the last closed bar, never the one forming
    assert report.status == "done" and report.close_time == CLOSE
    # value = 10 000 + 0.1 x 43 210.55 = 14 321.055; BTC target 20 % = 0.066286 BTC -> sell 0.03371
    assert sim.placed() == [
        ("BTCUSDT", "SELL", "0.03371000", client_order_id(account_id(ex), CLOSE, "BTC")),
        ("ETHUSDT", "BUY", "1.90930000", client_order_id(account_id(ex), CLOSE, "ETH")),
        ("LINKUSDT", "BUY", "98.35000000", client_order_id(account_id(ex), CLOSE, "LINK")),
    ]
    journal = make_trader(ex, tmp_path, decide).journal.orders("pf")
    assert set(journal["status"]) == {"placed"} and journal["exchange_order_id"].tolist() == ["1000", "1001", "1002"]


def test_same_interval_is_never_traded_twice_and_next_close_is(tmp_path):
    sim, ex = connect_sim({"USDT": 10_000}, PRICES)
    decide = Recorder(TARGET)
    trader = make_trader(ex, tmp_path, decide)
    trader.run_once(NOW)
    n = len(posts(sim))
    # later in the same interval (the 12:00 bar is still forming): nothing new
    assert trader.run_once(pd.Timestamp("2024-01-01 17:59:59", tz="UTC")).status == "already-done"
    assert make_trader(ex, tmp_path, decide).run_once(NOW).status == "already-done"  # after a restart too
    assert decide.calls == [BAR] and len(posts(sim)) == n
    trader.run_once(pd.Timestamp("2024-01-01 18:00:00", tz="UTC"))  # the 12:00 bar has closed
    assert decide.calls == [BAR, CLOSE]


@settings(max_examples=50, deadline=None)
@given(seconds=st.integers(0, 10 * 365 * 86400), interval=st.sampled_from(["15m", "1h", "6h", "1d"]))
def test_the_loop_only_sees_closed_bars(seconds, interval):
    now = pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(seconds=seconds)
    bar_time, close = last_closed(now, interval)
    step = pd.Timedelta(interval.replace("d", "D"))
    assert close == bar_time + step <= now < close + step  # closed, and the latest that is


def test_crash_between_two_orders_then_restart_places_only_the_missing_ones(tmp_path):
    sim, ex = connect_sim({"USDT": 10_000, "BTC": 0.1}, PRICES)

    def die(order):  # the exchange accepted the first order; the process dies before hearing back
        sim.after_order = None
        raise SimulatedCrash()

    sim.after_order = die
    decide = Recorder(TARGET)
    with pytest.raises(SimulatedCrash):
        make_trader(ex, tmp_path, decide).run_once(NOW)
    assert len(sim.orders) == 1

    report = make_trader(restart(sim), tmp_path, decide).run_once(NOW)
    assert report.resumed and report.status == "done"
    assert decide.calls == [BAR]  # the stored plan is resumed, not re-decided
    assert [o.asset for o in report.execution.existing] == ["BTC"]
    assert [o.asset for o in report.execution.placed] == ["ETH", "LINK"]
    ids = [o["clientOrderId"] for o in sim.orders]
    assert len(ids) == 3 and len(set(ids)) == 3  # each intended order exactly once


def test_reply_lost_to_a_timeout_is_found_not_resent(tmp_path):
    sim, ex = connect_sim({"USDT": 10_000}, PRICES)

    def timeout(order):
        sim.after_order = None
        raise requests.exceptions.ReadTimeout("read timed out")  # ccxt raises RequestTimeout

    sim.after_order = timeout
    report = make_trader(ex, tmp_path, Recorder(TARGET)).run_once(NOW)
    assert report.status == "done" and len(sim.orders) == 3
    assert len({o["clientOrderId"] for o in sim.orders}) == 3


def test_network_failure_before_the_exchange_got_the_order_is_retried_by_the_next_run(tmp_path):
    sim, ex = connect_sim({"USDT": 10_000}, PRICES)
    calls = []

    def refuse_second(params):
        calls.append(params["symbol"])
        if len(calls) == 2:
            raise requests.exceptions.ConnectionError("connection reset")  # ccxt raises NetworkError

    sim.before_order = refuse_second
    trader = make_trader(ex, tmp_path, Recorder(TARGET))
    report = trader.run_once(NOW)
    assert report.status == "incomplete" and [o.asset for o, _ in report.execution.failed] == ["ETH"]
    assert [o[0] for o in sim.placed()] == ["BTCUSDT", "LINKUSDT"]
    again = trader.run_once(NOW)  # run_forever does this after retry_seconds
    assert again.status == "done" and [o.asset for o in again.execution.placed] == ["ETH"]
    assert sorted(o[0] for o in sim.placed()) == ["BTCUSDT", "ETHUSDT", "LINKUSDT"]


def test_buys_wait_for_a_sell_that_failed_on_the_network(tmp_path):
    sim, ex = connect_sim({"USDT": 100, "BTC": 0.2}, PRICES)

    def drop_first(params):
        sim.before_order = None
        raise requests.exceptions.ConnectionError("connection reset")

    sim.before_order = drop_first
    trader = make_trader(ex, tmp_path, Recorder({"ETH": 0.5}))
    first = trader.run_once(NOW)
    assert first.status == "incomplete" and sim.placed() == []
    assert [o.asset for o, _ in first.execution.failed] == ["BTC", "ETH"]
    second = trader.run_once(NOW)
    assert second.status == "done" and [o[1] for o in sim.placed()] == ["SELL", "BUY"]


def test_exchange_rejection_is_final_and_logged(tmp_path, caplog):
    sim, ex = connect_sim({"USDT": 10_000, "BTC": 0.1}, PRICES)

    def eth_jumps(order):  # after the BTC sell the ETH price doubles: the planned buy no longer fits
        sim.prices["ETHUSDT"] *= 2
        sim.after_order = None

    sim.after_order = eth_jumps
    with caplog.at_level(logging.ERROR, logger="cryptorl.live"):
        report = make_trader(ex, tmp_path, Recorder({"ETH": 0.9})).run_once(NOW)
    assert report.status == "done" and [o.asset for o, _ in report.execution.rejected] == ["ETH"]
    assert "InsufficientFunds" in report.execution.rejected[0][1] and "REJECTED buy" in caplog.text
    assert make_trader(ex, tmp_path, Recorder({})).run_once(NOW).status == "already-done"


def test_kill_switch_places_nothing_and_flattens_nothing(tmp_path, caplog):
    sim, ex = connect_sim({"USDT": 10_000, "BTC": 0.1}, PRICES)
    kill = tmp_path / "KILL"
    kill.touch()
    trader = make_trader(ex, tmp_path, Recorder({}))  # the decision says "sell everything"
    with caplog.at_level(logging.WARNING, logger="cryptorl.live"):
        assert trader.run_once(NOW).status == "killed"
    assert posts(sim) == [] and float(sim.balances["BTC"]) == 0.1
    assert "kill switch" in caplog.text and "nothing is flattened" in caplog.text
    kill.unlink()
    assert trader.run_once(NOW).status == "done" and [o[1] for o in sim.placed()] == ["SELL"]


def test_kill_switch_appearing_mid_run_stops_the_rest_until_removed(tmp_path):
    sim, ex = connect_sim({"USDT": 10_000, "BTC": 0.1}, PRICES)
    kill = tmp_path / "KILL"
    sim.after_order = lambda order: kill.touch()
    trader = make_trader(ex, tmp_path, Recorder(TARGET))
    assert trader.run_once(NOW).status == "killed" and len(sim.orders) == 1
    sim.after_order = None
    kill.unlink()
    report = trader.run_once(NOW)
    assert report.resumed and report.status == "done"
    assert [o[0] for o in sim.placed()] == ["BTCUSDT", "ETHUSDT", "LINKUSDT"]


def test_daily_turnover_limit_refuses_with_a_log_line_and_resets_next_day(tmp_path, caplog):
    sim, ex = connect_sim({"USDT": 10_000}, PRICES)
    # buys: ETH ~4 296 USDT, LINK ~1 432 USDT; at most 5 000 a day lets ETH through, not LINK
    trader = make_trader(
        ex, tmp_path, Recorder({"ETH": 0.3 / 0.7 * 1.0, "LINK": 0.1 / 0.7}), limits=Limits(max_daily_turnover=5_000)
    )
    with caplog.at_level(logging.WARNING, logger="cryptorl.live"):
        report = trader.run_once(NOW)
    assert [o[0] for o in sim.placed()] == ["ETHUSDT"]
    assert [o.asset for o, _ in report.execution.refused] == ["LINK"]
    assert "REFUSED buy" in caplog.text and "max_daily_turnover 5000.00" in caplog.text
    assert report.status == "done"  # refusals are final for the interval
    trader.run_once(NOW + pd.Timedelta(hours=6))  # same UTC day: the budget is spent
    assert [o[0] for o in sim.placed()] == ["ETHUSDT"]
    trader.run_once(pd.Timestamp("2024-01-02 00:00:05", tz="UTC"))  # a new day
    assert [o[0] for o in sim.placed()] == ["ETHUSDT", "LINKUSDT"]


def test_order_notional_limit_and_buys_held_back_when_a_sell_is_refused(tmp_path, caplog):
    sim, ex = connect_sim({"USDT": 100, "BTC": 0.2}, PRICES)  # ~8 742 USDT, nearly all in BTC
    trader = make_trader(ex, tmp_path, Recorder({"ETH": 0.5}), limits=Limits(max_order_notional=2_000))
    with caplog.at_level(logging.WARNING, logger="cryptorl.live"):
        report = trader.run_once(NOW)
    assert posts(sim) == []
    why = {o.asset: r for o, r in report.execution.refused}
    assert "exceeds max_order_notional 2000.00" in why["BTC"]
    assert "buys that count on its proceeds are held back" in why["ETH"]
    assert caplog.text.count("REFUSED") == 2


def test_real_exchange_needs_live_flag_keys_from_env_and_confirmation(tmp_path):
    with pytest.raises(ValueError, match="paper trading is the default"):
        LiveTrader(
            Recorder({}),
            ccxt.binance(),
            assets=ASSETS,
            interval="6h",
            portfolio_id="pf",
            journal_path=tmp_path / "j.sqlite",
        )
    with pytest.raises(ValueError, match="BINANCE_API_KEY and BINANCE_SECRET"):
        live_exchange("binance", confirm=lambda m: True, env={})
    asked = []
    with pytest.raises(PermissionError, match="not confirmed"):
        live_exchange(
            "binance",
            confirm=lambda m: asked.append(m) or False,
            env={"BINANCE_API_KEY": API_KEY, "BINANCE_SECRET": SECRET},
        )
    assert "REAL" in asked[0] and API_KEY not in asked[0]


def test_api_keys_never_reach_the_logs(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        sim, ex = connect_sim({"USDT": 10_000}, PRICES)
        make_trader(ex, tmp_path, Recorder(TARGET)).run_once(NOW)
    assert len(sim.orders) == 3 and caplog.records
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert API_KEY not in text and SECRET not in text


def test_paper_portfolio_runs_across_restarts_and_fills_at_next_open(tmp_path):
    markets = {s: m for s, m in binance_markets().items()}
    bars = DemoBars("1d")
    db, journal = tmp_path / "paper.sqlite", tmp_path / "journal.sqlite"
    days = [pd.Timestamp("2024-03-01 00:00:10", tz="UTC") + pd.Timedelta(days=i) for i in range(3)]

    def trader_at(now):  # a new process each day: the account and journal come from the files
        paper = PaperExchange(db, markets, interval="1d", fee=0.001, initial_balance={"USDT": 10_000})
        trader = LiveTrader(
            equal_weight(["BTC", "ETH"]),
            paper,
            assets=["BTC", "ETH"],
            interval="1d",
            portfolio_id="demo",
            journal_path=journal,
            clock=FakeClock(now),
            prepare=paper_feeder(paper, bars, ["BTC", "ETH"]),
        )
        return trader, paper

    for now in days:
        trader, paper = trader_at(now)
        assert trader.run_once().status == "done"
        trader.run_once()  # idempotent within the interval
    fills = paper.fills()
    first = fills[fills["client_order_id"] == client_order_id(account_id(paper), days[0].floor("1D"), "BTC")].iloc[0]
    btc = bars.market("BTC", "2024-03-02", 3)
    # decided on the bar of Feb 29 (closed Mar 1 00:00) at its close, filled at the open of the Mar 1 bar
    assert first["status"] == "closed" and first["price"] == btc.loc["2024-03-01", "open"]
    assert first["price"] != btc.loc["2024-02-29", "close"]
    assert first["fee_cost"] == pytest.approx(first["amount"] * 0.001)
    assert fills["client_order_id"].is_unique
    assert (fills.groupby("client_order_id").size() == 1).all()
    equity = paper.equity()
    assert equity.index[-1] == pd.Timestamp("2024-03-03", tz="UTC") and 9_000 < equity.iloc[-1] < 11_000


def test_run_forever_sleeps_until_the_next_close(tmp_path):
    markets = binance_markets()
    paper = PaperExchange(tmp_path / "p.sqlite", markets, interval="6h")
    clock = FakeClock(pd.Timestamp("2024-03-01 07:30", tz="UTC"))
    decide = Recorder({"BTC": 0.5})
    trader = LiveTrader(
        decide,
        paper,
        assets=["BTC"],
        interval="6h",
        portfolio_id="f",
        journal_path=tmp_path / "j.sqlite",
        clock=clock,
        settle_seconds=5,
        prepare=paper_feeder(paper, DemoBars("6h"), ["BTC"]),
    )
    trader.run_forever(max_runs=3)
    assert decide.calls == [
        pd.Timestamp(t, tz="UTC") for t in ("2024-03-01 00:00", "2024-03-01 06:00", "2024-03-01 12:00")
    ]
    assert clock.slept[0] == pytest.approx(4.5 * 3600 + 5)  # 07:30 -> 12:00:05
    assert clock.slept[1] == pytest.approx(6 * 3600)
