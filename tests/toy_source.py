"""A data source of one's own, registered from outside the package: bars from a JSON file
``{"BTC": [[open time ms, open, high, low, close, volume], ...]}`` (what a user's file calling
``register_source`` would hold)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cryptorl.data.frames import validate_market
from cryptorl.data.sources import Fetched, register_source


def read_bars(path: Path, asset: str, interval: str) -> pd.DataFrame:
    rows = json.loads(path.read_text())[asset]
    frame = pd.DataFrame([r[1:] for r in rows], columns=["open", "high", "low", "close", "volume"])
    frame.index = pd.DatetimeIndex(pd.to_datetime([r[0] for r in rows], unit="ms", utc=True), name="time")
    return validate_market(frame, asset, interval)


def prepare(request):
    path = Path(request.argument)
    if not path.is_file():
        raise ValueError(f"jsonbars:{request.argument}: no such file")
    frames = {a: read_bars(path, a, request.interval) for a in request.assets}  # read and checked before writing

    def write(store):
        for asset, market in frames.items():
            store.upsert_market(asset, request.interval, market, "jsonbars", replace=request.replace)
        return Fetched()

    return write


SOURCE = register_source(
    "jsonbars", "bars from a JSON file", prepare=prepare, argument="PATH", needs_range=False, replace=True
)
