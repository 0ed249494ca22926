"""Metrics: checked against quantstats and against the formulas written out with NumPy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from cryptorl.data.frames import periods_per_year
from cryptorl.portfolio import METRIC_KEYS, daily_returns, performance


def value_path(seed: int, n: int, freq: str, start: str = "2022-01-01") -> pd.Series:
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, size=n) * 0.02 + 0.0005
    r[rng.random(n) < 0.1] = 0.0  # some flat bars (in cash)
    idx = pd.date_range(start, periods=n + 1, freq=freq, tz="UTC", name="time")
    return pd.Series(np.concatenate([[1.0], np.cumprod(1 + r)]), index=idx)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("interval, freq", [("1d", "1D"), ("6h", "6h")])
def test_metrics_agree_with_quantstats_and_numpy(seed, interval, freq):
    values = value_path(seed, 200, freq)  # 200 returns: (n - 1) * 0.05 is not whole -> see CVaR below
    m = performance(values, interval)
    assert list(m) == list(METRIC_KEYS)
    ppy = periods_per_year(interval)
    r = values.pct_change().dropna()
    rq = r.tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["Sortino"] == pytest.approx(qs.stats.sortino(rq, periods=ppy), rel=1e-10)
        assert m["Sharpe"] == pytest.approx(qs.stats.sharpe(rq, periods=ppy), rel=1e-10)
        assert m["AnnVol"] == pytest.approx(qs.stats.volatility(rq, periods=ppy), rel=1e-10)
        assert m["WinRate"] == pytest.approx(qs.stats.win_rate(rq), rel=1e-12)
        assert m["Calmar"] == pytest.approx(qs.stats.calmar(rq, periods=ppy), rel=1e-8)
    # the same formulas written out
    x = r.to_numpy()
    assert m["ARR"] == pytest.approx(values.iloc[-1] - 1.0, rel=1e-12)
    assert m["Sortino"] == pytest.approx(x.mean() / np.sqrt(np.mean(np.minimum(x, 0) ** 2)) * np.sqrt(ppy), rel=1e-10)
    assert m["Sharpe"] == pytest.approx(x.mean() / x.std(ddof=1) * np.sqrt(ppy), rel=1e-10)
    peak = np.maximum.accumulate(values.to_numpy())
    assert m["MaxDrawdown"] == pytest.approx((values.to_numpy() / peak - 1).min(), rel=1e-12)
    cagr = values.iloc[-1] ** (ppy / len(x)) - 1
    assert m["Calmar"] == pytest.approx(cagr / abs(m["MaxDrawdown"]), rel=1e-10)
    worst = np.sort(x)[: int((len(x) - 1) * 0.05) + 1]
    assert m["CVaR95"] == pytest.approx(-worst.mean(), rel=1e-12)  # positive = loss
    assert m["WinRate"] == pytest.approx((x > 0).sum() / (x != 0).sum(), rel=1e-12)
    assert np.isnan(m["Turnover"])


def test_cvar_agrees_with_quantstats_historical_when_the_quantile_is_an_observation():
    values = value_path(7, 201, "1D")  # (201 - 1) * 0.05 = 10: the 5 % quantile is the 11th worst
    r = values.pct_change().dropna().tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = qs.stats.cvar(r, method="historical")
    assert performance(values, "1d")["CVaR95"] == pytest.approx(-expected, rel=1e-12)


def test_drr_daily_is_the_mean_of_daily_changes():
    values = value_path(4, 120, "1D")
    assert performance(values, "1d")["DRR"] == pytest.approx(values.pct_change().dropna().mean(), rel=1e-12)


def test_drr_intraday_resamples_to_daily_closes():
    # starts at the 18:00 bar, whose close is the day's close: days are every 4th value from there
    values = value_path(5, 4 * 30, "6h", start="2022-01-01 18:00")
    closes = values.iloc[::4]
    expected = (closes.to_numpy()[1:] / closes.to_numpy()[:-1] - 1).mean()
    assert performance(values, "6h")["DRR"] == pytest.approx(expected, rel=1e-12)
    # starts mid-day: the first day's return runs from the start to that day's close
    values = value_path(6, 4 * 30, "6h", start="2022-01-01 06:00")
    daily = daily_returns(values, "6h")
    assert daily.iloc[0] == pytest.approx(values.iloc[2] / values.iloc[0] - 1, rel=1e-12)
    assert daily.iloc[1] == pytest.approx(values.iloc[6] / values.iloc[2] - 1, rel=1e-12)
    assert len(daily) == 31  # 1 Jan (from 06:00) .. 31 Jan (up to 06:00, the last value)


def test_drr_weekly_is_the_per_day_rate():
    values = value_path(8, 30, "7D")
    r = values.pct_change().dropna()
    assert performance(values, "1w")["DRR"] == pytest.approx(r.mean() / 7, rel=1e-12)


def test_turnover_is_per_year():
    values = value_path(9, 365, "1D")
    turnover = pd.Series(0.5, index=values.index)
    turnover.iloc[-1] = 0.0
    assert performance(values, "1d", turnover)["Turnover"] == pytest.approx(0.5 * 365, rel=1e-12)


def test_flat_path_has_no_win_rate_and_bad_values_are_refused():
    idx = pd.date_range("2022-01-01", periods=5, freq="D", tz="UTC")
    flat = performance(pd.Series(1.0, index=idx), "1d")
    assert flat["ARR"] == 0 and flat["MaxDrawdown"] == 0 and np.isnan(flat["WinRate"])
    with pytest.raises(ValueError, match="positive and finite"):
        performance(pd.Series([1.0, np.nan, 1.1, 1.2, 1.3], index=idx), "1d")
    with pytest.raises(ValueError, match="positive and finite"):
        performance(pd.Series([1.0, -0.5, 1.1, 1.2, 1.3], index=idx), "1d")
    with pytest.raises(ValueError, match="two points"):
        performance(pd.Series([1.0], index=idx[:1]), "1d")
    with pytest.raises(ValueError, match="interval"):
        performance(pd.Series(1.0, index=idx), "daily")


def test_flat_path_scores_zero_not_nan():
    """All cash: no return, no risk -> ratios 0 (a NaN would rank below any losing strategy)."""
    idx = pd.date_range("2022-01-01", periods=30, freq="1D", tz="UTC")
    m = performance(pd.Series(1.0, index=idx), "1d")
    assert m["Sortino"] == 0.0 and m["Sharpe"] == 0.0 and m["ARR"] == 0.0
