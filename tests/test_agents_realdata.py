"""The Chen & Zheng (2025) LSTM forecaster on real daily prices (../shared/data): honest errors, tiny settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.forecasters.lstm import LSTMForecaster
from agents.forecasters.training import TrainConfig
from cryptorl.data.frames import validate_market


def read_daily(shared_data, ticker: str) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "prices" / "daily" / f"{ticker}-USD_1d.csv", parse_dates=["datetime"])
    df = df.set_index("datetime").loc["2019-01-01":"2022-06-30"]
    return validate_market(df, ticker, "1d")


@pytest.mark.realdata
def test_lstm_reports_honest_errors_on_real_prices(shared_data):
    mk = {t: read_daily(shared_data, t) for t in ("BTC", "ETH")}
    f = LSTMForecaster(window=20, hidden=8, config=TrainConfig(epochs=5, seed=0)).fit(mk, end="2021-12-31")
    err = f.errors(mk, start="2022-01-01", end="2022-06-30")
    assert (err["n"] == 180).all()  # 181 decision bars, the last has no next close in range
    assert np.isfinite(err[["MSE", "RMSE", "MAE", "R2", "naive_MSE", "skill"]].to_numpy()).all()
    # price-level R2 is high for any forecast that stays near the last close, the naive one too:
    # the table shows both, and the skill against the naive forecast is small either way
    assert (err["naive_R2"] > 0.9).all()
    assert (err["R2"] > 0.8).all()
    assert (err["skill"].abs() < 0.5).all()
    assert err["hit_rate"].between(0.3, 0.7).all()
