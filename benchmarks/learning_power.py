"""Can a Crypto Module learn to time a coin when there is something to learn? The learning guard's
skill test on the demo market, whose planted leading metrics carry next bars' drift.

The real-data learning guard (``tests/test_learning_guard_realdata.py``) finds that no module
configuration times the real coins better than random policies with the same exposure and trades.
This script asks the same question where the answer is known to be yes: on the demo market
(:mod:`cryptorl.data.demo`) three metrics per coin lead its returns. On the guard's folds (for
each of six years: train 15 months, validate 2, check the 2 after; the data beyond cut off) it
scores with :func:`cryptorl.portfolio.skill.skill_test`, per coin and pooled (Stouffer):

* **rules** that need no learning: in the coin while the mean of its planted leading metrics
  (known one bar late) is above its training-range median (the ceiling), the same rule filtering
  the default prior (the ceiling of a module with that prior, tested against random filters of
  it), and while the DRU's principal component most correlated with the next 12 bars' return on
  the training range is on that side (what the refined observation carries);
* **trained modules**, ``CMConfig`` with each ``--configs`` entry's options (a JSON object); a
  module without a prior is also tested as a filter of the default prior (its decisions against
  random filters of that prior: the null a module with the prior faces, which has less power);
* **classifiers** in the learner's place (``--classifiers``): the meta-labelling agents
  (:mod:`agents.meta_label`) fitted on each fold's training and validation bars of the one coin,
  reading the market features, the prior and every metric, their decisions tested as filters of
  the prior: how much a supervised learner finds on the same inputs and folds.

    python benchmarks/learning_power.py                 # about five minutes on 2 cores
    python benchmarks/learning_power.py --assets BTC --configs '{}' '{"prior": "none"}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.crypto_module import CMConfig, prior_position  # noqa: E402
from agents.meta_label import CLASSIFIERS, MetaLabelAgent  # noqa: E402
from agents.training import FORWARD_CHECK_STARTS, forward_folds, forward_split  # noqa: E402
from cryptorl.data.demo import demo_data, demo_planted  # noqa: E402
from cryptorl.features import DataRefinementUnit  # noqa: E402
from cryptorl.portfolio.skill import combined_pvalue, skill_test  # noqa: E402

CONFIGS = (
    "{}",  # train_cm's defaults
    '{"prior": "none"}',
    '{"prior": "none", "features": [], "dru": {"max_metrics": 3}}',  # few inputs: the DRU's top three metrics
    # the same few inputs as a filter of the default prior: trained on the whole coin, never falling back
    '{"features": [], "dru": {"max_metrics": 3}, "train_on_prior": false, "prior_fallback": false}',
    # the same way of filtering with the defaults' inputs, read by two dense layers over the current bar
    '{"network": "mlp", "train_on_prior": false, "prior_fallback": false}',
)


PRIOR = CMConfig().prior  # the default prior, which a filter is tested against


def default_prior(market: pd.DataFrame) -> pd.Series:
    """The default prior's position at each bar (none while it warms up)."""
    return prior_position(market, CMConfig()).fillna(0.0)


def filtering(folds: list, prior: pd.Series) -> list:
    """``(position, market, ...)`` folds as filters of ``prior``: tested against random filters of it."""
    return [(position, cut, prior.reindex(position.index).to_numpy()) for position, cut, *_ in folds]


def pvalue(folds: list) -> float:
    return skill_test(folds, interval="1d", fee=0.001, n=999).pvalue


def rule_folds(asset: str, market: pd.DataFrame, metrics: pd.DataFrame, prior: pd.Series) -> dict[str, list]:
    """The rules' folds; the planted rule also as a filter of ``prior``."""
    leading = metrics[demo_planted(asset).leading].mean(axis=1).shift(1)
    planted, best_component = [], []
    for start in FORWARD_CHECK_STARTS:
        split = forward_split(start)
        c0, c1 = split.backtest
        cut = market.loc[:c1]
        planted.append(((leading.loc[c0:c1] > leading.loc[: split.train[1]].median()).astype(float), cut))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dru = DataRefinementUnit().fit(cut, metrics.loc[:c1], split.train[1], asset=asset)
            refined = dru.transform(cut, metrics.loc[:c1], asset=asset)
        train = refined.loc[split.train[0] : split.train[1]]
        ahead = np.log(cut["close"]).diff(12).shift(-12).reindex(train.index)
        corr = {c: train[c].corr(ahead) for c in refined.columns}
        best = max(corr, key=lambda c: abs(corr[c]))
        best_component.append(((np.sign(corr[best]) * refined[best]).loc[c0:c1].gt(0).astype(float), cut))
    return {
        "rule: planted metrics": planted,
        f"rule: planted metrics, filtering the {PRIOR} prior": filtering(planted, prior),
        "rule: best DRU component": best_component,
    }


def classifier_folds(kind: str, asset: str, market: pd.DataFrame, metrics: pd.DataFrame, seed: int) -> list:
    """A meta-labelling agent's decisions on each guard fold, as a filter of its (the default) prior."""
    folds = []
    for start in FORWARD_CHECK_STARTS:
        split = forward_split(start)
        c0, c1 = split.backtest
        cut, seen = {asset: market.loc[:c1]}, {asset: metrics.loc[:c1]}
        agent = MetaLabelAgent(kind, use_metrics=True, seed=seed).fit(cut, seen, end=split.validation[1])
        take, rule = agent.decisions(cut, seen, start=c0, end=c1)
        folds.append((take[asset], cut[asset], rule[asset].to_numpy()))
    return folds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", nargs="+", default=["BTC", "ETH"], help="demo coins")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), help="CMConfig options, JSON objects")
    parser.add_argument(
        "--classifiers", nargs="*", default=list(CLASSIFIERS), help=f"meta-labellers among {', '.join(CLASSIFIERS)}"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = {a: demo_data(a, "1d", "2017-12-01", "2024-09-30") for a in args.assets}
    priors = {a: default_prior(market) for a, (market, _) in data.items()}
    rows: dict[str, list[float]] = {}
    for asset, (market, metrics) in data.items():
        for name, fs in rule_folds(asset, market, metrics, priors[asset]).items():
            rows.setdefault(name, []).append(pvalue(fs))
    for kind in args.classifiers:
        for asset, (market, metrics) in data.items():
            name = f"meta_{kind} (market features, prior, metrics), filtering the {PRIOR} prior"
            rows.setdefault(name, []).append(pvalue(classifier_folds(kind, asset, market, metrics, args.seed)))
    for text in args.configs:
        t = time.perf_counter()
        options = json.loads(text)
        for asset, (market, metrics) in data.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fs = forward_folds(market, metrics, CMConfig(asset=asset, seed=args.seed, **options))
            rows.setdefault(f"module {text}", []).append(pvalue(fs))
            if options.get("prior") == "none":
                name = f"module {text}, as a filter of the {PRIOR} prior"
                rows.setdefault(name, []).append(pvalue(filtering(fs, priors[asset])))
        print(f"trained {text} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    print(f"skill-test p-values on the demo market's guard folds (seed {args.seed}; small is skill)")
    print(f"{'policy':<100} " + " ".join(f"{a:>6}" for a in args.assets) + "  pooled")
    for name, ps in rows.items():
        print(f"{name:<100} " + " ".join(f"{p:6.3f}" for p in ps) + f"  {combined_pvalue(ps):6.3f}")


if __name__ == "__main__":
    main()
