"""Retry with exponential backoff for the network sources (exchange, Santiment)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class FetchError(RuntimeError):
    """A download failed for good (after retries, or for a reason retrying cannot fix)."""


@dataclass
class Backoff:
    """Exponential backoff: wait ``base * factor**attempt`` seconds (at most ``max_delay``) between
    ``retries`` retries. ``sleep`` is injectable so tests do not wait."""

    retries: int = 5
    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    used: int = 0  # retries spent so far (for reports)

    def delay(self, attempt: int) -> float:
        return min(self.base * self.factor**attempt, self.max_delay)

    def call(
        self,
        fn: Callable[[], T],
        what: str,
        retry_on: tuple[type[BaseException], ...],
        wait_for: Callable[[BaseException], float | None] | None = None,
        describe: Callable[[BaseException], str] = str,
    ) -> T:
        """Call ``fn``; on an exception in ``retry_on`` wait and retry. ``wait_for(exc)`` may give the
        server's own retry-after delay; ``describe(exc)`` renders an error for logs (to scrub secrets)."""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except retry_on as exc:
                if attempt == self.retries:
                    raise FetchError(
                        f"{what}: gave up after {self.retries} retries ({type(exc).__name__}: {_first_line(describe(exc))})"
                    ) from None
                delay = (wait_for(exc) if wait_for else None) or self.delay(attempt)
                log.warning("%s: %s (%s); retry %d/%d in %.1fs", what, type(exc).__name__,
                            _first_line(describe(exc)), attempt + 1, self.retries, delay)
                self.used += 1
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _first_line(text: str, limit: int = 300) -> str:
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."
