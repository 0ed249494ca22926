"""Execution timings and trading costs: the one definition the backtest engine and the
environments share.

``execution``: ``"close"`` trades a decision at its bar's close, ``"next_open"`` at the next
bar's open. The cost rate ``c = fee + slippage`` is charged on the traded value; a full switch
(all cash to all crypto and back) trades twice the value, so ``c`` must stay below 0.5.
"""

from __future__ import annotations

import math
import numbers

EXECUTIONS = ("close", "next_open")
MAX_COST_RATE = 0.5  # fee + slippage must stay below this: a full switch trades 2x the value


def check_execution(execution: str) -> str:
    """``execution`` if it is one of :data:`EXECUTIONS`; a ValueError otherwise."""
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    return execution


def cost_rate(fee: float, slippage: float = 0.0) -> float:
    """The cost rate ``c = fee + slippage`` charged on traded value, checked: both finite and
    non-negative, their sum below :data:`MAX_COST_RATE`."""
    for name, rate in (("fee", fee), ("slippage", slippage)):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) or rate < 0:
            raise ValueError(f"{name} must be a rate in [0, {MAX_COST_RATE}) (0.001 = 0.1 %), got {rate!r}")
    if fee + slippage >= MAX_COST_RATE:
        raise ValueError(
            f"fee + slippage must stay below {MAX_COST_RATE} (a full switch trades 2x the value), got {fee + slippage!r}"
        )
    return float(fee) + float(slippage)


__all__ = ["EXECUTIONS", "MAX_COST_RATE", "check_execution", "cost_rate"]
