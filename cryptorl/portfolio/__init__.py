"""Portfolio side of the PAU: voting Crypto Modules into weights, the backtest engine,
performance metrics, baselines and reports (see docs/portfolio.md)."""

from .backtest import EXECUTIONS, BacktestResult, backtest, check_weights, simulate
from .baselines import (
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
from .report import metrics_table, write_report
from .voting import CryptoModuleLike, Portfolio, vote

__all__ = [
    "EXECUTIONS",
    "METRIC_KEYS",
    "BacktestResult",
    "CryptoModuleLike",
    "Portfolio",
    "backtest",
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
    "metrics_table",
    "performance",
    "simulate",
    "time_series_momentum",
    "trend_name",
    "trend_timing",
    "vote",
    "write_report",
]
