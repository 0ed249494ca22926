"""Composing portfolios from stored Crypto Modules: the paper's experiment shape on demo data.

Four CMs (BTC, ETH, LINK, BNB) are trained once, by ``experiments.compose --train-missing`` for
the 4-CM portfolio (c); portfolios (a) BTC+ETH and (b) BTC+ETH+LINK then reuse them from the
store. Plug-in / unplug / replace change only m; CMs on another interval or trained into the
backtest range are refused with one line and exit code 2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.crypto_module import CMConfig
from agents.pipeline import STRATEGY
from agents.portfolio import (
    MissingModuleError,
    backtest_range,
    load_module,
    load_portfolio,
)
from agents.training import paper_split, train_crypto_module
from cryptorl.cli import DEMO_START
from cryptorl.data import load_data
from cryptorl.data.frames import to_utc_timestamp as utc
from cryptorl.modelstore import ModelStore
from cryptorl.portfolio import Portfolio, backtest, buy_and_hold
from experiments.compose import main

pytestmark = pytest.mark.slow

PORTFOLIOS = {"a": ["BTC", "ETH"], "b": ["BTC", "ETH", "LINK"], "c": ["BTC", "ETH", "LINK", "BNB"]}
QUIET = ["--no-progress", "--tensorboard-log", "", "--source", "demo"]


def _data(assets, interval="1d"):
    pairs = {a: load_data(a, interval, DEMO_START, "2022-09-30") for a in assets}
    return {a: m for a, (m, _) in pairs.items()}, {a: x for a, (_, x) in pairs.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Portfolio (c) composed with --train-missing on an empty store: trains the four CMs once."""
    root = tmp_path_factory.mktemp("models")
    out = tmp_path_factory.mktemp("report") / "c"
    assert (
        main(
            [
                "--assets",
                "BTC,ETH,LINK,BNB",
                "--models",
                str(root),
                "--train-missing",
                "--timesteps",
                "1500",
                "--ensemble",
                "1",
                "--out",
                str(out),
                *QUIET,
            ]
        )
        == 0
    )
    return root, out


@pytest.fixture(scope="module")
def data():
    return _data(PORTFOLIOS["c"])


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("compose: error: "), err
    return err[0]


def test_three_portfolios_share_four_cms_trained_once(trained, data):
    """Portfolios (a), (b), (c) of 2, 3 and 4 CMs reuse the four CMs, each trained exactly once."""
    root, _ = trained
    markets, metrics = data
    store = ModelStore(root)
    assert sorted(p.name for p in root.iterdir()) == ["BNB_1d", "BTC_1d", "ETH_1d", "LINK_1d"]
    assert all(len(store.versions(a, "1d")) == 1 for a in PORTFOLIOS["c"])
    portfolios = {k: load_portfolio(v, root, "1d") for k, v in PORTFOLIOS.items()}
    start, end = backtest_range(portfolios["c"], markets)
    decisions = portfolios["c"].decisions(markets, metrics, start, end)
    for name, p in portfolios.items():
        w = p.decide(markets, metrics, start, end)
        m = len(PORTFOLIOS[name])
        assert list(w.columns) == ["cash", *PORTFOLIOS[name]]
        for a in PORTFOLIOS[name]:  # a shared CM votes the same way in every portfolio it is in
            np.testing.assert_allclose(w[a].to_numpy() * m, decisions[a]["crypto"].to_numpy(), rtol=0, atol=1e-15)
        cash = sum(decisions[a]["cash"].to_numpy() for a in PORTFOLIOS[name]) / m
        np.testing.assert_allclose(w["cash"].to_numpy(), cash, rtol=0, atol=1e-15)
    assert all(len(store.versions(a, "1d")) == 1 for a in PORTFOLIOS["c"])  # composing trained nothing


def test_compose_cli_writes_the_report(trained, data, capsys):
    root, out = trained
    markets, metrics = data
    for f in (
        "metrics.md",
        "metrics.csv",
        "cumulative_returns.png",
        "weights_cryptorlpm.png",
        "weights_b_h_equal_weight.png",
        "weights_crp_equal_weight.png",
    ):
        assert (out / f).stat().st_size > 0, f
        if f.endswith(".png"):
            assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(out / "metrics.csv", index_col="strategy")
    assert list(table.index) == [
        STRATEGY,
        "B&H BTC",
        "B&H ETH",
        "B&H LINK",
        "B&H BNB",
        "B&H equal weight",
        "CRP equal weight",
        "Trend SMA20",
    ]
    assert "| CryptoRLPM |" in (out / "metrics.md").read_text()
    # Default range: from the first bar after the CMs' training + validation to the end of the data.
    p = load_portfolio(PORTFOLIOS["c"], root, "1d")
    assert max(m.train_end for m in p) == utc("2022-02-28 23:59:59")
    start, end = backtest_range(p, markets)
    assert (start, end) == (utc("2022-03-01"), utc("2022-09-30"))
    # The portfolio row is the engine's backtest of the voted weights; buy-and-hold is the file's closes.
    voted = backtest(p.decide(markets, metrics, start, end), markets, interval="1d").metrics()
    assert table.loc[STRATEGY, "ARR"] == pytest.approx(voted["ARR"], rel=1e-9)
    close = markets["BTC"]["close"]
    assert table.loc["B&H BTC", "ARR"] == pytest.approx(close[end] / close[start] * (1 - 0.001) - 1, rel=1e-9)


def test_compose_cli_same_costs_for_every_strategy(trained, data, tmp_path, capsys):
    root, _ = trained
    markets, metrics = data
    assert (
        main(
            [
                "--assets",
                "BTC,ETH",
                "--models",
                str(root),
                "--out",
                str(tmp_path),
                "--fee",
                "0.002",
                "--execution",
                "next_open",
                "--start",
                "2022-04-01",
                "--end",
                "2022-08-31",
                *QUIET,
            ]
        )
        == 0
    )
    out = "".join(capsys.readouterr().out.split())  # rich wraps long paths
    for key, name in (
        ("table_csv", "metrics.csv"),
        ("cumulative_png", "cumulative_returns.png"),
        ("weights_cryptorlpm", "weights_cryptorlpm.png"),
    ):
        assert f"{key}:{tmp_path / name}" in out
    table = pd.read_csv(tmp_path / "metrics.csv", index_col="strategy")
    kw = {"interval": "1d", "fee": 0.002, "execution": "next_open"}
    p = load_portfolio(["BTC", "ETH"], root, "1d")
    # The CLI loaded data up to --end; these markets run a month longer: same decisions (no look-ahead).
    voted = backtest(p.decide(markets, metrics, "2022-04-01", "2022-08-31"), markets, **kw)
    bh = backtest(buy_and_hold(markets, "ETH", start="2022-04-01", end="2022-08-31"), markets, **kw)
    assert table.loc[STRATEGY, "ARR"] == pytest.approx(voted.metrics()["ARR"], rel=1e-9)
    assert table.loc["B&H ETH", "ARR"] == pytest.approx(bh.metrics()["ARR"], rel=1e-9)
    assert voted.values.index[0] == utc("2022-04-01") and voted.values.index[-1] == utc("2022-08-31")


def test_unplug_replace_plug_in_change_only_m(trained, data):
    root, _ = trained
    markets, metrics = data
    s, e = "2022-03-01", "2022-09-30"
    p = load_portfolio(PORTFOLIOS["b"], root, "1d")
    w3 = p.decide(markets, metrics, s, e)
    btc = p.modules["BTC"]
    link = p.remove("LINK")  # unplug: BTC and ETH scaled by 3/2, nothing else
    w2 = p.decide(markets, metrics, s, e)
    assert list(w2.columns) == ["cash", "BTC", "ETH"] and p.modules["BTC"] is btc
    for a in ("BTC", "ETH"):
        np.testing.assert_allclose(w2[a].to_numpy() * 2, w3[a].to_numpy() * 3, rtol=0, atol=1e-15)
    p.add(link)  # plug back in: the same weights as before
    pd.testing.assert_frame_equal(p.decide(markets, metrics, s, e), w3, check_exact=True)
    p.add(load_module("BNB", root, "1d"))  # plug in a fourth: portfolio (b) + BNB is portfolio (c)
    w_c = load_portfolio(PORTFOLIOS["c"], root, "1d").decide(markets, metrics, s, e)
    pd.testing.assert_frame_equal(p.decide(markets, metrics, s, e), w_c, check_exact=True)

    p = load_portfolio(PORTFOLIOS["b"], root, "1d")
    bnb = load_module("BNB", root, "1d")
    p.replace("ETH", bnb)  # replace: m stays 3, so BTC and LINK are untouched bit for bit
    wr = p.decide(markets, metrics, s, e)
    assert list(wr.columns) == ["cash", "BTC", "BNB", "LINK"]
    for a in ("BTC", "LINK"):
        pd.testing.assert_series_equal(wr[a], w3[a], check_exact=True)
    bnb_crypto = bnb.decide_range(markets["BNB"], metrics["BNB"], s, e)["crypto"]
    np.testing.assert_allclose(wr["BNB"].to_numpy() * 3, bnb_crypto.to_numpy(), rtol=0, atol=1e-15)
    assert all(len(ModelStore(root).versions(a, "1d")) == 1 for a in PORTFOLIOS["c"])  # nothing retrained


def test_missing_cm_is_one_line_with_the_train_command(trained, capsys):
    root, _ = trained
    assert main(["--assets", "BTC,DOGE", "--models", str(root), *QUIET]) == 2
    line = _err_line(capsys)
    assert "DOGE" in line and "BTC," not in line
    assert f"python -m experiments.train_cm --asset DOGE --interval 1d --source demo --models {root}" in line
    assert "--train-missing" in line
    assert not (root / "DOGE_1d").exists()
    with pytest.raises(MissingModuleError, match="DOGE"):
        load_portfolio(["btc", "doge"], root, "1d")


@pytest.fixture(scope="module")
def cm_6h(tmp_path_factory):
    """A tiny real CM on 6-hour bars, saved in a store of its own."""
    market, metrics = load_data("BTC", "6h", "2021-06-01", "2022-09-30")
    cfg = CMConfig(asset="BTC", interval="6h", timesteps=512, n_envs=4, ensemble=1)
    module, _ = train_crypto_module(market, metrics, cfg, paper_split(market.index), eval_freq=10_000)
    module.save(ModelStore(tmp_path_factory.mktemp("models6h")))
    return module


def test_refuses_a_cm_on_another_interval(trained, cm_6h, capsys):
    root, _ = trained
    assert main(["--assets", "BTC,ETH", "--models", str(root), "--cm", str(cm_6h.folder), *QUIET]) == 2
    assert "CM for BTC runs on 6h bars; this portfolio runs on 1d bars" in _err_line(capsys)
    p = load_portfolio(["ETH"], root, "1d")
    with pytest.raises(ValueError, match="6h bars"):
        p.add(cm_6h)
    with pytest.raises(ValueError, match="6h bars"):
        p.replace("ETH", cm_6h)
    assert p.assets == ["ETH"]
    # Asking for 6h bars from a store that only has 1d CMs says what it has.
    assert main(["--assets", "ETH", "--models", str(root), "--interval", "6h", *QUIET]) == 2
    assert "no trained 6h CM for ETH" in (line := _err_line(capsys)) and "the store has ETH_1d" in line


def test_refuses_a_backtest_inside_the_training_range(trained, data, capsys):
    root, _ = trained
    assert main(["--assets", "BTC,ETH", "--models", str(root), "--start", "2022-02-01", *QUIET]) == 2
    line = _err_line(capsys)
    assert "trained on data up to 2022-02-28 23:59:59" in line and "look ahead" in line
    assert (
        main(["--assets", "BTC", "--models", str(root), "--end", "2022-01-31", *QUIET]) == 2
    )  # the data end before the CMs' training does: nothing out of sample
    assert "fewer than two bars after the CMs' training" in _err_line(capsys)
    markets, metrics = data
    p = load_portfolio(["BTC"], root, "1d")
    with pytest.raises(ValueError, match="look ahead"):
        p.decide(markets, metrics, "2022-02-28", "2022-09-30")


class _LateModule:
    """A stand-in CM whose training ran later than the others' (always all in its crypto)."""

    asset, interval = "XRP", "1d"
    data_range = (utc("2020-01-01"), utc("2100-01-01"))
    train_end = utc("2022-05-10 12:00")

    def decide_range(self, market, metrics, start, end):
        idx = market.index[(market.index >= start) & (market.index <= end)]
        return pd.DataFrame({"cash": 0.0, "crypto": 1.0}, index=idx)


def test_default_range_starts_after_the_latest_train_end(trained, data):
    root, _ = trained
    markets, _ = data
    p = Portfolio([load_module("BTC", root, "1d"), _LateModule()])
    markets = {**markets, "XRP": load_data("XRP", "1d", DEMO_START, "2022-08-31")[0]}
    assert backtest_range(p, markets) == (utc("2022-05-11"), utc("2022-08-31"))  # common end of the data
    assert backtest_range(p, markets, end="2022-07-01") == (utc("2022-05-11"), utc("2022-07-01"))
    with pytest.raises(ValueError, match="ends"):
        backtest_range(p, markets, start="2022-07-01", end="2022-06-01")


def test_html_tear_sheet_and_a_second_compose_keeps_the_first_report(trained, tmp_path, monkeypatch, capsys):
    root, _ = trained
    monkeypatch.chdir(tmp_path)
    argv = ["--assets", "BTC,ETH", "--models", str(root), *QUIET, "--html"]
    assert main(argv) == 0
    first = tmp_path / "reports" / "compose-btc-eth-1d"
    sheet = (first / "tearsheet_cryptorlpm.html").read_text()
    assert "Benchmark: B&H EQUAL WEIGHT" in sheet and "B&amp;H BTC" not in sheet and "B&H BTC" not in sheet
    assert "<td>Strategy</td>" not in sheet and ">Strategy<" not in sheet and "CryptoRLPM" in sheet
    assert "<td>All-time (ann.)</td>" in sheet and "<td>6M</td>" in sheet  # a 7-month backtest:
    assert not any(f"<td>{p}</td>" in sheet for p in ("1Y", "3Y (ann.)", "5Y (ann.)", "10Y (ann.)"))
    before = (first / "metrics.csv").read_bytes()
    assert main(argv) == 0  # again: numbered, the first report is kept
    assert (tmp_path / "reports" / "compose-btc-eth-1d-2" / "metrics.md").is_file()
    assert (first / "metrics.csv").read_bytes() == before
    capsys.readouterr()
    assert main([*argv, "--out", str(first)]) == 2
    assert "holds an earlier report" in _err_line(capsys)
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["compose-btc-eth-1d", "compose-btc-eth-1d-2"]
