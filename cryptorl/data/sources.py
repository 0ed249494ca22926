"""The data sources the commands name (``--source``, ``--metrics``): a registry.

A source fills the :class:`~cryptorl.data.store.DataStore` with bars, metrics or both for some
assets and a range of bars; :func:`cryptorl.data.load_data` then reads the store (the demo market
is built in memory instead). Each command takes its choices and help from :data:`SOURCES`:
``experiments.fetch_data --source``, ``train_cm --source`` and ``--metrics``.

A source is written ``name`` or, when it takes an argument, ``name:ARG`` (``csv:PATH``). Adding
one is one file that calls :func:`register_source` with a ``prepare`` function: it checks the
request and reads what it can without writing anything (a user error is a ``ValueError``), and
returns the function that writes into the store::

    from cryptorl.data.sources import Fetched, register_source

    def prepare(request):
        frames = {a: read_my_api(a, request.interval, request.start, request.end) for a in request.assets}

        def write(store):
            for asset, market in frames.items():
                store.upsert_market(asset, request.interval, market, "myapi", replace=request.replace)
            return Fetched()

        return write

    register_source("myapi", "bars from my API", prepare=prepare)

The network clients (ccxt, sanpy, Coin Metrics) are imported only when their source is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .store import DataStore

KINDS = ("market", "metrics")


def _quiet(text: str) -> None:
    """Notes for the user are dropped unless the caller passes ``say``."""


@dataclass(frozen=True)
class FetchRequest:
    """What a command asks of a source: fill the store for ``assets`` at ``interval`` between
    ``start`` and ``end`` (bar open times, both included; None: the source's own bounds).

    ``argument``: the text after ``name:`` (``csv:PATH`` -> ``PATH``). ``options``: the source's
    own options (``quote``, ``metrics``, ``slugs``, ``include``, ...; a source ignores the
    others). ``say`` prints a note for the user (a resampled file, a missing API key).
    """

    assets: tuple[str, ...]
    interval: str = "1d"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    argument: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = True
    replace: bool = False
    say: Callable[[str], None] = _quiet


@dataclass
class Fetched:
    """What a source wrote: asset -> metric names stored, asset -> metrics the source refused."""

    metrics: dict[str, list[str]] = field(default_factory=dict)
    refused: dict[str, list[str]] = field(default_factory=dict)
    items: list[Any] = field(default_factory=list)  # a file import's items (cryptorl.data.files), for its summary


Writer = Callable[[DataStore], Fetched]


@dataclass(frozen=True)
class DataSource:
    """One registered source (see the module docstring).

    ``serves``: what it provides, ``"market"`` bars and/or ``"metrics"``. ``argument``: the
    placeholder of its ``name:ARG`` form (``"PATH"``), None for a plain name. ``prepare``: the
    request -> the store writer (None: the source only reads, like ``store``). ``needs_range``:
    a download, whose range defaults to the demo range when none is given (a file source reads
    what its files hold). ``claims``: other names that mean this source with the name as its
    argument (the exchange source takes every ccxt exchange id).
    """

    name: str
    help: str
    serves: tuple[str, ...] = ("market",)
    prepare: Callable[[FetchRequest], Writer] | None = None
    argument: str | None = None
    needs_range: bool = True
    claims: Callable[[str], bool] | None = None

    @property
    def spec(self) -> str:
        """How the source is written: ``demo``, ``csv:PATH``."""
        return f"{self.name}:{self.argument}" if self.argument else self.name


SOURCES: dict[str, DataSource] = {}


def register_source(
    name: str,
    help: str,
    *,
    serves: Sequence[str] = ("market",),
    prepare: Callable[[FetchRequest], Writer] | None = None,
    argument: str | None = None,
    needs_range: bool = True,
    claims: Callable[[str], bool] | None = None,
    replace: bool = False,
) -> DataSource:
    """Make ``name`` a source every command accepts; a name already taken is refused unless ``replace``."""
    if not name.isidentifier():
        raise ValueError(f"a source's name must be a plain identifier such as 'demo', got {name!r}")
    if name in SOURCES and not replace:
        raise ValueError(f"a data source named {name!r} is registered already (replace=True to replace it)")
    unknown = [k for k in serves if k not in KINDS]
    if unknown or not serves:
        raise ValueError(f"a source serves {' and/or '.join(KINDS)}, got {list(serves)}")
    SOURCES[name] = source = DataSource(name, help, tuple(serves), prepare, argument, needs_range, claims)
    return source


def sources(serves: str | None = None, *, fills: bool = False, local: bool = False) -> list[DataSource]:
    """The registered sources that serve ``serves``; with ``fills`` only those that write a store,
    with ``local`` only those :func:`cryptorl.data.load_data` reads without a download."""
    return [
        s
        for s in SOURCES.values()
        if (serves is None or serves in s.serves)
        and (not fills or s.prepare is not None)
        and (not local or not s.needs_range or s.name == "demo")
    ]


def describe(serves: str | None = None, *, fills: bool = False, local: bool = False) -> str:
    """``"demo (what it is), csv:PATH (...)"``: the choices as a command's help lists them."""
    return ", ".join(f"{s.spec} ({s.help})" for s in sources(serves, fills=fills, local=local))


def get_source(spec: str, *, serves: str | None = None, fills: bool = False) -> tuple[DataSource, str]:
    """``(source, argument)`` of a source written ``name`` or ``name:ARG``; a ValueError lists the
    choices for an unknown name (or one that does not serve ``serves`` / cannot fill a store)."""
    if not isinstance(spec, str):
        raise TypeError(f"a data source is a name such as 'demo', got {spec!r}")
    name, colon, argument = spec.partition(":")
    source = SOURCES.get(name)
    if source is None:
        claimed = [s for s in SOURCES.values() if s.claims is not None and not colon and s.claims(name)]
        if claimed:
            source, argument = claimed[0], name
    choices = sources(serves, fills=fills)
    if source is not None and serves == "market" and "market" not in source.serves:
        raise ValueError(
            f"{source.name} serves {' and '.join(source.serves)}, not prices: load the bars from another source "
            f"and add the metrics to the store first (on the command line: --metrics {spec})"
        )
    if source is None or source not in choices:
        raise ValueError(f"unknown source {spec!r}: use one of {', '.join(s.spec for s in choices)}")
    if source.argument and colon and not argument:
        raise ValueError(f"source '{name}:' needs a {source.argument.lower()}, e.g. '{name}:{source.argument}'")
    if source.argument is None and colon:
        raise ValueError(f"source {name!r} takes no argument, got {spec!r}")
    return source, argument


# -- the built-in sources ----------------------------------------------------------------------------
def _prepare_demo(request: FetchRequest) -> Writer:
    from .demo import demo_data

    frames = {a: demo_data(a, request.interval, request.start, request.end) for a in request.assets}

    def write(store: DataStore) -> Fetched:
        out = Fetched()
        for asset, (market, metrics) in frames.items():
            store.upsert_market(asset, request.interval, market, "demo", replace=request.replace)
            store.upsert_metrics(asset, request.interval, metrics, "demo", replace=request.replace)
            out.metrics[asset] = list(metrics.columns)
        return out

    return write


def _prepare_csv(request: FetchRequest) -> Writer:
    """Read and validate the files of ``csv:PATH`` (nothing is written until the writer runs)."""
    from .files import read_path, store_files

    if not request.argument:
        raise ValueError("source 'csv:' needs a path, e.g. csv:../shared/data/prices/daily")
    path = Path(request.argument).expanduser()
    if not path.exists():
        raise ValueError(f"csv:{request.argument}: no such file or folder")
    opt = request.options
    items = read_path(
        path,
        assets=request.assets,
        interval=request.interval,
        progress=request.progress,
        start=request.start,
        end=request.end,
        outliers=opt.get("outliers", "warn"),
        include=opt.get("include"),
        exclude=opt.get("exclude"),
        allow_non_daily=bool(opt.get("allow_non_daily", False)),
        required=True,
    )
    if not items:
        raise ValueError(
            f"csv:{request.argument}: no {request.interval} files for {', '.join(request.assets)} found there"
        )
    empty = [i for i in items if i.kind == "market" and i.frame.empty]
    if empty:
        raise ValueError(
            f"csv:{request.argument}: {empty[0].path.name} has no bars in the range asked for "
            f"({request.start or '-'} .. {request.end or '-'})"
        )

    def write(store: DataStore) -> Fetched:
        store_files(items, store, progress=request.progress, replace=request.replace)
        out = Fetched(items=list(items))
        for item in items:
            if item.kind == "metrics":
                out.metrics.setdefault(item.asset, []).extend(item.frame.columns)
            if item.replaced:
                request.say(
                    f"{item.asset}: {item.path.name} replaced the {item.interval} {item.kind} stored from "
                    f"{', '.join(item.replaced)}"
                )
            if item.resampled_from:
                n = 0 if item.incomplete is None else len(item.incomplete)
                request.say(
                    f"{item.asset}: {item.path.name} resampled {item.resampled_from} -> {item.interval}; "
                    f"{n} bar(s) built from incomplete windows (exchange outages), {len(item.gaps)} gap(s)"
                )
            if item.skipped:
                by_reason: dict[str, list[str]] = {}
                for column, why in item.skipped.items():
                    by_reason.setdefault(why, []).append(column)
                left = "; ".join(f"{', '.join(cols)} ({why})" for why, cols in by_reason.items())
                request.say(f"{item.asset}: {item.path.name}: left out {left}")
        return out

    return write


def _is_ccxt_id(name: str) -> bool:
    import ccxt

    return name in ccxt.exchanges


def _prepare_exchange(request: FetchRequest) -> Writer:
    """The ccxt exchange, checked (a known id, the interval offered) before anything is written."""
    from .exchange import DEFAULT_EXCHANGE, DEFAULT_QUOTE, check_timeframe, fetch_market, make_exchange

    given = request.options.get("exchange")
    ex_id = request.argument or given or DEFAULT_EXCHANGE
    if given and request.argument and given != request.argument:
        raise ValueError(f"--source {request.argument} and --exchange {given} disagree")
    ex = make_exchange(ex_id)
    check_timeframe(ex, request.interval)
    quote = request.options.get("quote") or DEFAULT_QUOTE

    def write(store: DataStore) -> Fetched:
        for asset in request.assets:
            fetch_market(
                store,
                asset,
                request.interval,
                request.start,
                request.end,
                exchange=ex,
                quote=quote,
                progress=request.progress,
                replace=request.replace,
            )
        return Fetched()

    return write


def _prepare_binance(request: FetchRequest) -> Writer:
    return _prepare_exchange(FetchRequest(**{**request.__dict__, "argument": "binance"}))


def _metrics_writer(request: FetchRequest, fetch: Callable[..., Any]) -> Writer:
    """The writer of a metrics download: ``fetch(store, asset, **kw)`` per asset, with the request's
    metric names, progress and replace; its report's ``fetched`` and ``refused`` are kept."""

    def write(store: DataStore) -> Fetched:
        out = Fetched()
        kw = {"metrics": request.options.get("metrics"), "progress": request.progress, "replace": request.replace}
        for asset in request.assets:
            rep = fetch(store, asset, **kw)
            out.metrics[asset], out.refused[asset] = sorted(rep.fetched), sorted(rep.refused)
        return out

    return write


def _prepare_coinmetrics(request: FetchRequest) -> Writer:
    from .coinmetrics import API_KEY_ENV, fetch_metrics

    if not os.environ.get(API_KEY_ENV):
        request.say(f"{API_KEY_ENV} is not set: using the Coin Metrics community API (free daily data)")
    r = request
    return _metrics_writer(r, lambda st, a, **kw: fetch_metrics(st, a, r.start, r.end, interval=r.interval, **kw))


def _prepare_santiment(request: FetchRequest) -> Writer:
    from .santiment import API_KEY_ENV, fetch_metrics, slug_for

    slugs = dict(request.options.get("slugs") or {})
    for asset in request.assets:
        slug_for(asset, slugs)  # a ValueError for a ticker without a known slug
    if not os.environ.get(API_KEY_ENV):
        request.say(f"{API_KEY_ENV} is not set: Santiment serves only its free metrics")
    r = request
    return _metrics_writer(r, lambda st, a, **kw: fetch_metrics(st, a, r.interval, r.start, r.end, slugs=slugs, **kw))


register_source(
    "demo",
    "the built-in synthetic market and metrics, no network",
    serves=("market", "metrics"),
    prepare=_prepare_demo,
)
register_source(
    "store",
    "the SQLite stores filled by experiments.fetch_data",
    serves=("market", "metrics"),
    needs_range=False,
)
register_source(
    "csv",
    "import a file or folder: generic OHLCV CSV/Parquet, Binance klines (CSV or the monthly/daily ZIP dumps), "
    "freqtrade files (user_data/data/<exchange>/*.json or .feather), wide on-chain exports (Coin Metrics "
    "'BTC / Tx Cnt' tables and community CSVs, Messari, Etherscan; columns that are not daily observations are "
    "left out with the reason) and two-column metric series",
    serves=("market", "metrics"),
    prepare=_prepare_csv,
    argument="PATH",
    needs_range=False,
)
register_source("binance", "download the bars from Binance through ccxt", prepare=_prepare_binance)
register_source(
    "exchange",
    "download the bars through ccxt from exchange ID, binance when none is named; a ccxt id alone also works",
    prepare=_prepare_exchange,
    argument="ID",
    claims=_is_ccxt_id,
)
register_source(
    "santiment",
    "on-chain and social metrics through sanpy, with $SANPY_APIKEY or only the free ones",
    serves=("metrics",),
    prepare=_prepare_santiment,
)
register_source(
    "coinmetrics",
    "daily on-chain metrics from the Coin Metrics API, the keyless community endpoint unless $COINMETRICS_API_KEY is set",
    serves=("metrics",),
    prepare=_prepare_coinmetrics,
)

__all__ = [
    "SOURCES",
    "DataSource",
    "FetchRequest",
    "Fetched",
    "describe",
    "get_source",
    "register_source",
    "sources",
]
