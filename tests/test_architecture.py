"""The layers import only downward (winnow → flows → tasks → ray_cluster → models), with no import cycles, and
each flow reads as its recipe: no config headers or stage bookkeeping copied between flows."""
from __future__ import annotations

import ast

import pytest

from tasks.core.code_version import PROJECT_PACKAGES, PROJECT_ROOT, imported_modules

LAYER = {"models": 0, "ray_cluster": 1, "tasks": 2, "flows": 3, "winnow": 4}


def _modules() -> list[str]:
    names = []
    for package in PROJECT_PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def _graph() -> dict[str, set[str]]:
    # a module's own packages are not edges: importing tasks.core.store runs tasks/__init__ and tasks/core/__init__
    return {m: {d for d in imported_modules(m) if not m.startswith(d + ".")} for m in _modules()}


def test_layers_import_only_downward():
    upward = [f"{m} -> {d}" for m, deps in _graph().items() for d in deps
              if LAYER[d.split(".")[0]] > LAYER[m.split(".")[0]]]
    assert upward == []


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize("flow", sorted(p.stem for p in (PROJECT_ROOT / "flows").glob("*.py")
                                        if p.stem not in {"__init__", "base", "config"}))
def test_flows_keep_no_copied_header_or_stage_bookkeeping(flow):
    tree = ast.parse((PROJECT_ROOT / "flows" / f"{flow}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name.endswith("Config") and flow != "evaluate":
            fields = {t.target.id for t in node.body if isinstance(t, ast.AnnAssign)}
            assert not fields & {"store", "ray", "show_progress"}, f"{flow}: {node.name} copies the flow header"
        if isinstance(node, ast.Assign):
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            assert "stages" not in names, f"{flow}: keeps its own stage list (the run's lineage has it)"
