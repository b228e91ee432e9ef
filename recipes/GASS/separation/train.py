#!/usr/bin/env python3
"""Recipe: GASS pre-training of a general audio source separator (Pons et al., ICASSP 2024).

Mixtures of 1-4 sources of speech, music and sound events are drawn on the fly by the GASS mixer
(``gass_modules.dataio.mixer``) from source manifests; the separator (a model card included by
the hparams file) is trained with PIT on the thresholded log-MSE by ``SeparationBrain``, evaluated
on held-out mixtures beside the IRM oracle, and exported as a model folder that
``gass_modules.inference.separator.GASSSeparator.from_hparams(source=...)`` loads.

Usage::

    python train.py hparams/tdanet_wav.yaml --data_folder=/path/to/manifests
    torchrun --nproc_per_node=2 train.py hparams/tdanet_wav.yaml --data_folder=...

``data_folder`` holds ``train.csv``, ``valid.csv`` and ``test.csv`` (``tools/make_manifest.py``
or ``tools/build_demo_corpus.py`` write them; split them by speaker, song or recording).
With ``--data_format=shards`` the training sources come from WebDataset shards instead
(``tools/make_shards.py``; ``--train_shards=<index.json, its folder or url>``), read by
``gass_modules.dataio.shard_source`` with the same mixing rules, split over torchrun ranks and
loader workers, and resumed where they were; valid and test still come from the manifests.

The manifests are checked before anything is built (every bad row reported at once), and
``--evaluate_model_folder=<model folder>`` scores an exported folder without training: both in
``gass_modules.training.gass_recipe``, which builds and runs what this script parses.

Authors
 * gass developers 2026
"""

import sys

from gass_modules.training.gass_recipe import ManifestError, build, run


def main(argv: list[str]) -> None:
    """Builds the recipe of a command line, then trains, evaluates and exports.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (hparams file, then SpeechBrain run options and overrides).
    """
    try:
        built = build(argv)
    except ManifestError as error:  # the user's data, not a bug: no traceback
        sys.exit(f"train.py: {error}")
    run(*built)


if __name__ == "__main__":
    main(sys.argv[1:])
