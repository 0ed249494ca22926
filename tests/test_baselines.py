"""The trend, momentum and risk baselines: hand-computed cases, the simplex, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.portfolio import (
    backtest,
    check_weights,
    donchian_ensemble,
    inverse_volatility,
    time_series_momentum,
)
from cryptorl.portfolio.baselines import donchian_signal, realised_vol


def market(close, start="2022-01-01") -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    idx = pd.date_range(start, periods=len(close), freq="1D", tz="UTC", name="time")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0}, index=idx
    )


def random_markets(seed: int, n: int = 160, assets=("A", "B", "C")) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return {a: market(100 * np.cumprod(1 + rng.normal(0.001, 0.04, n))) for a in assets}


def test_time_series_momentum_hand_computed():
    m = {"A": market([1, 2, 3, 2, 1, 2]), "B": market([4, 3, 2, 3, 4, 5])}
    w = time_series_momentum(m, ["A", "B"], lookback=2)
    # A: 3/1 > 1 at t=2; 2/2, 1/3, 2/2 are not positive returns. B: 2/4, 3/3 no; 4/2, 5/3 yes.
    np.testing.assert_allclose(w["A"], [0, 0, 0.5, 0, 0, 0])
    np.testing.assert_allclose(w["B"], [0, 0, 0, 0, 0.5, 0.5])
    np.testing.assert_allclose(w["cash"], [1, 1, 0.5, 1, 0.5, 0.5])


def test_donchian_signal_hand_computed():
    close = market([1, 2, 3, 4, 5, 6, 5.5, 5.8, 5.2, 7])["close"]
    # in at the 6-bar high (t=5), held through 5.5 and 5.8 (above the 3-bar low), out at 5.2 (the
    # 3-bar low), in again at 7 (the 6-bar high)
    np.testing.assert_allclose(donchian_signal(close, 6), [0, 0, 0, 0, 0, 1, 1, 1, 0, 1])


def test_donchian_ensemble_averages_lookbacks_and_targets_volatility():
    m = random_markets(3, n=200)
    huge = donchian_ensemble(m, lookbacks=(10, 20), target_vol=1e9, vol_window=30)
    for a in m:
        expected = (donchian_signal(m[a]["close"], 10) + donchian_signal(m[a]["close"], 20)) / 2 / 3
        np.testing.assert_allclose(huge[a].iloc[30:], expected.iloc[30:])  # no vol cap binds: the budget 1/3
        np.testing.assert_allclose(huge[a].iloc[:30], 0.0)  # 30 returns need 31 closes: cash before
    sized = donchian_ensemble(m, lookbacks=(10, 20), target_vol=0.2, vol_window=30)
    r = m["A"]["close"].pct_change().to_numpy()
    t = 150
    vol = np.std(r[t - 29 : t + 1], ddof=1) * np.sqrt(365)
    assert vol > 0.2  # 4 % a day is about 76 % a year
    assert sized["A"].iloc[t] == pytest.approx(huge["A"].iloc[t] * 0.2 / vol)
    assert (sized.drop(columns="cash") <= 1 / 3 + 1e-12).all().all()  # never above the budget
    assert realised_vol(m["A"]["close"], 30).iloc[t] == pytest.approx(vol)


def test_inverse_volatility_hand_computed_and_drifts_between_rebalances():
    r = np.tile([0.01, -0.01], 20)
    m = {
        "A": market(100 * np.cumprod(np.r_[1.0, 1 + r])),
        "B": market(100 * np.cumprod(np.r_[1.0, 1 + 2 * r])),  # twice A's volatility
    }
    w = inverse_volatility(m, window=10, rebalance=10, start=m["A"].index[10])
    np.testing.assert_allclose(w.iloc[0][["A", "B"]], [2 / 3, 1 / 3])
    np.testing.assert_allclose(w["cash"], 0.0, atol=1e-12)
    res = backtest(w, m, interval="1d", fee=0.001)
    traded = res.turnover.to_numpy() > 1e-12
    assert traded[0] and traded[10] and traded[20]  # start and rebalances
    assert not traded[[1, 5, 9, 11, 19, 21, 29]].any()  # the weights drift with prices in between


def test_inverse_volatility_holds_cash_before_any_volatility():
    m = random_markets(1, n=40, assets=("A", "B"))
    w = inverse_volatility(m, window=10, rebalance=5)
    np.testing.assert_allclose(w["cash"].iloc[:10], 1.0)  # rebalances at 0 and 5: no 10-bar vol yet
    assert w["cash"].iloc[10] == 0.0


BASELINES = {
    "tsmom": lambda m, **kw: time_series_momentum(m, lookback=20, **kw),
    "donchian": lambda m, **kw: donchian_ensemble(m, lookbacks=(10, 20, 30), vol_window=20, **kw),
    "inverse_vol": lambda m, **kw: inverse_volatility(m, window=15, rebalance=7, **kw),
}


@pytest.mark.parametrize("name", BASELINES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(60, 150), factor=st.floats(0.2, 5.0))
def test_no_look_ahead_and_on_the_simplex(name, seed, cut, factor):
    """Weights up to bar t are the same whatever the prices after t."""
    make = BASELINES[name]
    m = random_markets(seed)
    start = m["A"].index[40]
    w = make(m, start=start)
    check_weights(w, "1d")
    t = m["A"].index[cut]
    future = {a: f.copy() for a, f in m.items()}
    for f in future.values():
        f.loc[f.index > t, ["open", "high", "low", "close"]] *= (
            factor * np.linspace(1, 2, int((f.index > t).sum()))[:, None]
        )
    truncated = {a: f.loc[f.index <= t] for a, f in m.items()}
    pd.testing.assert_frame_equal(make(future, start=start).loc[:t], w.loc[:t])
    pd.testing.assert_frame_equal(make(truncated, start=start), w.loc[:t])


def test_bad_parameters_are_refused():
    m = random_markets(0, n=30)
    with pytest.raises(ValueError, match="lookback"):
        time_series_momentum(m, lookback=0)
    with pytest.raises(ValueError, match="Donchian lookback"):
        donchian_ensemble(m, lookbacks=(1,))
    with pytest.raises(ValueError, match="target_vol"):
        donchian_ensemble(m, target_vol=0)
    with pytest.raises(ValueError, match="inverse volatility"):
        inverse_volatility(m, window=1)


def test_holds_one_asset_tells_per_coin_holds_from_portfolios():
    from cryptorl.portfolio.baselines import EQUAL_WEIGHT, BuyAndHold, holds_one_asset

    assert holds_one_asset(BuyAndHold(assets=["ETH"]).name)
    assert not holds_one_asset(EQUAL_WEIGHT)
    assert not holds_one_asset("SMA20 trend")
