"""Composing portfolios from saved Crypto Modules (the PAU's plug-in side, paper section 3.2.2).

Each crypto's CM is trained once and saved in the model store; any portfolio is then a set of
those CMs voted together (:class:`cryptorl.portfolio.Portfolio`, paper eq. 2). This module loads
them from the store and picks the out-of-sample backtest range::

    from agents.portfolio import backtest_range, load_module, load_portfolio

    portfolio = load_portfolio(["BTC", "ETH", "LINK"], "models", "1d")   # the store's current CMs
    portfolio.add(load_module("BNB", "models", "1d"))                     # plug in
    portfolio.remove("ETH")                                               # unplug
    portfolio.replace("LINK", CryptoModule.load(some_version_folder))     # replace
    start, end = backtest_range(portfolio, markets)                       # after every train_end
    weights = portfolio.decide(markets, metrics, start, end)

The other CMs are never retrained or re-run differently: only m, the number of voters, changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from cryptorl.data.frames import to_utc_timestamp
from cryptorl.modelstore import ModelStore, ModelStoreError
from cryptorl.portfolio import Portfolio, common_index

from .crypto_module import CryptoModule


class MissingModuleError(ModelStoreError):
    """The model store has no promoted CM for some assets at an interval."""

    def __init__(self, assets: list[str], interval: str, root: Path):
        self.assets, self.interval, self.root = list(assets), interval, root
        which = self.assets[0] if len(self.assets) == 1 else "<ASSET>"
        super().__init__(
            f"no trained {interval} Crypto Module for {', '.join(self.assets)} in the model store {root} "
            f"(train {'one' if len(self.assets) == 1 else 'each'}: python -m experiments.train_cm --asset {which} "
            f"--interval {interval} --models {root})"
        )


def _store(models: ModelStore | str | Path | None) -> ModelStore:
    return models if isinstance(models, ModelStore) else ModelStore(models)


def missing_modules(
    assets: Iterable[str], models: ModelStore | str | Path | None = None, interval: str = "1d"
) -> list[str]:
    """The assets (upper-cased) that have no promoted CM at ``interval`` in the store."""
    store = _store(models)
    return [a.upper() for a in assets if store.current(a.upper(), interval) is None]


def load_module(asset: str, models: ModelStore | str | Path | None = None, interval: str = "1d") -> CryptoModule:
    """The store's current (promoted) CM for ``asset`` at ``interval``, verified on loading.

    Raises :class:`MissingModuleError` when there is none, :class:`ModelStoreError` when the saved
    files do not check out.
    """
    store = _store(models)
    folder = store.current(asset.upper(), interval)
    if folder is None:
        raise MissingModuleError([asset.upper()], interval, store.root)
    return CryptoModule.load(folder)


def load_portfolio(
    assets: Iterable[str], models: ModelStore | str | Path | None = None, interval: str = "1d", *, start=None, end=None
) -> Portfolio:
    """A :class:`Portfolio` of the store's current CMs for ``assets`` on ``interval`` bars.

    ``start``/``end`` (optional) is the range every CM must fit, checked as each is plugged in
    (see :meth:`Portfolio.add`).
    """
    store = _store(models)
    assets = [a.upper() for a in assets]
    if not assets:
        raise ValueError("a portfolio needs at least one asset")
    dupes = sorted({a for a in assets if assets.count(a) > 1})
    if dupes:
        raise ValueError(f"asset(s) {dupes} given twice; a portfolio holds one CM per asset")
    missing = missing_modules(assets, store, interval)
    if missing:
        raise MissingModuleError(missing, interval, store.root)
    return Portfolio([load_module(a, store, interval) for a in assets], interval=interval, start=start, end=end)


def latest_train_end(portfolio: Portfolio) -> pd.Timestamp | None:
    """The last time any of the portfolio's CMs was fitted or selected on (None if unknown)."""
    ends = [to_utc_timestamp(getattr(m, "train_end", None)) for m in portfolio]
    ends = [t for t in ends if t is not None]
    return max(ends) if ends else None


def backtest_range(
    portfolio: Portfolio,
    markets: Mapping[str, pd.DataFrame],
    start=None,
    end=None,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The backtest range: by default from the first bar every market shares after the latest
    ``train_end`` of the CMs, to the last bar they share. ``start``/``end`` override either end
    (a start inside a CM's training range is refused later by the portfolio)."""
    if not len(portfolio):
        raise ValueError("the portfolio has no CMs")
    idx = common_index(markets, portfolio.assets)
    s, e = to_utc_timestamp(start), to_utc_timestamp(end)
    if s is None:
        latest = latest_train_end(portfolio)
        after = idx[idx > latest] if latest is not None else idx
        if e is not None:
            after = after[after <= e]
        if len(after) < 2:
            raise ValueError(
                f"the data of {portfolio.assets} ({idx[0]} .. {idx[-1]}) has fewer than two bars after the "
                f"CMs' training (latest train_end {latest}{'' if e is None else f', until {e}'}); load later data"
            )
        s = after[0]
    if e is None:
        e = idx[-1]
    if e <= s:
        raise ValueError(f"the backtest range ends ({e}) before it starts ({s})")
    return s, e


__all__ = [
    "MissingModuleError",
    "backtest_range",
    "latest_train_end",
    "load_module",
    "load_portfolio",
    "missing_modules",
]
