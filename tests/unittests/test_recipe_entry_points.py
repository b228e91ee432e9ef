"""Issue 30 item 3: the library entry points the recipes call (``finetune.run_benchmark_recipe``)
refuse a recipe that lacks what they pass on, before preparing or training anything."""

import logging
import re

import pytest

from gass_modules.finetune import run_benchmark_recipe


def _recipe(folder, text=""):
    (folder / "card.yaml").write_text("sample_rate: 8000\nnum_sources: 2\n")
    path = folder / "bench.yaml"
    path.write_text(f"output_folder: {folder / 'exp'}\nsave_folder: {folder / 'save'}\n"
                    f"data_folder: {folder}\nmodel: !include:card.yaml\n{text}")
    return str(path)


@pytest.mark.parametrize("text,missing", [("", "['data_sample_rate', 'skip_prep']"),
                                          ("skip_prep: True\n", "['data_sample_rate']")])
def test_a_key_the_preparation_needs_is_named(tmp_path, text, missing):
    calls = []
    logging.disable(logging.INFO)
    try:
        with pytest.raises(KeyError, match=re.escape(f"has no {missing}: the recipe's data prep")):
            run_benchmark_recipe([_recipe(tmp_path, text)], lambda **kw: calls.append(kw),
                                 {"sample_rate": "data_sample_rate"})
    finally:
        logging.disable(logging.NOTSET)
    assert calls == [] and not (tmp_path / "save").exists()


def test_the_preparation_gets_the_recipe_values_under_its_own_names(tmp_path):
    calls = []
    logging.disable(logging.INFO)
    try:
        with pytest.raises(ValueError, match="no_tuning evaluates a pre-trained GASS model"):
            run_benchmark_recipe(
                [_recipe(tmp_path, "skip_prep: True\nrate: 44100\nno_tuning: True\n")],
                lambda **kw: calls.append(kw), {"sample_rate": "rate"})
    finally:
        logging.disable(logging.NOTSET)
    assert calls == [{"data_folder": str(tmp_path), "save_folder": str(tmp_path / "save"),
                      "skip_prep": True, "sample_rate": 44100}]
