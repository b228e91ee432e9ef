"""Every public function and class of gass_modules has a SpeechBrain-style docstring.

Modelled on SpeechBrain's ``tests/consistency/test_docstrings.py``: module docstrings everywhere;
public module-level functions and classes need an ``Example`` section (run by
``--doctest-modules``); public methods need a docstring. Scripts (tools, benchmarks, recipes)
need module and function docstrings.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = sorted((ROOT / "gass_modules").rglob("*.py"))
SCRIPT_FILES = sorted(
    p for d in ("tools", "benchmarks", "recipes") for p in (ROOT / d).rglob("*.py")
)


def _public(node) -> bool:
    return not node.name.startswith("_")


def _problems(path: Path, need_examples: bool, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(root)
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


def docstring_problems(paths: list[Path], need_examples: bool, root: Path = ROOT) -> list[str]:
    """The problems of every file of ``paths``, one line each."""
    return [problem for path in paths for problem in _problems(path, need_examples, root)]


def test_package_docstrings():
    """gass_modules: docstrings with runnable Examples for public functions and classes (the
    failure lists every problem of every module)."""
    problems = docstring_problems(PACKAGE_FILES, need_examples=True)
    assert not problems, "docstrings to write:\n" + "\n".join(problems)


def test_script_docstrings():
    """tools/benchmarks/recipes: module and public function docstrings (every problem listed)."""
    problems = docstring_problems(SCRIPT_FILES, need_examples=False)
    assert not problems, "docstrings to write:\n" + "\n".join(problems)


def test_checker_flags_missing_docstrings(tmp_path):
    """The checker itself catches what it should (a test that can fail), in every file given."""
    bad = tmp_path / "bad.py"
    bad.write_text('"""Mod."""\n\ndef f():\n    """No example."""\n\nclass C:\n    def m(self):\n'
                   "        pass\n")
    also = tmp_path / "also.py"
    also.write_text("def g():\n    pass\n")
    probs = docstring_problems([bad, also], need_examples=True, root=tmp_path)
    assert any("f: no 'Example'" in p for p in probs)
    assert any("C: docstring missing" in p for p in probs)
    assert any("C.m: docstring missing" in p for p in probs)
    assert "also.py: module docstring missing" in probs
    assert "also.py:1 g: docstring missing" in probs
    assert docstring_problems([also], need_examples=False, root=tmp_path) == [
        "also.py: module docstring missing", "also.py:1 g: docstring missing"]
