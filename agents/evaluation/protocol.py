"""Evaluation protocols: what ``python -m experiments.evaluate`` trains, composes and backtests.

A protocol is a YAML file (examples in ``experiments/protocols/``)::

    name: daily-bear-bull
    interval: 1d
    source: csv:../shared/data/prices/daily      # any source of cryptorl.data.load_data
    metrics: csv:../shared/data/onchain/coinmetrics   # optional: metrics (csv:DIR or coinmetrics)
    assets: [BTC, ETH, LINK]
    portfolios: {BTC+ETH+LINK: [BTC, ETH, LINK]}  # voted portfolios; "all" = every asset
    seeds: [0, 1, 2]
    fee: 0.001
    execution: close
    eval_freq: 2000                               # validation every N training steps
    gaps: error                                   # missing bars inside the range: error or fill
    universe: fixed                               # fixed: every asset in every window; listed: a coin
                                                  # joins the windows its data cover (a later listing)
    windows:                                      # inclusive dates; a bare date is the whole day
      bear: {train: [2020-10-01, 2021-12-31], validation: [2022-01-01, 2022-02-28],
             backtest: [2022-03-01, 2022-09-30]}
    walk_forward:                                 # optional: more windows, one per step
      {start: 2021-01-01, end: 2022-09-30, train_months: 15, validation_months: 2,
       backtest_months: 3, step_months: 3}        # train_months: all with train_from: expanding
    configs:                                      # CMConfig fields (asset, seed, fee, interval,
      ppo_ohlcv: {algo: ppo, timesteps: 30000}    # execution come from the protocol)
      ppo_trend: {features: [ret_5, ret_20, sma_20]}
    baselines: {trend_sma: 20, tsmom: 60, donchian: [10, 20, 30, 60, 90], inverse_vol: 30}
    agents: [momentum, risk_parity, dls]          # optional: alternative agents (agents.catalog), per portfolio
    trials_before: 0                              # configurations tried in earlier rounds (deflated Sharpe)
    imports: [my_baselines]                       # optional: modules to import first (your baselines)

``baselines``: the keys of :data:`cryptorl.portfolio.BASELINES` with their parameter (``true``
takes the default). Buy-and-hold of each asset, equal-weight buy-and-hold, the CRP and the trend
rule always run (``trend_sma``, default 20 bars); time-series momentum (``tsmom``: lookback), the
Donchian ensemble with volatility targeting (``donchian``: lookbacks), inverse-volatility weights
(``inverse_vol``: volatility window, rebalanced as often) and any baseline registered with
:func:`cryptorl.portfolio.register_baseline` run when named. Without a ``baselines`` key every
registered baseline runs with its default. ``imports`` names Python modules (importable from the
working folder or the Python path) imported before the protocol is checked: the place for a file
that registers baselines of your own.

``agents``: the supervised forecasters and allocators of :data:`agents.catalog.AGENT_NAMES`, as a
list of names or a mapping ``name: {fast: true, use_metrics: true}`` (``fast``: tiny networks, for
smoke runs; ``use_metrics``: the agent also reads the protocol's metrics, up to each time it
decides, where it can: the forecasters, DLS and the meta-labellers). Each is fitted
per window and portfolio on the portfolio's bars from the window's training start to its
validation end (the Crypto Modules' data), then gives its weights for the backtest; the networks
once per seed, the deterministic allocators once. They are scored like a configuration (and
counted by the deflated Sharpe ratio), but fitted while the backtests are scored, so they are
fitted again at every run.

:func:`load_protocol` checks everything before any work starts and raises ``ValueError`` with
one line naming the key at fault.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from agents.crypto_module import CMConfig
from agents.options import check_cm_options
from agents.training import Split
from cryptorl.cli import UserError
from cryptorl.data.frames import interval_timedelta, to_utc_timestamp
from cryptorl.portfolio.strategy import BASELINES

PROTOCOL_CONFIG_FIXED = ("asset", "seed", "fee", "interval", "execution")
# fixed: every asset is in every window (data that do not cover one are an error); listed: each
# window holds the assets whose bars cover it, from its training start to its backtest end, so a
# coin listed (or delisted) within the span joins (or leaves) the portfolios as an index's would
UNIVERSES = ("fixed", "listed")
_KEYS = {
    "metrics",
    "name",
    "interval",
    "source",
    "assets",
    "portfolios",
    "seeds",
    "fee",
    "execution",
    "eval_freq",
    "windows",
    "walk_forward",
    "configs",
    "baselines",
    "description",
    "trials_before",
    "gaps",
    "universe",
    "imports",
    "agents",
}


@dataclass(frozen=True)
class Window:
    """A named train / validation / backtest split (inclusive UTC times)."""

    name: str
    split: Split

    @property
    def train(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.split.train

    @property
    def validation(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.split.validation

    @property
    def backtest(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        assert self.split.backtest is not None
        return self.split.backtest


@dataclass(frozen=True)
class Protocol:
    """A checked protocol (see the module docstring)."""

    name: str
    interval: str
    source: str
    assets: tuple[str, ...]
    portfolios: dict[str, tuple[str, ...]]
    seeds: tuple[int, ...]
    fee: float
    execution: str
    eval_freq: int
    windows: tuple[Window, ...]
    configs: dict[str, dict[str, Any]]
    baselines: dict[str, Any]  # baseline key -> its parameter, in the registry's order
    metrics: str | None = None
    trials_before: int = 0  # configurations tried before this protocol (counted by the deflated Sharpe)
    gaps: str = "error"
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)  # agent name -> {fast: bool}
    universe: str = "fixed"  # one of UNIVERSES

    @property
    def trend_sma(self) -> int:
        """The trend rule's moving average (it always runs)."""
        return self.baselines["trend_sma"]

    @property
    def tsmom(self) -> int | None:
        return self.baselines.get("tsmom")

    @property
    def donchian(self) -> tuple[int, ...] | None:
        return self.baselines.get("donchian")

    @property
    def inverse_vol(self) -> int | None:
        return self.baselines.get("inverse_vol")

    @property
    def n_trials(self) -> int:
        """Configurations tried: this protocol's (its agents included) plus ``trials_before``."""
        return len(self.configs) + len(self.agents) + self.trials_before

    def cm_config(self, config: str, asset: str, seed: int, assets: tuple[str, ...] | None = None) -> CMConfig:
        """The CMConfig of one training job: the named config, then the protocol's fixed fields
        (``pool: all`` pools ``assets``, by default the protocol's: a window's listed ones)."""
        options = dict(self.configs[config])
        if options.get("pool") == "all":
            options["pool"] = list(self.assets if assets is None else assets)
        return CMConfig(
            **{
                **options,
                "asset": asset,
                "seed": int(seed),
                "fee": self.fee,
                "interval": self.interval,
                "execution": self.execution,
            }
        )

    def portfolios_of(self, assets) -> dict[str, tuple[str, ...]]:
        """The portfolios as they stand when only ``assets`` are listed (a window's): each keeps its
        listed members, and one with none is left out."""
        listed = set(assets)
        kept = {p: tuple(a for a in members if a in listed) for p, members in self.portfolios.items()}
        return {p: members for p, members in kept.items() if members}

    @property
    def data_end(self) -> pd.Timestamp:
        return max(w.backtest[1] for w in self.windows)

    def without_metrics(self) -> Protocol:
        """The same protocol on market data only (an ablation): no metrics source, no agent reading them."""
        agents = {name: {**opts, "use_metrics": False} for name, opts in self.agents.items()}
        return replace(self, metrics=None, agents=agents)

    def subset(self, *, configs=None, windows=None, seeds=None, assets=None, agents=None) -> Protocol:
        """The same protocol restricted to some configs / windows / seeds / assets / agents (command flags).

        The configurations and agents left out still count as tried: they move into ``trials_before``,
        so a run of a few of them deflates its Sharpe ratios by all the protocol's (:attr:`n_trials`).
        """

        def pick(what: str, chosen, have):
            if chosen is None:
                return list(have)
            unknown = [c for c in chosen if c not in have]
            if unknown:
                raise ValueError(f"{what} {unknown} not in the protocol (it has {list(have)})")
            return list(chosen)

        cfgs = pick("config(s)", configs, self.configs)
        wins = pick("window(s)", windows, [w.name for w in self.windows])
        sds = pick("seed(s)", None if seeds is None else [int(s) for s in seeds], self.seeds)
        ass = pick("asset(s)", None if assets is None else [a.upper() for a in assets], self.assets)
        ags = pick("agent(s)", agents, self.agents)
        ports = {k: v for k, v in self.portfolios.items() if set(v) <= set(ass)}
        return replace(
            self,
            assets=tuple(ass),
            portfolios=ports,
            seeds=tuple(sds),
            windows=tuple(w for w in self.windows if w.name in wins),
            configs={k: self.configs[k] for k in cfgs},
            agents={k: self.agents[k] for k in ags},
            trials_before=self.trials_before + len(self.configs) - len(cfgs) + len(self.agents) - len(ags),
        )


def protocol_date(value: Any, *, end: bool, where: str) -> pd.Timestamp:
    """A protocol date as UTC; a bare date given as an end means the end of that day."""
    if isinstance(value, dt.datetime):
        return to_utc_timestamp(pd.Timestamp(value))
    try:
        ts = to_utc_timestamp(str(value))
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a date") from None
    bare = isinstance(value, dt.date) or (isinstance(value, str) and len(value.strip()) <= 10)
    return ts + pd.Timedelta(days=1) - pd.Timedelta(seconds=1) if end and bare else ts


def _pair(value: Any, where: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{where} must be [first date, last date], got {value!r}")
    a, b = protocol_date(value[0], end=False, where=where), protocol_date(value[1], end=True, where=where)
    if not a < b:
        raise ValueError(f"{where}: {value[0]} is not before {value[1]}")
    return a, b


def _window(name: str, spec: Any) -> Window:
    where = f"windows.{name}"
    if not isinstance(spec, dict) or set(spec) != {"train", "validation", "backtest"}:
        raise ValueError(f"{where} must map train, validation and backtest to [first, last] dates")
    tr, va, bt = (_pair(spec[k], f"{where}.{k}") for k in ("train", "validation", "backtest"))
    if not (tr[1] < va[0] and va[1] < bt[0]):
        raise ValueError(f"{where}: train, validation and backtest must follow each other without overlap")
    return Window(str(name), Split(tr, va, bt))


def _whole(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a whole number of months, got {value!r}") from None


def walk_forward_windows(spec: dict[str, Any]) -> list[Window]:
    """Consecutive windows: backtests of ``backtest_months`` every ``step_months`` from ``start``
    to ``end``, each after ``validation_months`` of validation and ``train_months`` of training.

    ``train_from`` (optional): the earliest training start, for data that begin late: a window
    whose training would start before it trains from it (a shorter training range).
    ``train_months: all`` trains every window from ``train_from`` on (an expanding training range;
    ``train_from`` is then required)."""
    need = {"start", "end", "train_months", "validation_months", "backtest_months"}
    if not isinstance(spec, dict) or not need <= set(spec) or set(spec) - need - {"step_months", "train_from"}:
        raise ValueError(f"walk_forward must give {sorted(need)} (and optionally step_months, train_from)")
    floor = (
        None
        if spec.get("train_from") is None
        else protocol_date(spec["train_from"], end=False, where="walk_forward.train_from")
    )
    start, end = (
        protocol_date(spec["start"], end=False, where="walk_forward.start"),
        protocol_date(spec["end"], end=True, where="walk_forward.end"),
    )
    expanding = spec["train_months"] == "all"
    if expanding and floor is None:
        raise ValueError("walk_forward.train_months: all (an expanding training range) needs train_from")
    counted = (
        ("validation_months", "backtest_months")
        if expanding
        else ("train_months", "validation_months", "backtest_months")
    )
    months = {k: _whole(spec[k], f"walk_forward.{k}") for k in counted}
    step = _whole(spec.get("step_months", months["backtest_months"]), "walk_forward.step_months")
    if min(*months.values(), step) < 1:
        raise ValueError("walk_forward months must be whole numbers >= 1")
    eps = pd.Timedelta(seconds=1)
    out, bt0 = [], start
    while bt0 <= end:
        bt1 = min(bt0 + pd.DateOffset(months=months["backtest_months"]) - eps, end)
        va0 = bt0 - pd.DateOffset(months=months["validation_months"])
        tr0 = floor if expanding else va0 - pd.DateOffset(months=months["train_months"])
        if floor is not None:
            if floor >= va0:
                raise ValueError(f"walk_forward.train_from {floor:%Y-%m-%d} leaves no training before {va0:%Y-%m-%d}")
            tr0 = max(tr0, floor)
        out.append(Window(f"wf{len(out) + 1}-{bt0:%Y%m%d}", Split((tr0, va0 - eps), (va0, bt0 - eps), (bt0, bt1))))
        bt0 = bt0 + pd.DateOffset(months=step)
    return out


def parse_protocol(raw: Any, *, name: str = "protocol") -> Protocol:
    """A :class:`Protocol` from a parsed YAML mapping (see the module docstring)."""
    if not isinstance(raw, dict):
        raise ValueError("a protocol file must hold a mapping")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"unknown protocol key(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
    for key in ("source", "assets", "configs"):
        if key not in raw:
            raise ValueError(f"the protocol lacks '{key}'")
    _import_modules(raw.get("imports") or [])
    interval = str(raw.get("interval", "1d"))
    interval_timedelta(interval)
    assets = raw["assets"]
    if not isinstance(assets, list) or not assets:
        raise ValueError("assets must be a non-empty list of tickers")
    assets = tuple(str(a).upper() for a in assets)
    if len(set(assets)) != len(assets):
        raise ValueError(f"assets lists a ticker twice: {list(assets)}")
    portfolios: dict[str, tuple[str, ...]] = {}
    for pname, members in (raw.get("portfolios") or {"all": "all"}).items():
        members = assets if members == "all" else tuple(str(a).upper() for a in (members or []))
        if len(members) < 1 or not set(members) <= set(assets):
            raise ValueError(f"portfolios.{pname} must be 'all' or a list of the protocol's assets")
        portfolios[str(pname)] = members
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if any(not 0 <= s < 2**32 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers in [0, 2**32), got {seeds!r}")
    eval_freq = raw.get("eval_freq", 2000)
    if isinstance(eval_freq, bool) or not isinstance(eval_freq, int) or eval_freq < 1:
        raise ValueError(f"eval_freq must be an integer >= 1 (validation every N training steps), got {eval_freq!r}")
    fee = float(raw.get("fee", 0.001))
    if not 0.0 <= fee < 0.5:
        raise ValueError(f"fee must be a rate in [0, 0.5), got {fee}")
    execution = str(raw.get("execution", "close"))
    if execution not in ("close", "next_open"):
        raise ValueError(f"execution must be close or next_open, got {execution!r}")
    windows = [_window(k, v) for k, v in (raw.get("windows") or {}).items()]
    if raw.get("walk_forward") is not None:
        windows += walk_forward_windows(raw["walk_forward"])
    if not windows:
        raise ValueError("the protocol needs 'windows' or a 'walk_forward' span")
    configs = raw["configs"]
    if not isinstance(configs, dict) or not configs:
        raise ValueError("configs must map names to CMConfig options")
    known = {f.name for f in fields(CMConfig)}
    checked: dict[str, dict[str, Any]] = {}
    for cname, opts in configs.items():
        opts = dict(opts or {})
        bad = set(opts) - known
        fixed = set(opts) & set(PROTOCOL_CONFIG_FIXED)
        if bad or fixed:
            why = f"unknown option(s) {sorted(bad)}" if bad else f"{sorted(fixed)} are set by the protocol"
            raise ValueError(f"configs.{cname}: {why}")
        try:
            check_cm_options(opts)  # the rules of train_cm's flags, named as the protocol's keys
            CMConfig(**{**opts, **({"pool": list(assets)} if opts.get("pool") == "all" else {})})
        except (TypeError, ValueError, UserError) as exc:
            text = re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), str(exc))
            raise ValueError(f"configs.{cname}: {text}") from None
        checked[str(cname)] = opts
    base = _baselines(raw["baselines"] if "baselines" in raw else dict.fromkeys(BASELINES, True))
    trials_before = raw.get("trials_before", 0)
    if not isinstance(trials_before, int) or trials_before < 0:
        raise ValueError(f"trials_before must be a whole number >= 0, got {trials_before!r}")
    for key in ("source", "metrics"):
        value = raw.get(key)
        if isinstance(value, str) and value.startswith("csv:") and not Path(value[4:]).expanduser().exists():
            raise ValueError(f"{key} {value}: no such file or folder")
    gaps = str(raw.get("gaps", "error"))
    if gaps not in ("error", "fill"):
        raise ValueError(f"gaps must be error or fill, got {gaps!r}")
    universe = str(raw.get("universe", "fixed"))
    if universe not in UNIVERSES:
        raise ValueError(f"universe must be {' or '.join(UNIVERSES)}, got {universe!r}")
    agents = _agents(raw.get("agents"), checked)
    reading = [a for a, opts in agents.items() if opts.get("use_metrics")]
    if reading and raw.get("metrics") is None:
        raise ValueError(f"agents.{reading[0]}: use_metrics needs the protocol's metrics source")
    return Protocol(
        str(raw.get("name", name)),
        interval,
        str(raw["source"]),
        assets,
        portfolios,
        tuple(int(s) for s in seeds),
        fee,
        execution,
        eval_freq,
        tuple(windows),
        checked,
        base,
        None if raw.get("metrics") is None else str(raw["metrics"]),
        trials_before,
        gaps,
        agents,
        universe,
    )


def _agents(raw: Any, configs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The checked ``agents`` (see the module docstring): name -> options."""
    from agents.catalog import AGENT_NAMES

    raw = {} if raw is None else dict.fromkeys(raw, None) if isinstance(raw, list) else raw
    if not isinstance(raw, dict):
        raise ValueError(f"agents must be a list of agent names or a mapping name: {{fast: true}}, got {raw!r}")
    out = {}
    for name, opts in raw.items():
        opts = dict(opts or {})
        if name not in AGENT_NAMES:
            raise ValueError(f"agents: unknown agent {name!r}; known: {', '.join(AGENT_NAMES)}")
        if name in configs:
            raise ValueError(f"agents: {name!r} is also a config's name")
        if set(opts) - {"fast", "use_metrics"} or not all(isinstance(v, bool) for v in opts.values()):
            raise ValueError(f"agents.{name}: the options are fast and use_metrics, each true or false, got {opts}")
        out[str(name)] = opts
    return out


def _import_modules(names: Any) -> None:
    """Import each module of the protocol's ``imports`` (registering what they define)."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"imports must be a list of module names, got {names!r}")
    for module in names:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"imports: cannot import {module} ({exc})") from None


def _baselines(base: Any) -> dict[str, Any]:
    """The checked ``baselines`` mapping (see the module docstring): key -> parameter of every
    baseline that runs, the ``always`` ones included, in the registry's order."""
    base = {} if base is None else base
    if not isinstance(base, dict) or set(base) - set(BASELINES):
        got = sorted(base) if isinstance(base, dict) else base
        raise ValueError(f"baselines takes {sorted(BASELINES)}, got {got}")
    out = {}
    for key, cls in BASELINES.items():
        value = base.get(key)
        if value is None or value is False:
            if not cls.always:
                continue
            value = True
        try:
            out[key] = cls(None if value is True else value).param
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc) if f"baselines.{key}" in str(exc) else f"baselines.{key}: {exc}") from None
    return out


def load_protocol(path: str | Path) -> Protocol:
    """Read and check a protocol YAML file (``ValueError`` with one line on any problem)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read protocol {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"protocol {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_protocol(raw, name=path.stem)
