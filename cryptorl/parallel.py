"""The execution layer for independent tasks (trainings of many modules, seeds, windows).

``run_tasks(fn, items)`` runs ``fn(item)`` for every item and returns one :class:`TaskOutcome`
per item, in the order of the items. A task that raises is reported in its outcome (one-line
error text) and the others go on. This version runs the tasks one after the other in this
process (what ``workers=1`` means everywhere); the distributed version keeps this signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskOutcome(Generic[R]):
    """The result of one task: its value, or the one-line error text it raised."""

    label: str  # e.g. "BTC seed 3": names the task in reports and errors
    value: R | None  # fn's return value, None if it failed
    error: str | None  # one-line error text if the task raised, else None

    @property
    def ok(self) -> bool:
        return self.error is None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def run_tasks(fn: Callable[[T], R], items: Sequence[T], *, labels: Sequence[str] | None = None,
              workers: int | None = None, address: str | None = None,
              desc: str = "tasks") -> list[TaskOutcome[R]]:
    """Run ``fn(item)`` for every item; outcomes in the order of ``items``.

    ``workers`` and ``address`` are accepted for the distributed version's signature; here every
    task runs in this process, in order. A tqdm bar counts finished tasks.
    """
    items = list(items)
    labels = [str(i) for i in range(len(items))] if labels is None else [str(x) for x in labels]
    if len(labels) != len(items):
        raise ValueError(f"{len(labels)} labels for {len(items)} items")
    outcomes: list[TaskOutcome[R]] = []
    for item, label in tqdm(list(zip(items, labels)), desc=desc, unit="task"):
        try:
            outcomes.append(TaskOutcome(label, fn(item), None))
        except Exception as exc:
            outcomes.append(TaskOutcome(label, None, _one_line(exc)))
    return outcomes


__all__ = ["TaskOutcome", "run_tasks"]
