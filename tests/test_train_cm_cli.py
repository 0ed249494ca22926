"""experiments.train_cm end to end: demo data, and Binance bars through ccxt over faked HTTP."""

from __future__ import annotations

import json

import _data_fakes as fakes
import pytest

from cryptorl.data.demo import demo_market
from cryptorl.modelstore import ModelStore
from experiments import train_cm


@pytest.mark.slow
def test_smoke_on_demo_data_saves_a_verified_module(tmp_path, capsys):
    argv = [
        "--asset",
        "ETH",
        "--timesteps",
        "1000",
        "--ensemble",
        "1",
        "--eval-freq",
        "500",
        "--no-progress",
        "--models",
        str(tmp_path / "models"),
        "--tensorboard-log",
        str(tmp_path / "runs"),
        "--hyperparams",
        "learning_rate=3e-4",
    ]
    assert train_cm.main(argv) == 0
    out = capsys.readouterr().out
    assert "B&H ETH" in out and "DRU selection" in out and "validation (the weights kept)" in out
    folder = ModelStore(tmp_path / "models").current("ETH", "1d")
    manifest = json.loads((folder / "manifest.json").read_text())
    # the default prior: the module says whether what it learned beat the rule on validation
    followed = "did not beat its donchian prior on validation: it follows the rule" in out
    assert followed == (manifest["validation"]["follows_prior"] == 1.0)
    assert followed or "beat its donchian prior on validation: kept" in out
    assert manifest["hyperparameters"]["learning_rate"] == 3e-4 and manifest["algorithm"] == "dqn"
    assert set(manifest["ranges"]) == {"train", "validation", "backtest"}
    assert any((tmp_path / "runs").rglob("events.out.tfevents.*"))


def test_binance_source_downloads_through_ccxt_then_trains(tmp_path, capsys, monkeypatch):
    market = demo_market("BTC", "1d", "2021-01-01", "2022-06-30")
    fakes.install(monkeypatch, fakes.FakeBinance({("BTCUSDT", "1d"): fakes.klines_from_market(market, 86_400_000)}))
    monkeypatch.delenv("SANPY_APIKEY", raising=False)
    argv = [
        "--asset",
        "BTC",
        "--source",
        "binance",
        "--start",
        "2021-01-01",
        "--end",
        "2022-06-30",
        "--store",
        str(tmp_path / "data"),
        "--models",
        str(tmp_path / "models"),
        "--tensorboard-log",
        "",
        "--timesteps",
        "500",
        "--ensemble",
        "1",
        "--no-progress",
    ]
    assert train_cm.main(argv) == 0
    out, err = capsys.readouterr()
    assert "546 bars" in out
    # no metrics without a Santiment key: said once, in one line of the command's own
    assert [line for line in err.splitlines() if "OHLCV" in line][0].startswith("train_cm: warning: [BTC]")
    assert (tmp_path / "data" / "prices.sqlite").is_file()


def test_config_file_and_bad_options_are_one_line_errors(tmp_path, capsys):
    cfg = tmp_path / "cm.yml"
    cfg.write_text("algo: nope\n")
    assert train_cm.main(["--asset", "BTC", "--config", str(cfg), "--no-save"]) == 2
    assert "unknown algorithm 'nope'" in capsys.readouterr().err
    assert train_cm.main(["--asset", "BTC", "--hyperparams", "no-equals"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_hyperparameter_values_are_typed():
    from cryptorl.cli import parse_value

    assert parse_value("3e-4") == 3e-4 and parse_value("64") == 64 and parse_value("0.9") == 0.9
    assert parse_value("true") is True and parse_value("[64, 64]") == [64, 64] and parse_value("auto") == "auto"


def test_flags_on_the_command_line_win_over_the_config_file(tmp_path):
    cfg = tmp_path / "cm.yml"
    cfg.write_text("eval_freq: 500\ntimesteps: 100\nseed: 3\ntensorboard_log: tb\nhyperparams: {gamma: 0.9}\n")
    # the flags equal the defaults on purpose: given is given, whatever the value
    args = train_cm.build_parser().parse_args(
        ["--asset", "BTC", "--config", str(cfg), "--eval-freq", "2000", "--seed", "0", "--hyperparams", "gamma=0.5"]
    )
    config = train_cm._config_from(args)
    assert args.eval_freq == 2000 and config["seed"] == 0 and config["hyperparams"] == {"gamma": 0.5}
    assert config["timesteps"] == 100 and args.tensorboard_log == "tb"  # not given: the file's value
    args = train_cm.build_parser().parse_args(["--asset", "BTC"])
    train_cm._config_from(args)
    assert args.eval_freq == 2000 and args.tensorboard_log == "runs"  # neither: the defaults


def test_device_is_an_option_not_a_hyperparameter(capsys):
    assert train_cm.main(["--asset", "BTC", "--source", "demo", "--hyperparams", "device=cuda", "--no-save"]) == 2
    assert "--device" in capsys.readouterr().err
