"""Decision functions for the live loop: ``decide(bar_time) -> {asset: weight}``.

``bar_time`` is the open time (index label) of the last **closed** bar; a decision may use
data with index ``<= bar_time`` only. Cash is implicit (``1 - sum(weights)``).

* :func:`portfolio_decision` - the real one: a :class:`cryptorl.portfolio.voting.Portfolio` of
  trained Crypto Modules, voted (paper eq. 2) on the latest closed bar.
* :func:`equal_weight` and :func:`demo_momentum` - PLACEHOLDERS for trying the execution
  machinery before trained Crypto Modules are available. They are not the paper's agents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from cryptorl.data.frames import to_utc_timestamp

from .feed import BarSource

Decide = Callable[[pd.Timestamp], dict[str, float]]
#: ``data(asset, bar_time) -> (market, metrics or None)`` with rows up to ``bar_time``.
DataFn = Callable[[str, pd.Timestamp], tuple[pd.DataFrame, pd.DataFrame | None]]


def equal_weight(assets: Sequence[str]) -> Decide:
    """PLACEHOLDER: 1/m of the portfolio in each asset at every interval (a constant-rebalanced portfolio)."""
    names = [a.upper() for a in assets]

    def decide(bar_time: pd.Timestamp) -> dict[str, float]:
        return {a: 1.0 / len(names) for a in names}

    return decide


def demo_momentum(assets: Sequence[str], bars: BarSource, lookback: int = 20) -> Decide:
    """PLACEHOLDER: each asset's "module" holds the crypto when its last close is above its
    ``lookback``-bar mean, else cash; the votes are averaged as in the paper's eq. 2."""
    names = [a.upper() for a in assets]

    def decide(bar_time: pd.Timestamp) -> dict[str, float]:
        t = to_utc_timestamp(bar_time)
        out = {}
        for a in names:
            close = bars.market(a, t, lookback)["close"].loc[:t]
            out[a] = (1.0 / len(names)) if close.iloc[-1] > close.mean() else 0.0
        return out

    return decide


def portfolio_decision(portfolio: Any, data: DataFn) -> Decide:
    """Decide with trained Crypto Modules: ``portfolio.decide`` on the last closed bar only.

    ``portfolio`` is a :class:`cryptorl.portfolio.voting.Portfolio` (or anything with
    ``assets`` and ``decide(markets, metrics, start, end) -> DataFrame[cash, *assets]``);
    ``data`` returns each asset's market and metrics frames. Rows after ``bar_time`` are cut
    off here, so nothing later than the closed bar can reach a module.
    """

    def decide(bar_time: pd.Timestamp) -> dict[str, float]:
        t = to_utc_timestamp(bar_time)
        markets, metrics = {}, {}
        for a in portfolio.assets:
            market, extra = data(a, t)
            markets[a] = market.loc[:t]
            metrics[a] = None if extra is None else extra.loc[:t]
            if markets[a].empty or markets[a].index[-1] != t:
                raise ValueError(f"[{a}] no bar at {t} in the data given to the live decision")
        weights = portfolio.decide(markets, metrics, t, t)
        row = weights.loc[t]
        return {a: float(row[a]) for a in portfolio.assets}

    return decide
