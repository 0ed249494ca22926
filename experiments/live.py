"""Live Trading Unit: trade a portfolio at every interval close - on paper unless told otherwise.

    python -m experiments.live --assets BTC,ETH,LINK --exchange binance --interval 6h          # trained CMs
    python -m experiments.live --assets BTC,ETH --interval 1d --strategy equal --data demo \\
        --markets-file markets.json --once --now 2024-03-01T00:00:10                          # offline try-out
    BINANCE_API_KEY=... BINANCE_SECRET=... python -m experiments.live --assets BTC,ETH --live  # real orders

At each close of the interval: feed the closed bar to the paper account (paper trading), decide
target weights (trained Crypto Modules voted as in the paper, or a clearly named placeholder
strategy), turn them into orders (ccxt precision, exchange minimums, sells first, a cash buffer
for fees) and place each order at most once (client order ids derived from account, interval
and asset; a SQLite journal; look-up on the exchange after a restart). Paper trading is the
default; ``--live`` needs API keys in the environment and a confirmation. While the kill-switch
file exists nothing is placed. User errors print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import pandas as pd

from cryptorl.cli import OneLineParser, UserError, command
from cryptorl.data.frames import to_utc_timestamp
from cryptorl.live import (
    DemoBars,
    ExchangeBars,
    Limits,
    LiveTrader,
    PaperExchange,
    demo_momentum,
    equal_weight,
    live_exchange,
    markets_for,
    modules_decision,
    paper_feeder,
    public_exchange,
    read_markets_file,
)
from cryptorl.live.decisions import DataFn, Decide
from cryptorl.live.feed import BarsNotReady
from cryptorl.live.loop import check_interval
from cryptorl.modelstore import ModelStore, default_root

log = logging.getLogger("cryptorl.live")
STRATEGIES = ("equal", "demo-momentum")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(
        prog="python -m experiments.live",
        description="Trade a portfolio at every interval close: decide target weights, turn them into "
        "exchange orders and place each one once. PAPER TRADING by default (a simulated account in SQLite "
        "that fills market orders at the next bar's open with the fee); --live sends real orders.",
        epilog="Decisions: by default the promoted Crypto Module of every asset in the model store (--models), "
        "voted into weights as in the paper. --strategy picks a PLACEHOLDER instead (not a trained agent, for "
        "trying the execution machinery): 'equal' holds 1/m of each asset; 'demo-momentum' holds an asset "
        "while its close is above its 20-bar mean. Live trading reads the API key and secret from "
        "<EXCHANGE>_API_KEY and <EXCHANGE>_SECRET (e.g. BINANCE_API_KEY, BINANCE_SECRET) and asks for "
        "confirmation (or --yes-i-mean-live). Create the kill-switch file to stop placing orders at once "
        "(positions are left as they are).",
    )
    p.add_argument("--assets", default="BTC,ETH,LINK", help="comma-separated tickers (default: %(default)s)")
    p.add_argument("--exchange", default="binance", help="ccxt exchange id (default: %(default)s)")
    p.add_argument("--interval", default="6h", help="bar size; acts at every close (default: %(default)s)")
    p.add_argument("--quote", default="USDT", help="quote currency the portfolio is valued in (default: %(default)s)")
    p.add_argument(
        "--models",
        type=Path,
        default=None,
        help="model store with the trained Crypto Modules (default: $CRYPTORL_MODELS or ./models)",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=None,
        help="PLACEHOLDER decision instead of trained Crypto Modules: equal | demo-momentum",
    )
    p.add_argument(
        "--data",
        choices=("exchange", "demo"),
        default="exchange",
        help="bars from the exchange's public API (with --models also Santiment metrics, through "
        "the data store) or the offline demo market (default: %(default)s)",
    )
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help="data store for --models with --data exchange (default: $CRYPTORL_DATA or ./data)",
    )
    p.add_argument(
        "--history", type=int, default=400, help="bars of history given to each decision (default: %(default)s)"
    )
    p.add_argument(
        "--portfolio-id", default=None, help="name of the portfolio's runs in the journal (default: ASSETS_INTERVAL)"
    )
    p.add_argument(
        "--paper-db",
        type=Path,
        default=None,
        help="paper account file (default: runs/live/paper-EXCHANGE-INTERVAL.sqlite)",
    )
    p.add_argument(
        "--journal", type=Path, default=Path("runs/live/journal.sqlite"), help="order journal (default: %(default)s)"
    )
    p.add_argument(
        "--kill-switch",
        type=Path,
        default=Path("runs/live/KILL"),
        help="while this file exists no order is placed (default: %(default)s)",
    )
    p.add_argument(
        "--markets-file",
        type=Path,
        default=None,
        help="ccxt markets as JSON (json.dump(exchange.load_markets())) for a new paper account without network",
    )
    p.add_argument(
        "--initial-cash",
        type=float,
        default=10_000.0,
        help="quote balance of a new paper account (default: %(default)s)",
    )
    p.add_argument("--fee", type=float, default=0.001, help="paper fee rate per fill (default: %(default)s)")
    p.add_argument(
        "--price-buffer",
        type=float,
        default=0.002,
        help="cash kept back for price moves before a buy fills (default: %(default)s)",
    )
    p.add_argument("--max-order-notional", type=float, default=None, help="refuse orders above this many QUOTE")
    p.add_argument(
        "--max-daily-turnover", type=float, default=None, help="refuse orders beyond this many QUOTE a UTC day"
    )
    p.add_argument("--once", action="store_true", help="act on the last closed interval, then exit")
    p.add_argument("--now", default=None, help="with --once and paper trading: pretend it is this UTC time")
    p.add_argument(
        "--force",
        action="store_true",
        help="with --now: act even if it is earlier than the last bar the paper account has processed",
    )
    p.add_argument("--live", action="store_true", help="send REAL orders (API keys from the environment)")
    p.add_argument("--yes-i-mean-live", action="store_true", help="confirm --live without the interactive prompt")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    return p.parse_args(argv)


def _assets(text: str) -> list[str]:
    assets = [a.strip().upper() for a in text.split(",") if a.strip()]
    if not assets or len(set(assets)) != len(assets):
        raise UserError(f"--assets must list distinct tickers, got {text!r}")
    return assets


def _confirm(args: argparse.Namespace) -> Callable[[str], bool]:
    def confirm(message: str) -> bool:
        if args.yes_i_mean_live:
            return True
        if not sys.stdin.isatty():
            raise UserError("--live needs a confirmation: run it in a terminal or add --yes-i-mean-live")
        answer = input(f"{message}\nType 'yes' to continue: ")
        return answer.strip().lower() == "yes"

    return confirm


def decide_from_models(
    models_dir: Path, assets: list[str], interval: str, data: DataFn, *, loader: Callable[[Path], Any] | None = None
) -> tuple[Decide, dict[str, Any]]:
    """Decision function from the promoted Crypto Module of each asset in the model store.

    ``loader(folder)`` loads one module (default ``agents.crypto_module.CryptoModule.load``, which
    verifies every file's sha256 first). Returns the decision function and the modules.
    """
    store = ModelStore(models_dir)
    folders = {}
    for asset in assets:
        folders[asset] = store.current(asset, interval)
        if folders[asset] is None:
            raise UserError(
                f"no trained Crypto Module for {asset} at {interval} in {store.root} (train one with "
                f"python -m experiments.train_cm --asset {asset} --interval {interval}, or use a placeholder "
                "--strategy equal|demo-momentum)"
            )
    if loader is None:
        from agents.crypto_module import (
            CryptoModule,  # heavy (torch, stable-baselines3): only when needed
        )

        loader = CryptoModule.load
    modules = {}
    for asset, folder in folders.items():
        modules[asset] = loader(folder)
        log.info("%s: %s from %s", asset, modules[asset], folder)
    vote_modules = modules_decision(modules, data)

    def decide(bar_time: pd.Timestamp) -> dict[str, float]:
        # A version promoted by experiments.update since the last interval is picked up here.
        for asset in assets:
            folder = store.current(asset, interval)
            if folder is not None and folder != folders[asset]:
                modules[asset], folders[asset] = loader(folder), folder
                log.info("%s: newly promoted %s loaded from %s", asset, modules[asset], folder)
        return vote_modules(bar_time)

    return decide, modules


def _store_data(args, exchange: Any, assets: list[str], modules: dict[str, Any], step: pd.Timedelta):
    """``(prepare, data)`` for trained modules on exchange data: update the store, then read it."""
    from cryptorl.data import load_data
    from cryptorl.data.exchange import fetch_market
    from cryptorl.data.santiment import fetch_metrics
    from cryptorl.data.store import DataStore

    store = DataStore(args.store)

    def prepare(bar_time: pd.Timestamp) -> None:
        start = bar_time - (args.history - 1) * step
        for a in assets:
            fetch_market(store, a, args.interval, start, bar_time, exchange=exchange, quote=args.quote, progress=False)
            needed = list(getattr(getattr(modules[a], "dru", None), "metrics", []) or [])
            if needed:
                fetch_metrics(store, a, args.interval, start, bar_time, metrics=needed, progress=False)

    def data(asset: str, bar_time: pd.Timestamp):
        start = bar_time - (args.history - 1) * step
        return load_data(asset, args.interval, start, bar_time, source="store", store=store, gaps="fill")

    return prepare, data


def _paper_path(args) -> Path:
    return args.paper_db or Path("runs/live") / f"paper-{args.exchange}-{args.interval}.sqlite"


def _paper(args, symbols: list[str]) -> PaperExchange:
    from cryptorl.live.paper import account_exists

    path = _paper_path(args)
    if account_exists(path):
        paper = PaperExchange(path, exchange_id=args.exchange, interval=args.interval, fee=args.fee)
        missing = [s for s in symbols if s not in paper.markets]
        if missing:
            raise UserError(f"paper account {path} has no market(s) {missing}; use another --paper-db")
        return paper
    if args.markets_file is not None:
        markets = read_markets_file(args.markets_file, symbols)
    else:
        try:
            markets = markets_for(public_exchange(args.exchange), symbols)
        except ccxt.NetworkError as exc:
            raise UserError(
                f"cannot reach {args.exchange} to load its market definitions ({type(exc).__name__}); "
                "give them with --markets-file"
            ) from None
    log.info("new paper account %s with %s %s", path, args.initial_cash, args.quote)
    return PaperExchange(
        path,
        markets,
        exchange_id=args.exchange,
        interval=args.interval,
        fee=args.fee,
        initial_balance={args.quote.upper(): args.initial_cash},
    )


def _decisions(
    args: argparse.Namespace,
    assets: list[str],
    exchange: Any,
    paper: PaperExchange | None,
    bars: Any,
    step: pd.Timedelta,
) -> tuple[Callable, Callable[[pd.Timestamp], None]]:
    """``(decide, prepare)``: the strategy's decision function and what runs before each decision
    (the paper account's price feed, the store's catch-up for the Crypto Modules' data)."""
    prepare_steps: list[Callable[[pd.Timestamp], None]] = []
    if paper is not None:
        prepare_steps.append(paper_feeder(paper, bars, assets, args.quote, bars=min(args.history, 50)))
    if args.strategy == "equal":
        decide = equal_weight(assets)
        log.warning("decisions: PLACEHOLDER strategy 'equal' (not a trained Crypto Module)")
    elif args.strategy == "demo-momentum":
        decide = demo_momentum(assets, bars)
        log.warning("decisions: PLACEHOLDER strategy 'demo-momentum' (not a trained Crypto Module)")
    else:
        models = args.models or default_root()
        if args.data == "demo":
            decide, _ = decide_from_models(models, assets, args.interval, lambda a, t: bars.data(a, t, args.history))
        else:
            holder: dict[str, Any] = {}
            source = exchange if args.live else public_exchange(args.exchange)
            prepare, data = _store_data(args, source, assets, holder, step)
            decide, modules = decide_from_models(models, assets, args.interval, data)
            holder.update(modules)
            prepare_steps.append(prepare)

    def prepare_all(bar_time: pd.Timestamp) -> None:
        for step_fn in prepare_steps:
            step_fn(bar_time)

    return decide, prepare_all


def run(args: argparse.Namespace) -> int:
    assets = _assets(args.assets)
    try:
        step = check_interval(args.interval)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.now is not None and (not args.once or args.live):
        raise UserError("--now is for paper trading with --once only")
    if args.history < 2:
        raise UserError("--history must be at least 2 bars")
    from cryptorl.validation import check_live_options

    check_live_options(args, assets, _paper_path(args), models=args.models or default_root())
    symbols = [f"{a}/{args.quote.upper()}" for a in assets]
    portfolio_id = args.portfolio_id or f"{'-'.join(assets)}_{args.interval}"

    if args.live:
        try:
            exchange = live_exchange(args.exchange, confirm=_confirm(args))
        except PermissionError as exc:
            raise UserError(str(exc)) from None
        exchange.load_markets()
        paper = None
    else:
        exchange = paper = _paper(args, symbols)

    if args.data == "demo":
        bars = DemoBars(args.interval)
    else:
        bars = ExchangeBars(exchange if args.live else public_exchange(args.exchange), args.interval, args.quote)

    decide, prepare_all = _decisions(args, assets, exchange, paper, bars, step)
    trader = LiveTrader(
        decide,
        exchange,
        assets=assets,
        interval=args.interval,
        portfolio_id=portfolio_id,
        journal_path=args.journal,
        kill_switch_path=args.kill_switch,
        quote=args.quote,
        limits=Limits(args.max_order_notional, args.max_daily_turnover),
        prepare=prepare_all,
        fee_rate=args.fee,
        price_buffer=args.price_buffer,
        live=args.live,
    )
    mode = "LIVE" if args.live else f"paper ({paper.path})"
    print(
        f"{mode} trading {', '.join(symbols)} every {args.interval} as portfolio '{portfolio_id}'; "
        f"journal {args.journal}; kill switch {args.kill_switch}"
    )
    if not args.once:
        trader.run_forever()
        return 0
    now = to_utc_timestamp(args.now) if args.now else None
    report = trader.run_once(now)  # logs the plan and what was placed
    print(f"interval closed {report.close_time:%Y-%m-%d %H:%M} UTC: {report.status}")
    if paper is not None:
        total = {k: round(v, 8) for k, v in paper.fetch_balance()["total"].items() if v}
        equity = paper.equity()
        value = f"{equity.iloc[-1]:,.2f} {args.quote} at {equity.index[-1]:%Y-%m-%d %H:%M}" if len(equity) else "n/a"
        print(f"paper account: {total}; value {value}; open orders {len(paper.fetch_open_orders())}")
    return 0 if report.status in ("done", "already-done", "killed") else 1


@command("live")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("ccxt").setLevel(logging.INFO)  # never log request headers (API keys)
    try:
        return run(args)
    except ValueError as exc:  # DataError is a ValueError
        raise UserError(str(exc)) from None
    except (ccxt.NetworkError, BarsNotReady) as exc:
        print(f"error: {type(exc).__name__}: {exc} (nothing more was sent; run again to resume)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped; a restart resumes from the journal", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
