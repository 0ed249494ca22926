"""The learner registry: a learner added in one file trains, saves and loads through train_cm."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from agents.crypto_module import CMConfig, CryptoModule, space_from_manifest, space_to_manifest
from agents.learners import LEARNERS, get_learner, register_learner
from cryptorl.modelstore import ModelStore
from experiments import train_cm


@pytest.fixture
def toy():
    import toy_learner

    LEARNERS["toydqn"] = toy_learner.LEARNER  # registered again if another test removed it
    yield toy_learner
    LEARNERS.pop("toydqn", None)


def test_the_built_in_learners_and_their_facts():
    assert list(LEARNERS)[:4] == ["dqn", "ppo", "a2c", "qrdqn"]
    assert [name for name, x in LEARNERS.items() if x.on_policy] == ["ppo", "a2c"]
    assert [name for name, x in LEARNERS.items() if x.batched] == ["dqn"]
    assert get_learner("qrdqn").defaults == get_learner("dqn").defaults
    with pytest.raises(ValueError, match="unknown algorithm 'nope': choose among a2c, dqn, ppo, qrdqn"):
        get_learner("nope")


def test_listing_the_learners_imports_no_learning_library():
    import subprocess
    import sys

    code = "import agents.learners, sys; print(sorted(m for m in ('torch', 'stable_baselines3', 'sb3_contrib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_name_is_registered_once_unless_replaced():
    with pytest.raises(ValueError, match="registered already"):
        register_learner("dqn", "stable_baselines3:DQN")
    with pytest.raises(ValueError, match="module:Class"):
        register_learner("mine", "DQN")


def test_a_toy_learner_trains_through_train_cm_and_loads_back(toy, tmp_path, capsys):
    assert "toydqn" in train_cm.build_parser()._option_string_actions["--algo"].choices
    argv = ["--asset", "BTC", "--source", "demo", "--algo", "toydqn", "--timesteps", "256", "--eval-freq", "128"]
    argv += ["--ensemble", "1", "--n-envs", "4", "--window", "10", "--episode-length", "32", "--features", ""]
    argv += ["--no-progress", "--tensorboard-log", "", "--models", str(tmp_path / "models")]
    assert train_cm.main(argv) == 0
    assert "validation (the weights kept)" in capsys.readouterr().out
    folder = ModelStore(tmp_path / "models").current("BTC", "1d")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["algorithm"] == "toydqn" and manifest["hyperparameters"]["batch_size"] == 16
    assert manifest["feature_spec"]["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
    module = CryptoModule.load(folder)
    assert type(module.sam) is toy.ToyDQN and module.sam.action_space == gym.spaces.Discrete(2)
    assert module.config == CMConfig(**manifest["config"])


def test_the_action_space_round_trips_and_old_manifests_mean_two_actions():
    for space in (gym.spaces.Discrete(3), gym.spaces.Discrete(2, start=0), gym.spaces.Box(0.0, 1.0, (1,), np.float32)):
        assert space_from_manifest(json.loads(json.dumps(space_to_manifest(space)))) == space
    assert space_from_manifest(None) == gym.spaces.Discrete(2)  # written before the field existed
    assert space_from_manifest("Discrete(2)") == gym.spaces.Discrete(2)  # written as text
    with pytest.raises(ValueError, match="unknown action space"):
        space_from_manifest("MultiBinary(4)")
