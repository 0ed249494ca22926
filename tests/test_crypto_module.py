"""Crypto Modules: they learn the demo market's planted signal, save/load exactly, refuse bad data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.crypto_module import CMConfig, CryptoModule
from agents.training import Split, paper_split, policy_backtest, train_crypto_module
from cryptorl.data.demo import demo_data
from cryptorl.data.frames import to_utc_timestamp as utc
from cryptorl.modelstore import ModelStore, ModelStoreError
from cryptorl.portfolio.backtest import backtest

ASSET = "BTC"
SPLIT = Split(
    (utc("2019-07-01"), utc("2021-06-30")),
    (utc("2021-07-01"), utc("2021-12-31")),
    (utc("2022-01-01"), utc("2022-09-30")),
)


@pytest.fixture(scope="module")
def data():
    return demo_data(ASSET, "1d", "2019-01-01", "2022-09-30")


def _sortino(weights_crypto: np.ndarray, index: pd.DatetimeIndex, market: pd.DataFrame) -> float:
    w = pd.DataFrame({"cash": 1.0 - weights_crypto, ASSET: weights_crypto}, index=index)
    return backtest(w, {ASSET: market}, interval="1d").metrics()["Sortino"]


@pytest.fixture(scope="module")
def trained(data):
    market, metrics = data
    out = []
    for seed in range(3):
        cfg = CMConfig(asset=ASSET, algo="ppo", timesteps=8_000, seed=seed, ensemble=1)
        module, _ = train_crypto_module(market, metrics, cfg, SPLIT, eval_freq=2_000)
        out.append(module)
    return out


@pytest.mark.slow
def test_learns_the_planted_signal_across_seeds(data, trained):
    """Over 3 seeds: the mean validation Sortino beats buy-and-hold and random, and so do most seeds."""
    market, metrics = data
    idx = market.loc[SPLIT.validation[0] : SPLIT.validation[1]].index
    bh = _sortino(np.ones(len(idx)), idx, market)
    rng = np.random.default_rng(0)
    rand = np.mean([_sortino(rng.integers(0, 2, len(idx)).astype(float), idx, market) for _ in range(20)])
    val = [m.validation["Sortino"] for m in trained]
    assert np.mean(val) > bh and sum(v > bh for v in val) >= 2, (val, bh)
    assert np.mean(val) > rand and sum(v > rand for v in val) >= 2, (val, rand)
    # Out of sample too: on the untouched backtest range the modules beat buy-and-hold on average.
    bidx = market.loc[SPLIT.backtest[0] : SPLIT.backtest[1]].index
    bt = [policy_backtest(m, market, metrics, *SPLIT.backtest).metrics()["Sortino"] for m in trained]
    bh_bt = _sortino(np.ones(len(bidx)), bidx, market)
    assert np.mean(bt) > bh_bt, (bt, bh_bt)


def test_save_load_decides_bit_for_bit(tmp_path, data, trained):
    market, metrics = data
    module = trained[0]
    folder = module.save(ModelStore(tmp_path))
    loaded = CryptoModule.load(folder)
    a = module.decide_range(market, metrics, *SPLIT.backtest)
    b = loaded.decide_range(market, metrics, *SPLIT.backtest)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    env = module.env(market, metrics)
    obs = env.obs_tensor[env.first_step + 5]
    assert module.decide(obs) == loaded.decide(obs)
    assert sum(module.decide(obs)) == 1.0
    assert ModelStore(tmp_path).current(ASSET, "1d") == folder


def test_refuses_tampered_truncated_and_unfit_data(tmp_path, data, trained):
    market, metrics = data
    folder = trained[0].save(ModelStore(tmp_path))
    manifest = folder / "manifest.json"
    assert "SANPY_APIKEY" not in manifest.read_text()
    # other interval
    loaded = CryptoModule.load(folder)
    hourly, hourly_metrics = demo_data(ASSET, "1h", "2022-01-01", "2022-02-01")
    with pytest.raises(ModelStoreError, match="trained on 1d bars"):
        loaded.decide_range(hourly, hourly_metrics)
    # missing metric
    chosen = loaded.dru.metrics[0]
    with pytest.raises(ModelStoreError, match=chosen):
        loaded.decide_range(market, metrics.drop(columns=[chosen]))
    # tampered: one byte changed
    sam = folder / "sam.zip"
    raw = bytearray(sam.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    sam.write_bytes(bytes(raw))
    with pytest.raises(ModelStoreError, match="sha256"):
        CryptoModule.load(folder)
    # truncated DRU state
    folder2 = trained[0].save(ModelStore(tmp_path))
    dru_json = folder2 / "dru" / "dru.json"
    dru_json.write_text(dru_json.read_text()[:50])
    with pytest.raises(ModelStoreError, match="sha256"):
        CryptoModule.load(folder2)


def test_dqn_with_eam_trains_and_round_trips(tmp_path, data):
    market, metrics = data
    cfg = CMConfig(
        asset=ASSET,
        algo="dqn",
        timesteps=1_000,
        with_eam=True,
        eam_timesteps=1_000,
        seed=0,
        ensemble=1,
        hyperparams={"learning_starts": 200},
    )
    module, callback = train_crypto_module(market, metrics, cfg, SPLIT, eval_freq=500)
    assert module.eam is not None and callback.history
    env = module.env(market, metrics)
    assert "signal" in " ".join(env.feature_names)
    loaded = CryptoModule.load(module.save(ModelStore(tmp_path)))
    pd.testing.assert_frame_equal(
        module.decide_range(market, metrics, *SPLIT.validation), loaded.decide_range(market, metrics, *SPLIT.validation)
    )


def test_decide_range_uses_no_future_data(data, trained):
    market, metrics = data
    module = trained[1]
    cut = utc("2022-03-01")
    before = module.decide_range(market, metrics, SPLIT.backtest[0], SPLIT.backtest[1]).loc[:cut]
    future = market.index > cut
    m2, x2 = market.copy(), metrics.copy()
    m2.loc[future, ["open", "high", "low", "close"]] *= 3.0
    x2.loc[future] = x2.loc[future] * -5.0
    after = module.decide_range(m2, x2, SPLIT.backtest[0], SPLIT.backtest[1]).loc[:cut]
    pd.testing.assert_frame_equal(before, after)


def test_paper_split_proportions():
    idx = pd.date_range("2020-10-01", "2022-09-30", freq="1D", tz="UTC")
    s = paper_split(idx)
    assert s.backtest[0] == utc("2022-03-01") or abs((s.backtest[0] - utc("2022-03-01")).days) <= 2
    assert s.train[0] == idx[0]
    assert s.train[1] < s.validation[0] < s.validation[1] < s.backtest[0]
    assert 55 <= (s.validation[1] - s.validation[0]).days <= 62


@pytest.fixture(scope="module")
def ensemble(data):
    market, metrics = data
    cfg = CMConfig(
        asset=ASSET,
        timesteps=2_000,
        seed=4,
        ensemble=3,
        observe_position=True,
        prior="none",  # the votes are the decisions (tests/test_prior.py covers the prior)
        hyperparams={"learning_starts": 200},
    )
    module, _ = train_crypto_module(market, metrics, cfg, SPLIT, eval_freq=1_000)
    return module


def test_ensemble_votes_its_members_each_walking_its_own_position(data, ensemble):
    market, metrics = data
    assert len(ensemble.members) == 3 and "x3" in repr(ensemble)
    weights = [m.policy.state_dict()["q_net.q_net.0.weight"] for m in ensemble.members]
    assert not any(np.array_equal(weights[0], w) for w in weights[1:])  # three seeds, three networks
    env = ensemble.env(market, metrics)
    assert env.feature_names[-1] == "position"
    got = ensemble.decide_range(market, metrics, *SPLIT.backtest)
    lo = env.index.searchsorted(SPLIT.backtest[0])
    paths = []
    for sam in ensemble.members:  # by hand: bar by bar from the first complete observation, in cash
        position, path = 0.0, []
        for t in range(env.first_step, len(env.index)):
            obs = env.obs_tensor[t].copy()
            obs[-1, 0, :], obs[-1, 1, :] = position, 1.0 - position
            position = float(sam.predict(obs, deterministic=True)[0])
            path.append(position)
        paths.append(path[lo - env.first_step : lo - env.first_step + len(got)])
    np.testing.assert_allclose(got["crypto"].to_numpy(), np.mean(paths, axis=0))
    assert set(np.round(got["crypto"] * 3, 9)) <= {0.0, 1.0, 2.0, 3.0}
    later = ensemble.decide_range(market, metrics, utc("2022-05-01"), SPLIT.backtest[1])
    pd.testing.assert_frame_equal(later, got.loc[later.index])  # the same path, whatever range is asked


def test_ensemble_round_trips_and_uses_no_future_data(tmp_path, data, ensemble):
    market, metrics = data
    folder = ensemble.save(ModelStore(tmp_path))
    assert {p.name for p in folder.glob("sam*.zip")} == {"sam.zip", "sam_1.zip", "sam_2.zip"}
    loaded = CryptoModule.load(folder)
    before = ensemble.decide_range(market, metrics, *SPLIT.backtest)
    pd.testing.assert_frame_equal(before, loaded.decide_range(market, metrics, *SPLIT.backtest), check_exact=True)
    cut = utc("2022-03-01")
    future = market.index > cut
    m2, x2 = market.copy(), metrics.copy()
    m2.loc[future, ["open", "high", "low", "close"]] *= 3.0
    x2.loc[future] = x2.loc[future] * -5.0
    after = loaded.decide_range(m2, x2, *SPLIT.backtest)
    pd.testing.assert_frame_equal(before.loc[:cut], after.loc[:cut])


@pytest.mark.parametrize(
    "bad",
    [dict(ensemble=0), dict(ensemble=2.5), dict(ensemble=True), dict(observe_position="yes"), dict(reward="sharpe")],
)
def test_config_refuses_bad_ensemble_options(bad):
    with pytest.raises(ValueError, match="ensemble|observe_position|reward"):
        CMConfig(**bad)


def test_the_config_offers_the_environments_rewards():
    from agents.config import REWARDS
    from envs.crypto_module import REWARDS as ENV_REWARDS

    assert REWARDS == ENV_REWARDS


@pytest.mark.parametrize("backend", ["sb3", "batched"])
def test_validation_measures_what_decide_range_decides(data, backend):
    """One validation measure: the kept checkpoint's validation figures (both backends) are the
    backtest of the module's own decide_range over the validation range, whose position path
    starts at the data's first observation, not in cash at the validation start."""
    market, metrics = data
    config = CMConfig(asset=ASSET, ensemble=1, timesteps=1_500, backend=backend, observe_position=True)
    module, record = train_crypto_module(market, metrics, config, SPLIT, eval_freq=500)
    again = policy_backtest(module, market, metrics, *SPLIT.validation).metrics()
    for key in ("Sortino", "ARR", "MaxDrawdown"):
        assert record.best_metrics[key] == pytest.approx(again[key], rel=1e-9, abs=1e-12), key


@pytest.mark.slow
def test_dqn_learns_the_planted_signal_from_the_differential_sharpe_reward(data):
    """reward="dsr" reaches the learner: over 3 seeds, DQN modules trained on the differential
    Sharpe ratio beat buy-and-hold and random on validation."""
    market, metrics = data
    idx = market.loc[SPLIT.validation[0] : SPLIT.validation[1]].index
    bh = _sortino(np.ones(len(idx)), idx, market)
    rng = np.random.default_rng(0)
    rand = np.mean([_sortino(rng.integers(0, 2, len(idx)).astype(float), idx, market) for _ in range(20)])
    val = []
    for seed in range(3):
        cfg = CMConfig(asset=ASSET, reward="dsr", seed=seed, ensemble=1, prior="none")
        module, _ = train_crypto_module(market, metrics, cfg, SPLIT, eval_freq=2_000)
        assert module.config.reward == "dsr"
        val.append(module.validation["Sortino"])
    assert np.mean(val) > max(bh, rand) and sum(v > max(bh, rand) for v in val) >= 2, (val, bh, rand)


@pytest.mark.parametrize("unit", [1e-7, 1e3])
def test_the_price_unit_does_not_change_what_a_module_learns_or_decides(data, unit):
    """A coin priced in millionths of a dollar or in thousands is the same coin: the default
    module sees the same observations, learns the same weights and decides the same shares
    (features, prior and rewards are built from ratios of prices), with or without the metrics."""
    market, metrics = data
    priced = market.copy()
    priced[["open", "high", "low", "close"]] *= unit
    config = CMConfig(asset=ASSET, timesteps=2_000, prior_fallback=False)
    for known in (None, metrics):
        a, _ = train_crypto_module(market, known, config, SPLIT)
        b, _ = train_crypto_module(priced, known, config, SPLIT)
        obs_a, obs_b = np.asarray(a.env(market, known).obs_tensor), np.asarray(b.env(priced, known).obs_tensor)
        np.testing.assert_allclose(obs_b, obs_a, rtol=1e-9, atol=1e-12)
        da, db = a.decide_range(market, known), b.decide_range(priced, known)
        np.testing.assert_allclose(db["crypto"].to_numpy(), da["crypto"].to_numpy(), atol=1e-12)
        assert da["crypto"].std() > 0  # the learned filter moves: the comparison is not of two constants
