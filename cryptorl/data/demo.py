"""A built-in demo market: deterministic synthetic OHLCV and on-chain metrics, no network.

How the generator works (per interval ``dt``, in days):

* **Common market factor** ``f_t``: GARCH(1,1) volatility with Student-t (5 d.o.f.) shocks,
  shared by every asset (seeded by the interval and ``seed`` only, never the ticker).
* **Regimes**: a two-state Markov chain (bull / bear, mean stay ~150 days) adds a small drift.
* **Latent signal** ``d_t``: an AR(1) process (per-bar persistence ``0.95``) private to each
  asset. Next-bar returns carry ``signal_strength * sigma_t * d_t``: the drift that the
  planted leading metrics reveal.
* **Returns** ``r_{t+1} = beta * f_{t+1} + e_{t+1} + drift_t``, ``e`` the asset's own GARCH
  noise; volatility scales with ``sqrt(dt)`` so every interval looks like a crypto market.
* **OHLC**: open is the previous close times a tiny gap; high/low extend the body by
  half-normal moves. **Volume** is log-normal and rises with ``|r|``.
* **Metrics pool** (Santiment-style names, :data:`METRIC_POOL`): each asset has 20-25 of them
  (which ones depends on the ticker). Three are **leading**: ``d_t`` plus noise, known at t, so
  they correlate with the *future* 12/24/48-bar returns. Three are **lagging**: sums of the
  *past* 24 returns plus noise. The rest are **noise**: AR(1) processes, random walks and
  trends. :func:`demo_planted` says which is which for a ticker.

Everything is a pure function of ``(ticker, interval, seed)`` and the dates: every component
has its own random generator, the series are generated on a fixed grid from :data:`EPOCH` and
then cut to ``[start, end]``, so overlapping ranges (starting on or after 2017-01-01) give
identical values whatever the end.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .frames import interval_seconds, to_utc_timestamp, validate_market, validate_metrics


class DemoDataWarning(UserWarning):
    """Synthetic demo prices were used where no data (or no source) was given."""


def warn_demo(what: str) -> None:
    """Say that the synthetic demo market stands in for real data (``what`` names the caller)."""
    import warnings

    warnings.warn(f"{what}: no market data given, using the built-in synthetic demo market (not real prices); "
                  "pass real data, or ask for the demo explicitly", DemoDataWarning, stacklevel=3)

EPOCH = pd.Timestamp("2017-01-01", tz="UTC")
DEFAULT_START = "2020-10-01"
DEFAULT_END = "2022-09-30"

METRIC_POOL = [
    "daily_active_addresses",
    "active_addresses_24h",
    "network_growth",
    "transaction_volume",
    "transactions_count_change",
    "velocity",
    "exchange_inflow",
    "exchange_outflow",
    "exchange_balance",
    "percent_of_total_supply_on_exchanges",
    "mvrv_usd",
    "nvt",
    "realized_value_usd",
    "age_consumed",
    "mean_dollar_invested_age",
    "whale_transaction_count_100k_usd_to_inf",
    "holders_distribution_over_1k",
    "circulation_1d",
    "dev_activity",
    "github_activity",
    "social_volume_total",
    "social_dominance_total",
    "sentiment_positive_total",
    "sentiment_negative_total",
    "fees_usd",
]

_BASE_PRICE = {"BTC": 10_000.0, "ETH": 350.0, "LINK": 10.0, "BNB": 30.0, "ADA": 0.1, "XRP": 0.25}


def _stable_seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


@dataclass(frozen=True)
class DemoPlan:
    """Which metrics a demo asset has and what each one is."""

    asset: str
    metrics: list[str]
    leading: list[str]
    lagging: list[str]
    noise: list[str]


def demo_planted(asset: str, seed: int = 0) -> DemoPlan:
    """The metric plan of a demo asset: available, leading, lagging and noise metrics."""
    rng = np.random.default_rng(_stable_seed("plan", asset.upper(), seed))
    n_missing = int(rng.integers(0, 6))
    missing = set(rng.choice(len(METRIC_POOL), size=n_missing, replace=False).tolist())
    have = [m for i, m in enumerate(METRIC_POOL) if i not in missing]
    order = rng.permutation(len(have))
    leading = [have[i] for i in order[:3]]
    lagging = [have[i] for i in order[3:6]]
    noise = [have[i] for i in order[6:]]
    return DemoPlan(asset.upper(), have, leading, lagging, noise)


def _grid(interval: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    step = pd.Timedelta(seconds=interval_seconds(interval))
    origin = EPOCH if start >= EPOCH else EPOCH - ((EPOCH - start) // step + 1) * step
    n = int((end - origin) // step) + 1
    return pd.date_range(origin, periods=max(n, 0), freq=step, name="time")


def _rng(*parts: object) -> np.random.Generator:
    """One generator per component, so every series is a prefix-stable function of its length."""
    return np.random.default_rng(_stable_seed(*parts))


def _garch(z: np.ndarray, vol: float, a: float = 0.08, b: float = 0.90) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) path driven by unit-variance shocks ``z``."""
    n = len(z)
    w = vol**2 * (1 - a - b)
    s2 = np.empty(n)
    x = np.empty(n)
    s2_prev, x_prev = vol**2, 0.0
    for t in range(n):
        s2_prev = w + a * x_prev**2 + b * s2_prev
        x_prev = np.sqrt(s2_prev) * z[t]
        s2[t], x[t] = s2_prev, x_prev
    return x, np.sqrt(s2)


def _t5(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_t(5, size=n) / np.sqrt(5 / 3)


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    z = rng.standard_normal(n + 1)
    out = np.empty(n)
    prev = z[0]
    eps = z[1:] * np.sqrt(1 - phi**2)
    for t in range(n):
        prev = phi * prev + eps[t]
        out[t] = prev
    return out


def _simulate(asset: str, interval: str, end: pd.Timestamp, start: pd.Timestamp, seed: int, signal_strength: float):
    asset = asset.upper()
    grid = _grid(interval, start, end)
    n = len(grid)
    dt = interval_seconds(interval) / 86400
    scale = np.sqrt(dt)
    vol = 0.025 * scale

    f, _ = _garch(_t5(_rng("factor", interval, seed), n), vol)
    stay = 1 - dt / 150
    regime = np.empty(n)
    state = 1.0
    for t, u in enumerate(_rng("regime", interval, seed).random(n)):
        if u > stay:
            state = -state
        regime[t] = state

    key = (asset, interval, seed)
    beta = 0.8 + 0.4 * _rng("beta", asset, seed).random()
    e, s_e = _garch(_t5(_rng("noise", *key), n), vol)
    d = _ar1(_rng("signal", *key), n, 0.95)
    sigma = np.sqrt((beta * vol) ** 2 + s_e**2)
    drift = signal_strength * sigma * d + 0.0008 * dt * regime
    r = beta * f + e
    r[1:] += drift[:-1]  # the drift known at t moves the return from t to t+1

    base = _BASE_PRICE.get(asset, 1.0 + (_stable_seed("price", asset) % 1000) / 10.0)
    close = base * np.exp(np.cumsum(r))
    gap = _rng("gap", *key).normal(0, 0.001 * scale, n)
    open_ = np.empty(n)
    open_[0] = close[0] * np.exp(-r[0])
    open_[1:] = close[:-1] * np.exp(gap[1:])
    high = np.maximum(open_, close) * np.exp(np.abs(_rng("high", *key).normal(0, 0.4, n)) * sigma)
    low = np.minimum(open_, close) * np.exp(-np.abs(_rng("low", *key).normal(0, 0.4, n)) * sigma)
    volume = np.exp(_rng("volume", *key).normal(np.log(1e6 * dt), 0.3, n) + 0.8 * np.abs(r) / np.maximum(sigma, 1e-12))
    market = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=grid)

    plan = demo_planted(asset, seed)
    past24 = pd.Series(r).rolling(24, min_periods=1).sum().to_numpy() / (vol * np.sqrt(24 * (1 + beta**2)))
    years = np.arange(n) * dt / 365
    cols: dict[str, np.ndarray] = {}
    for name in plan.metrics:
        rng = _rng("metric", name, *key)
        level, sign_draw, kind = 10 ** rng.uniform(2, 7), rng.random(), int(rng.integers(0, 3))
        if name in plan.leading:
            x = d + 0.5 * rng.standard_normal(n)
        elif name in plan.lagging:
            x = past24 + 0.5 * rng.standard_normal(n)
        elif kind == 0:
            x = _ar1(rng, n, 0.9)
        elif kind == 1:  # random walk, unit variance per year
            x = np.cumsum(rng.standard_normal(n)) * np.sqrt(dt / 365)
        else:  # trend plus noise
            x = 0.8 * years - 2 + 0.3 * rng.standard_normal(n)
        sign = 1 if sign_draw < 0.7 else -1
        cols[name] = level * np.exp(0.2 * sign * x)
    metrics = pd.DataFrame(cols, index=grid)
    keep = (grid >= start) & (grid <= end)
    return market[keep], metrics[keep]


def _range(start, end):
    s = to_utc_timestamp(start if start is not None else DEFAULT_START)
    e = to_utc_timestamp(end if end is not None else DEFAULT_END)
    if e < s:
        raise ValueError(f"demo range ends ({e}) before it starts ({s})")
    return s, e


def demo_market(asset: str = "BTC", interval: str = "1d", start=None, end=None, **kw) -> pd.DataFrame:
    """Synthetic OHLCV market frame for ``asset`` (default 2020-10-01 .. 2022-09-30, the paper's
    span); ``start``, ``end`` and the keywords as :func:`demo_data`."""
    return demo_data(asset, interval, start, end, **kw)[0]


def demo_metrics(asset: str = "BTC", interval: str = "1d", start=None, end=None, **kw) -> pd.DataFrame:
    """Synthetic metrics frame for ``asset`` on the same index as :func:`demo_market`."""
    return demo_data(asset, interval, start, end, **kw)[1]


def demo_data(
    asset: str = "BTC",
    interval: str = "1d",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    seed: int = 0,
    signal_strength: float = 0.4,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(market, metrics)`` for a demo asset in one pass."""
    s, e = _range(start, end)
    market, metrics = _simulate(asset, interval, e, s, seed, signal_strength)
    return validate_market(market, asset.upper(), interval), validate_metrics(metrics, asset.upper(), interval)
