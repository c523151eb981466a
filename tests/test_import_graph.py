"""The library's imports flow one way: nothing in `promptpo_bench` (tasks and descriptions included) imports the
scripts (`algorithms/`, `benchmarks/`, `tests/`), no import circle exists among its modules, and no module imports
from a later layer of task -> rollout -> record -> leaderboard.

Read from the source with `ast`, so function-level (deferred) imports count too: a deferred import hides a circle
from Python, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"promptpo_bench": ROOT / "promptpo_bench", "promptpo_bench.tasks": ROOT / "tasks",
                "promptpo_bench.descriptions": ROOT / "descriptions"}  # as pyproject's package-dir maps them
SCRIPT_TOPS = {"algorithms", "benchmarks", "tests", "conftest", "scripted_server"}


def modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The names `name` imports (absolute, dotted), anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` imports the module; `from m import name`, m
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: {m for m in imports(name, path, known) if m in known and m != name} for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_library_never_imports_the_scripts() -> None:
    offending = []
    for name, path in modules().items():
        for imported in imports(name, path, set()):
            if imported.partition(".")[0] in SCRIPT_TOPS:
                offending.append(f"{name} imports {imported}")
    assert not offending, offending


def test_no_import_circle_inside_the_package() -> None:
    assert cycles(graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# task -> rollout -> record -> leaderboard: a module imports only from its own layer or the ones before it
LAYERS = [
    {"errors", "progress", "statistics"},  # shared helpers, no suite knowledge
    {"", "registry", "descriptions", "tasks"},  # tasks: specs, envs, the text the LLM reads ("" is the package root)
    {"rollout", "env_process", "sandbox", "sandbox_worker", "policies", "torch_policy", "llm"},  # running a policy on a task
    {"records", "reference_runs", "baselines", "entries", "tracking"},  # runs that write a record; the board's layout on disk
    {"submit", "leaderboard", "render", "plot", "show", "sweep", "sweep_backends", "cli"},  # verifying, ranking, driving runs
]


def head(module: str) -> str:
    """A package module's first name below `promptpo_bench` ("" for the package itself)."""
    return module.removeprefix("promptpo_bench").lstrip(".").partition(".")[0]


def layer(module: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if head(module) in names)


def test_imports_flow_one_way_from_tasks_to_the_leaderboard() -> None:
    upward = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
              for a, targets in graph().items() for b in targets if layer(b) > layer(a)]
    assert not upward, upward


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name in modules() if not any(head(name) in names for names in LAYERS)]
    assert not unplaced, f"place these in LAYERS: {unplaced}"
