"""The DRU end to end: causality, naive-loop equality, fixed k, save/load, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.data.demo import demo_data
from cryptorl.data.frames import DataError
from cryptorl.features import DataRefinementUnit, RefinementWarning, rolling_pca_reference

SMALL = dict(horizons=(3, 6, 12), max_metrics=6, norm_window=20, pca_window=20)
TRAIN_END = "2021-04-30"


@pytest.fixture(scope="module")
def small():
    market, metrics = demo_data("BTC", start="2021-01-01", end="2021-06-30")  # 181 daily rows
    dru = DataRefinementUnit(**SMALL).fit(market, metrics, TRAIN_END, asset="BTC")
    return market, metrics, dru


def test_output_shape_warmup_and_k(small):
    market, metrics, dru = small
    out = dru.transform(market, metrics)
    assert out.index.equals(market.index)
    assert list(out.columns) == dru.feature_names == [f"pc{i + 1}" for i in range(dru.n_components)]
    assert (out.dtypes == "float64").all()
    assert dru.warmup == 38
    assert out.iloc[: dru.warmup].isna().all().all() and out.iloc[dru.warmup :].notna().all().all()
    cum = np.cumsum(dru.explained_variance_ratio)  # k: the smallest reaching 80 % on the training range
    assert cum[dru.n_components - 1] >= 0.8 and (dru.n_components == 1 or cum[dru.n_components - 2] < 0.8)


_BASE: dict[int, np.ndarray] = {}


def _base_output(dru, market, metrics) -> np.ndarray:
    if id(dru) not in _BASE:
        _BASE[id(dru)] = dru.transform(market, metrics).to_numpy()
    return _BASE[id(dru)]


def _perturb(market, metrics, t, seed, nan_frac, scale):
    rng = np.random.default_rng(seed)
    m2, x2 = market.copy(), metrics.copy()
    after = np.arange(len(market)) > t
    n = int(after.sum())
    price = np.exp(rng.normal(0, 1, n)) * scale
    for c in ["open", "high", "low", "close"]:
        m2.loc[after, c] = price
    m2.loc[after, "volume"] = rng.random(n)
    vals = rng.normal(0, scale, (n, metrics.shape[1]))
    vals[rng.random(vals.shape) < nan_frac] = np.nan
    x2.loc[after] = vals
    return m2, x2


@settings(max_examples=20, deadline=None)
@given(
    t=st.integers(0, 180),
    seed=st.integers(0, 2**32 - 1),
    nan_frac=st.sampled_from([0.0, 0.3, 1.0]),
    scale=st.sampled_from([1e-3, 1.0, 1e6]),
)
def test_output_up_to_t_ignores_every_later_value(small, t, seed, nan_frac, scale):
    market, metrics, dru = small
    a = _base_output(dru, market, metrics)
    m2, x2 = _perturb(market, metrics, t, seed, nan_frac, scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefinementWarning)  # NaN in the perturbed future
        b = dru.transform(m2, x2).to_numpy()
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])


def _naive_refine(dru, aligned: pd.DataFrame) -> np.ndarray:
    """Per-row loops: z-score of each trailing window (min_periods = window // 2, missing -> 0),
    then scikit-learn's PCA refitted at every row."""
    x = aligned[dru.metrics].to_numpy()
    n, d = x.shape
    w, mp = dru.norm_window, max(2, dru.norm_window // 2)
    z = np.full((n, d), np.nan)
    for t in range(w - 1, n):
        for j in range(d):
            win = x[t - w + 1 : t + 1, j]
            v = win[~np.isnan(win)]
            if np.isnan(x[t, j]) or len(v) < mp:
                z[t, j] = 0.0
                continue
            m, s = v.mean(), v.std(ddof=1)
            z[t, j] = 0.0 if s <= 1e-10 * abs(m) else (x[t, j] - m) / s
    return rolling_pca_reference(z, dru.pca_window, dru.reference_loadings)


def test_transform_equals_naive_loops(small):
    market, metrics, dru = small
    holed = metrics.copy()
    holed.iloc[60:70, holed.columns.get_loc(dru.metrics[0])] = np.nan  # exercise min_periods and the 0 fill
    with pytest.warns(RefinementWarning, match="set to 0"):
        fast = dru.transform(market, holed).to_numpy()
    # what the DRU should see: the last value carried 3 bars (max_staleness "3D" on daily bars), then NaN
    seen = holed.copy()
    col = seen.columns.get_loc(dru.metrics[0])
    seen.iloc[60:63, col] = holed.iloc[59, col]
    naive = _naive_refine(dru, seen)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(naive))
    assert np.nanmax(np.abs(fast - naive)) < 1e-8


def test_k_is_fixed_on_the_training_range():
    # Six metrics driven by two latent factors: two components explain > 80 % everywhere.
    market, _ = demo_data("ETH", start="2021-01-01", end="2021-12-31")
    rng = np.random.default_rng(3)
    f = rng.standard_normal((len(market), 2)).cumsum(axis=0)
    load = rng.standard_normal((2, 6))
    metrics = pd.DataFrame(
        f @ load + 0.05 * rng.standard_normal((len(market), 6)), index=market.index, columns=[f"m{i}" for i in range(6)]
    )
    dru = DataRefinementUnit(norm_window=30, pca_window=30).fit(market, metrics, "2021-08-31", asset="ETH")
    assert dru.n_components == 2
    assert dru.transform(market, metrics).shape == (len(market), 2)


def test_later_slice_refines_like_the_full_series(small):
    # What the live unit does: refine only the recent rows; after its own warm-up it matches.
    market, metrics, dru = small
    full = dru.transform(market, metrics)
    part = dru.transform(market.iloc[100:], metrics.iloc[100:])
    np.testing.assert_allclose(part.iloc[dru.warmup :], full.iloc[100 + dru.warmup :], atol=1e-10)


def test_determinism(small):
    market, metrics, dru = small
    again = DataRefinementUnit(**SMALL).fit(market, metrics, TRAIN_END, asset="BTC")
    assert again.metrics == dru.metrics
    np.testing.assert_array_equal(again.reference_loadings, dru.reference_loadings)
    np.testing.assert_array_equal(again.transform(market, metrics), dru.transform(market, metrics))


def test_save_load_round_trip(small, tmp_path):
    market, metrics, dru = small
    folder = dru.save(tmp_path / "dru")
    assert sorted(p.name for p in folder.iterdir()) == ["dru.json", "dru.npz"]
    state = json.loads((folder / "dru.json").read_text())
    assert state["selection"]["chosen"] == dru.metrics and state["n_components"] == dru.n_components
    back = DataRefinementUnit.load(folder)
    assert str(back.selection) == str(dru.selection)
    assert (back.asset, back.bar, back.train_end, back.ffill_limit) == (
        dru.asset,
        dru.bar,
        dru.train_end,
        dru.ffill_limit,
    )
    np.testing.assert_array_equal(back.transform(market, metrics), dru.transform(market, metrics))


def test_save_load_without_metrics(small, tmp_path):
    market, _, _ = small
    with pytest.warns(RefinementWarning):
        dru = DataRefinementUnit(**SMALL).fit(market, None, TRAIN_END, asset="BTC")
    back = DataRefinementUnit.load(dru.save(tmp_path / "d"))
    with pytest.warns(RefinementWarning, match="OHLCV features alone"):
        out = back.transform(market, None)
    assert out.shape == (len(market), 0) and out.index.equals(market.index)


# -- bad input --


@pytest.mark.parametrize("metrics_kind", ["none", "empty", "all_nan", "constant"])
def test_no_usable_metrics_falls_back_to_zero_columns(small, metrics_kind):
    market, metrics, _ = small
    bad = {
        "none": None,
        "empty": pd.DataFrame(index=market.index),
        "all_nan": pd.DataFrame({"a": np.nan, "b": np.nan}, index=market.index),
        "constant": pd.DataFrame({"a": 1.0, "b": 2.0}, index=market.index),
    }[metrics_kind]
    with pytest.warns(RefinementWarning, match=r"\[BTC\]"):
        dru = DataRefinementUnit(**SMALL).fit(market, bad, TRAIN_END, asset="BTC")
    assert dru.n_components == 0 and dru.feature_names == []
    if metrics_kind in ("all_nan", "constant"):
        assert set(dru.selection.dropped) == {"a", "b"}
        assert all(
            ("all NaN" if metrics_kind == "all_nan" else "constant") in r for r in dru.selection.dropped.values()
        )
    with pytest.warns(RefinementWarning):
        assert dru.transform(market, bad).shape == (len(market), 0)


def test_too_few_rows(small):
    market, metrics, dru = small
    with pytest.raises(DataError, match=r"\[BTC\].*needs at least"):
        DataRefinementUnit().fit(market, metrics, TRAIN_END, asset="BTC")  # 120 rows < 179
    with pytest.raises(DataError, match=r"\[BTC\] only 30 market rows.*at least 39"):
        dru.transform(market.iloc[:30], metrics.iloc[:30])


def test_chosen_metric_missing_at_transform(small):
    market, metrics, dru = small
    gone = dru.metrics[1]
    with pytest.raises(DataError, match=rf"\[BTC\].*{gone}.*chosen at fit time are missing"):
        dru.transform(market, metrics.drop(columns=[gone]))
    with pytest.raises(DataError, match="missing"):
        dru.transform(market, None)


def test_mismatched_indexes(small):
    market, metrics, dru = small
    shifted = metrics.copy()
    shifted.index = shifted.index + pd.Timedelta(days=3650)  # ten years later: no overlap
    with pytest.raises(DataError, match=r"\[BTC\] no metric has a value in the training range.*indexes"):
        DataRefinementUnit(**SMALL).fit(market, shifted, TRAIN_END, asset="BTC")
    with pytest.raises(DataError, match=r"\[BTC\] no chosen metric has a value"):
        dru.transform(market, shifted)
    holey = market.drop(index=market.index[50])
    with pytest.raises(DataError, match=r"\[BTC\] the market index is not regular"):
        dru.transform(holey, metrics)
    hourly = market.copy()
    hourly.index = pd.date_range("2021-01-01", periods=len(market), freq="h", tz="UTC", name="time")
    with pytest.raises(DataError, match="fitted on 1 days"):
        dru.transform(hourly, metrics)


def test_other_misuse(small, tmp_path):
    market, metrics, dru = small
    with pytest.raises(ValueError, match="not fitted"):
        DataRefinementUnit().transform(market, metrics)
    with pytest.raises(DataError, match="fitted on BTC, not ETH"):
        dru.transform(market, metrics, asset="ETH")
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        dru.transform(market, metrics.to_numpy())
    with pytest.raises(ValueError, match="direction"):
        DataRefinementUnit(direction="sideways")
    with pytest.raises(ValueError, match="variance"):
        DataRefinementUnit(variance=1.5)
    with pytest.raises(ValueError, match="no saved DRU"):
        DataRefinementUnit.load(tmp_path / "nothing")
    folder = dru.save(tmp_path / "d")
    np.savez(folder / "dru.npz", reference=np.zeros((2, 2)))  # does not match the JSON
    with pytest.raises(ValueError, match="inconsistent"):
        DataRefinementUnit.load(folder)
