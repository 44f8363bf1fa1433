"""The package's modules import in one direction: no module reaches itself through its imports.

Every ``import`` counts, at module level or inside a function — a deferred import hides a cycle from the
interpreter, not from the design. ``from .pkg import name`` is an edge to the submodule ``pkg.name`` when one
exists, else to ``pkg`` itself (its ``__init__``). A package's ``__init__`` importing its own submodules is the
package's interface, so edges from a module to the packages that contain it are not followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lcl_core

PACKAGE = Path(lcl_core.__file__).parent


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {target})
    return {m for m in found & modules if not name.startswith(m + ".") and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first repeated at the end), or None. Depth-first with colours."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_reports_a_hand_built_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_of_resolves_relative_imports_to_submodules(tmp_path):
    source = tmp_path / "table1.py"
    source.write_text("from ..paths import repo_root\nfrom . import report\nfrom ..data import world\n"
                      "def later():\n    from ..notebooks import SEQUENCE\n")
    modules = {"lcl_core.paths", "lcl_core.reproduce", "lcl_core.reproduce.report", "lcl_core.data",
               "lcl_core.data.world", "lcl_core.notebooks", "lcl_core.reproduce.table1"}
    assert imports_of("lcl_core.reproduce.table1", source, modules) == {
        "lcl_core.paths", "lcl_core.reproduce.report", "lcl_core.data.world", "lcl_core.notebooks"}


def test_lcl_core_has_no_import_cycle():
    modules = module_names()
    graph = {name: imports_of(name, path, set(modules)) for name, path in modules.items()}
    assert len(graph) > 40  # the walk found the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_reproductions_do_not_import_the_tutorial():
    """Where the project's files are lives in lcl_core.paths; the reproductions need nothing of the notebooks."""
    modules = module_names()
    for name, path in modules.items():
        if name.startswith("lcl_core.reproduce"):
            imported = imports_of(name, path, set(modules))
            assert not imported & {"lcl_core.notebooks", "lcl_core.exercises", "lcl_core.notebooks_cli"}, name
