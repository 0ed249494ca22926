"""Data Feed Unit: market and metrics frames, the demo market, the SQLite stores, and the sources
(exchange via ccxt, Santiment via sanpy, CSV/Parquet files). See ``docs/data.md``.

``load_data`` is what every experiment uses to get data. The network sources live in
``cryptorl.data.exchange`` and ``cryptorl.data.santiment`` (imported on demand: ccxt and sanpy
are heavy and need no loading for the demo or the store).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .demo import DemoDataWarning, demo_data, demo_market, demo_metrics, demo_planted, warn_demo
from .frames import (
    DataError,
    align_metrics,
    fill_gaps,
    find_gaps,
    validate_market,
    validate_metrics,
)
from .store import DataStore, GapPolicy, default_root

SOURCES = ("demo", "store", "csv:PATH")


def load_data(
    asset: str,
    interval: str = "1d",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    source: str | None = None,
    store: DataStore | str | Path | None = None,
    gaps: GapPolicy = "raise",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(market, metrics)`` frames for ``asset`` at ``interval`` with ``start <= time <= end``.

    ``source`` (``None``: the demo, with a :class:`~cryptorl.data.demo.DemoDataWarning`):
      * ``"demo"``: the built-in synthetic market (no store, no network; default range
        2020-10-01 .. 2022-09-30);
      * ``"store"``: read the :class:`DataStore` ``store`` (a DataStore, a folder, or None for
        ``$CRYPTORL_DATA`` / ``./data``);
      * ``"csv:PATH"``: import the files of ``PATH`` for this asset and interval into ``store``
        (idempotent), then read it.

    The market frame is regular: a stored range with missing bars raises :class:`DataError`
    unless ``gaps="fill"`` (flat zero-volume bars) or ``gaps="keep"``. The metrics frame holds
    every metric stored for the asset at this interval (possibly none), at its own timestamps:
    align it with :func:`align_metrics`.
    """
    if source is None:
        warn_demo(f"load_data({asset!r})")
        source = "demo"
    if not isinstance(source, str):
        raise TypeError(f"source must be a string, one of {SOURCES}, got {source!r}")
    if source == "demo":
        return demo_data(asset, interval, start, end)
    if source != "store" and not source.startswith("csv:"):
        raise ValueError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    owned = not isinstance(store, DataStore)
    if owned and source == "store":
        root = Path(store) if store is not None else default_root()
        if not (root / "prices.sqlite").is_file():
            raise DataError(asset, f"no {interval} market data: there is no data store in {root} (fill it with "
                                   "python -m experiments.fetch_data, or give --store)")
    st = DataStore(store) if owned else store
    try:
        if source.startswith("csv:"):
            from .files import import_path

            path = source[len("csv:"):]
            if not path:
                raise ValueError("source 'csv:' needs a path, e.g. 'csv:../shared/data/prices/daily'")
            import_path(path, st, assets=[asset], interval=interval)
        return st.market(asset, interval, start, end, gaps=gaps), st.metrics(asset, interval, start, end)
    finally:
        if owned:
            st.close()


__all__ = [
    "SOURCES",
    "DataError",
    "DataStore",
    "DemoDataWarning",
    "align_metrics",
    "demo_data",
    "demo_market",
    "demo_metrics",
    "demo_planted",
    "fill_gaps",
    "find_gaps",
    "load_data",
    "validate_market",
    "validate_metrics",
]
