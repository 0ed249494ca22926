"""Features of the observations: the Data Refinement Unit (DRU: per-asset metric selection,
rolling normalisation, rolling PCA) and the market features (:mod:`cryptorl.features.market`).

The DRU pulls in scikit-learn, so it is imported on first use: listing the market features
stays light.
"""

from __future__ import annotations

from cryptorl._lazy import lazy_names

from .market import MARKET_FEATURES, MarketFeature, market_features, parse_market_feature, register_market_feature
from .rolling import rolling_pca, rolling_pca_reference, rolling_zscore, sign_to_reference
from .selection import MetricSelection, horizon_returns, rank_metrics, select_metrics

# public name -> submodule that defines it, imported on first use
_LAZY = {"DataRefinementUnit": "dru", "RefinementWarning": "dru"}

__all__ = [
    "MARKET_FEATURES",
    "DataRefinementUnit",
    "MarketFeature",
    "MetricSelection",
    "RefinementWarning",
    "horizon_returns",
    "market_features",
    "parse_market_feature",
    "rank_metrics",
    "register_market_feature",
    "rolling_pca",
    "rolling_pca_reference",
    "rolling_zscore",
    "select_metrics",
    "sign_to_reference",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
