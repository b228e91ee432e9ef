#!/usr/bin/env python3
"""Recipe: FUSS universal sound separation, from scratch, fine-tuned from GASS, or GASS as is.

The separator (a model card included by the hparams file, 4 outputs at 16 kHz) is trained by
``gass_modules.training.brain.SeparationBrain`` (with the benchmark's scorer) with PIT on the
thresholded
log-MSE (the FUSS baseline's loss), and evaluated on the eval set with the FUSS protocol:
multi-source SI-SNRi (MSi) and single-source SI-SNR (1S) (TDCN++ baseline: 9.8 dB MSi,
35.5 dB 1S on the reverberant data).

Usage: ``python train.py hparams/tdanet_wav.yaml --data_folder=/data/fuss``; add
``--pretrained_path=<GASS model folder>`` to fine-tune it, and ``--no_tuning=True`` to
evaluate that folder as it is (README.md;
``gass_modules.training.benchmark_runs.run_benchmark_recipe``).
``data_folder`` holds ``ssdata_reverb/`` (or ``ssdata/``) as extracted from Zenodo (see
``prepare.py`` and README.md).

Authors
 * gass developers 2026
"""

import sys

from prepare import prepare_fuss

from gass_modules.training.benchmark_runs import run_benchmark_recipe
from gass_modules.training.brain import SeparationBrain


def main(argv: list[str]) -> SeparationBrain:
    """Prepares the FUSS manifests (of its ``version``), then trains, fine-tunes or evaluates."""
    return run_benchmark_recipe(argv, prepare_fuss, {"version": "version"})


if __name__ == "__main__":
    main(sys.argv[1:])
