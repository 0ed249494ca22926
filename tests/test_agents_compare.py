"""experiments.compare end to end on demo data (small settings), and its user errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from experiments import compare


@pytest.mark.slow
def test_compare_end_to_end_on_demo(tmp_path, capsys):
    idx = pd.date_range("2022-03-01", "2022-09-30", freq="D", tz="UTC", name="time")
    cm = pd.DataFrame({"cash": 0.5, "BTC": 0.5, "ETH": 0.0, "LINK": 0.0}, index=idx)  # a stand-in CM portfolio
    cm.to_csv(tmp_path / "cm.csv")
    out = tmp_path / "report"
    code = compare.main(
        [
            "--assets", "BTC,ETH,LINK",
            "--source", "demo",
            "--agents", "lstm,dlm,transformer,max_sharpe,buy_and_hold",
            "--extra", f"CM portfolio={tmp_path / 'cm.csv'}",
            "--fast",
            "--out", str(out),
            "--log-dir", str(tmp_path / "tb"),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for name in (
        "metrics.md",
        "metrics.csv",
        "cumulative_returns.png",
        "forecast_errors.md",
        "reliability.md",
        "config.json",
    ):
        assert (out / name).is_file(), name
    metrics = pd.read_csv(out / "metrics.csv", index_col=0)
    expected = {
        "lstm",
        "dlm",
        "transformer",
        "max_sharpe",
        "buy_and_hold",
        "B&H BTC",
        "B&H ETH",
        "B&H LINK",
        "Trend SMA20",
        "CM portfolio",
    }
    assert set(metrics.index) == expected
    assert np.isfinite(metrics["ARR"]).all()
    rel = pd.read_csv(out / "reliability.csv", index_col=0)
    assert set(rel.index) == expected and rel.loc["buy_and_hold", "p_value"] == 1.0
    errors = pd.read_csv(out / "forecast_errors.csv", index_col=[0, 1])
    assert set(errors.index.get_level_values(0)) == {"lstm", "transformer"}
    assert (errors["n"] == 213).all()  # 214 decision bars, the last has no next close in range
    config = json.loads((out / "config.json").read_text())
    assert config["train_end"].startswith("2022-02-28") and config["failed"] == {}
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
    w = pd.read_csv(out / "weights" / "dlm.csv", index_col=0)
    assert np.allclose(w.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--agents", "lstm,nope"], "unknown agent"),
        (["--train-end", "2022-09-30", "--end", "2022-09-30"], "no bar to backtest"),
        (["--extra", "no-equals-sign"], "NAME=PATH"),
        (["--extra", "x=/does/not/exist.csv"], "no file"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, message, capsys, tmp_path):
    agents = [] if "--agents" in argv else ["--agents", "equal_weight"]
    code = compare.main([*argv, *agents, "--source", "demo", "--out", str(tmp_path), "--fast"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_no_progress_leaves_out_the_progress_bar(tmp_path, capsys):
    argv = ["--agents", "equal_weight", "--source", "demo", "--fast"]
    assert compare.main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "agents:" in capsys.readouterr().err
    assert compare.main([*argv, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "agents:" not in capsys.readouterr().err


def test_help_explains(capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--help"])
    assert exc.value.code == 0
    assert "reliability" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_trains_and_includes_the_crypto_module_portfolio(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # train_cm writes its TensorBoard runs/ here
    out = tmp_path / "report"
    argv = [
        "--assets",
        "BTC,ETH",
        "--source",
        "demo",
        "--agents",
        "equal_weight",
        "--out",
        str(out),
        "--models",
        str(tmp_path / "models"),
        "--train-missing",
        "--timesteps",
        "600",
        "--ensemble",
        "1",
    ]
    assert compare.main(argv) == 0, capsys.readouterr().err
    metrics = pd.read_csv(out / "metrics.csv", index_col=0)
    assert "CryptoRLPM" in metrics.index and np.isfinite(metrics.loc["CryptoRLPM", "ARR"])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["BTC_1d", "ETH_1d"]
    # without --train-missing, a store lacking a module is a one-line user error
    code = compare.main(
        [
            "--assets",
            "BTC,LINK",
            "--source",
            "demo",
            "--agents",
            "equal_weight",
            "--out",
            str(out),
            "--models",
            str(tmp_path / "models"),
        ]
    )
    assert code == 2 and "LINK" in capsys.readouterr().err
