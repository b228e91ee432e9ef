"""Data preparation for MUSDB18-HQ (Rafii et al., 2019), and MUSDB18 when ffmpeg is present.

MUSDB18-HQ as distributed on Zenodo (``musdb18hq.zip``, uncompressed 44.1 kHz stereo wav)::

    <data_folder>/{train,test}/<track name>/mixture.wav, drums.wav, bass.wav, other.wav, vocals.wav

The compressed MUSDB18 (``musdb18.zip``: ``{train,test}/<track name>.stem.mp4``, streams
mixture, drums, bass, other, vocals) is decoded once with ``stempeg`` (which needs the ``ffmpeg``
program) into ``<save_folder>/musdb18_decoded/`` in the HQ layout, as 16-bit wav like sigsep's
``musdbconvert``; without ffmpeg the error says what to install.

The official validation split (14 tracks of ``train``, sigsep's ``musdb`` package) is held out:
writes ``train.csv`` (86 tracks), ``valid.csv`` (14) and ``test.csv`` (50) in ``save_folder``,
stems in the order drums, bass, other, vocals.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from gass_modules.dataio.benchmarks import (
    BenchmarkExample,
    LayoutError,
    manifests_ready,
    require_folders,
    write_manifests,
)

logger = logging.getLogger(__name__)

DATASET = "MUSDB18"
STEMS = ("drums", "bass", "other", "vocals")
STEM_STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}  # .stem.mp4
DECODED = "musdb18_decoded"
# The validation tracks of sigsep's musdb package (musdb/configs/mus.yaml), taken from train.
VALIDATION_TRACKS = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)
HINT = ("Download MUSDB18-HQ (musdb18hq.zip) from https://zenodo.org/record/3338373, extract it "
        "and pass --data_folder=<folder holding train/ and test/>; for the compressed MUSDB18 "
        "(.stem.mp4) install ffmpeg (e.g. apt-get install ffmpeg) so stempeg can decode it.")
EXPECTED = ["{train,test}/<track>/mixture.wav, drums.wav, bass.wav, other.wav, vocals.wav "
            "(MUSDB18-HQ)", "{train,test}/<track>.stem.mp4 (MUSDB18, needs ffmpeg)"]


def read_split(folder: Path, names: set[str] | None = None,
               exclude: set[str] | None = None) -> list[BenchmarkExample]:
    """The tracks of one HQ split folder (one sub-folder per track).

    Arguments
    ---------
    folder : pathlib.Path
        ``train`` or ``test`` in the HQ layout.
    names : set of str, optional
        Keep only these track names.
    exclude : set of str, optional
        Drop these track names.

    Returns
    -------
    list of BenchmarkExample
        Sorted by track name.
    """
    tracks = sorted(p for p in folder.iterdir() if p.is_dir())
    tracks = [t for t in tracks if (names is None or t.name in names)
              and not (exclude and t.name in exclude)]
    return [BenchmarkExample(id=f"{folder.name}/{t.name}", mix=t / "mixture.wav",
                             sources=tuple(t / f"{s}.wav" for s in STEMS), categories=STEMS)
            for t in tracks]


def _stempeg():
    """The stempeg module, or a LayoutError saying what to install."""
    try:
        import stempeg
    except (ImportError, RuntimeError) as err:  # stempeg raises RuntimeError without ffmpeg
        raise RuntimeError(f"found MUSDB18 .stem.mp4 files, which need stempeg and the ffmpeg "
                           f"program to decode ({type(err).__name__}: {err}); install ffmpeg "
                           "(e.g. apt-get install ffmpeg) or use MUSDB18-HQ (wav)") from err
    return stempeg


def decode_stems(data_folder: Path, out_folder: Path) -> Path:
    """Decodes ``{train,test}/*.stem.mp4`` into the HQ layout under ``out_folder`` (once).

    Tracks already decoded (all five wav files present) are skipped; each track is written to a
    temporary folder and renamed, so an interrupted run leaves no half-decoded track.

    Arguments
    ---------
    data_folder : pathlib.Path
        The MUSDB18 folder holding ``train/`` and ``test/`` with ``.stem.mp4`` files.
    out_folder : pathlib.Path
        Where the HQ-layout copy goes.

    Returns
    -------
    pathlib.Path
        ``out_folder``.
    """
    stempeg = _stempeg()
    for split in ("train", "test"):
        for stem_file in sorted((data_folder / split).glob("*.stem.mp4")):
            track = stem_file.name[: -len(".stem.mp4")]
            final = out_folder / split / track
            if all((final / f"{name}.wav").is_file() for name in STEM_STREAMS):
                continue
            audio, rate = stempeg.read_stems(str(stem_file), dtype=np.float32)  # [5, T, C]
            if audio.ndim != 3 or audio.shape[0] < len(STEM_STREAMS):
                raise LayoutError(DATASET, data_folder, f"{stem_file.name} holds "
                                  f"{audio.shape[0] if audio.ndim == 3 else 1} streams, expected "
                                  "5 (mixture, drums, bass, other, vocals)", EXPECTED, HINT)
            partial = final.with_name(f".{track}.partial")
            partial.mkdir(parents=True, exist_ok=True)
            for name, index in STEM_STREAMS.items():
                sf.write(partial / f"{name}.wav", np.clip(audio[index], -1.0, 1.0), int(rate),
                         subtype="PCM_16")
            if final.exists():
                for leftover in final.iterdir():
                    leftover.unlink()
                final.rmdir()
            partial.rename(final)
            logger.info(f"decoded {stem_file.name}")
    return out_folder


def find_root(data_folder: str | Path, save_folder: Path) -> Path:
    """The HQ-layout folder: ``data_folder`` itself, or the decoded copy of the .stem.mp4 files.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        MUSDB18-HQ (track folders) or MUSDB18 (``.stem.mp4`` files).
    save_folder : pathlib.Path
        Where a decoded copy goes.

    Returns
    -------
    pathlib.Path
        A folder with ``train/<track>/*.wav`` and ``test/<track>/*.wav``.
    """
    root = require_folders(DATASET, data_folder, ["train", "test"], EXPECTED, HINT)
    has_tracks = any(p.is_dir() for p in (root / "train").iterdir())
    if not has_tracks and any((root / "train").glob("*.stem.mp4")):
        return decode_stems(root, save_folder / DECODED)
    return root


def prepare_musdb(data_folder: str | Path, save_folder: str | Path,
                  valid_tracks: tuple[str, ...] = VALIDATION_TRACKS,
                  skip_prep: bool = False) -> dict[str, Path]:
    """Writes the MUSDB18 manifests (``train``, ``valid``, ``test``) into ``save_folder``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        MUSDB18-HQ (``train/<track>/*.wav``) or MUSDB18 (``train/<track>.stem.mp4``).
    save_folder : str or pathlib.Path
        Where the csv manifests (and a decoded copy of MUSDB18) go.
    valid_tracks : tuple of str
        Tracks of ``train`` held out for validation (the official 14 by default).
    skip_prep : bool
        Do nothing (the manifests exist already).

    Returns
    -------
    dict of str to pathlib.Path
        The manifest of each split.

    Raises
    ------
    gass_modules.dataio.benchmarks.LayoutError
        When the folder is not an official layout or stems are missing or unreadable.
    RuntimeError
        When only ``.stem.mp4`` files are found and stempeg/ffmpeg cannot decode them.
    """
    save_folder = Path(save_folder)
    splits = ("train", "valid", "test")
    paths = {split: save_folder / f"{split}.csv" for split in splits}
    if skip_prep:
        return paths
    root = find_root(data_folder, save_folder)
    options = {"dataset": DATASET, "root": str(root.resolve()), "valid": sorted(valid_tracks)}
    if manifests_ready(save_folder, list(splits), options):
        logger.info(f"MUSDB18 manifests in {save_folder} are up to date: skipping preparation")
        return paths
    held_out = set(valid_tracks)
    examples = {"train": read_split(root / "train", exclude=held_out),
                "valid": read_split(root / "train", names=held_out),
                "test": read_split(root / "test")}
    # paths under data_folder become $data_root/...; a decoded copy keeps absolute paths
    return write_manifests(DATASET, examples, save_folder, data_folder, len(STEMS), options,
                           EXPECTED, HINT)
