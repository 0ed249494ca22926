"""Hand-computed episodes: known prices and actions give exactly the values, fees and rewards."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from envs_helpers import market_from

from envs import CryptoModuleEnv, PortfolioEnv, SignalEnv
from envs.accounting import differential_sharpe
from envs.features import OHLCV_FEATURES

# Bars 0..5. Window 2: the first complete observation is bar 2 (bar 1's log return needs bar 0),
# so decisions happen at the closes of bars 2, 3, 4 and the last value is marked at bar 5.
CLOSE = [100.0, 100.0, 100.0, 110.0, 99.0, 120.0]
OPEN = [100.0, 100.0, 100.0, 105.0, 108.0, 100.0]
FEE = 0.01


def run(env, actions):
    obs, info = env.reset()
    infos, rewards = [info], []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        rewards.append(r)
        infos.append(info)
    return rewards, infos, trunc


def cm(**kw):
    return CryptoModuleEnv(market_from(CLOSE, OPEN), window=2, fee=FEE, asset="TST", **kw)


def test_episode_at_the_close():
    env = cm()
    assert (env.first_step, env.last_step) == (2, 5)
    rewards, infos, trunc = run(env, [1, 1, 0])
    assert trunc
    # t=2 buy at close 100: fee 1 % of 1; value 0.99 * 110/100
    # t=3 hold: value * 99/110;  t=4 sell at close 99: fee 1 % of 0.9801, then cash
    assert [i["value"] for i in infos] == pytest.approx([1.0, 1.089, 0.9801, 0.970299], rel=1e-14)
    assert [i["fee"] for i in infos] == pytest.approx([0.0, 0.01, 0.0, 0.009801], rel=1e-12, abs=1e-16)
    assert [i["turnover"] for i in infos] == [0.0, 1.0, 0.0, 1.0]
    assert rewards == pytest.approx([math.log(1.089), math.log(0.9), math.log(0.99)], rel=1e-13)
    assert [i["trade_price"] for i in infos[1:]] == [100.0, 110.0, 99.0]  # the decision bar's own close
    assert [i["decision_time"] for i in infos[1:]] == list(env.index[2:5])
    assert [i["time"] for i in infos] == list(env.index[2:6])
    assert [i["position"] for i in infos] == [0.0, 1.0, 1.0, 0.0]


def test_episode_at_the_next_open():
    env = cm(execution="next_open")
    rewards, infos, _ = run(env, [1, 1, 0])
    v1 = 0.99 * 110 / 105  # buy at open 105 (fee on 1), mark at close 110
    v2 = v1 * (108 / 110) * (99 / 108)  # held: close 110 -> open 108 -> close 99
    v_open = v2 * 100 / 99  # still long from close 99 to the open 100 of bar 5
    v3 = v_open * 0.99  # sell at that open, then cash
    assert [i["value"] for i in infos] == pytest.approx([1.0, v1, v2, v3], rel=1e-14)
    assert [i["fee"] for i in infos] == pytest.approx([0.0, 0.01, 0.0, v_open * 0.01], rel=1e-12, abs=1e-16)
    assert rewards == pytest.approx([math.log(v1), math.log(v2 / v1), math.log(v3 / v2)], rel=1e-13)
    assert [i["trade_price"] for i in infos[1:]] == [105.0, 108.0, 100.0]  # the next bar's open


def test_continuous_share_rebalances_the_drift():
    env = cm(action_type="continuous")
    rewards, infos, _ = run(env, [np.array([0.5], np.float32)] * 2 + [np.array([2.0], np.float32)])
    # t=2: half in: fee 0.5 %, growth 0.5 + 0.5 * 1.1 = 1.05; drift to 0.55 / 1.05
    v1 = 0.995 * 1.05
    d1 = 0.55 / 1.05
    # t=3: back to half: turnover |0.5 - d1| = 1/42
    mu2 = 1 - FEE * abs(0.5 - d1)
    v2 = v1 * mu2 * (0.5 + 0.5 * 0.9)
    d2 = 0.45 / 0.95
    # t=4: an action above 1 is clipped to all crypto
    v3 = v2 * (1 - FEE * (1 - d2)) * (120 / 99)
    assert infos[1]["drifted_position"] == pytest.approx(d1, rel=1e-14)
    assert infos[2]["turnover"] == pytest.approx(1 / 42, rel=1e-12)
    assert infos[2]["fee"] == pytest.approx(v1 * FEE / 42, rel=1e-12)
    assert [i["value"] for i in infos] == pytest.approx([1.0, v1, v2, v3], rel=1e-14)
    assert infos[3]["position"] == 1.0
    assert sum(rewards) == pytest.approx(math.log(v3), rel=1e-13)


def test_first_observation_by_hand():
    vol = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    env = CryptoModuleEnv(market_from(CLOSE, OPEN, vol), window=2, asset="TST")
    obs, _ = env.reset()
    assert obs.shape == (6, 2, 2) and obs.dtype == np.float32
    assert env.feature_names == OHLCV_FEATURES
    crypto, cash = obs[:, 0, :], obs[:, 1, :]
    np.testing.assert_allclose(crypto[0], [1.0, 1.0])  # closes 100, 100 over the last close 100
    np.testing.assert_allclose(crypto[2], [1.01, 1.01], rtol=1e-6)  # highs
    np.testing.assert_allclose(crypto[4], [0.0, 0.0])  # log returns
    np.testing.assert_allclose(crypto[5], [-1.0, 1.0], rtol=1e-6)  # z-score of two rising volumes
    np.testing.assert_array_equal(cash, [[1, 1], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]])
    obs, *_ = env.step(0)  # window now bars 2, 3
    np.testing.assert_allclose(obs[0, 0], [100 / 110, 1.0], rtol=1e-6)
    np.testing.assert_allclose(obs[1, 0], [100 / 110, 105 / 110], rtol=1e-6)  # opens
    np.testing.assert_allclose(obs[4, 0], [0.0, math.log(1.1)], rtol=1e-6)


def test_portfolio_equal_weights_by_hand():
    a = market_from([100.0, 100.0, 100.0, 110.0, 121.0])
    b = market_from([50.0, 50.0, 50.0, 40.0, 40.0])
    env = PortfolioEnv({"A": a, "B": b}, window=2, fee=FEE)
    rewards, infos, trunc = run(env, [np.zeros(3, np.float32)] * 2)
    assert trunc
    w = np.full(3, 1 / 3)
    np.testing.assert_allclose(infos[1]["weights"], w, rtol=1e-15)
    g1 = (1 + 1.1 + 0.8) / 3
    v1 = (1 - FEE * 2 / 3) * g1
    drift = np.array([1, 1.1, 0.8]) / 2.9
    turnover2 = abs(1 / 3 - drift[1]) + abs(1 / 3 - drift[2])
    v2 = v1 * (1 - FEE * turnover2) * (1 + 1.1 + 1.0) / 3
    np.testing.assert_allclose(infos[1]["drifted_weights"], drift, rtol=1e-14)
    assert infos[2]["turnover"] == pytest.approx(turnover2, rel=1e-12)
    assert infos[2]["fee"] == pytest.approx(v1 * FEE * turnover2, rel=1e-12)
    assert [i["value"] for i in infos] == pytest.approx([1.0, v1, v2], rel=1e-14)
    assert rewards == pytest.approx([math.log(v1), math.log(v2 / v1)], rel=1e-13)


@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_portfolio_of_one_asset_matches_the_crypto_module(execution):
    """Softmax weights (cash, crypto) fed as the CM's continuous share give the same episode."""
    market = market_from(CLOSE, OPEN)
    port = PortfolioEnv({"TST": market}, window=2, fee=FEE, execution=execution)
    single = cm(action_type="continuous", execution=execution)
    port.reset()
    single.reset()
    for logits in ([-0.2, 0.3], [0.1, -0.4], [0.0, 1.0]):
        action = np.array(logits, np.float32)
        w = port.action_weights(action)
        _, r1, *_, i1 = port.step(action)
        _, r2, *_, i2 = single.step(np.array([w[1]]))
        assert r1 == pytest.approx(r2, rel=1e-12)
        assert i1["value"] == pytest.approx(i2["value"], rel=1e-13)
        assert i1["fee"] == pytest.approx(i2["fee"], rel=1e-12, abs=1e-18)


def test_signal_env_long_flat_and_short():
    def episode(**kw):
        env = SignalEnv(market_from(CLOSE, OPEN), window=2, fee=FEE, asset="TST", **kw)
        return run(env, [0, 2, 1])  # buy, hold, sell

    rewards, infos, _ = episode()
    assert rewards == pytest.approx([0.99 * 1.1 - 1, 0.9 - 1, 0.99 - 1], rel=1e-13)
    assert [i["position"] for i in infos[1:]] == [1.0, 1.0, 0.0]
    assert [i["signal"] for i in infos[1:]] == [1, 0, -1]
    assert infos[3]["fee"] == pytest.approx(0.99 * 1.1 * 0.9 * FEE, rel=1e-12)

    rewards, infos, _ = episode(short_on_sell=True)  # long -> short costs twice the fee
    assert rewards[2] == pytest.approx(0.98 * (1 - (120 / 99 - 1)) - 1, rel=1e-13)
    assert infos[3]["position"] == -1.0

    rewards, _, _ = episode(execution="next_open")
    assert rewards == pytest.approx(
        [0.99 * 110 / 105 - 1, (108 / 110) * (99 / 108) - 1, (100 / 99) * 0.99 - 1], rel=1e-13
    )


def test_signal_env_observation_carries_the_position():
    env = SignalEnv(market_from(CLOSE, OPEN), window=2, asset="TST")
    obs, _ = env.reset()
    assert obs.shape == (7, 2) and env.feature_names[-1] == "position"
    np.testing.assert_array_equal(obs[-1], [0.0, 0.0])
    obs, *_ = env.step(0)
    np.testing.assert_array_equal(obs[-1], [1.0, 1.0])
    obs, *_ = env.step(2)
    np.testing.assert_array_equal(obs[-1], [1.0, 1.0])


@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_episode_equals_the_backtest_engine(execution):
    """An episode's infos, replayed through cryptorl.portfolio.backtest, give the same values and fees."""
    from cryptorl.data.demo import demo_market
    from cryptorl.portfolio.backtest import backtest

    market = demo_market("BTC", "1d", "2021-01-01", "2021-04-30")
    env = CryptoModuleEnv(market, window=10, execution=execution, action_type="continuous", fee=0.001, slippage=0.0005)
    rng = np.random.default_rng(5)
    _, info = env.reset()
    times, values, fees, shares = [info["time"]], [1.0], [], []
    trunc = False
    while not trunc:
        _, _, _, trunc, info = env.step(np.array([rng.uniform(0, 1)]))
        times.append(info["time"])
        values.append(info["value"])
        fees.append(info["fee"])
        shares.append(info["position"])
    shares.append(0.0)  # the decision at the last time is not traded by the backtest
    weights = pd.DataFrame({"cash": 1 - np.array(shares), "BTC": shares}, index=pd.DatetimeIndex(times))
    res = backtest(weights, {"BTC": market}, interval="1d", fee=0.001, slippage=0.0005, execution=execution)
    np.testing.assert_allclose(res.values.to_numpy(), values, rtol=1e-12)
    np.testing.assert_allclose(res.fees.to_numpy()[:-1], fees, rtol=1e-10, atol=1e-15)


def test_differential_sharpe_reward_by_hand():
    """reward="dsr": Moody & Saffell's differential Sharpe ratio of each step's return, the moving
    moments started at mean 0 and the variance of holding (no prior) over the range."""
    env = cm(reward="dsr")
    rewards, infos, _ = run(env, [1, 1, 0])
    held = np.array([110 / 100, 99 / 110, 120 / 99]) - 1  # the price relatives of bars 3, 4, 5
    v0 = held.var()
    assert env.reference_variance() == pytest.approx(v0, rel=1e-14)
    r = [1.089 - 1, 0.9 - 1, 0.99 - 1]  # the step returns of test_episode_at_the_close
    a, b = 0.0, v0
    assert rewards[0] == pytest.approx(r[0] / math.sqrt(v0), rel=1e-12)  # a = 0: the return over the volatility
    expected = []
    for x in r:
        expected.append((b * (x - a) - 0.5 * a * (x * x - b)) / max(b - a * a, v0 / 4) ** 1.5)
        a, b = a + 0.05 * (x - a), b + 0.05 * (x * x - b)
    assert rewards == pytest.approx(expected, rel=1e-12)
    assert [i["value"] for i in infos] == pytest.approx(
        [1.0, 1.089, 0.9801, 0.970299], rel=1e-14
    )  # the same accounting


def test_drawdown_reward_by_hand():
    """reward="drawdown": the log growth less each rise of the drawdown from the episode's peak."""
    env = cm(reward="drawdown")
    rewards, infos, _ = run(env, [1, 1, 0])
    assert [i["value"] for i in infos] == pytest.approx([1.0, 1.089, 0.9801, 0.970299], rel=1e-14)
    # a new peak: no penalty; then 10 % below the peak of 1.089; then 10.9 % below it (a rise of 0.9 %)
    expected = [math.log(1.089), math.log(0.9) - 0.1, math.log(0.99) - (0.109 - 0.1)]
    assert rewards == pytest.approx(expected, rel=1e-12)
    rewards, _, _ = run(env, [1])  # a new episode starts from a new peak
    assert rewards == pytest.approx([math.log(1.089)], rel=1e-12)


def test_differential_sharpe_is_the_moving_sharpe_ratios_derivative():
    """D = dS/d(eta) at eta = 0, where S = a / sqrt(b - a^2) is the moving Sharpe ratio: a small
    step raises S by eta * D."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        a = rng.normal(0, 0.01)
        b = a * a + rng.uniform(1e-4, 1e-3)
        r = rng.normal(0, 0.03)
        eta = 1e-7
        d, a2, b2 = differential_sharpe(r, a, b, eta, 0.0)
        sharpe = a / math.sqrt(b - a * a)
        assert (a2 / math.sqrt(b2 - a2 * a2) - sharpe) / eta == pytest.approx(d, rel=1e-4, abs=1e-6)


def test_unknown_reward_is_refused():
    with pytest.raises(ValueError, match="reward must be one of"):
        cm(reward="sharpe")
