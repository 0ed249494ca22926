"""``python -m experiments.live`` offline (demo bars, saved markets), and the Crypto Module wiring."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from binance_spot_sim import binance_markets

from cryptorl.live import DemoBars, PaperExchange, modules_decision
from experiments import live as cli


@pytest.fixture(scope="module")
def markets_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("markets") / "binance.json"
    path.write_text(json.dumps(binance_markets()))
    return path


def _args(tmp_path, markets_file, *extra):
    return [
        "--assets",
        "BTC,ETH",
        "--interval",
        "1d",
        "--data",
        "demo",
        "--markets-file",
        str(markets_file),
        "--paper-db",
        str(tmp_path / "paper.sqlite"),
        "--journal",
        str(tmp_path / "journal.sqlite"),
        "--kill-switch",
        str(tmp_path / "KILL"),
        *extra,
    ]


def test_paper_run_once_places_then_fills_at_the_next_close(tmp_path, markets_file, capsys):
    args = _args(tmp_path, markets_file, "--strategy", "equal", "--once")
    assert cli.main([*args, "--now", "2024-03-01T00:00:10"]) == 0
    assert "interval closed 2024-03-01 00:00 UTC: done" in capsys.readouterr().out
    paper = PaperExchange(tmp_path / "paper.sqlite")
    assert sorted(o["symbol"] for o in paper.fetch_open_orders()) == ["BTC/USDT", "ETH/USDT"]
    assert cli.main([*args, "--now", "2024-03-01T23:59:59"]) == 0  # same interval: nothing new
    assert len(paper.fetch_orders()) == 2
    assert cli.main([*args, "--now", "2024-03-02T00:00:10"]) == 0  # next close: the bar is fed, orders fill
    assert {o["status"] for o in paper.fetch_orders()[:2]} == {"closed"}
    assert "'BTC'" in capsys.readouterr().out  # the account now holds coins


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strategy", "equal", "--live", "--data", "exchange"], "BINANCE_API_KEY and BINANCE_SECRET"),
        (["--strategy", "equal", "--interval", "5h"], "does not divide the UTC day"),
        (["--strategy", "equal", "--now", "2024-03-01"], "--now is for paper trading with --once"),
        (["--models", "MODELS", "--once"], "no trained Crypto Module for BTC at 1d"),
        (["--strategy", "equal", "--assets", "BTC,BTC"], "distinct tickers"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, markets_file, capsys, monkeypatch, extra, message):
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    extra = [str(tmp_path / "models") if e == "MODELS" else e for e in extra]
    assert cli.main(_args(tmp_path, markets_file, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_help_names_the_placeholders_as_such(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "PLACEHOLDER" in text and "PAPER TRADING by default" in text and "--yes-i-mean-live" in text


class RuleModule:
    """Stands in for a trained Crypto Module (same decide_range contract); records what it saw."""

    def __init__(self, asset):
        self.asset, self.seen = asset, []

    def decide_range(self, market, metrics, start, end):
        self.seen.append((market.index[-1], metrics.index[-1] if metrics is not None and len(metrics) else None))
        rows = market.loc[start:end]
        crypto = (rows["close"] > market["close"].rolling(5).mean().loc[start:end]).astype(float)
        return pd.DataFrame({"cash": 1 - crypto, "crypto": crypto}, index=rows.index)


def test_modules_are_voted_on_the_closed_bar_and_never_see_later_rows():
    bars = DemoBars("1d")
    t = pd.Timestamp("2024-03-01", tz="UTC")

    def data(asset, bar_time):  # deliberately returns ten bars beyond bar_time
        return bars.data(asset, bar_time + pd.Timedelta(days=10), 60)

    modules = {"BTC": RuleModule("BTC"), "ETH": RuleModule("ETH")}
    weights = modules_decision(modules, data)(t)
    for asset, module in modules.items():
        assert module.seen == [(t, t)]  # market and metrics cut at the closed bar
        close = bars.market(asset, t, 5)["close"]
        assert weights[asset] == (0.5 if close.iloc[-1] > close.mean() else 0.0)  # eq. 2 with m = 2


def _binance_klines(shared_data):
    frame = pd.read_csv(shared_data / "prices" / "binance" / "BTCUSDT_1d.csv", usecols=range(6))
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("datetime"), utc=True), name="time")
    return frame


@pytest.mark.realdata
def test_exchange_bars_are_closed_real_klines_through_ccxt(shared_data):
    from binance_spot_sim import BinanceSpotSim

    from cryptorl.live import BarsNotReady, ExchangeBars, public_exchange

    klines = _binance_klines(shared_data)
    sim = BinanceSpotSim({}, {}, time="2022-03-01T00:00:10Z", klines={"BTCUSDT": klines})
    bars = ExchangeBars(sim.install(public_exchange("binance")), "1d", now=sim._ms)
    got = bars.market("BTC", "2022-02-28", 30)
    assert got.index[-1] == pd.Timestamp("2022-02-28", tz="UTC") and len(got) == 30
    assert got["close"].iloc[-1] == klines.loc["2022-02-28", "close"]
    with pytest.raises(BarsNotReady):  # the 2022-03-01 bar is still forming at 00:00:10
        bars.market("BTC", "2022-03-01", 30)


@pytest.mark.realdata
def test_models_decide_on_exchange_bars_stored_through_the_data_store(shared_data, tmp_path):
    import argparse

    from binance_spot_sim import BinanceSpotSim

    from cryptorl.live import public_exchange
    from cryptorl.modelstore import ModelStore

    klines = _binance_klines(shared_data)
    sim = BinanceSpotSim({}, {}, time="2022-03-01T00:00:10Z", klines={"BTCUSDT": klines})
    exchange = sim.install(public_exchange("binance"))
    ModelStore(tmp_path / "models").save("BTC", "1d", lambda folder: (folder / "rule.txt").write_text("x") and {})
    args = argparse.Namespace(store=tmp_path / "data", history=60, interval="1d", quote="USDT")
    modules: dict = {}
    prepare, data = cli._store_data(args, exchange, ["BTC"], modules, pd.Timedelta(days=1))
    module = RuleModule("BTC")
    decide, loaded = cli.decide_from_models(tmp_path / "models", ["BTC"], "1d", data, loader=lambda folder: module)
    modules.update(loaded)
    t = pd.Timestamp("2022-02-28", tz="UTC")
    prepare(t)  # downloads the closed bars into the store through ccxt
    weights = decide(t)
    close = klines.loc[:"2022-02-28", "close"]
    assert module.seen[0][0] == t
    assert weights == {"BTC": 1.0 if close.iloc[-1] > close.iloc[-5:].mean() else 0.0}


def test_live_flag_sends_real_orders_only_when_confirmed(tmp_path, markets_file, capsys, monkeypatch):
    from binance_spot_sim import API_KEY, SECRET, BinanceSpotSim

    sim = BinanceSpotSim({"USDT": 1_000}, {"BTCUSDT": 43210.55, "ETHUSDT": 2250.12})
    real = cli.live_exchange
    monkeypatch.setattr(cli, "live_exchange", lambda name, confirm: sim.install(real(name, confirm=confirm)))
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_SECRET", SECRET)
    args = _args(tmp_path, markets_file, "--strategy", "equal", "--live", "--once", "--data", "exchange")
    assert cli.main(args) == 2  # no terminal to confirm in, no --yes-i-mean-live
    assert "needs a confirmation" in capsys.readouterr().err and sim.orders == []
    assert cli.main([*args, "--yes-i-mean-live"]) == 0
    assert [o[:2] for o in sim.placed()] == [("BTCUSDT", "BUY"), ("ETHUSDT", "BUY")]
    assert not (tmp_path / "paper.sqlite").exists()  # no paper account in live mode


class ConstantModule:
    """A module that always holds ``crypto`` (a fixed allocation rule)."""

    def __init__(self, crypto):
        self.crypto = crypto

    def decide_range(self, market, metrics, start, end):
        rows = market.loc[start:end]
        return pd.DataFrame({"cash": 1.0 - self.crypto, "crypto": self.crypto}, index=rows.index)


def test_a_newly_promoted_module_is_picked_up_at_the_next_interval(tmp_path):
    from cryptorl.modelstore import ModelStore

    store = ModelStore(tmp_path / "models")
    first = store.save("BTC", "1d", lambda folder: (folder / "w.txt").write_text("1") and {"crypto": 1.0})
    bars = DemoBars("1d")
    decide, _ = cli.decide_from_models(
        store.root,
        ["BTC"],
        "1d",
        lambda a, t: bars.data(a, t, 60),
        loader=lambda folder: ConstantModule(1.0 if folder == first else 0.0),
    )
    t = pd.Timestamp("2024-03-01", tz="UTC")
    assert decide(t) == {"BTC": 1.0}
    store.save("BTC", "1d", lambda folder: (folder / "w.txt").write_text("0") and {"crypto": 0.0})  # promoted
    assert decide(t + pd.Timedelta(days=1)) == {"BTC": 0.0}
