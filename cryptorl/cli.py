"""Small helpers shared by the ``python -m experiments.*`` commands."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

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
    :class:`~cryptorl.data.frames.DataError`, :class:`~cryptorl.modelstore.ModelStoreError` and
    :class:`~cryptorl._sqlite.DatabaseFileError`)
    becomes one line ``NAME: error: ...`` on stderr and exit code 2, never a traceback.
    """

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None, *args, **kwargs) -> int:
            try:
                return main(argv, *args, **kwargs)
            except Exception as exc:
                if not isinstance(exc, _user_errors()):
                    raise
                print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
                return 2

        return run

    return wrap


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors :func:`command` reports in one line, imported only when something was raised
    (so that ``--help`` does not load pandas)."""
    from cryptorl._sqlite import DatabaseFileError
    from cryptorl.data.frames import DataError
    from cryptorl.modelstore import ModelStoreError

    return (UserError, DataError, ModelStoreError, DatabaseFileError)


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
    p.add_argument(
        "--source",
        default=None,
        help="where the data come from: demo (built-in synthetic market, no network), store "
        "(the SQLite stores filled by experiments.fetch_data), csv:PATH (import a folder of "
        "CSV/Parquet files first), binance or exchange:ID (download the bars through ccxt "
        "into the store first, plus Santiment metrics when SANPY_APIKEY is set) "
        "(default: demo, with a warning that its prices are synthetic)",
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
        help="on-chain metrics to add to the store first: csv:DIR (a folder or file of metric files, "
        "e.g. Coin Metrics CSV exports) or coinmetrics (download through the Coin Metrics API, "
        "keyless community endpoint unless $COINMETRICS_API_KEY is set)",
    )


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
    from cryptorl.data.frames import DataError
    from cryptorl.data.retry import FetchError

    interval = interval or args.interval or "1d"
    start, end = args.start, args.end
    source = data_source(args)
    if source == "demo":
        start, end = start or DEMO_START, end or DEMO_END
    try:
        if source == "binance" or source.startswith("exchange:"):
            start = start or DEMO_START
            download(asset, interval, start, end, exchange=source.split(":", 1)[-1], store=args.store)
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


def download(asset: str, interval: str, start, end, *, exchange: str = "binance", store=None) -> None:
    """Bars through ccxt (and Santiment metrics when ``SANPY_APIKEY`` is set) into the data store.

    Idempotent and resumable: what is stored already is not downloaded again.
    """
    import os

    from cryptorl.data.exchange import fetch_market
    from cryptorl.data.santiment import API_KEY_ENV, fetch_metrics
    from cryptorl.data.store import DataStore

    data_store = DataStore(store)
    fetch_market(data_store, asset, interval, start, end, exchange=exchange)
    if os.environ.get(API_KEY_ENV):
        fetch_metrics(data_store, asset, interval, start, end)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A table on the terminal (rich)."""
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console().print(table)
