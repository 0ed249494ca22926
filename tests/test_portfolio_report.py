"""Reports: every file written, PNGs non-empty, table numbers equal the metrics."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from cryptorl.data.demo import demo_market
from cryptorl.portfolio import backtest, baselines, write_report


@pytest.fixture(scope="module")
def results():
    markets = {a: demo_market(a, start="2022-01-01", end="2022-04-30") for a in ["BTC", "ETH"]}
    frames = baselines(markets, start="2022-02-01", end="2022-04-30")
    return {name: backtest(w, markets, interval="1d") for name, w in frames.items()}


def test_report_writes_every_file(results, tmp_path):
    out = io.StringIO()
    paths = write_report(results, tmp_path / "rep", title="Demo", console=Console(file=out, width=200))
    assert set(paths) == {
        "table_md",
        "table_csv",
        "cumulative_png",
        "weights_b_h_equal_weight",
        "weights_crp_equal_weight",
        "weights_trend_sma20",
    }  # no weights plot for the single-asset buy-and-holds
    for key, path in paths.items():
        assert path.is_file() and path.stat().st_size > 0, key
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    table = pd.read_csv(paths["table_csv"], index_col="strategy")
    assert list(table.index) == list(results)
    for name, res in results.items():
        m = res.metrics()
        assert table.loc[name, "ARR"] == pytest.approx(m["ARR"], rel=1e-9)
        assert table.loc[name, "Sortino"] == pytest.approx(m["Sortino"], rel=1e-9)
    md = paths["table_md"].read_text()
    assert "| Strategy | ARR: total return (%) | DRR (%) | SR (Sortino) |" in md
    assert "fee 0.10%, slippage 0.00%; 2022-02-01 .. 2022-04-30." in md
    arr_btc = f"{results['B&H BTC'].metrics()['ARR'] * 100:.2f}"
    assert f"| B&H BTC | {arr_btc} |" in md
    printed = out.getvalue()
    assert "B&H BTC" in printed and str(paths["cumulative_png"]) in printed


def test_html_tear_sheet(results, tmp_path):
    two = {k: results[k] for k in ["CRP equal weight", "B&H BTC"]}
    paths = write_report(
        two, tmp_path, title="Demo", html=["CRP equal weight"], benchmark="B&H BTC", console=Console(file=io.StringIO())
    )
    sheet = paths["tearsheet_crp_equal_weight"]
    assert sheet.is_file() and "<html" in sheet.read_text()[:2000].lower()


def test_a_failing_tear_sheet_warns_and_the_rest_is_written(results, tmp_path, monkeypatch):
    import quantstats

    def broken(*args, **kwargs):
        raise RuntimeError("quantstats broke")

    monkeypatch.setattr(quantstats.reports, "html", broken)
    with pytest.warns(UserWarning, match="tear sheet for 'B&H BTC' failed.*quantstats broke"):
        paths = write_report({"B&H BTC": results["B&H BTC"]}, tmp_path, html=True, console=Console(file=io.StringIO()))
    assert not any(k.startswith("tearsheet_") for k in paths)
    assert paths["cumulative_png"].stat().st_size > 0


def test_report_refuses_unknown_names(results, tmp_path):
    with pytest.raises(ValueError, match="benchmark 'X'"):
        write_report(results, tmp_path, benchmark="X", console=Console(file=io.StringIO()))
    with pytest.raises(ValueError, match="at least one"):
        write_report({}, tmp_path)


def _legend_outside_the_axes(fig) -> bool:
    fig.canvas.draw()  # lay out (constrained) before reading the boxes
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    return legend.x0 >= ax.get_window_extent().x1


@pytest.mark.parametrize("n", [5, 20, 26])
def test_cumulative_figure_gives_every_line_its_own_colour_and_keeps_the_legend_off_the_data(results, n):
    from matplotlib.colors import to_rgba

    from cryptorl.portfolio.report import equity_figure

    one = next(iter(results.values()))
    many = {f"strategy {k}": one for k in range(n - 2)} | {"B&H BTC": one, "CryptoRLPM": one}
    fig = equity_figure(many, "Many")
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() in many]
    colours = {tuple(round(c, 6) for c in to_rgba(line.get_color())) for line in lines}
    assert len(lines) == n and len(colours) == n
    assert to_rgba(lines[-1].get_color()) == to_rgba("black")  # the voted portfolio stands out
    assert ax.get_ylabel() == "cumulative return (%)"
    assert _legend_outside_the_axes(fig)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(many)


def test_weights_figure_legend_sits_beside_the_data(results):
    from cryptorl.portfolio.report import weights_figure

    fig = weights_figure("B&H equal weight", results["B&H equal weight"])
    assert _legend_outside_the_axes(fig) and fig.axes[0].get_ylabel() == "weight"
