"""Portfolio side of the PAU: voting Crypto Modules into weights, the backtest engine,
performance metrics, the strategy interface, baselines and reports (see docs/portfolio.md)."""

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
from .report import metrics_table, write_report
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
