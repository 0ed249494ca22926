"""Forecasters and Sharpe-trained networks: they learn what can be learned, and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from agents.base import drawdown_overlay, validate_weights
from agents.forecasters.attention_lstm import AttentionLSTMForecaster
from agents.forecasters.dlm import DLMAgent
from agents.forecasters.dls import DLSAgent
from agents.forecasters.features import MetricScaler, atr, forecast_errors, relative_to_first
from agents.forecasters.lstm import LSTMForecaster
from agents.forecasters.training import TrainConfig, sharpe_loss
from agents.forecasters.transformer import TransformerForecaster
from cryptorl.data.demo import demo_data, demo_planted

ASSETS = ("BTC", "ETH", "LINK")
TRAIN_END, TEST_START = "2021-09-30", "2021-10-01"


def planted(signal_strength: float = 0.25) -> tuple[dict, dict]:
    """Demo markets with each asset's three leading metrics, oriented and named alike.

    The leading metrics carry the demo's planted drift. Each is logged and multiplied by the
    sign of its correlation with the next return *on the training range only* (what a metric
    selector would estimate), and named lead0..lead2, so that one network shared by all assets
    reads inputs with the same meaning for every asset.
    """
    mk, mx = {}, {}
    for a in ASSETS:
        mk[a], x = demo_data(a, start="2019-06-01", end="2022-09-30", signal_strength=signal_strength)
        lead = np.log(x[demo_planted(a).leading])
        nxt = np.log(mk[a]["close"]).diff().shift(-1).fillna(0.0)
        tr = lead.index <= pd.Timestamp(TRAIN_END, tz="UTC")
        sign = np.sign([np.corrcoef(lead[c][tr], nxt[tr])[0, 1] for c in lead.columns])
        mx[a] = np.exp(lead * sign).set_axis([f"lead{i}" for i in range(3)], axis=1)
    return mk, mx


def tiny(kind: str, seed: int):
    cfg = TrainConfig(epochs=12, patience=3, lr=3e-3, seed=seed)
    if kind == "lstm":
        return LSTMForecaster(window=10, hidden=8, use_metrics=True, config=cfg)
    if kind == "attention_lstm":
        return AttentionLSTMForecaster(window=10, hidden=(8, 8), use_metrics=True, config=cfg)
    return TransformerForecaster(window=10, d_model=8, heads=2, layers=1, ff=16, use_metrics=True, config=cfg)


@pytest.fixture(scope="module")
def signal_data():
    return planted(0.25)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "attention_lstm", "transformer"])
def test_forecaster_beats_the_naive_forecast_on_the_planted_signal(kind, signal_data):
    mk, mx = signal_data
    for seed in (0, 1):
        f = tiny(kind, seed).fit(mk, mx, end=TRAIN_END)
        err = f.errors(mk, mx, start=TEST_START)
        assert err["n"].min() > 300
        # skill = 1 - MSE / MSE(last value): > 0 means the forecast beats the naive one out of sample
        assert err["skill"].mean() > 0.01, (seed, err["skill"].to_dict())
        assert (err["skill"] > 0).sum() >= 2, (seed, err["skill"].to_dict())
        assert err["hit_rate"].mean() > 0.52, (seed, err["hit_rate"].to_dict())


@pytest.mark.slow
def test_without_a_signal_there_is_no_skill():
    """Negative control: the same pipeline on a demo market with no planted drift."""
    mk, mx = planted(0.0)
    err = tiny("lstm", 0).fit(mk, mx, end=TRAIN_END).errors(mk, mx, start=TEST_START)
    assert err["skill"].mean() < 0.005, err["skill"].to_dict()


def test_training_is_seeded_logged_and_leaves_the_callers_rng_alone(tmp_path):
    mk = {a: demo_data(a, start="2021-01-01", end="2021-06-30")[0] for a in ("BTC", "ETH")}
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    f1 = LSTMForecaster(window=10, hidden=4, config=TrainConfig(epochs=2, seed=7, log_dir=tmp_path)).fit(
        mk, end="2021-05-31"
    )
    assert torch.equal(torch.rand(3), expected)  # fit ran in a forked RNG
    f2 = LSTMForecaster(window=10, hidden=4, config=TrainConfig(epochs=2, seed=7)).fit(mk, end="2021-05-31")
    pd.testing.assert_frame_equal(f1.forecast(mk, start="2021-06-01"), f2.forecast(mk, start="2021-06-01"))
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} == {"BTC", "ETH"}  # one log per per-coin model
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "lstm" / "BTC")).Reload()
    assert {"loss/train", "loss/val"} <= set(acc.Tags()["scalars"])
    np.testing.assert_allclose([e.value for e in acc.Scalars("loss/train")], f1.history["BTC"].train_loss, rtol=1e-6)
    np.testing.assert_allclose([e.value for e in acc.Scalars("loss/val")], f1.history["BTC"].val_loss, rtol=1e-6)


@pytest.mark.parametrize("target", ["return", "price"])
def test_targets_convert_back_to_the_next_close(target):
    close = np.array([10.0, 11.0, 12.0, 9.0, 10.0, 13.0])
    f = LSTMForecaster(window=3, target=target)
    y = f._targets(close)
    np.testing.assert_allclose(f._to_close(y, close)[:-1], close[3:])  # a perfect target gives the next close
    assert np.isnan(y[-1])  # the last window's next close is unknown


def test_transformer_scales_with_training_rows_only():
    mk = {"BTC": demo_data("BTC", start="2021-01-01", end="2021-06-30")[0]}
    f = TransformerForecaster(window=5, d_model=4, heads=2, layers=1, ff=8, config=TrainConfig(epochs=1)).fit(
        mk, end="2021-03-31"
    )
    raw = f.raw_inputs(mk["BTC"].loc[:"2021-03-31"])
    np.testing.assert_allclose(f.minmax["BTC"].data_max_, raw.max(axis=0))
    np.testing.assert_allclose(f.minmax["BTC"].data_min_, raw.min(axis=0))


def test_atr_hand_case():
    m = pd.DataFrame({"high": [10.0, 12.0, 11.0], "low": [8.0, 9.0, 7.0], "close": [9.0, 11.0, 8.0]})
    # TR: 2 (first bar: high-low), max(3, 3, 0)=3, max(4, 0, 4)=4 -> ATR(2): 2, 2.5, 3.5
    np.testing.assert_allclose(atr(m, 2).to_numpy(), [2.0, 2.5, 3.5])


def test_relative_to_first_hand_case():
    w = np.array([[[2.0, 0.0], [3.0, 5.0], [1.0, 1.0]]])
    np.testing.assert_allclose(relative_to_first(w), [[[0.0, 0.0], [0.5, 0.0], [-0.5, 0.0]]])


def test_metric_scaler_uses_training_statistics_only():
    idx = pd.date_range("2021-01-01", periods=6, freq="D", tz="UTC", name="time")
    x = pd.DataFrame({"m": [1.0, 1.0, 100.0, 100.0, 1e6, 1e6], "neg": [-1.0, 1.0, -1.0, 1.0, 50.0, 50.0]}, index=idx)
    s = MetricScaler().fit(x.iloc[:4], idx[:4])
    z = s.transform(x, idx)
    # m is positive -> logged; on rows 0-3 log m = 0, 0, ln100, ln100: mean ln10, std ln10
    np.testing.assert_allclose(z[:4, 0], [-1, -1, 1, 1])
    assert z[4, 0] == pytest.approx((np.log(1e6) - np.log(10)) / np.log(10))
    np.testing.assert_allclose(z[:4, 1], [-1, 1, -1, 1])  # not positive -> raw z-score


def test_forecast_errors_hand_case():
    actual, pred, last = np.array([11.0, 9.0, 10.0]), np.array([10.5, 9.5, 10.0]), np.array([10.0, 10.0, 10.0])
    e = forecast_errors(actual, pred, last)
    assert e["MSE"] == pytest.approx((0.25 + 0.25 + 0) / 3)
    assert e["naive_MSE"] == pytest.approx((1 + 1 + 0) / 3)
    assert e["skill"] == pytest.approx(0.75)
    assert e["MAE"] == pytest.approx(1 / 3)
    assert e["hit_rate"] == pytest.approx(1.0)


def test_sharpe_loss_hand_case():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    r = torch.tensor([[0.02, -0.01], [0.00, 0.04], [0.02, 0.00]])
    port = np.array([0.02, 0.04, 0.01])
    expected = -port.mean() / port.std() + 0.5 * 0.1 * np.mean([1.0, 1.0, 0.5])
    assert float(sharpe_loss(w, r, l2=0.1, eps=0.0)) == pytest.approx(expected, rel=1e-5)


def test_drawdown_overlay_moves_to_cash_at_the_limit():
    idx = pd.date_range("2022-01-01", periods=8, freq="D", tz="UTC", name="time")
    closes = pd.DataFrame({"A": [100, 95, 89, 85, 80, 90, 100, 100.0]}, index=idx)
    w = pd.DataFrame({"cash": 0.0, "A": 1.0}, index=idx)
    out = drawdown_overlay(w, closes, limit=0.10, cooldown=2)
    # value 1, .95, .89 (-11 % -> cash at t2 and t3), then the peak resets at .89 and A is held again
    np.testing.assert_allclose(out["A"].to_numpy(), [1, 1, 0, 0, 1, 1, 1, 1])
    assert (out.sum(axis=1) == 1).all()


def test_attention_optimiser_respects_the_cap_and_holds_cash_when_all_fall():
    rng = np.random.default_rng(0)
    ret = pd.DataFrame(rng.normal(0, 0.03, (90, 3)), columns=["A", "B", "C"])
    agent = AttentionLSTMForecaster(max_weight=0.3)
    up = agent.optimise(np.array([0.01, 0.02, 0.015]), ret)
    assert up.max() <= 0.3 + 1e-6 and up.sum() == pytest.approx(0.9, abs=1e-4)  # capped; the rest is cash
    down = agent.optimise(np.array([-0.01, -0.02, -0.015]), ret)
    assert down.sum() == pytest.approx(0.0, abs=1e-5)


def trend_markets(n: int = 700, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Two synthetic assets: UP drifts up, DOWN drifts down, same noise level."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC", name="time")
    out = {}
    for name, mu in (("UP", 0.004), ("DOWN", -0.004)):
        c = 100 * np.exp(np.cumsum(rng.normal(mu, 0.02, n)))
        out[name] = pd.DataFrame({"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": 1e6}, index=idx)
    return out


@pytest.mark.parametrize("kind", ["dls", "dlm"])
def test_sharpe_networks_learn_to_hold_the_rising_asset(kind):
    mk = trend_markets()
    cfg = TrainConfig(epochs=15, lr=1e-2, patience=5, seed=0)
    if kind == "dls":
        agent = DLSAgent(window=10, hidden=8, config=cfg)
    else:
        agent = DLMAgent(
            forecaster=LSTMForecaster(window=10, hidden=4, config=TrainConfig(epochs=2)), window=5, hidden=4, config=cfg
        )
    agent.fit(mk, end="2021-06-30")
    w = agent.weights(mk, start="2021-07-01")
    validate_weights(w, ["UP", "DOWN"])
    assert w["UP"].mean() > 0.7, w.mean().to_dict()
