"""Which tests run where: ``make test`` (what CI runs, ``.ci/run``) runs the whole suite, slow
tests included; ``make test-fast`` (local work) leaves out the tests marked ``slow`` and nothing
else; every test that traces a ``torch.export`` program is marked ``slow`` (through
``EXPORT_TESTS`` in the root conftest.py)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# what a test calls when it exports: the library's export, torch's, tools/export.py's main
EXPORT_CALLS = ("export_separator(", "torch.export.export(", "export.main(")
# runs only on an old torch, where export_separator refuses at once (nothing is traced)
REFUSED_EXPORTS = {"test_export_is_refused_on_old_torch"}


def pytest_options(makefile: str, target: str) -> list[list[str]]:
    """The options of each pytest command of ``target`` in the text of a Makefile."""
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n?)+)", makefile, re.MULTILINE)
    assert match, f"the Makefile has no target {target!r}"
    return [line.split(" -m pytest", 1)[1].split(";")[0].split()
            for line in match.group(1).splitlines() if " -m pytest" in line]


def exporting_tests(paths: list[Path]) -> set[str]:
    """Names of the test functions of ``paths`` whose code calls an export."""
    names = set()
    for path in paths:
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                if any(call in ast.get_source_segment(text, node) for call in EXPORT_CALLS):
                    names.add(node.name)
    return names


def export_tests_of_conftest(path: Path = ROOT / "conftest.py") -> set[str]:
    """The names in the root conftest's ``EXPORT_TESTS`` (read, not imported)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXPORT_TESTS":
            return set(ast.literal_eval(node.value.args[0]))
    raise AssertionError("conftest.py defines no EXPORT_TESTS")


def test_ci_runs_every_test_and_test_fast_leaves_out_only_slow_ones():
    makefile = (ROOT / "Makefile").read_text()
    assert pytest_options(makefile, "test") == [["$(PYTEST_ARGS)"]], "make test must select all"
    assert pytest_options(makefile, "test-fast") == [["-m", '"not', 'slow"', "$(PYTEST_ARGS)"]]
    assert re.search(r"^make test\b", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)


def test_every_export_test_is_marked_slow():
    """A test that exports is listed in EXPORT_TESTS (so marked slow), and every listed name is
    a test that exports (a renamed test does not silently lose its mark)."""
    found = exporting_tests(sorted((ROOT / "tests").rglob("test_*.py"))) - REFUSED_EXPORTS
    listed = export_tests_of_conftest()
    assert found - listed == set(), "add these to EXPORT_TESTS in conftest.py"
    assert listed - found == set(), "EXPORT_TESTS names tests that do not export (renamed?)"


def test_checkers_see_planted_offenders(tmp_path):
    """A ``-m`` filter planted in ``test`` shows in its options; a planted exporting test is
    found, a test that does not export is not."""
    planted = 'test: setup\n\truff\n\t@$(PY) -m pytest -m "not slow" $(PYTEST_ARGS); rc=$$?\n'
    assert pytest_options(planted, "test") == [["-m", '"not', 'slow"', "$(PYTEST_ARGS)"]]
    tests = tmp_path / "test_x.py"
    # (the calls written in two pieces, so that this test is not taken for one that exports)
    tests.write_text("def test_a(m):\n    export_separator" "(m)\n\n\ndef test_b(m):\n    m(1)\n"
                     "\n\ndef test_c(m):\n    torch.export.export" "(m, (1,))\n")
    assert exporting_tests([tests]) == {"test_a", "test_c"}
