"""The package's shape holds: layers import downwards only, no cycles, small modules, a lazy top level.

Every import counts, those deferred into a function body or behind `TYPE_CHECKING` too: a deferred
import hides a cycle from Python, not from the design.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aebench"

# The layer order, written once: each entry may import the entries below it, never one above it, and
# packages that share an entry (siblings) do not import each other. `__init__` and `__main__` (the
# package's face and its `python -m` entry) sit on top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "__main__"),
    ("cli",),  # parses and prints
    ("api",),  # the function behind each command that composes the layers below
    ("report", "bench", "integrations"),
    ("grid",),  # the store, cells, executors, the runner
    ("train",),  # one run: the loop, the engine, its accelerations, metrics, checkpoints
    ("config",),  # RunConfig and GridSpec, validated against the model registry
    ("parsing",),  # comma lists from the command line
    ("models",),
    ("data",),  # the published datasets, found and checked
    ("user_data",),  # a user's own npz: and images: data
    ("splits", "numbers"),  # the Dataset every reader builds; the two checks every option goes through
    ("columns", "errors", "checksums"),
)
LAYER_OF = {name: depth for depth, names in enumerate(LAYERS) for name in names}
MAX_LINES = 400


Edge = tuple[str, ast.stmt, bool]  # (imported aebench module, the import statement, whether inside a function)


def scan(package: Path) -> dict[str, tuple[Path, list[Edge]]]:
    """module -> (its file, every aebench import in it)."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {module: (path, module_imports(module, path, files)) for module, path in files.items()}


def module_imports(module: str, path: Path, files: dict[str, Path]) -> list[Edge]:
    parent = module if path.name == "__init__.py" else module.rpartition(".")[0]
    root = module.partition(".")[0]

    def resolve(name: str) -> str | None:  # `aebench.train.loop.train_epochs` -> the module it lives in
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    edges: list[Edge] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = parent.split(".")[: len(parent.split(".")) - child.level + 1]
                    base = ".".join([*up, base] if base else up)
                names = [base] + [f"{base}.{a.name}" for a in child.names]
            for name in names:
                target = resolve(name) if name.split(".")[0] == root else None
                # a module importing its own package's face (`from aebench import data`) is no edge
                if target and target != module and not module.startswith(target + "."):
                    edges.append((target, child, in_function))  # type: ignore[arg-type]
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(path.read_text()), False)
    return edges


def layer(module: str) -> tuple[int, str]:
    top = module.split(".")[1] if "." in module else "__init__"
    if top not in LAYER_OF:
        pytest.fail(f"{module}: its package {top!r} is in no layer; add it to LAYERS in {__file__}")
    return LAYER_OF[top], top


def against_layers(graph: dict[str, tuple[Path, list[Edge]]]) -> list[str]:
    wrong = []
    for module, (_, edges) in graph.items():
        depth, top = layer(module)
        for target, _, _ in edges:
            target_depth, target_top = layer(target)
            if target_top != top and target_depth <= depth:
                wrong.append(f"{module} -> {target}")
    return sorted(set(wrong))


def cycles(graph: dict[str, tuple[Path, list[Edge]]]) -> list[list[str]]:
    nexts = {m: sorted({t for t, _, _ in edges}) for m, (_, edges) in graph.items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []
    found: list[list[str]] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in nexts[node]:
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(nexts):
        if node not in state:
            walk(node)
    return found


GRAPH = scan(PACKAGE)


def test_every_module_is_placed_in_a_layer() -> None:
    for module in GRAPH:
        layer(module)


def test_no_import_runs_upwards_or_sideways() -> None:
    wrong = against_layers(GRAPH)
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_deferred_imports_say_why() -> None:
    """An aebench import inside a function is allowed for start-up time or an optional dependency, with a comment."""
    silent = []
    for path, edges in GRAPH.values():
        lines = path.read_text().splitlines()
        for _, stmt, in_function in edges:
            here = lines[stmt.lineno - 1 : stmt.end_lineno or stmt.lineno]
            above = lines[stmt.lineno - 2].strip() if stmt.lineno > 1 else ""
            if in_function and not any("#" in line for line in here) and not above.startswith("#"):
                silent.append(f"{path.relative_to(PACKAGE.parent)}:{stmt.lineno}")
    assert not silent, "deferred imports without a comment saying why:\n" + "\n".join(sorted(set(silent)))


def test_the_checks_catch_a_hidden_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: a deferred import of the CLI from a model, and a TYPE_CHECKING cycle."""
    fake = tmp_path / "aebench"
    for name, text in {
        "__init__.py": "",
        "models/__init__.py": "",
        "models/zoo.py": "def f():\n    from aebench.cli.app import main\n",
        "cli/__init__.py": "",
        "cli/app.py": "from aebench.models import zoo\n",
        "grid/__init__.py": "",
        "grid/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from aebench.grid.b import B\n",
        "grid/b.py": "from aebench.grid import a\n",
    }.items():
        (fake / name).parent.mkdir(parents=True, exist_ok=True)
        (fake / name).write_text(text)
    graph = scan(fake)
    assert against_layers(graph) == ["aebench.models.zoo -> aebench.cli.app"]
    assert sorted(map(tuple, cycles(graph))) == [
        ("aebench.cli.app", "aebench.models.zoo", "aebench.cli.app"),
        ("aebench.grid.a", "aebench.grid.b", "aebench.grid.a"),
    ]


def test_modules_are_small_and_say_what_they_hold() -> None:
    for module, (path, _) in GRAPH.items():
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_LINES, f"{module}: {len(text.splitlines())} lines"
        if text.strip():
            assert ast.get_docstring(ast.parse(text)), f"{module} has no docstring"


def test_import_aebench_does_not_import_torch() -> None:
    code = (
        "import sys, aebench\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert aebench.RunConfig.__name__ == 'RunConfig'\n"  # and the public names still load, on first use
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
