"""Golden figures: ``compare``, ``evaluate`` and ``walk_forward`` on the built-in demo market give
the figures recorded in ``tests/golden/*.json`` (to 1e-9), so that a change to how strategies are
looped over, weighted or backtested shows up as a changed number.

After a change that is meant to move the figures, rewrite the files with
``CRYPTORL_WRITE_GOLDEN=1 python -m pytest tests/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
PROTOCOLS = ROOT / "experiments" / "protocols"


def _table(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{row: {column: value}}`` of a figures table (numeric columns only)."""
    num = frame.select_dtypes("number")
    return {str(i): {str(c): float(v) for c, v in row.items()} for i, row in num.iterrows()}


def _check(name: str, figures: dict) -> None:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("CRYPTORL_WRITE_GOLDEN"):
        path.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {path}")
    expected = json.loads(path.read_text())
    assert sorted(figures) == sorted(expected)
    for table, rows in expected.items():
        assert sorted(figures[table]) == sorted(rows), table
        for row, cols in rows.items():
            assert sorted(figures[table][row]) == sorted(cols), (table, row)
            for col, want in cols.items():
                got = figures[table][row][col]
                same = (math.isnan(want) and math.isnan(got)) or got == pytest.approx(want, rel=1e-9, abs=1e-9)
                assert same, f"{name}: {table}[{row!r}][{col!r}] = {got!r}, recorded {want!r}"


def test_compare_figures(tmp_path):
    """Allocators, the agent and function buy-and-holds, the baselines and an extra strategy."""
    from experiments import compare

    idx = pd.date_range("2022-03-01", "2022-09-30", freq="D", tz="UTC", name="time")
    pd.DataFrame({"cash": 0.5, "BTC": 0.3, "ETH": 0.2, "LINK": 0.0}, index=idx).to_csv(tmp_path / "cm.csv")
    out = tmp_path / "report"
    argv = ["--assets", "BTC,ETH,LINK", "--source", "demo", "--out", str(out),
            "--agents", "max_sharpe,min_variance,momentum,equal_weight,buy_and_hold",
            "--extra", f"fixed={tmp_path / 'cm.csv'}", "--execution", "next_open", "--fee", "0.002"]  # fmt: skip
    assert compare.main(argv) == 0
    figures = {
        "metrics": _table(pd.read_csv(out / "metrics.csv", index_col=0)),
        "reliability": _table(pd.read_csv(out / "reliability.csv", index_col=0)),
    }
    _check("compare", figures)


def _keyed(frame: pd.DataFrame, *keys: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.index = [" ".join(str(v) for v in row) for row in frame[list(keys)].itertuples(index=False)]
    return frame.drop(columns=[k for k in keys if k in frame.select_dtypes("number").columns])


def test_evaluate_baselines_figures():
    """Every baseline of the demo walk-forward protocol, per window and stitched (nothing trained)."""
    from agents.evaluation import load_markets, load_protocol, score
    from agents.evaluation.scoreboard import build_scoreboard

    protocol = load_protocol(PROTOCOLS / "demo_walk_forward.yml")
    scores = score(protocol, load_markets(protocol, progress=False), None, baselines_only=True)
    board = build_scoreboard(protocol, scores, reps=200)
    figures = {
        "runs": _table(_keyed(scores.runs, "window", "portfolio", "strategy", "seed")),
        "scoreboard": _table(_keyed(board.stitched, "portfolio", "strategy")),
        "versus": _table(_keyed(board.versus, "portfolio", "strategy", "baseline")),
    }
    _check("evaluate_baselines", figures)


@pytest.mark.slow
def test_evaluate_figures(tmp_path):
    """The demo protocol end to end: its trained modules, voted portfolios and baselines."""
    from agents.evaluation import evaluate, load_markets, load_protocol, score

    protocol = load_protocol(PROTOCOLS / "demo_tiny.yml")
    data = load_markets(protocol, progress=False)
    evaluate(protocol, tmp_path, data=data, workers=1, progress=False)
    scores = score(protocol, data, tmp_path)
    cms = _keyed(scores.cms, "window", "config", "asset", "seed").drop(columns=["beats_own_bh"])
    figures = {"runs": _table(_keyed(scores.runs, "window", "portfolio", "strategy", "seed")), "cms": _table(cms)}
    _check("evaluate", figures)


@pytest.mark.slow
def test_walk_forward_figures():
    """Two segments on two demo assets: the stitched strategy and the baselines over its span."""
    from agents.crypto_module import CMConfig
    from agents.walk_forward import run_walk_forward
    from cryptorl.data.demo import demo_data

    data = {a: demo_data(a, "1d", "2020-06-01", "2022-09-30") for a in ("BTC", "ETH")}
    result = run_walk_forward(
        {a: d[0] for a, d in data.items()},
        {a: d[1] for a, d in data.items()},
        CMConfig(timesteps=256, ensemble=1),
        start="2022-06-01",
        end="2022-07-20",
        train_window="300d",
        val_window="45d",
        step="30d",
        eval_freq=256,
        progress=False,
        workers=1,
    )
    metrics = pd.DataFrame({n: r.metrics() for n, r in result.results().items()}).T
    weights = result.weights.copy()
    weights.index = weights.index.strftime("%Y-%m-%d")
    _check("walk_forward", {"metrics": _table(metrics), "weights": _table(weights)})
