"""Rolling z-score and rolling PCA: hand-computed cases, equality with a naive sklearn loop, causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cryptorl.features import rolling_pca, rolling_pca_reference, rolling_zscore


def test_zscore_by_hand():
    x = pd.DataFrame({"a": [1.0, 2.0, 4.0, 4.0, 4.0, 4.0, np.nan, 10.0]})
    z = rolling_zscore(x, 3)["a"].to_numpy()
    assert np.isnan(z[:2]).all()  # warm-up: fewer than 3 values
    # window [1, 2, 4]: mean 7/3, sample std sqrt(7/3)
    assert z[2] == pytest.approx((4 - 7 / 3) / np.sqrt(7 / 3), abs=1e-12)
    # window [2, 4, 4]: mean 10/3, sample std sqrt(4/3)
    assert z[3] == pytest.approx((4 - 10 / 3) / np.sqrt(4 / 3), abs=1e-12)
    assert z[4] == 0.0 and z[5] == 0.0  # flat window [4, 4, 4]: 0, not a division by zero
    assert np.isnan(z[6])  # missing value at t
    assert np.isnan(z[7])  # window [4, nan, 10] has 2 < 3 values
    z2 = rolling_zscore(x, 3, min_periods=2)["a"].to_numpy()
    # window [4, nan, 10] with min_periods=2: mean 7, std sqrt(18)
    assert z2[7] == pytest.approx((10 - 7) / np.sqrt(18), abs=1e-12)


def test_pca_by_hand_two_identical_columns():
    # Two identical columns: PC1 = (1, 1)/sqrt(2); the projection of row t is
    # (x_t - window mean) * sqrt(2).
    x = np.array([0.0, 1.0, 3.0, 2.0, 5.0])
    z = np.column_stack([x, x])
    ref = np.array([[1.0], [1.0]]) / np.sqrt(2)
    out = rolling_pca(z, 3, ref)[:, 0]
    assert np.isnan(out[:2]).all()
    expect = [(3 - 4 / 3) * np.sqrt(2), (2 - 2) * np.sqrt(2), (5 - 10 / 3) * np.sqrt(2)]
    np.testing.assert_allclose(out[2:], expect, atol=1e-12)
    # the reference fixes the sign: flip it and every value flips
    np.testing.assert_allclose(rolling_pca(z, 3, -ref)[2:, 0], -out[2:], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_rolling_pca_equals_naive_sklearn_loop(seed):
    rng = np.random.default_rng(seed)
    n, d, w, k = 260, 6, 30, 3
    z = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))  # correlated columns
    z[120, 2] = np.nan  # a hole: the windows holding it are NaN on both sides
    ref = np.linalg.eigh(np.cov(z[~np.isnan(z).any(axis=1)].T))[1][:, ::-1][:, :k]
    fast = rolling_pca(z, w, ref, chunk=64)  # several chunks
    naive = rolling_pca_reference(z, w, ref)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(naive))
    assert np.isnan(fast[120:150]).all() and not np.isnan(fast[150:]).any()
    assert np.nanmax(np.abs(fast - naive)) < 1e-8


@settings(max_examples=30, deadline=None)
@given(
    t=st.integers(0, 59),
    future=arrays(np.float64, (60, 3), elements=st.floats(-1e3, 1e3) | st.just(np.nan)),
)
def test_rolling_output_up_to_t_ignores_the_future(t, future):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((60, 3)).cumsum(axis=0)
    changed = base.copy()
    changed[t + 1 :] = future[t + 1 :]
    ref = np.eye(3)[:, :2]
    for fn in (
        lambda v: rolling_zscore(pd.DataFrame(v), 8, min_periods=4).to_numpy(),
        lambda v: rolling_pca(v, 8, ref, chunk=16),
    ):
        a, b = fn(base), fn(changed)
        np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
