"""Meta-labelling agents: the rule they filter, the rows they learn from, what they learn, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.catalog import make_agents
from agents.config import DEFAULT_FEATURES
from agents.meta_label import MetaLabelAgent
from cryptorl.data.demo import demo_data, demo_market
from cryptorl.features.market import market_features
from cryptorl.portfolio.backtest import backtest
from cryptorl.portfolio.baselines import donchian_ensemble, donchian_position

ASSETS = ("BTC", "ETH", "LINK")
FIT_END, START, END = "2021-09-30", "2021-10-01", "2021-12-31"


@pytest.fixture(scope="module")
def markets() -> dict[str, pd.DataFrame]:
    return {a: demo_market(a, start="2021-01-01", end="2021-12-31") for a in ASSETS}


def test_a_threshold_near_zero_holds_the_rule_and_near_one_holds_cash(markets):
    """p > 0 everywhere takes every position of the rule: the Donchian baseline's weights exactly."""
    rule = donchian_ensemble(markets, list(ASSETS), start=START, end=END)
    always = MetaLabelAgent(threshold=1e-12).fit(markets, end=FIT_END).weights(markets, start=START, end=END)
    pd.testing.assert_frame_equal(always[list(ASSETS)], rule[list(ASSETS)], check_names=False, check_freq=False)
    never = MetaLabelAgent(threshold=1 - 1e-12).fit(markets, end=FIT_END).weights(markets, start=START, end=END)
    assert (never["cash"] == 1.0).all()


def test_every_weight_is_the_rules_position_or_nothing(markets):
    w = make_agents(["meta_logistic"])["meta_logistic"].fit(markets, end=FIT_END).weights(markets, start=START, end=END)
    for a in ASSETS:
        rule = donchian_position(markets[a]["close"]).loc[w.index].to_numpy() / len(ASSETS)
        held = w[a].to_numpy()
        assert np.all(np.isclose(held, 0.0) | np.isclose(held, rule))
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_it_learns_from_the_long_bars_whose_label_is_known_by_the_fit_end(markets):
    """The rows by hand: the rule long, every input defined, and 10 bars after the row before the end."""
    agent = MetaLabelAgent(horizon=10).fit(markets, end=FIT_END)
    expected = 0
    for a in ASSETS:
        m = markets[a].loc[:FIT_END]
        prior = donchian_position(m["close"])
        complete = market_features(m, DEFAULT_FEATURES).notna().all(axis=1)
        known = np.arange(len(m)) < len(m) - 10
        expected += int(((prior > 0) & complete & known).sum())
    assert agent.rows_ == expected > 0


def test_the_fit_does_not_see_prices_after_its_end(markets):
    before = MetaLabelAgent().fit(markets, end=FIT_END).classifier_[-1].coef_
    rng = np.random.default_rng(0)
    moved = {}
    for a, m in markets.items():
        m = m.copy()
        after = m.index > pd.Timestamp(FIT_END, tz="UTC")
        m.loc[after, ["open", "high", "low", "close"]] *= np.exp(rng.normal(0, 0.3, (after.sum(), 1)))
        moved[a] = m
    np.testing.assert_array_equal(MetaLabelAgent().fit(moved, end=FIT_END).classifier_[-1].coef_, before)


def _regimes(seed: int) -> pd.DataFrame:
    """Calm rises and wild falls, 100 bars each in turn: whether the next 10 bars rise depends on
    the volatility of the last 20, and the noise of a wild fall keeps triggering the rule's breakouts."""
    rng = np.random.default_rng(seed)
    wild = (np.arange(1600) // 100) % 2 == 1
    r = np.where(wild, rng.normal(-0.007, 0.04, 1600), rng.normal(0.003, 0.01, 1600))
    close = 100 * np.exp(np.cumsum(r))
    idx = pd.date_range("2019-01-01", periods=1600, freq="D", tz="UTC")
    frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    frame["settled"] = np.where(np.arange(1600) % 100 >= 20, np.where(wild, "wild", "calm"), "")
    return frame


@pytest.mark.parametrize("classifier", ["logistic", "forest"])
def test_it_learns_when_the_rules_long_positions_pay(classifier):
    """Fitted on 1,200 bars of calm rises and wild falls, on the 400 after it keeps the rule's long
    bars in the calm phases and drops them in the wild ones (once 20 bars have shown the phase);
    pooled over four markets of two coins each."""
    taken = {"calm": [], "wild": []}
    for seed in (1, 3, 5, 7):
        market = {"A": _regimes(seed), "B": _regimes(seed + 1)}
        end = market["A"].index[1199]
        w = MetaLabelAgent(classifier).fit(market, end=end).weights(market, start=market["A"].index[1200])
        for a, m in market.items():
            long = (donchian_position(m["close"]).loc[w.index] > 0).to_numpy()
            phase = m["settled"].loc[w.index].to_numpy()
            for name in taken:
                taken[name].extend(w[a].to_numpy()[long & (phase == name)] > 0)
    assert len(taken["wild"]) >= 200  # the rule is long in wild phases often enough to tell
    assert np.mean(taken["calm"]) > 0.8
    assert np.mean(taken["wild"]) < 0.2


@pytest.mark.parametrize("classifier", ["logistic", "forest"])
def test_with_the_demos_metrics_it_finds_their_planted_signal(classifier):
    """The demo market's leading metrics carry a drift (cryptorl.data.demo): a year after two years
    of fitting, the agent reading them filters the rule better than the same agent without them."""
    data = {a: demo_data(a, start="2020-01-01", end="2022-12-31") for a in ASSETS}
    market, metrics = {a: m for a, (m, _) in data.items()}, {a: x for a, (_, x) in data.items()}
    sortino = {}
    for use in (False, True):
        agent = MetaLabelAgent(classifier, use_metrics=use).fit(market, metrics, end="2021-12-31")
        w = agent.weights(market, metrics, start="2022-01-01", end="2022-12-31")
        sortino[use] = backtest(w, market, interval="1d", fee=0.001).metrics()["Sortino"]
    assert sortino[True] > sortino[False] + 0.3


def test_bad_settings_and_a_range_with_one_outcome_are_refused(markets):
    with pytest.raises(ValueError, match="unknown classifier"):
        MetaLabelAgent("svm")
    with pytest.raises(ValueError, match="needs a prior"):
        MetaLabelAgent(prior="none")
    with pytest.raises(ValueError, match="horizon"):
        MetaLabelAgent(horizon=0)
    with pytest.raises(ValueError, match="threshold"):
        MetaLabelAgent(threshold=1.0)
    with pytest.raises(ValueError, match="normalisation window"):
        MetaLabelAgent(norm_window=1)
    with pytest.raises(ValueError, match=r"reads the metrics \['hashrate'\], which BTC lacks"):
        MetaLabelAgent(use_metrics=["hashrate"]).fit(markets, {a: demo_data(a)[1] for a in ASSETS}, end=FIT_END)
    rising = markets["BTC"].copy()
    rising[["open", "high", "low", "close"]] = np.repeat(np.exp(np.linspace(0, 2, len(rising)))[:, None], 4, axis=1)
    with pytest.raises(ValueError, match="one outcome"):
        MetaLabelAgent().fit({"BTC": rising}, end=FIT_END)
