"""Agent Updating Unit (paper section 2.5): retrain Crypto Modules on a sliding window, on schedule.

* :func:`fit_on_window` trains a CM on the bars that have closed by ``now``: a training range of
  ``train`` followed by a validation range of ``validation`` ending at the last closed bar. The
  DRU's rolling windows and the observation window warm up on :func:`history_bars` bars before
  the training range (older data, never later data).
* :func:`retrain` does that, saves the new module as a new version **without** promoting it,
  re-evaluates the current version on the **same** new validation range (``policy_backtest``),
  promotes the new one only if its validation Sortino is not worse than the current one's by
  more than the margin (:func:`should_promote`), and records the decision (both figures, the
  ranges, the reason) in the store's history. Earlier versions stay on disk.
* :func:`retrain_all` does that for several assets, their trainings run at once as
  :func:`cryptorl.parallel.run_tasks` tasks; saving, comparing and promoting stay with the caller.
* :func:`run_schedule` calls a job for every asset whenever it is due (every ``every``), sleeping
  in between; clock and sleep are injectable. Due times are written to the store's history, so
  a restarted scheduler does not run early.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from cryptorl.data.frames import DataError, interval_timedelta, to_utc_timestamp
from cryptorl.features import DataRefinementUnit
from cryptorl.modelstore import ModelStore, ModelStoreError
from cryptorl.parallel import run_tasks

from .crypto_module import CMConfig, CryptoModule, config_from_manifest
from .jobs import PackedModule
from .training import Split, policy_backtest, train_crypto_module

EPS = pd.Timedelta(seconds=1)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
_UNITS = {"s": "s", "m": "min", "min": "min", "h": "h", "d": "D", "w": "W"}


def parse_duration(value: str | pd.Timedelta, what: str = "duration") -> pd.Timedelta:
    """``"450d"``, ``"7d"``, ``"6h"``, ``"2w"`` (or a Timedelta) -> positive Timedelta, else ValueError."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    try:
        out = pd.Timedelta(float(m.group(1)), unit=_UNITS[m.group(2).lower()]) if m else pd.Timedelta(value)
    except (TypeError, ValueError, KeyError):
        raise ValueError(f"{what}: cannot read {value!r} as a duration (e.g. 450d, 7d, 6h)") from None
    if pd.isna(out) or out <= pd.Timedelta(0):
        raise ValueError(f"{what} must be a positive duration, got {value!r}")
    return out


def history_bars(config: CMConfig) -> int:
    """Bars before the training range that warm up the DRU (norm + PCA windows) and the observation window."""
    return DataRefinementUnit(**config.dru).warmup + config.window + 2


def closed_bars(
    market: pd.DataFrame,
    metrics: pd.DataFrame | None,
    now,
    interval: str,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The bars that have closed by ``now`` (label + interval <= now) and the metrics stamped before ``now``.

    Nothing at or after ``now`` survives: this is what a model trained at ``now`` may see.
    """
    now = to_utc_timestamp(now)
    bar = interval_timedelta(interval)
    cut = market[market.index + bar <= now]
    if metrics is not None:
        metrics = metrics[metrics.index < now]
    return cut, metrics


def window_split(now, last_bar: pd.Timestamp, train: pd.Timedelta, validation: pd.Timedelta) -> Split:
    """Training ``[now - validation - train, now - validation)``, validation ``[now - validation, last_bar]``."""
    now = to_utc_timestamp(now)
    val_start = now - validation
    if last_bar < val_start:
        raise ValueError(f"the last closed bar {last_bar} is before the validation range starts ({val_start})")
    return Split((val_start - train, val_start - EPS), (val_start, last_bar))


@dataclass
class WindowFit:
    """A module trained by :func:`fit_on_window`, with the split and the data it saw."""

    module: CryptoModule
    split: Split
    market: pd.DataFrame  # the bars given to training (history + window), all closed by ``now``
    metrics: pd.DataFrame | None

    @property
    def data_end(self) -> pd.Timestamp:
        """Label of the last bar the module saw."""
        return self.market.index[-1]


def fit_on_window(
    asset: str,
    market: pd.DataFrame,
    metrics: pd.DataFrame | None,
    config: CMConfig,
    *,
    now,
    train,
    validation,
    eval_freq: int = 2_000,
    max_lag: pd.Timedelta | None = None,
    progress_bar: bool = False,
) -> WindowFit:
    """Train a CM for ``asset`` on the window of ``train + validation`` that ends at ``now``.

    Only bars closed by ``now`` (and metrics stamped before it) are passed to training, plus
    :func:`history_bars` bars before the window for warm-up. ``max_lag`` (default two bars): the
    data must reach to within this of ``now``, otherwise the data are stale (ValueError).
    """
    config = replace(config, asset=asset.upper())
    cut, cut_metrics, split = window_inputs(
        asset, market, metrics, config, now=now, train=train, validation=validation, max_lag=max_lag
    )
    module, _ = train_crypto_module(cut, cut_metrics, config, split, eval_freq=eval_freq, progress_bar=progress_bar)
    return WindowFit(module, split, cut, cut_metrics)


@dataclass(frozen=True)
class WindowJob:
    """:func:`fit_on_window` as a task."""

    asset: str
    market: pd.DataFrame
    metrics: pd.DataFrame | None
    config: CMConfig
    now: pd.Timestamp
    train: pd.Timedelta
    validation: pd.Timedelta
    eval_freq: int = 2_000
    max_lag: pd.Timedelta | None = None

    @property
    def label(self) -> str:
        return f"{self.asset} seed {self.config.seed} at {self.now:%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class WindowResult:
    """A module trained on a window (packed), its split and the last bar it saw."""

    packed: PackedModule
    split: Split
    data_end: pd.Timestamp

    def module(self) -> CryptoModule:
        return self.packed.module()


def window_job(job: WindowJob) -> WindowResult:
    """Run a :class:`WindowJob` (a top-level function: what Ray ships to a worker)."""
    fit = fit_on_window(
        job.asset,
        job.market,
        job.metrics,
        job.config,
        now=job.now,
        train=job.train,
        validation=job.validation,
        eval_freq=job.eval_freq,
        max_lag=job.max_lag,
    )
    return WindowResult(PackedModule.pack(fit.module), fit.split, fit.data_end)


def window_inputs(
    asset: str,
    market: pd.DataFrame,
    metrics: pd.DataFrame | None,
    config: CMConfig,
    *,
    now,
    train,
    validation,
    max_lag: pd.Timedelta | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None, Split]:
    """What :func:`fit_on_window` trains on: the closed bars (with warm-up history), the metrics
    stamped before ``now`` and the split; a DataError for stale or missing data."""
    asset = asset.upper()
    now = to_utc_timestamp(now)
    train, validation = parse_duration(train, "train window"), parse_duration(validation, "validation window")
    bar = interval_timedelta(config.interval)
    cut, cut_metrics = closed_bars(market, metrics, now, config.interval)
    if cut.empty:
        first = market.index[0] if len(market) else "nothing"
        raise DataError(asset, f"no bar has closed by {now} (the data start at {first})")
    lag = now - (cut.index[-1] + bar)
    limit = 2 * bar if max_lag is None else max_lag
    if lag >= limit:
        raise DataError(
            asset,
            f"the data end at {cut.index[-1]}, {lag} before {now}: stale data, refresh the "
            "store first (python -m experiments.fetch_data)",
        )
    split = window_split(now, cut.index[-1], train, validation)
    first = split.train[0] - history_bars(config) * bar
    cut = cut[cut.index >= first]
    if cut_metrics is not None:
        cut_metrics = cut_metrics[cut_metrics.index >= first]
        if cut_metrics.shape[1] == 0:
            cut_metrics = None
    return cut, cut_metrics, split


# -- promotion ------------------------------------------------------------------------------------
def score(sortino: float | None) -> float:
    """Sortino as a comparable number: NaN/None (e.g. always in cash: no return, no downside) is
    -inf, as in the training's validation selection."""
    if sortino is None or (isinstance(sortino, float) and math.isnan(sortino)):
        return -math.inf
    return float(sortino)


def should_promote(
    new: float | None, current: float | None, min_improvement: float = 0.0, *, has_current: bool = True
) -> tuple[bool, str]:
    """Promote when ``score(new) >= score(current) + min_improvement``; returns (decision, reason).

    ``min_improvement`` 0 means "not worse"; positive asks for a real gain, negative tolerates a
    small loss.
    """
    if not math.isfinite(min_improvement):
        raise ValueError(f"min_improvement must be a finite number, got {min_improvement!r}")
    if not has_current:
        return True, "no current version"
    s_new, s_cur = score(new), score(current)
    if s_cur == -math.inf and s_new == -math.inf:
        return min_improvement <= 0, "neither has a validation Sortino (no downside or no trades)"
    better = s_new >= s_cur + min_improvement
    verb = "not worse than" if better else "worse than"
    margin = f" + margin {min_improvement:g}" if min_improvement else ""
    return better, f"validation Sortino {_fmt(new)} {verb} current {_fmt(current)}{margin}"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4f}"


def _num(x: float | None) -> float | None:
    """JSON-safe: non-finite numbers are stored as null."""
    return float(x) if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class UpdateDecision:
    """What :func:`retrain` did for one asset (also written to the store's history)."""

    asset: str
    interval: str
    version: str  # the new version's folder name
    previous: str | None  # the version that was current before
    promoted: bool
    new_sortino: float | None
    current_sortino: float | None
    train: tuple[pd.Timestamp, pd.Timestamp]
    validation: tuple[pd.Timestamp, pd.Timestamp]
    data_end: pd.Timestamp
    now: pd.Timestamp
    min_improvement: float
    reason: str

    @property
    def current(self) -> str:
        """The version that is current after the decision."""
        return self.version if self.promoted else (self.previous or self.version)

    def record(self) -> dict[str, Any]:
        return {
            "event": "retrain",
            "decision": "promoted" if self.promoted else "kept",
            "version": self.version,
            "previous": self.previous,
            "new_sortino": _num(self.new_sortino),
            "current_sortino": _num(self.current_sortino),
            "min_improvement": self.min_improvement,
            "train": [str(t) for t in self.train],
            "validation": [str(t) for t in self.validation],
            "data_end": str(self.data_end),
            "now": str(self.now),
            "reason": self.reason,
        }

    def summary(self) -> str:
        v0, v1 = self.validation
        what = f"promoted {self.version}" if self.promoted else f"kept {self.previous} (new {self.version} on disk)"
        return (
            f"{self.asset} {self.interval}: {what}; validation {v0:%Y-%m-%d}..{v1:%Y-%m-%d} Sortino "
            f"new {_fmt(self.new_sortino)} vs current {_fmt(self.current_sortino)}; {self.reason}"
        )


def retrain(
    asset: str,
    market: pd.DataFrame,
    metrics: pd.DataFrame | None,
    config: CMConfig,
    store: ModelStore,
    *,
    window,
    now,
    validation,
    min_improvement: float = 0.0,
    eval_freq: int = 2_000,
    max_lag: pd.Timedelta | None = None,
    progress_bar: bool = False,
) -> UpdateDecision:
    """Retrain ``asset``'s CM on the ``window`` ending at ``now`` and promote it only if not worse.

    ``window``: the whole sliding window (training + validation, e.g. ``"450d"``); ``validation``:
    its last part, used to select the checkpoint and to compare with the current version. The new
    version is saved unpromoted; the current one is re-evaluated on the same validation range
    with :func:`agents.training.policy_backtest`. If the current version cannot be loaded or
    cannot decide on the data (tampered files, a metric gone), the new one is promoted and the
    reason says why. The decision goes into ``store.history`` as an ``"retrain"`` event.
    """
    asset = asset.upper()
    window, validation = parse_duration(window, "window"), parse_duration(validation, "validation window")
    if validation >= window:
        raise ValueError(f"the validation window ({validation}) must be shorter than the whole window ({window})")
    if not math.isfinite(min_improvement):
        raise ValueError(f"min_improvement must be a finite number, got {min_improvement!r}")
    now = to_utc_timestamp(now)
    fit = fit_on_window(
        asset,
        market,
        metrics,
        config,
        now=now,
        train=window - validation,
        validation=validation,
        eval_freq=eval_freq,
        max_lag=max_lag,
        progress_bar=progress_bar,
    )
    return promote_if_not_worse(fit, store, now=now, min_improvement=min_improvement)


def promote_if_not_worse(
    fit: WindowFit,
    store: ModelStore,
    *,
    now,
    min_improvement: float = 0.0,
) -> UpdateDecision:
    """The second half of :func:`retrain`: save ``fit``'s module unpromoted, compare it with the
    current version on the same validation range, promote it if not worse, record the decision."""
    now = to_utc_timestamp(now)
    module, split = fit.module, fit.split
    asset = module.asset
    v0, v1 = split.validation
    new_sortino = policy_backtest(module, fit.market, fit.metrics, v0, v1).metrics()["Sortino"]

    interval = module.interval
    current_path = store.current(asset, interval)
    current_sortino: float | None = None
    problem = ""
    if current_path is not None:
        try:
            current = CryptoModule.load(current_path)
            current_sortino = policy_backtest(current, fit.market, fit.metrics, v0, v1).metrics()["Sortino"]
        except (ModelStoreError, ValueError) as exc:  # DataError is a ValueError
            problem = f"current version {current_path.name} cannot be evaluated ({exc})"
    if problem:
        promote, reason = True, problem
    else:
        promote, reason = should_promote(
            new_sortino, current_sortino, min_improvement, has_current=current_path is not None
        )

    note = (
        f"retrain at {now}: train {split.train[0]:%Y-%m-%d}..{split.train[1]:%Y-%m-%d}, "
        f"validation {v0:%Y-%m-%d}..{v1:%Y-%m-%d}"
    )
    folder = module.save(store, promote=False, note=note)
    decision = UpdateDecision(
        asset=asset,
        interval=interval,
        version=folder.name,
        previous=current_path.name if current_path is not None else None,
        promoted=promote,
        new_sortino=_num(new_sortino),
        current_sortino=_num(current_sortino),
        train=split.train,
        validation=split.validation,
        data_end=fit.data_end,
        now=now,
        min_improvement=float(min_improvement),
        reason=reason,
    )
    if promote:
        store.promote(asset, interval, folder.name, reason=reason)
    store.record(asset, interval, decision.record())
    return decision


Loader = Callable[[str, pd.Timestamp], tuple[pd.DataFrame, pd.DataFrame | None, CMConfig]]


def retrain_all(
    assets: Sequence[str],
    load: Loader,
    store: ModelStore,
    *,
    window,
    now,
    validation,
    min_improvement: float = 0.0,
    eval_freq: int = 2_000,
    max_lag: pd.Timedelta | None = None,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> dict[str, UpdateDecision | Exception]:
    """:func:`retrain` for several assets, their trainings run at once through
    :func:`cryptorl.parallel.run_tasks` (``workers``/``address``: see there).

    ``load(asset, now)`` gives ``(market, metrics, config)`` on the caller's side. The modules come
    back from the tasks and the caller saves, compares and promotes them one by one, so the model
    store is written once per module and never by a worker. Returns asset -> decision, or the
    exception (a ValueError naming the task) for an asset whose data or training failed; the
    other assets go on.
    """
    window, validation = parse_duration(window, "window"), parse_duration(validation, "validation window")
    if validation >= window:
        raise ValueError(f"the validation window ({validation}) must be shorter than the whole window ({window})")
    if not math.isfinite(min_improvement):
        raise ValueError(f"min_improvement must be a finite number, got {min_improvement!r}")
    now = to_utc_timestamp(now)
    out: dict[str, UpdateDecision | Exception] = {}
    jobs: dict[str, WindowJob] = {}
    for asset in (a.upper() for a in assets):
        try:
            market, metrics, config = load(asset, now)
        except (ValueError, ModelStoreError) as exc:
            out[asset] = exc
            continue
        jobs[asset] = WindowJob(
            asset,
            market,
            metrics,
            replace(config, asset=asset),
            now=now,
            train=window - validation,
            validation=validation,
            eval_freq=eval_freq,
            max_lag=max_lag,
        )
    outcomes = run_tasks(
        window_job,
        list(jobs.values()),
        labels=[j.label for j in jobs.values()],
        workers=workers,
        address=address,
        desc="retrain",
        progress=progress,
    )
    for (asset, job), outcome in zip(jobs.items(), outcomes, strict=True):
        if not outcome.ok:
            out[asset] = ValueError(f"{outcome.label}: {outcome.error}")
            continue
        cut, cut_metrics, split = window_inputs(
            asset, job.market, job.metrics, job.config, now=now, train=job.train, validation=validation, max_lag=max_lag
        )
        fit = WindowFit(outcome.value.module(), split, cut, cut_metrics)
        try:
            out[asset] = promote_if_not_worse(fit, store, now=now, min_improvement=min_improvement)
        except (ValueError, ModelStoreError) as exc:
            out[asset] = exc
    return {a.upper(): out[a.upper()] for a in assets}


def current_config(store: ModelStore, asset: str, interval: str) -> CMConfig | None:
    """The training config of the current version (what a retrain should repeat), or None."""
    from cryptorl.modelstore import verify

    path = store.current(asset, interval)
    if path is None:
        return None
    try:
        return config_from_manifest(verify(path)["config"])
    except (ModelStoreError, KeyError, TypeError, ValueError):
        return None


def latest_time(store: ModelStore, asset: str, interval: str) -> pd.Timestamp | None:
    """The latest time the family has acted at: the end of the current version's data ranges and
    the ``now`` of every recorded retrain (None for a family never trained). A retrain at an
    earlier time would move the family backwards."""
    from cryptorl.modelstore import verify

    times = []
    path = store.current(asset, interval)
    if path is not None:
        for pair in verify(path).get("ranges", {}).values():
            times.append(to_utc_timestamp(pair[1]))
    for entry in store.history(asset, interval):
        if entry.get("event") == "retrain" and entry.get("now"):
            times.append(to_utc_timestamp(entry["now"]))
    return max(times) if times else None


# -- schedule -------------------------------------------------------------------------------------
def utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def next_due(store: ModelStore, asset: str, interval: str) -> pd.Timestamp | None:
    """The due time last written by the scheduler for (asset, interval), or None if never run."""
    for entry in reversed(store.history(asset, interval)):
        if entry.get("event") == "schedule" and entry.get("next_due"):
            return to_utc_timestamp(entry["next_due"])
    return None


def following(due: pd.Timestamp, now: pd.Timestamp, every: pd.Timedelta) -> pd.Timestamp:
    """The first time ``due + k * every`` (k >= 1) after ``now``: runs missed while down are skipped."""
    k = max(1, int(np.floor((now - due) / every)) + 1)
    return due + k * every


Job = Callable[[str, pd.Timestamp], Any]
BatchJob = Callable[[list[str], pd.Timestamp], dict[str, Any]]


def run_round(
    store: ModelStore,
    assets: Iterable[str],
    interval: str,
    every: pd.Timedelta,
    job: Job,
    now: pd.Timestamp,
    *,
    dues: dict[str, pd.Timestamp | None] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
    batch: BatchJob | None = None,
    record_failures: bool = True,
) -> dict[str, Any]:
    """Run ``job(asset, now)`` for each asset and write its next due time to the store.

    ``record_failures=False`` writes nothing for an asset whose job failed (a one-off round
    asked for on the command line: a refused round leaves the store as it was).

    A job that fails with a data or model-store error (ValueError, ModelStoreError) is recorded
    and reported through ``on_error``; the other assets still run. With ``batch``, the round
    is one call ``batch(assets, now)`` returning asset -> result or exception (e.g.
    :func:`retrain_all`, which trains the assets at once) and ``job`` is not used. Returns
    asset -> job result (or the exception).
    """
    assets = list(assets)
    if batch is not None:
        results = batch(assets, now)
    out: dict[str, Any] = {}
    for asset in assets:
        due = (dues or {}).get(asset) or now
        entry: dict[str, Any] = {"event": "schedule", "ran_at": str(now), "every": str(every)}
        try:
            out[asset] = results[asset] if batch is not None else job(asset, now)
            if isinstance(out[asset], Exception):
                raise out[asset]
            entry["ok"] = True
        except (ValueError, ModelStoreError) as exc:
            out[asset] = exc
            entry.update(ok=False, error=str(exc))
            if on_error is not None:
                on_error(asset, exc)
        if not entry["ok"] and not record_failures:
            continue
        entry["next_due"] = str(following(min(due, now), now, every))
        store.family(asset, interval).mkdir(parents=True, exist_ok=True)
        store.record(asset, interval, entry)
    return out


def run_schedule(
    store: ModelStore,
    assets: list[str],
    interval: str,
    every,
    job: Job,
    *,
    clock: Callable[[], pd.Timestamp] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    max_rounds: int | None = None,
    max_sleep: float = 3600.0,
    on_error: Callable[[str, Exception], None] | None = None,
    on_round: Callable[[pd.Timestamp, dict[str, Any]], None] | None = None,
    progress: Callable[[list[str]], Iterable[str]] | None = None,
    batch: BatchJob | None = None,
) -> int:
    """Run ``job`` for each asset whenever it is due, forever or for ``max_rounds`` rounds.

    An asset never run is due at once; afterwards every ``every`` from its last due time (the
    cadence does not drift with the jobs' duration; runs missed while stopped are skipped, not
    caught up). Due times are read from the store at start, so a restart waits for them. Sleeps
    at most ``max_sleep`` seconds at a time and re-reads the clock. ``progress`` may wrap the list
    of assets of a round (e.g. in a tqdm bar). ``batch``: see :func:`run_round`. Returns the rounds run.
    """
    every = parse_duration(every, "every")
    dues = {a: next_due(store, a, interval) for a in assets}
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        now = to_utc_timestamp(clock())
        ready = [a for a in assets if dues[a] is None or dues[a] <= now]
        if ready:
            results = run_round(
                store,
                progress(ready) if progress else ready,
                interval,
                every,
                job,
                now,
                dues=dues,
                on_error=on_error,
                batch=batch,
            )
            for a in ready:
                dues[a] = next_due(store, a, interval)
            rounds += 1
            if on_round is not None:
                on_round(now, results)
            continue
        wait = (min(d for d in dues.values() if d is not None) - now).total_seconds()
        sleep(min(max(wait, 0.0), max_sleep))
    return rounds


__all__ = [
    "UpdateDecision",
    "WindowFit",
    "WindowJob",
    "WindowResult",
    "closed_bars",
    "current_config",
    "fit_on_window",
    "following",
    "history_bars",
    "next_due",
    "parse_duration",
    "promote_if_not_worse",
    "retrain",
    "retrain_all",
    "run_round",
    "run_schedule",
    "score",
    "should_promote",
    "window_inputs",
    "window_job",
    "window_split",
]
