#!/usr/bin/env python3
"""Recipe: FUSS universal sound separation, from scratch, fine-tuned from GASS, or GASS as is.

The separator (a model card included by the hparams file, 4 outputs at 16 kHz) is trained by
``gass_modules.brain.SeparationBrain`` (with the benchmark's scorer) with PIT on the thresholded
log-MSE (the FUSS baseline's loss), and evaluated on the eval set with the FUSS protocol:
multi-source SI-SNRi (MSi) and single-source SI-SNR (1S) (TDCN++ baseline: 9.8 dB MSi,
35.5 dB 1S on the reverberant data).

Usage::

    # from scratch
    python train.py hparams/tdanet_wav.yaml --data_folder=/data/fuss
    # fine-tune a GASS checkpoint (model folder, CKPT+ folder or save/ folder of the GASS recipe)
    python train.py hparams/tdanet_wav.yaml --data_folder=/data/fuss \
        --pretrained_path=results/GASS/tdanet_wav/1234/model
    # evaluate the GASS model folder as it is (4 outputs at 16 kHz), no training
    python train.py hparams/tdanet_wav.yaml --data_folder=/data/fuss \
        --pretrained_path=results/GASS/tdanet_wav/1234/model --no_tuning=True

``data_folder`` holds ``ssdata_reverb/`` (or ``ssdata/``) as extracted from Zenodo (see
``prepare.py`` and README.md).

Authors
 * gass developers 2026
"""

import logging
import sys

from prepare import prepare_fuss
from speechbrain.utils.distributed import run_on_main

from gass_modules.brain import SeparationBrain
from gass_modules.finetune import run_benchmark
from gass_modules.recipe import load_recipe

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> SeparationBrain:
    """Parses the command line, prepares the manifests, then trains/fine-tunes and evaluates.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (hparams file, then SpeechBrain run options and overrides).

    Returns
    -------
    SeparationBrain
        The brain after evaluation (``brain.scorer`` holds the results).
    """
    hparams, run_opts, card = load_recipe(argv)
    run_on_main(prepare_fuss, kwargs={
        "data_folder": hparams["data_folder"], "save_folder": hparams["save_folder"],
        "version": hparams["version"], "skip_prep": hparams["skip_prep"]})
    return run_benchmark(hparams, run_opts, card)


if __name__ == "__main__":
    main(sys.argv[1:])
