#!/usr/bin/env python3
"""Recipe: GASS pre-training of a general audio source separator (Pons et al., ICASSP 2024).

Mixtures of 1-4 sources of speech, music and sound events are drawn on the fly by the GASS mixer
(``gass_modules.dataio.mixer``) from source manifests; the separator (a model card included by
the hparams file) is trained with PIT on the thresholded log-MSE by ``SeparationBrain``, evaluated
on held-out mixtures beside the IRM oracle, and exported as a model folder that
``gass_modules.inference.GASSSeparator.from_hparams(source=...)`` loads.

Usage::

    python train.py hparams/tdanet_wav.yaml --data_folder=/path/to/manifests
    torchrun --nproc_per_node=2 train.py hparams/tdanet_wav.yaml --data_folder=...

``data_folder`` holds ``train.csv``, ``valid.csv`` and ``test.csv`` (``tools/make_manifest.py``
or ``tools/build_demo_corpus.py`` write them; split them by speaker, song or recording).

Authors
 * gass developers 2026
"""

import logging
import sys
from pathlib import Path

from speechbrain.utils.distributed import if_main_process, run_on_main

from gass_modules.brain import SeparationBrain, load_recipe
from gass_modules.dataio.mixer import MixtureStream, make_eval_set
from gass_modules.inference import save_model_folder

logger = logging.getLogger(__name__)


def check_manifests(hparams: dict) -> None:
    """Fails early, saying what to do, when a split's manifest is missing.

    Arguments
    ---------
    hparams : dict
        The loaded recipe (``train_manifest``, ``valid_manifest``, ``test_manifest``).
    """
    for split in ("train", "valid", "test"):
        path = Path(hparams[f"{split}_manifest"])
        if not path.is_file():
            raise FileNotFoundError(
                f"expected the {split} manifest at {path}; write the manifests with "
                "tools/make_manifest.py (your corpora) or tools/build_demo_corpus.py (the demo "
                "corpus), then pass --data_folder=<their folder>")


def build(argv: list[str], brain_class: type = SeparationBrain) -> tuple:
    """Parses the command line, loads the recipe and builds the brain and the datasets.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (hparams file, then SpeechBrain run options and overrides).
    brain_class : type
        ``SeparationBrain`` or a subclass of it.

    Returns
    -------
    tuple
        ``(brain, hparams, datasets, card)``: datasets maps ``train``/``valid``/``test`` to
        datasets, ``card`` is the model card as trained (yaml text).
    """
    hparams, run_opts, card = load_recipe(argv)
    run_on_main(check_manifests, kwargs={"hparams": hparams})
    eval_seed = hparams.get("eval_seed", hparams["seed"])  # one test set for several seeds
    datasets = {
        "train": MixtureStream(hparams["train_mixer"], seed=hparams["seed"]),
        "valid": make_eval_set(hparams["valid_mixer"], hparams["num_valid_mixtures"],
                               seed=eval_seed, id_prefix="valid"),
        "test": make_eval_set(hparams["test_mixer"], hparams["num_test_mixtures"],
                              seed=eval_seed, id_prefix="test"),
    }
    brain = brain_class(modules=hparams["modules"], opt_class=hparams["opt_class"],
                        hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    return brain, hparams, datasets, card


def run(brain: SeparationBrain, hparams: dict, datasets: dict, card: str,
        evaluate: bool = True) -> None:
    """Trains, evaluates on the test mixtures (model and IRM oracle) and exports the model folder.

    Arguments
    ---------
    brain : SeparationBrain
        From :func:`build`.
    hparams : dict
        The loaded recipe.
    datasets : dict
        ``train``, ``valid`` and ``test`` datasets.
    card : str
        The model card as trained, for the exported folder.
    evaluate : bool
        Evaluate and export after training.
    """
    brain.fit(hparams["epoch_counter"], datasets["train"], datasets["valid"],
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    if not evaluate:
        return
    brain.evaluate(datasets["test"], min_key="loss",
                   test_loader_kwargs=hparams["test_dataloader_opts"])
    if if_main_process():  # the best checkpoint, loaded by evaluate()
        folder = save_model_folder(brain.separator, card, hparams["model_folder"],
                                   overwrite=True)
        logger.info(f"model folder for GASSSeparator.from_hparams(source=...): {folder}")


if __name__ == "__main__":
    run(*build(sys.argv[1:]))
