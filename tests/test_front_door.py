"""The package's front door: the README's Python example runs as written, and the demo market
is never used silently."""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

import cryptorl

README = Path(__file__).resolve().parents[1] / "README.md"


def test_front_door_names_resolve_lazily():
    import subprocess
    import sys

    code = "import cryptorl, sys; cryptorl.load_data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # the data layer does not pull in torch
    for name in cryptorl.__all__:
        assert getattr(cryptorl, name) is not None, name
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", cryptorl.__version__)
    with pytest.raises(AttributeError):
        cryptorl.nope  # noqa: B018


@pytest.mark.slow
def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text[text.index("## From Python") :]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "Sortino" in printed and "ARR" in printed
    assert {p.name for p in (tmp_path / "models").iterdir()} == {"BTC_1d", "ETH_1d"}


def test_demo_market_is_never_used_silently():
    from cryptorl.data import DemoDataWarning

    with pytest.warns(DemoDataWarning, match="synthetic demo market"):
        gym.make("cryptorl/CryptoModule-v0", asset="BTC")
    with pytest.warns(DemoDataWarning):
        cryptorl.load_data("BTC", "1d")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DemoDataWarning)
        cryptorl.load_data("BTC", "1d", source="demo")  # asked for: no warning


@pytest.mark.parametrize("package", ["cryptorl.portfolio", "cryptorl.features"])
def test_packages_with_names_imported_on_first_use_resolve_every_name(package):
    import importlib
    import subprocess
    import sys

    # the report writers and the DRU load on first use: the rest of the package stays light
    code = f"import sys, {package}; print(sorted(m for m in ('matplotlib', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None and not inspect.ismodule(value), name
        assert name in dir(module)
    with pytest.raises(AttributeError):
        module.nope  # noqa: B018


def test_portfolio_names_stay_the_functions_after_their_submodules_load():
    import importlib
    import sys

    for submodule in ("backtest", "baselines", "report"):
        importlib.import_module(f"cryptorl.portfolio.{submodule}")
    from cryptorl.portfolio import backtest, baselines, write_report

    assert backtest is sys.modules["cryptorl.portfolio.backtest"].backtest
    assert baselines is sys.modules["cryptorl.portfolio.baselines"].baselines
    assert write_report is sys.modules["cryptorl.portfolio.report"].write_report
