"""Walk-forward: segment plan, one stitched backtest, report files, and no look-ahead."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.crypto_module import CMConfig
from agents.walk_forward import STRATEGY, plan_segments, run_walk_forward
from cryptorl.data.demo import demo_data
from cryptorl.data.frames import to_utc_timestamp as utc
from cryptorl.portfolio.backtest import backtest
from experiments import walk_forward as cli

DAY = pd.Timedelta("1D")


def _index(start="2020-01-01", end="2022-12-31", freq="1D") -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq=freq, tz="UTC", name="time")


def test_plan_by_hand():
    segs = plan_segments(
        _index(), start="2022-06-01", end="2022-08-29", train_window="450d", val_window="60d", step="30d", interval="1d"
    )
    assert [(s.start, s.end) for s in segs] == [
        (utc("2022-06-01"), utc("2022-06-30")),
        (utc("2022-07-01"), utc("2022-07-30")),
        (utc("2022-07-31"), utc("2022-08-29")),
    ]
    first = segs[0].split
    assert first.validation == (utc("2022-04-02"), utc("2022-05-31"))
    assert first.train == (utc("2021-01-07"), utc("2022-04-01 23:59:59"))
    # a one-bar tail joins the previous segment
    segs = plan_segments(
        _index(), start="2022-06-01", end="2022-07-01", train_window="90d", val_window="30d", step="30d", interval="1d"
    )
    assert [(s.start, s.end) for s in segs] == [(utc("2022-06-01"), utc("2022-07-01"))]
    with pytest.raises(ValueError, match="at least two"):
        plan_segments(
            _index(),
            start="2022-06-01",
            end="2022-07-01",
            train_window="90d",
            val_window="30d",
            step="1d",
            interval="1d",
        )


@settings(max_examples=40, deadline=None)
@given(
    offset=st.integers(0, 400),
    length=st.integers(1, 300),
    step=st.integers(2, 90),
    val=st.integers(1, 90),
    six_hours=st.booleans(),
)
def test_plan_partitions_the_range_and_trains_before_each_segment(offset, length, step, val, six_hours):
    freq, bar = ("6h", pd.Timedelta("6h")) if six_hours else ("1D", DAY)
    index = _index(freq=freq)
    start = utc("2021-01-01") + offset * bar
    end = start + length * bar
    segs = plan_segments(
        index,
        start=start,
        end=end,
        train_window="200d",
        val_window=f"{val}d",
        step=step * bar,
        interval="6h" if six_hours else "1d",
    )
    bars = index[(index >= start) & (index <= end)]
    covered = pd.DatetimeIndex(np.concatenate([bars[(bars >= s.start) & (bars <= s.end)] for s in segs]))
    assert covered.equals(pd.DatetimeIndex(bars))  # every bar once, in order
    for prev, seg in pairwise(segs):
        assert seg.start == prev.end + bar  # contiguous
    for seg in segs:
        assert len(bars[(bars >= seg.start) & (bars <= seg.end)]) >= 2
        assert seg.split.validation[1] == seg.start - bar  # the last bar closed at the segment start
        assert seg.split.train[1] < seg.split.validation[0] <= seg.split.validation[1] < seg.start


# -- end to end ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_end_to_end_two_assets_three_segments(tmp_path, capsys, ray_local):  # modules trained on Ray
    out = tmp_path / "wf"
    argv = [
        "--assets",
        "BTC,ETH",
        "--start",
        "2022-06-01",
        "--end",
        "2022-08-29",
        "--step",
        "30d",
        "--timesteps",
        "512",
        "--ensemble",
        "1",
        "--eval-freq",
        "256",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "Walk-forward BTC+ETH" in printed
    for name in (
        "metrics.md",
        "metrics.csv",
        "cumulative_returns.png",
        "segments.csv",
        "weights.csv",
        "config.json",
        "weights_walk_forward_cryptorlpm.png",
    ):
        assert (out / name).is_file(), name

    segments = pd.read_csv(out / "segments.csv", index_col="segment")
    assert list(segments["start"].str[:10]) == ["2022-06-01", "2022-07-01", "2022-07-31"]
    for asset in ("BTC", "ETH"):
        assert (pd.to_datetime(segments[f"data_end_{asset}"]) < pd.to_datetime(segments["start"])).all()
    table = pd.read_csv(out / "metrics.csv", index_col="strategy")
    assert list(table.index) == [STRATEGY, "B&H BTC", "B&H ETH", "B&H equal weight", "CRP equal weight", "Trend SMA20"]

    # One backtest over the stitched weights: the report's figures are those of the whole span ...
    weights = pd.read_csv(out / "weights.csv", index_col="time", parse_dates=["time"])
    assert weights.index[0] == utc("2022-06-01") and weights.index[-1] == utc("2022-08-29")
    assert len(weights) == 90 and (weights.index.to_series().diff().dropna() == DAY).all()
    markets = {a: demo_data(a, "1d", "2022-05-01", "2022-09-30")[0] for a in ("BTC", "ETH")}
    res = backtest(weights, markets, interval="1d")
    assert table.loc[STRATEGY, "ARR"] == pytest.approx(res.metrics()["ARR"], abs=1e-9)
    # ... and the trade at a segment boundary starts from the holdings drifted since the previous
    # segment's last decision (not from cash): turnover by hand.
    for boundary in ("2022-07-01", "2022-07-31"):
        t = utc(boundary)
        prev = weights.loc[t - DAY].to_numpy()
        y = np.r_[1.0, [markets[a].loc[t, "close"] / markets[a].loc[t - DAY, "close"] for a in ("BTC", "ETH")]]
        drifted = prev * y / (prev @ y)
        expected = np.abs(weights.loc[t].to_numpy()[1:] - drifted[1:]).sum()
        assert res.turnover.loc[t] == pytest.approx(expected, abs=1e-12)


def test_cli_user_errors(tmp_path, capsys):
    for argv, message in [
        (["--assets", "BTC,BTC"], "twice"),
        (["--assets", "BTC", "--step", "soon"], "--step: cannot read"),
        (["--assets", "BTC", "--start", "2019-01-01", "--end", "2019-03-01", "--source", "csv:/nonexistent"], ""),
        (
            ["--assets", "BTC", "--start", "2022-06-01", "--end", "2022-06-10", "--step", "1d", "--source", "demo"],
            "at least two",
        ),
    ]:
        assert cli.main([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("walk_forward: error: ") and message in err and "Traceback" not in err


# -- no look-ahead -------------------------------------------------------------------------------
def _perturbed(market: pd.DataFrame, metrics: pd.DataFrame, after: pd.Timestamp, seed: int):
    """Scramble every bar and metric value at or after ``after`` (OHLC scaled together: still valid bars)."""
    rng = np.random.default_rng(seed)
    m = market.copy()
    rows = m.index >= after
    factor = rng.uniform(0.5, 1.5, rows.sum())
    for col in ("open", "high", "low", "close"):
        m.loc[rows, col] = m.loc[rows, col].to_numpy() * factor
    m.loc[rows, "volume"] = rng.uniform(1.0, 1e6, rows.sum())
    x = metrics.copy()
    later = x.index >= after
    x.loc[later] = rng.normal(0.0, 10.0, (later.sum(), x.shape[1]))
    return m, x


@pytest.mark.slow
def test_no_look_ahead_across_segments():
    assets = ("BTC", "ETH")
    data = {a: demo_data(a, "1d", "2020-06-01", "2022-09-30") for a in assets}
    cfg = CMConfig(timesteps=256, ensemble=1)
    kw = {
        "start": "2022-06-01",
        "end": "2022-07-20",
        "train_window": "300d",
        "val_window": "45d",
        "step": "30d",
        "eval_freq": 256,
        "progress": False,
        "workers": 1,
    }
    base = run_walk_forward({a: d[0] for a, d in data.items()}, {a: d[1] for a, d in data.items()}, cfg, **kw)
    s2 = base.segments[1].segment.start
    assert s2 == utc("2022-07-01")
    changed = {a: _perturbed(*data[a], s2, seed=i) for i, a in enumerate(assets)}
    other = run_walk_forward({a: d[0] for a, d in changed.items()}, {a: d[1] for a, d in changed.items()}, cfg, **kw)

    # The weights of the earlier segment, and the value path before s2, do not move.
    pd.testing.assert_frame_equal(base.segments[0].weights, other.segments[0].weights)
    pd.testing.assert_frame_equal(base.weights.loc[: s2 - DAY], other.weights.loc[: s2 - DAY])
    pd.testing.assert_series_equal(base.result.values.loc[: s2 - DAY], other.result.values.loc[: s2 - DAY])

    # Each segment's models saw nothing at or after the segment's start ...
    for run in base.segments:
        for asset, module in run.modules.items():
            assert run.data_end[asset] < run.segment.start
            assert module.train_end < run.segment.start
    # ... so the second segment's models are the same, bit for bit, although the data after s2 differ.
    for asset in assets:
        a, b = base.segments[1].modules[asset], other.segments[1].modules[asset]
        assert a.dru.metrics == b.dru.metrics
        for (ka, va), (kb, vb) in zip(a.sam.policy.state_dict().items(), b.sam.policy.state_dict().items()):
            assert ka == kb and torch.equal(va, vb), (asset, ka)
        # the perturbation is visible to any model that reads those bars: the inputs differ from s2 on
        fa = a.features(*data[asset])
        fb = a.features(*changed[asset])
        pd.testing.assert_frame_equal(fa.loc[: s2 - DAY], fb.loc[: s2 - DAY])
        assert not np.allclose(fa.loc[s2:].to_numpy(), fb.loc[s2:].to_numpy())
