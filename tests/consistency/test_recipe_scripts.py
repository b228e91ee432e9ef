"""Issue 30 item 3, recipes are configuration: a separation ``train.py`` parses, builds and calls
the library, and the benchmark recipes call one entry point instead of carrying copies of it.

* Every ``recipes/*/separation/train.py`` has at most ``LIMIT`` lines.
* A benchmark recipe (a ``train.py`` beside a ``prepare.py``) holds at most ``BENCHMARK_CODE``
  lines of code besides its docstrings (imports, ``main`` and its call of
  ``gass_modules.training.benchmark_runs.run_benchmark_recipe``).
* No two separation ``train.py`` share a run of ``RUN`` identical lines (docstrings included, as
  the ``duplicates`` tool counts them): what they share lives in the library.
"""

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "recipes").glob("*/separation/train.py"))
BENCHMARKS = [path for path in SCRIPTS if (path.parent / "prepare.py").is_file()]
LIMIT = 120
BENCHMARK_CODE = 12
RUN = 6


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_lines(text: str) -> list[str]:
    """The lines of a script that are code: not blank, not a comment, not in a docstring."""
    docstrings = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    return [line.strip() for number, line in enumerate(text.splitlines(), 1)
            if number not in docstrings and line.strip() and not line.strip().startswith("#")]


def shared_runs(first: str, second: str, run: int = RUN) -> set[tuple[str, ...]]:
    """The runs of ``run`` consecutive non-blank lines (stripped) found in both texts."""
    def windows(text: str) -> set[tuple[str, ...]]:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return {tuple(lines[k:k + run]) for k in range(len(lines) - run + 1)}
    return windows(first) & windows(second)


def test_the_recipes_are_found():
    names = {path.parts[-3] for path in SCRIPTS}
    assert {"GASS", "FUSS", "LibriMix", "DnR", "MUSDB18"} <= names, names
    assert {path.parts[-3] for path in BENCHMARKS} == {"FUSS", "LibriMix", "DnR", "MUSDB18"}


def test_every_separation_train_py_is_short():
    long = {_rel(path): n for path in SCRIPTS
            if (n := len(path.read_text().splitlines())) > LIMIT}
    assert long == {}, f"move the library code into gass_modules (at most {LIMIT} lines): {long}"


def test_benchmark_recipes_only_call_the_shared_entry_point():
    offenders = {}
    for path in BENCHMARKS:
        text = path.read_text()
        code = code_lines(text)
        if len(code) > BENCHMARK_CODE or "run_benchmark_recipe(" not in text:
            offenders[_rel(path)] = len(code)
    assert offenders == {}, ("a benchmark train.py calls gass_modules.training.benchmark_runs."
                             f"run_benchmark_recipe in at most {BENCHMARK_CODE} lines of code: "
                             f"{offenders}")


def test_separation_recipes_share_no_copied_runs():
    copies = {(_rel(a), _rel(b)): len(runs)
              for a, b in itertools.combinations(SCRIPTS, 2)
              if (runs := shared_runs(a.read_text(), b.read_text()))}
    assert copies == {}, f"runs of {RUN} lines copied between recipes (move them): {copies}"


def test_the_checks_see_copies_and_docstrings():
    copied = "def main(argv):\n" + "".join(f"    step_{k}(argv)\n" for k in range(RUN - 1))
    assert len(shared_runs("import a\n" + copied, copied + "x = 1\n")) == 1
    assert shared_runs(copied, copied.replace("step_3", "other")) == set()
    script = ('"""Doc.\n\nMore."""\nimport sys\n\n\n'
              'def main():\n    """Doc."""\n    # note\n    return 1\n')
    assert code_lines(script) == ["import sys", "def main():", "return 1"]
