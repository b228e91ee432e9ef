"""Data preparation for Divide and Remaster v2 (DnR; Petermann et al., ICASSP 2022).

DnR v2 as distributed on Zenodo (``dnr_v2.tar.gz``, 44.1 kHz)::

    <data_folder>/dnr_v2/{tr,cv,tt}/<id>/mix.wav, speech.wav, music.wav, sfx.wav, annots.csv

(one folder per 60-s mixture; ``annots.csv`` is not needed). ``data_folder`` may be the folder
that holds ``dnr_v2/`` or ``dnr_v2`` itself. The mix is the sum of the three stems plus a low
noise floor. Writes ``train.csv`` (``tr``), ``valid.csv`` (``cv``) and ``test.csv`` (``tt``) in
``save_folder`` with the stems in the order speech, music, sfx.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
from pathlib import Path

from gass_modules.dataio.benchmarks import (
    BenchmarkExample,
    manifests_ready,
    require_folders,
    write_manifests,
)

logger = logging.getLogger(__name__)

DATASET = "DnR"
FOLDER = "dnr_v2"
STEMS = ("speech", "music", "sfx")
SPLITS = {"train": "tr", "valid": "cv", "test": "tt"}
HINT = ("Download dnr_v2.tar.gz from https://zenodo.org/record/6949108 (see "
        "github.com/darius522/dnr-utils), extract it and pass --data_folder=<folder holding "
        "dnr_v2/>.")
EXPECTED = [f"{FOLDER}/{{tr,cv,tt}}/<id>/mix.wav", f"{FOLDER}/{{tr,cv,tt}}/<id>/speech.wav, "
            "music.wav, sfx.wav"]


def find_root(data_folder: str | Path) -> Path:
    """The ``dnr_v2`` folder under or at ``data_folder``, checked for ``tr``, ``cv``, ``tt``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        The folder the user passed.

    Returns
    -------
    pathlib.Path
        The folder holding the split folders.
    """
    data_folder = Path(data_folder)
    root = data_folder / FOLDER if (data_folder / FOLDER).is_dir() else data_folder
    return require_folders(DATASET, root, list(SPLITS.values()), EXPECTED, HINT)


def read_split(root: Path, split: str) -> list[BenchmarkExample]:
    """The mixtures of one split: every sub-folder of ``root/split`` (files are probed later).

    Arguments
    ---------
    root : pathlib.Path
        The ``dnr_v2`` folder.
    split : str
        ``tr``, ``cv`` or ``tt``.

    Returns
    -------
    list of BenchmarkExample
        Sorted by id.
    """
    folders = sorted(p for p in (root / split).iterdir() if p.is_dir())
    return [BenchmarkExample(id=f"{split}/{d.name}", mix=d / "mix.wav",
                             sources=tuple(d / f"{stem}.wav" for stem in STEMS), categories=STEMS)
            for d in folders]


def prepare_dnr(data_folder: str | Path, save_folder: str | Path,
                skip_prep: bool = False) -> dict[str, Path]:
    """Writes the DnR manifests (``train``, ``valid``, ``test``) into ``save_folder``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        The folder holding ``dnr_v2/`` (or ``dnr_v2`` itself).
    save_folder : str or pathlib.Path
        Where the csv manifests go.
    skip_prep : bool
        Do nothing (the manifests exist already).

    Returns
    -------
    dict of str to pathlib.Path
        The manifest of each split.

    Raises
    ------
    gass_modules.dataio.benchmarks.LayoutError
        When the folder is not the official layout or stems are missing or unreadable.
    """
    save_folder = Path(save_folder)
    paths = {split: save_folder / f"{split}.csv" for split in SPLITS}
    if skip_prep:
        return paths
    root = find_root(data_folder)
    options = {"dataset": DATASET, "root": str(root.resolve())}
    if manifests_ready(save_folder, list(SPLITS), options):
        logger.info(f"DnR manifests in {save_folder} are up to date: skipping preparation")
        return paths
    examples = {split: read_split(root, official) for split, official in SPLITS.items()}
    return write_manifests(DATASET, examples, save_folder, data_folder, len(STEMS), options,
                           EXPECTED, HINT)
