"""Agent Updating Unit: promotion rule, retrain on a sliding window, history, scheduler, CLI."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.crypto_module import CMConfig, CryptoModule
from agents.training import policy_backtest
from agents.updating import (
    closed_bars,
    following,
    next_due,
    retrain,
    run_round,
    run_schedule,
    should_promote,
    window_split,
)
from cryptorl.data.demo import demo_data
from cryptorl.data.frames import to_utc_timestamp as utc
from cryptorl.modelstore import ModelStore
from experiments import update as cli

ASSET = "BTC"
DAY = pd.Timedelta("1D")


@pytest.fixture(scope="module")
def data():
    return demo_data(ASSET, "1d", "2020-06-01", "2022-09-30")


# -- the rule ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "new, current, margin, expected",
    [
        (2.0, 1.0, 0.0, True),  # better
        (1.0, 2.0, 0.0, False),  # worse
        (1.0, 1.0, 0.0, True),  # equal is "not worse"
        (1.5, 1.0, 0.5, True),  # exactly the required gain
        (1.5, 1.0, 0.6, False),  # not enough gain
        (0.9, 1.0, -0.2, True),  # a tolerated loss
        (float("nan"), 1.0, 0.0, False),  # no Sortino (always in cash) counts as -inf, as in training
        (-3.0, float("nan"), 0.0, True),
        (None, None, 0.0, True),  # neither has one: not worse
        (None, None, 0.1, False),
    ],
)
def test_promotion_rule_by_hand(new, current, margin, expected):
    assert should_promote(new, current, margin)[0] is expected


def test_promotion_rule_without_current_and_bad_margin():
    assert should_promote(-5.0, None, 10.0, has_current=False) == (True, "no current version")
    with pytest.raises(ValueError, match="min_improvement"):
        should_promote(1.0, 1.0, float("inf"))


@settings(max_examples=60, deadline=None)
@given(st.floats(-20, 20), st.floats(-20, 20), st.floats(-5, 5), st.floats(0, 5))
def test_promotion_rule_is_monotone_in_the_margin(new, current, margin, extra):
    """A module promoted with margin m is promoted with any smaller margin; kept with any larger one."""
    promoted = should_promote(new, current, margin)[0]
    assert promoted == (new >= current + margin)
    if promoted:
        assert should_promote(new, current, margin - extra)[0]
    else:
        assert not should_promote(new, current, margin + extra)[0]


def test_window_split_and_closed_bars(data):
    market, metrics = data
    now = utc("2022-06-01 13:00")  # mid-bar: the 2022-06-01 bar has not closed
    cut, cut_metrics = closed_bars(market, metrics, now, "1d")
    assert cut.index[-1] == utc("2022-05-31") and cut_metrics.index.max() < now
    split = window_split(now, cut.index[-1], pd.Timedelta("390D"), pd.Timedelta("60D"))
    assert split.validation == (now - pd.Timedelta("60D"), utc("2022-05-31"))
    assert split.train[1] < split.validation[0] and split.train[0] == now - pd.Timedelta("450D")


# -- retrain -------------------------------------------------------------------------------------
def _retrain(data, store, now, **kw):
    market, metrics = data
    cfg = CMConfig(asset=ASSET, timesteps=512, seed=0, ensemble=1)
    return retrain(ASSET, market, metrics, cfg, store, window="450d", now=now, validation="60d", eval_freq=500, **kw)


@pytest.mark.slow
def test_retrain_promotes_keeps_and_records(tmp_path, data):
    market, metrics = data
    store = ModelStore(tmp_path / "models")

    first = _retrain(data, store, "2022-06-01")
    assert first.promoted and first.previous is None and first.reason == "no current version"
    assert store.current(ASSET, "1d").name == first.version
    assert first.validation == (utc("2022-04-02"), utc("2022-05-31"))
    assert first.train == (utc("2021-03-08"), utc("2022-04-01 23:59:59"))
    assert first.data_end == utc("2022-05-31")  # nothing at or after `now`

    # Forced "worse": a margin no module can clear. The new version is saved, not promoted.
    kept = _retrain(data, store, "2022-06-08", min_improvement=1e9)
    assert not kept.promoted and kept.previous == first.version
    assert store.current(ASSET, "1d").name == first.version
    assert kept.validation == (utc("2022-04-09"), utc("2022-06-07"))
    # Both figures are measured on the SAME new validation range, recomputed here independently.
    v0, v1 = kept.validation
    cut, cut_metrics = closed_bars(market, metrics, utc("2022-06-08"), "1d")
    old = CryptoModule.load(store.family(ASSET, "1d") / first.version)
    new = CryptoModule.load(store.family(ASSET, "1d") / kept.version)
    assert kept.current_sortino == pytest.approx(
        policy_backtest(old, cut, cut_metrics, v0, v1).metrics()["Sortino"], abs=1e-12
    )
    assert kept.new_sortino == pytest.approx(
        policy_backtest(new, cut, cut_metrics, v0, v1).metrics()["Sortino"], abs=1e-12
    )
    assert kept.new_sortino == pytest.approx(new.validation["Sortino"], abs=1e-12)  # the training's own figure

    # Forced "better": any loss is tolerated, so the new one replaces the current one.
    better = _retrain(data, store, "2022-06-08", min_improvement=-1e9)
    assert better.promoted and better.previous == first.version
    assert store.current(ASSET, "1d").name == better.version
    assert math.isfinite(better.current_sortino) and better.current_sortino == pytest.approx(kept.current_sortino)

    # Every version stays on disk; the history holds each decision with both figures and the ranges.
    assert [p.name for p in store.versions(ASSET, "1d")] == [first.version, kept.version, better.version]
    decisions = [e for e in store.history(ASSET, "1d") if e["event"] == "retrain"]
    assert [e["decision"] for e in decisions] == ["promoted", "kept", "promoted"]
    entry = decisions[1]
    assert entry["version"] == kept.version and entry["previous"] == first.version
    assert entry["new_sortino"] == pytest.approx(kept.new_sortino)
    assert entry["current_sortino"] == pytest.approx(kept.current_sortino)
    assert entry["validation"] == ["2022-04-09 00:00:00+00:00", "2022-06-07 00:00:00+00:00"]
    assert entry["min_improvement"] == 1e9 and "worse than current" in entry["reason"]
    promotions = [e["version"] for e in store.history(ASSET, "1d") if e["event"] == "promoted"]
    assert promotions == [first.version, better.version]


def test_retrain_refuses_stale_data_and_bad_windows(tmp_path, data):
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ValueError, match="stale data"):
        _retrain(data, store, "2022-12-01")  # the data end on 2022-09-30
    with pytest.raises(ValueError, match="shorter than the whole window"):
        retrain(ASSET, *data, CMConfig(asset=ASSET), store, window="60d", now="2022-06-01", validation="60d")
    with pytest.raises(ValueError, match="duration"):
        retrain(ASSET, *data, CMConfig(asset=ASSET), store, window="soon", now="2022-06-01", validation="60d")
    assert store.versions(ASSET, "1d") == []  # nothing half-written


@pytest.mark.slow
def test_unusable_current_version_is_replaced(tmp_path, data):
    """A current version that fails verification cannot be compared: the new one is promoted, and says why."""
    store = ModelStore(tmp_path / "models")
    market, metrics = data
    first = retrain(
        ASSET,
        market,
        metrics,
        CMConfig(asset=ASSET, timesteps=256, ensemble=1),
        store,
        window="450d",
        now="2022-06-01",
        validation="60d",
        eval_freq=256,
    )
    (store.family(ASSET, "1d") / first.version / "sam.zip").write_bytes(b"tampered")
    second = retrain(
        ASSET,
        market,
        metrics,
        CMConfig(asset=ASSET, timesteps=256, ensemble=1),
        store,
        window="450d",
        now="2022-06-08",
        validation="60d",
        min_improvement=1e9,
        eval_freq=256,
    )
    assert second.promoted and second.current_sortino is None
    assert "cannot be evaluated" in second.reason and "sha256" in second.reason


# -- the scheduler -------------------------------------------------------------------------------
class FakeClock:
    def __init__(self, start: str):
        self.now = utc(start)
        self.slept = 0.0

    def __call__(self) -> pd.Timestamp:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept += seconds
        self.now += pd.Timedelta(seconds=seconds)


def test_following_skips_missed_runs():
    due = utc("2022-06-01")
    assert following(due, due, 7 * DAY) == utc("2022-06-08")
    assert following(due, utc("2022-06-03"), 7 * DAY) == utc("2022-06-08")
    assert following(due, utc("2022-06-20"), 7 * DAY) == utc("2022-06-22")  # 06-08 and 06-15 were missed
    assert following(due, utc("2022-06-08"), 7 * DAY) == utc("2022-06-15")


def test_scheduler_runs_at_due_times_only_and_resumes_after_restart(tmp_path):
    store = ModelStore(tmp_path / "models")
    clock = FakeClock("2022-06-01 10:00")
    calls: list[tuple[str, pd.Timestamp]] = []

    def job(asset, now):
        calls.append((asset, now))
        clock.now += pd.Timedelta(minutes=20)  # retraining takes time; the cadence must not drift
        return "ok"

    rounds = run_schedule(store, ["BTC", "ETH"], "1d", "7d", job, clock=clock, sleep=clock.sleep, max_rounds=3)
    assert rounds == 3
    t0 = utc("2022-06-01 10:00")
    expected = [t0, t0 + 7 * DAY, t0 + 14 * DAY]
    assert calls == [(a, t) for t in expected for a in ("BTC", "ETH")]
    assert next_due(store, "BTC", "1d") == t0 + 21 * DAY

    # Restart a day later: nothing runs until the due time recorded in the store.
    clock.now = t0 + 15 * DAY
    calls.clear()
    run_schedule(store, ["BTC", "ETH"], "1d", "7d", job, clock=clock, sleep=clock.sleep, max_rounds=1)
    assert calls == [("BTC", t0 + 21 * DAY), ("ETH", t0 + 21 * DAY)]

    # A new asset joins: it is due at once, the others keep their cadence.
    clock.now = t0 + 22 * DAY
    calls.clear()
    run_schedule(store, ["BTC", "ETH", "LINK"], "1d", "7d", job, clock=clock, sleep=clock.sleep, max_rounds=2)
    assert calls == [("LINK", t0 + 22 * DAY), ("BTC", t0 + 28 * DAY), ("ETH", t0 + 28 * DAY)]


def test_scheduler_records_a_failed_job_and_goes_on(tmp_path):
    store = ModelStore(tmp_path / "models")
    errors = []

    def job(asset, now):
        if asset == "BAD":
            raise ValueError("[BAD] no data")
        return "ok"

    out = run_round(
        store, ["BAD", "BTC"], "1d", 7 * DAY, job, utc("2022-06-01"), on_error=lambda a, e: errors.append((a, str(e)))
    )
    assert out["BTC"] == "ok" and errors == [("BAD", "[BAD] no data")]
    last = store.history("BAD", "1d")[-1]
    assert last["ok"] is False and last["error"] == "[BAD] no data" and last["next_due"] == "2022-06-08 00:00:00+00:00"


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_now_end_to_end(tmp_path, capsys, ray_local):  # both assets trained at once on Ray
    models = tmp_path / "models"
    argv = [
        "--assets",
        "BTC,ETH",
        "--now",
        "--at",
        "2022-06-01",
        "--timesteps",
        "256",
        "--ensemble",
        "1",
        "--eval-freq",
        "256",
        "--models",
        str(models),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    store = ModelStore(models)
    for asset in ("BTC", "ETH"):
        assert f"{asset} 1d: promoted v0001" in out
        assert store.current(asset, "1d") is not None
        events = [e["event"] for e in store.history(asset, "1d")]
        assert events == ["saved", "promoted", "retrain", "schedule"]
        assert next_due(store, asset, "1d") == utc("2022-06-08")
        module = CryptoModule.load(store.current(asset, "1d"))
        assert module.config.timesteps == 256 and module.train_end == utc("2022-05-31")


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    base = ["--models", str(tmp_path / "m")]
    for argv, message in [
        (["--assets", "BTC", "--at", "2022-06-01"], "--at only works with --now"),
        (["--assets", "BTC", "--now", "--window", "60d"], "must be shorter than --window"),
        (["--assets", "BTC", "--now", "--every", "weekly"], "--every: cannot read"),
        (["--assets", ",", "--now"], "--assets needs at least one ticker"),
    ]:
        assert cli.main([*argv, *base]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_scheduler_with_a_fake_clock_resumes_after_restart(tmp_path, capsys):
    models = tmp_path / "models"
    argv = [
        "--assets",
        "BTC",
        "--every",
        "7d",
        "--timesteps",
        "256",
        "--ensemble",
        "1",
        "--eval-freq",
        "256",
        "--models",
        str(models),
        "--no-progress",
        "--workers",
        "1",
    ]
    clock = FakeClock("2022-06-01")
    assert cli.main([*argv, "--max-runs", "2"], clock=clock, sleep=clock.sleep) == 0
    store = ModelStore(models)
    runs = [e["now"] for e in store.history(ASSET, "1d") if e["event"] == "retrain"]
    assert runs == ["2022-06-01 00:00:00+00:00", "2022-06-08 00:00:00+00:00"]
    assert "next retrain due 2022-06-15 00:00" in capsys.readouterr().out

    clock.now = utc("2022-06-10")  # restarted two days later: waits for 06-15, does not retrain early
    assert cli.main([*argv, "--max-runs", "1"], clock=clock, sleep=clock.sleep) == 0
    runs = [e["now"] for e in store.history(ASSET, "1d") if e["event"] == "retrain"]
    assert runs[-1] == "2022-06-15 00:00:00+00:00" and len(runs) == 3
    assert len(store.versions(ASSET, "1d")) == 3
