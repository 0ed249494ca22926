"""Live Trading Unit: target weights -> exchange orders, paper account, journaled loop.

See ``docs/live.md``. Paper trading is the default everywhere; real orders need ``live=True``,
API keys from the environment and an explicit confirmation.
"""

from .connect import live_exchange, markets_for, public_exchange, read_markets_file
from .decisions import demo_momentum, equal_weight, modules_decision
from .executor import ExecutionReport, Executor, Journal, Limits, find_order
from .feed import BarsNotReady, DemoBars, ExchangeBars, paper_feeder
from .loop import LiveTrader, RunReport, SystemClock, last_closed
from .orders import (
    OrderPlan,
    PlannedOrder,
    SkippedOrder,
    account_id,
    client_order_id,
    plan_orders,
    target_weights,
)
from .paper import PaperExchange

__all__ = [
    "BarsNotReady",
    "DemoBars",
    "ExchangeBars",
    "ExecutionReport",
    "Executor",
    "Journal",
    "Limits",
    "LiveTrader",
    "OrderPlan",
    "PaperExchange",
    "PlannedOrder",
    "RunReport",
    "SkippedOrder",
    "SystemClock",
    "target_weights",
    "account_id",
    "client_order_id",
    "demo_momentum",
    "equal_weight",
    "find_order",
    "last_closed",
    "live_exchange",
    "markets_for",
    "modules_decision",
    "paper_feeder",
    "plan_orders",
    "public_exchange",
    "read_markets_file",
]
