"""Leak-free rolling normalisation and rolling PCA (the DRU's dimension reduction).

Every value at row ``t`` is computed from rows ``t - window + 1 .. t`` only.

* :func:`rolling_zscore`: ``(x_t - mean) / std`` over the trailing window (pandas rolling,
  sample std, ``ddof=1``). A window whose std is at most ``FLAT_TOL * |mean|`` (a flat stretch)
  gives 0 rather than a division by ~0. NaN where ``x_t`` is NaN or the window holds fewer than
  ``min_periods`` values.
* :func:`rolling_pca`: at each ``t``, the PCA of the window of rows ending at ``t`` (centred on
  the window mean), and the projection of row ``t`` on its first ``k`` components. Windows that
  contain a NaN give NaN. The window covariances come from cumulative sums of outer products
  (per chunk of windows, shifted by the chunk's first window mean to keep the sums small;
  chunks are counted from the first row, so no value depends on a later row), and all of a
  chunk's eigen-decompositions run in one batched ``np.linalg.eigh`` call.
* Signs: an eigenvector's sign is arbitrary, so each window's component ``j`` is flipped to have
  a non-negative dot product with a fixed reference loading ``reference[:, j]`` (fitted once,
  on the training range). The rule is stateless: the sign at ``t`` depends on the window at
  ``t`` and the reference only, never on where the series starts.
* :func:`rolling_pca_reference`: the same thing done naively (scikit-learn's ``PCA`` refitted at
  every row). Slow; it exists to check :func:`rolling_pca` in the tests and the benchmark.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FLAT_TOL = 1e-10  # window std <= FLAT_TOL * |window mean| counts as a flat window (z = 0)


def rolling_zscore(values: pd.DataFrame, window: int, min_periods: int | None = None) -> pd.DataFrame:
    """Trailing-window z-score of every column (see module notes)."""
    mp = window if min_periods is None else min_periods
    roll = values.rolling(window, min_periods=mp)
    mean = roll.mean()
    std = roll.std(ddof=1)
    z = (values - mean) / std
    flat = (std <= FLAT_TOL * mean.abs()) & values.notna()
    return z.mask(flat, 0.0)


def sign_to_reference(components: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Signs (+1/-1) that make each component agree with the reference loading.

    ``components``: (..., d, k) loadings in columns; ``reference``: (d, k). A dot product of
    exactly 0 keeps the sign (+1).
    """
    dots = np.einsum("...dk,dk->...k", components, reference)
    return np.where(dots < 0, -1.0, 1.0)


def rolling_pca(z: np.ndarray, window: int, reference: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """Projection of each row on the first ``k`` principal components of its trailing window.

    ``z``: (n, d) values (NaN allowed); ``reference``: (d, k) loadings that fix the signs.
    Returns (n, k); rows whose window is incomplete (``t < window - 1``) or holds a NaN are NaN.
    """
    z = np.asarray(z, dtype="float64")
    reference = np.asarray(reference, dtype="float64")
    n, d = z.shape
    k = reference.shape[1]
    if reference.shape[0] != d:
        raise ValueError(f"reference has {reference.shape[0]} rows, the data has {d} columns")
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    out = np.full((n, k), np.nan)
    if n < window or k == 0:
        return out
    bad = np.isnan(z).any(axis=1)
    nbad = np.concatenate([[0], np.cumsum(bad)])
    ends = np.arange(window - 1, n)
    complete = nbad[ends + 1] - nbad[ends + 1 - window] == 0
    zz = np.where(bad[:, None], 0.0, z)
    for first in range(0, len(ends), chunk):
        t_ends = ends[first : first + chunk]
        ok = complete[first : first + chunk]
        if not ok.any():
            continue
        rows = zz[t_ends[0] - window + 1 : t_ends[-1] + 1]
        # Shift by the chunk's first window mean: exact for covariances, keeps the sums small,
        # and uses no row after the chunk's first window end (so nothing leaks backwards).
        x = rows - rows[:window].mean(axis=0)
        c1 = np.zeros((len(x) + 1, d))
        np.cumsum(x, axis=0, out=c1[1:])
        c2 = np.zeros((len(x) + 1, d, d))
        np.cumsum(x[:, :, None] * x[:, None, :], axis=0, out=c2[1:])
        hi = np.arange(window, len(x) + 1)[ok]
        s1 = c1[hi] - c1[hi - window]
        mean = s1 / window
        cov = (c2[hi] - c2[hi - window] - s1[:, :, None] * mean[:, None, :]) / (window - 1)
        _, vecs = np.linalg.eigh(cov)
        top = vecs[:, :, ::-1][:, :, :k]  # eigh sorts ascending
        centred = x[hi - 1] - mean
        proj = np.einsum("md,mdk->mk", centred, top) * sign_to_reference(top, reference)
        out[t_ends[ok]] = proj
    return out


def rolling_pca_reference(z: np.ndarray, window: int, reference: np.ndarray) -> np.ndarray:
    """Naive :func:`rolling_pca`: refit scikit-learn's PCA at every row (for checks only)."""
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype="float64")
    n, _ = z.shape
    k = reference.shape[1]
    out = np.full((n, k), np.nan)
    for t in range(window - 1, n):
        win = z[t - window + 1 : t + 1]
        if np.isnan(win).any():
            continue
        pca = PCA(n_components=k, svd_solver="full").fit(win)
        sign = sign_to_reference(pca.components_.T, reference)
        out[t] = pca.transform(z[t : t + 1])[0] * sign
    return out
