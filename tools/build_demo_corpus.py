"""Builds the real-audio GASS-mini corpus from Debian packages, offline and reproducibly.

No public separation dataset can be downloaded here, but Debian packages carry real recordings.
This tool turns them into a multi-domain corpus for the GASS mixer, one module per kind of source
under ``tools/demo_corpus/`` (each says which packages it reads and how):

* **speech** (``demo_corpus.speech``): real voices of Fish Fillets NG, Asterisk's prompts in six
  voices, Hedgewars' voice packs and the community recordings of KLettres, KTuberling and
  Tux Paint (grouped by language across the three, so no volunteer lands in two splits), plus
  synthetic ``flite``/``espeak-ng`` voices counted apart;
* **music stems** (``demo_corpus.music``): MIDI songs split into ``music_drums`` /
  ``music_bass`` / ``music_other`` and rendered with ``fluidsynth`` and several banks;
* **sound events** (``sfx``, ``demo_corpus.sfx``): game and desktop sound effects and samples.

Every clip is downmixed, resampled to one rate with torchaudio (16 kHz by default) and written as
16-bit wav; the clips are split train/valid/test by group (speaker or language group, song, sound
file: none in two splits) and listed in one SpeechBrain-style manifest per split (``train.csv``,
``valid.csv``, ``test.csv``; see ``gass_modules.dataio.manifest``).

**Bandwidth.** Telephony prompts (8 kHz) and some game recordings (11-22 kHz) hold no energy
above half their native rate; were only speech band-limited, a separator could tell speech by
its bandwidth. :func:`balance_bandwidth` removes the cue: every category gets the same share of
audio at each band limit (the largest share any category has), by band-limiting seeded-random
clips of the other categories the way a native low rate does (torchaudio resampling down and
back up). At 8 kHz output (``make demo``) no source is narrower than the output band.

The output lives under ``${GASS_CACHE:-~/.cache/gass}/demo_corpus/<tier>-<rate>`` (or ``--out``)
with a ``corpus.json`` holding a content key (these tools' sources, the options, the sizes and
dates of every input file and program) and the statistics: a second run with the same key
returns at once. Data packages need not be installed: ``tools/setup_env.sh`` unpacks
``tools/debian-data-packages.txt`` into ``${GASS_CACHE}/debs/root`` (``apt-get download`` and
``dpkg -x``, no game engines pulled in), and a missing one stops the build with its name.

Tiers: ``small`` (≈ 2 minutes, every category in every split, seconds to build; for tests),
``full`` (the GASS-mini corpus: ≥ 60 real voices in train, ≥ 100 songs, ≥ 2,000 event files,
≥ 5 hours), ``large`` (everything the packages hold).

Usage::

    .venv/bin/python tools/build_demo_corpus.py [--subset small|full|large] [--out DIR]
        [--sample-rate 16000] [--seed 0] [--workers N] [--force]

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from glob import glob
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

if str(Path(__file__).resolve().parent) not in sys.path:  # tools/ holds the demo_corpus package
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_corpus import music, sfx, speech  # noqa: E402
from demo_corpus.common import Clip, band_limit, deb_root, probe_found, rng_for  # noqa: E402,E501

from gass_modules.dataio.manifest import Manifest  # noqa: E402

SPLITS = ("train", "valid", "test")
FRACTIONS = (0.8, 0.05, 0.15)
SOURCES = (speech, music, sfx)
SUBSETS = ("small", "full", "large")
REQUIREMENTS = tuple(r for module in SOURCES for r in module.REQUIREMENTS)
BAND_TOLERANCE_HZ = 50.0  # bands closer than this to the output's Nyquist count as full band


class MissingPackagesError(RuntimeError):
    """Raised when Debian packages the corpus needs are missing."""


def missing_packages() -> list[str]:
    """Debian packages whose files or programs are absent on this machine.

    Returns
    -------
    list of str
        Package names in the sources' order (empty when all are present).
    """
    missing = []
    for package, probe in REQUIREMENTS:
        if not probe_found(probe) and package not in missing:
            missing.append(package)
    return missing


def check_requirements() -> None:
    """Fails with a message naming every missing Debian package.

    Raises
    ------
    MissingPackagesError
        When anything is missing.
    """
    problems = []
    missing = missing_packages()
    if missing:
        problems.append(
            f"missing Debian packages: {' '.join(missing)}. Run `bash tools/setup_env.sh` "
            "(it installs tools/debian-packages.txt and unpacks tools/debian-data-packages.txt "
            f"into {deb_root()} without their dependencies), or install them:\n"
            f"  sudo apt-get install -y {' '.join(missing)}"
        )
    if problems:
        raise MissingPackagesError("build_demo_corpus: " + "\n".join(problems))


# ------------------------------------------------------------------------------------ bandwidth
def _band_shares(clips: list[Clip], bands: list[float]) -> dict[str, np.ndarray]:
    """Per category, the share of minutes at or below each band limit."""
    out = {}
    for cat in sorted({c.category for c in clips}):
        frames = np.array([c.frames for c in clips if c.category == cat], dtype=np.float64)
        band = np.array([c.bandwidth for c in clips if c.category == cat])
        out[cat] = np.array([frames[band <= b + 1e-6].sum() for b in bands]) / frames.sum()
    return out


def balance_bandwidth(clips: list[Clip], sample_rate: int, seed: int) -> list[Clip]:
    """Band-limits clips so that every category has the same share of audio at each band limit.

    Bands are taken from the clips (each ``Clip.bandwidth`` below the output's Nyquist). For each
    band, from the narrowest, the target share is the largest share any category has at or below
    it; each other category band-limits seeded-random wider clips (:func:`band_limit`, files
    rewritten in place) until it reaches the target. No clip is ever widened.

    Arguments
    ---------
    clips : list of Clip
        Written clips.
    sample_rate : int
        Their rate in Hz.
    seed : int
        Seed of the choice of clips.

    Returns
    -------
    list of Clip
        The clips with their new ``bandwidth`` (same order).
    """
    nyquist = sample_rate / 2
    clips = [replace(c, bandwidth=nyquist) if c.bandwidth >= nyquist - BAND_TOLERANCE_HZ else c
             for c in clips]
    bands = sorted({c.bandwidth for c in clips if c.bandwidth < nyquist})
    for band in bands:
        target = max(s[bands.index(band)] for s in _band_shares(clips, bands).values())
        for cat in sorted({c.category for c in clips}):
            rows = [i for i, c in enumerate(clips) if c.category == cat]
            total = float(sum(clips[i].frames for i in rows))
            have = sum(clips[i].frames for i in rows if clips[i].bandwidth <= band + 1e-6)
            wider = [i for i in rows if clips[i].bandwidth > band + 1e-6]
            order = rng_for(seed, f"band-{cat}-{band}").permutation(len(wider))
            for k in order:
                if have / total >= target - 1e-9:
                    break
                c = clips[wider[k]]
                x, _ = sf.read(c.path, dtype="float32")
                sf.write(c.path, band_limit(x, sample_rate, band), sample_rate,
                         subtype="PCM_16")
                clips[wider[k]] = replace(c, bandwidth=band)
                have += c.frames
    return clips


# ------------------------------------------------------------------------------------ build
def _jobs(subset: str, out: Path, sample_rate: int, seed: int) -> list[Callable[[], list[Clip]]]:
    """The independent jobs of a tier (each returns the clips it wrote)."""
    return [job for module in SOURCES for job in module.jobs(subset, out, sample_rate, seed)]


def _input_fingerprint() -> list:
    """Sizes and dates of every input file and program: part of the content key."""
    items = []
    for _, probe in REQUIREMENTS:
        if probe.startswith("bin:"):
            path = shutil.which(probe[4:])
            paths = [path] if path else []
        else:
            paths = sorted(glob(probe, recursive=True)
                           or glob(str(deb_root()) + probe, recursive=True))
        for p in paths:
            st = os.stat(p)
            items.append((p, st.st_size, st.st_mtime_ns))
    return items


def content_key(subset: str, sample_rate: int, seed: int) -> str:
    """The cache key: this tool's source, the options and the input files' fingerprint.

    Arguments
    ---------
    subset : str
        ``small``, ``full`` or ``large``.
    sample_rate : int
        Output rate in Hz.
    seed : int
        Selection and split seed.

    Returns
    -------
    str
        A sha256 hex digest.
    """
    h = hashlib.sha256()
    for source in [Path(__file__)] + sorted((Path(__file__).parent / "demo_corpus").glob("*.py")):
        h.update(source.read_bytes())
    h.update(json.dumps([subset, sample_rate, seed, FRACTIONS, _input_fingerprint()]).encode())
    return h.hexdigest()


@dataclass
class DemoCorpus:
    """A built corpus: its folder, one manifest csv per split, and whether it was just built."""

    root: Path
    manifests: dict[str, Path]
    built: bool = False


def default_out(subset: str, sample_rate: int) -> Path:
    """``${GASS_CACHE:-~/.cache/gass}/demo_corpus/<subset>-<rate>``.

    Arguments
    ---------
    subset : str
        ``small`` or ``full``.
    sample_rate : int
        Output rate in Hz.

    Returns
    -------
    Path
        The default output folder.
    """
    cache = Path(os.environ.get("GASS_CACHE", Path.home() / ".cache" / "gass"))
    return cache / "demo_corpus" / f"{subset}-{sample_rate}"


def _cached(out: Path, key: str) -> DemoCorpus | None:
    """The corpus at ``out`` if its key matches and every file it lists exists."""
    try:
        meta = json.loads((out / "corpus.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    manifests = {s: out / f"{s}.csv" for s in SPLITS}
    if not all(p.is_file() for p in manifests.values()):
        return None
    if not all((out / rel).is_file() for rel in meta.get("files", [])):
        return None
    return DemoCorpus(out, manifests, built=False)


def build(subset: str = "full", out: str | Path | None = None, sample_rate: int = 16000,
          seed: int = 0, workers: int | None = None, force: bool = False,
          log: Callable[[str], None] = print) -> DemoCorpus:
    """Builds (or returns the cached) demo corpus.

    Arguments
    ---------
    subset : str
        ``full`` (≈ 60 min of audio) or ``small`` (≈ 2 min, for tests).
    out : str or Path, optional
        Output folder; default :func:`default_out`.
    sample_rate : int
        Output rate in Hz.
    seed : int
        Seed of the selections and of the split.
    workers : int, optional
        Parallel jobs (default: CPU count).
    force : bool
        Rebuild even when the cache is valid.
    log : callable
        Progress messages.

    Returns
    -------
    DemoCorpus
        Folder and manifests per split.
    """
    if subset not in SUBSETS:
        raise ValueError(f"expected subset in {list(SUBSETS)}, got {subset!r}")
    check_requirements()
    out = Path(out) if out is not None else default_out(subset, sample_rate)
    key = content_key(subset, sample_rate, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent builders (pytest-xdist, CI) wait here
        cached = None if force else _cached(out, key)
        if cached is not None:
            log(f"demo corpus up to date: {out}")
            return cached
        t0 = time.time()
        tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # parallelism comes from the jobs
        try:
            with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
                futures = [pool.submit(job) for job in _jobs(subset, tmp, sample_rate, seed)]
                clips = [c for f in futures for c in f.result()]
        finally:
            torch.set_num_threads(threads)
        clips.sort(key=lambda c: c.id)
        clips = balance_bandwidth(clips, sample_rate, seed)
        manifest = Manifest([c.id for c in clips], [c.path for c in clips],
                            [c.frames for c in clips], [sample_rate] * len(clips),
                            [1] * len(clips), [c.category for c in clips],
                            [c.group for c in clips])
        parts = manifest.split_by_group(FRACTIONS, seed=seed, names=SPLITS)
        by_id = {c.id: c for c in clips}
        stats = {}
        for split, part in parts.items():
            # paths as $data_root/wav/...: they resolve against the csv's folder once moved
            part.to_csv(tmp / f"{split}.csv", data_root=tmp)
            stats[split] = split_stats([by_id[i] for i in part.ids.tolist()], sample_rate)
        files = sorted(str(Path(c.path).relative_to(tmp)) for c in clips)
        meta = {"key": key, "subset": subset, "sample_rate": sample_rate, "seed": seed,
                "minutes": round(float(manifest.durations.sum()) / 60, 2),
                "build_seconds": round(time.time() - t0, 1), "splits": stats, "files": files}
        (tmp / "corpus.json").write_text(json.dumps(meta, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        log(f"built the {subset} demo corpus in {meta['build_seconds']} s: "
            f"{meta['minutes']} min of audio in {len(clips)} clips -> {out}")
        return DemoCorpus(out, {s: out / f"{s}.csv" for s in SPLITS}, built=True)


def split_stats(clips: list[Clip], sample_rate: int) -> dict[str, dict[str, float]]:
    """Statistics of one split, per category and for all music stems together.

    Arguments
    ---------
    clips : list of Clip
        The split's clips.
    sample_rate : int
        Their rate in Hz.

    Returns
    -------
    dict
        ``{category: {"sources", "synthetic", "groups", "clips", "minutes",
        "narrowband_minutes"}}``: ``sources`` counts real voices (speech), songs (music) or
        sound files (sfx); ``synthetic`` the synthetic voices; ``narrowband_minutes`` the audio
        band-limited below the output's Nyquist frequency. ``music`` sums the stems.

    Example
    -------
    >>> clips = [Clip("a", "speech", "g1", "a.wav", 8000, "v1", 4000.0),
    ...          Clip("b", "speech", "g1", "b.wav", 8000, "v2", 2000.0),
    ...          Clip("c", "speech", "g2", "c.wav", 16000, "tts", 4000.0, synthetic=True)]
    >>> split_stats(clips, 8000)["speech"]
    {'sources': 2, 'synthetic': 1, 'groups': 2, 'clips': 3, 'minutes': 0.07, \
'narrowband_minutes': 0.02}
    """
    cats = {c.category: c.category for c in clips}
    cats.update({c.category: "music" for c in clips if c.category.startswith("music_")})
    keys = sorted(set(cats) | set(cats.values()))
    out = {}
    for key in keys:
        chosen = [c for c in clips if c.category == key or cats[c.category] == key]
        frames = sum(c.frames for c in chosen)
        narrow = sum(c.frames for c in chosen
                     if c.bandwidth < sample_rate / 2 - BAND_TOLERANCE_HZ)
        out[key] = {"sources": len({c.source for c in chosen if not c.synthetic}),
                    "synthetic": len({c.source for c in chosen if c.synthetic}),
                    "groups": len({c.group for c in chosen}), "clips": len(chosen),
                    "minutes": round(frames / sample_rate / 60, 2),
                    "narrowband_minutes": round(narrow / sample_rate / 60, 2)}
    return out


def format_stats(corpus: DemoCorpus) -> str:
    """A markdown table of voices / songs / files, groups, clips and minutes per split and
    category.

    Arguments
    ---------
    corpus : DemoCorpus
        A built corpus.

    Returns
    -------
    str
        The table.
    """
    meta = json.loads((corpus.root / "corpus.json").read_text())
    kinds = {"speech": "real voices", "music": "songs", "sfx": "sound files"}
    lines = ["| split | category | sources | synthetic voices | groups | clips | minutes "
             "| band-limited min |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for split, per_cat in meta["splits"].items():
        for cat, v in per_cat.items():
            kind = kinds.get(cat, "songs" if cat.startswith("music") else "sources")
            lines.append(f"| {split} | {cat} | {v['sources']} {kind} | {v['synthetic']} "
                         f"| {v['groups']} | {v['clips']} | {v['minutes']:.1f} "
                         f"| {v['narrowband_minutes']:.1f} |")
    lines.append(f"\n{meta['subset']} tier at {meta['sample_rate']} Hz: {meta['minutes']} min "
                 f"of audio, built in {meta['build_seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", choices=SUBSETS, default="full")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: $GASS_CACHE/demo_corpus/<subset>-<rate>)")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    try:
        corpus = build(args.subset, args.out, args.sample_rate, args.seed, args.workers,
                       args.force)
    except MissingPackagesError as err:
        print(err, file=sys.stderr)
        return 2
    print(format_stats(corpus))
    for split, path in corpus.manifests.items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
