"""PEP 562 lazy names for a package ``__init__``: a name is imported from its submodule on first use."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def lazy_names(package: str, lazy: Mapping[str, str], names: Sequence[str]) -> tuple[Callable, Callable]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``lazy`` maps a name to the submodule
    that defines it (imported, and the name cached in the package, when first asked for);
    ``names`` is the package's ``__all__``."""

    def __getattr__(name: str) -> Any:
        if name in lazy:
            value = getattr(import_module(f"{package}.{lazy[name]}"), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
