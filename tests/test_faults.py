"""Bad input and faults through every command's real entry point.

Every case runs ``experiments.<command>.main(argv)`` on a copy of one small world (a data store
filled from CSV files, a model store with one tiny trained Crypto Module, a paper account and an
order journal that have traded once) after an optional ``setup`` that breaks something, and
asserts: exit code 2, exactly one line on stderr naming the problem, no traceback text, and every
file of the world unchanged (sha256 before and after; new files count as changes). A few cases run
through ``python -m`` as a user would.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from binance_spot_sim import binance_markets

from cryptorl.data.demo import demo_data

ROOT = Path(__file__).resolve().parents[1]
DATA_RANGE = ("2021-03-01", "2022-07-31")
TRAIN = [
    "--train-start",
    "2021-09-01",
    "--val-start",
    "2022-03-01",
    "--backtest-start",
    "2022-05-01",
    "--start",
    DATA_RANGE[0],
    "--end",
    DATA_RANGE[1],
    "--timesteps",
    "64",
    "--ensemble",
    "1",
    "--n-envs",
    "2",
    "--eval-freq",
    "100000",
    "--tensorboard-log",
    "",
    "--no-progress",
]
LIVE = ["--assets", "BTC,ETH", "--interval", "1d", "--data", "demo", "--strategy", "equal", "--once"]


# ---------------------------------------------------------------------------------------- the world
def _write_csv(folder: Path, asset: str) -> None:
    market, _ = demo_data(asset, "1d", *DATA_RANGE)
    frame = market.reset_index().rename(columns={"time": "datetime"})
    frame["datetime"] = frame["datetime"].dt.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{asset}-USD_1d.csv", index=False)


def _settle(root: Path) -> None:
    """Close stray connections and fold every SQLite WAL into its database, so that a later read
    leaves the files byte for byte as they are."""
    gc.collect()
    for db in root.rglob("*.sqlite"):
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()


def _run(command: str, argv: list[str]) -> int:
    module = importlib.import_module(f"experiments.{command}")
    try:
        rc = module.main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    for asset in ("BTC", "ETH"):
        _write_csv(root / "csv", asset)
    (root / "markets.json").write_text(json.dumps(binance_markets()))
    (root / "cwd").mkdir()
    assert (
        _run(
            "fetch_data",
            ["--assets", "BTC,ETH", "--source", f"csv:{root / 'csv'}", "--store", str(root / "store"), "--no-progress"],
        )
        == 0
    )
    assert (
        _run(
            "train_cm",
            [
                "--asset",
                "BTC",
                "--source",
                "store",
                "--store",
                str(root / "store"),
                "--models",
                str(root / "models"),
                *TRAIN,
            ],
        )
        == 0
    )
    assert (
        _run(
            "live",
            [
                *LIVE,
                "--markets-file",
                str(root / "markets.json"),
                "--paper-db",
                str(root / "paper.sqlite"),
                "--journal",
                str(root / "journal.sqlite"),
                "--kill-switch",
                str(root / "KILL"),
                "--now",
                "2024-03-05T00:00:10",
            ],
        )
        == 0
    )
    _settle(root)
    return root


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (SQLite's shared-memory index and an empty WAL carry no data)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_dir() or p.name.endswith("-shm") or (p.name.endswith("-wal") and p.stat().st_size == 0):
            continue
        size = p.stat().st_size
        key = p.relative_to(root).as_posix()
        out[key] = f"{size}:{p.stat().st_mtime_ns}" if size > 2**26 else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _tree(root: Path) -> dict[str, str]:
    """Every file (sha256, as :func:`_digest`) and every folder (``"dir"``) under ``root``: a refused
    command must not leave a new empty folder either."""
    out = _digest(root)
    out.update({p.relative_to(root).as_posix(): "dir" for p in root.rglob("*") if p.is_dir()})
    return out


# ---------------------------------------------------------------------------------------- breakers
def _csv_edit(asset: str, row: int, **values) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        path = w / "csv" / f"{asset}-USD_1d.csv"
        df = pd.read_csv(path)
        for col, v in values.items():
            if isinstance(v, str):
                df[col] = df[col].astype(object)
            df.loc[row, col] = v(df.loc[row]) if callable(v) else v
        path.write_text(df.to_csv(index=False))

    return setup


def _sparse(rel: str, size: int) -> Callable[[Path], None]:
    """A file of ``size`` bytes that takes no disk space (a 2 GB input without writing 2 GB)."""

    def setup(w: Path) -> None:
        with open(w / rel, "r+b") as fh:
            fh.truncate(size)

    return setup


def _swap_rows(asset: str, a: int, b: int) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        path = w / "csv" / f"{asset}-USD_1d.csv"
        df = pd.read_csv(path)
        order = list(range(len(df)))
        order[a], order[b] = b, a
        path.write_text(df.iloc[order].to_csv(index=False))

    return setup


def _file(rel: str, content: bytes | str = b"not a folder") -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def _version(w: Path) -> Path:
    return next((w / "models" / "BTC_1d").glob("v0*"))


def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        path = _version(w) / "manifest.json"
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True))

    return setup


def _ranges_back(m: dict) -> None:  # move the module's data ranges a year back: its training data would be "unseen"
    m["ranges"] = {k: [str(pd.Timestamp(t) - pd.Timedelta(days=365)) for t in v] for k, v in m["ranges"].items()}


def _window(m: dict) -> None:
    m["config"]["window"] = 10


def _dangling(w: Path) -> None:
    (w / "models" / "BTC_1d" / "CURRENT").write_text("v0007-20200101T000000\n")


def _remove(rel_glob: str) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        for p in w.glob(rel_glob):
            p.unlink()

    return setup


def _truncate(rel: str, keep: float = 0.5) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        p.write_bytes(p.read_bytes()[: int(p.stat().st_size * keep)])

    return setup


def _truncate_version(name: str) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = _version(w) / name
        p.write_bytes(p.read_bytes()[:1000])

    return setup


def _yaml(text: str) -> Callable[[Path], None]:
    return _file("cfg.yml", text)


def _onchain(name: str, columns: dict[str, Callable[[pd.DatetimeIndex], np.ndarray]], rows: bool = True):
    """A wide on-chain table ``oc/<name>`` (Coin Metrics' ``BTC / Tx Cnt`` layout), 180 days."""

    def setup(w: Path) -> None:
        days = pd.date_range("2021-03-01", periods=180 if rows else 0, freq="D")
        (w / "oc").mkdir()
        frame = pd.DataFrame({"time": days.strftime("%Y-%m-%d"), **{c: f(days) for c, f in columns.items()}})
        frame.to_csv(w / "oc" / name, index=False)

    return setup


def _counts(days: pd.DatetimeIndex) -> np.ndarray:
    return 1000.0 + (np.arange(len(days)) * 37) % 101


def _monthly(days: pd.DatetimeIndex) -> np.ndarray:  # a monthly value spread over its days
    return days.month.to_numpy(dtype="float64") * 10.0


TWO = {"BTC / Tx Cnt": _counts, "BTC / Adr Act Cnt": _counts}


# ---------------------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    id: str
    command: str
    argv: tuple[str, ...]
    message: str
    setup: Callable[[Path], None] | None = None
    env: tuple[tuple[str, str], ...] = ()


def F(id, argv, message, setup=None, env=()):  # fetch_data, CSV import into the store
    base = ("--assets", "BTC", "--source", "csv:{w}/csv", "--store", "{w}/store", "--no-progress")
    return Case(id, "fetch_data", (*base, *argv), message, setup, env)


def T(id, argv, message, setup=None):  # train_cm on the stored bars, into the model store
    base = ("--asset", "BTC", "--source", "store", "--store", "{w}/store", "--models", "{w}/models", *TRAIN)
    return Case(id, "train_cm", (*base, *argv), message, setup)


def C(id, argv, message, setup=None):  # compose the stored module over the stored bars
    base = (
        "--assets",
        "BTC",
        "--source",
        "store",
        "--store",
        "{w}/store",
        "--models",
        "{w}/models",
        "--out",
        "{w}/report",
        "--no-progress",
    )
    return Case(id, "compose", (*base, *argv), message, setup)


def P(id, argv, message, setup=None):  # compare (fast agents) with the stored module
    base = (
        "--assets",
        "BTC,ETH",
        "--source",
        "store",
        "--agents",
        "equal_weight",
        "--models",
        "{w}/models",
        "--out",
        "{w}/cmp",
        "--fast",
    )
    return Case(id, "compare", (*base, *argv), message, setup, (("CRYPTORL_DATA", "{w}/store"),))


def L(id, argv, message, setup=None):  # live paper trading on the account that traded once
    base = (
        *LIVE,
        "--markets-file",
        "{w}/markets.json",
        "--paper-db",
        "{w}/paper.sqlite",
        "--journal",
        "{w}/journal.sqlite",
        "--kill-switch",
        "{w}/KILL",
        "--now",
        "2024-03-06T00:00:10",
    )
    return Case(id, "live", (*base, *argv), message, setup)


def U(id, argv, message, setup=None):  # update the stored module
    base = (
        "--assets",
        "BTC",
        "--now",
        "--source",
        "store",
        "--store",
        "{w}/store",
        "--models",
        "{w}/models",
        "--window",
        "200d",
        "--val-window",
        "30d",
        "--timesteps",
        "64",
        "--ensemble",
        "1",
        "--no-progress",
    )
    return Case(id, "update", (*base, *argv), message, setup)


def W(id, argv, message, setup=None):  # walk-forward evaluation
    base = (
        "--assets",
        "BTC",
        "--source",
        "store",
        "--store",
        "{w}/store",
        "--out",
        "{w}/wf",
        "--timesteps",
        "64",
        "--ensemble",
        "1",
        "--no-progress",
    )
    return Case(id, "walk_forward", (*base, *argv), message, setup)


def R(id, argv, message, setup=None):  # tune on the stored bars, study and report under {w}/tune
    base = ("--asset", "BTC", "--source", "store", "--store", "{w}/store", "--out", "{w}/tune", "--trials", "1")
    return Case(id, "tune", (*base, *argv), message, setup)


PROTOCOL = (
    "source: demo\nassets: [BTC]\nseeds: [0]\n"
    "windows:\n  w1: {train: [2021-01-01, 2021-06-30], validation: [2021-07-01, 2021-08-31], "
    "backtest: [2021-09-01, 2021-10-31]}\n"
)


def E(id, extra, message, config="timesteps: 64", argv=()):  # evaluate a protocol at {w}/cfg.yml
    text = PROTOCOL + extra + f"configs:\n  c: {{{config}}}\n"
    return Case(id, "evaluate", ("{w}/cfg.yml", "--out", "{w}/eval", "--no-progress", *argv), message, _yaml(text))


NEW_ACCOUNT = ("--paper-db", "{w}/new-paper.sqlite")
x1000 = {"close": lambda r: r["close"] * 1000, "high": lambda r: r["close"] * 1000}

CASES = [
    # --- fetch_data: prices, sources, options, paths
    F("inf-close", (), "infinite", _csv_edit("BTC", 100, close=np.inf, high=np.inf)),
    F("inf-high", (), "infinite", _csv_edit("BTC", 100, high=np.inf)),
    F("nan-close", (), "NaN", _csv_edit("BTC", 100, close=np.nan)),
    F("negative-close", (), "non-positive price", _csv_edit("BTC", 100, close=-5.0, low=-5.0)),
    F("zero-open", (), "non-positive price", _csv_edit("BTC", 100, open=0.0, low=0.0)),
    F("high-below-low", (), "inconsistent bar", _csv_edit("BTC", 100, high=1.0)),
    F("close-x1000-strict", ("--outliers", "error"), "suspicious close", _csv_edit("BTC", 200, **x1000)),
    F(
        "changed-file-same-name",
        (),
        "would replace data stored from",
        _csv_edit("BTC", 300, close=lambda r: r["close"] * 1.001, high=lambda r: r["high"] * 1.001),
    ),
    F("text-in-price", (), "not a number", _csv_edit("BTC", 100, volume="lots")),
    F("unsorted", (), "not sorted", _swap_rows("BTC", 100, 101)),
    F("conflicting-duplicate", (), "conflicting rows", _csv_edit("BTC", 100, datetime="2021-03-05")),
    F("empty-file", (), "cannot read file", _file("csv/BTC-USD_1d.csv", b"")),
    F("binary-file", (), "BTC", _file("csv/BTC-USD_1d.csv", bytes(range(256)) * 40)),
    F("over-size-limit", (), "input limit", env=(("CRYPTORL_MAX_INPUT_MB", "0.01"),)),
    F("huge-file", (), "600 MB, over the 512 MB input limit", _sparse("csv/BTC-USD_1d.csv", 600 * 2**20)),
    F("duplicate-tickers", ("--assets", " BTC, ETH ,BTC"), "more than once"),
    F("bad-ticker", ("--assets", "BTC/USDT"), "not a ticker"),
    F("empty-assets", ("--assets", " , "), "is empty"),
    F("store-is-a-file", ("--store", "{w}/markets.json"), "is a file, not a folder"),
    F("store-under-a-file", ("--store", "{w}/markets.json/store"), "is a file"),
    F("end-before-start", ("--start", "2022-01-01", "--end", "2021-01-01"), "is before --start"),
    F("start-not-a-date", ("--start", "yesterday-ish"), "not a date"),
    F("bad-interval", ("--interval", "7x"), "--interval"),
    F("range-without-bars", ("--start", "2015-01-01", "--end", "2015-02-01"), "no bars in the range asked for"),
    F("csv-path-missing", ("--source", "csv:{w}/nowhere"), "no such file or folder"),
    F("unknown-source", ("--source", "ftp"), "'ftp'"),
    F("outlier-z-zero", ("--outlier-z", "0"), "--outlier-z"),
    F("source-typo-new-store", ("--source", "csvv:x", "--store", "{w}/new-store"), "'csvv:x'"),
    # --- fetch_data: on-chain tables that give nothing, each for its own reason
    F(
        "onchain-only-non-daily",
        ("--source", "csv:{w}/oc"),
        "no column of btc_onchain.csv is a daily observation: BTC / Google Trends (values repeat",
        _onchain("btc_onchain.csv", {"BTC / Google Trends": _monthly}),
    ),
    F(
        "onchain-mixed-assets",
        ("--source", "csv:{w}/oc"),
        "columns of several assets (BTC, ETH)",
        _onchain("onchain.csv", {"BTC / Tx Cnt": _counts, "ETH / Tx Cnt": _counts}),
    ),
    F(
        "onchain-include-missing",
        ("--source", "csv:{w}/oc", "--include", "hash_rate"),
        "include (hash_rate) names none of the columns of btc_onchain.csv",
        _onchain("btc_onchain.csv", TWO),
    ),
    F(
        "onchain-exclude-all",
        ("--source", "csv:{w}/oc", "--exclude", "tx_cnt,adr_act_cnt"),
        "leaves out every metric column of btc_onchain.csv",
        _onchain("btc_onchain.csv", TWO),
    ),
    F(
        "onchain-header-only",
        ("--source", "csv:{w}/oc"),
        "btc_onchain.csv has a header but no rows",
        _onchain("btc_onchain.csv", TWO, rows=False),
    ),
    # --- train_cm: hyper-parameters, options, config files, paths - all before any training
    T("hp-unknown-key", ("--hyperparams", "learnin_rate=1e-4"), "did you mean learning_rate"),
    T("hp-wrong-type", ("--hyperparams", "learning_rate=fast"), "learning_rate must be a number"),
    T("hp-batch-size-0", ("--hyperparams", "batch_size=0"), "batch_size must be >= 1"),
    T("hp-gamma-1.5", ("--hyperparams", "gamma=1.5"), "gamma must be"),
    T("hp-n-steps-negative", ("--algo", "ppo", "--hyperparams", "n_steps=-8"), "n_steps must be >= 1"),
    T("hp-set-by-command", ("--hyperparams", "seed=3"), "set by the command"),
    T("hp-not-key-value", ("--hyperparams", "lr"), "KEY=VALUE"),
    T("hp-dqn-key-for-ppo", ("--algo", "ppo", "--hyperparams", "buffer_size=100"), "unknown PPO hyper-parameter"),
    T("hp-ppo-key-for-default-dqn", ("--hyperparams", "n_epochs=2"), "unknown DQN hyper-parameter 'n_epochs'"),
    T("hp-float-for-int", ("--algo", "ppo", "--hyperparams", "n_epochs=2.5"), "n_epochs must be an integer"),
    T(
        "config-episode-length-long",
        ("--config", "{w}/cfg.yml"),
        "--episode-length must be an integer",
        _yaml('episode_length: "long"\n'),
    ),
    Case(
        "config-timesteps-lots",
        "train_cm",
        ("--asset", "BTC", "--config", "{w}/cfg.yml", "--models", "{w}/models"),
        "--timesteps must be an integer",
        _yaml('timesteps: "lots"\n'),
    ),
    T("config-unknown-option", ("--config", "{w}/cfg.yml"), "unknown option", _yaml("learnin_rate: 0.1\n")),
    T(
        "config-hp-unknown",
        ("--config", "{w}/cfg.yml"),
        "unknown DQN hyper-parameter",
        _yaml("hyperparams:\n  learnin_rate: 0.1\n"),
    ),
    T("config-not-mapping", ("--config", "{w}/cfg.yml"), "must hold a mapping", _yaml("- 1\n- 2\n")),
    T("config-bad-yaml", ("--config", "{w}/cfg.yml"), "cannot read config file", _yaml("a: [1, 2\n")),
    T("config-missing", ("--config", "{w}/none.yml"), "cannot read config file"),
    T("timesteps-0", ("--timesteps", "0"), "--timesteps must be >= 1"),
    T("timesteps-negative", ("--timesteps", "-5"), "--timesteps must be >= 1"),
    T("window-1", ("--window", "1"), "--window must be >= 2"),
    T("fee-2", ("--fee", "2"), "--fee must be"),
    T("fee-negative", ("--fee", "-0.1"), "--fee must be"),
    T("fee-nan", ("--fee", "nan"), "--fee must be a finite number"),
    T("n-envs-0", ("--n-envs", "0"), "--n-envs must be >= 1"),
    T("eval-freq-0", ("--eval-freq", "0"), "--eval-freq must be >= 1"),
    T("episode-length-1", ("--episode-length", "1"), "--episode-length must be >= 2"),
    T("ensemble-0", ("--ensemble", "0"), "--ensemble must be >= 1 and <= 32"),
    T("ensemble-too-many", ("--ensemble", "500"), "--ensemble must be >= 1 and <= 32"),
    T(
        "config-observe-position-text",
        ("--config", "{w}/cfg.yml"),
        "observe_position must be true or false",
        _yaml('observe_position: "sometimes"\n'),
    ),
    T("models-is-a-file", ("--models", "{w}/markets.json"), "--models"),
    T("models-under-a-file", ("--models", "{w}/markets.json/models"), "is a file"),
    T("store-is-a-file", ("--store", "{w}/markets.json"), "--store"),
    T("tensorboard-is-a-file", ("--tensorboard-log", "{w}/markets.json"), "--tensorboard-log"),
    T("bad-interval", ("--interval", "1x"), "interval"),
    T("split-out-of-order", ("--val-start", "2022-06-01", "--backtest-start", "2022-05-01"), "the split must satisfy"),
    T("asset-empty", ("--asset", ""), "is not a ticker"),
    T("asset-pair", ("--asset", "BTC/USDT"), "is not a ticker"),
    T("backtest-months-nan", ("--backtest-months", "nan"), "--backtest-months must be a finite number"),
    T("train-months-0", ("--train-months", "0"), "--train-months must be > 0"),
    T("val-start-not-a-date", ("--val-start", "xx", "--backtest-start", "yy"), "--val-start 'xx' is not a date"),
    T("timesteps-not-a-number", ("--timesteps", "lots"), "argument --timesteps: invalid int value: 'lots'"),
    T("algo-not-a-choice", ("--algo", "sac"), "argument --algo: invalid choice: 'sac'"),
    T("unknown-flag", ("--learning-rate", "1e-4"), "unrecognized arguments: --learning-rate"),
    T("end-before-current-module", ("--end", "2022-06-30"), "saving would promote a module trained on older data"),
    T("csv-with-inf", ("--source", "csv:{w}/csv"), "infinite", _csv_edit("BTC", 100, close=np.inf, high=np.inf)),
    # --- compose: the model store's integrity, pointers, options
    C("manifest-ranges-moved-back", (), "manifest.json does not match", _edit_manifest(_ranges_back)),
    C("manifest-window-changed", (), "manifest.json does not match", _edit_manifest(_window)),
    C("manifest-hash-removed", (), "manifest.sha256", _remove("models/BTC_1d/v0*/manifest.sha256")),
    C("weights-truncated", (), "sha256", _truncate_version("sam.zip")),
    C("current-dangling", (), "names version 'v0007-20200101T000000'", _dangling),
    C("no-module-for-asset", ("--assets", "BTC,ETH"), "no trained 1d CM for ETH"),
    C("out-is-a-file", ("--out", "{w}/markets.json"), "--out"),
    C("fee-5", ("--fee", "5"), "--fee must be"),
    C("slippage-negative", ("--slippage", "-1"), "--slippage must be"),
    C("ensemble-0", ("--train-missing", "--ensemble", "0"), "--ensemble must be >= 1 and <= 32"),
    C("cm-folder-bogus", ("--cm", "{w}/csv"), "no manifest.json"),
    C("duplicate-assets", ("--assets", "BTC,btc"), "twice"),
    # --- compare
    P("out-is-a-file", ("--out", "{w}/markets.json"), "--out"),
    P("duplicate-assets", ("--assets", "BTC, ETH,BTC"), "twice"),
    P("ensemble-0", ("--train-missing", "--ensemble", "0"), "--ensemble must be >= 1 and <= 32"),
    P("fee-negative", ("--fee", "-1"), "--fee must be"),
    P("unknown-agent", ("--agents", "equal_weight,oracle"), "unknown agent"),
    P("current-dangling", (), "names version", _dangling),
    P("train-end-not-a-date", ("--train-end", "garbage"), "--train-end 'garbage' is not a date"),
    C("start-not-a-date", ("--start", "garbage"), "--start 'garbage' is not a date"),
    P("threads-0", ("--threads", "0"), "--threads"),
    # --- live: the paper account, the journal, time order, options
    L("initial-cash-negative", ("--initial-cash", "-100", *NEW_ACCOUNT), "--initial-cash must be > 0"),
    L("fee-2-new-account", ("--fee", "2", *NEW_ACCOUNT), "--fee must be"),
    L("fee-2-account-setup", ("--fee", "0.5", *NEW_ACCOUNT), "--fee must be"),
    L("paper-account-truncated", (), "paper.sqlite", _truncate("paper.sqlite", 0.6)),
    L("paper-account-garbage", (), "not a SQLite database", _file("paper.sqlite", b"x" * 5000)),
    L("journal-garbage", (), "not a SQLite database", _file("journal.sqlite", b"garbage " * 700)),
    L("journal-truncated", (), "journal.sqlite", _truncate("journal.sqlite", 0.5)),
    L("now-before-last-bar", ("--now", "2024-03-02T00:00:10"), "add --force"),
    Case(
        "live-with-demo-data",
        "live",
        (
            *LIVE,
            "--live",
            "--markets-file",
            "{w}/markets.json",
            "--journal",
            "{w}/journal.sqlite",
            "--kill-switch",
            "{w}/KILL",
        ),
        "synthetic prices",
    ),
    L("paper-db-is-a-folder", ("--paper-db", "{w}/csv"), "is a folder"),
    L("journal-is-a-folder", ("--journal", "{w}/csv"), "is a folder"),
    L("price-buffer-2", ("--price-buffer", "2"), "--price-buffer must be"),
    L("max-order-notional-0", ("--max-order-notional", "0"), "--max-order-notional must be > 0"),
    L("markets-file-missing", ("--markets-file", "{w}/none.json", *NEW_ACCOUNT), "--markets-file"),
    L("kill-switch-is-a-folder", ("--kill-switch", "{w}/csv"), "--kill-switch"),
    Case(
        "models-current-dangling",
        "live",
        (
            "--assets",
            "BTC",
            "--interval",
            "1d",
            "--data",
            "demo",
            "--once",
            "--markets-file",
            "{w}/markets.json",
            "--paper-db",
            "{w}/new-paper.sqlite",
            "--journal",
            "{w}/journal.sqlite",
            "--models",
            "{w}/models",
        ),
        "names version",
        _dangling,
    ),
    Case(
        "models-missing-new-account",
        "live",
        (
            "--assets",
            "BTC,ETH",
            "--interval",
            "1d",
            "--data",
            "demo",
            "--once",
            "--markets-file",
            "{w}/markets.json",
            "--paper-db",
            "{w}/new-paper.sqlite",
            "--journal",
            "{w}/journal.sqlite",
            "--models",
            "{w}/models",
        ),
        "no trained Crypto Module for ETH",
    ),
    L("duplicate-assets", ("--assets", "BTC,BTC"), "distinct tickers"),
    L("now-not-a-time-new-account", ("--now", "garbage", *NEW_ACCOUNT), "--now 'garbage' is not a date"),
    L("quote-empty", ("--quote", "", *NEW_ACCOUNT), "--quote"),
    L("fee-not-a-number", ("--fee", "cheap"), "argument --fee: invalid float value"),
    L("history-1", ("--history", "1"), "--history"),
    # --- update
    U("at-before-current-module", ("--at", "2022-01-01"), "add --force"),
    U("models-is-a-file", ("--models", "{w}/markets.json"), "--models"),
    U("every-bad", ("--every", "7x"), "--every"),
    U("val-window-too-long", ("--val-window", "300d"), "must be shorter"),
    U("current-dangling", (), "names version", _dangling),
    U("timesteps-0", ("--timesteps", "0"), "--timesteps must be at least 1"),
    U("ensemble-0", ("--ensemble", "0"), "--ensemble must be at least 1"),
    Case(
        "at-without-now",
        "update",
        ("--assets", "BTC", "--at", "2022-01-01", "--models", "{w}/models"),
        "--at only works with --now",
    ),
    U("source-unknown", ("--source", "nope"), "--source 'nope'"),
    U("source-csv-missing", ("--source", "csv:{w}/nowhere"), "no such file or folder"),
    U("eval-freq-0", ("--eval-freq", "0"), "--eval-freq must be >= 1"),
    U("history-corrupt", (), "history.jsonl", _file("models/BTC_1d/history.jsonl", "{not json\n")),
    U("at-after-the-data", ("--at", "2030-01-01"), "no 1d market data"),
    # --- walk_forward
    W("out-is-a-file", ("--out", "{w}/markets.json"), "--out"),
    W("fee-2", ("--fee", "2"), "--fee must be"),
    W("timesteps-0", ("--timesteps", "0"), "--timesteps must be positive"),
    W("ensemble-0", ("--ensemble", "0"), "--ensemble must be positive"),
    W("step-bad", ("--step", "soon"), "--step"),
    W("store-is-a-file", ("--store", "{w}/markets.json"), "--store"),
    W("duplicate-assets", ("--assets", "BTC,BTC"), "twice"),
    W("missing-assets", ("--assets",), "argument --assets: expected one argument"),
    W("empty-store", ("--store", "{w}/empty-store"), "no 1d market data"),
    # --- evaluate: the whole protocol and the options before any work
    E("timesteps-negative", "", "configs.c: timesteps must be >= 1", config="timesteps: -512"),
    E("eval-freq-0", "eval_freq: 0\n", "eval_freq must be an integer >= 1"),
    E("seed-negative", "seeds: [0, -3]\n", "seeds must be distinct integers"),
    E("metrics-folder-missing", "metrics: csv:/nonexistent/onchain\n", "no such file or folder"),
    E("gaps-keep", "gaps: keep\n", "gaps must be error or fill"),
    E("out-is-a-file", "", "is a file, not a folder", argv=("--out", "{w}/markets.json")),
    E("store-is-a-file", "", "is a file, not a folder", argv=("--store", "{w}/markets.json")),
    E("workers-0", "", "--workers must be >= 1", argv=("--workers", "0")),
    C("workers-0", ("--workers", "0"), "--workers must be >= 1"),
    P("workers-0", ("--workers", "0"), "--workers must be >= 1"),
    # --- tune
    R("ray-client-not-there", ("--address", "ray://127.0.0.1:10999"), "no Ray cluster answers"),
    R("ray-gcs-not-there", ("--address", "127.0.0.1:6399"), "no Ray cluster answers"),
    R("ray-address-malformed", ("--address", "somewhere"), "is not auto, HOST:PORT"),
]


def _argv(case: Case, w: Path) -> list[str]:
    return [a.replace("{w}", str(w)) for a in case.argv]


@pytest.fixture
def copy(world, tmp_path, monkeypatch):
    """A fresh copy of the world for one case, with the working directory inside it."""
    w = tmp_path / "w"
    shutil.copytree(world, w)
    monkeypatch.chdir(w / "cwd")
    for name in ("CRYPTORL_DATA", "CRYPTORL_MODELS", "SANPY_APIKEY", "BINANCE_API_KEY", "BINANCE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return w


@pytest.mark.parametrize("case", CASES, ids=[f"{c.command}:{c.id}" for c in CASES])
def test_fault_is_one_line_exit_2_and_changes_nothing(case, copy, capsys, monkeypatch):
    if case.setup is not None:
        case.setup(copy)
    for key, value in case.env:
        monkeypatch.setenv(key, value.replace("{w}", str(copy)))
    before = _tree(copy)
    capsys.readouterr()
    rc = _run(case.command, _argv(case, copy))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out[-2000:], err[-2000:])
    assert "Traceback" not in err + out
    assert len(lines) == 1, err
    assert case.message in lines[0], lines[0]
    assert _tree(copy) == before


def test_cases_cover_every_command_and_are_many():
    commands = {c.command for c in CASES}
    assert commands == {
        "fetch_data",
        "train_cm",
        "compose",
        "compare",
        "live",
        "update",
        "walk_forward",
        "tune",
        "evaluate",
    }
    assert len({(c.command, c.id) for c in CASES}) == len(CASES) >= 60


# ---------------------------------------------------------------------------------------- as a user
@pytest.mark.slow
@pytest.mark.parametrize(
    "command, argv, message",
    [
        (
            "fetch_data",
            ("--assets", "BTC", "--source", "csv:{w}/csv", "--store", "{w}/store", "--no-progress"),
            "infinite",
        ),
        (
            "live",
            (
                *LIVE,
                "--markets-file",
                "{w}/markets.json",
                "--paper-db",
                "{w}/new.sqlite",
                "--journal",
                "{w}/journal.sqlite",
                "--initial-cash",
                "-100",
            ),
            "--initial-cash",
        ),
        (
            "train_cm",
            ("--asset", "BTC", "--hyperparams", "learning_rate=fast", "--models", "{w}/models"),
            "learning_rate",
        ),
    ],
)
def test_faults_from_the_shell(command, argv, message, copy):
    _csv_edit("BTC", 100, close=np.inf, high=np.inf)(copy)
    before = _tree(copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTORL_", "BINANCE_"))}
    proc = subprocess.run(
        [sys.executable, "-m", f"experiments.{command}", *[a.replace("{w}", str(copy)) for a in argv]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, (
        proc.stderr
    )
    assert _tree(copy) == before


# ---------------------------------------------------------------------------------------- fixed, not refused
def test_csv_import_honours_start_and_end(copy, capsys):
    store = copy / "ranged"
    argv = [
        "--assets",
        "BTC",
        "--source",
        f"csv:{copy / 'csv'}",
        "--store",
        str(store),
        "--start",
        "2021-06-01",
        "--end",
        "2021-06-30",
        "--no-progress",
    ]
    assert _run("fetch_data", argv) == 0
    from cryptorl.data.store import DataStore

    with DataStore(store) as s:
        assert s.count("BTC", "1d") == 30 and s.time_range("BTC", "1d")[0] == pd.Timestamp("2021-06-01", tz="UTC")
    assert "│ BTC   │          30 │" in capsys.readouterr().out.replace("┃", "│")


def test_changed_file_replaces_with_replace_and_says_so(copy, capsys):
    _csv_edit("BTC", 300, close=lambda r: r["close"] * 1.001, high=lambda r: r["high"] * 1.001)(copy)
    argv = ["--assets", "BTC", "--source", f"csv:{copy / 'csv'}", "--store", str(copy / "store"), "--no-progress"]
    assert _run("fetch_data", [*argv, "--replace"]) == 0
    assert "replaced the 1d market stored from file:BTC-USD_1d.csv#sha256:" in capsys.readouterr().out
    from cryptorl.data.store import DataStore

    with DataStore(copy / "store") as s:
        changed = pd.read_csv(copy / "csv" / "BTC-USD_1d.csv").loc[300]
        assert s.market("BTC", "1d").loc[changed["datetime"], "close"] == pytest.approx(changed["close"])
        assert len(s.sources("prices", "BTC", "1d")) == 1
    assert _run("fetch_data", argv) == 0  # the same file again: nothing to replace


def test_close_x1000_warns_naming_the_bar(copy, capsys):
    _csv_edit("BTC", 200, **x1000)(copy)
    day = pd.read_csv(copy / "csv" / "BTC-USD_1d.csv").loc[200, "datetime"]
    argv = ["--assets", "BTC", "--source", f"csv:{copy / 'csv'}", "--store", str(copy / "fresh"), "--no-progress"]
    assert _run("fetch_data", argv) == 0
    out, err = capsys.readouterr()
    assert "warning: [BTC] suspicious close" in err and day in err
    assert "2 suspicious bar(s) flagged" in out  # the bad print and the move back


# ---------------------------------------------------------------------------------------- evaluate
def _holey_csv(folder: Path, hole: tuple[str, str]) -> Path:
    """A daily BTC file in the layout of the shared price files, with the days of ``hole`` missing."""
    market, _ = demo_data("BTC", "1d", "2020-03-01", "2021-09-30")
    frame = market.reset_index().rename(columns={"time": "datetime"})
    days = frame["datetime"].dt.strftime("%Y-%m-%d")
    frame = frame[(days < hole[0]) | (days > hole[1])].assign(datetime=days)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "BTC-USD_1d.csv", index=False)
    return folder


def _protocol(path: Path, source: str, extra: str = "") -> Path:
    path.write_text(
        f"name: holey\nsource: {source}\nassets: [BTC]\nseeds: [0]\neval_freq: 64\n{extra}"
        "windows:\n  w1: {train: [2020-10-01, 2021-06-30], validation: [2021-07-01, 2021-07-31], "
        "backtest: [2021-08-01, 2021-08-31]}\n"
        "configs:\n  tiny: {algo: ppo, timesteps: 64, window: 10, n_envs: 2, episode_length: 16, ensemble: 1, "
        "observe_position: false, features: []}\n"
    )
    return path


def test_evaluate_hole_before_the_first_training_day_needs_no_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    csv = _holey_csv(tmp_path / "csv", ("2020-07-10", "2020-09-15"))
    proto = _protocol(tmp_path / "p.yml", f"csv:{csv}")
    assert _run("evaluate", [str(proto), "--out", str(tmp_path / "out"), "--no-progress"]) == 0, capsys.readouterr()
    assert (tmp_path / "out" / "report.md").is_file()


def test_evaluate_hole_inside_the_windows_names_its_own_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    csv = _holey_csv(tmp_path / "csv", ("2021-03-10", "2021-03-14"))
    proto = _protocol(tmp_path / "p.yml", f"csv:{csv}")
    before = _tree(tmp_path)
    assert _run("evaluate", [str(proto), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5 bar(s) missing" in err[0], err
    assert "--gaps fill" in err[0] and "gaps: fill" in err[0] and "--gaps keep" not in err[0]
    assert _tree(tmp_path) == before
    assert _run("evaluate", [str(proto), "--out", str(tmp_path / "flag"), "--no-progress", "--gaps", "fill"]) == 0
    keyed = _protocol(tmp_path / "k.yml", f"csv:{csv}", "gaps: fill\n")
    from agents.evaluation import load_markets, load_protocol

    market, _ = load_markets(load_protocol(keyed), tmp_path / "store", progress=False)["BTC"]
    filled = market.loc["2021-03-10":"2021-03-14"]
    assert len(filled) == 5 and (filled.volume == 0).all() and market.index.freq is not None


def test_train_cm_offers_no_gaps_keep(copy, capsys):
    assert _run("train_cm", ["--asset", "BTC", "--gaps", "keep", "--models", str(copy / "m")]) == 2
    assert "invalid choice: 'keep'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- live
@pytest.mark.parametrize("rerun", [("--assets", "ETH,BTC"), ("--portfolio-id", "another")], ids=["order", "id"])
def test_live_rerun_of_an_interval_on_the_same_account_places_no_order_twice(copy, rerun):
    from cryptorl.live import PaperExchange

    def orders() -> list[tuple]:
        paper = PaperExchange(copy / "paper.sqlite")
        try:
            return sorted((o["clientOrderId"], o["symbol"], o["side"]) for o in paper.fetch_orders())
        finally:
            paper.close()

    argv = [
        *LIVE,
        "--markets-file",
        str(copy / "markets.json"),
        "--paper-db",
        str(copy / "paper.sqlite"),
        "--journal",
        str(copy / "journal.sqlite"),
        "--kill-switch",
        str(copy / "KILL"),
        "--now",
        "2024-03-06T00:00:10",
    ]
    first = orders()
    assert _run("live", argv) == 0  # the next interval: rebalancing orders stay open until the next bar
    before = orders()
    assert len(before) > len(first)
    assert _run("live", [*argv, *rerun]) == 0
    assert orders() == before


def test_train_cm_takes_a_dqn_key_for_the_default_dqn(copy, capsys):
    argv = ["--asset", "BTC", "--source", "store", "--store", str(copy / "store"), "--models", str(copy / "m")]
    assert _run("train_cm", [*argv, *TRAIN, "--hyperparams", "buffer_size=500", "--no-save"]) == 0, capsys.readouterr()


# ---------------------------------------------------------------------------------------- first use
@pytest.fixture(scope="module")
def demo_tiny_run(tmp_path_factory):
    """``evaluate experiments/protocols/demo_tiny.yml`` into a temporary folder, from an empty working
    folder, with listings of the system temporary folder, the working folder and the checkout
    before and after."""
    import tempfile

    system_tmp = Path(tempfile.gettempdir())

    def listing() -> set[str]:
        skip = ("pytest-of-", "bash_jobs", "ray")
        return {p.name for p in system_tmp.iterdir() if not p.name.startswith(skip)}

    base = tmp_path_factory.mktemp("demo-tiny")
    work = base / "work"
    work.mkdir()
    before = listing(), {p.name for p in ROOT.iterdir()}
    cwd = os.getcwd()
    os.chdir(work)
    try:
        argv = [str(ROOT / "experiments/protocols/demo_tiny.yml"), "--out", str(base / "out"), "--no-progress"]
        rc = _run("evaluate", [*argv, "--workers", "1"])
    finally:
        os.chdir(cwd)
    after = listing(), {p.name for p in ROOT.iterdir()}
    return rc, work, before, after


def test_evaluate_demo_tiny_leaves_nothing_in_the_working_folder_or_the_checkout(demo_tiny_run):
    rc, work, before, after = demo_tiny_run
    assert rc == 0
    assert list(work.iterdir()) == []
    assert after[1] == before[1]


def test_evaluate_demo_tiny_leaves_nothing_in_the_system_temporary_folder(demo_tiny_run):
    rc, _, before, after = demo_tiny_run
    assert rc == 0
    assert after[0] - before[0] == set()


def test_train_cm_hourly_file_with_a_missing_bar_names_the_gap_and_the_split(tmp_path, capsys):
    market, _ = demo_data("BTC", "1h", "2022-01-01", "2022-03-31")
    frame = market.reset_index().rename(columns={"time": "date"})
    frame = frame.drop(index=len(frame) - 200)  # one bar missing near the end
    (tmp_path / "csv").mkdir()
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
        tmp_path / "csv" / "BTC-USD_1h.csv", index=False
    )
    argv = ["--asset", "BTC", "--interval", "1h", "--source", f"csv:{tmp_path / 'csv'}", "--store", str(tmp_path / "s")]
    rc = _run("train_cm", [*argv, "--no-save", "--timesteps", "64", "--tensorboard-log", "", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "after the last gap" in err[0] and "--gaps fill" in err[0] and "default split" in err[0]


def test_compare_help_shows_each_default_once():
    from experiments.compare import build_parser

    text = build_parser().format_help()
    blocks = [b for b in text.split("\n  -")[1:]]
    assert blocks and all(b.count("(default") <= 1 for b in blocks), [b for b in blocks if b.count("(default") > 1]
    assert "(default: None)" not in text and "(default: 0.001)" in " ".join(text.split())


# ---------------------------------------------------------------------------------------- offline
def _no_network(monkeypatch) -> list[str]:
    """Every HTTP request fails to connect, as on a machine without network (the transport is the
    only thing replaced)."""
    import requests
    from requests.adapters import HTTPAdapter

    calls: list[str] = []

    def send(self, request, **kwargs):
        calls.append(request.url)
        raise requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='community-api.coinmetrics.io', port=443): Max retries exceeded "
            "(Caused by NameResolutionError(\"Failed to resolve 'community-api.coinmetrics.io'\"))",
            request=request,
        )

    monkeypatch.setattr(HTTPAdapter, "send", send)
    return calls


@pytest.mark.parametrize(
    "command, argv, rc",
    [
        ("fetch_data", ("--assets", "BTC", "--source", "coinmetrics", "--store", "{w}/store", "--no-progress"), 1),
        (
            "train_cm",
            (
                "--asset",
                "BTC",
                "--source",
                "store",
                "--store",
                "{w}/store",
                "--models",
                "{w}/models",
                *TRAIN,
                "--metrics",
                "coinmetrics",
            ),
            2,
        ),
    ],
    ids=["fetch_data", "train_cm"],
)
def test_coinmetrics_offline_is_one_line_within_seconds(command, argv, rc, copy, capsys, monkeypatch):
    import time

    calls = _no_network(monkeypatch)
    before = _tree(copy)
    capsys.readouterr()
    began = time.monotonic()
    got = _run(command, [a.replace("{w}", str(copy)) for a in argv])
    took = time.monotonic() - began
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert got == rc and len(lines) == 1 and "cannot reach the Coin Metrics API" in lines[0], (got, err)
    assert "Traceback" not in out + err and took < 10 and len(calls) == 1
    assert _tree(copy) == before


# ---------------------------------------------------------------------------------------- outliers, warnings
def test_train_cm_warns_again_in_one_line_of_its_own_of_flagged_bars_it_uses(copy, capsys):
    _csv_edit("BTC", 200, **x1000)(copy)
    day = pd.read_csv(copy / "csv" / "BTC-USD_1d.csv").loc[200, "datetime"]
    store = str(copy / "fresh")
    imported = ["--assets", "BTC", "--source", f"csv:{copy / 'csv'}", "--store", store, "--no-progress"]
    assert _run("fetch_data", imported) == 0
    capsys.readouterr()
    argv = ["--asset", "BTC", "--source", "store", "--store", store, "--models", str(copy / "m"), *TRAIN, "--no-save"]
    assert _run("train_cm", argv) == 0
    err = capsys.readouterr().err.splitlines()
    flagged = [line for line in err if "suspicious bar" in line]
    assert len(flagged) == 1, err
    assert flagged[0].startswith(
        f"train_cm: warning: [BTC] 2 suspicious bar(s) in the range used ({DATA_RANGE[0]} .. {DATA_RANGE[1]}), "
        f"the first at {day}: a +"
    ), flagged
    assert all(line.startswith(("train_cm: warning: ", "warning: ")) for line in err if "Warning" in line), err
    assert not any(".py:" in line for line in err), err  # no source file:line of a raw Python warning


def test_evaluate_warns_of_flagged_bars_inside_its_windows_only(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    csv = _holey_csv(tmp_path / "csv", ("2020-07-10", "2020-07-09"))  # no hole
    path = csv / "BTC-USD_1d.csv"
    frame = pd.read_csv(path)
    before = frame.index[frame["datetime"] == "2020-06-15"][0]  # before the first training day
    frame.loc[before, ["close", "high"]] *= 1000
    path.write_text(frame.to_csv(index=False))
    argv = [str(_protocol(tmp_path / "p.yml", f"csv:{csv}")), "--out", str(tmp_path / "o"), "--no-progress"]
    assert _run("evaluate", [*argv, "--baselines-only"]) == 0
    err = capsys.readouterr().err.splitlines()  # the import's own warning, then nothing: outside every window
    assert [line for line in err if "suspicious" in line] == [
        "evaluate: warning: [BTC] suspicious close: a +99887.7% move from the bar before, robust z-score 224 > 30 "
        "and 1 more bar(s) (at 2020-06-15)"
    ], err
    inside = frame.index[frame["datetime"] == "2021-08-10"][0]  # a backtest day
    frame.loc[inside, ["close", "high"]] *= 1000
    path.write_text(frame.to_csv(index=False))
    assert _run("evaluate", [*argv, "--baselines-only", "--out", str(tmp_path / "o2")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "in the range used" in line]
    assert len(err) == 1 and err[0].startswith("evaluate: warning: [BTC] 2 suspicious bar(s) in the range used"), err
    assert "(2020-10-01 .. 2021-08-31), the first at 2021-08-10" in err[0]
