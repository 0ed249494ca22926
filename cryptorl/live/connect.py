"""Exchange objects for the live loop: a real, key-holding ccxt exchange only on request.

* :func:`public_exchange` - no keys: market definitions and prices (what paper trading needs).
* :func:`live_exchange` - API key and secret from the environment (``<EXCHANGE>_API_KEY`` and
  ``<EXCHANGE>_SECRET``, e.g. ``BINANCE_API_KEY`` / ``BINANCE_SECRET``) and an explicit
  confirmation callback; the keys are never logged or written anywhere (ccxt's own DEBUG log
  of request headers is silenced for that reason).
* :func:`markets_for` - the ccxt market structures of the symbols a paper account needs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ccxt

log = logging.getLogger("cryptorl.live")


def _exchange_class(name: str) -> type:
    if name not in ccxt.exchanges:
        raise ValueError(f"unknown exchange {name!r}: use a ccxt exchange id such as 'binance', 'kraken', 'okx'")
    return getattr(ccxt, name)


def _config(name: str) -> dict[str, Any]:
    options: dict[str, Any] = {"defaultType": "spot"}
    if name.startswith("binance"):
        options["fetchMarkets"] = {"types": ["spot"]}  # spot only: no futures endpoints
        options["fetchMargins"] = False  # no margin-pair lists (needs no extra key permission)
        options["fetchCurrencies"] = False  # /sapi capital config: not needed for spot orders
    return {"enableRateLimit": True, "options": options}


def public_exchange(name: str) -> Any:
    """A ccxt exchange without credentials (markets, tickers, candles)."""
    return _exchange_class(name)(_config(name))


def env_names(name: str) -> tuple[str, str]:
    """Environment variable names holding the API key and secret for exchange ``name``."""
    prefix = name.upper()
    return f"{prefix}_API_KEY", f"{prefix}_SECRET"


def live_exchange(
    name: str,
    *,
    confirm: Callable[[str], bool],
    env: Mapping[str, str] | None = None,
) -> Any:
    """A ccxt exchange that can place real orders, after ``confirm(message)`` returned True.

    Raises ValueError when the keys are missing and PermissionError when not confirmed.
    """
    env = os.environ if env is None else env
    key_var, secret_var = env_names(name)
    key, secret = env.get(key_var), env.get(secret_var)
    if not key or not secret:
        raise ValueError(f"live trading on {name} needs the environment variables {key_var} and {secret_var}")
    message = f"About to trade REAL money on {name} with the API key in {key_var}. Orders will be sent to the exchange."
    if not confirm(message):
        raise PermissionError(f"live trading on {name} was not confirmed; nothing was sent")
    logging.getLogger("ccxt").setLevel(logging.INFO)  # ccxt logs request headers (the API key) at DEBUG
    exchange = _exchange_class(name)({**_config(name), "apiKey": key, "secret": secret})
    log.info("live trading on %s confirmed (keys from %s / %s)", name, key_var, secret_var)
    return exchange


def markets_for(exchange: Any, symbols: Sequence[str]) -> dict[str, dict]:
    """The ccxt market structures of ``symbols`` from ``exchange`` (loads its markets)."""
    markets = exchange.load_markets()
    missing = [s for s in symbols if s not in markets]
    if missing:
        raise ValueError(f"{exchange.id} has no market(s) {missing}")
    return {s: markets[s] for s in symbols}


def read_markets_file(path: str | Path, symbols: Sequence[str]) -> dict[str, dict]:
    """ccxt market structures saved as JSON (``json.dump(exchange.load_markets(), f)``)."""
    try:
        markets = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read markets file {path}: {exc}") from None
    if not isinstance(markets, dict):
        raise ValueError(f"markets file {path} must hold a JSON object keyed by symbol (ccxt load_markets())")
    missing = [s for s in symbols if s not in markets]
    if missing:
        raise ValueError(f"markets file {path} has no market(s) {missing}")
    return {s: markets[s] for s in symbols}
