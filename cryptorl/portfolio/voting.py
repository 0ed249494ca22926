"""Voting Crypto Modules into portfolio weights (paper eq. 1-2) and the pluggable portfolio.

Each Crypto Module (CM) i says ``p_t^i = (cash, crypto)`` on the 2-simplex. With m CMs the
portfolio holds crypto i at ``p_t^i[crypto] / m`` and cash at ``sum_i p_t^i[cash] / m``. Adding,
removing or replacing a CM changes only m: the others are neither retrained nor re-run
differently.

A :class:`Portfolio` is a :class:`~cryptorl.portfolio.strategy.Strategy`: its modules come
trained, so ``fit`` does nothing and ``weights`` is :meth:`Portfolio.decide`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from cryptorl.data.frames import to_utc_timestamp

from .backtest import BacktestResult, backtest, check_weights


@runtime_checkable
class CryptoModuleLike(Protocol):
    """What the portfolio needs from a Crypto Module.

    ``data_range``: the span of bars the module can decide on. An optional ``train_end``
    attribute (Timestamp) makes the portfolio refuse backtests that start on or before it.
    ``decide_range`` returns one row per market bar in ``[start, end]``, columns
    ``["cash", "crypto"]`` on the simplex; row t uses data up to t only.
    """

    asset: str
    interval: str
    data_range: tuple[pd.Timestamp, pd.Timestamp]

    def decide_range(
        self, market: pd.DataFrame, metrics: pd.DataFrame | None, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame: ...


def _check_decision(asset: str, frame: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"[{asset}] decisions must be a DataFrame, got {type(frame).__name__}")
    cols = [str(c) for c in frame.columns]
    if sorted(cols) != ["cash", "crypto"]:
        raise ValueError(f"[{asset}] decisions must have columns ['cash', 'crypto'], got {cols}")
    return check_weights(frame, what=f"[{asset}] decisions")[["cash", "crypto"]]


def vote(decisions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Portfolio weights from per-asset decisions (paper eq. 2).

    ``decisions``: asset -> DataFrame ``[cash, crypto]`` (all on the same decision times).
    Returns a DataFrame with columns ``["cash", *assets]`` (in the mapping's order).
    """
    if not decisions:
        raise ValueError("vote() needs at least one module's decisions")
    checked = {str(a): _check_decision(str(a), f) for a, f in decisions.items()}
    first_asset, first = next(iter(checked.items()))
    for asset, frame in checked.items():
        if not frame.index.equals(first.index):
            diff = frame.index.symmetric_difference(first.index)
            raise ValueError(
                f"decision times differ between {first_asset} and {asset} "
                f"({len(first)} vs {len(frame)} rows; first difference at {diff[0] if len(diff) else '?'})"
            )
    m = len(checked)
    cash = np.sum([f["cash"].to_numpy() for f in checked.values()], axis=0) / m
    out = pd.DataFrame({"cash": cash}, index=first.index)
    for asset, frame in checked.items():
        out[asset] = frame["crypto"].to_numpy() / m
    return out


class Portfolio:
    """A set of Crypto Modules, one per asset, voted into weights.

    ``interval``: the portfolio's bar size (default: the first module's). ``start``/``end``:
    an optional backtest range every module must cover (also the default range of
    :meth:`decide`). ``name``: the strategy's name in reports.
    """

    def __init__(
        self,
        modules: Iterable[CryptoModuleLike] = (),
        *,
        interval: str | None = None,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        name: str = "CryptoRLPM",
    ):
        self.name = name
        self._interval = interval
        self.start, self.end = to_utc_timestamp(start), to_utc_timestamp(end)
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"portfolio range ends ({self.end}) before it starts ({self.start})")
        self._modules: dict[str, CryptoModuleLike] = {}
        for module in modules:
            self.add(module)

    # -- the set of modules ---------------------------------------------------------------
    @property
    def interval(self) -> str | None:
        return self._interval

    @property
    def assets(self) -> list[str]:
        return list(self._modules)

    @property
    def modules(self) -> dict[str, CryptoModuleLike]:
        return dict(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __contains__(self, asset: object) -> bool:
        return asset in self._modules

    def __iter__(self) -> Iterator[CryptoModuleLike]:
        return iter(self._modules.values())

    def __repr__(self) -> str:
        return f"Portfolio({self.assets}, interval={self._interval!r})"

    def _check(self, module: CryptoModuleLike, start=None, end=None) -> None:
        missing = [a for a in ("asset", "interval", "data_range", "decide_range") if not hasattr(module, a)]
        if missing or not callable(getattr(module, "decide_range", None)):
            raise TypeError(
                f"{type(module).__name__} is not a Crypto Module: it lacks {missing or ['a callable decide_range']} "
                "(needs asset, interval, data_range, decide_range)"
            )
        asset = module.asset
        if self._interval is not None and module.interval != self._interval:
            raise ValueError(
                f"CM for {asset} runs on {module.interval} bars; this portfolio runs on {self._interval} bars"
            )
        self._check_range(module, start if start is not None else self.start, end if end is not None else self.end)

    @staticmethod
    def _check_range(module: CryptoModuleLike, start, end) -> None:
        try:
            lo, hi = (to_utc_timestamp(t) for t in module.data_range)
        except (TypeError, ValueError):
            raise ValueError(f"CM for {module.asset} has an unreadable data_range {module.data_range!r}") from None
        if (start is not None and start < lo) or (end is not None and end > hi):
            raise ValueError(f"CM for {module.asset} covers {lo} .. {hi}, not the requested range {start} .. {end}")
        train_end = to_utc_timestamp(getattr(module, "train_end", None))
        if train_end is not None and start is not None and start <= train_end:
            raise ValueError(
                f"CM for {module.asset} was trained on data up to {train_end}; a backtest from {start} "
                "would look ahead (start after the training range)"
            )

    def add(self, module: CryptoModuleLike) -> Portfolio:
        """Plug in a module (refused if its asset is already in, or its interval/range does not fit)."""
        self._check(module)
        if module.asset in self._modules:
            raise ValueError(f"the portfolio already has a CM for {module.asset}; use replace()")
        if self._interval is None:
            self._interval = module.interval
        self._modules[module.asset] = module
        return self

    def remove(self, asset: str) -> CryptoModuleLike:
        """Unplug the module of ``asset`` and return it."""
        if asset not in self._modules:
            raise KeyError(f"no CM for {asset} in this portfolio (it holds {self.assets})")
        return self._modules.pop(asset)

    def replace(self, asset: str, module: CryptoModuleLike) -> CryptoModuleLike:
        """Swap the module of ``asset`` for ``module`` (same place in the order); returns the old one.

        Nothing changes when ``module`` is refused.
        """
        if asset not in self._modules:
            raise KeyError(f"no CM for {asset} in this portfolio (it holds {self.assets})")
        self._check(module)
        if module.asset != asset and module.asset in self._modules:
            raise ValueError(f"the portfolio already has a CM for {module.asset}")
        old = self._modules[asset]
        self._modules = {
            (module.asset if a == asset else a): (module if a == asset else m) for a, m in self._modules.items()
        }
        return old

    # -- deciding and backtesting ----------------------------------------------------------
    def _range(self, start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
        s = to_utc_timestamp(start) if start is not None else self.start
        e = to_utc_timestamp(end) if end is not None else self.end
        if s is None or e is None:
            raise ValueError("give start and end (or set them on the Portfolio)")
        if e < s:
            raise ValueError(f"range ends ({e}) before it starts ({s})")
        return s, e

    def decisions(
        self,
        markets: Mapping[str, pd.DataFrame],
        metrics: Mapping[str, pd.DataFrame | None] | None = None,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
    ) -> dict[str, pd.DataFrame]:
        """Each module's ``[cash, crypto]`` decisions on its market's bars in ``[start, end]``."""
        if not self._modules:
            raise ValueError("the portfolio has no CMs")
        s, e = self._range(start, end)
        for module in self._modules.values():
            self._check_range(module, s, e)
        out = {}
        for asset, module in self._modules.items():
            if asset not in markets:
                raise ValueError(f"no market given for {asset}; markets: {sorted(markets)}")
            market = markets[asset]
            frame = _check_decision(asset, module.decide_range(market, (metrics or {}).get(asset), s, e))
            expected = market.index[(market.index >= s) & (market.index <= e)]
            if not frame.index.equals(expected):
                raise ValueError(
                    f"CM for {asset} returned {len(frame)} decision(s); expected one per market bar in "
                    f"{s} .. {e} ({len(expected)})"
                )
            out[asset] = frame
        return out

    def decide(
        self,
        markets: Mapping[str, pd.DataFrame],
        metrics: Mapping[str, pd.DataFrame | None] | None = None,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Voted weights ``["cash", *assets]`` for every bar in ``[start, end]``."""
        return vote(self.decisions(markets, metrics, start, end))

    # -- the Strategy interface ------------------------------------------------------------
    def fit(self, market=None, metrics=None, *, end=None) -> Portfolio:
        """Nothing to fit: the modules come trained (a backtest inside a module's training range
        is refused when the weights are asked for)."""
        return self

    def weights(self, market, metrics=None, *, start=None, end=None) -> pd.DataFrame:
        """:meth:`decide` with keyword arguments, as every strategy takes them."""
        return self.decide(market, metrics, start, end)

    def backtest(
        self,
        markets: Mapping[str, pd.DataFrame],
        metrics: Mapping[str, pd.DataFrame | None] | None = None,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        **kwargs,
    ) -> BacktestResult:
        """:meth:`decide` then :func:`cryptorl.portfolio.backtest.backtest` (kwargs: fee, slippage, execution, ...)."""
        return backtest(self.decide(markets, metrics, start, end), markets, interval=self._interval, **kwargs)
