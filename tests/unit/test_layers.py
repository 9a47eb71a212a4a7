"""Dependencies point one way: `ami.main` <- `ami.jobs` <- `ami.ml` <- the project modules.

The check parses every module under `ami/` (no import is executed), builds the import graph
and fails on an import against the layer order, on any import cycle, and on a product module
that imports the development tooling. An edge is an `import`/`from ... import` anywhere in a
module (function-local ones too) and a dotted path given to `import_string`, `send_task`,
`signature` or as a Celery beat `"task"`: those load code by name just as an import does.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import ami

SOURCE = Path(ami.__file__).parent


@dataclass(frozen=True)
class Layout:
    """What may import what in one package."""

    package: str
    layers: tuple[str, ...]  # product packages, bottom first: each may import only lower ones
    project: frozenset[str]  # modules above every layer (settings, URLs, entry points)
    tooling: tuple[str, ...]  # development tooling packages: no product module imports them
    tooling_allowance: frozenset[str] = field(default_factory=frozenset)  # modules or prefixes
    cycle_allowance: frozenset[frozenset[str]] = field(default_factory=frozenset)


AMI = Layout(
    package="ami",
    layers=("ami.main", "ami.jobs", "ami.ml"),
    project=frozenset(
        {
            "ami",
            "ami.settings",
            "ami.urls",
            "ami.api_urls",
            "ami.celery",
            "ami.asgi",
            "ami.wsgi",
            "ami.cli",
            "ami.__main__",
            "ami.bench",  # `ami bench`, part of the command
            "ami.demo",  # `ami demo`, part of the command
        }
    ),
    tooling=("ami.services", "ami.loadtest"),
    # Pure tooling that still lives inside a product package: it moves to the tooling
    # package (issue 10 item 1). Until then it may import the tooling; nothing else may.
    tooling_allowance=frozenset(
        {
            "ami.ml.stack",
            "ami.ml.supervisor",
            "ami.ml.demo_setup",
            "ami.ml.management.commands.run_demo",
            "ami.ml.management.commands.bench_results",
            "ami.ml.management.commands.demo_images",
            "ami.jobs.api.bench",
            "ami.jobs.api.live_server",
            "ami.jobs.logging.bench",  # and everything under it
        }
    ),
    # The log benchmark's entry point sets Django up, then imports the measuring module,
    # which imports the entry point's helpers back. Tooling: it moves to the tooling
    # package (issue 10 item 1), where the entry point gets a module of its own.
    cycle_allowance=frozenset(
        {frozenset({"ami.jobs.logging.bench.runner", "ami.jobs.logging.bench.measure"})}
    ),
)

BY_NAME_CALLS = {"import_string", "send_task", "signature"}
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package by dotted name (a package is its `__init__`)."""
    modules = {}
    for path in sorted((root).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((package, *parts))] = path
    return modules


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` (a module, or a module's attribute) names."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "dotted.path"` assignments, to follow `send_task(RUN_JOB_TASK)`."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def _by_name(node: ast.AST, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def referenced_names(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Dotted names the module imports or loads by name, with their lines."""
    constants = _constants(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            callee = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            name = _by_name(node.args[0], constants) if callee in BY_NAME_CALLS else None
            if name:
                found.append((name, node.lineno))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                name = _by_name(value, constants)
                if isinstance(key, ast.Constant) and key.value == "task" and name:
                    found.append((name, node.lineno))
    return [(name, line) for name, line in found if DOTTED.fullmatch(name)]


def import_graph(root: Path, package: str) -> list[Edge]:
    """Every edge between two modules of the package (an import of oneself is no edge)."""
    modules = module_names(root, package)
    edges = set()
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, line in referenced_names(tree, module, path.name == "__init__.py"):
            target = resolve(name, modules)
            if target is not None and target != module:
                edges.add(Edge(module, target, line))
    return sorted(edges, key=lambda edge: (edge.source, edge.line, edge.target))


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str, layout: Layout) -> int | None:
    """The index of the product layer that holds the module, None if it is in none."""
    for index, layer in enumerate(layout.layers):
        if _within(module, layer):
            return index
    return None


def layer_violations(edges: list[Edge], layout: Layout) -> list[str]:
    """Product modules importing upwards, the project modules or the tooling."""
    found = []
    for edge in edges:
        source = layer_of(edge.source, layout)
        if source is None:
            continue  # the project modules and the tooling may import any product module
        target = layer_of(edge.target, layout)
        if target is not None and target > source:
            found.append(f"{edge}: {layout.layers[source]} is below {layout.layers[target]}")
        elif edge.target in layout.project:
            found.append(f"{edge}: a project module, above every layer")
        elif any(_within(edge.target, tool) for tool in layout.tooling) and not any(
            _within(edge.source, allowed) for allowed in layout.tooling_allowance
        ):
            found.append(f"{edge}: development tooling, which product code never imports")
    return found


def import_cycles(
    edges: list[Edge], allowed: frozenset[frozenset[str]] = frozenset()
) -> list[list[str]]:
    """One cycle (first module repeated at its end) per strongly connected group of modules.

    A group exactly equal to an `allowed` one is skipped; one module more and it is reported.
    """
    graph: dict[str, list[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 and frozenset(group) not in allowed:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: set[str], graph: dict[str, list[str]]) -> list[str]:
    """A path from the group's first module back to itself, staying inside the group."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, [])):
            if nxt == start:
                return [*paths[node], start]
            if nxt in group and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")


def problems(root: Path, layout: Layout) -> list[str]:
    edges = import_graph(root, layout.package)
    cycles = [" -> ".join(cycle) for cycle in import_cycles(edges, layout.cycle_allowance)]
    return layer_violations(edges, layout) + [f"import cycle: {cycle}" for cycle in cycles]


def test_ami_imports_point_one_way():
    assert problems(SOURCE, AMI) == []


def test_the_graph_sees_every_kind_of_import():
    edges = {(edge.source, edge.target) for edge in import_graph(SOURCE, "ami")}
    assert ("ami.jobs.api.views", "ami.jobs.lifecycle") in edges  # from ami.jobs import lifecycle
    assert ("ami.ml.api.processing", "ami.ml.tasks") in edges
    assert ("ami.jobs.logging.handler", "ami.jobs.logging.backends.legacy_json") in edges
    assert ("ami.settings", "ami.ml.tasks") in edges  # the beat schedule's task names


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


SYNTHETIC = Layout(
    package="pkg",
    layers=("pkg.low", "pkg.mid", "pkg.top"),
    project=frozenset({"pkg", "pkg.settings"}),
    tooling=("pkg.tools",),
    tooling_allowance=frozenset({"pkg.top.demo"}),
)


def test_the_check_passes_a_package_that_points_one_way(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "settings.py": "import pkg.top.tasks\n",
            "tools/__init__.py": "from pkg.top import api\n",
            "low/__init__.py": "",
            "mid/__init__.py": "from pkg.low import models\n",
            "low/models.py": "from . import helpers\n",
            "low/helpers.py": "",
            "top/__init__.py": "",
            "top/api.py": "from pkg.mid import something\n",
            "top/demo.py": "from pkg.tools import server\n",
            "top/tasks.py": "",
        },
    )
    assert problems(root, SYNTHETIC) == []


def test_the_check_fails_on_each_kind_of_violation(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "settings.py": "",
            "tools/__init__.py": "",
            "low/__init__.py": "",
            "low/models.py": "def f():\n    from pkg.mid import lifecycle\n",
            "mid/__init__.py": "",
            "mid/lifecycle.py": (
                'RUN = "pkg.top.tasks.run"\n'
                "def start():\n    current_app.send_task(RUN)\n"
                "from pkg.low.models import f\n"
            ),
            "mid/conf.py": "from pkg import settings\nimport pkg.tools\n",
            "top/__init__.py": "",
            "top/tasks.py": "from ..mid import lifecycle\n",
        },
    )
    assert problems(root, SYNTHETIC) == [
        "pkg.low.models (line 2) imports pkg.mid.lifecycle: pkg.low is below pkg.mid",
        "pkg.mid.conf (line 1) imports pkg.settings: a project module, above every layer",
        "pkg.mid.conf (line 2) imports pkg.tools: "
        "development tooling, which product code never imports",
        "pkg.mid.lifecycle (line 3) imports pkg.top.tasks: pkg.mid is below pkg.top",
        "import cycle: pkg.low.models -> pkg.mid.lifecycle -> pkg.low.models",
    ]
