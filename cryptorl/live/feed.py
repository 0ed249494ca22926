"""Closed bars for the live loop: from an exchange's public API, or from the offline demo market.

A bar source answers ``market(asset, end, bars)``: a market frame (see
:mod:`cryptorl.data.frames`) of the ``bars`` most recent **closed** bars whose open time is
``<= end``. The loop passes ``end`` = the last closed bar, so a bar still forming is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pandas as pd

from cryptorl.data.demo import demo_data
from cryptorl.data.frames import (
    OHLCV,
    interval_timedelta,
    to_utc_timestamp,
    validate_market,
)


class BarsNotReady(RuntimeError):
    """The exchange has not published the bar the loop asks for yet (retry a little later)."""


class BarSource(Protocol):
    def market(self, asset: str, end: Any, bars: int = 100) -> pd.DataFrame: ...


class ExchangeBars:
    """Closed OHLCV bars through ccxt's ``fetch_ohlcv`` (public endpoint, no API key needed).

    A bar counts as closed when its open time plus the interval is not after ``now()`` (ms;
    default the exchange object's clock), so the candle still forming is never returned.
    """

    def __init__(self, exchange: Any, interval: str, quote: str = "USDT", *, now: Callable[[], int] | None = None):
        self.exchange, self.interval, self.quote = exchange, interval, quote.upper()
        self.step = interval_timedelta(interval)
        self.now = now or exchange.milliseconds

    def market(self, asset: str, end: Any, bars: int = 100) -> pd.DataFrame:
        end = to_utc_timestamp(end)
        symbol = f"{asset.upper()}/{self.quote}"
        since = end - (bars - 1) * self.step
        rows = self.exchange.fetch_ohlcv(symbol, self.interval, since=int(since.value // 1_000_000), limit=bars)
        frame = pd.DataFrame([r[:6] for r in rows], columns=["time", *OHLCV])
        frame.index = pd.DatetimeIndex(
            pd.to_datetime(frame.pop("time").astype("int64"), unit="ms", utc=True), name="time"
        )
        closed_by = pd.Timestamp(self.now(), unit="ms", tz="UTC") - self.step
        frame = frame[(frame.index <= end) & (frame.index <= closed_by)]  # never the bar still forming
        if end not in frame.index:
            raise BarsNotReady(f"[{asset}] {self.exchange.id} has not published the {self.interval} bar of {end} yet")
        return validate_market(frame, asset.upper(), self.interval, allow_gaps=True)


class DemoBars:
    """The built-in deterministic demo market and metrics (no network): for trying the loop offline.

    :func:`cryptorl.data.demo.demo_data` draws its random series for the whole requested span,
    so a bar's values depend on the range's end. To give the loop one consistent history, the
    series are generated once per asset up to a fixed ``horizon`` and cut from there.
    """

    def __init__(self, interval: str, seed: int = 0, horizon: str = "2030-01-01"):
        self.interval, self.seed = interval, seed
        self.step = interval_timedelta(interval)
        self.horizon = to_utc_timestamp(horizon)
        self._cache: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}

    def data(self, asset: str, end: Any, bars: int = 100) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(market, metrics)``: the ``bars`` bars up to ``end`` (open time) included."""
        end = to_utc_timestamp(end)
        if end > self.horizon:
            raise ValueError(f"[{asset}] the demo market ends at {self.horizon}; {end} is beyond it")
        asset = asset.upper()
        if asset not in self._cache:
            self._cache[asset] = demo_data(asset, self.interval, "2017-01-01", self.horizon, seed=self.seed)
        market, metrics = self._cache[asset]
        keep = (market.index <= end) & (market.index > end - bars * self.step)
        return market[keep], metrics[keep]

    def market(self, asset: str, end: Any, bars: int = 100) -> pd.DataFrame:
        return self.data(asset, end, bars)[0]


def paper_feeder(paper: Any, source: BarSource, assets: list[str], quote: str = "USDT", bars: int = 10):
    """A ``prepare(bar_time)`` hook for :class:`~cryptorl.live.loop.LiveTrader`: feeds the paper
    account the closed bars up to ``bar_time`` (pending orders fill at the next bar's open)."""

    def prepare(bar_time: pd.Timestamp) -> None:
        frames = {f"{a.upper()}/{quote.upper()}": source.market(a, bar_time, bars) for a in assets}
        paper.on_bars(frames)

    return prepare
