"""Learning can pass the learning guard: on the demo market, whose planted leading metrics carry
the next bars' drift, Crypto Modules with few inputs time their coin better than random policies
with the same exposure and trades, on the guard's forward folds and with its skill test
(``tests/test_learning_guard_realdata.py``; ``benchmarks/learning_power.py`` scores more
configurations and the rules that need no learning)."""

from __future__ import annotations

import warnings

import pytest

from agents.crypto_module import CMConfig
from agents.training import forward_folds
from cryptorl.data.demo import demo_data
from cryptorl.portfolio.skill import combined_pvalue, skill_test

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo():
    return {a: demo_data(a, "1d", "2017-12-01", "2024-09-30") for a in ("BTC", "ETH")}


LEAN = {"prior": "none", "features": [], "dru": {"max_metrics": 3}}


def _pvalue(asset: str, market, metrics, seed: int, **options) -> float:
    config = CMConfig(asset=asset, seed=seed, **(options or LEAN))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        folds = forward_folds(market, metrics, config)
    return skill_test(folds, interval="1d", fee=0.001, n=999).pvalue


def test_modules_with_few_inputs_learn_the_planted_signal_over_seeds(demo):
    """Over three seeds, BTC and ETH pooled: every seed's p-value is below 5 % (a policy without
    skill passes with probability 5 % each time)."""
    pooled = [combined_pvalue([_pvalue(a, *demo[a], seed) for a in demo]) for seed in (0, 1, 2)]
    assert max(pooled) < 0.05, pooled


def test_the_dense_network_learns_it_with_the_defaults_inputs(demo):
    """Two dense layers over the current bar (``network="mlp"``), reading the defaults' inputs (the
    seven market features and every DRU component) without a prior: every seed below 5 % too
    (0.018, 0.001, 0.004), where the CNN on the same inputs is not (0.36, 0.31, 0.14), nor the
    same network trained for 512 steps (0.09, 0.25, 0.18)."""
    pooled = [
        combined_pvalue([_pvalue(a, *demo[a], seed, prior="none", network="mlp") for a in demo]) for seed in (0, 1, 2)
    ]
    assert max(pooled) < 0.05, pooled
