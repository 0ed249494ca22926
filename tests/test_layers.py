"""The import arrows point down: experiments -> agents -> envs -> cryptorl, with no cycles.

Read from the source files (every ``import``, also those inside functions), so that an import
made lazily to dodge a cycle still counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cryptorl", "envs", "agents", "experiments")  # lowest layer first
FRONT_DOOR = "cryptorl/__init__.py"  # resolves its names lazily, by module name


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The project's modules that ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
        else:
            continue
        out.update(t for t in targets if t.split(".")[0] in PACKAGES)
    return out - {name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    sources = _sources()
    modules = set(sources)
    return {name: _imports(name, path, modules) for name, path in sources.items()}


def test_each_layer_imports_only_the_layers_below(graph):
    bad = []
    for name, targets in graph.items():
        layer = PACKAGES.index(name.split(".")[0])
        if str(_sources()[name].relative_to(ROOT)) == FRONT_DOOR:
            continue
        bad += [f"{name} -> {t}" for t in sorted(targets) if PACKAGES.index(t.split(".")[0]) > layer]
    assert bad == []


def test_no_module_of_cryptorl_imports_agents_envs_or_experiments(graph):
    up = [
        f"{name} -> {t}"
        for name, targets in graph.items()
        if name.startswith("cryptorl") and name != "cryptorl"
        for t in targets
        if not t.startswith("cryptorl")
    ]
    assert up == []


def test_the_import_graph_has_no_cycle(graph):
    # a module's package __init__ runs before it, but an edge is drawn only to what is named,
    # so a cycle here is a real one: two modules that each need the other
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_checker_sees_a_lazy_import_inside_a_function(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from agents.updating import latest_time\n    return latest_time\n")
    assert _imports("cryptorl.mod", source, {"agents.updating"}) == {"agents.updating"}
