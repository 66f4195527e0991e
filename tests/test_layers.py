"""The layering of docs/ARCHITECTURE.md holds: no import cycles, no upward imports (imports anywhere in a
file count, top-level or not)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "diffadapt"
BASE = {"errors", "settings", "io", "images", "device", "progress", "viz"}
CORE = {"data", "diffusion", "adapt", "evaluate"}
CORE_MAY_IMPORT = {"data": set(), "evaluate": {"data"}, "diffusion": {"data"}, "adapt": {"data"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("diffadapt")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("diffadapt"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = {t for t in imports_of(path) if t in modules and t != name}
        edges[name] = targets
    return edges


def part(name: str) -> str:
    """The top-level part of a module: 'data', 'apps.report', 'cli', 'io', ..."""
    parts = name.split(".")[1:]
    if not parts:
        return "package"
    if parts[0] == "apps" and len(parts) > 1:
        return "apps." + parts[1]
    return parts[0]


def layer(name: str) -> int:
    top = part(name).split(".")[0]
    if top in BASE:
        return 0
    if top in CORE:
        return 1
    if top == "apps":
        return 2
    return 3  # cli, api, __main__, the package's lazy re-exports


def test_no_upward_imports():
    bad = []
    for module, targets in graph().items():
        for target in targets:
            if layer(target) > layer(module) and not (part(module) == "package" and part(target) == "api"):
                bad.append(f"{module} -> {target}")
            if layer(module) == layer(target) == 1 and part(module) != part(target) and part(target) not in CORE_MAY_IMPORT[part(module)]:
                bad.append(f"{module} -> {target} (core parts)")
            if layer(module) == layer(target) == 2 and part(module) != part(target) and part(module) != "apps.report":
                bad.append(f"{module} -> {target} (only the report imports other applications)")
            if layer(module) == 0 and part(target) not in (part(module), "errors", "io", "settings") and target != module:
                bad.append(f"{module} -> {target} (layer 0 stays small)")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*stack, nxt]):
                return True
        state[node] = 2
        return False

    for node in edges:
        if state.get(node) is None and visit(node, [node]):
            break
    assert not cycle, " -> ".join(cycle)
