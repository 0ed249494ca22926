"""Portfolio side of the PAU: voting Crypto Modules into weights, the backtest engine,
performance metrics, baselines and reports (see docs/portfolio.md)."""

from .backtest import EXECUTIONS, BacktestResult, backtest, check_weights, simulate
from .baselines import (
    baselines,
    buy_and_hold,
    common_index,
    common_markets,
    constant_rebalanced,
    equal_weight_buy_and_hold,
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
    "drr",
    "equal_weight_buy_and_hold",
    "metrics_table",
    "performance",
    "simulate",
    "vote",
    "write_report",
]
