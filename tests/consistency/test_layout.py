"""The package layout of docs/architecture.md: small modules, one-way imports, no old paths.

* No module of ``gass_modules/`` is longer than about 600 lines (``LIMIT``).
* Module-level imports go from a higher row of the module map to a lower one (or the same row),
  never down the map, so there are no cycles.
* Every name is imported from the module that defines it: since 2.0.0 no module keeps names
  importable for an old path (no ``compat.moved_names`` ``__getattr__``, no re-imports).
"""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gass_modules"
LIMIT = 620  # "about 600 lines"

# Rows of the import diagram in docs/architecture.md (0 = bottom). Modules not listed (new
# ones) are not checked here; add them when they join the map.
ROWS = {
    **dict.fromkeys(("order", "lobes", "losses", "metrics", "benchmark_metrics", "audio",
                     "lengths", "dataio", "safe_hparams", "pretrained", "output_files",
                     "sync_free", "optional", "cards"), 0),
    **dict.fromkeys(("evaluation", "chunking", "model_folder", "checkpointing", "schedulers",
                     "recipe", "rate_conversion", "transfer", "intonation", "stems",
                     "compile_regions", "training_step"), 1),
    **dict.fromkeys(("brain", "brain_evaluation", "brain_step", "inference", "streaming",
                     "transcribe"), 2),
    **dict.fromkeys(("finetune", "asr_frontend", "cli", "cli_stream"), 3),
}

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
    """Both checkers catch planted offenders in a throw-away package, all of them at once, and
    pass the modules that keep the rules."""
    package = tmp_path / "gass_modules"
    (package / "lobes").mkdir(parents=True)
    (package / "audio.py").write_text("from gass_modules.brain import SeparationBrain\n")
    (package / "lobes" / "base.py").write_text("import gass_modules.inference\n"
                                               + "x = 1\n" * LIMIT)
    (package / "losses.py").write_text("from gass_modules.audio import load\n")
    (package / "brain.py").write_text("from gass_modules.audio import load\n" * (LIMIT + 1))
    assert long_modules(package) == [f"gass_modules/brain.py has {LIMIT + 1} lines",
                                     f"gass_modules/lobes/base.py has {LIMIT + 1} lines"]
    assert upward_imports(package) == [
        "gass_modules.audio (row 0) imports ['gass_modules.brain'] from higher rows",
        "gass_modules.lobes.base (row 0) imports ['gass_modules.inference'] from higher rows"]


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
