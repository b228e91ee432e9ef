"""Issue 24: the GASS recipe scores an exported model folder without training
(``--evaluate_model_folder``, how a GPU-trained GASS-base is evaluated on the WAV test split)."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gass_modules.model_folder.folder import save_model_folder
from gass_modules.training.gass_recipe import evaluate_model_folder
from tests.doubles import ScaledCopies

GASS = Path(__file__).resolve().parents[2] / "recipes" / "GASS" / "separation"


@pytest.fixture(scope="module")
def train():
    spec = importlib.util.spec_from_file_location("_gass_train_base", GASS / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Brain:
    """What ``run`` needs of a SeparationBrain: modules, a checkpointer, fit and evaluate."""

    def __init__(self, separator):
        self.modules = SimpleNamespace(separator=separator)
        self.checkpointer = object()
        self.calls = []

    def fit(self, *args, **kwargs):
        self.calls.append("fit")

    def evaluate(self, test_set, **kwargs):
        self.calls.append(("evaluate", test_set, kwargs, self.checkpointer))

    def export_model_folder(self, card):
        self.calls.append("export")


def test_evaluates_the_folder_weights_without_training(train, tmp_path):
    folder = save_model_folder(ScaledCopies([0.7, 0.2], 8000), tmp_path / "model")
    brain = _Brain(ScaledCopies([0.0, 0.0], 8000))
    hparams = {"evaluate_model_folder": str(folder), "test_dataloader_opts": {"batch_size": 1}}
    train.run(brain, hparams, {"test": "TEST", "train": None, "valid": None}, card="")
    assert brain.calls == [("evaluate", "TEST", {"test_loader_kwargs": {"batch_size": 1}}, None)]
    assert torch.allclose(brain.modules.separator.gains, torch.tensor([0.7, 0.2]))


def test_a_folder_that_does_not_fit_is_an_error(tmp_path):
    folder = save_model_folder(ScaledCopies([0.7, 0.2, 0.1], 8000), tmp_path / "model")
    brain = _Brain(ScaledCopies([0.0, 0.0], 8000))
    with pytest.raises(ValueError, match="does not match"):
        evaluate_model_folder(brain, {"test_dataloader_opts": {}}, {"test": None}, folder)
    with pytest.raises(FileNotFoundError, match="holds no separator.ckpt"):
        evaluate_model_folder(brain, {}, {}, tmp_path / "nowhere")
    assert brain.calls == []


@pytest.mark.parametrize("yaml_path", sorted((GASS / "hparams").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_gass_recipe_yaml_takes_evaluate_model_folder(yaml_path):
    """``--evaluate_model_folder=FOLDER`` works with every GASS recipe yaml, not only GASS-base's:
    hyperpyyaml refuses an override of a key the yaml lacks (GASS-mini's yaml lacked it, so the
    bundled GASS-mini could not be re-scored on the test mixtures of today's mixer)."""
    import yaml

    keys = yaml.load(yaml_path.read_text(), Loader=yaml.BaseLoader)  # keys only, tags as text
    assert "evaluate_model_folder" in keys, f"{yaml_path.name}: add `evaluate_model_folder: null`"
    assert keys["evaluate_model_folder"] in ("null", "", None)
