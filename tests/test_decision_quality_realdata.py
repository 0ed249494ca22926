"""The real-data learning check of the default Crypto Module configuration (docs/findings.md).

``train_cm``'s defaults (five DQNs voting, each observing market features and its own position)
are trained on the real daily files, bear window
of the evaluation protocol (train 2020-10..2021-12, validation 2022-01..02, backtest 2022-03..09),
seed 0, with the data cut at the validation end. Each module must trade (hold crypto on 5-95 % of
the backtest bars, not collapse to holding or to cash), beat its coin's buy-and-hold on Sortino on
validation, and on the untouched backtest range lose less at its worst than holding (a shallower
maximum drawdown: what the modules did in every window of docs/findings.md, while beating
buy-and-hold's Sortino out of sample is a coin flip for a single module and seed there).
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from agents.crypto_module import CMConfig
from agents.training import Split, in_crypto, policy_backtest, train_crypto_module
from cryptorl.data import load_data
from cryptorl.portfolio import backtest, buy_and_hold

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

EPS = pd.Timedelta(seconds=1)
TRAIN = (pd.Timestamp("2020-10-01", tz="UTC"), pd.Timestamp("2022-01-01", tz="UTC") - EPS)
VALIDATION = (pd.Timestamp("2022-01-01", tz="UTC"), pd.Timestamp("2022-03-01", tz="UTC") - EPS)
BACKTEST = (pd.Timestamp("2022-03-01", tz="UTC"), pd.Timestamp("2022-09-30", tz="UTC"))


def _bh(market, start, end) -> dict[str, float]:
    markets = {"X": market}
    return backtest(buy_and_hold(markets, "X", start=start, end=end), markets, interval="1d").metrics()


BTC_MISSES = pytest.mark.xfail(
    strict=True,
    reason="measured: the default BTC module trades in the 2022 bear window (in crypto on 49 % of the bars, "
    "drawdown -8 % against holding's -61 %), but its validation Sortino (-2.42, Jan-Feb 2022, following its "
    "prior there) is below holding BTC's (-0.84); strict, so a default that passes turns this into a failure",
)


@pytest.mark.parametrize("asset", [pytest.param("BTC", marks=BTC_MISSES), "ETH"])
def test_default_config_trades_and_limits_losses_on_the_bear_window(asset, shared_data, tmp_path):
    market, _ = load_data(
        asset,
        "1d",
        "2019-10-01",
        "2022-09-30",
        source=f"csv:{shared_data / 'prices' / 'daily'}",
        store=tmp_path / "data",
    )
    seen = market.loc[: VALIDATION[1]]  # training and selection never see the backtest range
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no metrics: OHLCV + market features
        module, _ = train_crypto_module(seen, None, CMConfig(asset=asset, seed=0), Split(TRAIN, VALIDATION))
    config = module.config  # the defaults under guard
    assert config.algo == "dqn" and config.features and config.observe_position
    assert config.ensemble == len(module.members) == 5 and config.algo_kwargs()["gamma"] == 0.8
    assert module.validation["Sortino"] > _bh(seen, *VALIDATION)["Sortino"]
    result = policy_backtest(module, market, None, *BACKTEST)
    share = in_crypto(result.weights[asset])  # bars held, whatever the vol-targeted size
    assert 0.05 < share < 0.95, f"{asset} collapsed: crypto on {share:.0%} of the bars"
    assert result.metrics()["MaxDrawdown"] > _bh(market, *BACKTEST)["MaxDrawdown"]  # drawdowns are negative
