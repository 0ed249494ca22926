"""The one strategy interface, the baseline registry and the loop that backtests strategies."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cryptorl.data.demo import demo_market
from cryptorl.portfolio import (
    BASELINES,
    EQUAL_WEIGHT,
    FixedWeights,
    Portfolio,
    Strategy,
    backtest,
    backtest_strategies,
    baselines,
    make_baselines,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy():
    """The tests' own baseline, registered by importing its file; unregistered afterwards."""
    import toy_baseline

    yield toy_baseline.FirstAssetShare
    BASELINES.pop("first_share", None)
    sys.modules.pop("toy_baseline", None)


@pytest.fixture(scope="module")
def markets() -> dict[str, pd.DataFrame]:
    return {a: demo_market(a, start="2021-01-01", end="2021-12-31") for a in ("BTC", "ETH")}


def test_every_kind_of_strategy_follows_the_interface(markets):
    from agents.catalog import AGENT_NAMES, make_agents

    for agent in make_agents(list(AGENT_NAMES), fast=True).values():
        assert isinstance(agent, Strategy), agent
    for b in make_baselines(["BTC", "ETH"], dict.fromkeys(BASELINES, True)):
        assert isinstance(b, Strategy), b
    assert isinstance(Portfolio(), Strategy)
    assert isinstance(FixedWeights("x", pd.DataFrame({"cash": [1.0]}, index=markets["BTC"].index[:1])), Strategy)


def test_labels_are_stated_once_and_the_standard_set():
    names = [b.name for b in make_baselines(["BTC", "ETH"])]
    assert names == ["B&H BTC", "B&H ETH", EQUAL_WEIGHT, "CRP equal weight", "Trend SMA20"]
    assert [b.name for b in make_baselines(["BTC"], distinct=True)] == ["B&H BTC", "Trend SMA20"]
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baselines(["BTC"], ["nope"])


def test_the_loop_equals_backtesting_each_by_hand(markets):
    """Same data, fee and execution for each strategy: the loop's figures are the engine's."""
    kw = {"interval": "1d", "fee": 0.002, "slippage": 0.001, "execution": "close"}
    params = {"buy_and_hold": True, "equal_weight": True, "tsmom": 20, "trend_sma": 10, "crp": 5}
    listed = make_baselines(["BTC", "ETH"], params)
    runs = backtest_strategies(listed, markets, start="2021-06-01", end="2021-09-30", **kw)
    by_hand = baselines(markets, start="2021-06-01", end="2021-09-30")
    for name in ("B&H BTC", EQUAL_WEIGHT):
        pd.testing.assert_series_equal(runs[name].result.values, backtest(by_hand[name], markets, **kw).values)
    # a CRP reset every 5 bars trades on those bars only
    w = runs["Equal weight every 5 bars"].weights
    np.testing.assert_allclose(w.iloc[::5, 1:].to_numpy(), 0.5)
    traded = runs["Equal weight every 5 bars"].result.turnover
    assert set(traded[traded > 1e-12].index) <= set(w.index[::5])
    assert list(runs) == ["B&H BTC", "B&H ETH", EQUAL_WEIGHT, "Equal weight every 5 bars", "Trend SMA10", "TSMOM 20"]


def test_the_loop_refuses_two_names_and_keeps_going_when_asked(markets):
    idx = markets["BTC"].index
    bad = FixedWeights("bad", pd.DataFrame({"cash": 1.0, "BTC": 0.0}, index=idx[::2]))  # every other bar
    good = FixedWeights("good", pd.DataFrame({"cash": 1.0, "BTC": 0.0}, index=idx))
    with pytest.raises(ValueError, match="two strategies are named 'good'"):
        backtest_strategies([good, good], markets, interval="1d", start=idx[10], end=idx[40])
    with pytest.raises(ValueError):
        backtest_strategies([bad, good], markets, interval="1d", start=idx[10], end=idx[40])
    runs = backtest_strategies([bad, good], markets, interval="1d", start=idx[10], end=idx[40], keep_going=True)
    assert runs["bad"].result is None and "ValueError" in runs["bad"].error
    assert runs["good"].result.values.iloc[-1] == pytest.approx(1.0)


def test_a_baseline_in_one_file_runs_through_evaluate(toy, tmp_path, capsys):
    from experiments import evaluate

    raw = yaml.safe_load((ROOT / "experiments" / "protocols" / "demo_tiny.yml").read_text())
    raw["baselines"] = {"first_share": 0.25}
    raw["imports"] = ["toy_baseline"]
    proto = tmp_path / "toy.yml"
    proto.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert evaluate.main([str(proto), "--out", str(out), "--no-progress", "--baselines-only"]) == 0
    runs = pd.read_csv(out / "runs.csv").set_index("strategy")
    assert "25% first asset" in runs.index and "Trend SMA20" in runs.index
    # by hand: 25 % in BTC, restored at every close, from cash at the first close
    from agents.evaluation import load_markets, load_protocol

    protocol = load_protocol(proto)
    data = load_markets(protocol, progress=False)
    b0, b1 = protocol.windows[0].backtest
    close = data["BTC"][0]["close"].loc[b0:b1].to_numpy()
    value, held = 1.0, 0.0
    for k in range(len(close)):
        if k:
            value *= 1.0 + 0.25 * (close[k] / close[k - 1] - 1.0)
            held = 0.25 * close[k] / close[k - 1] / (1.0 + 0.25 * (close[k] / close[k - 1] - 1.0))
        value *= 1.0 - protocol.fee * abs(0.25 - held)
    assert runs.loc["25% first asset", "ARR"] == pytest.approx(value - 1.0, rel=1e-4)
    # a bad parameter is one line naming the key
    raw["baselines"] = {"first_share": 2}
    proto.write_text(yaml.safe_dump(raw))
    assert evaluate.main([str(proto), "--out", str(out), "--no-progress", "--baselines-only"]) == 2
    assert "baselines.first_share" in capsys.readouterr().err
