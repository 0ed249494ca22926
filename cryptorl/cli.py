"""Small helpers shared by the ``python -m experiments.*`` commands."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import pandas as pd

# The demo market starts early enough to warm up the DRU's rolling windows (norm + PCA) before
# the paper's training range (October 2020) begins.
DEMO_START = "2020-03-01"
DEMO_END = "2022-09-30"


class UserError(Exception):
    """A problem with the command line, the data or the environment: one line, exit code 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    """A user error: one line on stderr, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def one_line(exc: BaseException) -> str:
    """An exception's message folded onto one line (for ``fail``)."""
    return " ".join(str(exc).split())


def parse_assets(text: str) -> list[str]:
    """``"btc, eth"`` -> ``["BTC", "ETH"]``; an empty list or a repeated ticker is a user error."""
    assets = [a.strip().upper() for a in text.split(",") if a.strip()]
    if not assets:
        fail("--assets needs at least one ticker, e.g. --assets BTC,ETH")
    dupes = sorted({a for a in assets if assets.count(a) > 1})
    if dupes:
        fail(f"--assets lists {', '.join(dupes)} twice; a portfolio holds one CM per asset")
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


def add_data_arguments(p: argparse.ArgumentParser, *, default_source: str = "demo") -> None:
    p.add_argument("--source", default=default_source,
                   help="where the data come from: demo (built-in synthetic market, no network), store "
                        "(the SQLite stores filled by experiments.fetch_data), csv:PATH (import a folder of "
                        "CSV/Parquet files first), binance or exchange:ID (download the bars through ccxt "
                        "into the store first, plus Santiment metrics when SANPY_APIKEY is set) "
                        f"(default {default_source})")
    p.add_argument("--interval", default=None, help="bar interval, e.g. 1d, 6h, 1h (default 1d)")
    p.add_argument("--start", default=None, help=f"first date of the data to load (demo default {DEMO_START})")
    p.add_argument("--end", default=None, help=f"last date of the data to load (demo default {DEMO_END})")
    p.add_argument("--store", default=None, help="data store folder (default ./data or $CRYPTORL_DATA)")
    add_gaps_argument(p)
    p.add_argument("--metrics", default=None, metavar="SOURCE",
                   help="on-chain metrics to add to the store first: csv:DIR (a folder or file of metric files, "
                        "e.g. Coin Metrics CSV exports) or coinmetrics (download through the Coin Metrics API, "
                        "keyless community endpoint unless $COINMETRICS_API_KEY is set)")


def add_gaps_argument(p: argparse.ArgumentParser) -> None:
    """``--gaps error|fill|keep``: what to do with missing bars in the range loaded."""
    p.add_argument("--gaps", choices=["error", "fill", "keep"], default="error",
                   help="missing bars inside the range loaded: error (default: stop and say where), fill (flat "
                        "zero-volume bars at the last close) or keep (leave them out); gaps outside the range never matter")


def add_metrics(args: argparse.Namespace, asset: str, interval: str, start, end) -> None:
    """Put the metrics ``--metrics`` names (csv:DIR or coinmetrics) into the store first."""
    from cryptorl.data.metric_sources import add_metrics_source

    add_metrics_source(args.metrics, asset, interval, start, end, store=args.store)


def load_for_cli(args: argparse.Namespace, asset: str, interval: str | None = None,
                 ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(market, metrics) for ``asset`` from ``args.source``; user errors exit with one line."""
    from cryptorl.data import load_data
    from cryptorl.data.frames import DataError
    from cryptorl.data.retry import FetchError

    interval = interval or args.interval or "1d"
    start, end = args.start, args.end
    source = args.source
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
        market, metrics = load_data(asset, interval, start, end, source=source, store=args.store,
                                    gaps=getattr(args, "gaps", "error"))
    except (DataError, ValueError, FileNotFoundError, FetchError) as exc:
        fail(one_line(exc))
    if metrics is not None and metrics.shape[1] == 0:
        metrics = None
    return market, metrics


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
