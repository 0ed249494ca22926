"""Decision functions for the live loop: ``decide(bar_time) -> {asset: weight}``.

``bar_time`` is the open time (index label) of the last **closed** bar; a decision may use
data with index ``<= bar_time`` only. Cash is implicit (``1 - sum(weights)``).

* :func:`modules_decision` - the real one: trained Crypto Modules, one per asset, each deciding
  on the latest closed bar, voted into weights (paper eq. 2).
* :func:`equal_weight` and :func:`demo_momentum` - PLACEHOLDERS for trying the execution
  machinery before trained Crypto Modules are available. They are not the paper's agents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


def modules_decision(modules: Mapping[str, Any], data: DataFn) -> Decide:
    """Decide with trained Crypto Modules, voted into weights (paper eq. 2, :func:`~cryptorl.portfolio.voting.vote`).

    ``modules`` maps each asset to a Crypto Module (anything with ``decide_range(market,
    metrics, start, end) -> DataFrame[cash, crypto]``, e.g. ``agents.crypto_module.CryptoModule``);
    ``data(asset, bar_time)`` returns the asset's market and metrics frames with enough history
    for the module's observation window and DRU warm-up. Rows after ``bar_time`` are cut off
    here, so nothing later than the closed bar can reach a module.
    """
    from cryptorl.portfolio.voting import vote

    def decide(bar_time: pd.Timestamp) -> dict[str, float]:
        t = to_utc_timestamp(bar_time)
        decisions = {}
        for asset, module in modules.items():
            market, metrics = data(asset, t)
            market = market.loc[:t]
            metrics = None if metrics is None else metrics.loc[:t]
            if market.empty or market.index[-1] != t:
                raise ValueError(f"[{asset}] no bar at {t} in the data given to the live decision")
            # a range of the last two bars (an environment needs start < end); the row at t is used
            frame = module.decide_range(market, metrics, market.index[-2] if len(market) > 1 else t, t)
            if t not in frame.index:
                raise ValueError(f"[{asset}] the Crypto Module gave no decision at {t} (too little history before it?)")
            decisions[asset] = frame.loc[[t], ["cash", "crypto"]]
        row = vote(decisions).loc[t]
        return {a: float(row[a]) for a in modules}

    return decide
