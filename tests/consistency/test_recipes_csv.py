"""Every recipe yaml is listed in tests/recipes.csv, every listed file exists, and so does every
file a yaml `!include:`s (the model cards: a missing project file fails, it is never skipped).

As SpeechBrain's ``tests/consistency/test_recipe.py``: the csv is the registry that the recipe
tests run (each row in debug mode on tiny generated data).
"""

import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT / "tests" / "recipes.csv"
COLUMNS = ["Task", "Dataset", "Script_file", "Hparam_file", "Data_prep_file", "Readme_file",
           "test_debug_flags"]


def read_rows() -> list[dict]:
    """The rows of tests/recipes.csv."""
    with open(CSV, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS, f"recipes.csv columns must be {COLUMNS}"
        return list(reader)


def test_every_recipe_yaml_is_listed():
    """recipes/<Benchmark>/<task>/hparams/*.yaml all appear as Hparam_file."""
    listed = {row["Hparam_file"] for row in read_rows()}
    present = {str(p.relative_to(ROOT)) for p in ROOT.glob("recipes/*/*/hparams/*.yaml")}
    assert sorted(present - listed) == [], "add these to tests/recipes.csv"


def test_listed_files_exist():
    """Script, hparams, prepare and README named in the csv exist."""
    for row in read_rows():
        for col in ("Script_file", "Hparam_file", "Data_prep_file", "Readme_file"):
            if row[col]:
                assert (ROOT / row[col]).is_file(), f"{col} {row[col]} does not exist"


INCLUDE = re.compile(r"^[^#\n]*!include:(\S+)", re.MULTILINE)  # not in comments


def missing_includes(root: Path = ROOT) -> list[str]:
    """``!include:`` targets of the yamls under ``recipes/`` and ``hparams/`` that do not exist
    (resolved against the including file's folder, as hyperpyyaml does)."""
    missing = []
    for path in sorted(p for d in ("recipes", "hparams") for p in (root / d).rglob("*.yaml")):
        for target in INCLUDE.findall(path.read_text()):
            if not (path.parent / target).is_file():
                missing.append(f"{path.relative_to(root)} includes {target}")
    return missing


def test_included_files_exist():
    """Every model card a recipe includes is in the project: a missing one fails here, fast
    (the recipe tests would otherwise fail only in their slow debug runs)."""
    assert missing_includes() == [], "restore these files or fix the !include: paths"


def test_checker_flags_a_missing_include(tmp_path):
    """The include checker catches a planted dangling ``!include:`` and accepts a valid one."""
    (tmp_path / "hparams" / "models").mkdir(parents=True)
    (tmp_path / "hparams" / "models" / "card.yaml").write_text("num_sources: 4\n")
    hparams = tmp_path / "recipes" / "X" / "separation" / "hparams"
    hparams.mkdir(parents=True)
    (hparams / "ok.yaml").write_text("# x: !include:gone.yaml (a comment)\n"
                                     "model: !include:../../../../hparams/models/card.yaml\n")
    (hparams / "bad.yaml").write_text("model: !include:../../../../hparams/models/gone.yaml\n")
    assert missing_includes(tmp_path) == [
        "recipes/X/separation/hparams/bad.yaml includes ../../../../hparams/models/gone.yaml"]
