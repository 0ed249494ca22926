"""Real files as they exist (../shared/data): freqtrade klines, 1h -> 6h resampling, on-chain layouts."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptorl.data import DataError
from cryptorl.data.files import import_path, read_file, read_path
from cryptorl.data.store import DataStore

pytestmark = pytest.mark.realdata


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


@pytest.mark.parametrize(
    "relpath, asset, n_metrics, first, last",
    [
        ("coinmetrics/btc.csv", "BTC", 12, "2014-03-14", "2024-12-31"),  # 10 on-chain + 2 Wikipedia columns
        ("coinmetrics/eth.csv", "ETH", 12, "2015-07-01", "2024-12-31"),
        ("coinmetrics_community/btc.csv", "BTC", 8, "2009-01-03", "2023-01-09"),
        ("coinmetrics_community/eth.csv", "ETH", 8, "2015-07-30", "2023-01-09"),
        ("coinmetrics_btc_flows/CM_exchange_BTC_netflows_all.csv", "BTC", 1, "2010-07-18", "2024-04-19"),
        ("etherscan_eth/export-DailyActiveEthAddress.csv", "ETH", 3, "2015-07-30", "2023-06-17"),
        ("etherscan_eth/export-TxGrowth.csv", "ETH", 1, "2015-07-30", "2023-06-17"),
        ("messari_xrp/xrp_data.csv", "XRP", 8, "2016-01-01", "2022-06-05"),
        ("wikipedia/pageviews-Bitcoin.csv", "BTC", 1, "2015-07-01", "2024-12-31"),
    ],
)
def test_each_onchain_layout_imports(shared_data, relpath, asset, n_metrics, first, last):
    item = read_file(shared_data / "onchain" / relpath)
    assert item.kind == "metrics" and item.asset == asset and item.interval == "1d"
    assert item.frame.shape[1] == n_metrics, (list(item.frame.columns), item.skipped)
    assert item.frame.index[0] == utc(first) and item.frame.index[-1] == utc(last)
    assert all(c == c.lower() and " " not in c for c in item.frame.columns)
    assert set(item.originals.values()) <= set(
        pd.read_csv(
            shared_data / "onchain" / relpath,
            nrows=0,
            encoding="utf-16" if "flows" in relpath else "utf-8-sig",
            sep="\t" if "flows" in relpath else ",",
        ).columns.str.strip()
    )


def test_names_and_values_of_the_layouts(shared_data):
    cm = read_file(shared_data / "onchain" / "coinmetrics" / "btc.csv")
    assert cm.originals["active_addr_cnt"] == "BTC / Active Addr Cnt"
    assert cm.originals["miner_revenue_per_hash_usd"] == "BTC / Miner Revenue per Hash (USD)"
    es = read_file(shared_data / "onchain" / "etherscan_eth" / "export-TxGrowth.csv")
    assert es.frame.loc[utc("2015-07-30"), "tx_growth"] == 8893  # "7/30/2015" read as M/D/YYYY
    community = read_file(shared_data / "onchain" / "coinmetrics_community" / "eth.csv")
    assert community.frame["diff_mean"].max() > 2e15  # "2.30887019300503E+015"
    messari = read_file(shared_data / "onchain" / "messari_xrp" / "xrp_data.csv")
    assert messari.frame.index.is_monotonic_increasing  # newest-first file, sorted
    # the same metric from the community CSV and the wide export agrees
    wide = read_file(shared_data / "onchain" / "coinmetrics" / "btc.csv").frame["mean_hash_rate"]
    comm = read_file(shared_data / "onchain" / "coinmetrics_community" / "btc.csv").frame["hash_rate"]
    both = pd.concat([wide, comm], axis=1, join="inner").dropna().loc["2021"]
    assert len(both) > 300 and ((both.iloc[:, 0] / both.iloc[:, 1] - 1).abs() < 1e-6).all()


def test_non_daily_columns_are_left_out_and_refused_when_named(shared_data):
    path = shared_data / "onchain" / "coinmetrics" / "btc.csv"
    item = read_file(path)
    assert "repeat" in item.skipped["Google_btc_search"]  # monthly Google Trends spread over the days
    assert "trading days" in item.skipped["Close_^GSPC"] or "price" in item.skipped["Close_^GSPC"]
    assert "price" in item.skipped["BTC-USD"] and "Friday" in item.skipped["USD_EUR_rate"]
    assert not any(c.startswith(("google", "close")) for c in item.frame.columns)
    with pytest.raises(DataError, match=r"Google_btc_search.*not a daily observation.*allow_non_daily"):
        read_file(path, include=["Google_btc_search"])
    opted = read_file(path, include=["google_btc_search", "tx_cnt"], allow_non_daily=True)
    assert list(opted.frame.columns) == ["tx_cnt", "google_btc_search"]  # in file order
    assert (
        list(read_file(path, exclude=["NVT", "Wiki_btc_search", "wiki_crypto_search"]).frame.columns)[-1]
        == "exchange_deposits_usd"
    )


def test_eth_hash_rate_after_the_merge_is_missing_not_zero(shared_data, store):
    import_path(shared_data / "onchain" / "coinmetrics" / "eth.csv", store)
    assert store.metric_labels("ETH")["mean_hash_rate"] == "ETH / Mean Hash Rate"  # the original name is kept
    m = store.metrics("ETH", "1d", "2022-09-01", "2022-10-01")
    assert m.loc[:"2022-09-14", "mean_hash_rate"].notna().all() and (m.loc[:"2022-09-14", "mean_hash_rate"] > 0).all()
    assert m.loc["2022-09-15":, "mean_hash_rate"].isna().all()
    assert m.loc["2022-09-15":, "tx_cnt"].notna().all()


def test_freqtrade_feather_and_json_give_the_same_store(shared_data, tmp_path):
    folder = shared_data / "prices" / "binance_freqtrade"
    a, b = DataStore(tmp_path / "feather"), DataStore(tmp_path / "json")
    (fa,) = import_path(folder / "BTC_USDT-4h.feather", a)
    (fb,) = import_path(folder / "json_2017_2022" / "BTC_USDT-4h.json", b)
    assert fa.layout == fb.layout == "freqtrade" and fa.interval == fb.interval == "4h"
    lo, hi = "2020-05-11", "2022-10-11"
    pd.testing.assert_frame_equal(a.market("BTC", "4h", lo, hi), b.market("BTC", "4h", lo, hi))
    a.close()
    b.close()


def test_1h_to_6h_equals_a_hand_computed_bar_and_pandas_resample(shared_data):
    (item,) = read_path(shared_data / "prices" / "binance_freqtrade", assets=["BTC"], interval="6h")
    assert item.resampled_from == "1h" and item.interval == "6h"
    hourly = pd.read_feather(shared_data / "prices" / "binance_freqtrade" / "BTC_USDT-1h.feather").set_index("date")
    six = item.frame
    assert set(six.index.hour) == {0, 6, 12, 18}
    window = hourly.loc["2021-03-01 06:00":"2021-03-01 11:00"]
    assert len(window) == 6
    assert six.loc[utc("2021-03-01 06:00")].tolist() == pytest.approx(
        [
            window["open"].iloc[0],
            window["high"].max(),
            window["low"].min(),
            window["close"].iloc[-1],
            window["volume"].sum(),
        ]
    )
    ref = (
        hourly.resample("6h", origin="epoch")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    ref = ref.loc[six.index]
    pd.testing.assert_frame_equal(six, ref.rename_axis("time"), check_freq=False, rtol=1e-12)
    # Binance's outage 2020-12-21 14:00-17:00: the 12:00 bar is built from 2 hours, flagged
    assert utc("2020-12-21 12:00") in item.incomplete and utc("2020-12-21 06:00") not in item.incomplete
    assert len(item.incomplete) < 30 and item.gaps == []


@pytest.mark.slow
def test_train_cm_on_real_6h_bars_and_coin_metrics_end_to_end(shared_data, tmp_path, capsys):
    from experiments import train_cm

    code = train_cm.main(
        [
            "--asset",
            "BTC",
            "--interval",
            "6h",
            "--source",
            f"csv:{shared_data / 'prices' / 'binance_freqtrade'}",
            "--metrics",
            f"csv:{shared_data / 'onchain' / 'coinmetrics'}",
            "--start",
            "2020-06-01",
            "--end",
            "2022-09-30",
            "--timesteps",
            "600",
            "--ensemble",
            "1",
            "--eval-freq",
            "300",
            "--n-envs",
            "8",
            "--store",
            str(tmp_path / "data"),
            "--models",
            str(tmp_path / "models"),
            "--tensorboard-log",
            "",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "BTC 6h: 3405 bars 2020-06-01 .. 2022-09-30; 12 metrics" in out
    assert "active_addr_cnt" in out and "Backtest 2022-03-01 .. 2022-09-30" in out
    assert "-55.04%" in out  # buy-and-hold BTC over the paper's backtest range on real 6h bars


def test_fetch_data_takes_freqtrade_1h_files_at_1h_and_6h(shared_data, tmp_path, capsys):
    from experiments.fetch_data import main

    folder = f"csv:{shared_data / 'prices' / 'binance_freqtrade'}"
    for interval, rows in (("6h", "3409"), ("1h", "20427")):  # 1h: 852 days x 24 + 1 - 22 outage hours
        code = main(
            [
                "--assets",
                "BTC",
                "--source",
                folder,
                "--interval",
                interval,
                "--start",
                "2020-06-01",
                "--end",
                "2022-10-01",
                "--store",
                str(tmp_path),
                "--no-progress",
            ]
        )
        out = capsys.readouterr().out
        assert code == 0 and f"│ BTC   │ {rows:>11} │" in out
    assert "resampled 1h -> 6h; 12 bar(s) built from incomplete windows" not in out  # the 1h run resamples nothing
    with DataStore(tmp_path) as s:
        assert sum(g.missing for g in s.gaps("BTC", "1h", "2020-06-01", "2022-10-01")) == 22  # Binance's outages
        assert s.gaps("BTC", "6h") == []


def test_fetch_data_reports_the_columns_it_left_out(shared_data, tmp_path, capsys):
    from experiments.fetch_data import main

    code = main(
        [
            "--assets",
            "BTC",
            "--source",
            f"csv:{shared_data / 'onchain' / 'coinmetrics'}",
            "--store",
            str(tmp_path),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "left out" in out and "Google_btc_search" in out and "BTC-USD" in out
    code = main(
        [
            "--assets",
            "BTC",
            "--source",
            f"csv:{shared_data / 'onchain' / 'coinmetrics'}",
            "--store",
            str(tmp_path / "x"),
            "--include",
            "Google_btc_search",
            "--no-progress",
        ]
    )
    assert code == 2 and "--allow-non-daily" in capsys.readouterr().err
