"""File import: the real files of ../shared/data and every supported layout, into the stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptorl.data import DataError, DataStore, load_data
from cryptorl.data.demo import demo_data
from cryptorl.data.files import import_path, parse_name, read_path


def utc(t: str) -> pd.Timestamp:
    return pd.Timestamp(t, tz="UTC")


# ------------------------------------------------------------------ the real files
@pytest.mark.realdata
def test_real_daily_hourly_and_binance_files(store, shared_data, tmp_path):
    prices = shared_data / "prices"
    daily = import_path(prices / "daily", store)
    assert sorted(i.asset for i in daily) == ["ADA", "BCH", "BNB", "BTC", "DOGE", "ETC", "ETH", "LINK", "LTC", "XRP"]
    for a in ("BTC", "LTC"):
        assert store.count(a, "1d") == 3810 and store.time_range(a, "1d") == (utc("2014-09-17"), utc("2025-02-20"))
    for a in ("ETH", "LINK", "XRP", "ADA"):
        assert store.count(a, "1d") == 2661 and store.time_range(a, "1d") == (utc("2017-11-09"), utc("2025-02-20"))
    assert all(store.gaps(i.asset, "1d") == [] for i in daily)

    hourly = import_path(prices / "hourly", store)  # many zero volumes, one missing hour
    assert {i.asset: i.rows for i in hourly} == {"BTC": 2303, "ETH": 2303, "LINK": 2135}
    assert store.time_range("BTC", "1h") == (utc("2024-11-16"), utc("2025-02-19 23:00"))
    assert store.time_range("LINK", "1h")[0] == utc("2024-11-23")
    btc = store.market("BTC", "1h", gaps="keep")
    assert (btc.volume == 0).sum() > 1000
    assert [(g.after, g.missing) for g in store.gaps("BTC", "1h")] == [(utc("2025-01-02 13:00"), 1)]

    with DataStore(tmp_path / "binance") as other:  # Binance's BTC/USDT is another series than Yahoo's BTC-USD
        (item,) = import_path(prices / "binance", other)
        assert item.layout == "binance-klines" and item.asset == "BTC" and item.rows == 2608
        assert other.time_range("BTC", "1d") == (utc("2018-01-01"), utc("2025-02-20"))
        assert other.market("BTC", "1d").loc["2018-01-01"].tolist() == [
            13715.65,
            13818.55,
            12750.0,
            13380.0,
            8609.915844,
        ]

    # re-importing changes nothing
    assert sum(i.written for i in import_path(prices / "daily", store)) == 0


@pytest.mark.realdata
def test_real_onchain_series_keep_their_three_day_dates(store, shared_data):
    items = import_path(shared_data / "onchain" / "btc_blockchain_com", store)
    assert len(items) == 20 and {i.asset for i in items} == {"BTC"} and {i.layout for i in items} == {"metric-series"}
    m = store.metrics("BTC", "1d")
    assert m.shape[1] == 20 and m.index[0] == utc("2010-08-17") and m.index[-1] == utc("2019-06-07")
    hash_rate = m["hash-rate"].dropna()
    assert len(hash_rate) == 1073 and set(np.diff(hash_rate.index.asi8) // 86_400 // 10**9) == {3}
    assert hash_rate.iloc[0] == 0.003332692
    assert m["trade-volume"].notna().sum() == 1066  # that series has 7 holes: kept as holes


@pytest.mark.realdata
def test_load_data_from_csv_with_metrics_from_another_folder(tmp_path, shared_data):
    market, metrics = load_data(
        "BTC", "1d", "2018-01-01", "2018-12-31", source=f"csv:{shared_data / 'prices' / 'daily'}", store=tmp_path
    )
    assert len(market) == 365 and metrics.shape == (0, 0)
    market, metrics = load_data(
        "BTC",
        "1d",
        "2018-01-01",
        "2018-12-31",
        source=f"csv:{shared_data / 'onchain' / 'btc_blockchain_com'}",
        store=tmp_path,
    )
    assert len(market) == 365 and metrics.shape == (122, 20)  # every three days
    with pytest.raises(DataError, match=r"\[BTC\] two files give 1d market data"):
        load_data("BTC", source=f"csv:{shared_data / 'prices'}", store=tmp_path / "x")


# ------------------------------------------------------------------ every layout
def test_every_layout_round_trips(tmp_path, store):
    market, metrics = demo_data("ETH", "1d", "2021-01-01", "2021-03-31")
    folder = tmp_path / "in"
    (folder / "eth_santiment").mkdir(parents=True)
    generic = market.reset_index().rename(columns={"time": "datetime"})
    generic["datetime"] = generic["datetime"].dt.strftime("%Y-%m-%d")
    generic.to_csv(folder / "ETH-USD_1d.csv", index=False)
    # Binance's public dumps: twelve columns, no header, open time in microseconds (2025 format)
    hourly = demo_data("LINK", "1h", "2017-02-01", "2017-02-03 23:00")[0]
    t_us = hourly.index.as_unit("us").asi8
    kl = pd.DataFrame(
        {
            "t": t_us,
            **{c: hourly[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
            "ct": t_us + 3_599_999_999,
            "q": 1.0,
            "n": 10,
            "tb": 0.5,
            "tq": 0.5,
            "i": 0,
        }
    )
    kl.to_csv(folder / "LINKUSDT-1h-2017-02.csv", index=False, header=False)
    (folder / "LINKUSDT_1h.csv").write_text((folder / "LINKUSDT-1h-2017-02.csv").read_text())
    (folder / "LINKUSDT-1h-2017-02.csv").unlink()
    market.iloc[:40].to_parquet(folder / "BNB_1d.parquet")
    for name in metrics.columns[:3]:  # two-column series, no header, one per metric; the folder names the asset
        s = metrics[name].iloc[::3]
        pd.DataFrame({"d": s.index.strftime("%Y-%m-%d 0:00"), "v": s.to_numpy()}).to_csv(
            folder / "eth_santiment" / f"{name}.csv", index=False, header=False
        )
    metrics.iloc[:, 3:5].to_parquet(folder / "eth_santiment" / "ETH_1d_metrics.parquet")

    items = import_path(folder, store)
    kinds = {(i.path.name, i.layout, i.asset, i.interval) for i in items}
    assert ("ETH-USD_1d.csv", "ohlcv", "ETH", "1d") in kinds
    assert ("LINKUSDT_1h.csv", "binance-klines", "LINK", "1h") in kinds
    assert ("BNB_1d.parquet", "ohlcv", "BNB", "1d") in kinds
    assert ("ETH_1d_metrics.parquet", "metrics-table", "ETH", "1d") in kinds
    pd.testing.assert_frame_equal(store.market("ETH", "1d"), market, check_freq=False)
    pd.testing.assert_frame_equal(store.market("LINK", "1h"), hourly, check_freq=False)
    pd.testing.assert_frame_equal(store.market("BNB", "1d"), market.iloc[:40], check_freq=False)
    got = store.metrics("ETH", "1d")
    assert sorted(got.columns) == sorted(metrics.columns[:5])
    pd.testing.assert_series_equal(
        got[metrics.columns[0]].dropna(), metrics[metrics.columns[0]].iloc[::3], check_freq=False, check_names=False
    )
    pd.testing.assert_frame_equal(got[list(metrics.columns[3:5])], metrics.iloc[:, 3:5], check_freq=False)
    # asset and interval filters read only what is asked for
    assert [i.path.name for i in read_path(folder, assets=["BNB"])] == ["BNB_1d.parquet"]
    assert {i.asset for i in read_path(folder, interval="1h")} == {"LINK", "ETH"}  # + ETH's metric series


def test_bad_file_is_named_and_nothing_is_written(tmp_path, store):
    market, _ = demo_data("BTC", "1d", "2021-01-01", "2021-01-31")
    folder = tmp_path / "in"
    folder.mkdir()
    good = market.reset_index().rename(columns={"time": "date"})
    good.to_csv(folder / "BTC-USD_1d.csv", index=False)
    bad = good.copy()
    bad.loc[7, "low"] = -1.0
    bad.to_csv(folder / "ETH-USD_1d.csv", index=False)
    with pytest.raises(DataError, match=r"\[ETH\] non-positive price \(at .*ETH-USD_1d.csv, 2021-01-08"):
        import_path(folder, store)
    assert store.assets() == []  # the good file was not written either

    (folder / "ETH-USD_1d.csv").write_text("date;open;high\n2021-01-01;1;2\n")
    with pytest.raises(DataError, match=r"\[ETH\] only one column \('date;open;high'\): .*separated by commas"):
        import_path(folder, store)
    (folder / "ETH-USD_1d.csv").write_text("date,price\n2021-01-01,1\n")
    with pytest.raises(
        DataError, match=r"\[ETH\] market data lacks column\(s\) \['open', 'high', 'low', 'close', 'volume'\]"
    ):
        import_path(folder, store)
    (folder / "ETH-USD_1d.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(
        DataError, match=r"\[ETH\] unrecognised CSV layout: no header and 3 columns .*\(at .*ETH-USD_1d.csv\)"
    ):
        import_path(folder, store)
    with pytest.raises(DataError, match="no such file or folder"):
        import_path(tmp_path / "nope", store)


def test_file_names():
    assert parse_name("BTC-USD_1d") == ("BTC", "USD", "1d")
    assert parse_name("BTCUSDT_1d") == ("BTC", "USDT", "1d")
    assert parse_name("eth_usdt_4h") == ("ETH", "USDT", "4h")
    assert parse_name("LINK") == ("LINK", None, None)
    assert parse_name("hash-rate") is None
