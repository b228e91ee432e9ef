"""Issue 30 item 3: the library entry points the recipes call. ``finetune.run_benchmark_recipe``
refuses a recipe that lacks what it passes on, before preparing or training anything; the GASS
recipe's ``train_stream`` reads shards (``data_format: shards``) or says why it cannot."""

import logging
import re

import pytest
import torch

from gass_modules.training.benchmark_runs import run_benchmark_recipe


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


def _shard_hparams(shards, checkpointer):
    scenario = {"sample_rate": 8000, "duration": 0.125, "max_retries": 20,
                "foreground_categories": ["speech", "sfx"], "background_categories": ["sfx"],
                "num_sources_probs": [0.5, 0.5, 0, 0]}
    return {"data_format": "shards", "train_shards": str(shards), "scenario": scenario,
            "seed": 5, "train_dataloader_opts": {"batch_size": 2, "looped_nominal_epoch": 3},
            "shard_buffer": 16, "shard_resampled": False, "shard_crops_per_clip": 1,
            "checkpointer": checkpointer}


def test_the_gass_training_stream_of_shards(tmp_path):
    """``data_format: shards``: the shard source, registered with the checkpointer; shards that
    cannot be read are the user's data (a ManifestError that says so), not a traceback."""
    from gass_modules.dataio.shard_source import ShardMixtureStream
    from gass_modules.dataio.shards import write_shards
    from gass_modules.training.gass_recipe import ManifestError, train_stream
    from tests.unittests.test_shards import make_corpus

    make_corpus(tmp_path / "wav", per_category=3).to_csv(tmp_path / "train.csv")
    write_shards(tmp_path / "train.csv", tmp_path / "shards", max_bytes=20000)
    registered = {}
    checkpointer = type("Checkpointer", (), {"add_recoverable": lambda self, name, obj:
                                             registered.update({name: obj})})()
    stream = train_stream(_shard_hparams(tmp_path / "shards", checkpointer))
    assert isinstance(stream, ShardMixtureStream) and registered == {"train_stream": stream}
    items = list(stream)
    assert len(items) == 6 and all(item["mix"].shape == (1000,) for item in items)
    assert all(torch.allclose(item["mix"], item["targets"].sum(-1), atol=1e-6)
               and item["mix"].abs().max() > 0 for item in items)  # mixtures of real clips
    with pytest.raises(ManifestError, match="data_format: shards: "):
        train_stream(_shard_hparams(tmp_path / "no_shards", checkpointer))
    assert list(registered) == ["train_stream"] and registered["train_stream"] is stream
