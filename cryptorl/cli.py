"""Small helpers shared by the ``python -m experiments.*`` commands."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import pandas as pd

# The demo market starts early enough to warm up the DRU's rolling windows (norm + PCA) before
# the paper's training range (October 2020) begins.
DEMO_START = "2020-03-01"
DEMO_END = "2022-09-30"


class UserError(Exception):
    """A problem with the command line, the data or the environment: one line, exit code 2."""


def one_line(exc: BaseException | str) -> str:
    """An exception's message (or a text) folded onto one line."""
    return " ".join(str(exc).split())


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors (unknown flag, missing value, a value of the wrong type or not among
    the choices) are one line ``prog: error: ... (see --help)`` and exit code 2, like every other
    user error of the commands."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` with ``(default: X)`` after each option whose help does not already say its
    default (and whose default is not None or empty): each default is shown once."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, [], "", argparse.SUPPRESS) or action.nargs == 0:
            return text
        return f"{text} (default: %(default)s)"


def command(name: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """The one exit path of every ``python -m experiments.*`` command.

    Wraps a ``main(argv) -> int``: a :class:`UserError` (and the library's own user-facing errors,
    :class:`~cryptorl.data.frames.DataError`, :class:`~cryptorl.modelstore.ModelStoreError`,
    :class:`~cryptorl._sqlite.DatabaseFileError` and :class:`~cryptorl.parallel.ClusterError`)
    becomes one line ``NAME: error: ...`` on stderr and exit code 2, never a traceback. Python
    warnings raised while it runs are one line each, ``NAME: warning: ...`` (without the source
    line), each distinct message once.
    """

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None, *args, **kwargs) -> int:
            with warnings.catch_warnings():
                warnings.showwarning = _one_line_warnings(name)
                try:
                    return main(argv, *args, **kwargs)
                except Exception as exc:
                    if not isinstance(exc, _user_errors()):
                        raise
                    print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
                    return 2

        return run

    return wrap


def _one_line_warnings(name: str) -> Callable[..., None]:
    """A :func:`warnings.showwarning` that prints ``NAME: warning: <message>`` once per message."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = one_line(message)
        if text not in seen:
            seen.add(text)
            print(f"{name}: warning: {text}", file=sys.stderr if file is None else file)

    return show


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors :func:`command` reports in one line, imported only when something was raised
    (so that ``--help`` does not load pandas)."""
    from cryptorl._sqlite import DatabaseFileError
    from cryptorl.data.frames import DataError
    from cryptorl.modelstore import ModelStoreError
    from cryptorl.parallel import ClusterError

    return (UserError, DataError, ModelStoreError, DatabaseFileError, ClusterError)


def parse_assets(text: str) -> list[str]:
    """``"btc, eth"`` -> ``["BTC", "ETH"]``; an empty list or a repeated ticker is a user error."""
    assets = [a.strip().upper() for a in text.split(",") if a.strip()]
    if not assets:
        raise UserError("--assets needs at least one ticker, e.g. --assets BTC,ETH")
    dupes = sorted({a for a in assets if assets.count(a) > 1})
    if dupes:
        raise UserError(f"--assets lists {', '.join(dupes)} twice; a portfolio holds one CM per asset")
    return assets


def parse_value(text: str):
    """'1e-4' -> 1e-4, '64' -> 64, 'true' -> True, '[64,64]' -> [64, 64]; else the string.

    Numbers are read first: YAML 1.1 would keep '3e-4' (no dot) as a string.
    """
    import yaml

    for number in (int, float):
        try:
            return number(text)
        except (TypeError, ValueError):
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--source``, ``--interval``, ``--start``, ``--end``, ``--store``, ``--gaps`` and ``--metrics``
    of a command that loads data (the choices from :mod:`cryptorl.data.sources`)."""
    from cryptorl.data.sources import describe

    p.add_argument(
        "--source",
        default=None,
        help="where the bars come from: " + describe("market") + "; a download or an import fills the store "
        "first (downloads add Santiment metrics when $SANPY_APIKEY is set) (default: demo, with a warning "
        "that its prices are synthetic)",
    )
    p.add_argument("--interval", default=None, help="bar interval, e.g. 1d, 6h, 1h (default 1d)")
    p.add_argument("--start", default=None, help=f"first date of the data to load (demo default {DEMO_START})")
    p.add_argument("--end", default=None, help=f"last date of the data to load (demo default {DEMO_END})")
    p.add_argument("--store", default=None, help="data store folder (default ./data or $CRYPTORL_DATA)")
    add_gaps_argument(p)
    p.add_argument(
        "--metrics",
        default=None,
        metavar="SOURCE",
        help="on-chain metrics to add to the store first: " + describe("metrics", fills=True),
    )


def comma_list(text: str) -> list[str]:
    """``"ret_5, vol_20"`` -> ``["ret_5", "vol_20"]``; ``""`` -> ``[]``."""
    return [x.strip() for x in text.split(",") if x.strip()]


def show_default(value: Any) -> str:
    """A library default as ``--help`` writes it: lists comma-separated, booleans on / off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "''"
    return str(value)


def field_default(f: dataclasses.Field) -> Any:
    """A dataclass field's default (its factory's value for a list or dict)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _flag_type(hint: Any) -> tuple[type | None, bool]:
    """``(value type, optional)`` of a field's annotation: ``int``, ``float | None``, ``list[str]``..."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else None), True
    return (typing.get_origin(hint) or hint), False


def config_flags(config_cls: type, *, exclude: Iterable[str] = ()) -> list[dataclasses.Field]:
    """The fields of a config dataclass that are command-line flags: every field with a value
    type a flag can hold (text, number, boolean, list of names), unless its metadata says
    ``flag=False``."""
    hints = typing.get_type_hints(config_cls)
    skip = set(exclude)
    out = []
    for f in dataclasses.fields(config_cls):
        kind, _ = _flag_type(hints[f.name])
        if f.name in skip or not f.metadata.get("flag", True) or kind not in (str, int, float, bool, list):
            continue
        out.append(f)
    return out


def add_config_arguments(
    p: argparse.ArgumentParser,
    config_cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    required: Iterable[str] = (),
    default_text: str = "{default}",
) -> list[str]:
    """One flag per field of the dataclass ``config_cls`` (``--n-envs`` for ``n_envs``); returns their dests.

    Each flag defaults to None (given means given, so a config file or a saved recipe fills the
    rest); its help is the field's ``metadata["help"]`` followed by the library default
    (``default_text`` with ``{default}``), its choices ``metadata["choices"]`` (a sequence, or a
    callable returning one: a registry read when the parser is built). A boolean field gets
    ``--flag`` / ``--no-flag``; a list field takes comma-separated names. A new field becomes a
    flag without touching the commands.
    """
    hints = typing.get_type_hints(config_cls)
    names = None if only is None else list(only)
    chosen = config_flags(config_cls, exclude=exclude)
    if names is not None:
        by_name = {f.name: f for f in chosen}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"{config_cls.__name__} has no flag field(s) {missing}")
        chosen = [by_name[n] for n in names]
    needed = set(required)
    dests = []
    for f in chosen:
        kind, _ = _flag_type(hints[f.name])
        meta = {"help": f.name.replace("_", " "), **f.metadata}  # a field without help text still is a flag
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "default": None}
        choices = meta.get("choices")
        if callable(choices):
            choices = choices()
        if choices is not None:
            kw["choices"] = list(choices)
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif kind is list:
            kw["type"] = comma_list
            kw["metavar"] = meta.get("metavar", "NAME,...")
        else:
            kw["type"] = kind
            if "metavar" in meta:
                kw["metavar"] = meta["metavar"]
        if f.name in needed:
            kw["required"] = True
            kw["help"] = meta["help"].replace("%", "%%")
        else:
            shown = meta.get("default_help") or show_default(field_default(f))
            text = f"{meta['help']} (default: {default_text.format(default=shown)})"
            kw["help"] = text.replace("%", "%%")  # argparse formats help with %
        p.add_argument(flag, **kw)
        dests.append(f.name)
    return dests


def add_ensemble_argument(
    p: argparse.ArgumentParser,
    help: str = "SAMs voting in each module (default: train_cm's, 5; 1 trains five times faster)",
) -> None:
    """``--ensemble K`` (``CMConfig.ensemble``) on a command that trains Crypto Modules; None: the default."""
    p.add_argument("--ensemble", type=int, default=None, metavar="K", help=help)


def add_gaps_argument(p: argparse.ArgumentParser) -> None:
    """``--gaps error|fill``: what to do with missing bars in the range loaded (the commands train
    or backtest on regular bars, so the library's third policy, ``keep``, is not offered)."""
    p.add_argument(
        "--gaps",
        choices=["error", "fill"],
        default="error",
        help="missing bars inside the range loaded: error (default: stop and say where) or fill (flat "
        "zero-volume bars at the last close); gaps before the range loaded never matter",
    )


def gap_message(exc: Exception, fix: str = "add --gaps fill (flat zero-volume bars at the last close)") -> str:
    """The one line of a command stopped by missing bars: what is missing and the command's own fix."""
    from cryptorl.data.frames import GapError

    if isinstance(exc, GapError):
        return f"{exc.found}; {fix}, or load a range without them (a later --start)"
    return one_line(exc)


def add_metrics(args: argparse.Namespace, asset: str, interval: str, start, end) -> None:
    """Put the metrics ``--metrics`` names (csv:DIR or coinmetrics) into the store first."""
    from cryptorl.data.metric_sources import add_metrics_source

    add_metrics_source(args.metrics, asset, interval, start, end, store=args.store)


def load_for_cli(
    args: argparse.Namespace,
    asset: str,
    interval: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(market, metrics) for ``asset`` from ``args.source``; user errors exit with one line."""
    from cryptorl.data import load_data
    from cryptorl.data.frames import DataError, warn_outliers
    from cryptorl.data.retry import FetchError
    from cryptorl.data.sources import get_source

    interval = interval or args.interval or "1d"
    start, end = args.start, args.end
    source = data_source(args)
    if source == "demo":
        start, end = start or DEMO_START, end or DEMO_END
    try:
        src, argument = get_source(source, serves="market")
        if src.needs_range:  # a download: into the store first, then read from there
            start = start or DEMO_START
            download(asset, interval, start, end, source=source, store=args.store)
            source = "store"
        if getattr(args, "metrics", None):
            if source == "demo":
                raise ValueError("--metrics adds metrics to the store: use it with --source store, csv:PATH or binance")
            add_metrics(args, asset, interval, start, end)
        market, metrics = load_data(
            asset, interval, start, end, source=source, store=args.store, gaps=getattr(args, "gaps", "error")
        )
    except (DataError, ValueError, FileNotFoundError, FetchError) as exc:
        raise UserError(gap_message(exc)) from None
    warn_outliers(market, asset)  # bars flagged on import, now inside the range this command uses
    if metrics is not None and metrics.shape[1] == 0:
        metrics = None
    return market, metrics


def data_source(args: argparse.Namespace) -> str:
    """``args.source``; when none was given, ``"demo"`` with a one-time warning on stderr, so that
    nobody mistakes the synthetic demo market for real prices."""
    if args.source is None:
        print(
            "warning: no --source given: using the built-in synthetic demo market, not real prices "
            "(--source demo says so explicitly; csv:PATH, store or binance for real data)",
            file=sys.stderr,
        )
        args.source = "demo"
    return args.source


def load_markets(
    args: argparse.Namespace,
    assets: list[str],
    *,
    start=None,
    end=None,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame | None]]:
    """``({asset: market}, {asset: metrics})`` of ``args.source`` between ``start`` and ``end``
    (the commands whose ``--start``/``--end`` mean a backtest range load the data from its start)."""
    data = argparse.Namespace(**{**vars(args), "start": start, "end": end})
    loaded = {a: load_for_cli(data, a) for a in assets}
    args.source = data.source
    return {a: m for a, (m, _) in loaded.items()}, {a: x for a, (_, x) in loaded.items()}


def console():
    """A rich console; when the output is not a terminal (a pipe, a log file, CI) it is 160
    columns wide instead of rich's 80, so that metric tables are not squeezed."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def download(asset: str, interval: str, start, end, *, source: str = "binance", store=None) -> None:
    """Bars from a download ``source`` (and Santiment metrics when ``SANPY_APIKEY`` is set) into the
    data store. Idempotent and resumable: what is stored already is not downloaded again."""
    import os

    from cryptorl.data.santiment import API_KEY_ENV
    from cryptorl.data.sources import FetchRequest, get_source
    from cryptorl.data.store import DataStore

    with DataStore(store) as data_store:
        for spec in [source, "santiment"] if os.environ.get(API_KEY_ENV) else [source]:
            src, argument = get_source(spec)
            src.prepare(FetchRequest((asset,), interval, start, end, argument=argument))(data_store)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A table on the terminal (rich)."""
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console().print(table)
