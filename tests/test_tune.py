"""Hyper-parameter search: validation data only, a usable config, resuming from the storage."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from agents.config import DEFAULT_FEATURES
from agents.crypto_module import CMConfig
from agents.evaluation import load_markets, load_protocol
from agents.training import Split, paper_split, policy_backtest, train_crypto_module
from agents.tuning import (
    TrialTask,
    TuneSpec,
    best_config,
    finished_trials,
    make_pruner,
    open_study,
    run_trial,
    stitched_sortino,
    suggest_hyperparams,
    suggest_module,
    tune,
    validation_data,
)
from cryptorl.data import load_data
from experiments import train_cm
from experiments import tune as cli

TINY = {"timesteps": 256, "n_envs": 8, "episode_length": 32, "window": 10, "ensemble": 1}
DEMO = ("2021-01-01", "2022-09-30")
PPO_PARAMS = {
    "learning_rate": 1e-3,
    "gamma": 0.9,
    "gae_lambda": 0.9,
    "n_epochs": 2,
    "clip_range": 0.2,
    "ent_coef": 1e-4,
}


def _scrambled_after(market, end, rng):
    """``market`` with every price after ``end`` multiplied by a random factor in [0.5, 1.5)."""
    changed = market.copy()
    later = changed.index > end
    for col in ("open", "high", "low", "close"):
        changed.loc[later, col] = changed.loc[later, col].to_numpy() * rng.uniform(0.5, 1.5, later.sum())
    return changed


@pytest.fixture(scope="module")
def btc():
    market, metrics = load_data("BTC", "1d", *DEMO, source="demo")
    return market, metrics, paper_split(market.index)


def _spec(btc, **kw) -> TuneSpec:
    market, metrics, split = btc
    return TuneSpec(
        {"BTC": validation_data(market, metrics, split)}, CMConfig(asset="BTC", algo="ppo", **TINY), (0,), 128, **kw
    )


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "qrdqn"])
def test_search_space_builds_a_module_config(algo):
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    hp = suggest_hyperparams(study.ask(), algo)
    assert 1e-4 <= hp["learning_rate"] <= 3e-3 and 0.3 <= hp["gamma"] <= 0.99
    CMConfig(algo=algo, hyperparams=hp).algo_kwargs()  # accepted by the module's config


def test_validation_data_ends_with_the_validation_range(btc):
    market, metrics, split = btc
    d = validation_data(market, metrics, split)
    assert d.market.index[-1] == split.validation[1].floor("D") and d.metrics.index[-1] <= split.validation[1]
    assert d.split.backtest is None and len(d.market) < len(market)


def _trial_value(storage, spec, params):
    study = open_study("leak", storage, pruner="none")
    study.enqueue_trial(params)
    trial = study.ask()
    hp = suggest_hyperparams(trial, "ppo")
    return run_trial(TrialTask(storage, "leak", trial._trial_id, trial.number, hp, spec, "none"))


@pytest.mark.slow
def test_the_backtest_range_does_not_move_the_objective(tmp_path, btc):
    market, metrics, split = btc
    changed = _scrambled_after(market, split.validation[1], np.random.default_rng(0))
    changed_metrics = metrics.copy()
    changed_metrics.loc[changed_metrics.index > split.validation[1]] = 123.0
    a = _trial_value(f"sqlite:///{tmp_path / 'a.db'}", _spec(btc), PPO_PARAMS)
    spec_b = TuneSpec(
        {"BTC": validation_data(changed, changed_metrics, split)}, CMConfig(asset="BTC", algo="ppo", **TINY), (0,), 128
    )
    b = _trial_value(f"sqlite:///{tmp_path / 'b.db'}", spec_b, PPO_PARAMS)
    assert a.value == b.value and a.runs == b.runs and math.isfinite(a.value)


@pytest.mark.slow
def test_study_resumes_from_its_storage_after_an_interrupt(tmp_path, btc):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    spec = _spec(btc)
    study = tune(spec, open_study("s", storage, pruner="none"), storage, 2, pruner="none", workers=1, progress=False)
    first = [(t.number, t.params, t.value) for t in finished_trials(study)]
    assert len(first) == 2
    # killed in the middle of a trial: asked, never told (RUNNING in the storage)
    open_study("s", storage).ask()
    resumed = open_study("s", storage, pruner="none")
    tune(spec, resumed, storage, 4, pruner="none", workers=1, progress=False)
    done = finished_trials(open_study("s", storage))
    assert len(done) == 4 and [(t.number, t.params, t.value) for t in done][:2] == first
    assert len({tuple(sorted(t.params.items())) for t in done}) == 4  # the sampler went on, no repeats
    for t in done:  # every validation was reported to the pruner: at 128 and 256 steps (+ the final one)
        assert sorted(t.intermediate_values) == [128, 256] and t.user_attrs["runs"]["BTC seed 0"] == t.value


@pytest.mark.slow
def test_cli_four_tiny_trials_on_ray_write_a_config_train_cm_takes(tmp_path, capsys, ray_local):
    out = tmp_path / "tune"
    argv = [
        "--asset",
        "BTC",
        "--source",
        "demo",
        "--trials",
        "4",
        "--algo",
        "ppo",
        "--timesteps",
        "256",
        "--eval-freq",
        "128",
        "--n-envs",
        "8",
        "--episode-length",
        "32",
        "--window",
        "10",
        "--start",
        DEMO[0],
        "--out",
        str(out),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "backtest from" in printed and "Best trial" in printed
    for name in ("best.yml", "trials.csv", "optimization_history.png", "param_importances.png", "study.db"):
        assert (out / name).is_file(), name
    config = yaml.safe_load((out / "best.yml").read_text())
    study = optuna.load_study(study_name="tune_BTC_1d_ppo", storage=f"sqlite:///{out / 'study.db'}")
    assert len(finished_trials(study)) == 4
    assert config["hyperparams"]["learning_rate"] == pytest.approx(study.best_params["learning_rate"])
    assert config == best_config(study, _spec_from(config))
    # the config trains a module as it is
    assert (
        train_cm.main(
            [
                "--asset",
                "BTC",
                "--source",
                "demo",
                "--config",
                str(out / "best.yml"),
                "--ensemble",
                "1",
                "--start",
                DEMO[0],
                "--no-save",
                "--tensorboard-log",
                "",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "validation (the weights kept)" in capsys.readouterr().out


def _spec_from(config) -> TuneSpec:
    base = CMConfig(**{k: v for k, v in config.items() if k not in ("eval_freq", "hyperparams")})
    return TuneSpec({"BTC": None}, base, (0,), config["eval_freq"])


def test_cli_user_errors(tmp_path, capsys):
    for argv, message in [
        (["--asset", "BTC", "--trials", "0"], "--trials must be at least 1"),
        (["--assets", "BTC,BTC"], "twice"),
        (["--asset", "BTC", "--interval", "7x"], ""),
        (["--asset", "BTC", "--storage", "nosuchdb://x", "--timesteps", "8"], "cannot open the Optuna storage"),
    ]:
        assert cli.main([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "tune: error: " in err and message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "best.yml").exists()


def test_best_config_of_a_portfolio_wide_study_has_no_asset_and_fits_cmconfig():
    study = optuna.create_study(direction="maximize")
    for value, lr in ((1.0, 1e-3), (2.0, 2e-4)):
        study.enqueue_trial(
            {
                "learning_rate": lr,
                "gamma": 0.5,
                "exploration_fraction": 0.2,
                "target_update_interval": 250,
                "batch_size": 64,
            }
        )
        trial = study.ask()
        suggest_hyperparams(trial, "dqn")
        study.tell(trial, value)
    base = CMConfig(algo="dqn", hyperparams={"buffer_size": 1000}, **TINY)
    config = best_config(study, TuneSpec({"BTC": None, "ETH": None}, base, (0, 1), 64))
    assert "asset" not in config and config["algo"] == "dqn" and config["eval_freq"] == 64
    assert config["hyperparams"] == {
        "buffer_size": 1000,
        "learning_rate": 2e-4,
        "gamma": 0.5,
        "exploration_fraction": 0.2,
        "target_update_interval": 250,
        "batch_size": 64,
    }
    CMConfig(asset="ETH", **{k: v for k, v in config.items() if k != "eval_freq"})
    assert yaml.safe_load(yaml.safe_dump(config)) == config


class _Interrupting(TuneSpec):
    """A spec whose first training is interrupted (Ctrl-C) before it starts."""

    def runs(self):
        raise KeyboardInterrupt


@pytest.mark.slow
def test_ctrl_c_marks_the_trials_in_flight_failed_and_the_rerun_finishes(tmp_path, btc):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    spec = _spec(btc)
    stopped = _Interrupting(spec.data, spec.base, spec.seeds, spec.eval_freq)
    with pytest.raises(KeyboardInterrupt):
        tune(stopped, open_study("s", storage, pruner="none"), storage, 2, pruner="none", workers=1, progress=False)
    states = [t.state for t in open_study("s", storage).trials]
    assert states == [optuna.trial.TrialState.FAIL]  # nothing left RUNNING
    study = tune(spec, open_study("s", storage, pruner="none"), storage, 2, pruner="none", workers=1, progress=False)
    assert len(finished_trials(study)) == 2 and len(study.trials) == 3


# -- walk-forward folds ----------------------------------------------------------------------------
DEMO_WF = Path("experiments/protocols/demo_walk_forward.yml")


@pytest.fixture(scope="module")
def demo_folds():
    protocol = load_protocol(DEMO_WF)
    folds = tuple(Split(w.train, w.validation) for w in protocol.windows)
    return protocol, load_markets(protocol, progress=False), folds


def _fold_spec(protocol, data, folds) -> TuneSpec:
    cut = {a: validation_data(market, metrics, folds[-1]) for a, (market, metrics) in data.items()}
    return TuneSpec(cut, protocol.cm_config("trend", "BTC", 0), (0,), protocol.eval_freq, folds)


@pytest.mark.slow
def test_folds_objective_is_the_mean_validation_sortino_of_every_window_and_ignores_later_bars(tmp_path, demo_folds):
    protocol, data, folds = demo_folds
    result = _trial_value(f"sqlite:///{tmp_path / 'a.db'}", _fold_spec(protocol, data, folds), PPO_PARAMS)
    # by hand: one module per (window, asset) on its own window's data, backtested on the window's
    # validation range; each coin's validation returns chained over the windows
    chained, per_fold = {asset: [] for asset in data}, {}
    for fold in folds:
        for asset, (market, metrics) in data.items():
            config = replace(protocol.cm_config("trend", asset, 0), hyperparams=PPO_PARAMS)
            d = validation_data(market, metrics, fold)
            module, _ = train_crypto_module(d.market, d.metrics, config, d.split, eval_freq=protocol.eval_freq)
            chained[asset].append(policy_backtest(module, d.market, d.metrics, *fold.validation).returns)
            per_fold[f"{asset} seed 0 validation {fold.validation[0]:%Y-%m-%d}"] = stitched_sortino(
                chained[asset][-1:], "1d"
            )
    by_coin = [stitched_sortino(r, "1d") for r in chained.values()]
    assert len(result.runs) == len(folds) * 2 and all(s != 0 for s in by_coin)
    assert result.runs == pytest.approx(per_fold)  # each module's Sortino on its own window
    assert result.value == pytest.approx(sum(by_coin) / 2)
    r = pd.concat(chained["BTC"]).to_numpy()  # the chained ratio by hand: mean over downside deviation
    assert by_coin[0] == pytest.approx(r.mean() / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(365))
    study = optuna.load_study(study_name="leak", storage=f"sqlite:///{tmp_path / 'a.db'}")
    assert sorted(study.trials[0].intermediate_values) == list(range(len(folds)))  # one report per window

    # the bars after the last validation range (the last window's backtest) never reach a trial
    end = folds[-1].validation[1]
    rng = np.random.default_rng(0)
    changed = {asset: (_scrambled_after(market, end, rng), metrics) for asset, (market, metrics) in data.items()}
    again = _trial_value(f"sqlite:///{tmp_path / 'b.db'}", _fold_spec(protocol, changed, folds), PPO_PARAMS)
    assert again.value == result.value and again.runs == result.runs


@pytest.mark.slow
def test_cli_tunes_on_the_protocol_windows_until_a_date(tmp_path, capsys):
    out = tmp_path / "tune"
    argv = [
        "--protocol",
        str(DEMO_WF),
        "--config",
        "trend",
        "--until",
        "2021-10-31",
        "--trials",
        "2",
        "--space",
        "module",
    ]
    assert cli.main([*argv, "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    protocol = load_protocol(DEMO_WF)
    kept = [w for w in protocol.windows if w.validation[1] <= pd.Timestamp("2021-10-31 23:59:59", tz="UTC")]
    assert 0 < len(kept) < len(protocol.windows)
    assert f"{len(kept)} window(s)" in printed and "stay out of sample" in printed and "trials_before" in printed
    name = "tune_demo_walk_forward_BTC-ETH_1d_ppo_module"
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    for t in finished_trials(study):
        assert len(t.user_attrs["runs"]) == len(kept) * 2  # (window, asset), one seed
    completed = [t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    folds = pd.read_csv(out / "fold_scores.csv", index_col=0)
    assert folds.shape == (len(kept), len(completed)) and folds.index.is_monotonic_increasing
    assert (out / "trials_by_window.png").stat().st_size > 0
    assert ("PBO of the search" in printed) == (len(completed) >= 2)
    config = yaml.safe_load((out / "best.yml").read_text())
    # the protocol's recipe travels with the tuned hyper-parameters and the module's tuned fields
    best, trained = study.best_params, CMConfig(**{k: v for k, v in config.items() if k != "eval_freq"})
    assert trained.prior == best["prior"] and trained.window == best["window"]
    assert trained.features == ([] if best["features"] == "none" else list(DEFAULT_FEATURES))
    assert trained.observe_position is False and trained.ensemble == 1
    assert config["ensemble"] == 1 and config["algo"] == "ppo" and config["eval_freq"] == protocol.eval_freq
    assert config["hyperparams"]["learning_rate"] == pytest.approx(study.best_params["learning_rate"])
    # the recipe as a protocol configuration: the protocol takes it and trains what best.yml trains
    raw = yaml.safe_load(DEMO_WF.read_text())
    raw["configs"] = yaml.safe_load((out / "protocol_config.yml").read_text())
    (tmp_path / "p.yml").write_text(yaml.safe_dump(raw))
    assert load_protocol(tmp_path / "p.yml").cm_config("tuned", "BTC", 0) == replace(trained, asset="BTC", seed=0)
    assert (
        train_cm.main(
            ["--asset", "BTC", "--source", "demo", "--config", str(out / "best.yml"), "--start", DEMO[0]]
            + ["--no-save", "--tensorboard-log", "", "--no-progress"]
        )
        == 0
    )


def test_the_median_pruner_waits_for_the_first_window(demo_folds):
    protocol, data, folds = demo_folds
    spec = _fold_spec(protocol, data, folds)
    assert spec.warmup == 1 and replace(spec, folds=()).warmup == 0  # four windows
    assert replace(spec, folds=folds * 4).warmup == 5
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", warmup=spec.warmup))
    for _ in range(4):  # four finished trials that scored 2.0 on every report
        t = study.ask()
        for step in range(4):
            t.report(2.0, step)
        study.tell(t, 2.0)
    t = study.ask()
    t.report(-1.0, 0)  # the first window alone: too early to judge
    assert not t.should_prune()
    t.report(-1.0, 1)  # the first two windows
    assert t.should_prune()


def test_cli_protocol_user_errors(tmp_path, capsys):
    for argv, message in [
        ([], "--asset, --assets or --protocol"),
        (["--asset", "BTC", "--until", "2021-12-31"], "add --protocol"),
        (["--protocol", str(DEMO_WF), "--asset", "BTC"], "--assets names a subset"),
        (["--protocol", str(DEMO_WF), "--source", "demo"], "the protocol names the data"),
        (["--protocol", str(DEMO_WF), "--until", "2020-01-01"], "no window"),
        (["--protocol", str(DEMO_WF), "--config", "nope"], "not one of the protocol's configurations"),
        (["--protocol", str(DEMO_WF), "--seeds", "3"], "the protocol has 2 seed(s)"),
        (["--protocol", str(DEMO_WF), "--until", "soon"], "not a date"),
        (["--protocol", str(DEMO_WF), "--config", "trend", "--assets", "SOL"], "not in the protocol"),
    ]:
        assert cli.main([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "tune: error: " in err and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_best_config_of_the_module_space_carries_the_module_fields_but_not_the_single_member():
    study = optuna.create_study(direction="maximize")
    params = {**PPO_PARAMS, "features": "none", "prior": "sma20", "window": 10}
    study.enqueue_trial(params)
    trial = study.ask()
    suggest_hyperparams(trial, "ppo")
    suggest_module(trial)
    study.tell(trial, 1.0)
    base = CMConfig(algo="ppo", **TINY)  # one member per trial, as the command tunes them
    config = best_config(study, TuneSpec({"BTC": None}, base, (0,), 64, space="module"))
    assert (config["prior"], config["window"], config["features"]) == ("sma20", 10, [])
    assert "ensemble" not in config  # train_cm --config trains the default ensemble
    assert yaml.safe_load(yaml.safe_dump(config)) == config


def test_fold_scores_and_the_search_pbo_by_hand():
    from agents.tuning import fold_scores, search_pbo

    study = optuna.create_study(direction="maximize")
    folds = ("2021-01-01", "2021-04-01")

    def add(value, scores, state=optuna.trial.TrialState.COMPLETE):
        runs = {f"{a} seed 0 validation {f}": x for f, pair in zip(folds, scores) for a, x in zip("AB", pair)}
        study.add_trial(optuna.trial.create_trial(value=value, state=state, user_attrs={"runs": runs}))

    add(1.0, [(3.0, 1.0), (0.0, 0.0)])  # trial 0: best on the first window (mean 2), worst on the second
    add(0.5, [(1.0, 1.0), (1.0, 2.0)])  # trial 1: the other way round (1 and 1.5)
    table = fold_scores(study)
    assert table.index.tolist() == list(folds) and table.columns.tolist() == [0, 1]
    assert table.to_numpy().tolist() == [[2.0, 1.0], [0.0, 1.5]]
    # CSCV with two blocks: the trial best on either window is the worse one on the other: PBO 1
    assert search_pbo(table) == 1.0
    add(0.9, [(5.0, 5.0), (4.0, 4.0)])  # trial 2 best on both windows: never overfit
    add(None, [(9.0, 9.0), (9.0, 9.0)], state=optuna.trial.TrialState.FAIL)  # not completed: left out
    assert fold_scores(study).columns.tolist() == [0, 1, 2] and search_pbo(fold_scores(study)) == 0.0
    assert search_pbo(table[[0]]) is None and search_pbo(table.iloc[:1]) is None
