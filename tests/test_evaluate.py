"""experiments.evaluate: protocol checks, the execution stand-in, selection cut at the validation end,
resumable training, the report, and the command line."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from agents.crypto_module import CryptoModule
from agents.evaluation import (
    listed_assets,
    load_markets,
    load_protocol,
    parse_protocol,
    score,
    train_all,
    training_jobs,
)
from agents.jobs import train_job
from agents.training import trades
from cryptorl.data.demo import demo_market
from cryptorl.modelstore import ModelStore
from experiments import evaluate as evaluate_cmd

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments" / "protocols" / "demo_tiny.yml"


def raw_demo() -> dict:
    return yaml.safe_load(DEMO.read_text())


def test_shipped_protocols_load():
    for path in sorted((ROOT / "experiments" / "protocols").glob("*.yml")):
        p = load_protocol(path)
        assert p.windows and p.configs and p.seeds
    p = load_protocol(ROOT / "experiments" / "protocols" / "daily_bear_bull.yml")
    assert [w.name for w in p.windows] == ["bear", "bull"] and len(p.assets) == 8 and p.seeds == (0, 1, 2, 3, 4)
    bear = p.windows[0]
    assert bear.train[1] == pd.Timestamp("2021-12-31 23:59:59", tz="UTC")  # a bare end date is the whole day
    assert bear.backtest == (pd.Timestamp("2022-03-01", tz="UTC"), pd.Timestamp("2022-09-30 23:59:59", tz="UTC"))
    assert p.portfolios["BTC+ETH+LINK"] == ("BTC", "ETH", "LINK") and len(p.portfolios["all eight"]) == 8


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.update(colour="red"), "unknown protocol key"),
        (lambda r: r.pop("configs"), "lacks 'configs'"),
        (lambda r: r["windows"]["w1"].update(validation=["2021-06-01", "2021-08-31"]), "without overlap"),
        (lambda r: r["windows"]["w1"].update(train=["2021-07-01", "2021-01-01"]), "is not before"),
        (lambda r: r["configs"]["ohlcv"].update(asset="ETH"), "set by the protocol"),
        (lambda r: r["configs"]["ohlcv"].update(features=["ret_x"]), "unknown market feature"),
        (lambda r: r["configs"]["ohlcv"].update(algo="sac"), "unknown algorithm"),
        (lambda r: r.update(portfolios={"p": ["BTC", "SOL"]}), "portfolios.p"),
        (lambda r: r.update(seeds=[]), "seeds"),
        (lambda r: r.update(universe="all"), "universe must be fixed or listed"),
        (lambda r: r.update(windows={}), "needs 'windows'"),
        (lambda r: r.update(agents=["lstm", "oracle"]), "unknown agent 'oracle'"),
        (lambda r: r.update(agents={"lstm": {"epochs": 3}}), "agents.lstm: the options are fast and use_metrics"),
        (
            lambda r: r.update(agents={"meta_logistic": {"use_metrics": True}}),
            "use_metrics needs the protocol's metrics",
        ),
        (lambda r: r.update(configs={"lstm": {}}, agents=["lstm"]), "also a config's name"),
    ],
)
def test_bad_protocols_get_one_clear_error(mutate, message):
    raw = raw_demo()
    mutate(raw)
    with pytest.raises(ValueError, match=message):
        parse_protocol(raw)


def test_walk_forward_windows_follow_each_other():
    raw = raw_demo()
    raw["walk_forward"] = {
        "start": "2021-07-01",
        "end": "2021-12-31",
        "train_months": 6,
        "validation_months": 1,
        "backtest_months": 2,
        "step_months": 2,
    }
    p = parse_protocol(raw)
    wf = [w for w in p.windows if w.name.startswith("wf")]
    assert [w.backtest[0].strftime("%Y-%m-%d") for w in wf] == ["2021-07-01", "2021-09-01", "2021-11-01"]
    assert wf[0].validation[0] == pd.Timestamp("2021-06-01", tz="UTC")
    assert wf[0].train[0] == pd.Timestamp("2020-12-01", tz="UTC")
    assert wf[-1].backtest[1] == pd.Timestamp("2021-12-31 23:59:59", tz="UTC")
    for w in wf:
        assert w.train[1] < w.validation[0] <= w.validation[1] < w.backtest[0]


def test_in_crypto_counts_bars_held_whatever_the_position_size():
    from agents.training import in_crypto

    # a vol-targeted position of 0.3 on 3 of 4 traded bars: mean weight 0.225, in crypto 75 %
    assert in_crypto(pd.Series([0.3, 0.3, 0.0, 0.3, 1.0])) == 0.75
    assert in_crypto(np.array([0.02, 0.0, 0.02])) == 0.5  # a small position is still a position
    assert in_crypto(np.array([1.0])) == 0.0  # the last decision is never traded


def test_trades_counts_position_changes_before_the_last_decision():
    assert trades(pd.Series([0.0, 1.0, 1.0, 0.0, 1.0])) == 2  # in at 1, out at 3; the last is not traded
    assert trades(pd.Series([1.0, 1.0, 1.0])) == 1
    assert trades(pd.Series([0.0, 0.0])) == 0


def demo_csv(tmp_path: Path, *, eth_from: str) -> Path:
    """A folder of daily demo CSVs: BTC from 2020, ETH from ``eth_from`` (its "listing"), to 2022-03-31."""
    folder = tmp_path / "csv"
    folder.mkdir()
    for asset, start in (("BTC", "2020-01-01"), ("ETH", eth_from)):
        bars = demo_market(asset, "1d", start, "2022-03-31")
        bars.rename_axis("datetime").to_csv(folder / f"{asset}-USD_1d.csv")
    return folder


def test_a_coin_listed_after_the_first_window_is_refused_with_the_windows_it_covers(tmp_path, capsys):
    """A coin whose bars start after the walk-forward's first training day (listed later) stops the
    run before any training, and the error names the windows it covers and how to choose them."""
    folder = demo_csv(tmp_path, eth_from="2021-05-15")  # ETH "listed" in May 2021
    raw = yaml.safe_load(DEMO_WF.read_text())
    raw["source"] = f"csv:{folder}"
    protocol = parse_protocol(raw)
    names = [w.name for w in protocol.windows]
    with pytest.raises(ValueError) as err:
        load_markets(protocol, progress=False)
    message = str(err.value)
    assert message.startswith(f"[ETH] the data cover 2021-05-15 .. 2022-02-28, not window {names[0]}'s 2021-02-01")
    assert f"it covers windows {names[2]} .. {names[-1]} of this protocol" in message and "--windows" in message
    assert (
        "or let it join the windows it covers (the protocol's universe: listed, or evaluate --universe listed)"
        in message
    )
    covered = protocol.subset(windows=names[2:])
    assert sorted(load_markets(covered, progress=False)) == ["BTC", "ETH"]
    # the command line lets it join: the baselines of the first two windows hold BTC alone
    path = tmp_path / "late.yml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    argv = [str(path), "--baselines-only", "--universe", "listed", "--out", str(out), "--no-progress"]
    assert evaluate_cmd.main(argv) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.strategy[runs.window.isin(names[:2])]) & {"B&H ETH", "B&H BTC"} == {"B&H BTC"}
    assert set(runs.strategy[runs.window.isin(names[2:])]) >= {"B&H ETH", "B&H BTC"}
    assert "BTC+ETH: stitched out-of-sample (4 windows)" in capsys.readouterr().out
    assert evaluate_cmd.main([*argv, "--score-on", "validation"]) == 0
    assert "BTC+ETH: stitched validation ranges (in-sample for the selection) (4 windows)" in capsys.readouterr().out
    # windows before its listing alone: the coin is held in none of them, and said so
    assert evaluate_cmd.main([*argv, "--windows", ",".join(names[:2])]) == 0
    assert "note: [ETH] listed in none of these windows: it is held in none" in capsys.readouterr().err
    assert "B&H ETH" not in set(pd.read_csv(out / "runs.csv").strategy)
    demo_market("ETH", "1d", "2021-09-01", "2022-03-31").rename_axis("datetime").to_csv(folder / "ETH-USD_1d.csv")
    with pytest.raises(ValueError, match=r"it covers none of this protocol's windows: leave ETH out \(--assets\)"):
        load_markets(protocol, progress=False)


def test_a_listed_universe_holds_a_coin_from_its_listing_to_its_last_bar():
    """A coin listed inside the span joins from the first window whose training starts at or after
    its first bar, and a delisted one leaves with the last window whose backtest its bars reach."""
    raw = yaml.safe_load(DEMO_WF.read_text())
    protocol = parse_protocol({**raw, "universe": "listed"})
    w = protocol.windows
    data = {
        "BTC": (demo_market("BTC", "1d", "2020-06-01", "2021-12-31"), None),  # delisted in 2021-12
        "ETH": (demo_market("ETH", "1d", w[1].train[0], "2022-03-31"), None),  # first bar: window 1's start
    }
    assert [w.train[0].strftime("%Y-%m-%d") for w in protocol.windows] == [
        "2021-02-01",
        "2021-04-01",
        "2021-06-01",
        "2021-08-01",
    ]
    held = listed_assets(protocol, data)
    assert list(held.values()) == [("BTC",), ("BTC", "ETH"), ("BTC", "ETH"), ("ETH",)]
    fixed = listed_assets(replace(protocol, universe="fixed"), data)
    assert all(assets == ("BTC", "ETH") for assets in fixed.values())
    assert protocol.portfolios_of(("ETH",)) == {"BTC+ETH": ("ETH",)} and protocol.portfolios_of(()) == {}


@pytest.mark.slow
def test_a_listed_universe_lets_a_late_coin_join_the_windows_it_covers(tmp_path, capsys):
    """Under ``universe: listed`` a coin listed after the first training day is trained and held
    only in the windows its bars cover; before that its portfolios hold the other coins, and where
    every coin is listed the figures are those of a fixed universe over the same windows."""
    from agents.evaluation import evaluate

    folder = demo_csv(tmp_path, eth_from="2021-02-01")  # ETH "listed" in February 2021
    raw = yaml.safe_load(DEMO_WF.read_text())
    # seven months of training: enough bars after the listing for the modules' warm-up
    raw["walk_forward"]["train_months"] = 7
    raw.update(source=f"csv:{folder}", universe="listed", agents=["momentum"])
    protocol = parse_protocol(raw).subset(seeds=[0])
    names = [w.name for w in protocol.windows]
    data = load_markets(protocol, progress=False)
    assert listed_assets(protocol, data) == {n: ("BTC",) if n in names[:2] else ("BTC", "ETH") for n in names}
    jobs, _ = training_jobs(protocol, data, tmp_path / "listed")
    assert sorted((j.config_name, j.window, j.config.asset) for j in jobs) == sorted(
        (c, n, a) for c in ("ohlcv", "trend") for n in names for a in ("BTC", "ETH") if a == "BTC" or n in names[2:]
    )
    pooled = replace(protocol, configs={"pooled": {**protocol.configs["trend"], "pool": "all"}})
    pools = {(j.window, j.config.asset): j.config.pool for j in training_jobs(pooled, data, tmp_path / "p")[0]}
    assert [pools[(n, "BTC")] for n in names] == [[], [], ["ETH"], ["ETH"]]  # the window's listed coins
    evaluate(protocol, tmp_path / "listed", data=data, workers=1, progress=False)
    runs = pd.read_csv(tmp_path / "listed" / "runs.csv")
    base = runs[runs.kind == "baseline"].set_index(["window", "strategy"])["Sortino"]
    for n in names[:2]:  # BTC alone: equal weight over the listed coins is holding BTC
        assert "B&H ETH" not in base[n].index
        assert base[(n, "B&H equal weight")] == pytest.approx(base[(n, "B&H BTC")], rel=1e-12)
    fixed = protocol.subset(windows=names[2:])
    evaluate(replace(fixed, universe="fixed"), tmp_path / "fixed", data=data, workers=1, progress=False)
    later = runs[runs.window.isin(names[2:])]
    same = pd.read_csv(tmp_path / "fixed" / "runs.csv")
    columns = ["window", "portfolio", "strategy", "seed", "asset", "Sortino", "ARR", "Turnover"]
    pd.testing.assert_frame_equal(
        later[columns].reset_index(drop=True), same[columns].reset_index(drop=True), check_dtype=False
    )
    board = pd.read_csv(tmp_path / "listed" / "scoreboard.csv").set_index("strategy")
    assert board.loc["trend", "windows"] == 4 and "B&H BTC" in board.index and "B&H ETH" not in board.index
    assert len(pd.read_csv(tmp_path / "listed" / "selection.csv")) == 4  # the walk-forward selection
    assert pd.read_csv(tmp_path / "listed" / "pbo.csv")["windows"].tolist() == [4]
    report = (tmp_path / "listed" / "report.md").read_text()
    assert f"BTC every window; ETH windows {names[2]} .. {names[-1]}" in report


def test_training_data_end_at_the_validation_end(tmp_path):
    protocol = load_protocol(DEMO)
    data = load_markets(protocol, progress=False)
    jobs, done = training_jobs(protocol, data, tmp_path)
    assert done == 0 and len(jobs) == 4
    val_end = protocol.windows[0].validation[1]
    for job in jobs:
        assert job.market.index[-1] <= val_end < job.market.index[-1] + pd.Timedelta(days=1)
        assert job.split.backtest is None
    leaky = copy.copy(jobs[0].core)
    object.__setattr__(leaky, "market", data["BTC"][0])
    with pytest.raises(ValueError, match="past the validation end"):
        train_job(leaky)


@pytest.mark.slow
def test_the_future_after_validation_does_not_change_training(tmp_path):
    """Models trained on the same data up to the validation end, with any future, are identical."""
    protocol = load_protocol(DEMO).subset(configs=["trend"], assets=["BTC"])
    data = load_markets(protocol, progress=False)
    market = data["BTC"][0]
    other = market.copy()
    future = other.index > protocol.windows[0].validation[1]
    other.loc[future, ["open", "high", "low", "close"]] *= 2.5
    params, val = [], []
    for i, d in enumerate(({"BTC": (market, None)}, {"BTC": (other, None)})):
        (job,), _ = training_jobs(protocol, d, tmp_path / str(i))
        train_all(protocol, d, tmp_path / str(i), workers=1, progress=False)
        module = CryptoModule.load(ModelStore(job.store).current("BTC", "1d"))
        val.append(pd.Series(module.validation))
        params.append(module.sam.policy.state_dict())
    pd.testing.assert_series_equal(val[0], val[1])  # the validation figures the selection used
    assert params[0].keys() == params[1].keys()
    for k in params[0]:
        assert torch.equal(params[0][k], params[1][k]), k


@pytest.mark.slow
def test_evaluate_trains_once_scores_and_reports(tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate_cmd.main([str(DEMO), "--out", str(out), "--no-progress", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "2 assets x 1 windows x 1 seeds x 2 configs = 4 modules" in printed
    for name in ("report.md", "portfolios.csv", "cms.csv", "targets.csv", "runs.csv", "cumulative_w1_btc_eth.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "cumulative_w1_btc_eth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "never looked at a backtest range" in report and "Trend SMA20" in report
    table = pd.read_csv(out / "portfolios.csv")
    assert set(table.strategy) == {
        "B&H BTC",
        "B&H ETH",
        "B&H equal weight",
        "CRP equal weight",
        "Trend SMA20",
        "ohlcv",
        "trend",
    }
    cms = pd.read_csv(out / "cms.csv")
    assert len(cms) == 4 and cms.crypto_share.between(0, 1).all()
    # The engine's figures: a baseline row equals a direct backtest of that baseline.
    protocol = load_protocol(DEMO)
    data = load_markets(protocol, progress=False)
    scores = score(protocol, data, out)
    ew = scores.runs.set_index("strategy").loc["B&H equal weight"]
    b0, b1 = protocol.windows[0].backtest
    from cryptorl.portfolio import backtest, equal_weight_buy_and_hold

    markets = {a: data[a][0] for a in protocol.assets}
    direct = backtest(equal_weight_buy_and_hold(markets, ["BTC", "ETH"], start=b0, end=b1), markets, interval="1d")
    assert ew["Sortino"] == pytest.approx(direct.metrics()["Sortino"])
    # Resumable: nothing is left to train; a second run reuses the modules (same figures).
    assert training_jobs(protocol, data, out)[0] == []
    before = (out / "runs.csv").read_text()
    assert evaluate_cmd.main([str(DEMO), "--out", str(out), "--no-progress", "--workers", "1"]) == 0
    assert (out / "runs.csv").read_text() == before
    # Validation scoring goes to its own folder and never needs the backtest range.
    assert (
        evaluate_cmd.main([str(DEMO), "--out", str(out), "--no-progress", "--workers", "1", "--score-on", "validation"])
        == 0
    )
    assert "Scored on the validation ranges" in (out / "validation" / "report.md").read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("assets: [BTC]\nsource: demo\n")
    for argv, message in (
        ([str(bad)], "lacks 'configs'"),
        ([str(tmp_path / "none.yml")], "cannot read protocol"),
        ([str(DEMO), "--configs", "nope"], "config(s) ['nope'] not in the protocol"),
        ([str(DEMO), "--assets", "BTC"], "no portfolio of the protocol is left"),
    ):
        assert evaluate_cmd.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("evaluate: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "reports").exists()


def test_help():
    with pytest.raises(SystemExit) as exc:
        evaluate_cmd.main(["--help"])
    assert exc.value.code == 0


def test_decisions_of_a_market_feature_module_survive_save_and_load(tmp_path):
    from agents.crypto_module import CMConfig, CryptoModule
    from agents.training import paper_split, train_crypto_module
    from cryptorl.data.demo import demo_data

    market, _ = demo_data("BTC", "1d", "2021-01-01", "2022-06-30")
    config = CMConfig(
        asset="BTC",
        timesteps=128,
        window=8,
        n_envs=4,
        episode_length=16,
        features=["ret_5", "dd_20", "sma_10"],
        ensemble=1,
        prior="none",  # all-in / all-out, no prior row
    )
    with pytest.warns(UserWarning):
        module, _ = train_crypto_module(market, None, config, paper_split(market.index), eval_freq=64)
    assert module.sam.observation_space.shape[0] == 6 + 3 + 1  # OHLCV, the features, the position
    folder = module.save(tmp_path / "models")
    loaded = CryptoModule.load(folder)
    assert loaded.config.features == ["ret_5", "dd_20", "sma_10"]
    a = module.decide_range(market, None, "2022-05-01", "2022-06-30")
    b = loaded.decide_range(market, None, "2022-05-01", "2022-06-30")
    pd.testing.assert_frame_equal(a, b)
    assert np.isin(a["crypto"].unique(), [0.0, 1.0]).all()


@pytest.mark.parametrize("selection", ["sortino", "sortino_trading", "last", "excess"])
def test_validation_selection_levers(selection):
    from agents.crypto_module import CMConfig
    from agents.training import paper_split, train_crypto_module
    from cryptorl.data.demo import demo_data

    market, _ = demo_data("ETH", "1d", "2021-01-01", "2022-06-30")
    config = CMConfig(
        asset="ETH", timesteps=640, window=8, n_envs=4, episode_length=16, selection=selection, ensemble=1
    )
    with pytest.warns(UserWarning):
        module, cb = train_crypto_module(market, None, config, paper_split(market.index), eval_freq=64)
    hist = pd.DataFrame(cb.history)
    assert len(hist) == 1 if selection == "last" else len(hist) >= 10  # last: validated after training alone
    kept = module.validation["Sortino"]
    if selection == "last":
        assert kept == pytest.approx(hist["Sortino"].iloc[-1], nan_ok=True)
    elif selection == "sortino":
        assert kept == pytest.approx(hist["Sortino"].max())
    elif selection == "excess":  # the best Sharpe over the prior, kept only when it is above 0
        best = hist.loc[hist["excess_Sharpe"].idxmax()]
        assert module.validation["follows_prior"] == float(best["excess_Sharpe"] <= 0)
        if best["excess_Sharpe"] > 0:
            assert kept == pytest.approx(best["Sortino"], nan_ok=True)
    else:
        trading = hist[hist.in_crypto.between(0.05, 0.95)]
        assert kept == pytest.approx(trading["Sortino"].max() if len(trading) else hist["Sortino"].max())


def test_unknown_selection_is_refused():
    from agents.crypto_module import CMConfig

    with pytest.raises(ValueError, match="unknown selection"):
        CMConfig(selection="best")


def test_train_fee_is_charged_in_training_only():
    from agents.crypto_module import CMConfig
    from agents.training import paper_split, train_crypto_module
    from cryptorl.data.demo import demo_data

    market, _ = demo_data("BTC", "1d", "2021-01-01", "2022-06-30")
    config = CMConfig(asset="BTC", timesteps=128, window=8, n_envs=4, episode_length=16, train_fee=0.004, ensemble=1)
    with pytest.warns(UserWarning):
        module, cb = train_crypto_module(market, None, config, paper_split(market.index), eval_freq=64)
    assert module.sam.get_env().get_attr("fee") == [0.004] * 4  # training episodes
    assert module.env(market, None).fee == 0.001  # what the module is validated and backtested with
    with pytest.raises(ValueError, match="train_fee"):
        CMConfig(train_fee=0.7)


DEMO_WF = ROOT / "experiments" / "protocols" / "demo_walk_forward.yml"


def test_baselines_key_and_trials_before():
    raw = raw_demo()
    p = parse_protocol(raw)
    assert (p.trend_sma, p.tsmom, p.donchian, p.inverse_vol, p.n_trials) == (20, None, None, None, 2)
    raw.pop("baselines")  # no key: every baseline with its default
    p = parse_protocol(raw)
    assert (p.tsmom, p.donchian, p.inverse_vol) == (60, (10, 20, 30, 60, 90), 30)
    raw.update(baselines={"tsmom": True, "donchian": [5, 10]}, trials_before=4)
    p = parse_protocol(raw)
    assert (p.trend_sma, p.tsmom, p.donchian, p.inverse_vol, p.n_trials) == (20, 60, (5, 10), None, 6)
    # a subset run still counts every configuration of the protocol as tried
    sub = p.subset(configs=["ohlcv"])
    assert (len(sub.configs), sub.trials_before, sub.n_trials) == (1, 5, 6)
    for bad, message in (({"sma": 3}, "baselines takes"), ({"donchian": [1]}, "donchian"), ({"tsmom": 0}, "tsmom")):
        with pytest.raises(ValueError, match=message):
            parse_protocol({**raw, "baselines": bad})
    with pytest.raises(ValueError, match="trials_before"):
        parse_protocol({**raw, "trials_before": -1})


def test_walk_forward_train_from_shortens_only_the_first_trainings():
    p = load_protocol(ROOT / "experiments" / "protocols" / "walk_forward_daily.yml")
    assert len(p.windows) == 25 and p.windows[-1].backtest[1] == pd.Timestamp("2025-02-20 23:59:59", tz="UTC")
    assert p.windows[0].train[0] == pd.Timestamp("2018-01-01", tz="UTC")  # clipped from 2017-10-01
    assert p.windows[1].train[0] == pd.Timestamp("2018-01-01", tz="UTC")  # 12 months before 2019-01-01
    assert p.windows[2].train[0] == pd.Timestamp("2018-04-01", tz="UTC")
    for a, b in zip(p.windows, p.windows[1:]):
        assert a.backtest[1] < b.backtest[0]  # disjoint out-of-sample windows


def test_walk_forward_train_months_all_expands_the_training_range():
    raw = raw_demo()
    spec = {"start": "2021-07-01", "end": "2021-12-31", "validation_months": 1, "backtest_months": 2}
    raw["walk_forward"] = {**spec, "train_months": "all", "train_from": "2020-03-15"}
    wf = [w for w in parse_protocol(raw).windows if w.name.startswith("wf")]
    assert len(wf) == 3
    for w in wf:
        assert w.train[0] == pd.Timestamp("2020-03-15", tz="UTC")
        assert w.train[1] < w.validation[0] <= w.validation[1] < w.backtest[0]
    assert [w.train[1].strftime("%Y-%m-%d") for w in wf] == ["2021-05-31", "2021-07-31", "2021-09-30"]
    raw["walk_forward"] = {**spec, "train_months": "all"}
    with pytest.raises(ValueError, match="needs train_from"):
        parse_protocol(raw)
    raw["walk_forward"] = {**spec, "train_months": "twelve"}
    with pytest.raises(ValueError, match="train_months must be a whole number"):
        parse_protocol(raw)


@pytest.mark.slow
def test_demo_walk_forward_scoreboard_end_to_end(tmp_path, capsys):
    from agents.evaluation.scoreboard import SELECTED, select_configs

    out = tmp_path / "wf"
    assert evaluate_cmd.main([str(DEMO_WF), "--out", str(out), "--no-progress", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "stitched out-of-sample (4 windows)" in printed and "detectable" in printed and "median Δ" in printed
    assert "timing skill of ohlcv on BTC+ETH over 4 windows: pooled p by seed" in printed
    assert ", of the seeds' mean votes " in printed
    for name in ("scoreboard.csv", "versus.csv", "pbo.csv", "selection.csv", "stitched_btc_eth.png"):
        assert (out / name).stat().st_size > 0, name
    board = pd.read_csv(out / "scoreboard.csv").set_index("strategy")
    assert {"ohlcv", "trend", SELECTED, "TSMOM 30", "Donchian 10/20/30 vol-target", "Inverse vol 20"} <= set(
        board.index
    )
    # 2 configs + 2 agents + trials_before 3
    assert board.loc[["ohlcv", "trend", SELECTED, "momentum", "dls"], "trials"].eq(7).all()
    assert board.loc[["ohlcv", "trend", "momentum", "dls"], "DSR"].between(0, 1).all()
    assert board.loc[["momentum", "dls"], "kind"].eq("agent").all()
    # the allocator is deterministic (scored once), the network once per seed
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(set(runs.seed[runs.strategy == "momentum"])) == [0] and sorted(
        set(runs.seed[runs.strategy == "dls"])
    ) == [0, 1]
    # the stitched curve chains the windows: its growth is the product of the windows' growths
    ew = runs[(runs.strategy == "B&H equal weight") & (runs.kind == "baseline")]
    assert board.loc["B&H equal weight", "ARR"] == pytest.approx(np.prod(1 + ew["ARR"].to_numpy()) - 1, rel=1e-5)
    versus = pd.read_csv(out / "versus.csv")
    assert versus["windows won"].between(0, 1).all() and versus["bootstrap p (Sortino)"].between(0, 1).all()
    assert (versus["detectable Sortino diff"] > 0).all()  # 2.8 bootstrap standard errors of differing curves
    # the other configuration, the agents and "selected" are also compared with the first configuration
    ref = versus[versus.baseline == "ohlcv"]
    for pname, rows in ref.groupby("portfolio"):
        assert sorted(rows.strategy) == sorted(["trend", SELECTED, "momentum", "dls"])
        mine = runs[(runs.portfolio == pname) & (runs.kind == "cm")].groupby(["strategy", "window"]).Sortino.mean()
        won = (mine["trend"] > mine["ohlcv"]).mean()
        assert rows.set_index("strategy").loc["trend", "windows won"] == pytest.approx(won)
        median = (mine["trend"] - mine["ohlcv"]).median()  # the direction of the Wilcoxon test
        assert rows.set_index("strategy").loc["trend", "median window Sortino diff"] == pytest.approx(median, rel=1e-5)
    assert 0 <= pd.read_csv(out / "pbo.csv")["PBO"].iloc[0] <= 1
    skill = pd.read_csv(out / "skill.csv")  # each (config, coin, seed) and seeds' mean tested once over 4 windows
    assert len(skill) == 2 * 2 * (2 + 1) and (skill["windows"] == 4).all() and skill["p"].between(0, 1).all()
    assert "## Timing skill of the modules" in (out / "report.md").read_text()
    # "selected" trades the config with the best validation Sortino in the first window, then the
    # one whose portfolio returns over the earlier windows' backtests, chained, have the best Sortino
    protocol = load_protocol(DEMO_WF)
    data = load_markets(protocol, progress=False)
    scores = score(protocol, data, out)
    (pname, members), names = next(iter(protocol.portfolios.items())), [w.name for w in protocol.windows]
    cms = scores.cms[scores.cms.asset.isin(members)]
    val = cms.groupby(["window", "config"])["validation_Sortino"].mean().unstack()
    rets = {c: [scores.values[(w, pname, c)].pct_change().dropna() for w in names] for c in ("ohlcv", "trend")}
    sel = select_configs(names, rets, val, "1d")
    assert sel.config.iloc[0] == val.loc[names[0]].idxmax() and sel.by.iloc[0] == "validation"
    for k in range(1, len(names)):
        chained = {c: np.concatenate([x.to_numpy() for x in r[:k]]) for c, r in rets.items()}
        by_hand = {c: x.mean() / np.sqrt(np.mean(np.minimum(x, 0) ** 2)) for c, x in chained.items()}
        assert sel.by.iloc[k] == "earlier windows" and sel.config.iloc[k] == max(by_hand, key=by_hand.get)
        assert sel.Sortino.iloc[k] == pytest.approx(max(by_hand.values()) * np.sqrt(365))
    chosen = pd.read_csv(out / "selection.csv")
    assert chosen[chosen.portfolio == pname].config.tolist() == sel.config.tolist()
    # baselines only: nothing trained, the same baseline figures
    only = tmp_path / "base"
    assert evaluate_cmd.main([str(DEMO_WF), "--out", str(only), "--no-progress", "--baselines-only"]) == 0
    assert not (only / "models").exists()
    b = pd.read_csv(only / "scoreboard.csv").set_index("strategy")
    assert b.loc["B&H equal weight", "Sortino"] == pytest.approx(board.loc["B&H equal weight", "Sortino"])


def test_evaluation_figure_has_a_y_label_each_coins_buy_and_hold_and_distinct_colours():
    from types import SimpleNamespace

    from agents.evaluation.report import evaluation_figure

    days = pd.date_range("2022-01-01", periods=60, freq="D", tz="UTC")
    names = ["cfg_a", "cfg_b", "B&H equal weight", "CRP equal weight", "Trend SMA20", "B&H BTC", "B&H ETH", "B&H LINK"]
    values = {
        ("w1", "P", n): pd.Series(np.linspace(1, 1 + 0.01 * k, len(days)), index=days) for k, n in enumerate(names)
    }
    values[("w2", "P", "cfg_a")] = values[("w1", "P", "cfg_a")]  # another window: not drawn
    fig = evaluation_figure(SimpleNamespace(values=values), "w1", "P")
    ax = fig.axes[0]
    drawn = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert drawn == names  # the per-coin buy-and-holds too
    assert len({tuple(np.round(line.get_color(), 6)) for line in ax.get_lines()[: len(names)]}) == len(names)
    assert ax.get_ylabel() == "value (start = 1)"
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_evaluate_console_summary_is_a_table_not_csv(capsys):
    from types import SimpleNamespace

    from agents.evaluation.report import print_targets
    from cryptorl.cli import console

    tgt = pd.DataFrame(
        [
            {
                "window": "w1",
                "config": "c",
                "CMs": 3,
                "trading share": 2 / 3,
                "beats own B&H share": 1 / 3,
                "P: seeds beating EW B&H": 1,
                "P: mean Sortino": 1.23456,
                "P: EW B&H Sortino": 0.5,
                "P: Trend SMA20 Sortino": 0.25,
                "P: mean ARR": 0.1234,
            }
        ]
    )
    print_targets(tgt, SimpleNamespace(portfolios={"P": ("BTC",)}, trend_sma=20), console())
    out = capsys.readouterr().out
    row = " ".join(out.replace("│", " ").split())
    assert "w1 c 3 67% 33% 1 1.23 0.50 0.25 +12.34%" in row, out
    assert "trading share," not in out and "P: mean ARR" not in out  # no CSV header line


def test_intraday_walk_forward_scoreboard_stitches_daily_returns():
    """6h bars: each window's daily returns start on the day its first bar opens; the stitched
    curve stays one value per day (its start on the day before)."""
    from agents.evaluation import load_markets, score
    from agents.evaluation.scoreboard import build_scoreboard

    raw = {**raw_demo(), "interval": "6h", "windows": {}}
    raw["walk_forward"] = {
        "start": "2021-09-01",
        "end": "2021-11-30",
        "train_months": 6,
        "validation_months": 1,
        "backtest_months": 1,
    }
    protocol = parse_protocol(raw)
    scores = score(protocol, load_markets(protocol, progress=False), None, baselines_only=True)
    board = build_scoreboard(protocol, scores, reps=50)
    curve = board.curves[("BTC+ETH", "B&H equal weight")]
    assert curve.index.is_unique and curve.index.is_monotonic_increasing
    assert curve.index[0] == pd.Timestamp("2021-08-31", tz="UTC") and curve.index[1] == pd.Timestamp(
        "2021-09-01", tz="UTC"
    )
    assert len(curve) == 1 + 30 + 31 + 30  # the start, then every day of the three months
    assert board.stitched.Sortino.notna().all()


def test_deflation_uses_the_null_variance_when_earlier_trials_are_unknown():
    """Two configurations one lever apart have nearly the same Sharpe ratio: with trials screened
    before them, their variance is no estimate of all the trials', and the null's 1 / (T - 1)
    (the larger) deflates; with no trials before, theirs is the variance of every trial."""
    from types import SimpleNamespace

    from agents.evaluation.scoreboard import _trials_variance

    alike, apart = [0.050, 0.052], [0.0, 0.2]
    assert _trials_variance(SimpleNamespace(trials_before=0), alike, 101) == pytest.approx(2e-6)
    assert _trials_variance(SimpleNamespace(trials_before=25), alike, 101) == pytest.approx(0.01)
    assert _trials_variance(SimpleNamespace(trials_before=25), apart, 101) == pytest.approx(0.02)
    assert _trials_variance(SimpleNamespace(trials_before=25), [0.05], 101) is None  # one: deflated by the null


def test_timing_skill_pools_a_modules_windows_and_the_report_pools_its_coins(tmp_path):
    """An oracle filter of its prior is skilled over its windows, a constant one has no evidence
    either way (p 1/2, its only null is itself); the report pools each seed's coins by Stouffer."""
    from agents.evaluation.report import skill_table
    from agents.evaluation.runner import SEED_MEAN, timing_skill
    from cryptorl.portfolio.skill import combined_pvalue, skill_test

    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, 400)))
    idx = pd.date_range("2022-01-01", periods=400, freq="1D", tz="UTC", name="time")
    market = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    up = pd.Series(np.r_[close[1:] > close[:-1], False].astype("float64"), index=idx)  # knows the next bar
    prior = np.full(90, 0.5)
    windows = [idx[k : k + 90] for k in (0, 100, 200, 300)]
    folds = {
        ("oracle", "AAA", 0): [(up[w], market, prior) for w in windows],
        ("held", "AAA", 0): [(pd.Series(1.0, index=w), market, prior) for w in windows],
    }
    skill = timing_skill(folds, interval="1d", fee=0.001, execution="close", n=199).set_index("config")
    assert skill.loc["oracle", "p"] < 0.01 and skill.loc["oracle", "percentile"] == 1.0
    assert skill.loc["held", "p"] == pytest.approx(0.5) and (skill["windows"] == 4).all()
    assert (skill["seed"] == 0).all()  # one seed: no seeds' mean to test

    # two seeds of one configuration: one more row tests their mean votes, window by window
    two = {("mix", "AAA", 0): folds[("oracle", "AAA", 0)], ("mix", "AAA", 1): folds[("held", "AAA", 0)]}
    mixed = timing_skill(two, interval="1d", fee=0.001, execution="close", n=199).set_index("seed")
    assert list(mixed.index) == [0, 1, SEED_MEAN]
    mean_votes = [((up[w] + 1.0) / 2, market, prior) for w in windows]
    want = skill_test(mean_votes, interval="1d", fee=0.001, execution="close", n=199)
    assert mixed.loc[SEED_MEAN, "p"] == pytest.approx(want.pvalue) and mixed.loc[SEED_MEAN, "windows"] == 4
    assert mixed.loc[SEED_MEAN, "Sortino"] == pytest.approx(want.sortino)

    protocol = parse_protocol({**raw_demo(), "configs": {"a": {}}})
    coins = protocol.portfolios["BTC+ETH"]
    p = {(coin, seed): 0.02 + 0.3 * k + 0.1 * seed for k, coin in enumerate(coins) for seed in (0, 1)}
    rows = [
        {"config": "a", "asset": c, "seed": s, "windows": 3, "p": v, "percentile": 1 - v} for (c, s), v in p.items()
    ]
    table = skill_table(protocol, pd.DataFrame(rows)).set_index("portfolio").loc["BTC+ETH"]
    by_seed = [combined_pvalue([p[(c, s)] for c in coins]) for s in (0, 1)]
    assert table["pooled p by seed"] == ", ".join(f"{v:.3f}" for v in by_seed)
    assert table["median pooled p"] == pytest.approx(np.median(by_seed))
    assert table["modules p < 0.05"] == pytest.approx(1 / 4)  # only (BTC, seed 0) at 0.02
    assert np.isnan(table["pooled p of the seeds' mean"])
    means = [{"config": "a", "asset": c, "seed": SEED_MEAN, "windows": 3, "p": 0.01, "percentile": 1.0} for c in coins]
    table = skill_table(protocol, pd.DataFrame(rows + means)).set_index("portfolio").loc["BTC+ETH"]
    assert table["pooled p of the seeds' mean"] == pytest.approx(combined_pvalue([0.01, 0.01]))
    assert table["pooled p by seed"] == ", ".join(f"{v:.3f}" for v in by_seed)  # the mean is not a seed
    assert table["modules p < 0.05"] == pytest.approx(1 / 4)


def test_agents_fit_before_the_backtest_and_decide_on_the_past():
    """An alternative agent is fitted on data up to the window's validation end and decides each
    backtest bar from bars up to it: a different future changes none of its earlier weights."""
    from agents.evaluation.runner import agent_job, agent_jobs

    protocol = parse_protocol({**raw_demo(), "agents": {"dls": {"fast": True}, "momentum": {}}})
    data = load_markets(protocol, progress=False)
    window = protocol.windows[0]
    cut = window.backtest[0] + pd.Timedelta(days=20)
    later = {a: m.index > cut for a, (m, _) in data.items()}
    prices = ["open", "high", "low", "close"]
    future = {a: (m.assign(**{k: m[k].where(~later[a], m[k] * 1.5) for k in prices}), x) for a, (m, x) in data.items()}
    runs = [
        [(j.name, agent_job(j).result) for j in agent_jobs(protocol, d) if j.window == window.name]
        for d in (data, future)
    ]
    assert [name for name, _ in runs[0]] == ["dls", "momentum"]  # the allocator once, the network per seed (one)
    for (name, before), (_, after) in zip(*runs):
        pd.testing.assert_frame_equal(before.weights.loc[:cut], after.weights.loc[:cut])
        assert not before.weights.equals(after.weights) or name == "momentum"  # later weights see the change


def test_an_agent_told_to_read_metrics_reads_those_known_at_each_decision():
    """``use_metrics``: the agent gets its coins' metrics; metrics after a backtest bar change none
    of the weights up to it and change later ones; ``without_metrics`` (``--no-metrics``) reads none."""
    from agents.evaluation.runner import agent_job, agent_jobs

    protocol = parse_protocol({**raw_demo(), "metrics": "demo", "agents": {"meta_logistic": {"use_metrics": True}}})
    data = load_markets(protocol, progress=False)
    (job,) = agent_jobs(protocol, data)
    assert sorted(job.metrics) == ["BTC", "ETH"] and all(x.index[-1] <= job.scored[1] for x in job.metrics.values())
    cut = job.scored[0] + pd.Timedelta(days=20)
    future = {a: (m, x.mul(np.where(x.index > cut, 3.0, 1.0), axis=0)) for a, (m, x) in data.items()}
    before, after = agent_job(job).result.weights, agent_job(agent_jobs(protocol, future)[0]).result.weights
    pd.testing.assert_frame_equal(before.loc[:cut], after.loc[:cut])
    assert not before.equals(after)
    plain = protocol.without_metrics()
    assert plain.metrics is None and agent_jobs(plain, data)[0].metrics is None


def test_agents_that_filter_a_rule_get_the_modules_timing_test():
    """A meta-labeller's run carries its decisions (its weights are them times the rule); the
    timing-skill test reads them per portfolio it was fitted on, and the report pools them as a
    configuration's; an agent that filters nothing (an allocator) carries none."""
    from agents.evaluation.report import skill_table
    from agents.evaluation.runner import fit_agents

    protocol = parse_protocol({**raw_demo(), "agents": {"meta_logistic": {}, "momentum": {}}})
    data = load_markets(protocol, progress=False)
    agents = fit_agents(protocol, data, workers=1, progress=False)
    window = protocol.windows[0].name
    run = agents[(window, "BTC+ETH", "meta_logistic", 0)]
    take, rule = run.decisions
    assert set(np.unique(take)) <= {0.0, 1.0} and (rule.to_numpy() >= 0).all()
    np.testing.assert_allclose(run.result.weights[["BTC", "ETH"]], take * rule / 2)
    assert agents[(window, "BTC+ETH", "momentum", 0)].decisions is None
    skill = score(protocol, data, None, baselines_only=True, agents=agents).skill
    assert set(skill["config"]) == {"meta_logistic"} and set(skill["asset"]) == {"BTC", "ETH"}
    assert (skill["portfolio"] == "BTC+ETH").all() and (skill["windows"] == 1).all()
    table = skill_table(protocol, skill)
    assert list(table["config"]) == ["meta_logistic"] and list(table["portfolio"]) == ["BTC+ETH"]


def test_the_selection_table_lists_windows_in_time_order_not_by_name():
    from agents.evaluation.report import selection_table

    names = [f"wf{k}-2020{k:02d}01" for k in range(1, 12)]  # wf10 and wf11 sort before wf2 by name
    selection = pd.DataFrame(
        [{"portfolio": p, "window": w, "config": f"c{k % 2}"} for p in ("A", "B") for k, w in enumerate(names)]
    )
    table = selection_table(selection)
    assert table["window"].tolist() == names
    assert table.loc[table["window"] == "wf10-20201001", "A"].item() == "c1"


def test_walk_forward_selection_chains_the_earlier_windows_instead_of_averaging_their_ratios():
    from agents.evaluation.scoreboard import select_configs

    days = pd.date_range("2021-01-01", periods=30, freq="D", tz="UTC")
    w = [days[:10], days[10:20], days[20:]]
    # "spiky": nine gains and a tiny loss (window Sortino about 285), then a losing window: its mean
    # of window ratios is about 142, but chained it lost money. "steady": +1 %, -0.5 % alternating.
    spiky = [[0.01] * 9 + [-0.0001], [0.01, -0.03] * 5, [0.0] * 10]
    steady = [[0.01, -0.005] * 5] * 3
    rets = {
        "spiky": [pd.Series(r, index=i) for r, i in zip(spiky, w)],
        "steady": [pd.Series(r, index=i) for r, i in zip(steady, w)],
    }
    validation = pd.DataFrame({"spiky": [0.1, 9, 9], "steady": [0.2, 0, 0]}, index=["w1", "w2", "w3"])
    sel = select_configs(["w1", "w2", "w3"], rets, validation, "1d")
    assert sel.by.tolist() == ["validation", "earlier windows", "earlier windows"]
    # w1: validation only; w2: spiky's first window beats steady's; w3: chained, spiky lost money
    assert sel.config.tolist() == ["steady", "spiky", "steady"]
    assert sel.Sortino.iloc[2] == pytest.approx(0.0025 / np.sqrt(0.000025 / 2) * np.sqrt(365))
