"""Voting (paper eq. 2) and the pluggable Portfolio, with small rule-based Crypto Modules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptorl.data.demo import demo_market
from cryptorl.portfolio import Portfolio, backtest, baselines, vote

BACKTEST = ("2022-03-01", "2022-09-30")


class TrendModule:
    """A real, if trivial, Crypto Module: all in the crypto when the close is above its 10-bar
    mean, all cash otherwise. Row t uses closes up to t only."""

    def __init__(self, asset, interval="1d", data_range=("2020-10-01", "2022-09-30"), window=10, train_end=None):
        self.asset, self.interval, self.window = asset, interval, window
        self.data_range = tuple(pd.Timestamp(t, tz="UTC") for t in data_range)
        if train_end is not None:
            self.train_end = pd.Timestamp(train_end, tz="UTC")
        self.calls = 0

    def decide_range(self, market, metrics, start, end):
        self.calls += 1
        close = market["close"]
        crypto = (close > close.rolling(self.window, min_periods=1).mean()).astype(float)
        return pd.DataFrame({"cash": 1.0 - crypto, "crypto": crypto}).loc[start:end]


@pytest.fixture(scope="module")
def markets():
    return {a: demo_market(a) for a in ["BTC", "STORJ", "BLZ", "LINK"]}


def decisions_frame(rows):
    idx = pd.date_range("2022-03-01", periods=len(rows), freq="D", tz="UTC", name="time")
    return pd.DataFrame(rows, index=idx, columns=["cash", "crypto"], dtype=float)


def test_vote_by_hand():
    out = vote(
        {
            "BTC": decisions_frame([[0, 1], [1, 0]]),
            "ETH": decisions_frame([[0.3, 0.7], [0.5, 0.5]]),
            "LINK": decisions_frame([[1, 0], [0, 1]]),
        }
    )
    assert list(out.columns) == ["cash", "BTC", "ETH", "LINK"]
    # t0: cash (0 + 0.3 + 1)/3, BTC 1/3, ETH 0.7/3, LINK 0; t1: cash (1 + 0.5 + 0)/3, BTC 0, ETH 0.5/3, LINK 1/3
    np.testing.assert_allclose(out.to_numpy(), [[1.3 / 3, 1 / 3, 0.7 / 3, 0.0], [0.5, 0.0, 0.5 / 3, 1 / 3]], rtol=1e-15)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-15)
    single = vote({"BTC": decisions_frame([[0.25, 0.75]])})
    np.testing.assert_allclose(single.to_numpy(), [[0.25, 0.75]])


def test_vote_refuses_bad_decisions():
    good = decisions_frame([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="at least one"):
        vote({})
    with pytest.raises(ValueError, match="decision times differ between BTC and ETH"):
        vote({"BTC": good, "ETH": good.iloc[:1]})
    with pytest.raises(ValueError, match=r"\[ETH\] decisions at .* sum to 1.2"):
        vote({"BTC": good, "ETH": decisions_frame([[0.2, 1.0], [1, 0]])})
    with pytest.raises(ValueError, match=r"\[ETH\] decisions: NaN weight for 'crypto'"):
        vote({"BTC": good, "ETH": decisions_frame([[0, np.nan], [1, 0]])})
    with pytest.raises(ValueError, match=r"\[ETH\] decisions must have columns"):
        vote({"BTC": good, "ETH": good.rename(columns={"crypto": "ETH"})})


def test_plug_unplug_replace(markets):
    btc, storj, blz = TrendModule("BTC"), TrendModule("STORJ"), TrendModule("BLZ")
    p = Portfolio([btc, storj])
    assert p.interval == "1d" and p.assets == ["BTC", "STORJ"]
    own = {
        m.asset: m.decide_range(markets[m.asset], None, *(pd.Timestamp(t, tz="UTC") for t in BACKTEST))
        for m in (btc, storj, blz)
    }
    w2 = p.decide(markets, None, *BACKTEST)
    np.testing.assert_allclose(w2["BTC"], own["BTC"]["crypto"] / 2)
    np.testing.assert_allclose(w2["cash"], (own["BTC"]["cash"] + own["STORJ"]["cash"]) / 2)

    p.add(blz)  # plug in: the others' decisions are unchanged, only m changes
    w3 = p.decide(markets, None, *BACKTEST)
    assert list(w3.columns) == ["cash", "BTC", "STORJ", "BLZ"]
    for a in ["BTC", "STORJ", "BLZ"]:
        np.testing.assert_allclose(w3[a], own[a]["crypto"] / 3)

    assert p.remove("STORJ") is storj  # unplug
    w_rm = p.decide(markets, None, *BACKTEST)
    assert list(w_rm.columns) == ["cash", "BTC", "BLZ"]
    np.testing.assert_allclose(w_rm["BLZ"], own["BLZ"]["crypto"] / 2)

    link = TrendModule("LINK")
    assert p.replace("BTC", link) is btc  # replace keeps the place in the order
    assert p.assets == ["LINK", "BLZ"] and "BTC" not in p and len(p) == 2
    w_rep = p.decide(markets, None, *BACKTEST)
    np.testing.assert_allclose(w_rep["BLZ"], own["BLZ"]["crypto"] / 2)

    res = p.backtest(markets, None, *BACKTEST, fee=0.001)
    direct = backtest(w_rep, markets, interval="1d", fee=0.001)
    pd.testing.assert_series_equal(res.values, direct.values)


def test_refusals(markets):
    p = Portfolio([TrendModule("BTC")], start=BACKTEST[0], end=BACKTEST[1])
    with pytest.raises(ValueError, match="CM for ETH runs on 6h bars; this portfolio runs on 1d bars"):
        p.add(TrendModule("ETH", interval="6h"))
    with pytest.raises(ValueError, match="already has a CM for BTC; use replace"):
        p.add(TrendModule("BTC"))
    with pytest.raises(ValueError, match="CM for LINK covers .* not the requested range"):
        p.add(TrendModule("LINK", data_range=("2020-10-01", "2022-06-30")))
    with pytest.raises(ValueError, match="trained on data up to .* would look ahead"):
        p.add(TrendModule("LINK", train_end="2022-04-30"))
    with pytest.raises(TypeError, match="not a Crypto Module"):
        p.add(object())
    with pytest.raises(KeyError, match="no CM for DOGE"):
        p.remove("DOGE")
    # a refused replacement leaves the portfolio as it was
    with pytest.raises(ValueError, match="runs on 6h"):
        p.replace("BTC", TrendModule("LINK", interval="6h"))
    assert p.assets == ["BTC"]
    # a range asked at decision time is checked too
    q = Portfolio([TrendModule("BTC"), TrendModule("LINK", data_range=("2021-01-01", "2022-09-30"))])
    with pytest.raises(ValueError, match="CM for LINK covers"):
        q.decide(markets, None, "2020-12-01", "2021-06-30")
    with pytest.raises(ValueError, match="no market given for LINK"):
        q.decide({"BTC": markets["BTC"]}, None, *BACKTEST)
    with pytest.raises(ValueError, match="no CMs"):
        Portfolio().decide(markets, None, *BACKTEST)


def test_decide_has_no_look_ahead(markets):
    p = Portfolio([TrendModule("BTC"), TrendModule("LINK")])
    base = p.decide(markets, None, *BACKTEST)
    cut = pd.Timestamp("2022-06-15", tz="UTC")
    shocked = dict(markets)
    f = markets["BTC"].copy()
    later = f.index > cut
    for c in ("open", "high", "low", "close"):
        f.loc[later, c] = f.loc[later, c] * 3.0
    shocked["BTC"] = f
    after = p.decide(shocked, None, *BACKTEST)
    pd.testing.assert_frame_equal(after.loc[:cut], base.loc[:cut])
    assert not after.loc[cut:].equals(base.loc[cut:])


def test_the_papers_three_portfolios_share_modules(markets):
    modules = {a: TrendModule(a) for a in ["BTC", "STORJ", "BLZ", "LINK"]}  # each built once
    shapes = {"a": ["BTC", "STORJ"], "b": ["BTC", "STORJ", "BLZ"], "c": ["BTC", "STORJ", "BLZ", "LINK"]}
    results, weights = {}, {}
    for name, assets in shapes.items():
        p = Portfolio([modules[a] for a in assets])
        weights[name] = p.decide(markets, None, *BACKTEST)
        results[name] = backtest(weights[name], markets, interval="1d")
        base = {
            k: backtest(w, markets, interval="1d")
            for k, w in baselines(markets, assets, start=BACKTEST[0], end=BACKTEST[1]).items()
        }
        assert set(base) >= {f"B&H {a}" for a in assets}
    # a shared CM votes the same way in every portfolio: its weight is its decision / m
    for a in ["BTC", "STORJ"]:
        np.testing.assert_allclose(weights["a"][a] * 2, weights["c"][a] * 4)
        np.testing.assert_allclose(weights["b"][a] * 3, weights["c"][a] * 4)
    assert {m.asset: m.calls for m in modules.values()} == {"BTC": 3, "STORJ": 3, "BLZ": 2, "LINK": 1}
    for res in results.values():
        assert res.values.index[0] == pd.Timestamp(BACKTEST[0], tz="UTC")
        assert res.values.index[-1] == pd.Timestamp(BACKTEST[1], tz="UTC")
        assert np.isfinite(list(res.metrics().values())[:9]).all()
