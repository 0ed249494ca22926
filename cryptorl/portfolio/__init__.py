"""Portfolio side of the PAU: voting Crypto Modules into weights, the backtest engine,
performance metrics, the strategy interface, baselines and reports (see docs/portfolio.md).

The report writers (:func:`write_report`, :func:`metrics_table`) pull in matplotlib and rich, so
they are imported on first use: reading the backtest engine or :mod:`cryptorl.portfolio.costs`
stays light.
"""

from __future__ import annotations

from cryptorl._lazy import lazy_names

from .backtest import EXECUTIONS, BacktestResult, backtest, check_weights, simulate
from .baselines import (
    EQUAL_WEIGHT,
    baselines,
    buy_and_hold,
    common_index,
    common_markets,
    constant_rebalanced,
    donchian_ensemble,
    equal_weight_buy_and_hold,
    inverse_volatility,
    time_series_momentum,
    trend_name,
    trend_timing,
)
from .metrics import METRIC_KEYS, daily_returns, drr, performance
from .strategy import (
    BASELINES,
    Baseline,
    FixedWeights,
    Strategy,
    StrategyRun,
    backtest_strategies,
    make_baselines,
    register_baseline,
)
from .voting import CryptoModuleLike, Portfolio, vote

# public name -> submodule that defines it, imported on first use
_LAZY = {"metrics_table": "report", "write_report": "report"}

__all__ = [
    "BASELINES",
    "EQUAL_WEIGHT",
    "EXECUTIONS",
    "METRIC_KEYS",
    "BacktestResult",
    "Baseline",
    "CryptoModuleLike",
    "FixedWeights",
    "Portfolio",
    "Strategy",
    "StrategyRun",
    "backtest",
    "backtest_strategies",
    "baselines",
    "buy_and_hold",
    "check_weights",
    "common_index",
    "common_markets",
    "constant_rebalanced",
    "daily_returns",
    "donchian_ensemble",
    "drr",
    "equal_weight_buy_and_hold",
    "inverse_volatility",
    "make_baselines",
    "metrics_table",
    "performance",
    "register_baseline",
    "simulate",
    "time_series_momentum",
    "trend_name",
    "trend_timing",
    "vote",
    "write_report",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
