"""The backtest engine: hand-computed accounting, validation, properties, real data, baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.data.frames import DataError
from cryptorl.portfolio import (
    backtest,
    baselines,
    buy_and_hold,
    constant_rebalanced,
    equal_weight_buy_and_hold,
    performance,
)


def market_frame(close, open_=None, start="2022-01-01", freq="1D") -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    open_ = close.copy() if open_ is None else np.asarray(open_, dtype=float)
    idx = pd.date_range(start, periods=len(close), freq=freq, tz="UTC", name="time")
    hi, lo = np.maximum(open_, close) * 1.01, np.minimum(open_, close) * 0.99
    return pd.DataFrame({"open": open_, "high": hi, "low": lo, "close": close, "volume": 1.0}, index=idx)


def weights_frame(rows, assets, start="2022-01-01", freq="1D") -> pd.DataFrame:
    idx = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC", name="time")
    return pd.DataFrame(np.asarray(rows, dtype=float), index=idx, columns=["cash", *assets])


# Two risky assets A and B plus cash, four bars, fee 1 %.
HAND_MARKET = {
    "A": market_frame([100, 110, 99, 120], [100, 105, 100, 118]),
    "B": market_frame([50, 50, 60, 45], [50, 52, 58, 46]),
}
HAND_WEIGHTS = weights_frame([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.2, 0.8, 0.0], [1.0, 0.0, 0.0]], ["A", "B"])


def test_hand_computed_close_execution():
    res = backtest(HAND_WEIGHTS, HAND_MARKET, interval="1d", fee=0.01)
    # t0: holdings all cash; buy 0.5 of A -> turnover 0.5, fee 1 * 0.01 * 0.5 = 0.005.
    #     y1 = (1, 110/100, 50/50): w.y = 0.5 + 0.55 = 1.05; V1 = 0.995 * 1.05 = 1.04475.
    # t1: drifted (0.5, 0.55, 0) / 1.05 = (10/21, 11/21, 0); target (0, 0.5, 0.5)
    #     turnover |0.5 - 11/21| + |0.5 - 0| = 11/21; fee = 1.04475 * 0.01 * 11/21 = 0.0054725.
    #     y2 = (1, 0.9, 1.2): w.y = 0.45 + 0.6 = 1.05; V2 = 1.04475 * (1 - 0.11/21) * 1.05 = 1.091241375.
    # t2: drifted (0, 0.45, 0.6) / 1.05 = (0, 3/7, 4/7); target (0.2, 0.8, 0)
    #     turnover |0.8 - 3/7| + 4/7 = 33/35; fee = 1.091241375 * 0.0033/0.35 = 0.01028884725.
    #     y3 = (1, 120/99, 45/60): w.y = 0.2 + 0.8 * 120/99 = 193/165;
    #     V3 = 1.091241375 * (1 - 0.33/35) * 193/165 = 1.2643868960954545.
    # t3: last decision, never traded.
    assert res.values.to_numpy() == pytest.approx([1.0, 1.04475, 1.091241375, 1.2643868960954545], rel=1e-14)
    assert res.turnover.to_numpy() == pytest.approx([0.5, 11 / 21, 33 / 35, 0.0], rel=1e-14)
    assert res.fees.to_numpy() == pytest.approx([0.005, 0.0054725, 0.01028884725, 0.0], rel=1e-12)
    assert res.holdings.iloc[2].to_numpy() == pytest.approx([0.0, 3 / 7, 4 / 7], rel=1e-14)
    assert res.returns.to_numpy() == pytest.approx(
        [0.04475, 1.091241375 / 1.04475 - 1, 1.2643868960954545 / 1.091241375 - 1]
    )
    pd.testing.assert_frame_equal(res.weights, HAND_WEIGHTS, check_freq=False)


def test_hand_computed_next_open_execution():
    res = backtest(HAND_WEIGHTS, HAND_MARKET, interval="1d", fee=0.01, execution="next_open")
    # t0 (decided at close 0, traded at open 1): all cash until then, V_open = 1.
    #     buy 0.5 A: fee 0.005; open->close 1: (0.5 + 0.5 * 110/105) = 0.5 + 11/21;
    #     V1 = 0.995 * (0.5 + 11/21) = 1.0186904761904763; held at close 1: (0.5, 11/21 * 0.5...) normalised.
    v1 = 0.995 * (0.5 + 0.5 * 110 / 105)
    # t1: close 1 -> open 2: cash 1, A 100/110, B 58/50 (B not held).
    #     held at close 1 = (0.5, 0.5 * 110/105) / (0.5 + 0.5 * 110/105)
    cash1, a1 = 0.5 / (0.5 + 0.5 * 110 / 105), 0.5 * 110 / 105 / (0.5 + 0.5 * 110 / 105)
    g_co = cash1 + a1 * 100 / 110
    v_open = v1 * g_co  # = 0.9713095238095238
    held_a = a1 * 100 / 110 / g_co  # = 20/41
    turn1 = abs(0.5 - held_a) + 0.5  # = 21/41
    fee1 = v_open * 0.01 * turn1  # = 0.004975
    v2 = v_open * (1 - 0.01 * turn1) * (0.5 * 99 / 100 + 0.5 * 60 / 58)
    # t2: held at close 2 = (0, 0.5 * 0.99, 0.5 * 60/58) normalised, drifted to open 3 by (118/99, 46/60).
    a2, b2 = 0.5 * 0.99, 0.5 * 60 / 58
    a3, b3 = a2 * 118 / 99, b2 * 46 / 60
    g_co2 = (a3 + b3) / (a2 + b2)
    v_open2 = v2 * g_co2
    turn2 = abs(0.8 - a3 / (a3 + b3)) + b3 / (a3 + b3)  # = 8639/14305
    v3 = v_open2 * (1 - 0.01 * turn2) * (0.2 + 0.8 * 120 / 118)
    assert v1 == pytest.approx(1.0186904761904763, rel=1e-15)
    assert v_open == pytest.approx(0.9713095238095238, rel=1e-15)
    assert fee1 == pytest.approx(0.004975, rel=1e-13)
    assert turn2 == pytest.approx(8639 / 14305, rel=1e-14)
    assert v3 == pytest.approx(0.9604302006666082, rel=1e-14)
    assert res.values.to_numpy() == pytest.approx([1.0, v1, v2, v3], rel=1e-14)
    assert res.turnover.to_numpy() == pytest.approx([0.5, 21 / 41, 8639 / 14305, 0.0], rel=1e-14)
    assert res.fees.to_numpy() == pytest.approx([0.005, fee1, v_open2 * 0.01 * turn2, 0.0], rel=1e-13)


def test_slippage_adds_to_the_fee_rate():
    a = backtest(HAND_WEIGHTS, HAND_MARKET, interval="1d", fee=0.006, slippage=0.004)
    b = backtest(HAND_WEIGHTS, HAND_MARKET, interval="1d", fee=0.01)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-15)
    np.testing.assert_allclose(a.fees, b.fees, rtol=1e-15)


def test_always_crypto_is_buy_and_hold_times_one_minus_fee():
    m = {"BTC": market_frame([100, 90, 120, 130, 80])}
    w = weights_frame([[0.0, 1.0]] * 5, ["BTC"])
    close = m["BTC"]["close"].to_numpy()
    res = backtest(w, m, interval="1d", fee=0.001)
    np.testing.assert_allclose(res.values.to_numpy()[1:], 0.999 * close[1:] / close[0], rtol=1e-14)
    assert res.turnover.sum() == 1.0
    # next_open: bought at the open after the first close (here open = close of the same bar)
    res = backtest(w, m, interval="1d", fee=0.001, execution="next_open")
    np.testing.assert_allclose(res.values.to_numpy()[1:], 0.999 * close[1:] / close[1], rtol=1e-14)
    assert res.turnover.sum() == 1.0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda w: w.assign(A=w["A"] + 0.1), "sum to"),
        (lambda w: w.assign(A=-w["A"], cash=w["cash"] + 2 * w["A"]), "negative weight"),
        (lambda w: w.assign(B=[0.0, np.nan, 0.5, 0.0]), "NaN weight for 'B'"),
        (lambda w: w.rename(columns={"B": "DOGE"}), "DOGE"),
        (lambda w: w.drop(columns="cash"), "cash"),
        (lambda w: w.iloc[[0, 1, 3]], "one row per 1d bar"),
        (lambda w: w.iloc[:1], "at least two"),
        (lambda w: w.set_axis(w.index + pd.Timedelta("1D")), "no bar for"),
        (lambda w: w.iloc[::-1], "not sorted"),
    ],
)
def test_bad_weights_get_one_clear_error(mutate, message):
    with pytest.raises(ValueError, match=message):
        backtest(mutate(HAND_WEIGHTS), HAND_MARKET, interval="1d")


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="execution"):
        backtest(HAND_WEIGHTS, HAND_MARKET, interval="1d", execution="vwap")
    with pytest.raises(ValueError, match="fee"):
        backtest(HAND_WEIGHTS, HAND_MARKET, interval="1d", fee=-0.1)
    with pytest.raises(ValueError, match="interval"):
        backtest(HAND_WEIGHTS, HAND_MARKET, interval="daily")
    bad = {"A": HAND_MARKET["A"].assign(close=[100, -1, 99, 120]), "B": HAND_MARKET["B"]}
    with pytest.raises(DataError, match=r"\[A\].*non-positive"):
        backtest(HAND_WEIGHTS, bad, interval="1d")


# --- properties -------------------------------------------------------------------------------


def random_case(seed: int, n: int, k: int, vertex_share: float):
    rng = np.random.default_rng(seed)
    assets = [f"X{i}" for i in range(k)]
    logret = rng.normal(0, 0.05, size=(n, k))
    close = 100 * np.exp(np.cumsum(logret, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, size=(n, k)))
    market = {a: market_frame(close[:, i], open_[:, i]) for i, a in enumerate(assets)}
    w = rng.dirichlet(np.ones(k + 1), size=n)
    vertex = rng.random(n) < vertex_share
    w[vertex] = np.eye(k + 1)[rng.integers(0, k + 1, size=vertex.sum())]
    return market, weights_frame(w, assets), close, open_


def reference_loop(w: np.ndarray, close: np.ndarray, open_: np.ndarray, c: float, execution: str) -> np.ndarray:
    """The contract's accounting written step by step, as an environment would."""
    n = len(w)
    values = [1.0]
    held = np.eye(w.shape[1])[0]
    v = 1.0
    for t in range(n - 1):
        if execution == "close":
            mu = 1 - c * np.abs(w[t, 1:] - held[1:]).sum()
            y = np.concatenate([[1.0], close[t + 1] / close[t]])
            v = v * mu * (w[t] @ y)
            held = w[t] * y / (w[t] @ y)
        else:
            y_co = np.concatenate([[1.0], open_[t + 1] / close[t]])
            v_open = v * (held @ y_co)
            held = held * y_co / (held @ y_co)
            mu = 1 - c * np.abs(w[t, 1:] - held[1:]).sum()
            y_oc = np.concatenate([[1.0], close[t + 1] / open_[t + 1]])
            v = v_open * mu * (w[t] @ y_oc)
            held = w[t] * y_oc / (w[t] @ y_oc)
        values.append(v)
    return np.array(values)


case = st.tuples(st.integers(0, 2**32 - 1), st.integers(2, 25), st.integers(1, 3), st.sampled_from([0.0, 0.5, 1.0]))


@settings(max_examples=40, deadline=None)
@given(case=case, fee=st.floats(0, 0.05), execution=st.sampled_from(["close", "next_open"]))
def test_engine_matches_the_step_by_step_accounting(case, fee, execution):
    market, w, close, open_ = random_case(*case)
    res = backtest(w, market, interval="1d", fee=fee, execution=execution)
    ref = reference_loop(w.to_numpy(), close, open_, fee, execution)
    np.testing.assert_allclose(res.values.to_numpy(), ref, rtol=1e-12, atol=0)
    assert (res.values > 0).all()
    assert (res.fees >= 0).all() and (res.turnover >= 0).all() and (res.turnover <= 2 + 1e-12).all()
    # money bookkeeping: fees are the cost rate times the traded value
    if execution == "close":
        np.testing.assert_allclose(
            res.fees.to_numpy(), fee * res.turnover.to_numpy() * res.values.to_numpy(), rtol=1e-12, atol=1e-18
        )


@settings(max_examples=25, deadline=None)
@given(case=case)
def test_zero_fee_constant_weights_is_the_closed_form_crp(case):
    market, w, close, _ = random_case(*case)
    constant = w.iloc[[0] * len(w)].set_axis(w.index)
    res = backtest(constant, market, interval="1d", fee=0.0)
    b = constant.to_numpy()[0]
    rel = close[1:] / close[:-1]
    expected = np.concatenate([[1.0], np.cumprod(b[0] + rel @ b[1:])])
    np.testing.assert_allclose(res.values.to_numpy(), expected, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(case=case, fee=st.floats(0, 0.01), execution=st.sampled_from(["close", "next_open"]))
def test_fees_only_cost(case, fee, execution):
    market, w, _, _ = random_case(*case)
    free = backtest(w, market, interval="1d", fee=0.0, execution=execution)
    paid = backtest(w, market, interval="1d", fee=fee, execution=execution)
    assert (paid.values.to_numpy() <= free.values.to_numpy() * (1 + 1e-12)).all()


@settings(max_examples=30, deadline=None)
@given(case=case, cut=st.integers(0, 24), execution=st.sampled_from(["close", "next_open"]))
def test_no_look_ahead(case, cut, execution):
    market, w, _, _ = random_case(*case)
    n = len(w)
    t = min(cut, n - 1)
    base = backtest(w, market, interval="1d", fee=0.002, execution=execution)
    rng = np.random.default_rng(cut)
    # prices after t change (open, high, low, close of every later bar)
    shocked = {}
    for a, frame in market.items():
        f = frame.copy()
        scale = np.ones(n)
        scale[t + 1 :] = np.exp(rng.normal(0, 0.3, size=n - t - 1))
        for c in ("open", "high", "low", "close"):
            f[c] = f[c].to_numpy() * scale
        shocked[a] = f
    later_prices = backtest(w, shocked, interval="1d", fee=0.002, execution=execution)
    np.testing.assert_array_equal(later_prices.values.to_numpy()[: t + 1], base.values.to_numpy()[: t + 1])
    # weights decided at t or later change: values up to t (decided with rows < t) are unchanged
    w2 = w.copy()
    k = w.shape[1]
    w2.iloc[t:] = np.roll(np.eye(k), 1, axis=1)[rng.integers(0, k, size=n - t)]
    later_weights = backtest(w2, market, interval="1d", fee=0.002, execution=execution)
    np.testing.assert_array_equal(later_weights.values.to_numpy()[: t + 1], base.values.to_numpy()[: t + 1])
    np.testing.assert_array_equal(later_weights.fees.to_numpy()[:t], base.fees.to_numpy()[:t])


# --- baselines --------------------------------------------------------------------------------


def test_baselines_weights_and_values():
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.04, size=(60, 3)), axis=0))
    market = {a: market_frame(closes[:, i]) for i, a in enumerate(["BTC", "ETH", "LINK"])}
    frames = baselines(market, start="2022-01-05", end="2022-02-20")
    assert list(frames) == ["B&H BTC", "B&H ETH", "B&H LINK", "B&H equal weight", "CRP equal weight", "Trend SMA20"]
    for _name, w in frames.items():
        assert w.index[0] == pd.Timestamp("2022-01-05", tz="UTC") and w.index[-1] == pd.Timestamp(
            "2022-02-20", tz="UTC"
        )
        assert w.columns[0] == "cash"
    res = {name: backtest(w, market, interval="1d", fee=0.001) for name, w in frames.items()}
    # buy-and-hold of one asset: price ratio times (1 - fee)
    np.testing.assert_allclose(res["B&H ETH"].values.iloc[1:], 0.999 * closes[5:51, 1] / closes[4, 1], rtol=1e-13)
    # equal-weight buy-and-hold: the mean of the price ratios times (1 - fee); trades only once
    np.testing.assert_allclose(
        res["B&H equal weight"].values.iloc[1:], 0.999 * (closes[5:51] / closes[4]).mean(axis=1), rtol=1e-12
    )
    assert res["B&H equal weight"].turnover.iloc[1:].max() < 1e-12
    # CRP: equal weights every bar, turnover every bar
    np.testing.assert_allclose(frames["CRP equal weight"].iloc[:, 1:], 1 / 3)
    assert (res["CRP equal weight"].turnover.iloc[1:-1] > 0).all()
    with pytest.raises(ValueError, match="CRP weights"):
        constant_rebalanced(market, ["BTC", "ETH"], weights=[0.7, 0.7])
    with pytest.raises(ValueError, match="no market"):
        buy_and_hold(market, "DOGE")
    assert equal_weight_buy_and_hold(market, ["BTC"]).iloc[:, 1].eq(1.0).all()


# --- real data --------------------------------------------------------------------------------


@pytest.mark.realdata
def test_buy_and_hold_btc_2022_on_real_daily_bars(shared_data):
    raw = pd.read_csv(shared_data / "prices" / "daily" / "BTC-USD_1d.csv", parse_dates=["datetime"])
    raw = raw.set_index(pd.DatetimeIndex(raw["datetime"], tz="UTC", name="time")).drop(columns="datetime")
    window = raw.loc["2022-03-01":"2022-09-30", "close"]
    arr_direct = window.iloc[-1] / window.iloc[0] - 1  # close ratio
    drr_direct = window.pct_change().dropna().mean()  # mean of daily pct changes
    assert arr_direct == pytest.approx(-0.56, abs=0.01) and drr_direct == pytest.approx(-0.0033, abs=0.0001)

    market = {"BTC": raw.loc["2021-12-01":"2022-12-31"]}
    w = buy_and_hold(market, "BTC", start="2022-03-01", end="2022-09-30")
    res = backtest(w, market, interval="1d", fee=0.0)
    m = res.metrics()
    assert m["ARR"] == pytest.approx(arr_direct, rel=1e-12)
    assert m["DRR"] == pytest.approx(drr_direct, rel=1e-12)
    np.testing.assert_allclose(res.values, window / window.iloc[0], rtol=1e-13)
    # with the default 0.1 % fee: one purchase at the first close
    paid = backtest(w, market, interval="1d").metrics()
    assert paid["ARR"] == pytest.approx(0.999 * (1 + arr_direct) - 1, rel=1e-12)
    assert performance(res.values, "1d")["Sortino"] < 0
