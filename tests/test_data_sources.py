"""The data source registry: a source added in one file fills the store through fetch_data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cryptorl.data import DataStore, load_data
from cryptorl.data.demo import demo_market
from cryptorl.data.sources import SOURCES, get_source, register_source
from experiments import fetch_data


@pytest.fixture
def toy(tmp_path):
    import toy_source

    SOURCES["jsonbars"] = toy_source.SOURCE
    market = demo_market("BTC", "1d", "2021-01-01", "2021-01-31")
    rows = [
        [int(t.value // 1_000_000), *map(float, row)] for t, row in zip(market.index, market.to_numpy(), strict=True)
    ]
    path = tmp_path / "bars.json"
    path.write_text(json.dumps({"BTC": rows}))
    yield path, market
    SOURCES.pop("jsonbars", None)


def test_the_built_in_sources_and_how_they_are_written():
    assert [s for s in SOURCES][:7] == ["demo", "store", "csv", "binance", "exchange", "santiment", "coinmetrics"]
    assert get_source("csv:some/folder")[1] == "some/folder" and get_source("exchange:kraken")[1] == "kraken"
    assert get_source("kraken")[0].name == "exchange"  # any ccxt id is an exchange
    with pytest.raises(ValueError, match="unknown source 'yahoo': use one of demo, store, csv:PATH"):
        get_source("yahoo")
    with pytest.raises(ValueError, match="santiment serves metrics, not prices"):
        get_source("santiment", serves="market")
    with pytest.raises(ValueError, match="registered already"):
        register_source("demo", "again")


def test_a_toy_source_fills_the_store_through_fetch_data(toy, tmp_path, capsys):
    path, market = toy
    assert "jsonbars:PATH" in fetch_data.build_parser().format_help()
    argv = ["--assets", "BTC", "--source", f"jsonbars:{path}", "--store", str(tmp_path / "data"), "--no-progress"]
    assert fetch_data.main(argv) == 0
    out = capsys.readouterr().out
    assert "2021-01-01" in out and "2021-01-31" in out and " 31 " in out
    with DataStore(tmp_path / "data") as store:
        pd.testing.assert_frame_equal(store.market("BTC", "1d"), market, check_freq=False)
    # a local source is also one load_data reads directly (it fills the store it is given first)
    loaded, _ = load_data("BTC", "1d", source=f"jsonbars:{path}", store=tmp_path / "other")
    pd.testing.assert_frame_equal(loaded, market, check_freq=False)


def test_a_toy_source_refusing_a_request_is_one_line_and_exit_2(toy, tmp_path, capsys):
    argv = ["--assets", "BTC", "--source", f"jsonbars:{tmp_path / 'none.json'}", "--store", str(tmp_path / "d")]
    assert fetch_data.main(argv) == 2
    assert capsys.readouterr().err.strip().endswith("none.json: no such file")
    assert not (tmp_path / "d" / "prices.sqlite").exists()  # nothing written before the checks
