"""Checks every command runs on its options and inputs *before* any state is created.

Each check raises :class:`cryptorl.cli.UserError` with one line naming the option, the value and
the fix; the commands turn it into ``error: ...`` on stderr and exit code 2. Nothing here writes
anything that stays: the writability probe of a folder creates and removes one temporary file.

* :func:`check_dir` - ``--store``, ``--models``, ``--out``: a folder (or a path that can become
  one) that this process may write to.
* :func:`check_db_file` - a SQLite file given on the command line (paper account, order journal):
  not a folder, in a writable folder, and if it exists a SQLite database that is not truncated.
* :func:`check_number` - a numeric option within its range (finite, integer where it must be).

The checks of the Crypto Module options (hyper-parameters, ``train_cm``, ``update``) are in
:mod:`agents.options`.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ._sqlite import sqlite_problem
from .cli import UserError


def check_assets(text: str, flag: str = "--assets") -> list[str]:
    """``" btc, eth "`` -> ``["BTC", "ETH"]``; empty lists, repeated or malformed tickers are errors."""
    assets = [a.strip().upper() for a in str(text).split(",") if a.strip()]
    if not assets:
        raise UserError(f"{flag} is empty: give tickers such as BTC,ETH,LINK")
    bad = [a for a in assets if not a.isalnum()]
    if bad:
        raise UserError(f"{flag}: {bad[0]!r} is not a ticker (letters and digits only)")
    dupes = sorted({a for a in assets if assets.count(a) > 1})
    if dupes:
        raise UserError(f"{flag} lists {', '.join(dupes)} more than once; give each ticker once")
    return assets


def check_date(value: Any, flag: str):
    """A UTC timestamp from a date or time text (None stays None)."""
    if value is None:
        return None
    from cryptorl.data.frames import to_utc_timestamp

    try:
        return to_utc_timestamp(value)
    except (ValueError, TypeError):
        raise UserError(f"{flag} {value!r} is not a date or UTC time such as 2022-01-31 or 2022-01-31T06:00") from None


def check_source(source: str, flag: str = "--source") -> str:
    """A source :func:`cryptorl.data.load_data` reads (the demo, the store, a local file source such
    as ``csv:PATH`` whose path exists); a download must fill the store first."""
    from cryptorl.data.sources import get_source

    try:
        src, argument = get_source(source, serves="market")
    except ValueError as exc:
        raise UserError(f"{flag} {source!r}: {str(exc).removeprefix(f'unknown source {source!r}: ')}") from None
    if src.needs_range and src.name != "demo":
        raise UserError(
            f"{flag} {source} downloads bars: fill the store first (python -m experiments.fetch_data "
            f"--source {source}), then use --source store"
        )
    if src.argument == "PATH" and not Path(argument).expanduser().exists():
        raise UserError(f"{flag} {source}: no such file or folder")
    return source


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (a real probe: also right for root and read-only mounts)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError:
        return False
    return True


def check_dir(path: str | Path | None, flag: str) -> Path | None:
    """``path`` must be a folder this process can write in, or a path where one can be created."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} is a file, not a folder: give a folder path")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise UserError(f"{flag} {p}: {base} is a file, so the folder cannot be created; give another path")
    if not _writable(base):
        raise UserError(f"{flag} {p}: {base} is not writable; give a folder you can write to")
    return p


def check_db_file(path: str | Path | None, flag: str) -> Path | None:
    """A SQLite file named on the command line: not a folder, creatable, not truncated or foreign."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{flag} {p} is a folder, not a file: give a file path such as {p / 'account.sqlite'}")
    if not p.exists():
        check_dir(p.parent, f"{flag} folder")
        return p
    problem = sqlite_problem(p)
    if problem:
        raise UserError(f"{flag} {p}: {problem}; move it away or give another path")
    if not os.access(p, os.R_OK | os.W_OK) or not _writable(p.parent):
        raise UserError(f"{flag} {p} is not writable; give a file you can write to")
    return p


def check_number(
    value: Any,
    flag: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    optional: bool = False,
) -> Any:
    """A finite number (an integer with ``integer``) in ``[low, high]`` (ends open as told)."""
    if value is None and optional:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise UserError(f"{flag} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise UserError(f"{flag} must be a finite number, got {value!r}")
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        raise UserError(f"{flag} must be {' and '.join(x for x in (lo, hi) if x)}, got {value!r}")
    return int(value) if integer else value


def check_costs(args: Any) -> None:
    """``--fee`` and ``--slippage`` of a backtesting command (either may be absent or None)."""
    for flag in ("fee", "slippage"):
        check_number(getattr(args, flag, None), f"--{flag}", low=0, high=0.1, high_open=True, optional=True)


def check_live_options(args: Any, assets: list[str], paper_path: Path, *, models: str | Path) -> None:
    """``experiments.live``: every option and file before an account, a journal entry or an order exists.

    Costs and limits in range, ``--now`` a time, ``--quote`` a code, no real orders on the demo
    market, journal and paper account usable SQLite files, a trained module for every asset (unless
    a placeholder strategy decides), and ``--now`` not before the last bar the paper account has
    processed (unless ``--force``).
    """
    from cryptorl.live.loop import last_closed
    from cryptorl.live.paper import PaperExchange, account_exists
    from cryptorl.modelstore import ModelStore

    check_number(args.fee, "--fee", low=0, high=0.1, high_open=True)
    check_number(args.initial_cash, "--initial-cash", low=0, low_open=True)
    check_number(args.price_buffer, "--price-buffer", low=0, high=0.5, high_open=True)
    check_number(args.max_order_notional, "--max-order-notional", low=0, low_open=True, optional=True)
    check_number(args.max_daily_turnover, "--max-daily-turnover", low=0, low_open=True, optional=True)
    now = check_date(args.now, "--now")
    if not str(args.quote).strip().isalnum():
        raise UserError(f"--quote {args.quote!r} is not a currency code such as USDT")
    if args.live and args.data == "demo":
        raise UserError(
            "--live with --data demo would send real orders decided on synthetic prices; "
            "use --data exchange for live trading, or drop --live to paper-trade the demo market"
        )
    check_db_file(args.journal, "--journal")
    if Path(args.kill_switch).is_dir():
        raise UserError(f"--kill-switch {args.kill_switch} is a folder; give the path of a file")
    if args.markets_file is not None and not Path(args.markets_file).is_file():
        raise UserError(f"--markets-file {args.markets_file}: no such file")
    if args.strategy is None:  # the trained modules, before an account is created for them
        store = ModelStore(models)
        missing = [a for a in assets if store.current(a, args.interval) is None]
        if missing:
            raise UserError(
                f"no trained Crypto Module for {missing[0]} at {args.interval} in {store.root} (train one with "
                f"python -m experiments.train_cm --asset {missing[0]} --interval {args.interval}, or use a "
                "placeholder --strategy equal|demo-momentum)"
            )
    if args.live:
        return
    path = check_db_file(paper_path, "--paper-db")
    if now is not None and not args.force and account_exists(path):
        paper = PaperExchange(path)
        try:
            done = paper.last_bar_time()
        finally:
            paper.close()
        bar_time, _ = last_closed(now, args.interval)
        if done is not None and bar_time < done:
            raise UserError(
                f"--now {now} acts on the bar of {bar_time}, before the last bar the paper account "
                f"{path} processed ({done}); time only moves forward (add --force to do it anyway)"
            )


def check_report_options(args: Any, assets: list[str], *, models: str | Path | None) -> None:
    """``experiments.compose`` / ``compare``: costs, dates, training overrides and the folders written to
    (``--out``, ``--store``, ``--log-dir``; the model store with ``--train-missing``), and the
    model store's ``CURRENT`` pointers of ``assets`` when it is read."""
    from cryptorl.modelstore import ModelStore
    from cryptorl.parallel import check_address

    check_costs(args)
    check_number(getattr(args, "workers", None), "--workers", low=1, integer=True, optional=True)
    check_address(getattr(args, "address", None))
    check_number(getattr(args, "timesteps", None), "--timesteps", low=1, integer=True, optional=True)
    check_number(getattr(args, "seed", None), "--seed", low=0, integer=True, optional=True)
    check_number(getattr(args, "ensemble", None), "--ensemble", low=1, high=32, integer=True, optional=True)
    for flag in ("train_end", "start", "end"):
        check_date(getattr(args, flag, None), f"--{flag.replace('_', '-')}")
    for flag in ("out", "store", "log_dir"):
        check_dir(getattr(args, flag, None), f"--{flag.replace('_', '-')}")
    store = ModelStore(models)
    if getattr(args, "train_missing", False):
        check_dir(store.root, "--models")
    for asset in assets:
        store.current(asset, getattr(args, "interval", None) or "1d")  # a CURRENT naming a missing version


__all__ = [
    "check_assets",
    "check_costs",
    "check_date",
    "check_db_file",
    "check_dir",
    "check_live_options",
    "check_number",
    "check_report_options",
    "check_source",
    "sqlite_problem",
]
