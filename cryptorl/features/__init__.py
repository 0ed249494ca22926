"""Data Refinement Unit (DRU): per-asset metric selection, rolling normalisation, rolling PCA."""

from .dru import DataRefinementUnit, RefinementWarning
from .rolling import rolling_pca, rolling_pca_reference, rolling_zscore, sign_to_reference
from .selection import MetricSelection, horizon_returns, rank_metrics, select_metrics

__all__ = [
    "DataRefinementUnit",
    "MetricSelection",
    "RefinementWarning",
    "horizon_returns",
    "rank_metrics",
    "rolling_pca",
    "rolling_pca_reference",
    "rolling_zscore",
    "select_metrics",
    "sign_to_reference",
]
