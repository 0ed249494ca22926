"""The honest scoreboard: train every (config, asset, seed, window) Crypto Module of a protocol,
compose the voted portfolios and backtest them once against buy-and-hold of each asset,
equal-weight buy-and-hold, CRP and trend timing.

    python -m experiments.evaluate experiments/protocols/daily_bear_bull.yml
    python -m experiments.evaluate experiments/protocols/daily_bear_bull.yml --seeds 0,1 --configs ppo_trend
    python -m experiments.evaluate experiments/protocols/demo_tiny.yml --out reports/demo

The protocol (YAML) names the assets, bar interval, data source, windows (train / validation /
backtest dates) or a walk-forward span, seeds, fee, the CM configurations and the baselines
(see docs/findings.md). Modules are trained and selected on data that end at each
window's validation end, and saved under OUT/models/<config>/<window>/seed<k>: a rerun skips
what is already trained. The report (OUT/report.md, CSV tables, cumulative-return PNGs) gives
means and spreads over seeds, seeds beating each baseline, Wilcoxon p-values, collapsed modules
and the target figures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from cryptorl.cli import OneLineParser, UserError, command, one_line

DESCRIPTION = __doc__


def baselines_help() -> str:
    """The registered baselines, as a protocol names them (key, default parameter, report name)."""
    from cryptorl.portfolio.strategy import BASELINES

    rows = []
    for key, cls in BASELINES.items():
        name = cls.instances(["<asset>"] if cls.per_asset else ["BTC", "ETH"])[0].name
        when = "always" if cls.always else "when named"
        rows.append(f"  {key:<13} {'' if cls.default is None else cls.default!s:<20} {when:<11} {name}")
    head = "protocol baselines (key, default parameter, when it runs, report name):"
    return "\n".join([head, *rows])


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m experiments.evaluate",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=baselines_help(),
    )
    p.add_argument("protocol", type=Path, help="protocol YAML file, e.g. experiments/protocols/daily_bear_bull.yml")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder: models and report (default reports/evaluate-<protocol name>)",
    )
    p.add_argument(
        "--configs",
        default=None,
        help="comma-separated subset of the protocol's configs ('' for none: the baselines and agents alone)",
    )
    p.add_argument("--windows", default=None, help="comma-separated subset of the protocol's windows")
    p.add_argument(
        "--agents",
        default=None,
        help="comma-separated subset of the protocol's alternative agents ('' for none: they are fitted again "
        "at every run)",
    )
    p.add_argument("--seeds", default=None, help="comma-separated subset of the protocol's seeds")
    p.add_argument(
        "--assets",
        default=None,
        help="comma-separated subset of the protocol's assets (portfolios with other assets are left out)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="data store folder for the protocol's source (default: a temporary "
        "folder for csv: sources, ./data or $CRYPTORL_DATA for store)",
    )
    p.add_argument(
        "--gaps",
        choices=["error", "fill"],
        default=None,
        help="missing bars inside the protocol's windows: error (stop and say where) or fill (flat zero-volume "
        "bars at the last close); default: the protocol's 'gaps' key, else error. Holes before the first "
        "training day never matter",
    )
    p.add_argument(
        "--universe",
        choices=["fixed", "listed"],
        default=None,
        help="coins whose data do not cover every window: fixed (stop and name the windows they cover) or listed "
        "(each window holds the coins listed over it, from its training start to its backtest end, as an index "
        "adds a new listing); default: the protocol's 'universe' key, else fixed",
    )
    p.add_argument("--workers", type=int, default=None, help="parallel trainings (default: all cores)")
    p.add_argument("--address", default=None, help="a Ray cluster to train on, e.g. auto or ray://HOST:10001")
    p.add_argument(
        "--score-on",
        choices=["backtest", "validation"],
        default="backtest",
        help="score the backtest ranges (default), or the validation ranges where the modules were "
        "selected, to choose between configurations without looking at a backtest "
        "(report in OUT/validation)",
    )
    p.add_argument(
        "--no-metrics", action="store_true", help="ignore the protocol's metrics source (an ablation: market data only)"
    )
    p.add_argument(
        "--baselines-only",
        action="store_true",
        help="train nothing: score the protocol's baselines alone (seconds; the scoreboard's reference figures)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


@command("evaluate")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from agents.evaluation import evaluate, listed_assets, load_markets, load_protocol
    from cryptorl.data.retry import FetchError
    from cryptorl.parallel import check_address
    from cryptorl.validation import check_dir, check_number

    check_number(args.workers, "--workers", low=1, integer=True, optional=True)
    check_address(args.address)
    check_dir(args.out, "--out")
    check_dir(args.store, "--store")

    try:
        protocol = load_protocol(args.protocol).subset(
            configs=_list(args.configs),
            windows=_list(args.windows),
            seeds=_list(args.seeds),
            assets=_list(args.assets),
            agents=_list(args.agents),
        )
        if args.no_metrics:
            protocol = protocol.without_metrics()
        if args.universe:
            protocol = replace(protocol, universe=args.universe)
        if not protocol.portfolios:
            raise ValueError("no portfolio of the protocol is left with these --assets")
        data = load_markets(protocol, args.store, progress=not args.no_progress, gaps=args.gaps)
    except (ValueError, FileNotFoundError, FetchError) as exc:  # DataError is a ValueError
        raise UserError(one_line(exc)) from None
    out = args.out or Path("reports") / f"evaluate-{protocol.name}"
    listed = sum(len(assets) for assets in listed_assets(protocol, data).values())
    n = 0 if args.baselines_only else listed * len(protocol.configs) * len(protocol.seeds)
    pairs = (
        f"{len(protocol.assets)} assets x {len(protocol.windows)} windows"
        if listed == len(protocol.assets) * len(protocol.windows)
        else f"{listed} (asset, window) pairs listed"
    )
    print(
        f"{protocol.name}: {pairs} x {len(protocol.seeds)} seeds x {len(protocol.configs)} configs = {n} modules"
        + (f", agents {', '.join(protocol.agents)}" if protocol.agents and not args.baselines_only else "")
        + f"; output {out}"
    )
    try:
        paths = evaluate(
            protocol,
            out,
            data=data,
            workers=args.workers,
            address=args.address,
            progress=not args.no_progress,
            on=args.score_on,
            baselines_only=args.baselines_only,
        )
    except (RuntimeError, ValueError) as exc:
        raise UserError(one_line(exc)) from None
    import pandas as pd

    if "scoreboard" in paths:
        from agents.evaluation.scoreboard import print_scoreboard

        print_scoreboard(pd.read_csv(paths["scoreboard"]), pd.read_csv(paths["versus"]), on=args.score_on)
    elif "targets" in paths:
        from agents.evaluation.report import print_targets
        from cryptorl.cli import console

        print_targets(pd.read_csv(paths["targets"]), protocol, console())
    if "skill" in paths:
        from agents.evaluation.report import skill_table

        table = skill_table(protocol, pd.read_csv(paths["skill"]))
        for r in table.to_dict("records"):
            mean = r["pooled p of the seeds' mean"]
            print(
                f"timing skill of {r['config']} on {r['portfolio']} over {r['windows']} windows: pooled p by seed "
                f"{r['pooled p by seed']}"
                + ("" if pd.isna(mean) else f", of the seeds' mean votes {mean:.3f}")
                + " (no skill: about uniform on 0-1)"
            )
    print(f"report: {paths['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
