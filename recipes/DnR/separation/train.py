#!/usr/bin/env python3
"""Recipe: Divide and Remaster (DnR v2) separation of speech, music and sound effects.

Trained from scratch, fine-tuned from GASS, or a GASS model evaluated as is. The separator (a
model card included by the hparams file, 3 outputs at 44.1 kHz, output ``k`` = stem ``k``) is
trained by ``gass_modules.training.brain.SeparationBrain`` (with the benchmark's scorer) on the
thresholded
log-MSE without permutation, and evaluated on the 60-s test mixtures, separated chunk by chunk,
with SDR and SI-SDR per stem.

Usage: ``python train.py hparams/tdanet_wav.yaml --data_folder=/data/dnr``; add
``--pretrained_path=<GASS model folder>`` to fine-tune it, and ``--no_tuning=True`` to
evaluate that folder as it is (README.md;
``gass_modules.training.benchmark_runs.run_benchmark_recipe``).
``data_folder`` holds ``dnr_v2/`` as extracted from Zenodo (see ``prepare.py`` and README.md).

Authors
 * gass developers 2026
"""

import sys

from prepare import prepare_dnr

from gass_modules.training.benchmark_runs import run_benchmark_recipe
from gass_modules.training.brain import SeparationBrain


def main(argv: list[str]) -> SeparationBrain:
    """Prepares the DnR manifests, then trains, fine-tunes or evaluates."""
    return run_benchmark_recipe(argv, prepare_dnr)


if __name__ == "__main__":
    main(sys.argv[1:])
