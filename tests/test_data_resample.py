"""Resampling to coarser UTC bars, Binance kline dumps, and the gap policy on the command line."""

from __future__ import annotations

import argparse
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.cli import UserError, add_data_arguments, load_for_cli
from cryptorl.data import DataError, load_data
from cryptorl.data.files import import_path, read_path
from cryptorl.data.resample import can_resample, resample_market


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def hourly(start="2021-01-01 00:00", hours=48, seed=0) -> pd.DataFrame:
    idx = pd.date_range(start, periods=hours, freq="1h", tz="UTC", name="time")
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, hours)))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": rng.uniform(1, 10, hours),
        },
        index=idx,
    )


def test_hand_computed_bars_incomplete_flagged_gaps_kept_edges_dropped():
    h = hourly("2021-01-01 03:00", 45)  # starts mid-window, ends 2021-01-02 23:00
    h = h.drop(h.index[(h.index >= utc("2021-01-01 14:00")) & (h.index <= utc("2021-01-01 15:00"))])  # outage
    h = h.drop(h.index[(h.index >= utc("2021-01-02 06:00")) & (h.index < utc("2021-01-02 12:00"))])  # a whole 6h window
    r = resample_market(h, "1h", "6h")
    assert r.frame.index[0] == utc("2021-01-01 06:00")  # the 00:00 window lacked its first 3 hours: dropped
    assert utc("2021-01-02 06:00") not in r.frame.index  # no hour at all: a gap, not an invented bar
    assert list(r.incomplete) == [utc("2021-01-01 12:00")] and r.dropped_edges == 1
    w = h.loc["2021-01-01 12:00":"2021-01-01 17:00"]
    assert r.frame.loc[utc("2021-01-01 12:00")].tolist() == pytest.approx(
        [w.open.iloc[0], w.high.max(), w.low.min(), w.close.iloc[-1], w.volume.sum()]
    )
    last = h.loc["2021-01-02 18:00":]
    assert r.frame.index[-1] == utc("2021-01-02 18:00") and r.frame.iloc[-1]["close"] == last.close.iloc[-1]


def test_a_forming_last_window_is_dropped_and_bad_targets_refused():
    r = resample_market(hourly(hours=28), "1h", "6h")  # 24 full hours + 4 of a forming window
    assert len(r.frame) == 4 and r.dropped_edges == 1
    assert can_resample("1h", "4h") and can_resample("4h", "1d") and not can_resample("4h", "6h")
    assert not can_resample("1h", "5h") and not can_resample("6h", "1h")
    with pytest.raises(DataError, match="cannot resample 4h bars to 6h"):
        resample_market(hourly(), "4h", "6h")


@settings(max_examples=25, deadline=None)
@given(target=st.sampled_from(["2h", "3h", "4h", "6h", "8h", "12h", "1d"]), seed=st.integers(0, 50))
def test_resampling_agrees_with_pandas_and_conserves_volume(target, seed):
    h = hourly(hours=96, seed=seed)
    r = resample_market(h, "1h", target)
    ref = h.resample(target, origin="epoch").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    pd.testing.assert_frame_equal(r.frame, ref, check_freq=False)
    assert r.frame.volume.sum() == pytest.approx(h.volume.sum())


def _kline_rows(frame: pd.DataFrame) -> str:
    ms = frame.index.asi8 // 10**6
    lines = [
        f"{t},{o},{hi},{lo},{c},{v},{t + 3599999},0,1,0,0,0"
        for t, o, hi, lo, c, v in zip(ms, frame.open, frame.high, frame.low, frame.close, frame.volume)
    ]
    return "\n".join(lines) + "\n"


def test_binance_monthly_dumps_merge_and_resample(tmp_path, store):
    h = hourly("2021-01-31 00:00", 48)  # across two monthly files
    for month, part in (("2021-01", h.loc[:"2021-01-31 23:00"]), ("2021-02", h.loc["2021-02-01":])):
        with zipfile.ZipFile(tmp_path / f"BTCUSDT-1h-{month}.zip", "w") as z:
            z.writestr(f"BTCUSDT-1h-{month}.csv", _kline_rows(part))
    (item,) = import_path(tmp_path, store, interval="6h")
    assert item.asset == "BTC" and item.interval == "6h" and item.resampled_from == "1h" and len(item.paths) == 2
    got = store.market("BTC", "6h")
    assert len(got) == 8 and got.loc[utc("2021-01-31 18:00"), "close"] == pytest.approx(h.close.iloc[23])
    assert got.loc[utc("2021-02-01 00:00"), "open"] == pytest.approx(h.open.iloc[24])
    (one,) = read_path(tmp_path, interval="1h")
    assert len(one.frame) == 48 and one.resampled_from is None


# ------------------------------------------------------------------ gap policy on the command line
@pytest.fixture
def holey_daily(tmp_path, shared_data):
    """A real daily file of a coin listed late 2019, with 69 days missing in 2020 (after its listing)."""
    df = pd.read_csv(shared_data / "prices" / "daily" / "LINK-USD_1d.csv")
    df = df[df.datetime >= "2019-10-01"]
    hole = (df.datetime >= "2020-01-10") & (df.datetime < "2020-03-19")
    assert hole.sum() == 69
    folder = tmp_path / "files"
    folder.mkdir()
    df[~hole].to_csv(folder / "LINK-USD_1d.csv", index=False)
    return folder


def _args(argv):
    p = argparse.ArgumentParser()
    add_data_arguments(p)
    return p.parse_args(argv)


@pytest.mark.realdata
def test_an_old_hole_does_not_matter_and_gaps_flag_goes_across(holey_daily, tmp_path):
    src = f"csv:{holey_daily}"
    market, _ = load_data("LINK", "1d", "2022-01-01", "2022-09-30", source=src, store=tmp_path / "s")
    assert len(market) == 273
    market, _ = load_data("LINK", "1d", source=src, store=tmp_path / "s")  # open start: after the last hole
    assert market.index[0] == utc("2020-03-19") and market.index.freq is not None
    market, _ = load_for_cli(_args(["--source", src, "--store", str(tmp_path / "s")]), "LINK", "1d")
    assert market.index[0] == utc("2020-03-19")
    with pytest.raises(UserError, match=r"\[LINK\] 1d market data has gaps: 69 bar.*--gaps fill"):
        load_for_cli(_args(["--source", src, "--store", str(tmp_path / "s"), "--start", "2019-12-01"]), "LINK", "1d")
    market, _ = load_for_cli(
        _args(["--source", src, "--store", str(tmp_path / "s"), "--start", "2019-12-01", "--gaps", "fill"]),
        "LINK",
        "1d",
    )
    filled = market.loc["2020-01-10":"2020-03-18"]
    assert len(filled) == 69 and (filled.volume == 0).all() and filled.close.nunique() == 1
    market, _ = load_data("LINK", "1d", "2019-12-01", source=src, store=tmp_path / "s", gaps="keep")
    assert len(market) == len(pd.date_range(utc("2019-12-01"), market.index[-1], freq="D")) - 69
    with pytest.raises(SystemExit):  # irregular bars are for inspection in Python, not a command's option
        _args(["--gaps", "keep"])
