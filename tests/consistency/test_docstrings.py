"""Every public function and class of gass_modules has a SpeechBrain-style docstring.

Modelled on SpeechBrain's ``tests/consistency/test_docstrings.py``: module docstrings everywhere;
public module-level functions and classes need an ``Example`` section (run by
``--doctest-modules``); public methods need a docstring. Scripts (tools, benchmarks, recipes)
need module and function docstrings.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = sorted((ROOT / "gass_modules").rglob("*.py"))
SCRIPT_FILES = sorted(
    p for d in ("tools", "benchmarks", "recipes") for p in (ROOT / d).rglob("*.py")
)


def _public(node) -> bool:
    return not node.name.startswith("_")


def _problems(path: Path, need_examples: bool) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(ROOT)
    out = []
    if not ast.get_docstring(tree):
        out.append(f"{rel}: module docstring missing")
    for node in tree.body:
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if isinstance(node, kinds) and _public(node):
            doc = ast.get_docstring(node)
            if not doc:
                out.append(f"{rel}:{node.lineno} {node.name}: docstring missing")
            elif need_examples and "Example" not in doc:
                out.append(f"{rel}:{node.lineno} {node.name}: no 'Example' section")
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    is_fn = isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                    if is_fn and _public(item) and not ast.get_docstring(item):
                        where = f"{rel}:{item.lineno} {node.name}.{item.name}"
                        out.append(f"{where}: docstring missing")
    return out


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_package_docstrings(path):
    """gass_modules: docstrings with runnable Examples for public functions and classes."""
    assert _problems(path, need_examples=True) == []


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_docstrings(path):
    """tools/benchmarks/recipes: module and public function docstrings."""
    assert _problems(path, need_examples=False) == []


def test_checker_flags_missing_docstrings(tmp_path):
    """The checker itself catches what it should (a test that can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text('"""Mod."""\n\ndef f():\n    """No example."""\n\nclass C:\n    def m(self):\n'
                   "        pass\n")
    probs = _problems_rel(bad)
    assert any("f: no 'Example'" in p for p in probs)
    assert any("C: docstring missing" in p for p in probs)
    assert any("C.m: docstring missing" in p for p in probs)


def _problems_rel(path):
    global ROOT
    saved, ROOT = ROOT, path.parent
    try:
        return _problems(path, need_examples=True)
    finally:
        ROOT = saved
