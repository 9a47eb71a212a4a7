"""Dependencies point one way: `ami.main` <- `ami.jobs` <- `ami.ml` <- the project modules;
the development tooling (`ami_lab`) may import the product, never the reverse.

The check parses every module under `ami/` and `ami_lab/` (no import is executed), builds the
import graph and fails on an import against the layer order, on any import cycle, and on a
product module that imports the tooling. An edge is an `import`/`from ... import` anywhere in
a module (function-local ones too) and a dotted path given to `import_string`, `send_task`,
`signature` or as a Celery beat `"task"`: those load code by name just as an import does.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

import ami
import ami_lab


@dataclass(frozen=True)
class Layout:
    """What may import what."""

    roots: dict[str, Path]  # top-level package -> its folder
    layers: tuple[str, ...]  # product packages, bottom first: each may import only lower ones
    project: frozenset[str]  # product modules above every layer (settings, URLs, entry points)
    tooling: tuple[str, ...]  # development tooling packages: no product module imports them


AMI = Layout(
    roots={"ami": Path(ami.__file__).parent, "ami_lab": Path(ami_lab.__file__).parent},
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
        }
    ),
    tooling=("ami_lab",),
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


def import_graph(roots: dict[str, Path]) -> list[Edge]:
    """Every edge between two modules of the packages (an import of oneself is no edge)."""
    modules = {
        name: path
        for package, root in roots.items()
        for name, path in module_names(root, package).items()
    }
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


def is_tooling(module: str, layout: Layout) -> bool:
    return any(_within(module, tool) for tool in layout.tooling)


def layer_violations(edges: list[Edge], layout: Layout) -> list[str]:
    """Product modules importing upwards, the project modules or the tooling."""
    found = []
    for edge in edges:
        if is_tooling(edge.source, layout):
            continue  # the tooling may import any product module
        if is_tooling(edge.target, layout):
            found.append(f"{edge}: development tooling, which product code never imports")
            continue
        source = layer_of(edge.source, layout)
        if source is None:
            continue  # the project modules may import any layer
        target = layer_of(edge.target, layout)
        if target is not None and target > source:
            found.append(f"{edge}: {layout.layers[source]} is below {layout.layers[target]}")
        elif edge.target in layout.project:
            found.append(f"{edge}: a project module, above every layer")
    return found


def import_cycles(edges: list[Edge]) -> list[list[str]]:
    """One cycle (first module repeated at its end) per strongly connected group of modules."""
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
            if len(group) > 1:
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


def problems(layout: Layout) -> list[str]:
    edges = import_graph(layout.roots)
    cycles = [" -> ".join(cycle) for cycle in import_cycles(edges)]
    return layer_violations(edges, layout) + [f"import cycle: {cycle}" for cycle in cycles]


def test_ami_imports_point_one_way():
    assert problems(AMI) == []


def test_production_settings_install_no_tooling():
    apps = [*settings.INSTALLED_APPS, settings.ROOT_URLCONF, settings.ASGI_APPLICATION]
    assert [app for app in apps if is_tooling(app, AMI)] == []


def test_the_graph_sees_every_kind_of_import():
    edges = {(edge.source, edge.target) for edge in import_graph(AMI.roots)}
    assert ("ami_lab.loadtest.runner", "ami.jobs.models") in edges
    assert ("ami.jobs.api.views", "ami.jobs.lifecycle") in edges  # from ami.jobs import lifecycle
    assert ("ami.ml.api.processing", "ami.ml.tasks") in edges
    assert ("ami.jobs.logging.handler", "ami.jobs.logging.backends.legacy_json") in edges
    assert ("ami.settings", "ami.ml.tasks") in edges  # the beat schedule's task names


def _layout(root: Path, files: dict[str, str]) -> Layout:
    """Write a product package `pkg` and a tooling package `tools` under `root`."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Layout(
        roots={"pkg": root / "pkg", "tools": root / "tools"},
        layers=("pkg.low", "pkg.mid", "pkg.top"),
        project=frozenset({"pkg", "pkg.settings"}),
        tooling=("tools",),
    )


def test_the_check_passes_packages_that_point_one_way(tmp_path):
    layout = _layout(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/settings.py": "import pkg.top.tasks\n",
            "pkg/low/__init__.py": "",
            "pkg/mid/__init__.py": "from pkg.low import models\n",
            "pkg/low/models.py": "from . import helpers\n",
            "pkg/low/helpers.py": "",
            "pkg/top/__init__.py": "",
            "pkg/top/api.py": "from pkg.mid import something\n",
            "pkg/top/tasks.py": "",
            "tools/__init__.py": "from pkg.top import api\nfrom pkg import settings\n",
            "tools/demo.py": "from tools import server\n",
            "tools/server.py": "",
        },
    )
    assert problems(layout) == []


def test_the_check_fails_on_each_kind_of_violation(tmp_path):
    layout = _layout(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/settings.py": "from tools.server import URL\n",
            "pkg/low/__init__.py": "",
            "pkg/low/models.py": "def f():\n    from pkg.mid import lifecycle\n",
            "pkg/mid/__init__.py": "",
            "pkg/mid/lifecycle.py": (
                'RUN = "pkg.top.tasks.run"\n'
                "def start():\n    current_app.send_task(RUN)\n"
                "from pkg.low.models import f\n"
            ),
            "pkg/mid/conf.py": "from pkg import settings\nimport_string('tools.server.Server')\n",
            "pkg/top/__init__.py": "",
            "pkg/top/tasks.py": "from ..mid import lifecycle\n",
            "tools/__init__.py": "",
            "tools/server.py": "from tools import runner\n",
            "tools/runner.py": "from tools.server import URL\n",
        },
    )
    assert problems(layout) == [
        "pkg.low.models (line 2) imports pkg.mid.lifecycle: pkg.low is below pkg.mid",
        "pkg.mid.conf (line 1) imports pkg.settings: a project module, above every layer",
        "pkg.mid.conf (line 2) imports tools.server: "
        "development tooling, which product code never imports",
        "pkg.mid.lifecycle (line 3) imports pkg.top.tasks: pkg.mid is below pkg.top",
        "pkg.settings (line 1) imports tools.server: "
        "development tooling, which product code never imports",
        "import cycle: pkg.low.models -> pkg.mid.lifecycle -> pkg.low.models",
        "import cycle: tools.runner -> tools.server -> tools.runner",
    ]


def test_no_test_module_imports_a_conftest():
    """Shared helpers live in tests/support; fixtures come from its registered plugin."""
    tests_root = Path(__file__).resolve().parents[1]
    offenders = [
        f"{path.relative_to(tests_root)}: {name}"
        for path in sorted(tests_root.rglob("*.py"))
        for name, _ in referenced_names(ast.parse(path.read_text()), "tests", False)
        if name.split(".")[-2:-1] == ["conftest"] or ".conftest." in f".{name}."
    ]
    assert offenders == []
