"""The ``cryptorl`` console script dispatches to the commands of ``experiments/``."""

from __future__ import annotations

import pkgutil

import pytest

import experiments
from experiments.cli import COMMANDS, main


def test_every_command_module_is_listed():
    modules = {m.name for m in pkgutil.iter_modules(experiments.__path__)} - {"cli"}
    assert {name.replace("-", "_") for name in COMMANDS} == modules


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_a_command_runs_through_the_script(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train-cm", "--help"])
    assert exc.value.code == 0 and "--asset" in capsys.readouterr().out


def test_an_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["trian-cm"]) == 2
    assert "unknown command 'trian-cm'" in capsys.readouterr().err
