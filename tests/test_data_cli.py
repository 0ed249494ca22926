"""python -m experiments.fetch_data: demo, files, exchange and Santiment into a store; one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import _data_fakes as fakes
import pandas as pd
import pytest

from cryptorl.cli import DEMO_END, DEMO_START
from cryptorl.data import DataStore
from cryptorl.data.demo import demo_data, demo_market
from experiments.fetch_data import main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_fetch_data_and_train_cm_share_the_default_range():
    from experiments import fetch_data, train_cm

    args = fetch_data.parse_args(["--assets", "BTC"])
    fetch_data._check(args)
    assert (args.start, args.end) == (DEMO_START, DEMO_END)
    help_text = " ".join(train_cm.build_parser().format_help().split())
    assert f"demo default {DEMO_START}" in help_text and f"demo default {DEMO_END}" in help_text


def test_demo_source_fills_the_store_and_prints_the_summary(tmp_path, capsys):
    code, out, _ = run(capsys, "--assets", "BTC,ETH,LINK", "--source", "demo", "--store", str(tmp_path))
    assert code == 0
    for asset in ("BTC", "ETH", "LINK"):
        assert f"│ {asset}" in out
    days = len(pd.date_range(DEMO_START, DEMO_END, freq="D"))
    assert f" {days} " in out and DEMO_START in out and DEMO_END in out
    with DataStore(tmp_path) as s:
        market, metrics = demo_data("ETH", "1d", DEMO_START, DEMO_END)
        assert s.market("ETH", "1d").equals(market) and s.metrics("ETH", "1d").shape == metrics.shape
    assert run(capsys, "--assets", "BTC", "--source", "demo", "--store", str(tmp_path))[0] == 0  # again: fine


@pytest.mark.realdata
def test_csv_source_on_the_shared_data(tmp_path, capsys, shared_data):
    code, out, _ = run(
        capsys,
        "--assets",
        "BTC,ETH,LINK",
        "--source",
        f"csv:{shared_data / 'prices' / 'daily'}",
        "--interval",
        "1d",
        "--start",
        "2020-10-01",
        "--end",
        "2022-09-30",
        "--store",
        str(tmp_path),
    )
    assert code == 0 and out.count(" 730 ") == 3
    code, out, _ = run(
        capsys,
        "--assets",
        "BTC",
        "--source",
        f"csv:{shared_data / 'prices' / 'hourly'}",
        "--interval",
        "1h",
        "--start",
        "2024-11-16",
        "--end",
        "2025-02-19 23:00",
        "--store",
        str(tmp_path),
    )
    assert code == 0 and "2303" in out and "1 (1 bars)" in out  # the missing hour is reported


def test_binance_and_santiment_sources_over_faked_http(tmp_path, capsys, monkeypatch):
    market = demo_market("BTC", "1d", "2021-01-01", "2021-03-31")
    fakes.install(
        monkeypatch, fakes.FakeBinance({("BTCUSDT", "1d"): fakes.klines_from_market(market, 86_400_000)}, {2: "429"})
    )
    monkeypatch.setattr("cryptorl.data.retry.Backoff.delay", lambda self, attempt: 0.0)
    code, out, _ = run(
        capsys,
        "--assets",
        "BTC",
        "--source",
        "binance",
        "--start",
        "2021-01-01",
        "--end",
        "2021-03-31",
        "--store",
        str(tmp_path),
    )
    assert code == 0 and " 90 " in out and "binance" in out
    metrics = demo_data("BTC", "1d", "2021-01-01", "2021-03-31")[1]
    fakes.install(
        monkeypatch,
        fakes.FakeSantiment({("bitcoin", m): metrics[m] for m in metrics.columns[:3]}, restricted={"mvrv_usd"}),
    )
    monkeypatch.delenv("SANPY_APIKEY", raising=False)
    code, out, _ = run(
        capsys,
        "--assets",
        "BTC",
        "--source",
        "santiment",
        "--start",
        "2021-01-01",
        "--end",
        "2021-03-31",
        "--store",
        str(tmp_path),
    )
    assert code == 0 and "mvrv_usd" in out and "SANPY_APIKEY is not set" in out
    with DataStore(tmp_path) as s:
        assert s.metric_names("BTC", "1d") == sorted(metrics.columns[:3])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--interval", "1 day"], "--interval: unknown interval '1 day'"),
        (["--start", "2022-01-01", "--end", "2021-01-01"], "--end 2021-01-01 00:00 is before --start 2022-01-01"),
        (["--start", "yesterday-ish"], "--start/--end: not a date"),
        (["--source", "yahoo"], "--source 'yahoo': use one of demo, csv:PATH, binance, exchange:ID"),
        (["--source", "csv:/no/such/folder"], "no such file or folder"),
        (["--source", "binance", "--interval", "2d"], "binance does not offer timeframe '2d'"),
        (["--assets", ","], "--assets is empty"),
        (["--source", "santiment", "--assets", "ZZZ"], "no Santiment slug known for 'ZZZ'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "--store", str(tmp_path), *argv)
    assert code == 2 and err.startswith("fetch_data: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_data_errors_exit_2_from_the_shell(tmp_path):
    """A real process: bad data in a file gives one line on stderr and exit code 2."""
    folder = tmp_path / "in"
    folder.mkdir()
    bad = demo_market("BTC", "1d", "2021-01-01", "2021-01-10").reset_index()
    bad.loc[4, "high"] = bad.loc[4, "low"] / 2
    bad.to_csv(folder / "BTC-USD_1d.csv", index=False)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.fetch_data",
            "--assets",
            "BTC",
            "--source",
            f"csv:{folder}",
            "--store",
            str(tmp_path / "s"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "[BTC] inconsistent bar" in proc.stderr and "BTC-USD_1d.csv, 2021-01-05" in proc.stderr


def test_metrics_import_summary_counts_metrics_and_names_what_was_left_out(tmp_path, capsys):
    days = pd.date_range("2021-01-01", "2021-06-30", freq="D")
    table = pd.DataFrame(
        {
            "time": days.strftime("%Y-%m-%d"),
            "BTC / Tx Cnt": 1000.0 + (pd.Series(range(len(days))) * 37 % 101).to_numpy(),
            "BTC / Google Trends": days.month.to_numpy(dtype="float64"),  # monthly values spread over days
        }
    )
    (tmp_path / "oc").mkdir()
    table.to_csv(tmp_path / "oc" / "btc_onchain.csv", index=False)
    store = tmp_path / "store"
    code, out, _ = run(capsys, "--assets", "BTC", "--source", f"csv:{tmp_path / 'oc'}", "--store", str(store))
    text = " ".join(out.replace("│", " ").split())
    assert code == 0 and "rows stored" not in out and "all .. all" not in out, out
    assert "every date in the files" in text, out
    assert "BTC 1 181 2021-01-01 2021-06-30 BTC / Google Trends (values repeat over calendar periods" in text, out
