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
import sys
import warnings

import pandas as pd
from rich.console import Console
from rich.table import Table

from cryptorl.cli import DEMO_END, DEMO_START, OneLineParser, UserError, command
from cryptorl.cli import console as wide_console
from cryptorl.data.frames import OUTLIER_Z, DataError, OutlierWarning, interval_seconds, to_utc_timestamp
from cryptorl.data.store import DataStore, default_root


def build_parser() -> argparse.ArgumentParser:
    from cryptorl.data.sources import describe, sources

    p = OneLineParser(
        prog="python -m experiments.fetch_data",
        description="Fetch or import market data (OHLCV) and on-chain/social metrics into the SQLite stores "
        "(prices.sqlite, metrics.sqlite), then print a summary per asset.",
        epilog=f"Sources: {describe(fills=True)}. Dates are UTC; start and end are bar open times, both included.",
    )
    p.add_argument("--assets", default="BTC,ETH,LINK", help="comma-separated tickers (default: %(default)s)")
    p.add_argument(
        "--source",
        default="demo",
        help=" | ".join(src.spec for src in sources(fills=True)) + " | <ccxt id> (default: %(default)s)",
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
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _check(args: argparse.Namespace) -> tuple[list[str], pd.Timestamp, pd.Timestamp]:
    from cryptorl.validation import check_assets, check_dir, check_number

    assets = check_assets(args.assets)
    check_dir(args.store or default_root(), "--store")
    check_number(args.outlier_z, "--outlier-z", low=0, low_open=True)
    from cryptorl.data.sources import get_source

    try:
        source, _ = get_source(args.source, fills=True)
    except ValueError as exc:
        raise UserError(
            f"--source {args.source!r}: {str(exc).removeprefix(f'unknown source {args.source!r}: ')}"
        ) from None
    if source.needs_range:
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


def run(args: argparse.Namespace, console: Console) -> list[dict]:
    """Fetch or import as the arguments say; return the summary rows."""
    from cryptorl.data.sources import FetchRequest, get_source

    assets, start, end = _check(args)
    source, argument = get_source(args.source, fills=True)
    options = {
        "exchange": args.exchange,
        "quote": args.quote,
        "metrics": _names(args.metrics),
        "slugs": _pairs(args.slugs, "--slugs"),
        "include": _names(args.include),
        "exclude": _names(args.exclude),
        "allow_non_daily": args.allow_non_daily,
        "outliers": args.outliers,
    }
    request = FetchRequest(
        tuple(assets),
        args.interval,
        start,
        end,
        argument=argument,
        options=options,
        progress=not args.no_progress,
        replace=args.replace,
        say=lambda text: console.print(text, markup=False),
    )
    try:  # every check and every read before the store is opened
        write = source.prepare(request)
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise UserError(str(exc)) from None
    store = DataStore(args.store) if args.store else DataStore(default_root())
    try:
        try:
            fetched = write(store)
        except ValueError as exc:
            if isinstance(exc, DataError):
                raise
            raise UserError(str(exc)) from None
        rows = []
        for a in assets:
            s = store.summary(a, args.interval, start, end)
            s["refused"] = sorted(set(s["refused"]) | set(fetched.refused.get(a, [])))
            rows.append(s)
        _print_summary(rows, args, store, console, fetched.items)
        return rows
    finally:
        store.close()


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
    metrics_only = (
        args.source in ("coinmetrics", "santiment") or bool(items) and all(i.kind == "metrics" for i in items)
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
            justify="right"
            if col in ("rows stored", "gaps found", "metrics", "metrics stored", "values stored")
            else "left",
            no_wrap=not col.startswith("metrics refused"),
        )
    fmt = "%Y-%m-%d" if interval_seconds(args.interval) % 86400 == 0 else "%Y-%m-%d %H:%M"

    def day(t) -> str:
        return f"{t:{fmt}}" if t is not None else "-"

    for s in rows:
        left = _left_out(items, store, s["asset"], args.interval, s["refused"])
        if metrics_only:
            table.add_row(
                s["asset"],
                str(s["metrics"]),
                str(s["metric_values"]),
                day(s["metrics_first"]),
                day(s["metrics_last"]),
                left,
            )
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
