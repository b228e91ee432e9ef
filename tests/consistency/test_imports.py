"""Imports between gass_modules modules: no private names across modules, no import cycles.

* What one module needs from another is public (documented and doctested where it is defined):
  no ``from gass_modules.x import _name`` between two modules (issue 30). A module's private
  names may change without notice; a name another module relies on may not.
* Module-level imports among gass_modules modules form no cycle, so imports flow one way (from the
  recipes and CLI down to the lobes, losses and audio; docs/architecture.md). Imports inside
  functions (deferred on purpose) are not edges; ``from gass_modules import x`` names the module
  ``x`` when ``x`` is one, and importing a package's module also imports the package (its
  face, ``__init__.py``), except for the module's own packages, which Python initialises before
  it: a face may import its package's modules.

Both tests list every offender, not only the first.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gass_modules"


def module_name(path: Path, root: Path = ROOT) -> str:
    """``gass_modules/lobes/bsrnn.py`` -> ``gass_modules.lobes.bsrnn`` (a package: its folder)."""
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def modules(package: Path = PACKAGE, root: Path = ROOT) -> dict[str, Path]:
    """Every module and package of ``package``, by dotted name."""
    return {module_name(p, root): p for p in sorted(package.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The module an ``ImportFrom`` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    parts = name.split(".") if is_package else name.split(".")[:-1]
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def private_imports(known: dict[str, Path], root: Path = ROOT) -> list[str]:
    """``where: from module import _name`` for every private name imported from another module
    of the package (at any depth of the file, deferred imports included)."""
    found = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _absolute(node, name, path.name == "__init__.py")
            if source not in known or source == name:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: "
                                 f"from {source} import {alias.name}")
    return found


def _parents(module: str, known: dict[str, Path]) -> list[str]:
    """The packages that importing ``module`` imports first (``a.b.c`` -> ``a``, ``a.b``)."""
    parts = module.split(".")
    return [p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in known]


def import_graph(known: dict[str, Path], deferred: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules its module-level statements import (``if``/``try`` blocks at
    module level included; with ``deferred``, imports in function and class bodies too), each
    with its parent packages."""
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: set[str] = set()
        pending = list(ast.walk(tree)) if deferred else list(tree.body)
        while pending:
            node = pending.pop()
            if not deferred and isinstance(node, (ast.If, ast.Try)):
                pending += [*node.body, *node.orelse, *getattr(node, "finalbody", []),
                            *(h for handler in getattr(node, "handlers", []) for h in handler.body)]
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(node, name, path.name == "__init__.py")
                # ``from pkg import module`` imports the module; ``from pkg import name`` the face
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known
                           else source for alias in node.names]
            for target in targets:
                if target in known:
                    # the packages above the target, except this module's own: a package is
                    # initialised before its modules, so its face may import them
                    edges.update([target, *(p for p in _parents(target, known)
                                            if not name.startswith(p + "."))])
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm), each
    sorted; every import cycle lies within one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_private_name_is_imported_across_modules():
    offenders = private_imports(modules())
    assert offenders == [], ("private names imported from another gass_modules module; make "
                             "each public (documented, doctested) where its concept lives, move "
                             "it to its only user, or drop the import:\n" + "\n".join(offenders))


def test_no_import_cycles():
    found = cycles(import_graph(modules()))
    assert found == [], "import cycles among gass_modules modules (module-level imports):\n" + (
        "\n".join(" <-> ".join(c) for c in found))


def test_no_import_circles_through_deferred_imports():
    """Imports inside functions count too: a deferred import only hides a circle."""
    found = cycles(import_graph(modules(), deferred=True))
    assert found == [], "import circles among gass_modules modules (any import):\n" + (
        "\n".join(" <-> ".join(c) for c in found))


# The separator models of lobes/: each builds on shared parts (band_split, band_layers, bands,
# blocks, attention, ...), never on another model's module (issue 30).
MODELS = ("gass_modules.lobes.tdanet", "gass_modules.lobes.bsrnn", "gass_modules.lobes.bs_roformer",
          "gass_modules.lobes.tiger")


def test_no_separator_model_imports_another():
    graph = import_graph(modules(), deferred=True)
    found = [f"{model} imports {other}" for model in MODELS for other in MODELS
             if other in graph[model]]
    assert found == [], "move what the models share into a part of lobes/:\n" + "\n".join(found)


def test_checkers_find_what_they_should(tmp_path):
    """The checkers themselves: a private import, a relative one, a cycle through ``from pkg
    import module`` and one through a package's ``__init__``; deferred imports are no edges."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.c import C\n")
    (pkg / "a.py").write_text("from pkg import b\nfrom pkg.b import _hidden\n")
    (pkg / "b.py").write_text("import pkg.a\n_hidden = 1\n")
    (pkg / "c.py").write_text("from .sub import d\nfrom ._x import y\n\nC = 1\n")
    (pkg / "sub" / "d.py").write_text("def f():\n    from pkg.a import g\n"
                                      "    from pkg.b import _q\n")
    (pkg / "e.py").write_text("try:\n    from pkg.f import F\nexcept ImportError:\n    F = None\n")
    (pkg / "f.py").write_text("from . import e\nfrom .b import _z\n")
    known = modules(pkg, tmp_path)
    assert sorted(known) == ["pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.e", "pkg.f", "pkg.sub",
                             "pkg.sub.d"]
    found = private_imports(known, tmp_path)
    assert [line.split(": ", 1)[1] for line in found] == [
        "from pkg.b import _hidden", "from pkg.b import _z", "from pkg.b import _q"]
    assert found[0].startswith("pkg/a.py:2: ")
    graph = import_graph(known)
    # the deferred import is no edge, nor are d's own packages (initialised before it)
    assert graph["pkg.sub.d"] == set()
    assert graph["pkg.c"] == {"pkg.sub", "pkg.sub.d"}  # pkg._x is not a module of pkg
    assert cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub"], ["pkg.e", "pkg.f"]]
    del graph["pkg.b"]
    assert ["pkg.a", "pkg.b"] not in cycles(graph)
    assert ["pkg.a", "pkg.b", "pkg.sub.d"] not in cycles(import_graph(known))
    assert import_graph(known, deferred=True)["pkg.sub.d"] == {"pkg.a", "pkg.b"}
