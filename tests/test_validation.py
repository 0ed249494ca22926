"""The library checks behind the fault suite: prices, outliers, model store integrity, SQLite files,
hyper-parameters and folders."""

from __future__ import annotations

import json
import os
import re
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.options import check_hyperparams
from cryptorl.cli import UserError
from cryptorl.data.demo import demo_data
from cryptorl.data.frames import DataError, OutlierWarning, check_outliers, outlier_bars, validate_market
from cryptorl.modelstore import MANIFEST, MANIFEST_HASH, ModelStore, ModelStoreError, sha256_file, verify
from cryptorl.validation import check_db_file, check_dir, check_number, sqlite_problem


# ------------------------------------------------------------------ prices
@pytest.mark.parametrize("col", ["open", "high", "low", "close", "volume"])
def test_infinite_values_are_refused_naming_the_bar(col):
    market, _ = demo_data("BTC", "1d", "2021-01-01", "2021-03-31")
    t = market.index[40]
    market.loc[t, col] = np.inf
    if col != "volume":
        market.loc[t, "high"] = np.inf
    with pytest.raises(DataError, match=rf"infinite value in .*'{col}'.*at {t:%Y-%m-%d}\)"):
        validate_market(market, "BTC", "1d")


def test_one_bad_print_is_found_and_the_clean_series_is_quiet():
    market, _ = demo_data("BTC", "1d", "2020-03-01", "2022-09-30")
    assert outlier_bars(market).empty  # a clean, fat-tailed daily series raises nothing at the default
    t = market.index[300]
    bad = market.copy()
    bad.loc[t, ["close", "high"]] = bad.loc[t, "close"] * 1000
    found = outlier_bars(bad)
    assert found.index[0] == t and found["ret"].iloc[0] == pytest.approx(999, rel=0.2)
    with pytest.warns(OutlierWarning, match=re.escape(f"at {t:%Y-%m-%d})")):
        check_outliers(bad, "BTC")
    with pytest.raises(DataError, match="suspicious close"):
        validate_market(bad, "BTC", "1d", outliers="error")


@settings(max_examples=25, deadline=None)
@given(st.floats(5, 1e4), st.integers(50, 500))
def test_outlier_score_grows_with_the_jump(factor, row):
    """A jump by ``factor`` is flagged at a threshold below its score and not above it (monotone)."""
    market, _ = demo_data("ETH", "1d", "2020-03-01", "2022-09-30")
    t = market.index[row]
    bad = market.copy()
    bad.loc[t, ["close", "high"]] = bad.loc[t, "close"] * factor
    found = outlier_bars(bad, z=10)
    assert t in found.index
    score = found.loc[t, "z"]
    assert t not in outlier_bars(bad, z=score + 1e-6).index


# ------------------------------------------------------------------ model store
def _save(store: ModelStore, payload: str = "w", **manifest):
    def write(folder):
        (folder / "weights.bin").write_text(payload)
        return {"kind": "other", **manifest}

    return store.save("BTC", "1d", write)


def test_version_numbers_never_repeat_and_leftovers_are_cleaned(tmp_path):
    store = ModelStore(tmp_path)
    v1, v2 = _save(store), _save(store)
    assert (v1.name[:5], v2.name[:5]) == ("v0001", "v0002")
    leftover = store.family("BTC", "1d") / ".tmp-crash"
    leftover.mkdir()
    import shutil

    shutil.rmtree(v2)  # the newest version deleted by hand
    store.promote("BTC", "1d", v1.name)
    v3 = _save(store)
    assert v3.name.startswith("v0003") and not leftover.exists()
    shutil.rmtree(v3)
    (store.family("BTC", "1d") / "history.jsonl").write_text("")  # even with the history gone, v1 stays
    assert _save(store).name.startswith("v0002")


def test_the_manifest_is_covered_by_the_integrity_check(tmp_path):
    store = ModelStore(tmp_path)
    folder = _save(store)
    assert verify(folder)["kind"] == "other"
    m = folder / MANIFEST
    m.write_text(m.read_text().replace('"other"', '"other "'))
    with pytest.raises(ModelStoreError, match="manifest.json does not match"):
        verify(folder)
    (folder / MANIFEST_HASH).unlink()
    with pytest.raises(ModelStoreError, match="manifest.sha256"):
        verify(folder)


def _crypto_module_manifest(**change):
    manifest = {
        "kind": "crypto_module",
        "asset": "BTC",
        "interval": "1d",
        "config": {"asset": "BTC", "interval": "1d", "algo": "ppo", "window": 30, "features_dim": 64},
        "feature_spec": {"observation_shape": [8, 2, 30]},
        "ranges": {"train": ["2021-01-01", "2021-06-30"], "validation": ["2021-07-01", "2021-08-31"]},
    }
    for path, value in change.items():
        *head, last = path.split("__")
        d = manifest
        for key in head:
            d = d[key]
        d[last] = value
    return manifest


@pytest.mark.parametrize(
    "change, message",
    [
        ({"config__window": 10}, "does not end with config.window"),
        ({"config__window": "30"}, "not a positive integer"),
        ({"feature_spec__observation_shape": [8, 2]}, "three positive integers"),
        ({"ranges__validation": ["2021-03-01", "2021-04-30"]}, "out of order"),
        ({"ranges__train": ["2021-06-30", "2021-01-01"]}, "out of order"),
        ({"ranges__train": ["soon", "later"]}, "not two timestamps"),
        ({"asset": "ETH"}, "disagrees with config.asset"),
        ({"config__algo": None}, "config.algo"),
    ],
)
def test_fields_the_loader_uses_are_validated_even_when_signed(tmp_path, change, message):
    """A manifest re-signed after an edit (its sha256 recomputed) still has to make sense."""
    store = ModelStore(tmp_path)
    folder = _save(store)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.update(_crypto_module_manifest(**change))
    (folder / MANIFEST).write_text(json.dumps(manifest))
    (folder / MANIFEST_HASH).write_text(sha256_file(folder / MANIFEST))
    with pytest.raises(ModelStoreError, match=message):
        verify(folder)


def test_a_dangling_current_pointer_is_named(tmp_path):
    store = ModelStore(tmp_path)
    _save(store)
    (store.family("BTC", "1d") / "CURRENT").write_text("v0009-x\n")
    with pytest.raises(ModelStoreError, match=r"CURRENT names version 'v0009-x'"):
        store.current("BTC", "1d")
    assert store.current("ETH", "1d") is None


# ------------------------------------------------------------------ SQLite files, folders, numbers
def test_sqlite_problems_are_found_from_the_header(tmp_path):
    db = tmp_path / "a.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 100)
    conn.commit()
    conn.close()
    assert sqlite_problem(db) is None
    raw = db.read_bytes()
    db.write_bytes(raw[: len(raw) // 2 // 4096 * 4096])
    assert "truncated" in sqlite_problem(db)
    db.write_bytes(raw[:5000])
    assert "truncated" in sqlite_problem(db)
    db.write_bytes(b"hello" * 100)
    assert "not a SQLite database" in sqlite_problem(db)
    db.write_bytes(b"")
    assert sqlite_problem(db) is None
    with pytest.raises(UserError, match="is a folder"):
        check_db_file(tmp_path, "--journal")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UserError, match="not writable"):
            check_dir(ro / "models", "--models")
    finally:
        ro.chmod(0o700)


def test_folders_that_are_files_are_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(UserError, match="--out .* is a file, not a folder"):
        check_dir(f, "--out")
    with pytest.raises(UserError, match="so the folder cannot be created"):
        check_dir(f / "sub" / "deeper", "--out")
    assert check_dir(tmp_path / "new" / "folder", "--out") == tmp_path / "new" / "folder"
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.parametrize(
    "value, kw, ok",
    [
        (1, {"low": 1, "integer": True}, True),
        (0, {"low": 1, "integer": True}, False),
        (2.5, {"integer": True}, False),
        (True, {}, False),
        ("3", {}, False),
        (float("inf"), {}, False),
        (0.1, {"high": 0.1, "high_open": True}, False),
        (None, {"optional": True}, True),
        (0.0, {"low": 0, "low_open": True}, False),
    ],
)
def test_check_number(value, kw, ok):
    if ok:
        check_number(value, "--x", **kw)
    else:
        with pytest.raises(UserError, match="--x must be"):
            check_number(value, "--x", **kw)


@pytest.mark.parametrize(
    "algo, hp, message",
    [
        ("dqn", {"n_epochs": 8}, "unknown DQN hyper-parameter 'n_epochs'"),
        ("ppo", {"clip_range": 0}, "clip_range must be > 0"),
        ("a2c", {"use_rms_prop": "yes"}, "must be true or false"),
        ("dqn", {"train_freq": [4, "hour"]}, "train_freq must be N or"),
        ("ppo", {"policy_kwargs": {}}, "set by the command"),
    ],
)
def test_hyperparams_are_checked_against_the_sb3_class(algo, hp, message):
    with pytest.raises(UserError, match=message):
        check_hyperparams(algo, hp)


def test_good_hyperparams_pass_unchanged():
    hp = {"learning_rate": 3e-4, "n_steps": 16, "gamma": 0.9, "target_kl": None, "normalize_advantage": False}
    assert check_hyperparams("ppo", hp) == hp
    assert check_hyperparams("qrdqn", {"train_freq": [4, "step"], "exploration_fraction": 0.2})


def test_an_empty_paper_account_left_by_an_older_version_is_set_up(tmp_path):
    from binance_spot_sim import binance_markets

    from cryptorl.live import PaperExchange
    from cryptorl.live.paper import account_exists

    path = tmp_path / "paper.sqlite"
    sqlite3.connect(path).close()
    assert not account_exists(path)
    with pytest.raises(ValueError, match="initial balance"):
        PaperExchange(tmp_path / "new.sqlite", binance_markets(), interval="1d", initial_balance={"USDT": -1})
    assert not (tmp_path / "new.sqlite").exists()
    paper = PaperExchange(path, binance_markets(), interval="1d", initial_balance={"USDT": 100.0})
    assert paper.fetch_balance()["total"]["USDT"] == 100.0 and account_exists(path)
    paper.close()
