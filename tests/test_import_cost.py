"""Start-up cost: the heavy libraries are imported where they are used, not by importing the package."""

from __future__ import annotations

import subprocess
import sys


def _imported(modules: str, heavy: tuple[str, ...]) -> list[str]:
    code = f"import sys, {modules}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return [m for m in out.strip().split(",") if m]


def test_features_and_portfolio_do_not_import_scikit_learn_or_matplotlib():
    assert _imported("cryptorl.features, cryptorl.portfolio", ("sklearn", "scipy", "matplotlib")) == []


def test_a_command_line_parser_does_not_import_pandas_or_torch():
    assert _imported("experiments.train_cm", ("pandas", "torch", "sklearn", "matplotlib")) == []
