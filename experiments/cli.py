"""``cryptorl <command> ...``: one console script for every command of ``experiments/``.

    cryptorl train-cm --asset BTC --source demo     # = python -m experiments.train_cm ...
    cryptorl evaluate experiments/protocols/demo_tiny.yml
    cryptorl --help                                 # the commands, one line each

Each command is the module ``experiments.<name>`` (dashes for underscores); ``python -m
experiments.<name>`` keeps working. A command's module is imported only when it runs.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, str] = {
    "fetch-data": "download or import market data and metrics into the stores",
    "train-cm": "train a Crypto Module and backtest it against buy-and-hold",
    "compose": "vote trained Crypto Modules into a portfolio and report its backtest",
    "compare": "compare every other agent with the Crypto Modules on the same data",
    "evaluate": "train, select and backtest a whole evaluation protocol (the scoreboard)",
    "walk-forward": "retrain and backtest one asset window after window",
    "tune": "search Crypto Module hyper-parameters with Optuna on validation",
    "update": "scheduled retraining with promotion on validation",
    "live": "trade voted Crypto Modules every interval (paper trading by default)",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return (
        "usage: cryptorl <command> [options]\n\ncommands:\n"
        + "\n".join(lines)
        + ("\n\n`cryptorl <command> --help` explains a command's options.")
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"cryptorl: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"experiments.{name.replace('-', '_')}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
