"""One rebalancing step of the shared accounting (``docs/portfolio.md``, "Accounting").

Weights are ``(cash, asset_1, ..., asset_k)`` on the simplex; ``drifted`` are the weights the
portfolio holds after prices moved since the last rebalance (start: all cash, value 1). The
cost rate ``c`` is the fee plus the slippage rate.

``execution="close"``: the decision made on data up to bar t's close trades at that close::

    mu  = 1 - c * sum_risky |w - w'|
    V'  = V * mu * (w . y),        y = close_{t+1} / close_t (cash 1)
    fee = V * (1 - mu),            growth (exp of the reward) = mu * (w . y)

``execution="next_open"``: the decision made at close t trades at bar t+1's open::

    V_open = V * (w' . y_gap),     y_gap = open_{t+1} / close_t; w' drifts to the open
    mu     = 1 - c * sum_risky |w - w'_open|
    V'     = V_open * mu * (w . y_intra),   y_intra = close_{t+1} / open_{t+1}
    fee    = V_open * (1 - mu),   growth = (w' . y_gap) * mu * (w . y_intra)

Two forms compute the same thing: ``one_asset_*`` take the risky weight of a single asset as
a scalar (plain floats for the single environment, NumPy arrays over many environments for the
batched one, with identical arithmetic) and ``multi_asset_*`` take weight vectors.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cryptorl.portfolio.costs import EXECUTIONS, check_execution, cost_rate


class Step(NamedTuple):
    """Result of one step: new value, drifted weights after the step, fee, turnover, growth.

    (The one-asset functions return the same five fields as a plain tuple: they run in every
    single-environment step, where building a named tuple would cost more than the arithmetic.)
    """

    value: float | np.ndarray
    drifted: float | np.ndarray
    fee: float | np.ndarray
    turnover: float | np.ndarray
    growth: float | np.ndarray  # V'/V; the RL reward is log(growth)


def one_asset_close(value, drifted, target, y, cost) -> tuple:
    """``execution="close"`` for one risky asset: weights are the risky share (cash = 1 - it).

    Returns ``(value, drifted, fee, turnover, growth)`` as a plain tuple (see :class:`Step`).
    """
    turnover = abs(target - drifted)
    mu = 1.0 - cost * turnover
    held = target * y
    g = (1.0 - target) + held
    return value * mu * g, held / g, value * (1.0 - mu), turnover, mu * g


def one_asset_next_open(value, drifted, target, y_gap, y_intra, cost) -> tuple:
    """``execution="next_open"`` for one risky asset; returns the tuple of :func:`one_asset_close`."""
    held_gap = drifted * y_gap
    g_gap = (1.0 - drifted) + held_gap
    v_open = value * g_gap
    turnover = abs(target - held_gap / g_gap)
    mu = 1.0 - cost * turnover
    held = target * y_intra
    g = (1.0 - target) + held
    return v_open * mu * g, held / g, v_open * (1.0 - mu), turnover, g_gap * mu * g


def differential_sharpe(r, a, b, eta: float, floor):
    """Moody & Saffell's differential Sharpe ratio of the step return ``r``: how much this step
    raises an exponential moving Sharpe ratio whose first and second moments ``a`` and ``b`` it
    updates with rate ``eta``::

        D = (b * (r - a) - a * (r^2 - b) / 2) / (b - a^2)^(3/2),   a += eta (r - a),   b += eta (r^2 - b)

    The moving variance ``b - a^2`` is floored at ``floor`` (a bar out of the market drives it to
    0). Scalars or arrays; returns ``(D, a', b')``.
    """
    da = r - a
    db = r * r - b
    var = np.maximum(b - a * a, floor)
    return (b * da - 0.5 * a * db) / var**1.5, a + eta * da, b + eta * db


def drawdown_rise(value, peak, drawdown):
    """The new drawdown from the running peak after a step to ``value``, how much it rose, and
    the new peak: ``peak' = max(peak, value)``, ``dd' = 1 - value / peak'``, ``rise = max(dd' - dd, 0)``.
    Scalars or arrays; returns ``(dd', rise, peak')``."""
    peak = np.maximum(peak, value)
    new = 1.0 - value / peak
    return new, np.maximum(new - drawdown, 0.0), peak


def multi_asset_close(value: float, drifted: np.ndarray, target: np.ndarray, y: np.ndarray, cost: float) -> Step:
    """``execution="close"`` for weight vectors (cash first); ``y`` holds 1 for cash."""
    turnover = float(np.abs(target[1:] - drifted[1:]).sum())
    mu = 1.0 - cost * turnover
    g = float(target @ y)
    return Step(value * mu * g, target * y / g, value * (1.0 - mu), turnover, mu * g)


def multi_asset_next_open(
    value: float, drifted: np.ndarray, target: np.ndarray, y_gap: np.ndarray, y_intra: np.ndarray, cost: float
) -> Step:
    """``execution="next_open"`` for weight vectors (cash first); cash entries of y are 1."""
    g_gap = float(drifted @ y_gap)
    v_open = value * g_gap
    turnover = float(np.abs(target[1:] - (drifted * y_gap / g_gap)[1:]).sum())
    mu = 1.0 - cost * turnover
    g = float(target @ y_intra)
    return Step(v_open * mu * g, target * y_intra / g, v_open * (1.0 - mu), turnover, g_gap * mu * g)


__all__ = [
    "EXECUTIONS",
    "Step",
    "check_execution",
    "cost_rate",
    "multi_asset_close",
    "multi_asset_next_open",
    "one_asset_close",
    "one_asset_next_open",
]
