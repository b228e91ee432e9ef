"""The package layout of docs/architecture.md: small modules, one-way imports, no old paths.

* No module of ``gass_modules/`` is longer than about 600 lines (``LIMIT``).
* Module-level imports go from a higher row of the module map to a lower one (or the same row),
  never down the map, so there are no cycles.
* Every name is imported from the module that defines it: since 2.0.0 no module keeps names
  importable for an old path (no ``compat.moved_names`` ``__getattr__``, no re-imports).
"""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gass_modules"
LIMIT = 620  # "about 600 lines"

# Rows of the import diagram in docs/architecture.md ("Imports go one way"; 0 = bottom): the
# bottom modules at the package root and the packages above them. Every module of the package
# has a row (test_every_module_has_a_row).
ROWS = {
    **dict.fromkeys(("audio", "losses", "metrics", "order", "lengths", "sync_free", "optional",
                     "lobes", "dataio"), 0),
    "model_folder": 1,
    "inference": 2,
    **dict.fromkeys(("evaluation", "asr"), 3),
    "training": 4,
}
ROOT_MODULES_MAX = 10  # issue 30: at most 10 modules at the package root
MAP = ROOT / "docs" / "architecture.md"


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def long_modules(package: Path = PACKAGE, limit: int = LIMIT) -> list[str]:
    """The modules of ``package`` longer than ``limit`` lines, each with its length."""
    out = []
    for path in sorted(package.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > limit:
            out.append(f"{path.relative_to(package.parent)} has {lines} lines")
    return out


def test_modules_stay_small():
    """No module is longer than LIMIT lines; the failure lists every one that is."""
    offenders = long_modules()
    assert not offenders, (f"split these by concept (at most {LIMIT} lines each):\n"
                           + "\n".join(offenders))


def _row(module: str) -> int | None:
    """The row of ``gass_modules.<top>...`` in the import diagram (None: not in the map)."""
    parts = module.split(".")
    return ROWS.get(parts[1]) if len(parts) > 1 and parts[0] == "gass_modules" else None


def modules_of(package: Path = PACKAGE) -> list[str]:
    """Every module of ``package`` as a path relative to it (``lobes/base.py``)."""
    return [str(path.relative_to(package)) for path in sorted(package.rglob("*.py"))]


def _defines_code(path: Path) -> bool:
    """Whether a module defines a function or a class (a package face only imports)."""
    return any(isinstance(node, (ast.FunctionDef, ast.ClassDef))
               for node in ast.parse(path.read_text()).body)


def unmapped(package: Path = PACKAGE, text: str | None = None) -> list[str]:
    """What the module map of docs/architecture.md and the package disagree on: modules without
    a row in the map, rows naming a module that does not exist, top-level names without a row
    in ``ROWS``."""
    text = MAP.read_text() if text is None else text
    section = text[text.index("## Module map"):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", section, re.M))
    present = {m for m in modules_of(package) if not m.endswith("__init__.py")
               or _defines_code(package / m)}  # a package's face (imports only) has no row
    out = [f"{m}: no row in the module map of docs/architecture.md"
           for m in sorted(present - listed)]
    out += [f"{m}: a row of the module map, but no such module" for m in sorted(listed - present)]
    tops = {m.split("/")[0].removesuffix(".py") for m in modules_of(package)} - {"__init__"}
    out += [f"{t}: no row in ROWS (tests/consistency/test_layout.py) and the import diagram"
            for t in sorted(tops - set(ROWS))]
    return out


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """Module-level imports of ``package`` from a higher row of the map, one line per module
    (modules not on the map are not checked here)."""
    out = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        row = _row(module)
        if row is None:
            continue
        tree = ast.parse(path.read_text())
        imported = [node.module for node in tree.body if isinstance(node, ast.ImportFrom)
                    and node.module] + [alias.name for node in tree.body
                                        if isinstance(node, ast.Import) for alias in node.names]
        higher = [name for name in imported if (_row(name) or 0) > row]
        if higher:
            out.append(f"{module} (row {row}) imports {higher} from higher rows")
    return out


def test_imports_never_go_down_the_module_map():
    """No module imports from a higher row; the failure lists every module that does."""
    offenders = upward_imports()
    assert not offenders, "imports against the module map:\n" + "\n".join(offenders)


def test_layout_checkers_list_every_planted_offender(tmp_path):
    """The checkers catch planted offenders in a throw-away package, all of them at once, and
    pass the modules that keep the rules."""
    package = tmp_path / "gass_modules"
    (package / "lobes").mkdir(parents=True)
    (package / "training").mkdir()
    (package / "audio.py").write_text("from gass_modules.training.brain import SeparationBrain\n")
    (package / "lobes" / "base.py").write_text("import gass_modules.inference.separator\n"
                                               + "x = 1\n" * LIMIT)
    (package / "losses.py").write_text("from gass_modules.audio import load\n")
    (package / "training" / "brain.py").write_text("from gass_modules.audio import load\n"
                                                   * (LIMIT + 1))
    (package / "extra.py").write_text("")
    assert long_modules(package) == [f"gass_modules/lobes/base.py has {LIMIT + 1} lines",
                                     f"gass_modules/training/brain.py has {LIMIT + 1} lines"]
    assert upward_imports(package) == [
        "gass_modules.audio (row 0) imports ['gass_modules.training.brain'] from higher rows",
        "gass_modules.lobes.base (row 0) imports ['gass_modules.inference.separator'] from "
        "higher rows"]
    text = ("## Module map\n\n| module | concept |\n|---|---|\n| `audio.py` | a |\n"
            "| `losses.py` | b |\n| `lobes/base.py` | c |\n| `lobes/gone.py` | d |\n\n## Next\n"
            "| `training/brain.py` | after the map: not a row of it |\n")
    assert unmapped(package, text) == [
        "extra.py: no row in the module map of docs/architecture.md",
        "training/brain.py: no row in the module map of docs/architecture.md",
        "lobes/gone.py: a row of the module map, but no such module",
        "extra: no row in ROWS (tests/consistency/test_layout.py) and the import diagram"]


def test_every_module_has_a_row_in_the_map():
    """docs/architecture.md is the map of the package: a module added without its row there (or
    a top-level name without its row in the import diagram) fails, as does a row left behind."""
    offenders = unmapped()
    assert not offenders, "the module map and the package disagree:\n" + "\n".join(offenders)


def test_few_modules_at_the_package_root():
    """The bottom modules and the packages above them; everything else lives in a package."""
    root = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(root) <= ROOT_MODULES_MAX, f"{len(root)} modules at the package root: {root}"


def test_every_package_has_a_public_face():
    """Each package's ``__init__.py`` lists its public names in ``__all__``, and they import."""
    for init in sorted(PACKAGE.rglob("__init__.py")):
        if init.parent == PACKAGE or init.parent.name == "pretrained":
            continue
        module = importlib.import_module(".".join(init.parent.relative_to(ROOT).parts))
        assert getattr(module, "__all__", None), f"{init.relative_to(ROOT)} has no __all__"
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == [], f"{init.relative_to(ROOT)}: {missing} in __all__ but not defined"


def test_no_module_keeps_old_import_paths():
    """No ``compat.py``, no module-level ``__getattr__`` (PEP 562 shims), and the order module
    at the bottom imports nothing from gass_modules."""
    assert not (PACKAGE / "compat.py").exists()
    shims = [_rel(path) for path in sorted(PACKAGE.rglob("*.py"))
             if any(isinstance(node, (ast.FunctionDef, ast.Assign)) and "__getattr__" in (
                 [node.name] if isinstance(node, ast.FunctionDef)
                 else [getattr(t, "id", "") for t in node.targets])
                 for node in ast.parse(path.read_text()).body)]
    assert shims == []
    order = ast.parse((PACKAGE / "order.py").read_text())
    assert [n for n in ast.walk(order) if isinstance(n, (ast.Import, ast.ImportFrom))
            and "gass_modules" in (getattr(n, "module", None) or "")] == []


def test_unknown_names_still_fail_to_import():
    with pytest.raises(ImportError, match="cannot import name 'no_such_metric'"):
        from gass_modules.metrics import no_such_metric  # noqa: F401
    with pytest.raises(AttributeError, match="module 'gass_modules.dataio.manifest' has no "
                                             "attribute 'no_such_thing'"):
        _ = importlib.import_module("gass_modules.dataio.manifest").no_such_thing
