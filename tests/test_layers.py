"""The import contract: each concern has one home and imports flow one way (down the layers).

Read from the source with `ast`, so every import counts: module-level, inside functions and under
`if TYPE_CHECKING:` alike (a type-only import of a higher layer is still a dependency on it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "custom_components" / "microgrid"

# Lowest first. A module may import its own group and groups on lower layers only; two groups on
# the same layer are independent of each other. The platforms and the entry point sit on top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("optimizer", "ml"),  # pure: no Home Assistant (symlinks to the top-level packages)
    ("const",),
    ("device", "storage", "link"),  # wire protocol; HA Store helper; Firebase client (no HA)
    ("site", "snapshot"),  # the configured site; the snapshot every entity reads
    ("people",),  # permissions, audit
    ("planning", "learning"),  # managers with narrow interfaces, never the coordinator
    ("control",),  # the coordinator (the only writer of its data), ingest, commands
    ("alerts",),
    ("runtime",),  # the entry's typed runtime data
    ("services",),  # every action, registered once
    ("entity",),
    (
        "__init__",
        "binary_sensor",
        "calendar",
        "config_flow",
        "diagnostics",
        "event",
        "sensor",
        "switch",
    ),
)
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}
# Who may name the coordinator: its own package, the runtime data and the top (entry, platforms,
# actions). A manager gets callbacks or a small protocol instead.
COORDINATOR = "control.coordinator"
MAY_IMPORT_COORDINATOR = {"control", "runtime", "services", "entity", *LAYERS[-1]}
NO_HOMEASSISTANT = {"optimizer", "ml", "link", "device", "const"}


def _modules() -> Iterator[tuple[str, Path]]:
    """(dotted name inside the package, path) of every module of the integration (not the
    symlinked pure packages: their own tests check them)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("optimizer", "ml"):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        yield ".".join(parts), path


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module inside the package, line) for every import of `path`; external
    modules come back with a leading '!' (e.g. '!homeassistant')."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    here = name.split(".") if name != "__init__" else []
    base = here if is_package else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _absolute(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield _absolute(node.module or ""), node.lineno
                continue
            anchor = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = [*anchor, *(node.module.split(".") if node.module else [])]
            if node.module is None:  # from . import x, y: each name may be a module
                for alias in node.names:
                    yield ".".join([*target, alias.name]) or "__init__", node.lineno
            else:
                yield ".".join(target) or "__init__", node.lineno


def _absolute(module: str) -> str:
    prefix = "custom_components.microgrid"
    if module == prefix:
        return "__init__"
    if module.startswith(prefix + "."):
        return module[len(prefix) + 1 :]
    return "!" + module.split(".", maxsplit=1)[0]


def _group(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


GRAPH = {name: list(_imports(name, path)) for name, path in _modules()}


def test_every_module_has_a_layer() -> None:
    """A new top-level module or package must be placed in LAYERS."""
    unplaced = sorted({_group(m) for m in GRAPH} - RANK.keys())
    assert not unplaced, f"add to LAYERS in {Path(__file__).name}: {unplaced}"


def test_imports_flow_down() -> None:
    """No module imports a higher layer, or a different group of its own layer."""
    wrong = []
    for module, imports in GRAPH.items():
        mine = _group(module)
        for target, line in imports:
            if target.startswith("!"):
                continue
            theirs = _group(target)
            if theirs == mine or theirs not in RANK:
                continue
            if RANK[theirs] >= RANK[mine]:
                wrong.append(f"{module}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_only_the_top_names_the_coordinator() -> None:
    """Managers, alerts and people get narrow interfaces, never the coordinator (not even for
    type checking)."""
    wrong = [
        f"{module}:{line}"
        for module, imports in GRAPH.items()
        for target, line in imports
        if target == COORDINATOR and _group(module) not in MAY_IMPORT_COORDINATOR
    ]
    assert not wrong, wrong


def test_no_import_cycles() -> None:
    """The module graph inside the integration is acyclic (inside a package too)."""
    edges = {
        module: {t for t, _ in imports if not t.startswith("!") and t in GRAPH and t != module}
        for module, imports in GRAPH.items()
    }
    # `from .pkg import x` also depends on pkg/__init__; count a submodule import as its package's.
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("group", sorted(NO_HOMEASSISTANT - {"optimizer", "ml"}))
def test_low_layers_do_not_import_home_assistant(group: str) -> None:
    """The Firebase client, the wire protocol and the constants run without Home Assistant."""
    wrong = [
        f"{module}:{line}"
        for module, imports in GRAPH.items()
        if _group(module) == group
        for target, line in imports
        if target == "!homeassistant"
    ]
    assert not wrong, wrong


@pytest.mark.parametrize("package", ["optimizer", "ml"])
def test_pure_packages_import_only_themselves_and_libraries(package: str) -> None:
    """optimizer/ and ml/ never import Home Assistant or the integration, and import their own
    modules relatively (so they work as top-level packages and inside the integration)."""
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top in ("homeassistant", "custom_components", package, "optimizer", "ml"):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not wrong, wrong


def test_the_contract_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself: an upward import in a low layer is reported."""
    module = tmp_path / "x.py"
    module.write_text("from ..control.coordinator import MicrogridCoordinator\n")
    found = list(_imports("people.x", module))
    assert ("control.coordinator", 1) in found
    assert RANK[_group("control.coordinator")] > RANK["people"]
