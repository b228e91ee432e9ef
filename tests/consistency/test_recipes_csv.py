"""Every recipe yaml is listed in tests/recipes.csv, and every listed file exists.

As SpeechBrain's ``tests/consistency/test_recipe.py``: the csv is the registry that the recipe
tests run (each row in debug mode on tiny generated data).
"""

import csv
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
