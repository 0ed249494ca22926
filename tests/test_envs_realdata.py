"""Real BTC daily data: always-crypto reproduces buy-and-hold times (1 - fee)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cryptorl.data.frames import validate_market
from envs import CryptoModuleEnv, CryptoModuleVecEnv


@pytest.fixture(scope="module")
def btc(shared_data):
    df = pd.read_csv(
        shared_data / "prices" / "daily" / "BTC-USD_1d.csv", parse_dates=["datetime"], index_col="datetime"
    )
    return validate_market(df, "BTC", "1d")


def _run_always_crypto(env):
    obs, info = env.reset()
    total, n = 0.0, 0
    while True:
        obs, r, term, trunc, info = env.step(1)
        total += r
        n += 1
        if term or trunc:
            return info, total, n


@pytest.mark.realdata
def test_always_crypto_is_buy_and_hold_minus_one_fee(btc):
    env = CryptoModuleEnv(btc, window=30, fee=0.001)
    first, last = env.first_step, env.last_step
    assert env.index[last] == btc.index[-1] and last - first == len(btc) - 31
    info, total, n = _run_always_crypto(env)
    expected = (1 - 0.001) * btc["close"].iloc[-1] / btc["close"].iloc[first]
    assert n == last - first
    assert info["value"] == pytest.approx(expected, rel=1e-12)
    assert math.exp(total) == pytest.approx(expected, rel=1e-10)

    nxt = CryptoModuleEnv(btc, window=30, fee=0.001, execution="next_open")
    info, _, _ = _run_always_crypto(nxt)
    assert info["value"] == pytest.approx((1 - 0.001) * btc["close"].iloc[-1] / btc["open"].iloc[first + 1], rel=1e-12)


@pytest.mark.realdata
def test_paper_backtest_range_on_real_data(btc):
    """The paper's backtest span (2022-03 .. 2022-09): BTC lost about 56 % (data README)."""
    env = CryptoModuleEnv(btc, window=30, start="2022-03-01", end="2022-09-30")
    assert env.decision_times[0] == pd.Timestamp("2022-03-01", tz="UTC")
    info, _, _ = _run_always_crypto(env)
    assert info["time"] == pd.Timestamp("2022-09-30", tz="UTC")
    bh = btc["close"]["2022-09-30"].item() / btc["close"]["2022-03-01"].item()
    assert info["value"] == pytest.approx(0.999 * bh, rel=1e-12)
    vec = CryptoModuleVecEnv(env, num_envs=4)
    vec.reset()
    for _ in range(len(env.decision_times)):
        _, _, dones, infos = vec.step(np.ones(4, dtype=np.int64))
    assert dones.all() and infos[0]["final_value"] == pytest.approx(info["value"], rel=1e-12)
