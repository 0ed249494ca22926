"""Fill the data stores: exchange OHLCV, Santiment metrics, the demo market, or a folder of files.

    python -m experiments.fetch_data --assets BTC,ETH,LINK --source demo
    python -m experiments.fetch_data --assets BTC,ETH,LINK --source binance --interval 6h \\
        --start 2020-10-01 --end 2022-09-30
    python -m experiments.fetch_data --assets BTC --source santiment --interval 1d   # $SANPY_APIKEY
    python -m experiments.fetch_data --assets BTC,ETH --source csv:../shared/data/prices/daily
    python -m experiments.fetch_data --assets BTC --source csv:../shared/data/prices/binance_freqtrade --interval 6h
    python -m experiments.fetch_data --assets BTC,ETH --source csv:../shared/data/onchain/coinmetrics
    python -m experiments.fetch_data --assets BTC --source coinmetrics   # keyless community API

Writes into the two SQLite stores under ``--store`` (default ``$CRYPTORL_DATA`` or ``./data``),
then prints per asset the bars stored in the range, the gaps found, the metrics stored and the
metrics the source refused. Interrupted downloads resume where they stopped. User errors (bad
dates, unknown exchange or timeframe, unreadable files, data that fails validation) print one
line and exit with code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from cryptorl.cli import DEMO_END, DEMO_START, OneLineParser, UserError, command
from cryptorl.cli import console as wide_console
from cryptorl.data.demo import demo_data
from cryptorl.data.frames import OUTLIER_Z, DataError, OutlierWarning, interval_seconds, to_utc_timestamp
from cryptorl.data.store import DataStore, default_root

EXCHANGE_SOURCES = ("binance", "exchange")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(
        prog="python -m experiments.fetch_data",
        description="Fetch or import market data (OHLCV) and on-chain/social metrics into the SQLite stores "
        "(prices.sqlite, metrics.sqlite), then print a summary per asset.",
        epilog="Sources: 'binance' (or 'exchange', or any ccxt exchange id) downloads OHLCV through ccxt; "
        "'santiment' downloads metrics through sanpy (API key from $SANPY_APIKEY; without it only free metrics); "
        "'coinmetrics' downloads daily network metrics from the Coin Metrics API (keyless community endpoint "
        "unless $COINMETRICS_API_KEY is set); 'demo' writes the built-in synthetic market and metrics; 'csv:PATH' "
        "imports a file or folder: generic OHLCV CSV/Parquet, Binance klines (CSV or the monthly/daily ZIP dumps), "
        "freqtrade files (user_data/data/<exchange>/*.json or .feather), wide on-chain exports (Coin Metrics "
        "'BTC / Tx Cnt' tables and community CSVs, Messari, Etherscan; columns that are not daily observations are "
        "left out with the reason) and two-column metric series. Dates are UTC; "
        "start and end are bar open times, both included.",
    )
    p.add_argument("--assets", default="BTC,ETH,LINK", help="comma-separated tickers (default: %(default)s)")
    p.add_argument(
        "--source",
        default="demo",
        help="binance | exchange | <ccxt id> | santiment | coinmetrics | demo | csv:PATH (default: %(default)s)",
    )
    p.add_argument("--interval", default="1d", help="bar interval such as 1h, 6h, 1d (default: %(default)s)")
    p.add_argument(
        "--start",
        default=None,
        help=f"first bar, UTC date or timestamp (default: {DEMO_START}; csv: the first bar of the files)",
    )
    p.add_argument(
        "--end",
        default=None,
        help=f"last bar, UTC date or timestamp (default: {DEMO_END}; csv: the last bar of the files)",
    )
    p.add_argument("--exchange", default=None, help="ccxt exchange id for --source exchange/binance (default: binance)")
    p.add_argument(
        "--quote", default="USDT", help="quote currency on the exchange: BTC -> BTC/USDT (default: %(default)s)"
    )
    p.add_argument(
        "--metrics",
        default=None,
        help="Santiment or Coin Metrics: comma-separated metrics to fetch (default: every metric the slug offers)",
    )
    p.add_argument("--slugs", default=None, help="Santiment: ticker=slug overrides, e.g. XRP=ripple,BNB=binance-coin")
    p.add_argument(
        "--include",
        default=None,
        help="csv: comma-separated metric columns to import (names as in the file or normalised), nothing else",
    )
    p.add_argument("--exclude", default=None, help="csv: comma-separated metric columns to leave out")
    p.add_argument(
        "--allow-non-daily",
        action="store_true",
        help="csv: accept --include columns that are not daily "
        "observations (monthly values repeated over days, trading-day closes, prices)",
    )
    p.add_argument("--store", default=None, help="folder of the stores (default: $CRYPTORL_DATA or ./data)")
    p.add_argument(
        "--replace",
        action="store_true",
        help="let this source replace a series stored from another source "
        "(for csv: also a file whose content changed since it was imported)",
    )
    p.add_argument(
        "--outliers",
        choices=("warn", "error", "ignore"),
        default="warn",
        help="csv: what a bar with a suspicious return (robust z-score above --outlier-z) does (default: %(default)s)",
    )
    p.add_argument(
        "--outlier-z", type=float, default=OUTLIER_Z, help="threshold of the outlier check (default: %(default)s)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="log retries and resumes")
    return p.parse_args(argv)


def _check(args: argparse.Namespace) -> tuple[list[str], pd.Timestamp, pd.Timestamp]:
    from cryptorl.validation import check_assets, check_dir, check_number

    assets = check_assets(args.assets)
    check_dir(args.store or default_root(), "--store")
    check_number(args.outlier_z, "--outlier-z", low=0, low_open=True)
    csv = args.source.startswith("csv:")
    if not csv:
        args.start = DEMO_START if args.start is None else args.start  # the same defaults as train_cm's
        args.end = DEMO_END if args.end is None else args.end
    try:
        interval_seconds(args.interval)
    except ValueError as exc:
        raise UserError(f"--interval: {exc}") from None
    try:
        start, end = to_utc_timestamp(args.start), to_utc_timestamp(args.end)
    except (ValueError, TypeError) as exc:
        raise UserError(f"--start/--end: not a date ({str(exc).splitlines()[0]})") from None
    if start is not None and end is not None and end < start:
        raise UserError(f"--end {end:%Y-%m-%d %H:%M} is before --start {start:%Y-%m-%d %H:%M}")
    return assets, start, end


def _exchange_id(args: argparse.Namespace) -> str | None:
    """The ccxt id the source names, or None if it is not an exchange source."""
    if args.source in EXCHANGE_SOURCES:
        return args.exchange or "binance"
    import ccxt

    if args.source in ccxt.exchanges:
        if args.exchange and args.exchange != args.source:
            raise UserError(f"--source {args.source} and --exchange {args.exchange} disagree")
        return args.source
    return None


def _pairs(text: str | None, flag: str) -> dict[str, str]:
    out = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise UserError(f"{flag}: {item!r} is not TICKER=slug")
        k, v = item.split("=", 1)
        out[k.strip().upper()] = v.strip()
    return out


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _print_import_notes(items, console: Console) -> None:
    """Resampled files (and their incomplete bars) and the columns left out of metric tables."""
    for item in items:
        if item.resampled_from:
            n = 0 if item.incomplete is None else len(item.incomplete)
            console.print(
                f"{item.asset}: {item.path.name} resampled {item.resampled_from} -> {item.interval}; "
                f"{n} bar(s) built from incomplete windows (exchange outages), {len(item.gaps)} gap(s)"
            )
        if item.skipped:
            by_reason: dict[str, list[str]] = {}
            for column, why in item.skipped.items():
                by_reason.setdefault(why, []).append(column)
            left = "; ".join(f"{', '.join(cols)} ({why})" for why, cols in by_reason.items())
            console.print(f"{item.asset}: {item.path.name}: left out {left}", markup=False)


def _store_files(args: argparse.Namespace, items: list, store: DataStore, console: Console) -> None:
    from cryptorl.data.files import store_files

    store_files(items, store, progress=not args.no_progress, replace=args.replace)
    for item in items:
        if item.replaced:
            console.print(
                f"{item.asset}: {item.path.name} replaced the {item.interval} {item.kind} stored from "
                f"{', '.join(item.replaced)}"
            )
    _print_import_notes(items, console)


def _fetch_metrics(
    args: argparse.Namespace, assets: list[str], start, end, store: DataStore, console: Console
) -> dict[str, list[str]]:
    """Coin Metrics or Santiment metrics into the store; ``{asset: metrics the source refused}``."""
    names = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    kw = {"metrics": names, "progress": not args.no_progress, "replace": args.replace}
    if args.source == "coinmetrics":
        from cryptorl.data.coinmetrics import API_KEY_ENV
        from cryptorl.data.coinmetrics import fetch_metrics as fetch_cm

        if not os.environ.get(API_KEY_ENV):
            console.print(f"{API_KEY_ENV} is not set: using the Coin Metrics community API (free daily data)")
        return {a: sorted(fetch_cm(store, a, start, end, interval=args.interval, **kw).refused) for a in assets}
    from cryptorl.data.santiment import fetch_metrics, slug_for

    slugs = _pairs(args.slugs, "--slugs")
    for a in assets:
        try:
            slug_for(a, slugs)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if not os.environ.get("SANPY_APIKEY"):
        console.print("[yellow]SANPY_APIKEY is not set: Santiment serves only its free metrics[/yellow]")
    return {a: sorted(fetch_metrics(store, a, args.interval, start, end, slugs=slugs, **kw).refused) for a in assets}


def _exchange(args: argparse.Namespace):
    """The ccxt exchange of an exchange source, checked (known id, the interval offered) before
    anything is written."""
    ex_id = _exchange_id(args)
    if ex_id is None:
        raise UserError(
            f"--source {args.source!r}: use binance, exchange, a ccxt exchange id, santiment, "
            "coinmetrics, demo or csv:PATH"
        )
    from cryptorl.data.exchange import check_timeframe, make_exchange

    try:
        ex = make_exchange(ex_id)
        check_timeframe(ex, args.interval)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return ex


def _fetch_bars(args: argparse.Namespace, assets: list[str], start, end, store: DataStore, ex) -> None:
    """Bars from an exchange through ccxt into the store."""
    from cryptorl.data.exchange import fetch_market

    for a in assets:
        try:
            fetch_market(
                store,
                a,
                args.interval,
                start,
                end,
                exchange=ex,
                quote=args.quote,
                progress=not args.no_progress,
                replace=args.replace,
            )
        except ValueError as exc:
            if isinstance(exc, DataError):
                raise
            raise UserError(str(exc)) from None


def run(args: argparse.Namespace, console: Console) -> list[dict]:
    """Fetch or import as the arguments say; return the summary rows."""
    assets, start, end = _check(args)
    items = _read_csv(args, assets, start, end) if args.source.startswith("csv:") else None
    metrics_source = args.source in ("coinmetrics", "santiment")
    ex = _exchange(args) if items is None and not metrics_source and args.source != "demo" else None
    store = DataStore(args.store) if args.store else DataStore(default_root())
    refused_now: dict[str, list[str]] = {}
    try:
        if args.source == "demo":
            for a in assets:
                market, metrics = demo_data(a, args.interval, start, end)
                store.upsert_market(a, args.interval, market, "demo", replace=args.replace)
                store.upsert_metrics(a, args.interval, metrics, "demo", replace=args.replace)
        elif items is not None:
            _store_files(args, items, store, console)
        elif metrics_source:
            refused_now = _fetch_metrics(args, assets, start, end, store, console)
        else:
            _fetch_bars(args, assets, start, end, store, ex)
        rows = []
        for a in assets:
            s = store.summary(a, args.interval, start, end)
            s["refused"] = sorted(set(s["refused"]) | set(refused_now.get(a, [])))
            rows.append(s)
        _print_summary(rows, args, store, console, items)
        return rows
    finally:
        store.close()


def _read_csv(args: argparse.Namespace, assets: list[str], start, end) -> list:
    """Read and validate the files of ``--source csv:PATH`` (nothing is written yet)."""
    from cryptorl.data.files import read_path

    source = args.source
    if not source[len("csv:") :]:
        raise UserError("--source csv: needs a path, e.g. csv:../shared/data/prices/daily")
    path = Path(source[len("csv:") :]).expanduser()
    if not path.exists():
        raise UserError(f"--source {source}: no such file or folder")
    items = read_path(
        path,
        assets=assets,
        interval=args.interval,
        progress=not args.no_progress,
        start=start,
        end=end,
        outliers=args.outliers,
        include=_names(args.include),
        exclude=_names(args.exclude),
        allow_non_daily=args.allow_non_daily,
        required=True,
    )
    if not items:
        raise UserError(f"--source {source}: no {args.interval} files for {', '.join(assets)} found there")
    empty = [i for i in items if i.kind == "market" and i.frame.empty]
    if empty:
        raise UserError(
            f"--source {source}: {empty[0].path.name} has no bars in --start/--end "
            f"({args.start or '-'} .. {args.end or '-'})"
        )
    return items


def _left_out(items: list | None, store: DataStore, asset: str, interval: str, refused_now: list[str]) -> str:
    """The metrics a source refused and the file columns left out, grouped by reason: ``-`` for none."""
    why: dict[str, str] = {}
    for item in items or []:
        if item.asset == asset:
            why.update(item.skipped)
    refused = store.refused(asset, interval)
    why.update({m: r for m, r in zip(refused["metric"], refused["reason"])})
    why.update({m: "refused by the source" for m in refused_now if m not in why})
    if not why:
        return "-"
    by_reason: dict[str, list[str]] = {}
    for name, reason in why.items():
        by_reason.setdefault(reason, []).append(name)
    return "; ".join(
        f"{', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''} ({reason})"
        for reason, names in by_reason.items()
    )


def _print_summary(
    rows: list[dict], args: argparse.Namespace, store: DataStore, console: Console, items: list | None = None
) -> None:
    metrics_only = args.source in ("coinmetrics", "santiment") or bool(items) and all(
        i.kind == "metrics" for i in items
    )
    span = f"{args.start} .. {args.end}" if args.start or args.end else "every date in the files"
    table = Table(title=f"{args.source} -> {store.root}  ({args.interval}, {span})")
    if metrics_only:  # a metrics import: the prices already stored are not this command's news
        columns = ("asset", "metrics stored", "values stored", "first", "last", "metrics refused or left out")
    else:
        columns = ("asset", "rows stored", "first", "last", "gaps found", "metrics", "metrics refused or left out")
    for col in columns:
        table.add_column(
            col,
            justify="right" if col in ("rows stored", "gaps found", "metrics", "metrics stored", "values stored")
            else "left",
            no_wrap=not col.startswith("metrics refused"),
        )
    fmt = "%Y-%m-%d" if interval_seconds(args.interval) % 86400 == 0 else "%Y-%m-%d %H:%M"

    def day(t) -> str:
        return f"{t:{fmt}}" if t is not None else "-"

    for s in rows:
        left = _left_out(items, store, s["asset"], args.interval, s["refused"])
        if metrics_only:
            table.add_row(s["asset"], str(s["metrics"]), str(s["metric_values"]), day(s["metrics_first"]),
                          day(s["metrics_last"]), left)
            continue
        gaps = s["gaps"]
        missing = sum(g.missing for g in gaps)
        table.add_row(
            s["asset"],
            str(s["rows"]),
            day(s["first"]),
            day(s["last"]),
            f"{len(gaps)} ({missing} bars)" if gaps else "0",
            str(s["metrics"]),
            left,
        )
    console.print(table)


@command("fetch_data")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    console = wide_console()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OutlierWarning)
            run(args, console)
        flagged = 0
        for w in caught:
            if issubclass(w.category, OutlierWarning):
                flagged += getattr(w.message, "bars", 1)
                print(f"fetch_data: warning: {w.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if flagged:
            console.print(
                f"{flagged} suspicious bar(s) flagged and stored as they are (see the warnings; --outliers error "
                "refuses such files)"
            )
    except KeyboardInterrupt:
        print("fetch_data: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # network gave up, source refused: still one line, not a user error
        from cryptorl.data.retry import FetchError

        if isinstance(exc, FetchError):
            print(f"fetch_data: failed: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
