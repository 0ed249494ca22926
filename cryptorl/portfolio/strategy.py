"""One interface for every strategy, the baseline registry, and the loop that backtests them.

A strategy follows skfolio's estimator shape: ``fit`` on the bars up to ``end``, then ``weights``
for each decision time of a range, a frame indexed by bar closes with columns
``["cash", *assets]`` on the simplex, row t computed from data up to t only::

    strategy.fit(markets, metrics, end=train_end)
    w = strategy.weights(markets, metrics, start=start, end=end)

The voted Crypto Modules (:class:`cryptorl.portfolio.Portfolio`), the forecasters and allocators
(``agents.base.PortfolioAgent``), every baseline (:class:`Baseline`) and a frame of weights
computed elsewhere (:class:`FixedWeights`) all follow it, so :func:`backtest_strategies` runs any
list of them on the same data, fee and execution.

A baseline is one class in one file: subclass :class:`Baseline`, give it a ``key`` (its name in an
evaluation protocol's ``baselines``), a :meth:`~Baseline.label` and a :meth:`~Baseline.rule`, and
decorate it with :func:`register_baseline`; importing the file makes it available by its key
(the built-in ones are in :mod:`cryptorl.portfolio.baselines`)::

    @register_baseline
    class AllCash(Baseline):
        key = "all_cash"

        def label(self) -> str:
            return "All cash"

        def rule(self, markets, assets, start, end):
            idx = common_index(markets, assets, start, end)
            return pd.DataFrame({"cash": 1.0, **{a: 0.0 for a in assets}}, index=idx)
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import pandas as pd

from cryptorl.data.frames import to_utc_timestamp

from .backtest import BacktestResult, backtest, check_weights

Markets = Mapping[str, pd.DataFrame]
MetricsMap = Mapping[str, "pd.DataFrame | None"] | None


@runtime_checkable
class Strategy(Protocol):
    """What :func:`backtest_strategies` needs: a ``name``, ``fit`` then ``weights`` (see the module docstring)."""

    name: str

    def fit(self, market: Markets, metrics: MetricsMap = None, *, end=None) -> Strategy: ...

    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame: ...


class FixedWeights:
    """A strategy whose weights were computed elsewhere (a CSV, a stitched walk-forward, voted
    decisions already made): ``fit`` does nothing, ``weights`` returns the rows in ``[start, end]``."""

    def __init__(self, name: str, weights: pd.DataFrame):
        self.name = str(name)
        self.frame = check_weights(weights, what=f"the weights of {self.name!r}")

    def fit(self, market: Markets, metrics: MetricsMap = None, *, end=None) -> FixedWeights:
        return self

    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        s, e = to_utc_timestamp(start), to_utc_timestamp(end)
        w = self.frame
        return w.loc[(w.index >= s if s is not None else True) & (w.index <= e if e is not None else True)]

    def __repr__(self) -> str:
        return f"FixedWeights({self.name!r}, {len(self.frame)} rows)"


class Baseline(ABC):
    """A rule that learns nothing: weights at t from the markets' closes up to t.

    Class attributes: ``key`` (its name in a protocol's ``baselines`` and in :data:`BASELINES`),
    ``default`` (its parameter when none is given; ``None``: it takes none), ``always`` (an
    evaluation runs it even when the protocol does not name it), ``per_asset`` (one strategy for
    each asset, such as buy-and-hold of each) and ``multi_asset`` (on a single asset it equals
    that asset's buy-and-hold, so :func:`make_baselines` leaves it out with ``distinct=True``).
    """

    key: ClassVar[str]
    default: ClassVar[Any] = None
    always: ClassVar[bool] = False
    per_asset: ClassVar[bool] = False
    multi_asset: ClassVar[bool] = False

    def __init__(self, param: Any = None, *, assets: Sequence[str] | None = None, interval: str = "1d"):
        self.param = self.default if param is None else self.check(param)
        self.assets = None if assets is None else list(assets)
        self.interval = interval
        self.fit_end: pd.Timestamp | None = None

    @classmethod
    def check(cls, param: Any) -> Any:
        """The parameter, checked (``ValueError`` saying what is wrong); override to check yours."""
        return param

    @abstractmethod
    def label(self) -> str:
        """The strategy's name in reports (one place for it)."""

    @abstractmethod
    def rule(self, markets: Markets, assets: list[str], start, end) -> pd.DataFrame:
        """Weights ``["cash", *assets]`` for the common bars of ``assets`` in ``[start, end]``."""

    @property
    def name(self) -> str:
        return self.label()

    def fit(self, market: Markets, metrics: MetricsMap = None, *, end=None) -> Baseline:
        """Nothing to learn: remembers the assets (every market's, unless given) and ``end``."""
        if self.assets is None:
            self.assets = list(market)
        self.fit_end = to_utc_timestamp(end)
        return self

    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        return self.rule(market, list(market) if self.assets is None else self.assets, start, end)

    @classmethod
    def instances(cls, assets: Sequence[str], param: Any = None, *, interval: str = "1d") -> list[Baseline]:
        """The strategies of this baseline on ``assets``: one, or one per asset when ``per_asset``."""
        if cls.per_asset:
            return [cls(param, assets=[a], interval=interval) for a in assets]
        return [cls(param, assets=list(assets), interval=interval)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param!r}, assets={self.assets})"


BASELINES: dict[str, type[Baseline]] = {}


def register_baseline(cls: type[Baseline]) -> type[Baseline]:
    """Make ``cls`` available by its ``key`` (a class decorator); a second class with a key is refused."""
    key = getattr(cls, "key", None)
    if not isinstance(key, str) or not key:
        raise ValueError(f"{cls.__name__} needs a class attribute key (its name in a protocol)")
    if key in BASELINES and BASELINES[key] is not cls:
        raise ValueError(f"a baseline is already registered as {key!r}: {BASELINES[key].__name__}")
    BASELINES[key] = cls
    return cls


def make_baselines(
    assets: Sequence[str],
    params: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    interval: str = "1d",
    distinct: bool = False,
) -> list[Baseline]:
    """The registered baselines on ``assets``, in the order they were registered.

    ``params``: key -> parameter (``None`` or ``True``: its default) of the baselines to make, or
    their keys; ``None`` makes those marked ``always``. ``distinct``: leave out the ``multi_asset``
    ones when there is a single asset (they would repeat its buy-and-hold).
    """
    if params is None:
        params = {k: None for k, cls in BASELINES.items() if cls.always}
    elif not isinstance(params, Mapping):
        params = dict.fromkeys(params)
    unknown = [k for k in params if k not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {', '.join(BASELINES)}")
    out: list[Baseline] = []
    for key, cls in BASELINES.items():
        if key not in params or (distinct and cls.multi_asset and len(assets) < 2):
            continue
        param = params[key]
        out += cls.instances(assets, None if param is True else param, interval=interval)
    return out


@dataclass
class StrategyRun:
    """One strategy's weights and backtest (its ``exception`` and no result when it failed)."""

    strategy: Any
    weights: pd.DataFrame | None
    result: BacktestResult | None
    seconds: float
    exception: Exception | None = None

    @property
    def error(self) -> str | None:
        """``"Type: message"`` of the failure, or None."""
        return None if self.exception is None else f"{type(self.exception).__name__}: {self.exception}"


def backtest_strategies(
    strategies: Iterable[Strategy],
    markets: Markets,
    metrics: MetricsMap = None,
    *,
    interval: str,
    start,
    end,
    fit_end=None,
    fee: float = 0.001,
    slippage: float = 0.0,
    execution: str = "close",
    keep_going: bool = False,
    on_start=None,
) -> dict[str, StrategyRun]:
    """Fit every strategy on the bars up to ``fit_end``, take its weights for ``[start, end]`` and
    backtest them all with the same fee, slippage and execution; ``{name: StrategyRun}`` in order.

    Two strategies with one name are refused. ``keep_going``: a strategy that raises is kept as a
    run with its ``error`` (the others still run) instead of stopping the loop. ``on_start``: called
    with each strategy's name before it runs (a progress bar's hook).
    """
    strategies = list(strategies)
    names = [str(s.name) for s in strategies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two strategies are named {twice[0]!r}: give each a name of its own")
    out: dict[str, StrategyRun] = {}
    for name, strategy in zip(names, strategies):
        if on_start is not None:
            on_start(name)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                strategy.fit(markets, metrics, end=fit_end)
                w = strategy.weights(markets, metrics, start=start, end=end)
            w = check_weights(w, interval, what=f"the weights of {name!r}")
            res = backtest(w, markets, interval=interval, fee=fee, slippage=slippage, execution=execution)
        except Exception as exc:
            if not keep_going:
                raise
            out[name] = StrategyRun(strategy, None, None, time.perf_counter() - t0, exc)
            continue
        out[name] = StrategyRun(strategy, w, res, time.perf_counter() - t0)
    return out


__all__ = [
    "BASELINES",
    "Baseline",
    "FixedWeights",
    "Strategy",
    "StrategyRun",
    "backtest_strategies",
    "make_baselines",
    "register_baseline",
]
