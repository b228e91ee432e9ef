#!/usr/bin/env python3
"""Packs a manifest corpus into OGG (Vorbis or Opus) to carry it to another machine, and unpacks it.

The GASS-mini corpus (``tools/build_demo_corpus.py``, full tier, 8 kHz) is 358 MB of 16-bit WAV;
a lent accelerator machine receives at most 64 MiB. Vorbis at ``quality`` 0.15 (libsndfile's
``compression_level`` 0.85) brings the train and valid splits to about a seventh of that, with
a waveform SNR of about 16-21 dB against the original: a lossy copy, so only for *training*
elsewhere; test figures are measured on the original WAV files. Unpacking decodes every clip
back to 16-bit WAV with the manifest's frame count, so the manifests travel unchanged.

At 16 kHz (the full tier is 716 MB) Vorbis does not fit even at its lowest setting (level 1.0:
56.7 MiB for train and valid, with the wheels and the tree over 64 MiB); Opus at level 0.93
(about 23 kbit/s) does, 51.3 MiB, with a waveform SNR of 16.0 dB below 4 kHz and 5.1 dB in
4-8 kHz against Vorbis 1.0's 16.9 and 3.9 (250 clips of the corpus; measured 2026-12-07).
Opus takes 8, 12, 16, 24 and 48 kHz only.

Usage::

    python tools/pack_corpus.py pack ~/.cache/gass/demo_corpus/full-8000 .gpu/corpus
    python tools/pack_corpus.py pack ~/.cache/gass/demo_corpus/full-16000 .gpu/corpus16 \
        --codec opus --level 0.93
    python tools/pack_corpus.py unpack .gpu/corpus /tmp/corpus       # on the other machine

Why by hand: no library packs a csv-manifest corpus to a lossy codec and back; the codec itself
is libsndfile's (soundfile).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT_TOKEN = "$data_root/"  # how the corpus builder's manifests name their audio


def _clips(folder: Path, splits: tuple[str, ...]) -> list[tuple[str, int]]:
    """``(relative wav path, frames)`` of every row of the splits' manifests."""
    clips = []
    for split in splits:
        manifest = folder / f"{split}.csv"
        if not manifest.is_file():
            raise FileNotFoundError(f"expected the manifest {manifest} "
                                    "(tools/build_demo_corpus.py writes it)")
        with open(manifest, newline="", encoding="utf-8") as fin:
            for row in csv.DictReader(fin):
                if not row["wav"].startswith(ROOT_TOKEN):
                    raise ValueError(f"{manifest}: row {row['ID']!r} names {row['wav']}, not a "
                                     f"path under {ROOT_TOKEN} (only relative corpora travel)")
                clips.append((row["wav"][len(ROOT_TOKEN):], int(row["frames"])))
    return clips


CODECS = {"vorbis": "VORBIS", "opus": "OPUS"}  # libsndfile's OGG subtypes
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _encode(job: tuple[str, str, float, str]) -> int:
    src, dst, level, subtype = job
    audio, rate = sf.read(src, dtype="float32")
    if subtype == "OPUS" and rate not in OPUS_RATES:
        raise ValueError(f"{src}: Opus takes {OPUS_RATES} Hz, not {rate}; pack with "
                         "--codec vorbis")
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, audio, rate, format="OGG", subtype=subtype, compression_level=level)
    return Path(dst).stat().st_size


def _decode(job: tuple[str, str, int]) -> int:
    src, dst, frames = job
    audio, rate = sf.read(src, dtype="float32", always_2d=True)  # [T, C]
    fixed = np.zeros((frames, audio.shape[1]), dtype=np.float32)
    fixed[:min(frames, len(audio))] = audio[:frames]  # the manifest's length, exactly
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, fixed.squeeze(1) if fixed.shape[1] == 1 else fixed, rate, subtype="PCM_16")
    return frames


def pack(src: str | Path, dst: str | Path, splits: tuple[str, ...] = ("train", "valid"),
         level: float = 0.85, workers: int = 2, codec: str = "vorbis") -> int:
    """Encodes the splits' clips to OGG (Vorbis or Opus) under ``dst`` and copies their manifests.

    Arguments
    ---------
    src : str or Path
        Corpus folder holding ``<split>.csv`` and the WAV files they name (``$data_root/...``).
    dst : str or Path
        Output folder (``<split>.csv`` and ``<path>.ogg`` for each ``<path>.wav``).
    splits : tuple of str
        Which manifests to pack.
    level : float
        libsndfile compression level in [0, 1] (higher: smaller, lossier).
    workers : int
        Encoding processes.
    codec : str
        ``"vorbis"`` or ``"opus"`` (smaller at 16 kHz; 8, 12, 16, 24 or 48 kHz only).

    Returns
    -------
    int
        Bytes written (audio).

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = Path(tempfile.mkdtemp())
    >>> (tmp / "c" / "wav").mkdir(parents=True)
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    >>> sf.write(tmp / "c" / "wav" / "a.wav", tone, 8000, subtype="PCM_16")
    >>> _ = (tmp / "c" / "train.csv").write_text(
    ...     "ID,duration,wav,frames,sample_rate,channels,category,group\\n"
    ...     "a,1.0,$data_root/wav/a.wav,8000,8000,1,sfx,a\\n")
    >>> pack(tmp / "c", tmp / "p", splits=("train",), workers=1) > 0
    True
    >>> unpack(tmp / "p", tmp / "u", splits=("train",), workers=1)
    1
    >>> back, rate = sf.read(tmp / "u" / "wav" / "a.wav")
    >>> back.shape, rate, bool(10 * np.log10(np.sum(tone**2) / np.sum((tone - back)**2)) > 15)
    ((8000,), 8000, True)
    >>> pack(tmp / "c", tmp / "o", splits=("train",), workers=1, codec="opus") > 0
    True
    >>> unpack(tmp / "o", tmp / "uo", splits=("train",), workers=1)
    1
    >>> back = sf.read(tmp / "uo" / "wav" / "a.wav")[0]
    >>> bool(10 * np.log10(np.sum(tone**2) / np.sum((tone - back)**2)) > 10)
    True
    """
    src, dst = Path(src), Path(dst)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be in [0, 1], got {level}")
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    jobs = [(str(src / rel), str(dst / rel).removesuffix(".wav") + ".ogg", level, CODECS[codec])
            for rel, _ in _clips(src, splits)]
    dst.mkdir(parents=True, exist_ok=True)
    for split in splits:
        shutil.copyfile(src / f"{split}.csv", dst / f"{split}.csv")
    with ProcessPoolExecutor(max(1, workers)) as pool:
        return sum(pool.map(_encode, jobs, chunksize=16))


def unpack(src: str | Path, dst: str | Path, splits: tuple[str, ...] = ("train", "valid"),
           workers: int = 2) -> int:
    """Decodes a packed corpus back to 16-bit WAV with the manifests' frame counts.

    Arguments
    ---------
    src : str or Path
        Folder written by :func:`pack`.
    dst : str or Path
        Corpus folder to write (manifests and WAV files, usable as ``--data_folder``).
    splits : tuple of str
        Which manifests to unpack.
    workers : int
        Decoding processes.

    Returns
    -------
    int
        Clips written.

    Example
    -------
    See :func:`pack`.
    """
    src, dst = Path(src), Path(dst)
    jobs = [(str(src / rel).removesuffix(".wav") + ".ogg", str(dst / rel), frames)
            for rel, frames in _clips(src, splits)]
    dst.mkdir(parents=True, exist_ok=True)
    for split in splits:
        shutil.copyfile(src / f"{split}.csv", dst / f"{split}.csv")
    with ProcessPoolExecutor(max(1, workers)) as pool:
        return sum(1 for _ in pool.map(_decode, jobs, chunksize=16))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``pack SRC DST`` or ``unpack SRC DST``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--splits", nargs="+", default=["train", "valid"])
    parser.add_argument("--level", type=float, default=0.85)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--codec", choices=sorted(CODECS), default="vorbis")
    args = parser.parse_args(argv)
    if args.action == "pack":
        size = pack(args.src, args.dst, tuple(args.splits), args.level, args.workers, args.codec)
        print(f"packed {args.src} -> {args.dst}: {size / 2**20:.1f} MiB of audio")
    else:
        count = unpack(args.src, args.dst, tuple(args.splits), args.workers)
        print(f"unpacked {count} clips -> {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
