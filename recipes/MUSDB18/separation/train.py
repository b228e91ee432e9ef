#!/usr/bin/env python3
"""Recipe: MUSDB18-HQ music separation (drums, bass, other, vocals).

Trained from scratch, fine-tuned from GASS, or a GASS model evaluated as is. The separator (a
model card included by the hparams file, 4 outputs at 44.1 kHz, output ``k`` = stem ``k``) is
trained by ``gass_modules.training.brain.SeparationBrain`` (with the benchmark's scorer) on mono
crops
with the thresholded log-MSE without permutation, and evaluated on the 50 test tracks, each
stereo channel separated chunk by chunk, with museval cSDR and uSDR per stem (BSRNN: 8.2 dB cSDR
on average without extra data).

Usage: ``python train.py hparams/tdanet_wav.yaml --data_folder=/data/musdb18hq``; add
``--pretrained_path=<GASS model folder>`` to fine-tune it, and ``--no_tuning=True`` to
evaluate that folder as it is (README.md;
``gass_modules.training.benchmark_runs.run_benchmark_recipe``).
``data_folder`` holds MUSDB18-HQ (``train/``, ``test/`` with one folder per track), or MUSDB18
(``.stem.mp4``, decoded with stempeg when ffmpeg is installed); see ``prepare.py`` and README.md.

Authors
 * gass developers 2026
"""

import sys

from prepare import prepare_musdb

from gass_modules.training.benchmark_runs import run_benchmark_recipe
from gass_modules.training.brain import SeparationBrain


def main(argv: list[str]) -> SeparationBrain:
    """Prepares the MUSDB18 manifests, then trains, fine-tunes or evaluates."""
    return run_benchmark_recipe(argv, prepare_musdb)


if __name__ == "__main__":
    main(sys.argv[1:])
