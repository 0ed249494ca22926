"""The DRU on real Bitcoin data: 20 blockchain.com on-chain series (every 3 days, 2010-08 .. 2019-06)
and Yahoo daily prices. Read with pandas directly (the files are two-column, no header)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptorl.features import DataRefinementUnit

pytestmark = pytest.mark.realdata


def _onchain(shared_data: Path) -> pd.DataFrame:
    folder = shared_data / "onchain" / "btc_blockchain_com"
    cols = {}
    for f in sorted(folder.glob("*.csv")):
        s = pd.read_csv(f, header=None, names=["time", "value"], parse_dates=["time"], index_col="time")["value"]
        cols[f.stem] = s
    frame = pd.DataFrame(cols)  # union of dates: trade-volume sits one day off the grid for a while
    frame.index = frame.index.tz_localize("UTC")
    frame.index.name = "time"
    return frame


@pytest.fixture(scope="module")
def onchain(shared_data) -> pd.DataFrame:
    return _onchain(shared_data)


def test_btc_onchain_3day_grid(onchain):
    # Price: the on-chain market-price series, on its own 3-day grid (daily prices start only in
    # 2014-09, after the 2013 start of the selection range). Horizons 12/24/48 bars = 36/72/144 days.
    price = onchain["market-price"].dropna()
    market = pd.DataFrame({c: price for c in ["open", "high", "low", "close"]} | {"volume": 0.0})
    metrics = onchain.drop(columns=["market-price"])
    runs = []
    for _ in range(2):
        dru = DataRefinementUnit().fit(market.loc["2013-01-01":], metrics.loc["2013-01-01":], "2017-12-31", asset="BTC")
        runs.append((dru, dru.transform(market, metrics)))
    (dru, out), (dru2, out2) = runs
    sel = dru.selection
    assert sel.train_start >= pd.Timestamp("2013-01-01", tz="UTC") and sel.train_end <= pd.Timestamp(
        "2017-12-31", tz="UTC"
    )
    assert len(dru.metrics) == 10 and 1 <= dru.n_components <= 10
    # trade-volume's dates drift one day off the market grid from 2013-09: align_metrics counts its
    # staleness from the next bar, so it keeps its coverage and is not dropped
    assert "trade-volume" not in sel.dropped
    assert out.shape == (len(market), dru.n_components)
    assert out.iloc[: dru.warmup].isna().all().all()
    assert out.iloc[dru.warmup :].notna().all().all()
    assert np.isfinite(out.iloc[dru.warmup :].to_numpy()).all()
    # determinism: a second fit and transform are identical
    assert dru2.metrics == dru.metrics
    pd.testing.assert_frame_equal(out, out2, check_exact=True)


def test_btc_daily_prices_with_3day_metrics(shared_data, onchain):
    # Daily Yahoo prices (2014-09-17 ..), the 3-day metrics carried forward at most 3 days.
    daily = pd.read_csv(
        shared_data / "prices" / "daily" / "BTC-USD_1d.csv", parse_dates=["datetime"], index_col="datetime"
    )
    daily.index = daily.index.tz_localize("UTC").rename("time")
    market = daily.loc[:"2019-06-07"]
    metrics = onchain.loc["2014-09-01":]
    dru = DataRefinementUnit().fit(market, metrics, "2017-12-31", asset="BTC")
    assert dru.ffill_limit == 3 and len(dru.metrics) == 10
    out = dru.transform(market, metrics)
    assert out.shape == (len(market), dru.n_components)
    assert out.iloc[dru.warmup :].notna().all().all() and out.iloc[: dru.warmup].isna().all().all()
