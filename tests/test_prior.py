"""A Crypto Module on top of a rule's position (CMConfig.prior): the environment trades the
action times the prior (or, lifting it, the prior plus the action times the rest), decisions
are the vote's share of the prior, the prior uses no future bar, and a module that does not
beat its prior on validation follows it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from envs_helpers import market_from

from agents.crypto_module import PRIORS, CMConfig, CryptoModule, config_from_manifest, prior_position
from agents.training import (
    Split,
    _member,
    earlier_folds,
    fold_returns,
    follow_prior,
    keep_prior_unless_beaten,
    policy_backtest,
    prior_reference,
    selection_score,
    train_crypto_module,
    training_prior,
    validation_row,
)
from cryptorl.data.demo import demo_market
from cryptorl.data.frames import to_utc_timestamp as utc
from cryptorl.features import DataRefinementUnit
from cryptorl.portfolio.backtest import backtest
from cryptorl.portfolio.baselines import donchian_ensemble, donchian_position
from cryptorl.portfolio.stats import sharpe_ratio
from envs import CryptoModuleEnv, CryptoModuleVecEnv

SPLIT = Split(
    (utc("2019-06-01"), utc("2020-05-31")),
    (utc("2020-06-01"), utc("2020-08-31")),
    (utc("2020-09-01"), utc("2020-12-31")),
)


@pytest.fixture(scope="module")
def market():
    return demo_market("BTC", "1d", "2019-01-01", "2020-12-31")


def test_env_holds_the_action_times_the_prior_by_hand():
    m = market_from([100.0, 100.0, 110.0, 99.0, 99.0])
    scale = pd.Series([0.0, 0.5, 0.25, 1.0, 0.0], index=m.index)
    env = CryptoModuleEnv(m, asset="TST", window=1, fee=0.0, scale=scale, observe_position=True)
    obs, _ = env.reset()
    assert env.first_step == 1
    rewards, positions = [], []
    for action in (1, 1, 0):
        obs, r, _, _, info = env.step(action)
        rewards.append(r)
        positions.append(info["position"])
        assert obs[-1, 0, -1] == action  # the position row observes the action, not the weight
    assert positions == [0.5, 0.25, 0.0]
    # bar 0 -> 1: half in, +10 %; bar 1 -> 2: the 0.25 target of a value whose crypto drifted, -10 %
    assert rewards[0] == pytest.approx(np.log(1.05))
    assert rewards[1] == pytest.approx(np.log(0.75 + 0.25 * 0.9))
    assert rewards[2] == pytest.approx(0.0)


def test_env_lifts_the_prior_by_hand():
    m = market_from([100.0, 100.0, 110.0, 99.0, 99.0])
    scale = pd.Series([0.0, 0.5, 0.25, 1.0, 0.0], index=m.index)
    env = CryptoModuleEnv(m, asset="TST", window=1, fee=0.0, scale=scale, lift=True, observe_position=True)
    env.reset()
    rewards, positions = [], []
    for action in (1, 0, 1):
        obs, r, _, _, info = env.step(action)
        rewards.append(r)
        positions.append(info["position"])
        assert obs[-1, 0, -1] == action
    assert positions == [1.0, 0.25, 1.0]  # action 1: the whole coin; action 0: the prior's 0.25
    assert rewards[0] == pytest.approx(np.log(1.1))
    assert rewards[1] == pytest.approx(np.log(0.75 + 0.25 * 0.9))
    assert rewards[2] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="lift needs a prior"):
        CryptoModuleEnv(m, asset="TST", window=1, lift=True)


def test_env_refuses_a_prior_outside_zero_one():
    m = market_from([100.0, 101.0, 102.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CryptoModuleEnv(m, asset="TST", window=1, scale=pd.Series(2.0, index=m.index))


@pytest.mark.parametrize("lift", [False, True])
def test_vector_env_with_a_prior_equals_single_envs(market, lift):
    scale = donchian_position(market["close"])
    kw = dict(window=7, episode_length=13, fee=0.003, scale=scale, lift=lift, observe_position=True)
    vec = CryptoModuleVecEnv(CryptoModuleEnv(market, **kw), 4, seed=3, full_info=True)
    singles = [CryptoModuleEnv(market, **kw) for _ in range(4)]
    vec.reset()
    for i, e in enumerate(singles):
        e.reset(seed=3 + i)
    rng = np.random.default_rng(0)
    for _ in range(40):
        actions = rng.integers(0, 2, 4)
        _, rewards, _, infos = vec.step(actions)
        for i, e in enumerate(singles):
            _, r, _, trunc, info = e.step(actions[i])
            assert rewards[i] == pytest.approx(r, rel=1e-12, abs=1e-15)
            assert infos[i]["position"] == pytest.approx(info["position"])
            if trunc:
                e.reset()


@pytest.mark.parametrize("prior", [p for p in PRIORS if p != "none"])
def test_prior_uses_no_future_bar(market, prior):
    config = CMConfig(prior=prior)
    cut = utc("2020-06-01")
    before = prior_position(market, config).loc[:cut]
    m2 = market.copy()
    m2.loc[m2.index > cut, ["open", "high", "low", "close"]] *= 0.3
    pd.testing.assert_series_equal(before, prior_position(m2, config).loc[:cut])
    assert before.dropna().between(0.0, 1.0).all()


def _untrained(
    market, prior: str, answer: tuple[float, float] | None = None, prior_mode: str = "filter"
) -> CryptoModule:
    """A two-member module with ``prior``, its networks built on the module's own observations;
    ``answer``: the output bias every member then answers with (Q of action 0, Q of action 1)."""
    config = CMConfig(prior=prior, ensemble=2, prior_mode=prior_mode)
    dru = DataRefinementUnit().fit(market, None, SPLIT.train[1], asset="BTC")
    env = CryptoModule(config, dru, None).env(market, None)
    members = [_member(config, env, seed) for seed in range(2)]
    for sam in members:
        follow_prior(sam, 0 if config.lift else 1)
        if answer is not None:
            with torch.no_grad():
                sam.q_net.q_net[-1].bias.copy_(torch.tensor(answer))
    return CryptoModule(config, dru, members[0], members=members, ranges=SPLIT.as_dict())


def _prior_sortino(module: CryptoModule, market) -> tuple[float, np.ndarray]:
    env = module.env(market, None, start=SPLIT.validation[0], end=SPLIT.validation[1])
    lo, hi = env.first_step, env.last_step + 1
    rule = pd.DataFrame({"cash": 1 - env.scale[lo:hi], "BTC": env.scale[lo:hi]}, index=env.index[lo:hi])
    return backtest(rule, {"BTC": market}, interval="1d").metrics()["Sortino"], env.scale[lo:hi]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("prior_mode", ["filter", "lift"])
def test_a_module_that_follows_its_prior_is_the_donchian_rule(market, prior_mode):
    module = _untrained(market, "donchian", prior_mode=prior_mode)
    decided = module.decide_range(market, None, *SPLIT.backtest)["crypto"]
    rule = donchian_ensemble({"BTC": market}, start=SPLIT.backtest[0], end=SPLIT.backtest[1])["BTC"]
    assert decided.max() > 0.1  # the rule holds crypto in this range: the comparison means something
    pd.testing.assert_series_equal(decided, rule.loc[decided.index], check_names=False)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_module_worse_than_its_prior_on_validation_follows_the_prior(market):
    module = _untrained(market, "sma20", answer=(1.0, 0.0))  # always cash
    prior_sortino, prior = _prior_sortino(module, market)
    assert prior_sortino > 0.5  # the rule gains on this validation range, staying out does not
    module.validation = policy_backtest(module, market, None, *SPLIT.validation).metrics()
    keep_prior_unless_beaten(module, market, None, SPLIT)
    assert module.validation["follows_prior"] == 1.0
    assert module.validation["Sortino"] == pytest.approx(prior_sortino)
    np.testing.assert_allclose(module.decide_range(market, None, *SPLIT.validation)["crypto"], prior)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("prior_mode", ["filter", "lift"])
def test_training_with_a_prior_is_never_worse_than_it_on_validation(market, prior_mode):
    config = CMConfig(prior="sma20", ensemble=2, timesteps=1_500, prior_mode=prior_mode)
    module, _ = train_crypto_module(market, None, config, SPLIT, eval_freq=500)
    prior_sortino, _ = _prior_sortino(module, market)
    kept = policy_backtest(module, market, None, *SPLIT.validation).metrics()["Sortino"]
    assert kept >= prior_sortino - 1e-9
    assert module.validation["Sortino"] == pytest.approx(kept)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("prior_mode", "answer"), [("filter", None), ("lift", None), ("lift", (0.0, 1.0))])
def test_one_observation_is_decided_as_the_range_is(market, prior_mode, answer):
    module = _untrained(market, "donchian", answer=answer, prior_mode=prior_mode)
    decided = module.decide_range(market, None, *SPLIT.validation)["crypto"]
    env = module.env(market, None)
    assert env.feature_names[-2:] == ("prior", "position")
    for t in range(0, len(decided), 7):
        bar = int(env.index.get_loc(decided.index[t]))
        obs = env.obs_tensor[bar].copy()
        obs[-1, 0], obs[-1, 1] = 1.0, 0.0  # these members answer the same from either position
        cash, crypto = module.decide(obs)
        assert crypto == pytest.approx(decided.iloc[t]) and cash == pytest.approx(1 - crypto)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_lifting_module_holds_the_whole_coin_on_action_one_and_falls_back_to_its_prior(market):
    module = _untrained(market, "donchian", answer=(0.0, 1.0), prior_mode="lift")  # always lift
    decided = module.decide_range(market, None, *SPLIT.validation)["crypto"]
    assert (decided == 1.0).all()
    prior_sortino, prior = _prior_sortino(module, market)
    assert 0.0 < prior.mean() < 0.9  # the rule is partly out: the lift holds more than it
    module.validation = {"Sortino": prior_sortino - 0.01}  # below the prior: the fallback follows it
    keep_prior_unless_beaten(module, market, None, SPLIT)
    assert module.validation["follows_prior"] == 1.0
    np.testing.assert_allclose(module.decide_range(market, None, *SPLIT.validation)["crypto"], prior)


def test_config_refuses_an_unknown_prior_and_old_modules_have_none():
    with pytest.raises(ValueError, match="unknown prior"):
        CMConfig(prior="moon")
    assert config_from_manifest({"asset": "BTC"}).prior == "none"
    assert config_from_manifest({"asset": "BTC"}).prior_mode == "filter"
    with pytest.raises(ValueError, match="unknown prior_mode"):
        CMConfig(prior_mode="boost")
    with pytest.raises(ValueError, match="needs a prior"):
        CMConfig(prior="none", prior_mode="lift")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("confidence", [0.0, 0.9])
def test_a_higher_validation_sortino_alone_does_not_keep_the_filter_when_confidence_is_asked(market, confidence):
    """The learned filter (here: always cash) is credited with a Sortino above its prior's, as
    the best of many checkpoints on the range that chose it would be; asked for confidence, the
    deflated Sharpe ratio of its daily returns over the prior's decides, and it falls back."""
    module = _untrained(market, "sma20", answer=(1.0, 0.0))
    module.config.prior_confidence = confidence
    prior_sortino, prior = _prior_sortino(module, market)
    module.validation = {"Sortino": prior_sortino + 0.01}
    keep_prior_unless_beaten(module, market, None, SPLIT, checkpoints=15)
    if confidence == 0.0:
        assert module.validation["follows_prior"] == 0.0 and "excess_dsr" not in module.validation
        assert module.decide_range(market, None, *SPLIT.validation)["crypto"].max() == 0.0
    else:
        assert module.validation["follows_prior"] == 1.0
        assert module.validation["excess_dsr"] < 0.5  # staying out lost to a rule that gained
        np.testing.assert_allclose(module.decide_range(market, None, *SPLIT.validation)["crypto"], prior)


def test_earlier_folds_step_back_one_validation_length_at_a_time_by_hand():
    split = Split((utc("2018-01-01"), utc("2018-09-30 23:59:59")), (utc("2018-10-01"), utc("2018-12-31 23:59:59")))
    assert earlier_folds(split, 1) == []
    (fold,) = earlier_folds(split, 2)  # the validation range is 92 days long
    assert fold.validation == (utc("2018-07-01"), utc("2018-09-30 23:59:59"))
    assert fold.train == (utc("2018-01-01"), utc("2018-06-30 23:59:59"))
    with pytest.raises(ValueError, match="prior_folds 3 is too many"):  # fold 2 would train on 89 days
        earlier_folds(split, 3)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("filter_gained_before", [True, False])
def test_earlier_folds_decide_with_the_validation_range_on_the_chained_returns(market, filter_gained_before):
    """Always cash under a rule that gains on the validation range: alone, that range makes the
    module follow the rule (the test above). An earlier fold where the filter gained 1 % a bar on
    average while the rule stayed flat outweighs it on the chained returns; a fold where it lost
    does not."""
    module = _untrained(market, "sma20", answer=(1.0, 0.0))
    module.validation = policy_backtest(module, market, None, *SPLIT.validation).metrics()
    days = pd.date_range("2020-03-01", periods=92, freq="D", tz="UTC")
    swings = np.tile([0.03, -0.01], 46) * (1 if filter_gained_before else -1)
    earlier = [(pd.Series(swings, index=days), pd.Series(0.0, index=days))]
    keep_prior_unless_beaten(module, market, None, SPLIT, earlier=earlier)
    assert module.validation["follows_prior"] == (0.0 if filter_gained_before else 1.0)
    held = module.decide_range(market, None, *SPLIT.validation)["crypto"]
    assert (held.max() == 0.0) if filter_gained_before else held.max() > 0.1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_an_earlier_fold_uses_no_bar_after_its_validation_range(market):
    (fold,) = earlier_folds(SPLIT, 2)
    config = CMConfig(prior="donchian", ensemble=1, timesteps=600, prior_folds=2)
    future = market.copy()
    after = future.index > fold.validation[1]
    future.loc[after, ["open", "high", "low", "close"]] *= np.linspace(0.5, 3.0, int(after.sum()))[:, None]
    learned, rule = fold_returns(market, None, config, fold, eval_freq=300)
    learned_f, rule_f = fold_returns(future, None, config, fold, eval_freq=300)
    assert learned.index[0] >= fold.validation[0] and learned.index[-1] <= fold.validation[1]
    assert rule.abs().sum() > 0  # the rule trades in this fold: the comparison means something
    pd.testing.assert_series_equal(learned, learned_f)
    pd.testing.assert_series_equal(rule, rule_f)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_module_trained_off_its_prior_still_decides_as_a_filter_of_it(market):
    """train_on_prior false: the training episodes trade the whole coin (all-in / all-out), the
    decisions are the vote times the prior as with any filter."""
    on, off = (CMConfig(prior="sma20", ensemble=1, timesteps=1_500, train_on_prior=flag) for flag in (True, False))
    dru = DataRefinementUnit().fit(market, None, SPLIT.train[1], asset="BTC")
    feats = CryptoModule(on, dru, None).features(market, None)
    assert training_prior(feats, off) is None
    pd.testing.assert_series_equal(training_prior(feats, on), feats["prior"], check_names=False)
    trained = {}
    for config in (on, off):
        module, _ = train_crypto_module(market.loc[: SPLIT.validation[1]], None, config, SPLIT, eval_freq=500)
        trained[config.train_on_prior] = module
    votes, prior = trained[False].votes(market, None, *SPLIT.backtest)
    decided = trained[False].decide_range(market, None, *SPLIT.backtest)["crypto"]
    np.testing.assert_allclose(decided, votes.to_numpy() * prior)
    assert prior.max() > 0.1  # the rule holds crypto in this range: the product means something
    weights = [dict(m.sam.q_net.state_dict()) for m in (trained[True], trained[False])]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # other rewards, other nets


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_without_the_fallback_a_module_keeps_a_filter_that_lost_to_its_prior_on_validation(market):
    trained = {}
    for fallback in (True, False):
        config = CMConfig(prior="sma20", ensemble=1, timesteps=1_500, seed=2, prior_fallback=fallback)
        trained[fallback], _ = train_crypto_module(
            market.loc[: SPLIT.validation[1]], None, config, SPLIT, eval_freq=500
        )
    assert trained[True].validation["follows_prior"] == 1.0  # this seed's filter lost: it follows the rule
    assert (trained[True].votes(market, None, *SPLIT.validation)[0] == 1.0).all()
    assert trained[False].validation["follows_prior"] == 0.0  # the same filter, kept
    assert (trained[False].votes(market, None, *SPLIT.validation)[0] < 1.0).any()
    with pytest.raises(ValueError, match="prior_fallback must be"):
        CMConfig(prior_fallback=None)


def test_config_refuses_training_off_a_lifted_prior():
    with pytest.raises(ValueError, match="train_on_prior false"):
        CMConfig(prior="donchian", prior_mode="lift", train_on_prior=False)
    with pytest.raises(ValueError, match="train_on_prior must be"):
        CMConfig(train_on_prior="no")


def test_config_refuses_prior_folds_out_of_range_or_without_a_prior():
    for bad in (0, True, 13, 2.0):
        with pytest.raises(ValueError, match="prior_folds must be"):
            CMConfig(prior_folds=bad)
    with pytest.raises(ValueError, match="needs a prior"):
        CMConfig(prior="none", prior_folds=2)


def test_config_refuses_a_prior_confidence_that_is_not_a_probability():
    for bad in (-0.1, 1.0, True):
        with pytest.raises(ValueError, match="prior_confidence"):
            CMConfig(prior_confidence=bad)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_excess_selection_scores_staying_out_below_a_prior_that_gains(market):
    """Under ``selection="excess"`` a checkpoint is scored by the Sharpe ratio of its returns over
    the prior's: taking the prior scores 0, staying out of a rule that gained scores below 0
    (its Sortino of 0 would have beaten a losing rule), and the figure is the hand-computed one."""
    module = _untrained(market, "sma20")
    prior_sortino, prior = _prior_sortino(module, market)
    assert prior_sortino > 0.5
    path = module.decision_path(market, None, *SPLIT.validation)
    reference = prior_reference(module, market, path, "excess")
    assert prior_reference(module, market, path, "sortino") is None  # the other selections never compute it
    follows, _ = validation_row(module, market, path.index, path.prior, 0, reference)
    out, res = validation_row(module, market, path.index, np.zeros(len(path.prior)), 0, reference)
    assert follows["excess_Sharpe"] == 0.0
    assert out["excess_Sharpe"] == pytest.approx(sharpe_ratio(-reference.returns))
    assert out["excess_Sharpe"] < 0 < prior_sortino
    assert selection_score(out, "excess") < selection_score(follows, "excess")
    assert "excess_Sharpe" not in validation_row(module, market, path.index, path.prior, 0)[0]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_under_excess_selection_a_filter_that_loses_to_its_prior_falls_back(market):
    """The fallback follows the selection: a filter (always cash) credited with any Sortino is kept
    only when its daily returns over the prior's have a positive Sharpe ratio."""
    module = _untrained(market, "sma20", answer=(1.0, 0.0))
    module.config.selection = "excess"
    _, prior = _prior_sortino(module, market)
    module.validation = {"Sortino": 99.0}
    keep_prior_unless_beaten(module, market, None, SPLIT)
    assert module.validation["follows_prior"] == 1.0
    np.testing.assert_allclose(module.decide_range(market, None, *SPLIT.validation)["crypto"], prior)
