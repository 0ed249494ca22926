"""The execution layer: many independent jobs (one Crypto Module each) as Ray tasks.

Every command that trains or evaluates more than one module goes through :func:`run_tasks`:

* ``workers=1``: a plain in-process loop, for debugging (breakpoints, tracebacks);
* otherwise every item is a Ray task with one CPU (``num_cpus=1``, torch on one thread inside).
  With no ``address`` an embedded local Ray instance is started on all cores (or ``workers``
  CPUs) the first time and reused for the rest of the process: nothing to install or start by
  hand. ``address="auto"`` joins the cluster started on this machine by ``ray start --head``;
  ``"ray://HOST:PORT"`` joins a remote one through Ray Client.

A task that raises (or whose worker dies) is reported in its :class:`TaskOutcome` with its label
and a one-line error; the other tasks go on. A tqdm bar counts finished tasks. Results do not
depend on the path taken: each task seeds its own work and runs torch on one thread, as the
in-process loop does, so the same seeds give the same numbers.

Tasks return values to the caller; anything that must be written once (the model store) is
written by the caller from those values, never by a worker, so a worker that dies leaves nothing
half-written behind.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")

MAX_RETRIES = 1  # a task whose worker process dies (e.g. a lost node) is retried once, then reported

_started_here = False  # whether this process started the Ray instance it uses (see shutdown)


@dataclass(frozen=True)
class TaskOutcome(Generic[R]):
    """What one task gave: its value, or the one-line error it failed with."""

    label: str  # e.g. "BTC seed 3": names the task in reports and errors
    value: R | None  # fn's return value, None if it failed
    error: str | None  # one-line error text if the task raised, else None

    @property
    def ok(self) -> bool:
        return self.error is None


def error_line(exc: BaseException) -> str:
    """``"ValueError: message"`` on one line (what a failed outcome carries)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_thread() -> int | None:
    """Run torch on one thread (what a one-CPU task gets); returns the previous setting."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    return previous


def _call(fn: Callable[[Any], Any], item: Any) -> tuple[Any, str | None]:
    """Run ``fn(item)``; an exception becomes its one-line text (the task itself does not fail)."""
    _one_thread()
    try:
        return fn(item), None
    except Exception as exc:  # reported in the outcome; the other tasks go on
        return None, error_line(exc)


def _local_runtime_env() -> dict[str, Any]:
    """Local workers import the driver's code: the same import path (a source checkout, tests)."""
    paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]
    paths = list(dict.fromkeys(p for p in paths if os.path.isdir(p)))
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


class ClusterError(RuntimeError):
    """Ray cannot be reached or started (a bad ``--address``, no cluster there): a user's problem,
    which the commands print as one line."""


def check_address(address: str | None, timeout: float = 3.0) -> None:
    """A Ray cluster ``address`` (``"HOST:PORT"`` or ``"ray://HOST:PORT"``) must accept a connection
    within ``timeout`` seconds: ``ray.init`` itself retries an unreachable address for minutes.
    ``None`` (a local instance) and ``"auto"`` (Ray's own lookup, which fails at once) pass."""
    import socket

    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one with "
            "ray start --head, or leave --address out to run on this machine"
        ) from None


def ensure_ray(workers: int | None = None, address: str | None = None) -> None:
    """Start (or join) Ray unless this process is connected already.

    ``address`` None: an embedded local instance with ``workers`` CPUs (default all cores);
    ``"auto"`` or ``"ray://HOST:PORT"``: join that cluster (``workers`` is then ignored: the
    cluster's CPUs decide how many tasks run at once).
    """
    global _started_here
    import ray

    if ray.is_initialized():
        return
    check_address(address)
    kw: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address is None:
        kw.update(num_cpus=workers or os.cpu_count() or 1, runtime_env=_local_runtime_env())
    else:
        kw.update(address=address)
    # Ray 2.5x logs a notice on token authentication at every start: not news for the user of a command
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    try:
        ray.init(**kw)
    except Exception as exc:  # a wrong address, no cluster there, a version mismatch
        where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
        raise ClusterError(f"cannot {where}: {error_line(exc)}") from None
    _started_here = True


def shutdown() -> None:
    """Stop the Ray instance started (or joined) by :func:`run_tasks` in this process, if any."""
    global _started_here
    import ray

    if _started_here and ray.is_initialized():
        ray.shutdown()
    _started_here = False


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    labels: Sequence[str] | None = None,
    workers: int | None = None,
    address: str | None = None,
    desc: str = "tasks",
    progress: bool = True,
    on_done: Callable[[int, TaskOutcome[R]], None] | None = None,
) -> list[TaskOutcome[R]]:
    """Run ``fn(item)`` for every item; outcomes in the order of ``items``.

    ``workers=1``: plain in-process loop (debugging); otherwise Ray tasks with ``num_cpus=1``
    each (torch threads 1 inside), embedded local ``ray.init()`` on all cores (or ``workers``
    CPUs) unless ``address`` (``"auto"``, ``"ray://HOST:PORT"``) is given; a Ray connection
    already open in the process is reused as it is. A task that raises is reported in its
    outcome (the others go on). A tqdm bar counts finished tasks (``progress=False``: none).
    ``on_done(i, outcome)`` is called here, in the caller's process, as each task finishes (in
    the order they finish), e.g. to save results so that an interrupted run keeps them.
    ``fn`` must be a picklable top-level function and ``item`` picklable.
    """
    items = list(items)
    labels = [str(x) for x in labels] if labels is not None else [f"{desc} {i + 1}" for i in range(len(items))]
    if len(labels) != len(items):
        raise ValueError(f"run_tasks got {len(items)} items but {len(labels)} labels")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not items:
        return []
    bar = tqdm(total=len(items), desc=desc, unit="task", disable=not progress)

    def finished(i: int, outcome: TaskOutcome) -> None:
        if not outcome.ok:
            bar.write(f"failed: {outcome.label}: {outcome.error}", file=sys.stderr)
        bar.update(1)
        if on_done is not None:
            on_done(i, outcome)

    try:
        if workers == 1:
            return _run_in_process(fn, items, labels, finished)
        return _run_on_ray(fn, items, labels, finished, workers, address)
    finally:
        bar.close()


def _run_in_process(fn, items, labels, finished) -> list[TaskOutcome]:
    previous = _one_thread()
    try:
        out = []
        for i, (item, label) in enumerate(zip(items, labels, strict=True)):
            out.append(TaskOutcome(label, *_call(fn, item)))
            finished(i, out[-1])
        return out
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)


def _run_on_ray(fn, items, labels, finished, workers, address) -> list[TaskOutcome]:
    import ray
    from ray.exceptions import RayError

    ensure_ray(workers, address)
    remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_call)
    fn_ref = ray.put(fn)
    refs = [remote.remote(fn_ref, item) for item in items]
    position = {ref: i for i, ref in enumerate(refs)}
    outcomes: list[TaskOutcome | None] = [None] * len(items)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = position[ref]
                try:
                    value, error = ray.get(ref)
                except RayError as exc:  # the worker died or the result could not be shipped back
                    value, error = None, error_line(exc).split(" Traceback")[0]
                outcomes[i] = TaskOutcome(labels[i], value, error)
                finished(i, outcomes[i])
    except BaseException:  # interrupted (Ctrl-C): the tasks not finished yet are cancelled
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return outcomes  # type: ignore[return-value]


def add_parallel_arguments(p) -> None:
    """``--workers`` and ``--address`` (what :func:`run_tasks` takes) on a command's parser."""
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="modules trained at once: Ray tasks on a local instance with this many CPUs "
        "(default: all cores); 1 trains them one after another in this process (debugging)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="join a Ray cluster instead of starting a local instance: 'auto' (ray start --head "
        "on this machine) or ray://HOST:10001",
    )


def raise_failures(outcomes: Sequence[TaskOutcome], what: str = "task") -> None:
    """A ValueError naming every failed task (for callers that need all results)."""
    failed = [o for o in outcomes if not o.ok]
    if failed:
        lines = "; ".join(f"{o.label}: {o.error}" for o in failed)
        raise ValueError(f"{len(failed)} of {len(outcomes)} {what}(s) failed: {lines}")


__all__ = [
    "MAX_RETRIES",
    "ClusterError",
    "TaskOutcome",
    "add_parallel_arguments",
    "ensure_ray",
    "error_line",
    "raise_failures",
    "run_tasks",
    "shutdown",
]
