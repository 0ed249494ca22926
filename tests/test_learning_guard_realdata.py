"""The real-data learning guard: a trained Crypto Module must time its coin better than chance.

Beating buy-and-hold in a falling market takes no skill: being out half of the time does it. So
the guard compares ``train_cm``'s default module with random policies that hold the same
exposure and trade at most as often (:func:`cryptorl.portfolio.skill.skill_test`; a module with a
prior against random filters of the same prior, so the rule's own edge is not counted as learning), on folds the
module was neither trained nor selected on: for each of four years, the module trains on 15
months, keeps its best checkpoint on the next 2 (validation), and is then scored on the 2 months
after (the check fold; the data beyond it are cut off). BTC and ETH, seed 0, six years: the
null shuffles a coin's holding periods across its six check folds (so being out in the falling
years counts as skill, as it should), and the two coins' p-values are pooled by Stouffer's method.
A policy without skill passes with probability 5 % (the test's size;
``test_the_guard_fails_policies_without_skill`` shows random and do-nothing policies failing
it, and ``tests/test_learning_power.py`` modules passing it where there is a signal to learn); the
default module must pass.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from agents.crypto_module import CMConfig
from agents.training import FORWARD_CHECK_STARTS, forward_folds, forward_split
from cryptorl.data import load_data
from cryptorl.portfolio.skill import combined_pvalue, skill_test

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

ALPHA = 0.05
ASSETS = ("BTC", "ETH")


@pytest.fixture(scope="module")
def markets(shared_data, tmp_path_factory):
    store = tmp_path_factory.mktemp("data")
    src = f"csv:{shared_data / 'prices' / 'daily'}"
    return {a: load_data(a, "1d", "2017-12-01", "2024-09-30", source=src, store=store)[0] for a in ASSETS}


def _check_pvalue(folds_of_a_coin: list[tuple[pd.Series, pd.DataFrame]]) -> float:
    return skill_test(folds_of_a_coin, interval="1d", fee=0.001, n=999).pvalue


@pytest.mark.xfail(
    strict=True,
    reason="measured: the default module (Donchian prior, final weights, reading the current bar) filters its "
    "prior no better than random filters of it on the forward folds (BTC p 0.46, ETH p 0.87, pooled p 0.77; the "
    "earlier default, whose network read up to the bar before: pooled p 0.66; with it, checkpoints kept by their "
    "validation Sortino: 0.97; by their excess over the prior: 0.96; without a prior: 0.96; the differential "
    "Sharpe reward: 0.46; OHLCV rows only: 0.82); on the demo market's planted signal the defaults do not pass "
    "either (pooled p 0.97, 0.38, 0.50 for seeds 0-2) where a module with few inputs does (0.025; "
    "benchmarks/learning_power.py); out of sample over the 25 walk-forward windows of all eight coins the "
    "scoreboard's timing-skill test gives pooled p 0.85, 0.47, 0.26, 0.54 and 0.37 for seeds 0-4, 0.31 for the "
    "seeds' mean votes (docs/evaluation.md); strict, so a module that passes turns this into a failure to remove",
)
def test_the_default_module_times_its_coin_better_than_chance(markets):
    pvalues, rows = [], []
    for asset in ASSETS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no metrics: OHLCV + market features
            # train 15 months, validate 2, check the 2 after (nothing after the check exists); with
            # a prior, the null filters that same prior
            checks = forward_folds(markets[asset], None, CMConfig(asset=asset))
        pvalues.append(_check_pvalue(checks))
        exposure = ", ".join(f"{(c[0] * c[2]).mean():.2f}" for c in checks)
        rows.append(f"{asset}: p {pvalues[-1]:.3f}, exposure by fold {exposure}")
    pooled = combined_pvalue(pvalues)
    assert pooled < ALPHA, f"no evidence of skill (pooled p {pooled:.3f}): " + "; ".join(rows)


def test_the_guard_fails_policies_without_skill(markets):
    rng = np.random.default_rng(0)
    passed = 0
    for _ in range(40):
        pvalues = []
        for asset in ASSETS:
            checks = []
            for start in FORWARD_CHECK_STARTS:
                idx = markets[asset].loc[slice(*forward_split(start).backtest)].index
                flips = np.cumsum(rng.random(len(idx)) < 0.1) % 2  # a random policy, ~6 trades a fold
                checks.append((pd.Series(flips.astype("float64"), index=idx), markets[asset]))
            pvalues.append(_check_pvalue(checks))
        passed += combined_pvalue(pvalues) < ALPHA
    assert passed <= 6  # about 5 % of 40 (P(more than 6 of 40 at 5 %) is under 1 %)
    for held in (0.0, 1.0):  # doing nothing, or holding: no evidence either way
        checks = [
            (pd.Series(held, index=markets["BTC"].loc[slice(*forward_split(s).backtest)].index), markets["BTC"])
            for s in FORWARD_CHECK_STARTS
        ]
        assert _check_pvalue(checks) == pytest.approx(0.5)
