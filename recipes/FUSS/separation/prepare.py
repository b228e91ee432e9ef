"""Data preparation for FUSS, the Free Universal Sound Separation dataset (Wisdom et al., 2021).

Reads FUSS as distributed on Zenodo (``FUSS_ssdata.tar.gz`` / ``FUSS_ssdata_reverb.tar.gz``)::

    <data_folder>/ssdata_reverb/                       (or ssdata/ for the dry version)
        train_example_list.txt, validation_example_list.txt, eval_example_list.txt
        train/example00000.wav
        train/example00000_sources/background0_sound.wav
        train/example00000_sources/foreground0_sound.wav ... foreground2_sound.wav
        validation/..., eval/...

Each line of an example list holds tab-separated paths relative to the list's folder: the
mixture, then its 1-4 sources (background first). When a list is missing, the split folder is
scanned for ``example*.wav`` with a ``*_sources/`` folder. ``data_folder`` may be the folder that
holds ``ssdata_reverb/`` or that folder itself.

Writes ``train.csv``, ``valid.csv`` and ``test.csv`` (FUSS ``train``, ``validation``, ``eval``)
in ``save_folder`` (see ``gass_modules.dataio.benchmarks``): 4 source slots, categories
``background``/``foreground`` (FUSS has no class labels).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
from pathlib import Path

from gass_modules.dataio.benchmarks import (
    BenchmarkExample,
    LayoutError,
    manifests_ready,
    require_folders,
    write_manifests,
)

logger = logging.getLogger(__name__)

DATASET = "FUSS"
VERSIONS = ("ssdata_reverb", "ssdata")
SPLITS = {"train": "train", "valid": "validation", "test": "eval"}
MAX_SOURCES = 4
HINT = ("Download FUSS_ssdata_reverb.tar.gz (or FUSS_ssdata.tar.gz) from "
        "https://zenodo.org/record/4012661 (see github.com/google-research/sound-separation/"
        "tree/master/datasets/fuss), extract it and pass --data_folder=<folder holding "
        "ssdata_reverb/>.")


def expected_layout(version: str) -> list[str]:
    """The official FUSS layout, for error messages.

    Arguments
    ---------
    version : str
        ``ssdata_reverb`` or ``ssdata``.

    Returns
    -------
    list of str
        One line per folder or file pattern.
    """
    lines = [f"{version}/{{train,validation,eval}}_example_list.txt"]
    for split in SPLITS.values():
        lines += [f"{version}/{split}/exampleNNNNN.wav",
                  f"{version}/{split}/exampleNNNNN_sources/background0_sound.wav, "
                  "foreground<k>_sound.wav"]
    return lines


def find_root(data_folder: str | Path, version: str) -> Path:
    """The ``ssdata_reverb`` (or ``ssdata``) folder under or at ``data_folder``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        The folder the user passed.
    version : str
        ``ssdata_reverb`` or ``ssdata``.

    Returns
    -------
    pathlib.Path
        The folder holding the split folders.
    """
    if version not in VERSIONS:
        raise ValueError(f"FUSS version must be one of {VERSIONS}, got {version!r}")
    data_folder = Path(data_folder)
    candidate = data_folder / version
    root = candidate if candidate.is_dir() else data_folder
    return require_folders(DATASET, root, list(SPLITS.values()), expected_layout(version), HINT)


def _category(path: Path) -> str:
    """``background`` or ``foreground`` from a FUSS source file name."""
    return "background" if path.name.startswith("background") else "foreground"


def _example(split_dir: Path, mix: Path, sources: list[Path], where: str) -> BenchmarkExample:
    """One FUSS example; more than 4 sources is not FUSS."""
    if not 1 <= len(sources) <= MAX_SOURCES:
        raise LayoutError(DATASET, split_dir, f"{where} lists {len(sources)} sources for "
                          f"{mix.name} (FUSS mixtures have 1-{MAX_SOURCES})",
                          expected_layout(split_dir.parent.name), HINT)
    return BenchmarkExample(id=f"{split_dir.name}/{mix.stem}", mix=mix, sources=tuple(sources),
                            categories=tuple(_category(s) for s in sources))


def read_split(root: Path, split: str) -> list[BenchmarkExample]:
    """The examples of one FUSS split, from its example list (or a folder scan).

    Arguments
    ---------
    root : pathlib.Path
        The ``ssdata_reverb`` (or ``ssdata``) folder.
    split : str
        ``train``, ``validation`` or ``eval``.

    Returns
    -------
    list of BenchmarkExample
        In list order.
    """
    listing = root / f"{split}_example_list.txt"
    split_dir = root / split
    examples = []
    if listing.is_file():
        for number, line in enumerate(listing.read_text().splitlines(), start=1):
            fields = [f for f in line.strip().split("\t") if f]
            if not fields:
                continue
            paths = [root / f for f in fields]
            examples.append(_example(split_dir, paths[0], paths[1:],
                                     f"{listing.name} line {number}"))
        return examples
    logger.info(f"{listing} not found: scanning {split_dir} for example*.wav")
    for mix in sorted(split_dir.glob("example*.wav")):
        sources_dir = split_dir / f"{mix.stem}_sources"
        sources = sorted(sources_dir.glob("background*_sound.wav"))
        sources += sorted(sources_dir.glob("foreground*_sound.wav"))
        if not sources_dir.is_dir() or not sources:
            raise LayoutError(DATASET, split_dir, f"{mix.name} has no {sources_dir.name}/ folder "
                              "with background*_sound.wav / foreground*_sound.wav files",
                              expected_layout(root.name), HINT)
        examples.append(_example(split_dir, mix, sources, sources_dir.name))
    return examples


def prepare_fuss(data_folder: str | Path, save_folder: str | Path, version: str = "ssdata_reverb",
                 skip_prep: bool = False) -> dict[str, Path]:
    """Writes the FUSS manifests (``train``, ``valid``, ``test``) into ``save_folder``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        The folder holding ``ssdata_reverb/`` (or ``ssdata/``), or that folder itself.
    save_folder : str or pathlib.Path
        Where the csv manifests go.
    version : str
        ``ssdata_reverb`` (the DCASE 2020 task and the baseline's numbers) or ``ssdata`` (dry).
    skip_prep : bool
        Do nothing (the manifests exist already).

    Returns
    -------
    dict of str to pathlib.Path
        The manifest of each split.

    Raises
    ------
    gass_modules.dataio.benchmarks.LayoutError
        When the folder is not the official layout or files are missing or unreadable.
    """
    save_folder = Path(save_folder)
    paths = {split: save_folder / f"{split}.csv" for split in SPLITS}
    if skip_prep:
        return paths
    root = find_root(data_folder, version)
    options = {"dataset": DATASET, "root": str(root.resolve()), "version": version}
    if manifests_ready(save_folder, list(SPLITS), options):
        logger.info(f"FUSS manifests in {save_folder} are up to date: skipping preparation")
        return paths
    examples = {split: read_split(root, official) for split, official in SPLITS.items()}
    return write_manifests(DATASET, examples, save_folder, data_folder, MAX_SOURCES, options,
                           expected_layout(version), HINT)
