"""The batched learner: same networks as SB3's DQN, exact batched scoring, same module format,
no worse on validation than the SB3 reference over seeds."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from agents.batched import CryptoCashQ, StackedQ, dqn_hyperparams, stacked_decisions
from agents.crypto_module import (
    CMConfig,
    CryptoModule,
    build_algo,
    config_from_manifest,
    module_features,
    position_walk,
    sam_extractor,
    walk_from_cash,
)
from agents.jobs import TrainJob, train_many
from agents.networks import LatestMLP
from agents.training import paper_split, train_crypto_module
from cryptorl.data import load_data
from cryptorl.features import DataRefinementUnit
from envs import CryptoModuleEnv, CryptoModuleVecEnv
from envs.crypto_module import with_position

REAL_BTC = Path("/work/shared/data/prices/daily/BTC-USD_1d.csv")


@pytest.fixture(scope="module")
def tiny():
    market, metrics = load_data("BTC", "1d", "2021-01-01", "2022-09-30", source="demo")
    split = paper_split(market.index)
    config = CMConfig(asset="BTC", timesteps=384, n_envs=8, episode_length=32, window=10, ensemble=3)
    return market, metrics, config, split


def _random_members(config: CMConfig, env: CryptoModuleEnv, k: int, seed: int) -> list:
    """DQNs with random weights, scaled up so that their actions vary from bar to bar."""
    extractor, kwargs = sam_extractor(config)
    members = []
    for m in range(k):
        sam = build_algo(
            "dqn",
            CryptoModuleVecEnv(env, 2, seed=m),
            extractor,
            config.features_dim,
            seed=seed + m,
            extractor_kwargs=kwargs,
        )
        with torch.no_grad():
            for p in sam.q_net.parameters():
                p.mul_(3.0)
        members.append(sam)
    return members


def _bar_by_bar(module: CryptoModule, obs: np.ndarray) -> np.ndarray:
    """The walk through SB3's predict, one bar at a time (how position-observing modules decided)."""
    paths = []
    for sam in module.members:
        rows, path, position = np.array(obs, dtype=np.float32), np.empty(len(obs)), 0.0
        for i in range(len(rows)):
            with_position(rows[i], position)
            a, _ = sam.policy.predict(rows[i : i + 1], deterministic=True)
            path[i] = position = float(np.asarray(a).reshape(-1)[0])
        paths.append(path)
    return np.mean(paths, axis=0)


def test_position_walk_by_hand():
    # member 0: from cash buys at bar 1, from crypto sells at bar 3; member 1 always holds cash
    acts = np.array([[[0, 1, 0, 1], [0, 1, 1, 0]], [[0, 0, 0, 0], [1, 1, 1, 1]]])
    assert position_walk(acts).tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]


def test_the_walk_from_bar_skip_decides_only_the_bars_it_needs():
    t, skip = 400, 300
    follow = np.zeros((1, 2, t), dtype=np.int64)
    follow[0, :, 250:] = 1  # both walks buy at bar 250 whatever they held: they meet there
    sticky = np.stack([np.zeros(t), np.ones(t)])[None].astype(np.int64)  # keeps what it holds: never meet
    for acts, first in ((follow, skip - 64), (sticky, 0)):
        starts = []

        def both(start, acts=acts, starts=starts):
            starts.append(start)
            return acts[:, :, start:]

        assert np.array_equal(walk_from_cash(both, skip), position_walk(acts)[:, skip:])
        assert starts[0] == skip - 64 and starts[-1] == first
    assert not position_walk(sticky).any()  # from cash, the sticky member never buys


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.floats(0.0, 1.0))
def test_the_walk_from_bar_skip_is_the_walk_from_cash(seed, t, where):
    rng = np.random.default_rng(seed)
    sticky = rng.random()
    acts = (rng.random((3, 2, t)) < 0.5).astype(np.int64)
    keep = rng.random((3, 1, t)) < sticky  # members that often keep what they hold
    acts = np.where(keep, np.arange(2)[None, :, None], acts)
    skip = int(where * (t - 1))
    assert np.array_equal(walk_from_cash(lambda s: acts[:, :, s:], skip, lead=4), position_walk(acts)[:, skip:])


@pytest.mark.parametrize("seed, network", [(0, "cnn"), (7, "cnn"), (0, "mlp")])
def test_batched_scoring_equals_the_bar_by_bar_walk(tiny, seed, network):
    market, metrics, config, split = tiny
    dru = DataRefinementUnit().fit(market, metrics, split.train[1], asset="BTC")
    cfg = replace(config, ensemble=4, network=network)
    feats = module_features(dru, market, metrics, cfg)
    members = _random_members(cfg, CryptoModuleEnv(market, feats, window=cfg.window, observe_position=True), 4, seed)
    module = CryptoModule(cfg, dru, members[0], members=members)
    env = module.env(market, metrics)
    obs = env.obs_tensor[env.first_step :]
    old = _bar_by_bar(module, obs)
    assert 0.1 < old.mean() < 0.9 and np.abs(np.diff(old)).sum() >= 4  # the paths trade: equality can fail
    q = StackedQ([m.q_net for m in members], torch.device("cpu"))
    for skip in (0, 3, 90, len(obs) - 1):  # from bar skip on, as the walk from the first bar
        assert np.array_equal(module._actions(obs, skip), old[skip:])
        assert np.array_equal(stacked_decisions(q, obs, True, torch.device("cpu"), skip).mean(axis=0), old[skip:])
    x = torch.as_tensor(np.array(obs[:50]))
    stacked = q(x.expand(4, *x.shape))
    for k, m in enumerate(members):
        torch.testing.assert_close(stacked[k], m.q_net(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("observe_position", [True, False])
@pytest.mark.parametrize("align_latest", [True, False])
def test_the_training_forward_computes_the_q_networks(tiny, observe_position, align_latest):
    market, metrics, config, split = tiny
    config = replace(config, align_latest=align_latest)  # a window of 10: conv1 leaves out one position
    dru = DataRefinementUnit().fit(market, metrics, split.train[1], asset="BTC")
    feats = module_features(dru, market, metrics, config)
    env = CryptoModuleEnv(market, feats, window=config.window, observe_position=observe_position)
    members = _random_members(config, env, 3, 1)
    q = StackedQ([m.q_net for m in members], torch.device("cpu"))
    table = torch.as_tensor(np.array(env.obs_tensor))
    assert CryptoCashQ.cash_row_is_constant(env.obs_tensor, env.first_step, observe_position)
    skip = members[0].q_net.features_extractor.conv1.offset(config.window)
    assert skip == int(align_latest)
    fast = CryptoCashQ(table, env.first_step, observe_position, skip)
    rng = np.random.default_rng(3)
    bars = torch.as_tensor(rng.integers(env.first_step, env.last_step + 1, (3, 64)))
    pos = torch.as_tensor(rng.integers(0, 2, (3, 64)), dtype=torch.float32)
    x = table[bars]
    if observe_position:
        x = torch.as_tensor(with_position(x.numpy().copy(), pos.numpy()))
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            got = fast(q.params, bars, pos)
        torch.testing.assert_close(got, q(x), rtol=1e-4, atol=1e-5)  # float32 sums in another order
    for k, m in enumerate(members):
        torch.testing.assert_close(got[k], m.q_net(x[k]), rtol=1e-4, atol=1e-5)


def test_the_mlp_q_networks_need_the_newest_bar_alone(tiny):
    """The batched learner trains a LatestMLP on the table's newest window position only: the
    Q-values of the whole observations."""
    market, metrics, config, split = tiny
    config = replace(config, network="mlp")
    dru = DataRefinementUnit().fit(market, metrics, split.train[1], asset="BTC")
    env = CryptoModuleEnv(
        market, module_features(dru, market, metrics, config), window=config.window, observe_position=True
    )
    q = StackedQ([m.q_net for m in _random_members(config, env, 3, 1)], torch.device("cpu"))
    rng = np.random.default_rng(3)
    bars = rng.integers(env.first_step, env.last_step + 1, (3, 64))
    x = torch.as_tensor(with_position(np.array(env.obs_tensor)[bars], rng.integers(0, 2, (3, 64)).astype(np.float32)))
    torch.testing.assert_close(q(x[..., -1:].contiguous()), q(x))
    assert not torch.allclose(q(x[..., :1].contiguous()), q(x))  # the oldest position is not the newest


def test_batched_module_round_trips_and_records_its_backend(tmp_path, tiny):
    market, metrics, config, split = tiny
    module, record = train_crypto_module(market, metrics, replace(config, selection="sortino"), split, eval_freq=128)
    assert config.learner == "batched" and len(module.members) == 3
    assert [r["timesteps"] for r in record.history] == [128.0, 256.0, 384.0, 384.0]
    assert record.best_score == max(r["Sortino"] for r in record.history)
    loaded = CryptoModule.load(module.save(tmp_path))
    assert loaded.config.backend == "batched"
    a, b = module.decide_range(market, metrics), loaded.decide_range(market, metrics)
    assert a.equals(b) and 0.0 < a["crypto"].mean() < 1.0
    # the members differ (own seeds) and are plain SB3 DQNs
    p0, p1 = (m.q_net.state_dict() for m in module.members[:2])
    assert not all(torch.equal(p0[k], p1[k]) for k in p0)
    assert type(module.sam).__name__ == "DQN"


@pytest.mark.parametrize("backend", ["batched", "sb3"])
def test_under_last_the_checkpoints_are_validated_only_where_someone_reads_them(tmp_path, tiny, backend):
    """selection="last" keeps the final weights whatever validation says: without TensorBoard
    (or a progress bar, or on_evaluate) the members are validated once, after training, and the
    module is the one trained with a validation every eval_freq steps."""
    market, metrics, config, split = tiny
    cfg = replace(config, backend=backend, selection="last", prior_fallback=False)
    quiet, q_rec = train_crypto_module(market, metrics, cfg, split, eval_freq=128)
    logged, l_rec = train_crypto_module(market, metrics, cfg, split, eval_freq=128, tensorboard_log=str(tmp_path))
    assert [r["timesteps"] for r in q_rec.history] == [384.0]
    assert [r["timesteps"] for r in l_rec.history] == [128.0, 256.0, 384.0, 384.0]
    assert q_rec.history[-1] == l_rec.history[-1] and q_rec.best_score == l_rec.best_score
    for a, b in zip(quiet.members, logged.members, strict=True):
        sa, sb = a.policy.state_dict(), b.policy.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert quiet.validation == logged.validation
    decided = quiet.decide_range(market, metrics)
    assert decided.equals(logged.decide_range(market, metrics)) and 0.0 < decided["crypto"].mean() < 1.0


def test_the_fallback_deflates_for_the_checkpoints_chosen_among(tmp_path, tiny, monkeypatch):
    """prior_confidence deflates the learned filter's lead over its prior for the checkpoints each
    member chose among: one under last (TensorBoard on or off), every validation under sortino."""
    import agents.training as training

    seen = []
    keep = training.keep_prior_unless_beaten

    def spy(*args, checkpoints, **kwargs):
        seen.append(checkpoints)
        return keep(*args, checkpoints=checkpoints, **kwargs)

    monkeypatch.setattr(training, "keep_prior_unless_beaten", spy)
    market, metrics, config, split = tiny
    cfg = replace(config, ensemble=1, prior_confidence=0.5)
    train_crypto_module(market, metrics, cfg, split, eval_freq=128)
    train_crypto_module(market, metrics, cfg, split, eval_freq=128, tensorboard_log=str(tmp_path))
    _, rec = train_crypto_module(market, metrics, replace(cfg, selection="sortino"), split, eval_freq=128)
    assert seen == [1, 1, len(rec.history)] and len(rec.history) == 4


@pytest.mark.parametrize("align_latest", [True, False])
def test_a_saved_module_keeps_its_networks_time_alignment(tmp_path, tiny, align_latest):
    """A module saved before align_latest existed has no such field: it loads with the alignment
    it was trained with (False), and every module decides after loading as before saving."""
    market, metrics, config, split = tiny
    cfg = replace(config, align_latest=align_latest)
    dru = DataRefinementUnit().fit(market, metrics, split.train[1], asset="BTC")
    env = CryptoModuleEnv(market, module_features(dru, market, metrics, cfg), window=cfg.window, observe_position=True)
    members = _random_members(cfg, env, 3, 0)
    module = CryptoModule(cfg, dru, members[0], members=members)
    loaded = CryptoModule.load(module.save(tmp_path))
    assert all(m.q_net.features_extractor.conv1.align_latest is align_latest for m in loaded.members)
    assert module.decide_range(market, metrics).equals(loaded.decide_range(market, metrics))
    assert config_from_manifest({"asset": "BTC"}).align_latest is False


def test_an_mlp_module_trains_batched_and_round_trips(tmp_path, tiny):
    """network="mlp": the batched learner trains the dense network (its generic forward, the CNN's
    fast path left out), and the module saves, names its network and loads to the same decisions."""
    market, metrics, config, split = tiny
    cfg = replace(config, network="mlp")
    module, _ = train_crypto_module(market, metrics, cfg, split, eval_freq=128)
    assert all(isinstance(m.q_net.features_extractor, LatestMLP) for m in module.members)
    folder = module.save(tmp_path)
    loaded = CryptoModule.load(folder)
    assert loaded.config.network == "mlp" and loaded.manifest()["network"]["sam"] == "LatestMLP(features_dim=64)"
    assert module.decide_range(market, metrics).equals(loaded.decide_range(market, metrics))
    assert config_from_manifest({"asset": "BTC"}).network == "cnn"
    with pytest.raises(ValueError, match="unknown network"):
        CMConfig(network="rnn")


def test_manifest_without_a_backend_is_an_sb3_module():
    assert config_from_manifest({"asset": "BTC"}).backend == "sb3"
    assert CMConfig(algo="ppo").learner == "sb3" and CMConfig().learner == "batched"
    with pytest.raises(ValueError, match="backend"):
        CMConfig(backend="jax")
    with pytest.raises(ValueError, match="does not implement"):
        dqn_hyperparams({"optimize_memory_usage": True})


@pytest.mark.parametrize("backend", ["sb3", "batched"])
def test_training_leaves_nothing_in_the_temp_folder(tiny, backend):
    market, metrics, config, split = tiny
    tmp = Path(tempfile.gettempdir())
    before = {p.name for p in tmp.iterdir()}
    train_crypto_module(market, metrics, replace(config, backend=backend, ensemble=2), split, eval_freq=128)
    new = {p.name for p in tmp.iterdir()} - before
    assert not [n for n in new if n.startswith("SB3-")], new


@pytest.mark.slow
def test_batched_ensembles_on_ray_equal_the_in_process_ones(tiny, ray_local):
    market, metrics, config, split = tiny
    jobs = [TrainJob(market, metrics, replace(config, seed=s), split, eval_freq=128) for s in (0, 1)]
    sequential = train_many(jobs, workers=1, progress=False)
    parallel = train_many(jobs, progress=False)
    for s, p in zip(sequential, parallel, strict=True):
        seq, par = s.value.module(), p.value.module()
        for a, b in zip(seq.members, par.members, strict=True):
            sa, sb = a.q_net.state_dict(), b.q_net.state_dict()
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert s.value.history == p.value.history
        assert seq.decide_range(market, metrics).equals(par.decide_range(market, metrics))
    assert sequential[0].value.history != sequential[1].value.history  # the seeds matter


def _validation_sortinos(market, metrics, split, config, seeds) -> np.ndarray:
    out = []
    for backend in ("sb3", "batched"):
        row = []
        for s in seeds:
            _, rec = train_crypto_module(
                market, metrics, replace(config, seed=s, backend=backend), split, eval_freq=500
            )
            row.append(rec.best_score)
        out.append(row)
    return np.array(out)


def _not_worse(scores: np.ndarray, tolerance: float) -> None:
    """Batched no worse than SB3: the median gap above -tolerance, and a one-sided Mann-Whitney
    test of "batched (+ tolerance) ranks below sb3" not significant (ranks: a validation Sortino
    of a checkpoint with almost no downside can be in the hundreds)."""
    sb3, batched = scores
    gap = np.median(batched) - np.median(sb3)
    test = stats.mannwhitneyu(batched + tolerance, sb3, alternative="less")
    assert gap > -tolerance and test.pvalue > 0.05, (sb3, batched)


STAT = dict(timesteps=3_000, n_envs=16, episode_length=32, ensemble=1, window=10)


@pytest.mark.slow
def test_batched_is_not_worse_than_sb3_on_the_planted_signal():
    market, metrics = load_data("BTC", "1d", "2019-01-01", "2022-09-30", source="demo")
    split = paper_split(market.index)
    scores = _validation_sortinos(market, metrics, split, CMConfig(asset="BTC", **STAT), range(4))
    _not_worse(scores, tolerance=0.5)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not REAL_BTC.is_file(), reason="real data absent")
def test_batched_is_not_worse_than_sb3_on_daily_btc():
    import pandas as pd

    from cryptorl.data.frames import validate_market

    raw = pd.read_csv(REAL_BTC, parse_dates=["datetime"], index_col="datetime")
    market = validate_market(raw, "BTC", "1d", allow_gaps=True).loc["2019-01-01":"2023-12-31"]
    split = paper_split(market.index)
    scores = _validation_sortinos(market, None, split, CMConfig(asset="BTC", **STAT), range(4))
    _not_worse(scores, tolerance=0.5)


def test_one_vector_env_of_k_groups_steps_as_k_vector_envs():
    template = CryptoModuleEnv(None, None, window=10, episode_length=16, observe_position=True)
    joint = CryptoModuleVecEnv(template, 6, seed=[s + i for s in (0, 1000) for i in range(3)])
    parts = [CryptoModuleVecEnv(template, 3, seed=s) for s in (0, 1000)]
    obs = [joint.reset(), *[p.reset() for p in parts]]
    assert np.array_equal(obs[0], np.concatenate(obs[1:]))
    rng = np.random.default_rng(0)
    for _ in range(40):  # past the episodes' ends: resets draw from each environment's generator
        a = rng.integers(0, 2, size=6)
        o, r, d, _ = joint.step(a)
        outs = [p.step(a[3 * k : 3 * k + 3]) for k, p in enumerate(parts)]
        assert np.array_equal(o, np.concatenate([x[0] for x in outs]))
        assert np.array_equal(r, np.concatenate([x[1] for x in outs]))
    with pytest.raises(ValueError, match="seeds"):
        joint.seed([1, 2])
