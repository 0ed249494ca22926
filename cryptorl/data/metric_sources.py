"""Metric sources named on the command line (``--metrics csv:DIR``, ``--metrics coinmetrics``):
every registered source that serves metrics (:mod:`cryptorl.data.sources`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .frames import DataError
from .sources import FetchRequest, get_source, sources
from .store import DataStore

DEFAULT_START = "2019-01-01"


def metric_sources() -> list[str]:
    """The sources ``--metrics`` takes, as they are written (``csv:PATH``, ``coinmetrics``, ...)."""
    return [s.spec for s in sources("metrics", fills=True)]


def add_metrics_source(
    spec: str,
    asset: str,
    interval: str,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    store: DataStore | str | Path | None = None,
    progress: bool = True,
) -> list[str]:
    """Put ``asset``'s metrics from ``spec`` into the store, kept under ``interval``; returns their names.

    ``csv:DIR`` imports the metric files of a folder (or one file) as
    :func:`cryptorl.data.files.import_path` does (wide on-chain tables, two-column series; a folder
    without metric files for the asset is a :class:`DataError`); a download such as
    ``coinmetrics`` fetches every metric it serves for the asset from ``start`` (default
    2019-01-01) to ``end`` (resumable).
    """
    src, argument = get_source(spec, serves="metrics", fills=True)
    if src.needs_range:
        start = start or DEFAULT_START
    else:  # files: whatever they hold
        start = end = None
    owned = not isinstance(store, DataStore)
    st = DataStore(store) if owned else store
    try:
        try:
            write = src.prepare(FetchRequest((asset,), interval, start, end, argument=argument, progress=progress))
        except ValueError as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(asset, f"--metrics: {exc}") from None
        names = sorted(set(write(st).metrics.get(asset, [])))
        if not names and not src.needs_range:
            raise DataError(asset, f"no metric files for {asset} in {Path(argument).expanduser()}")
        return names
    finally:
        if owned:
            st.close()


__all__ = ["add_metrics_source", "metric_sources"]
