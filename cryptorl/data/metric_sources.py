"""Metric sources named on the command line (``--metrics csv:DIR`` or ``--metrics coinmetrics``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .frames import DataError
from .store import DataStore

METRIC_SOURCES = ("csv:DIR", "coinmetrics")
DEFAULT_START = "2019-01-01"


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
    :func:`cryptorl.data.files.import_path` does (wide on-chain tables, two-column series);
    ``coinmetrics`` downloads every daily metric Coin Metrics serves for the asset from ``start``
    (default 2019-01-01) to ``end`` (:func:`cryptorl.data.coinmetrics.fetch_metrics`; resumable).
    """
    owned = not isinstance(store, DataStore)
    st = DataStore(store) if owned else store
    try:
        if spec.startswith("csv:"):
            from .files import import_path

            path = Path(spec[len("csv:"):]).expanduser()
            if not spec[len("csv:"):] or not path.exists():
                raise DataError(asset, f"--metrics {spec}: no such file or folder")
            items = import_path(path, st, assets=[asset], interval=interval, progress=progress)
            names = sorted({c for i in items if i.kind == "metrics" for c in i.frame.columns})
            if not names:
                raise DataError(asset, f"no metric files for {asset} in {path}")
            return names
        if spec == "coinmetrics":
            from .coinmetrics import fetch_metrics

            rep = fetch_metrics(st, asset, start or DEFAULT_START, end, interval=interval, progress=progress)
            return sorted(rep.fetched)
        raise ValueError(f"unknown metrics source {spec!r}: use {' or '.join(METRIC_SOURCES)}")
    finally:
        if owned:
            st.close()


__all__ = ["METRIC_SOURCES", "add_metrics_source"]
