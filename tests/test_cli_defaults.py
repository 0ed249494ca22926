"""Every command's ``--help`` states the library's defaults: each default is written once, in the
library (CMConfig's fields, the functions' signatures), and the commands show that value."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

import pytest

from agents.crypto_module import CMConfig
from cryptorl.cli import field_default, show_default

# "(default 15, the paper's)", "(default: 0.001)", "(default: the current version's, else dqn)"
# "(default: train_cm's, 5)", "(default: ret_5,ret_20)": the value is what follows "else " or
# "train_cm's, ", up to a ", ", a ";" or the closing parenthesis
STATED = re.compile(r"\(default:? (?:[^()]*?else |train_cm's,? )?([^();]+?)(?:, |;|\))")


def library_defaults(*sources) -> dict[str, object]:
    """name -> default of the dataclasses' fields and the functions' parameters (first wins)."""
    out: dict[str, object] = {}
    for source in sources:
        if isinstance(source, dict):
            items = source
        elif dataclasses.is_dataclass(source):
            items = {f.name: field_default(f) for f in dataclasses.fields(source)}
        else:
            params = inspect.signature(source).parameters.values()
            items = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        for name, value in items.items():
            out.setdefault(name, value)
    return out


def stated_default(action: argparse.Action) -> str | None:
    """The default an option's help states (its own default when it has one, else the text)."""
    if action.default not in (None, argparse.SUPPRESS) and not isinstance(action.default, list):
        return show_default(action.default)
    found = STATED.search((action.help or "").replace("%%", "%"))
    return found.group(1).strip() if found else None


def same(stated: str, value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return stated == show_default(value)
    try:
        return float(stated) == float(value)
    except ValueError:
        return False


def _sources():
    from agents.training import paper_split, train_crypto_module
    from agents.tuning import TuneSpec, open_study, tune
    from agents.updating import retrain_all
    from agents.walk_forward import run_walk_forward
    from cryptorl.portfolio import backtest
    from experiments import update

    cm = library_defaults(CMConfig)
    return {
        "train_cm": (CMConfig, paper_split, train_crypto_module),
        # --seeds N trains seeds 0..N-1
        "tune": (CMConfig, paper_split, {"seeds": len(TuneSpec.seeds)}, TuneSpec, tune, open_study),
        "walk_forward": (CMConfig, run_walk_forward, backtest),
        # update's --window is the sliding window of bars, not the observation window
        "update": ({k: cm[k] for k in update.OVERRIDES}, retrain_all),
        "compose": (CMConfig, backtest),
        "compare": (CMConfig, backtest),
    }


def _parser(command: str) -> argparse.ArgumentParser:
    import importlib

    return importlib.import_module(f"experiments.{command}").build_parser()


@pytest.mark.parametrize("command", ["train_cm", "tune", "walk_forward", "update", "compose", "compare"])
def test_help_states_the_library_defaults(command):
    defaults = library_defaults(*_sources()[command])
    checked, wrong = [], []
    for action in _parser(command)._actions:
        if action.dest not in defaults or defaults[action.dest] is None or action.required:
            continue
        stated = stated_default(action)
        if stated is None:
            continue
        checked.append(action.dest)
        if not same(stated, defaults[action.dest]):
            wrong.append(
                f"--{action.dest.replace('_', '-')}: help says {stated!r}, the library {defaults[action.dest]!r}"
            )
    assert wrong == []
    assert len(checked) >= 3, checked  # the check compared something


def test_train_cm_flags_are_the_config_fields_and_default_to_them():
    from experiments import train_cm

    parser = train_cm.build_parser()
    flags = {a.dest for a in parser._actions}
    scalar = [f.name for f in dataclasses.fields(CMConfig) if f.name not in ("hyperparams", "dru")]
    assert set(scalar) <= flags  # a new field is a flag without touching the command
    args = parser.parse_args(["--asset", "BTC"])
    assert args.eval_freq is None  # given means given: a --config file may set it
    assert CMConfig(**train_cm._config_from(args)) == CMConfig(asset="BTC")
    assert args.eval_freq == library_defaults(_sources()["train_cm"][2])["eval_freq"]


def test_every_config_field_has_one_help_text():
    missing = [
        f.name
        for f in dataclasses.fields(CMConfig)
        if f.name not in ("hyperparams", "dru") and not f.metadata.get("help")
    ]
    assert missing == []


def test_every_boolean_can_be_switched_both_ways():
    from experiments import train_cm

    parser = train_cm.build_parser()
    for f in dataclasses.fields(CMConfig):
        if isinstance(f.default, bool):
            flag = "--" + f.name.replace("_", "-")
            on = parser.parse_args(["--asset", "BTC", flag])
            off = parser.parse_args(["--asset", "BTC", "--no-" + flag[2:]])
            assert (getattr(on, f.name), getattr(off, f.name)) == (True, False)
    args = parser.parse_args(["--asset", "BTC", "--no-observe-position"])
    assert CMConfig(**train_cm._config_from(args)).observe_position is False


def test_tune_trains_what_train_cm_trains_by_default():
    parser = _parser("tune")
    assert parser.parse_args(["--asset", "BTC"]).algo is None  # no algo given: CMConfig's, as in train_cm
    assert f"(default: {CMConfig.algo})" in " ".join(parser.format_help().split())


def test_building_the_parsers_imports_no_deep_learning_library():
    # --help is instant: the flags come from agents.config, which needs neither torch nor SB3
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from experiments import train_cm, tune, update, walk_forward\n"
        "for command in (train_cm, tune, walk_forward, update):\n"
        "    command.build_parser()\n"
        "print(sorted(m for m in ('torch', 'stable_baselines3', 'gymnasium', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_crypto_module_re_exports_the_light_config():
    import agents.config
    import agents.crypto_module
    import agents.networks
    import envs.features
    from cryptorl.features import market

    for name in agents.config.__all__:
        assert getattr(agents.crypto_module, name) is getattr(agents.config, name), name
    assert agents.networks.DEVICES is agents.config.DEVICES
    assert envs.features.MARKET_FEATURES is market.MARKET_FEATURES  # one registry
    assert envs.features.register_market_feature is market.register_market_feature
