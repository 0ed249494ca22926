"""The Data Refinement Unit (DRU): per-asset metric selection, then leak-free rolling
normalisation and rolling PCA (paper section 2.2). See docs/features.md for the choices made.

    dru = DataRefinementUnit().fit(market, metrics, train_end="2021-12-31", asset="BTC")
    print(dru.selection)                  # what was chosen, the coefficients, what was dropped
    features = dru.transform(market, metrics)   # pc1..pck on market.index, NaN in warm-up
    dru.save("models/BTC_1d/dru"); DataRefinementUnit.load("models/BTC_1d/dru")
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cryptorl.data.frames import (
    DataError,
    align_metrics,
    to_utc_timestamp,
    validate_market,
    validate_metrics,
    when,
)

from .rolling import rolling_pca, rolling_zscore
from .selection import MIN_PAIRS, MetricSelection, select_metrics

FORMAT = "cryptorl.dru/1"
JSON_NAME, NPZ_NAME = "dru.json", "dru.npz"


class RefinementWarning(UserWarning):
    """The DRU fell back on something documented (no metrics, missing values set to 0)."""


class DataRefinementUnit:
    """Select an asset's metrics on its training range and refine them into ``pc1..pck``.

    Parameters follow the paper: returns over ``horizons`` bars (``direction`` "forward", the
    default, or "backward"), ``per_group`` highest and lowest coefficients kept per horizon,
    ``max_metrics`` kept overall; metrics under ``min_coverage`` in the training range are
    dropped. ``norm_window`` / ``pca_window`` are the trailing windows (in bars) of the rolling
    z-score and the rolling PCA; ``variance`` fixes the number of components on the training
    range. ``max_staleness`` bounds how long a metric value is carried forward onto later bars
    (``align_metrics`` ffill limit = ``max_staleness // bar length``).
    """

    def __init__(
        self,
        horizons: tuple[int, ...] = (12, 24, 48),
        direction: str = "forward",
        per_group: int = 5,
        max_metrics: int = 10,
        min_coverage: float = 0.8,
        norm_window: int = 90,
        pca_window: int = 90,
        variance: float = 0.80,
        *,
        max_staleness: str | pd.Timedelta = "3D",
    ):
        horizons = tuple(int(h) for h in horizons)
        if not horizons or min(horizons) < 1:
            raise ValueError(f"horizons must be positive bar counts, got {horizons}")
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        if per_group < 1 or max_metrics < 1:
            raise ValueError("per_group and max_metrics must be at least 1")
        if not 0 < min_coverage <= 1:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
        if norm_window < 2 or pca_window < 2:
            raise ValueError(f"norm_window and pca_window must be at least 2, got {norm_window}, {pca_window}")
        if not 0 < variance <= 1:
            raise ValueError(f"variance must be in (0, 1], got {variance}")
        try:
            staleness = pd.Timedelta(max_staleness)
        except (ValueError, TypeError):
            raise ValueError(f"max_staleness must be a duration such as '3D', got {max_staleness!r}") from None
        if staleness < pd.Timedelta(0):
            raise ValueError("max_staleness must not be negative")
        self.horizons = horizons
        self.direction = direction
        self.per_group = int(per_group)
        self.max_metrics = int(max_metrics)
        self.min_coverage = float(min_coverage)
        self.norm_window = int(norm_window)
        self.pca_window = int(pca_window)
        self.variance = float(variance)
        self.max_staleness = staleness
        # fitted state
        self.asset: str | None = None
        self.bar: pd.Timedelta | None = None
        self.train_end: pd.Timestamp | None = None
        self.selection: MetricSelection | None = None
        self.reference_loadings: np.ndarray | None = None  # (len(chosen), k)
        self.explained_variance_ratio: np.ndarray | None = None  # training-range PCA, all components

    # -- public properties --
    @property
    def warmup(self) -> int:
        """Rows at the start of a transformed series that are NaN (norm_window + pca_window - 2)."""
        return self.norm_window + self.pca_window - 2

    @property
    def n_components(self) -> int:
        self._check_fitted()
        return 0 if self.reference_loadings is None else int(self.reference_loadings.shape[1])

    @property
    def feature_names(self) -> list[str]:
        return [f"pc{i + 1}" for i in range(self.n_components)]

    @property
    def ffill_limit(self) -> int:
        """Bars a metric value may be carried forward (from ``max_staleness`` and the bar length)."""
        if self.bar is None:
            raise ValueError("the bar length is known only after fit()")
        return int(self.max_staleness // self.bar)

    @property
    def metrics(self) -> list[str]:
        """The chosen metrics, in rank order (the PCA's input columns)."""
        self._check_fitted()
        return list(self.selection.chosen)

    def __repr__(self) -> str:
        state = (
            "unfitted"
            if self.selection is None
            else f"{self.asset}: {len(self.metrics)} metrics -> {self.n_components} components"
        )
        return f"DataRefinementUnit({state})"

    # -- fit / transform --
    def fit(
        self, market: pd.DataFrame, metrics: pd.DataFrame | None, train_end, *, asset: str | None = None
    ) -> DataRefinementUnit:
        """Select metrics and fix k and the reference loadings on rows with time <= ``train_end``."""
        market = validate_market(market, asset)
        bar = _bar_length(market, asset)
        end = to_utc_timestamp(train_end)
        if end is None:
            raise ValueError("train_end is required (the last time the fit may see)")
        train = market[market.index <= end]
        need = max(self.warmup + 1, max(self.horizons) + MIN_PAIRS)
        if len(train) < need:
            raise DataError(
                asset,
                f"only {len(train)} market rows up to train_end {end}; the DRU needs at least {need} "
                f"(norm_window + pca_window - 1 = {self.warmup + 1}, longest horizon + {MIN_PAIRS} = "
                f"{max(self.horizons) + MIN_PAIRS})",
            )
        self.asset, self.bar, self.train_end = asset, bar, end
        self.selection = None
        self.reference_loadings = self.explained_variance_ratio = None

        if metrics is not None:
            metrics = validate_metrics(metrics, asset)
        if metrics is None or metrics.shape[1] == 0:
            self.selection = select_metrics(
                train["close"],
                pd.DataFrame(index=train.index),
                horizons=self.horizons,
                direction=self.direction,
                asset=asset,
            )
            _warn_no_metrics(asset, "fit got no metrics")
            return self
        has_values = bool(metrics.notna().any().any())
        metrics = metrics[metrics.index <= end]  # nothing after train_end is ever read
        aligned = _align(metrics, train.index, self.ffill_limit)
        if has_values and aligned.notna().sum().sum() == 0:
            raise DataError(
                asset,
                "no metric has a value in the training range: the metrics and market indexes do not match",
                f"market {_span(train.index)}, metrics {_span(metrics.index)}",
            )
        self.selection = select_metrics(
            train["close"],
            aligned,
            horizons=self.horizons,
            direction=self.direction,
            per_group=self.per_group,
            max_metrics=self.max_metrics,
            min_coverage=self.min_coverage,
            asset=asset,
        )
        _explain_off_grid(self.selection.dropped, metrics, train.index)
        if not self.selection.chosen:
            _warn_no_metrics(asset, f"no usable metric in the training range ({len(self.selection.dropped)} dropped)")
            return self
        z = self._normalise(aligned[self.selection.chosen], asset, "training range")
        z_train = z[self.norm_window - 1 :]
        from sklearn.decomposition import PCA  # imported here: scikit-learn takes seconds to import

        pca = PCA(svd_solver="full").fit(z_train)
        ratio = pca.explained_variance_ratio_
        if not np.isfinite(ratio).all():
            raise DataError(asset, "the chosen metrics have no variance after normalisation in the training range")
        k = int(np.argmax(np.cumsum(ratio) >= self.variance - 1e-12)) + 1
        ref = pca.components_[:k].T.copy()
        # Deterministic reference sign: each loading's largest-magnitude entry is positive.
        big = ref[np.argmax(np.abs(ref), axis=0), np.arange(k)]
        self.reference_loadings = ref * np.where(big < 0, -1.0, 1.0)
        self.explained_variance_ratio = ratio.copy()
        return self

    def transform(
        self, market: pd.DataFrame, metrics: pd.DataFrame | None, *, asset: str | None = None
    ) -> pd.DataFrame:
        """``pc1..pck`` on ``market.index``; NaN for the first :attr:`warmup` rows; row t uses data up to t."""
        self._check_fitted()
        if asset is not None and self.asset is not None and asset != self.asset:
            raise DataError(asset, f"this DRU was fitted on {self.asset}, not {asset}")
        asset = asset or self.asset
        market = validate_market(market, asset)
        bar = _bar_length(market, asset)
        if bar != self.bar:
            raise DataError(asset, f"market bars are {bar}, the DRU was fitted on {self.bar} bars")
        if self.n_components == 0:
            _warn_no_metrics(asset, "the fitted DRU has no metrics")
            return pd.DataFrame(index=market.index)
        if len(market) < self.warmup + 1:
            raise DataError(
                asset,
                f"only {len(market)} market rows; the DRU needs at least {self.warmup + 1} "
                f"(norm_window + pca_window - 1) to produce a value",
            )
        chosen = self.metrics
        if metrics is not None and not isinstance(metrics, pd.DataFrame):
            raise DataError(asset, f"metrics must be a pandas DataFrame, got {type(metrics).__name__}")
        have = [] if metrics is None else [str(c) for c in metrics.columns]
        missing = [m for m in chosen if m not in have]
        if missing:
            raise DataError(asset, f"metric(s) {missing} chosen at fit time are missing from the metrics frame")
        metrics = validate_metrics(metrics[chosen], asset)
        aligned = _align(metrics, market.index, self.ffill_limit)
        if metrics.notna().any().any() and aligned.notna().sum().sum() == 0:
            raise DataError(
                asset,
                "no chosen metric has a value in the market's range: the indexes do not match",
                f"market {_span(market.index)}, metrics {_span(metrics.index)}",
            )
        z = self._normalise(aligned, asset, "transformed range")
        out = rolling_pca(z, self.pca_window, self.reference_loadings)
        return pd.DataFrame(out, index=market.index, columns=self.feature_names)

    def _normalise(self, aligned: pd.DataFrame, asset: str | None, where: str) -> np.ndarray:
        """Rolling z-score; NaN before row norm_window - 1; after it, a missing value becomes 0."""
        z = rolling_zscore(aligned, self.norm_window, min_periods=max(2, self.norm_window // 2)).to_numpy(copy=True)
        head, tail = z[: self.norm_window - 1], z[self.norm_window - 1 :]
        head[:] = np.nan
        holes = np.isnan(tail)
        if holes.any():
            counts = {m: int(c) for m, c in zip(aligned.columns, holes.sum(axis=0)) if c}
            warnings.warn(
                f"[{asset or 'data'}] {where}: no usable value after the normalisation warm-up for "
                f"{counts} (rows of {len(tail)}); the normalised value is set to 0 there",
                RefinementWarning,
                stacklevel=3,
            )
            tail[holes] = 0.0
        return z

    def _check_fitted(self) -> None:
        if self.selection is None:
            raise ValueError("this DataRefinementUnit is not fitted: call fit() or DataRefinementUnit.load()")

    # -- persistence (JSON + npz, no pickle) --
    def save(self, path: str | Path) -> Path:
        """Write the fitted state into the folder ``path`` (``dru.json`` + ``dru.npz``)."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "format": FORMAT,
            "params": {
                "horizons": list(self.horizons),
                "direction": self.direction,
                "per_group": self.per_group,
                "max_metrics": self.max_metrics,
                "min_coverage": self.min_coverage,
                "norm_window": self.norm_window,
                "pca_window": self.pca_window,
                "variance": self.variance,
                "max_staleness": self.max_staleness.isoformat(),
            },
            "asset": self.asset,
            "bar_seconds": self.bar.total_seconds(),
            "train_end": self.train_end.isoformat(),
            "selection": self.selection.to_dict(),
            "n_components": self.n_components,
            "explained_variance_ratio": None
            if self.explained_variance_ratio is None
            else self.explained_variance_ratio.tolist(),
        }
        ref = self.reference_loadings if self.reference_loadings is not None else np.zeros((0, 0))
        tmp_npz, tmp_json = folder / (NPZ_NAME + ".tmp.npz"), folder / (JSON_NAME + ".tmp")
        np.savez(tmp_npz, reference=ref)
        tmp_json.write_text(json.dumps(state, indent=2))
        os.replace(tmp_npz, folder / NPZ_NAME)
        os.replace(tmp_json, folder / JSON_NAME)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> DataRefinementUnit:
        """Read a DRU written by :meth:`save`."""
        folder = Path(path)
        try:
            state = json.loads((folder / JSON_NAME).read_text())
            with np.load(folder / NPZ_NAME, allow_pickle=False) as npz:
                ref = np.array(npz["reference"], dtype="float64")
        except FileNotFoundError as exc:
            raise ValueError(f"{folder}: no saved DRU there ({Path(exc.filename).name} is missing)") from None
        except (json.JSONDecodeError, KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{folder}: the saved DRU is unreadable ({exc})") from None
        if state.get("format") != FORMAT:
            raise ValueError(f"{folder}: unknown DRU format {state.get('format')!r} (expected {FORMAT})")
        p = state["params"]
        dru = cls(
            tuple(p["horizons"]),
            p["direction"],
            p["per_group"],
            p["max_metrics"],
            p["min_coverage"],
            p["norm_window"],
            p["pca_window"],
            p["variance"],
            max_staleness=pd.Timedelta(p["max_staleness"]),
        )
        dru.asset = state["asset"]
        dru.bar = pd.Timedelta(seconds=state["bar_seconds"])
        dru.train_end = pd.Timestamp(state["train_end"])
        dru.selection = MetricSelection.from_dict(state["selection"])
        k = int(state["n_components"])
        if k:
            if ref.shape != (len(dru.selection.chosen), k):
                raise ValueError(
                    f"{folder}: reference loadings have shape {ref.shape}, expected "
                    f"({len(dru.selection.chosen)}, {k}); the saved DRU is inconsistent"
                )
            dru.reference_loadings = ref
            dru.explained_variance_ratio = np.array(state["explained_variance_ratio"], dtype="float64")
        return dru


def _bar_length(market: pd.DataFrame, asset: str | None) -> pd.Timedelta:
    """The market's bar length; the index must be regular (returns are counted in bars)."""
    if len(market) < 2:
        raise DataError(asset, f"the market has {len(market)} row(s); the DRU needs a regular series of many bars")
    diffs = market.index[1:] - market.index[:-1]
    bar = diffs.min()
    irregular = np.flatnonzero(diffs != bar)
    if len(irregular):
        i = int(irregular[0])
        raise DataError(
            asset,
            f"the market index is not regular ({len(irregular)} step(s) differ from {bar})",
            f"{market.index[i]} -> {market.index[i + 1]}",
        )
    return bar


def _align(metrics: pd.DataFrame, index: pd.DatetimeIndex, ffill_limit: int) -> pd.DataFrame:
    """Each metric on the market index: its latest observed (non-NaN) value at or before t, carried
    at most ``ffill_limit`` bars (``align_metrics`` one metric at a time, so that one metric's
    observations never renew another's)."""
    cols = [align_metrics(metrics[[c]].dropna(), index, ffill_limit) for c in metrics.columns]
    out = pd.concat(cols, axis=1) if cols else pd.DataFrame(index=index)
    out.index = index
    return out.astype("float64")


def _explain_off_grid(dropped: dict[str, str], metrics: pd.DataFrame, index: pd.DatetimeIndex) -> None:
    """Say so when a metric lacks coverage because its timestamps are off the market's grid."""
    for name, why in dropped.items():
        if not why.startswith("coverage"):
            continue
        obs = metrics[name].dropna().index
        obs = obs[obs >= index[0]]
        off = int((~obs.isin(index)).sum())
        if off:
            dropped[name] = (
                f"{why}; {off} of its {len(obs)} timestamps fall between market bars, and values are "
                "carried forward only from timestamps on the market grid"
            )


def _span(index: pd.DatetimeIndex) -> str:
    return "empty" if len(index) == 0 else f"{when(index[0])} .. {when(index[-1])}"


def _warn_no_metrics(asset: str | None, why: str) -> None:
    warnings.warn(
        f"[{asset or 'data'}] {why}: the DRU outputs zero columns and the Crypto Module runs on OHLCV features alone",
        RefinementWarning,
        stacklevel=3,
    )
