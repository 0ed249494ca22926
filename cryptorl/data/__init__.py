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
from .sources import SOURCES, FetchRequest, get_source, register_source
from .store import DataStore, GapPolicy, default_root


def load_data(
    asset: str,
    interval: str = "1d",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    source: str | None = None,
    store: DataStore | str | Path | None = None,
    gaps: GapPolicy | str = "raise",
    metrics_delay: pd.Timedelta | str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(market, metrics)`` frames for ``asset`` at ``interval`` with ``start <= time <= end``.

    ``source`` (``None``: the demo, with a :class:`~cryptorl.data.demo.DemoDataWarning`; any
    registered source that serves bars from local files, see :mod:`cryptorl.data.sources`):
      * ``"demo"``: the built-in synthetic market (no store, no network; default range
        2020-10-01 .. 2022-09-30);
      * ``"store"``: read the :class:`DataStore` ``store`` (a DataStore, a folder, or None for
        ``$CRYPTORL_DATA`` / ``./data``);
      * ``"csv:PATH"``: import the files of ``PATH`` for this asset and interval into ``store``
        (idempotent), then read it.

    The market frame is regular: a stored range with missing bars raises :class:`DataError`
    unless ``gaps="fill"`` (flat zero-volume bars) or ``gaps="keep"`` (``"error"`` is
    ``"raise"``). Only the range asked for matters: with ``start=None`` and the strict policy
    the frame begins after the last gap before ``end`` (an old hole in a file does not stop a
    recent range; ask for ``gaps="fill"`` to go across it).

    The metrics frame holds every metric stored for the asset at this interval (possibly none),
    **point in time**: each value is stamped at the first bar whose close comes after the value
    was known (its period's end plus ``metrics_delay``, default
    :data:`cryptorl.data.pointintime.DEFAULT_DELAY`; see :mod:`cryptorl.data.pointintime`);
    align it with :func:`align_metrics`. Demo metrics are known at their bar's close already.
    """
    if source is None:
        warn_demo(f"load_data({asset!r})")
        source = "demo"
    src, argument = get_source(source, serves="market")
    if gaps == "error":
        gaps = "raise"
    if src.name == "demo":
        return demo_data(asset, interval, start, end)
    if src.needs_range:  # a download: the commands fill the store first (--source on the command line)
        raise ValueError(
            f"{source} downloads bars: fill the store first (python -m experiments.fetch_data --source {source}), "
            "then load with source='store'"
        )
    owned = not isinstance(store, DataStore)
    if owned and src.prepare is None:
        root = Path(store) if store is not None else default_root()
        if not (root / "prices.sqlite").is_file():
            raise DataError(
                asset,
                f"no {interval} market data: there is no data store in {root} (fill it with "
                "python -m experiments.fetch_data, or give --store)",
            )
    st = DataStore(store) if owned else store
    try:
        if src.prepare is not None:  # a local source (csv:PATH): its files into the store first (idempotent)
            request = FetchRequest((asset,), interval, argument=argument, progress=False)
            src.prepare(request)(st)
        if start is None and gaps == "raise":
            holes = st.gaps(asset, interval, None, end)
            if holes:
                start = holes[-1].before
        market = st.market(asset, interval, start, end, gaps=gaps)
        return market, _point_in_time(st, asset, interval, start, end, metrics_delay)
    finally:
        if owned:
            st.close()


def _point_in_time(st: DataStore, asset: str, interval: str, start, end, delay) -> pd.DataFrame:
    """The stored metrics in ``[start, end]`` re-stamped at the bar where each value is known (demo
    metrics as they are)."""
    from .frames import interval_timedelta, to_utc_timestamp
    from .pointintime import DEFAULT_DELAY, as_known

    start = to_utc_timestamp(start)
    # values stamped shortly before start become known inside the range: read them too
    reach = (
        pd.Timedelta(days=1) + interval_timedelta(interval) + (DEFAULT_DELAY if delay is None else pd.Timedelta(delay))
    )
    metrics = st.metrics(asset, interval, None if start is None else start - reach, end)
    if metrics.shape[1] == 0:
        return metrics
    demo = [m for m, sources in st.metric_sources(asset, interval).items() if sources == {"demo"}]
    other = [c for c in metrics.columns if c not in demo]
    known = as_known(metrics[other], interval, delay=delay) if other else metrics[[]]
    out = pd.concat([metrics[[c for c in metrics.columns if c in demo]], known], axis=1, sort=True)
    out = out[list(metrics.columns)]
    out = out.dropna(how="all")
    if start is not None:
        out = out[out.index >= start]
    if end is not None:
        out = out[out.index <= to_utc_timestamp(end)]
    return out


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
    "register_source",
    "validate_market",
    "validate_metrics",
]
