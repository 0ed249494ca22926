"""Crypto Module training as picklable jobs for :func:`cryptorl.parallel.run_tasks`.

A job is a small frozen dataclass (the data, the recipe, the ranges); a top-level function runs
it and returns the trained module **packed**: the files of a saved version (SB3 zips, DRU state,
manifest with sha256) in one zip in memory. Packing ships a module from a worker on any machine
back to the caller with nothing but bytes, and unpacking goes through
:meth:`agents.crypto_module.CryptoModule.load`, which verifies every file and runs no pickled
code. Only the caller writes to the model store, once per module, after the task has finished.

    from cryptorl.parallel import run_tasks
    jobs = [TrainJob(market, metrics, replace(config, seed=s), split) for s in range(5)]
    outcomes = run_tasks(train_job, jobs, labels=[job.label for job in jobs])
    modules = [o.value.module() for o in outcomes if o.ok]
"""

from __future__ import annotations

import gc
import io
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cryptorl.modelstore import ModelStore
from cryptorl.parallel import TaskOutcome, run_tasks

from .crypto_module import CMConfig, CryptoModule
from .training import Split, train_crypto_module


@dataclass(frozen=True)
class PackedModule:
    """A trained module as bytes (a zip of its saved version folder)."""

    data: bytes

    @classmethod
    def pack(cls, module: CryptoModule) -> PackedModule:
        with tempfile.TemporaryDirectory(prefix="cryptorl-pack-") as tmp:
            folder = module.save(ModelStore(tmp), promote=False)
            module.folder = None
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        zf.write(path, path.relative_to(folder).as_posix())
        return cls(buffer.getvalue())

    def module(self) -> CryptoModule:
        """The module, verified file by file while loading (it lives in memory only)."""
        with tempfile.TemporaryDirectory(prefix="cryptorl-unpack-") as tmp:
            with zipfile.ZipFile(io.BytesIO(self.data)) as zf:
                zf.extractall(tmp)
            module = CryptoModule.load(Path(tmp))
        module.folder = None
        return module


@dataclass(frozen=True)
class TrainJob:
    """``train_crypto_module(market, metrics, config, split)`` as a task."""

    market: pd.DataFrame
    metrics: pd.DataFrame | None
    config: CMConfig
    split: Split
    eval_freq: int = 2_000
    tensorboard_log: str | None = None
    pool: dict[str, pd.DataFrame] | None = None  # the markets of config.pool's assets

    @property
    def label(self) -> str:
        return f"{self.config.asset} seed {self.config.seed}"


@dataclass(frozen=True)
class TrainResult:
    """A trained module (packed) with its validation history (one row per evaluation)."""

    packed: PackedModule
    history: list[dict[str, float]]
    best_score: float

    def module(self) -> CryptoModule:
        return self.packed.module()


def train_job(job: TrainJob) -> TrainResult:
    """Run a :class:`TrainJob` (a top-level function: what Ray ships to a worker).

    A split without a backtest range (model selection, as ``experiments.evaluate`` does it) must
    come with data that end at its validation end: later bars are refused, never silently cut.
    """
    if job.split.backtest is None:
        val_end = job.split.validation[1]
        for frame in (job.market, job.metrics, *(job.pool or {}).values()):
            if frame is not None and len(frame) and frame.index[-1] > val_end:
                raise ValueError(f"{job.label}: training data reach past the validation end {val_end}")
    module, callback = train_crypto_module(
        job.market,
        job.metrics,
        job.config,
        job.split,
        eval_freq=job.eval_freq,
        tensorboard_log=job.tensorboard_log,
        pool=job.pool,
    )
    result = TrainResult(PackedModule.pack(module), callback.history, float(callback.best_score))
    del module, callback
    gc.collect()  # SB3 models hold reference cycles: free them before a reused worker takes the next job
    return result


def train_many(
    jobs: Sequence[TrainJob], *, workers: int | None = None, address: str | None = None, progress: bool = True
) -> list[TaskOutcome[TrainResult]]:
    """Train every job through :func:`cryptorl.parallel.run_tasks` (labels: asset and seed)."""
    return run_tasks(
        train_job,
        jobs,
        labels=[j.label for j in jobs],
        workers=workers,
        address=address,
        desc="train",
        progress=progress,
    )


__all__ = [
    "PackedModule",
    "TrainJob",
    "TrainResult",
    "train_job",
    "train_many",
]
