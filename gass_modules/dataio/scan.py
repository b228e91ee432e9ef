"""Finding and checking audio files with header-only reads: probes, folder scans, manifest checks.

* :func:`probe_audio` reads a file's header (``soundfile.info``, no decoding) into an
  :class:`AudioHeader`, or says why the file is unusable; :func:`probe_files` probes many in
  parallel threads (libsndfile releases the GIL). It is the one probe behind the scans here and
  the benchmark layout checks (:mod:`gass_modules.dataio.benchmarks`).
* :func:`scan_audio` turns folders of audio files into a :class:`~gass_modules.dataio.manifest.
  Manifest` (one group per speaker / song / recording folder) and a :class:`ScanReport`.
* :func:`check_clips` finds the rows of a manifest that a mixer could not read.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from gass_modules.audio import READABLE_SUFFIXES
from gass_modules.dataio.manifest import Manifest

# Extensions of the formats libsndfile can read (header-only probes need no decoder).
AUDIO_EXTENSIONS = READABLE_SUFFIXES  # every format soundfile reads (gass_modules.audio)


@dataclass
class ScanReport:
    """What :func:`scan_audio` found: skipped files with reasons, and totals per category.

    Example
    -------
    >>> r = ScanReport(skipped=[("x.wav", "unreadable: bad header")])
    >>> r.reason_counts()
    {'unreadable': 1}
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    totals: dict[str, dict[str, float]] = field(default_factory=dict)

    def reason_counts(self) -> dict[str, int]:
        """Number of skipped files per reason kind (the text before the first colon)."""
        return dict(Counter(reason.split(":")[0] for _, reason in self.skipped))

    def format(self) -> str:
        """A human-readable report (totals per category, then skip counts and examples).

        Returns
        -------
        str
            The report.

        Example
        -------
        >>> print(ScanReport(totals={"sfx": {"clips": 2, "hours": 0.5, "groups": 2}}).format())
        sfx: 2 clips, 0.50 h, 2 groups
        skipped: 0 files
        """
        lines = [f"{c}: {t['clips']} clips, {t['hours']:.2f} h, {t['groups']} groups"
                 for c, t in self.totals.items()]
        lines.append(f"skipped: {len(self.skipped)} files")
        for reason, count in sorted(self.reason_counts().items()):
            example = next(p for p, r in self.skipped if r.split(":")[0] == reason)
            lines.append(f"  {reason}: {count} (e.g. {example})")
        return "\n".join(lines)


@dataclass(frozen=True)
class AudioHeader:
    """What a header-only read of an audio file tells: length, rate and channels.

    Arguments
    ---------
    frames : int
        Length in samples.
    sample_rate : int
        Rate in Hz.
    channels : int
        Channel count.

    Example
    -------
    >>> AudioHeader(16000, 8000, 1).duration
    2.0
    """

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def probe_audio(path: str | os.PathLike) -> AudioHeader | str:
    """Header-only read of an audio file (``soundfile.info``, no decoding), or why it is unusable.

    The one probe behind :func:`scan_audio` and the benchmark layout checks
    (``gass_modules.dataio.benchmarks``). libsndfile releases the GIL, so threads overlap it.

    Arguments
    ---------
    path : str or os.PathLike
        The file.

    Returns
    -------
    AudioHeader or str
        The header, or a reason ``"<kind>: <detail>"`` with kind ``missing``, ``unreadable``,
        ``empty`` or ``invalid header``.

    Example
    -------
    >>> import tempfile
    >>> import numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(800, dtype=np.float32), 8000)
    >>> probe_audio(folder / "a.wav")
    AudioHeader(frames=800, sample_rate=8000, channels=1)
    >>> _ = (folder / "b.wav").write_bytes(b"not audio")
    >>> probe_audio(folder / "b.wav").split(":")[0], probe_audio(folder / "c.wav")
    ('unreadable', 'missing: no such file')
    """
    if not Path(path).is_file():
        return "missing: no such file"
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile raises several types; all mean "cannot read"
        return f"unreadable: {str(err).splitlines()[0]}"
    if info.frames < 1:
        return "empty: 0 frames"
    if info.channels < 1 or info.samplerate < 1:
        return f"invalid header: {info.channels} channels at {info.samplerate} Hz"
    return AudioHeader(int(info.frames), int(info.samplerate), int(info.channels))


def probe_files(paths: Sequence[str | os.PathLike], workers: int = 2) -> list[AudioHeader | str]:
    """:func:`probe_audio` of every path, in parallel threads (order kept).

    Arguments
    ---------
    paths : sequence of str or os.PathLike
        The files.
    workers : int
        Number of probing threads.

    Returns
    -------
    list
        One :class:`AudioHeader` or reason per path.

    Example
    -------
    >>> probe_files(["no/such.wav"])
    ['missing: no such file']
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(probe_audio, paths, chunksize=64))


def check_clips(manifest: Manifest, workers: int = 2, tail_checks: int = 2000,
                seed: int = 0) -> list[tuple[str, str, str]]:
    """Finds the manifest rows a mixer could not read, with header probes in parallel threads.

    A row is bad when :func:`probe_audio` gives a reason (missing, unreadable, empty, invalid
    header), or when the file holds fewer frames than the row says (frames past the end), or
    another rate or channel count. The header can promise more than the file holds (a truncated
    or damaged file), so the last frame the row claims is also decoded (:func:`decodes_to`), for
    every row of a manifest up to ``tail_checks`` rows and for ``tail_checks`` rows drawn at
    random (``seed``) in a larger one. Run it before training: a bad row otherwise fails only
    when the mixer draws it, with a message about the crop.

    Arguments
    ---------
    manifest : Manifest
        The clips.
    workers : int
        Number of probing threads.
    tail_checks : int
        How many rows get their last frame decoded (all rows when the manifest is smaller).
    seed : int
        Seed of the rows sampled for the tail check.

    Returns
    -------
    list of (str, str, str)
        ``(id, path, reason)`` of every bad row, in manifest order.

    Example
    -------
    >>> import tempfile
    >>> import numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(800, dtype=np.float32), 8000)
    >>> m = Manifest(["a", "b", "c"], [str(folder / "a.wav"), str(folder / "a.wav"), "x.wav"],
    ...              [800, 900, 1], [8000, 8000, 8000], [1, 1, 1], ["s"] * 3, ["g"] * 3)
    >>> [(i, r) for i, _, r in check_clips(m)]  # doctest: +NORMALIZE_WHITESPACE
    [('b', 'frames past the end: the manifest says 900 frames, the file holds 800'),
     ('c', 'missing: no such file')]
    """
    rows = [manifest[i] for i in range(len(manifest))]
    probes = probe_files([r.path for r in rows], workers)
    tails = set(range(len(rows))) if len(rows) <= tail_checks else set(
        np.random.default_rng(seed).choice(len(rows), size=tail_checks, replace=False).tolist())
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = dict(zip(sorted(tails), pool.map(
            lambda i: decodes_to(rows[i].path, rows[i].frames)
            if not isinstance(probes[i], str) and probes[i].frames >= rows[i].frames else True,
            sorted(tails))))
    bad = []
    for i, (row, probe) in enumerate(zip(rows, probes)):
        if isinstance(probe, str):
            reason = probe
        elif probe.frames < row.frames:
            reason = (f"frames past the end: the manifest says {row.frames} frames, the file "
                      f"holds {probe.frames}")
        elif probe.sample_rate != row.sample_rate:
            reason = (f"sample rate: the manifest says {row.sample_rate} Hz, the file is "
                      f"{probe.sample_rate} Hz")
        elif probe.channels != row.channels:
            reason = (f"channels: the manifest says {row.channels}, the file has "
                      f"{probe.channels}")
        elif decoded.get(i, True) is not True:
            reason = (f"frames past the end of the decoded audio: the manifest (and header) say "
                      f"{row.frames} frames, decoding stops at {decoded[i]} (truncated or "
                      "damaged file: re-encode it or drop the row)")
        else:
            continue
        bad.append((row.id, row.path, reason))
    return bad


def decodes_to(path: str | os.PathLike, frames: int) -> bool | int:
    """Whether a file really decodes up to frame ``frames`` (its header may promise more than
    its data holds); the number of frames that decode when it does not.

    Only the last claimed frame is read (a seek, then a short read: cheap for WAV and FLAC,
    a bounded decode for Ogg and MP3).

    Arguments
    ---------
    path : str or os.PathLike
        The audio file.
    frames : int
        The length the file should have.

    Returns
    -------
    bool or int
        True, or the frames that could be decoded (an int, maybe 0).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(800, dtype=np.float32), 8000)
    >>> decodes_to(folder / "a.wav", 800), decodes_to(folder / "a.wav", 900)
    (True, 800)
    """
    try:
        with sf.SoundFile(str(path)) as handle:
            if frames <= handle.frames:
                handle.seek(frames - 1)
                if len(handle.read(1)) == 1:
                    return True
            handle.seek(0)
            total = 0
            for block in handle.blocks(blocksize=1 << 16, frames=frames):
                total += len(block)
            return True if total >= frames else total
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError):
        return 0


def overlapping_clips(splits: dict[str, Manifest]) -> list[tuple[str, str, str, str]]:
    """Clips that are in two splits (train and test, ...): the same id, or the same audio.

    The same audio is found by a fingerprint of each file (size and a hash of its first and last
    64 KiB), so a clip copied under another name or path is caught without reading whole
    corpora. Evaluating on clips seen in training overstates every figure.

    Arguments
    ---------
    splits : dict of str to Manifest
        The manifests by split name.

    Returns
    -------
    list of (str, str, str, str)
        ``(split, other split, clip id, "same id" or "same audio as <id>")``.

    Example
    -------
    >>> a = Manifest(["x", "y"], ["no/x.wav", "no/y.wav"], [1, 1], [8000] * 2, [1] * 2,
    ...              ["s", "s"], ["g", "h"])
    >>> b = Manifest(["y"], ["no/other.wav"], [1], [8000], [1], ["s"], ["h"])
    >>> overlapping_clips({"train": a, "test": b})
    [('train', 'test', 'y', 'same id')]
    """
    found = []
    names = list(splits)
    ids = {name: set(splits[name].ids.tolist()) for name in names}
    prints = {name: {} for name in names}
    for name in names:
        for clip, path in zip(splits[name].ids.tolist(), splits[name].paths.tolist()):
            key = _fingerprint(path)
            if key is not None:
                prints[name].setdefault(key, clip)
    for k, first in enumerate(names):
        for second in names[k + 1:]:
            found += [(first, second, clip, "same id")
                      for clip in sorted(ids[first] & ids[second])]
            for key in sorted(set(prints[first]) & set(prints[second])):
                a, b = prints[first][key], prints[second][key]
                if a != b:
                    found.append((first, second, a, f"same audio as {b}"))
    return found


def _fingerprint(path: str) -> tuple | None:
    """(size, hash of the first and last 64 KiB) of a file; None when it cannot be read."""
    import hashlib

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest = hashlib.blake2b(f.read(1 << 16), digest_size=16)
            if size > 1 << 16:
                f.seek(max(1 << 16, size - (1 << 16)))
                digest.update(f.read(1 << 16))
    except OSError:
        return None
    return size, digest.hexdigest()


def _group_of(rel: Path, root_name: str, group_depth: int) -> str:
    """Group name of a file at relative path ``rel`` under a root (see :func:`scan_audio`)."""
    parts = rel.parts[:-1]
    if group_depth == 0 or not parts:
        return f"{root_name}/{rel.with_suffix('').as_posix()}"
    return "/".join((root_name, *parts[:group_depth]))


def scan_audio(
    roots: Sequence[str | Path],
    categories: str | Sequence[str],
    group_depth: int = 1,
    workers: int = 2,
) -> tuple[Manifest, ScanReport]:
    """Scans folders for audio files with header-only reads, in parallel threads.

    Every file whose extension is in ``AUDIO_EXTENSIONS`` is probed with ``soundfile.info``
    (no decoding; libsndfile releases the GIL, so threads overlap the I/O). Unreadable and empty
    files are skipped and reported with a reason.

    Arguments
    ---------
    roots : sequence of str or Path
        Folders to scan recursively.
    categories : str or sequence of str
        One category for all roots, or one per root.
    group_depth : int
        The group of a file is its root's name plus the first ``group_depth`` folders below the
        root (1: ``LibriSpeech/train-clean-100/<speaker>``-style layouts give one group per
        speaker); 0 makes every file its own group. Files directly in a root are their own group.
    workers : int
        Number of probing threads.

    Returns
    -------
    Manifest
        The readable clips; ids are ``<root name>/<relative path without extension>``.
    ScanReport
        Skipped files with reasons and totals per category.

    Example
    -------
    >>> import tempfile
    >>> import numpy as np
    >>> root = Path(tempfile.mkdtemp()) / "corpus"
    >>> (root / "spk1").mkdir(parents=True)
    >>> sf.write(root / "spk1" / "u1.wav", np.zeros(800, dtype=np.float32), 8000)
    >>> _ = (root / "spk1" / "broken.wav").write_bytes(b"not audio")
    >>> m, report = scan_audio([root], "speech")
    >>> m[0].id, m[0].frames, m[0].group, report.reason_counts()
    ('corpus/spk1/u1', 800, 'corpus/spk1', {'unreadable': 1})
    """
    roots = [Path(r) for r in roots]
    cats = [categories] * len(roots) if isinstance(categories, str) else list(categories)
    if len(cats) != len(roots):
        raise ValueError(f"expected one category or one per root ({len(roots)}), "
                         f"got {len(cats)}: {cats}")
    if group_depth < 0:
        raise ValueError(f"expected group_depth >= 0, got {group_depth}")
    files: list[tuple[Path, Path, str]] = []
    for root, cat in zip(roots, cats):
        if not root.is_dir():
            raise FileNotFoundError(f"expected a folder to scan, {root} is not one")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.suffix.lower() in AUDIO_EXTENSIONS:
                    files.append((root, p, cat))
    probes = probe_files([p for _, p, _ in files], workers)
    report = ScanReport()
    cols: dict[str, list] = {k: [] for k in ("ids", "paths", "frames", "rates", "channels",
                                             "cats", "groups")}
    for (root, p, cat), probe in zip(files, probes):
        if isinstance(probe, str):
            report.skipped.append((str(p), probe))
            continue
        rel = p.relative_to(root)
        cols["ids"].append(f"{root.name}/{rel.with_suffix('').as_posix()}")
        cols["paths"].append(str(p.resolve()))
        cols["frames"].append(probe.frames)
        cols["rates"].append(probe.sample_rate)
        cols["channels"].append(probe.channels)
        cols["cats"].append(cat)
        cols["groups"].append(_group_of(rel, root.name, group_depth))
    manifest = Manifest(cols["ids"], cols["paths"], cols["frames"], cols["rates"],
                        cols["channels"], cols["cats"], cols["groups"])
    report.totals = manifest.summary()
    return manifest, report
