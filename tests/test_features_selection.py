"""DRU metric selection: hand-computed ranking and correlations, training-range only, drops, demo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptorl.data.demo import demo_data, demo_planted
from cryptorl.features import DataRefinementUnit, MetricSelection, horizon_returns, rank_metrics, select_metrics

COEFS = pd.DataFrame(
    {
        "ret_12": [0.9, -0.7, 0.1, 0.0, 0.3],
        "ret_24": [0.8, -0.6, 0.2, 0.05, -0.1],
        "ret_48": [0.1, -0.5, 0.9, 0.0, 0.2],
    },
    index=["a", "b", "c", "d", "e"],
)


def test_rank_one_per_group_by_hand():
    # ret_12: top a, bottom b; ret_24: top a, bottom b; ret_48: top c, bottom b.
    chosen, groups, counts = rank_metrics(COEFS, per_group=1, max_metrics=2)
    assert groups == {"ret_12": ["a", "b"], "ret_24": ["a", "b"], "ret_48": ["c", "b"]}
    assert counts == {"a": 2, "b": 3, "c": 1}
    assert chosen == ["b", "a"]
    assert rank_metrics(COEFS, per_group=1, max_metrics=10)[0] == ["b", "a", "c"]


def test_rank_ties_broken_by_mean_abs_corr_by_hand():
    # per_group=2: ret_12 keeps a, e | b, d; ret_24 keeps a, c | b, e; ret_48 keeps c, e | b, d.
    # counts: b 3, e 3, a 2, c 2, d 2. Ties by mean |corr|: b 0.6 > e 0.2; a 0.6 > c 0.4 > d 0.0167.
    chosen, groups, counts = rank_metrics(COEFS, per_group=2, max_metrics=4)
    assert groups["ret_12"] == ["a", "e", "b", "d"]
    assert groups["ret_24"] == ["a", "c", "b", "e"]
    assert groups["ret_48"] == ["c", "e", "b", "d"]
    assert counts == {"a": 2, "b": 3, "c": 2, "d": 2, "e": 3}
    assert chosen == ["b", "e", "a", "c"]


def _frame(n: int, seed: int = 0) -> tuple[pd.Series, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-01", periods=n, freq="D", tz="UTC", name="time")
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n))), index=idx)
    metrics = pd.DataFrame({"x": rng.normal(size=n), "y": np.cumsum(rng.normal(size=n))}, index=idx)
    return close, metrics


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_coefficients_by_hand(direction):
    n, h = 120, 12
    close, metrics = _frame(n)
    sel = select_metrics(close, metrics, horizons=(h,), direction=direction, min_coverage=0.5)
    logc = np.log(close.to_numpy())
    x = metrics["x"].to_numpy()
    if direction == "forward":  # metric at t with the return from t to t+h, t + h inside the range
        expect = _pearson(x[: n - h], logc[h:] - logc[: n - h])
    else:  # metric at t with the return from t-h to t
        expect = _pearson(x[h:], logc[h:] - logc[: n - h])
    assert sel.coefficients.at["x", f"ret_{h}"] == pytest.approx(expect, abs=1e-12)
    assert sel.n_pairs.at["x", f"ret_{h}"] == n - h


def test_metric_equal_to_forward_return_has_corr_one():
    close, metrics = _frame(200)
    metrics["fwd"] = horizon_returns(close, (24,))["ret_24"]
    sel = select_metrics(close, metrics, horizons=(12, 24, 48))
    assert sel.coefficients.at["fwd", "ret_24"] == pytest.approx(1.0, abs=1e-12)
    assert sel.chosen[0] == "fwd"


def test_fit_ignores_everything_after_train_end():
    market, metrics = demo_data("ETH", start="2021-01-01", end="2021-12-31")
    end = "2021-09-30"
    dru = DataRefinementUnit(norm_window=30, pca_window=30).fit(market, metrics, end, asset="ETH")
    later = market.index > pd.Timestamp(end, tz="UTC")
    market2, metrics2 = market.copy(), metrics.copy()
    market2.loc[later, ["open", "high", "low", "close"]] = 1.0  # a flat, absurd future
    metrics2.loc[later] = np.random.default_rng(1).normal(size=(int(later.sum()), metrics.shape[1]))
    dru2 = DataRefinementUnit(norm_window=30, pca_window=30).fit(market2, metrics2, end, asset="ETH")
    pd.testing.assert_frame_equal(dru.selection.coefficients, dru2.selection.coefficients)
    assert dru.metrics == dru2.metrics
    np.testing.assert_array_equal(dru.reference_loadings, dru2.reference_loadings)
    # the forward 48-bar windows all end inside the training range
    n_train = int((~later).sum())
    assert (dru.selection.n_pairs["ret_48"] == n_train - 48).all()


def test_bad_metrics_are_dropped_with_reasons():
    close, metrics = _frame(150)
    metrics["empty"] = np.nan
    metrics["flat"] = 7.0
    metrics["sparse"] = metrics["x"].where(np.arange(150) % 2 == 0)  # 50 % coverage
    sel = select_metrics(close, metrics, min_coverage=0.8, asset="XYZ")
    assert set(sel.dropped) == {"empty", "flat", "sparse"}
    assert "all NaN" in sel.dropped["empty"]
    assert "constant" in sel.dropped["flat"]
    assert "coverage 50.0%" in sel.dropped["sparse"]
    assert set(sel.chosen) == {"x", "y"}
    text = str(sel)
    assert "XYZ" in text and "Dropped:" in text and "sparse" in text and "corr 48" in text


def test_selection_json_round_trip():
    close, metrics = _frame(150)
    sel = select_metrics(close, metrics, asset="XYZ")
    back = MetricSelection.from_dict(sel.to_dict())
    pd.testing.assert_frame_equal(back.coefficients, sel.coefficients)
    assert str(back) == str(sel)


@pytest.mark.parametrize("asset", ["BTC", "ETH", "ADA"])
def test_demo_selection_finds_planted_leading_metrics(asset):
    market, metrics = demo_data(asset)  # 2020-10-01 .. 2022-09-30
    dru = DataRefinementUnit().fit(market, metrics, "2021-12-31", asset=asset)  # first 15 months
    plan = demo_planted(asset)
    assert set(plan.leading) <= set(dru.metrics), str(dru.selection)
    assert all(dru.selection.counts[m] >= 2 for m in plan.leading)  # kept in two groups or three
