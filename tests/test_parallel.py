"""The execution layer: in-process and Ray paths give the same outcomes, failures are reported."""

from __future__ import annotations

import os
import time
import zipfile
from dataclasses import replace

import pandas as pd
import pytest
import torch

from agents.crypto_module import CMConfig
from agents.jobs import PackedModule, TrainJob, train_job, train_many
from agents.training import paper_split, train_crypto_module
from cryptorl.data import load_data
from cryptorl.modelstore import ModelStoreError
from cryptorl.parallel import TaskOutcome, raise_failures, run_tasks


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item\n{x}")
    time.sleep(0.05 * (5 - x))  # later items finish first on Ray: the order must still be the items'
    return x * x


def die_on_two(x: int) -> int:
    if x == 2:
        os._exit(1)  # the worker process dies without raising
    return x


def torch_threads(_: object) -> int:
    return torch.get_num_threads()


def test_in_process_outcomes_in_order_and_failures_reported():
    out = run_tasks(square_or_fail, [0, 1, 2, 3, 4], labels=list("abcde"), workers=1, progress=False)
    assert [o.label for o in out] == list("abcde")
    assert [o.value for o in out] == [0, 1, 4, None, 16]
    assert [o.ok for o in out] == [True, True, True, False, True]
    assert out[3].error == "ValueError: bad item 3"  # one line
    with pytest.raises(ValueError, match=r"1 of 5 task\(s\) failed: d: ValueError: bad item 3"):
        raise_failures(out)
    raise_failures(out[:3])  # nothing failed: no error


def test_arguments_checked():
    assert run_tasks(square_or_fail, [], workers=1) == []
    with pytest.raises(ValueError, match="2 items but 1 labels"):
        run_tasks(square_or_fail, [1, 2], labels=["x"], workers=1)
    with pytest.raises(ValueError, match="workers"):
        run_tasks(square_or_fail, [1], workers=0)
    assert TaskOutcome("x", None, "boom").ok is False and TaskOutcome("x", 0, None).ok


def test_in_process_runs_torch_on_one_thread_and_restores_it():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert run_tasks(torch_threads, [None], workers=1, progress=False)[0].value == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_ray_outcomes_equal_the_in_process_ones(ray_local):
    items = [0, 1, 2, 3, 4]
    on_ray = run_tasks(square_or_fail, items, progress=False)
    assert on_ray == run_tasks(square_or_fail, items, workers=1, progress=False)
    assert on_ray[1].label == "tasks 2"
    assert run_tasks(torch_threads, [None, None], progress=False)[0].value == 1


def test_on_done_sees_each_outcome_in_the_caller(ray_local):
    for workers in (1, None):
        seen: list[tuple[int, int | None, int]] = []
        out = run_tasks(
            square_or_fail,
            [0, 1, 2, 3, 4],
            workers=workers,
            progress=False,
            on_done=lambda i, o, seen=seen: seen.append((i, o.value, os.getpid())),
        )
        assert sorted(seen) == [(i, o.value, os.getpid()) for i, o in enumerate(out)]


def test_ray_worker_that_dies_is_reported_and_the_others_finish(ray_local):
    out = run_tasks(die_on_two, [1, 2, 3], labels=["BTC seed 1", "ETH seed 2", "LINK seed 3"], progress=False)
    assert [o.value for o in out] == [1, None, 3]
    assert not out[1].ok and out[1].label == "ETH seed 2"
    assert "\n" not in out[1].error and "Error" in out[1].error


# -- Crypto Module training --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    market, metrics = load_data("BTC", "1d", "2021-01-01", "2022-09-30", source="demo")
    split = paper_split(market.index)
    config = CMConfig(asset="BTC", timesteps=384, n_envs=8, episode_length=32, window=10, ensemble=1)
    return market, metrics, config, split


def _params(module) -> dict[str, torch.Tensor]:
    return module.sam.policy.state_dict()


def _same(a, b) -> bool:
    pa, pb = _params(a), _params(b)
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def test_packed_module_round_trip_and_tampering(tiny):
    market, metrics, config, split = tiny
    module, _ = train_crypto_module(market, metrics, config, split, eval_freq=128)
    packed = PackedModule.pack(module)
    again = packed.module()
    assert _same(module, again) and again.folder is None
    assert again.decide_range(market, metrics).equals(module.decide_range(market, metrics))
    assert pd.Series(again.validation).sort_index().equals(pd.Series(module.validation).sort_index())
    assert again.ranges == {k: tuple(v) for k, v in split.as_dict().items()}
    data = bytearray(packed.data)
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside a compressed file
    with pytest.raises((ModelStoreError, zipfile.BadZipFile)):
        PackedModule(bytes(data)).module()


@pytest.mark.slow
def test_parallel_training_equals_sequential_for_the_same_seeds(tiny, ray_local):
    market, metrics, config, split = tiny
    jobs = [TrainJob(market, metrics, replace(config, seed=s), split, eval_freq=128) for s in (0, 1)]
    direct = [train_crypto_module(market, metrics, j.config, split, eval_freq=128)[0] for j in jobs]
    sequential = train_many(jobs, workers=1, progress=False)
    parallel = train_many(jobs, progress=False)
    assert [o.label for o in parallel] == ["BTC seed 0", "BTC seed 1"]
    assert all(o.ok for o in sequential + parallel)
    for d, s, p in zip(direct, sequential, parallel, strict=True):
        seq, par = s.value.module(), p.value.module()
        assert _same(d, seq) and _same(seq, par)
        assert s.value.history == p.value.history
        assert seq.decide_range(market, metrics).equals(par.decide_range(market, metrics))
    assert not _same(direct[0], direct[1])  # the seeds matter: the comparison can fail


def test_a_failing_training_job_is_reported_with_its_asset_and_seed(tiny):
    market, metrics, config, split = tiny
    bad = TrainJob(market.iloc[:20], metrics, replace(config, asset="ETH", seed=7), split)
    out = train_many([bad], workers=1, progress=False)
    assert out[0].label == "ETH seed 7" and not out[0].ok and out[0].error
    assert train_job  # the top-level function Ray ships


# -- retraining several assets -----------------------------------------------------------------
@pytest.mark.slow
def test_retrain_all_equals_retrain_and_reports_a_failed_asset(tmp_path):
    from agents.updating import retrain, retrain_all
    from cryptorl.data.demo import demo_data
    from cryptorl.modelstore import ModelStore

    config = CMConfig(timesteps=256, n_envs=8, episode_length=32, ensemble=1)
    data = {a: demo_data(a, "1d", "2020-06-01", "2022-09-30") for a in ("BTC", "ETH")}

    def load(asset, now):
        if asset == "DOGE":
            raise ValueError("no data for DOGE")
        return (*data[asset], replace(config, asset=asset))

    kw = {"window": "300d", "validation": "45d", "now": "2022-06-01", "eval_freq": 128}
    store = ModelStore(tmp_path / "batch")
    out = retrain_all(["BTC", "DOGE", "ETH"], load, store, workers=1, progress=False, **kw)
    assert list(out) == ["BTC", "DOGE", "ETH"]
    assert isinstance(out["DOGE"], ValueError) and "DOGE" in str(out["DOGE"])
    alone = ModelStore(tmp_path / "alone")
    for asset in ("BTC", "ETH"):
        ref = retrain(asset, *data[asset], replace(config, asset=asset), alone, **kw)
        got = out[asset]
        assert got.promoted and len(store.versions(asset, "1d")) == 1  # saved once, by the caller
        assert got.new_sortino == ref.new_sortino and got.validation == ref.validation
        a = current_module(store, asset)
        b = current_module(alone, asset)
        assert _same(a, b)
    assert not ModelStore(tmp_path / "batch").family("DOGE", "1d").exists()


def current_module(store, asset):
    from agents.crypto_module import CryptoModule

    return CryptoModule.load(store.current(asset, "1d"))


def test_commands_refuse_zero_workers(tmp_path, capsys):
    from experiments import update, walk_forward

    assert walk_forward.main(["--assets", "BTC", "--source", "demo", "--workers", "0", "--out", str(tmp_path)]) == 2
    assert "--workers must be positive" in capsys.readouterr().err
    assert update.main(["--assets", "BTC", "--now", "--workers", "0", "--models", str(tmp_path)]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_starting_ray_does_not_print_its_token_notice(ray_local):
    import logging

    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    assert not notice.isEnabledFor(logging.WARNING)  # "Token authentication is enabled ..." at every start
