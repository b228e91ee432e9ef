"""WebDataset tar shards of a source manifest: writing, the shard index, verification.

A cluster file system or an object store serves a few hundred large sequential reads well and
millions of small random ones badly. :func:`write_shards` packs the clips of a
:class:`~gass_modules.dataio.manifest.Manifest` into WebDataset tar shards, one series per
category (``<out>/<category>/<category>-000000.tar``), each shard up to ``max_bytes``. A clip is
two tar members with one key (its position in the category's order):

* ``<key>.<ext>``: the audio, in its original codec (``codec="original"``: the file's bytes,
  untouched) or re-encoded as FLAC (``codec="flac"``: 16-bit, or 24-bit for 24-bit sources);
* ``<key>.json``: the record ``id, category, group, sample_rate, frames, channels, duration,
  source, licence`` (:data:`RECORD_FIELDS`).

``<out>/index.json`` (:class:`ShardIndex`) lists every shard (relative url, category, clips,
seconds, bytes, sha256) and the totals per category: the shard source
(:mod:`gass_modules.dataio.shard_source`) plans its streams from it without opening a shard.

Writing is deterministic (a category's clips are ordered by a seeded permutation, tar members
get mtime 0 and fixed owners: same manifest and options, same bytes) and resumable: each shard
is written to a temporary name and renamed when complete, and ``index.partial.json`` lists the
shards done, so a killed run continues where it stopped. :func:`verify_shards` reads every clip
back and compares it with the manifest's file.

The tar engine is WebDataset's (``webdataset.TarWriter`` writes; :func:`shard_samples` reads
with its url opener and sample grouping, and tarfile's random-access mode for seekable shards).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import webdataset as wds

from gass_modules.dataio.manifest import Manifest, load_manifest
from gass_modules.dataio.shard_index import (
    INDEX_NAME,
    PARTIAL_NAME,
    ShardError,
    ShardIndex,
    ShardInfo,
    resolve_url,
)

logger = logging.getLogger(__name__)

RECORD_FIELDS = ("id", "category", "group", "sample_rate", "frames", "channels", "duration",
                 "source", "licence")
REQUIRED_FIELDS = ("id", "category", "group", "sample_rate", "frames", "channels")
AUDIO_EXTENSIONS = ("flac", "wav", "ogg", "mp3", "aiff", "aif")
CODECS = ("original", "flac")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_META = re.compile(r"__[^/]*__($|/)")  # WebDataset's metadata members (skipped, as it does)


# ------------------------------------------------------------------------------------ writing
def _licences(paths: Sequence[str | Path]) -> dict[str, str]:
    """The optional ``licence`` (or ``license``) column of manifest csvs, by clip id."""
    out: dict[str, str] = {}
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                value = row.get("licence", row.get("license"))
                if value:
                    out[row["ID"]] = value
    return out


def _digest(paths: Sequence[str | Path]) -> str:
    """sha256 of the manifest csvs' content (a resumed run must see the same manifest)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def category_order(manifest: Manifest, category: str, seed: int) -> np.ndarray:
    """Manifest rows of one category in shard order (a permutation seeded by seed and category).

    Clips of one speaker or song are usually listed together; spreading them over the shards
    keeps a shuffle buffer of a few shards diverse.

    Arguments
    ---------
    manifest : Manifest
        The clips.
    category : str
        A category of the manifest.
    seed : int
        Seed of the permutation.

    Returns
    -------
    numpy.ndarray
        ``[N_c]`` int64 manifest rows.

    Example
    -------
    >>> m = Manifest(list("abc"), ["a.wav", "b.wav", "c.wav"], [1, 1, 1], [8000] * 3, [1] * 3,
    ...              ["x", "y", "x"], ["g"] * 3)
    >>> sorted(category_order(m, "x", 0).tolist())
    [0, 2]
    """
    rows = np.sort(manifest.indices_of(category)).astype(np.int64)
    key = zlib.crc32(category.encode())
    return rows[np.random.default_rng([int(seed), key]).permutation(len(rows))]


def _encode(path: str, codec: str) -> tuple[bytes, str]:
    """The audio member of one clip: its bytes and extension."""
    ext = Path(path).suffix.lower().lstrip(".")
    if codec == "original":
        if ext not in AUDIO_EXTENSIONS:
            raise ShardError(f"{path}: extension {ext!r} is not one soundfile reads from a "
                             f"shard ({AUDIO_EXTENSIONS}); use --codec flac")
        return Path(path).read_bytes(), ext
    info = sf.info(path)
    subtype = "PCM_24" if info.subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE") else "PCM_16"
    data, rate = sf.read(path, dtype="float32", always_2d=True)  # [n, C]
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="FLAC", subtype=subtype)
    return buf.getvalue(), "flac"


def _shard_name(category: str, number: int) -> str:
    safe = _SAFE.sub("_", category) or "category"
    return f"{safe}/{safe}-{number:06d}.tar"


def write_shards(manifest: Manifest | str | Path | Sequence[str | Path], out_dir: str | Path,
                 max_bytes: int = 256_000_000, codec: str = "original", seed: int = 0,
                 replacements: Mapping[str, str] | None = None,
                 stop_after: int | None = None) -> ShardIndex:
    """Packs a manifest's clips into WebDataset tar shards per category, with ``index.json``.

    Deterministic (same manifest and options, same files) and resumable: an interrupted run,
    started again with the same arguments, keeps the shards it finished and writes the rest.

    Arguments
    ---------
    manifest : Manifest, str, Path or sequence of them
        The clips (csv paths also give the optional ``licence`` column).
    out_dir : str or Path
        Output folder (``<category>/<category>-NNNNNN.tar`` and ``index.json``).
    max_bytes : int
        Largest shard size; a shard holds at least one clip.
    codec : str
        ``original`` (the files' bytes) or ``flac`` (re-encoded, lossless for 16/24-bit PCM).
    seed : int
        Seed of each category's clip order.
    replacements : mapping, optional
        ``$name`` replacements of the csv paths.
    stop_after : int, optional
        Stop after writing this many shards (a partial run, as a killed one; for tests).

    Returns
    -------
    ShardIndex
        The index (also written to ``<out_dir>/index.json`` once every shard is written).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for k in range(3):
    ...     sf.write(folder / f"{k}.wav", np.full(800, 0.1 * (k + 1)), 8000, subtype="PCM_16")
    >>> m = Manifest([f"c{k}" for k in range(3)], [str(folder / f"{k}.wav") for k in range(3)],
    ...              [800] * 3, [8000] * 3, [1] * 3, ["sfx"] * 3, ["g0", "g1", "g2"])
    >>> index = write_shards(m, folder / "shards", max_bytes=3000)
    >>> [(s.url, s.clips) for s in index.shards]
    [('sfx/sfx-000000.tar', 1), ('sfx/sfx-000001.tar', 1), ('sfx/sfx-000002.tar', 1)]
    >>> verify_shards(folder / "shards", m).ok
    True
    """
    if codec not in CODECS:
        raise ValueError(f"codec: expected one of {CODECS}, got {codec!r}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes: expected > 0, got {max_bytes}")
    csvs: list[str | Path] = []
    if not isinstance(manifest, Manifest):
        csvs = [manifest] if isinstance(manifest, (str, Path)) else list(manifest)
        manifest = load_manifest(csvs, replacements)
    if len(manifest) == 0:
        raise ValueError("expected a manifest with clips, got an empty one")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = _digest(csvs) if csvs else hashlib.sha256(
        "\n".join(manifest.ids.tolist() + manifest.paths.tolist()).encode()).hexdigest()
    options = {"max_bytes": int(max_bytes), "seed": int(seed), "manifest_sha256": digest}
    licences = _licences(csvs) if csvs else {}
    done: list[ShardInfo] = []
    partial = out_dir / PARTIAL_NAME
    final = out_dir / INDEX_NAME
    for previous in (final, partial):
        if previous.is_file():
            old = ShardIndex.from_json(json.loads(previous.read_bytes()), str(previous))
            if old.codec != codec or old.options != options:
                raise ShardError(
                    f"{previous} was written with other options or another manifest "
                    f"({old.codec}, {old.options}); write to a new folder or delete it")
            if previous == final:
                logger.info("%s is complete: nothing to write", final)
                old.location = str(final)
                return old
            done = old.shards
            logger.info("resuming: %d shards already written", len(done))
            break
    written = 0
    for category in sorted(manifest.categories):
        order = category_order(manifest, category, seed)
        mine = [s for s in done if s.category == category]
        position = mine[-1].first + mine[-1].clips if mine else 0
        number = len(mine)
        while position < len(order):
            if stop_after is not None and written >= stop_after:
                ShardIndex(done, codec, options).save(partial)
                return ShardIndex(done, codec, options, str(partial))
            info = _write_one(manifest, order, position, category, number, out_dir, codec,
                              max_bytes, licences)
            done.append(info)
            ShardIndex(done, codec, options).save(partial)
            position += info.clips
            number += 1
            written += 1
    index = ShardIndex(done, codec, options)
    index.save(final)
    partial.unlink(missing_ok=True)
    index.location = str(final)
    return index


def _write_one(manifest: Manifest, order: np.ndarray, position: int, category: str,
               number: int, out_dir: Path, codec: str, max_bytes: int,
               licences: Mapping[str, str]) -> ShardInfo:
    """Writes the shard that starts at ``order[position]``; returns its index entry."""
    url = _shard_name(category, number)
    path = out_dir / url
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    clips, seconds, size = 0, 0.0, 1024  # the tar's end-of-archive blocks
    with open(tmp, "wb") as f:
        writer = wds.TarWriter(f, mtime=0, user="gass", group="gass", encoder=False)
        while position + clips < len(order):
            row = int(order[position + clips])
            clip = manifest[row]
            audio, ext = _encode(clip.path, codec)
            record = {"id": clip.id, "category": clip.category, "group": clip.group,
                      "sample_rate": clip.sample_rate, "frames": clip.frames,
                      "channels": clip.channels, "duration": round(clip.duration, 6),
                      "source": clip.path, "licence": licences.get(clip.id, "")}
            meta = json.dumps(record, sort_keys=True).encode()
            grow = 1024 + _padded(len(audio)) + _padded(len(meta))
            if clips and _padded(size + grow, 10240) > max_bytes:  # tar pads to records
                break
            writer.write({"__key__": f"{position + clips:09d}", ext: audio, "json": meta})
            clips += 1
            seconds += clip.duration
            size += grow
        writer.close()
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ShardInfo(url, category, clips, round(seconds, 6), path.stat().st_size, position,
                     digest)


def _padded(n: int, block: int = 512) -> int:
    """``n`` rounded up to whole blocks (a tar member: 512 bytes; a whole tar: 10240)."""
    return -(-n // block) * block


# ------------------------------------------------------------------------------------ reading
def read_record(sample: Mapping, url: str = "") -> tuple[dict, bytes, str]:
    """The json record and audio bytes of one WebDataset sample of a gass shard.

    Arguments
    ---------
    sample : mapping
        A sample of ``webdataset.tarfile_to_samples`` (``__key__``, ``json``, audio member).
    url : str
        The shard, for messages.

    Returns
    -------
    dict
        The record (with at least :data:`REQUIRED_FIELDS`).
    bytes
        The audio.
    str
        The audio member's extension.

    Raises
    ------
    ShardError
        When the json or the audio member is missing or the record lacks a field.

    Example
    -------
    >>> rec = {"id": "a", "category": "sfx", "group": "g", "sample_rate": 8000, "frames": 4,
    ...        "channels": 1}
    >>> read_record({"__key__": "0", "json": json.dumps(rec).encode(), "wav": b"RIFF"})[2]
    'wav'
    >>> read_record({"__key__": "0", "json": b'{"id": "a"}', "wav": b"RIFF"}, "x.tar")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    gass_modules.dataio.shard_index.ShardError: x.tar: record 0 lacks the fields [...]...
    """
    key = sample.get("__key__", "?")
    if "json" not in sample:
        raise ShardError(f"{url}: sample {key} has no .json record; this is not a gass shard "
                         "(write shards with tools/make_shards.py)")
    try:
        record = json.loads(sample["json"])
    except ValueError as err:
        raise ShardError(f"{url}: record {key} is not json ({err})") from err
    missing = sorted(set(REQUIRED_FIELDS) - set(record))
    if missing:
        raise ShardError(f"{url}: record {key} lacks the fields {missing}; rewrite the shard "
                         "with tools/make_shards.py")
    ext = next((e for e in AUDIO_EXTENSIONS if e in sample), None)
    if ext is None:
        raise ShardError(f"{url}: sample {key} ({record['id']}) has no audio member (one of "
                         f"{AUDIO_EXTENSIONS})")
    return record, sample[ext], ext


def shard_samples(url: str) -> Iterator[dict]:
    """The samples of one tar shard, as ``webdataset.tarfile_to_samples`` gives them.

    The url is opened by WebDataset (``gopen``: paths, ``file://``, ``http(s)://``, ``pipe:``)
    and its members grouped into samples by WebDataset's ``group_by_keys``. A stream (http,
    pipe) is read by WebDataset's tar reader, tarfile's stream mode, which hands each member
    over in 10-kB reads joined in Python; a seekable shard (a local or cluster file system) is
    read by tarfile's random-access mode instead, one read per member: ≈2× the clips per core
    (benchmarks/bench_shards.py, 10-s 16-kHz wav clips). Errors raise (truncated members
    included: ``unexpected end of data``).

    Arguments
    ---------
    url : str
        The shard.

    Yields
    ------
    dict
        ``__key__``, ``__url__`` and one entry per member extension.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(80), 8000)
    >>> m = Manifest(["a"], [str(folder / "a.wav")], [80], [8000], [1], ["sfx"], ["g"])
    >>> url = str(folder / "shards" / write_shards(m, folder / "shards").shards[0].url)
    >>> [sorted(s) for s in shard_samples(url)]
    [['__key__', '__url__', 'json', 'wav']]
    """
    stream = wds.gopen(url)
    try:
        seekable = getattr(stream, "seekable", None)
        tar = None
        if seekable and seekable():
            try:
                tar = tarfile.open(fileobj=stream, mode="r:")
            except tarfile.ReadError:  # compressed (.tar.gz) or no tar: WebDataset's reader
                stream.seek(0)
        if tar is None:
            yield from wds.tariterators.group_by_keys(
                wds.tariterators.tar_file_expander([{"url": url, "stream": stream}],
                                                   eof_value=None))
            return
        yield from wds.tariterators.group_by_keys(_members(tar, url))
    finally:
        stream.close()


def _members(tar: tarfile.TarFile, url: str) -> Iterator[dict]:
    """The regular members of a tar opened for random access (as WebDataset's file samples)."""
    for member in tar:
        tar.members = []  # a shard has thousands of members: keep none
        if member.isreg() and not _META.match(member.name):
            yield {"fname": member.name, "data": tar.extractfile(member).read(), "__url__": url}


def iter_shard(url: str) -> Iterator[tuple[dict, bytes, str]]:
    """The clips of one shard, in order (:func:`shard_samples`; errors raise).

    Arguments
    ---------
    url : str
        Path, ``file://``, ``http(s)://`` or ``pipe:`` url of a tar shard.

    Yields
    ------
    tuple
        ``(record, audio bytes, extension)`` as :func:`read_record`.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(80), 8000)
    >>> m = Manifest(["a"], [str(folder / "a.wav")], [80], [8000], [1], ["sfx"], ["g"])
    >>> index = write_shards(m, folder / "shards")
    >>> url = str(folder / "shards" / index.shards[0].url)
    >>> [(rec["id"], ext) for rec, _, ext in iter_shard(url)]
    [('a', 'wav')]
    """
    for sample in shard_samples(url):
        yield read_record(sample, url)


# curl's exit codes for a host that cannot be reached: 6 (name not resolved), 7 (connection
# refused), 28 (timed out). The same dead url surfaces either as one of these or as an empty stream.
_CURL_UNREACHABLE = ("6", "7", "28")


def explain(err: Exception) -> str:
    """A reader's error in words that say what happened to the shard.

    Arguments
    ---------
    err : Exception
        What reading a shard raised.

    Returns
    -------
    str
        The explanation.

    Example
    -------
    >>> explain(ValueError("empty file", "x"))
    'nothing could be read (unreachable url, missing or empty file): empty file'
    >>> explain(OSError("(['curl', 'http://h/a.tar'],): exit 7 (read)"))[:46]
    'nothing could be read (unreachable url, curl 7'
    """
    text = str(err.args[0]) if err.args else repr(err)
    if isinstance(err, ShardError):
        return text
    if "empty file" in text:
        return f"nothing could be read (unreachable url, missing or empty file): {text}"
    if "unexpected end of data" in text or "truncated" in text:
        return f"the tar is truncated: {text}"
    if "exit " in text and "curl" in text:
        code = text.rsplit("exit ", 1)[1].split()[0]
        if code in _CURL_UNREACHABLE:  # the host is not there: say so, whichever way it surfaced
            return f"nothing could be read (unreachable url, curl {code}): {text}"
        return f"the download failed (curl {code}): {text}"
    return f"{type(err).__name__}: {text}"


@dataclass
class VerifyReport:
    """What :func:`verify_shards` found.

    Arguments
    ---------
    clips : int
        Clips read back and compared.
    problems : list of str
        Every mismatch, missing or extra clip, bad shard.

    Example
    -------
    >>> VerifyReport(3).ok, VerifyReport(2, ["a.tar: missing"]).ok
    (True, False)
    """

    clips: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def verify_shards(index: ShardIndex | str | Path, manifest: Manifest | str | Path,
                  replacements: Mapping[str, str] | None = None) -> VerifyReport:
    """Round-trips every clip of a shard set against the manifest.

    Checks each shard's sha256 (local shards), each record's fields against the manifest row,
    and the decoded audio against the file: equal for ``original`` shards, within one step of
    the FLAC's bit depth for ``flac`` ones; every manifest clip must be in exactly one shard.

    Arguments
    ---------
    index : ShardIndex, str or Path
        The index or its location.
    manifest : Manifest, str or Path
        The manifest the shards were written from.
    replacements : mapping, optional
        ``$name`` replacements of the csv paths.

    Returns
    -------
    VerifyReport
        ``ok`` when every clip round-trips.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.full(80, 0.25), 8000, subtype="PCM_16")
    >>> m = Manifest(["a"], [str(folder / "a.wav")], [80], [8000], [1], ["sfx"], ["g"])
    >>> report = verify_shards(write_shards(m, folder / "shards", codec="flac"), m)
    >>> report.ok, report.clips
    (True, 1)
    """
    index = index if isinstance(index, ShardIndex) else ShardIndex.load(index)
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest,
                                                                             replacements)
    rows = {clip_id: i for i, clip_id in enumerate(manifest.ids.tolist())}
    seen: set[str] = set()
    report = VerifyReport()
    for shard in index.shards:
        url = resolve_url(shard.url, index.location)
        if shard.sha256 and "://" not in url and not url.startswith("pipe:"):
            if not Path(url).is_file():
                report.problems.append(f"{url}: missing")
                continue
            if hashlib.sha256(Path(url).read_bytes()).hexdigest() != shard.sha256:
                report.problems.append(f"{url}: sha256 differs from the index")
        count = 0
        try:
            for record, audio, _ in iter_shard(url):
                count += 1
                problem = _check_clip(record, audio, manifest, rows, index.codec, seen)
                if problem:
                    report.problems.append(f"{url}: {problem}")
                else:
                    report.clips += 1
        except Exception as err:  # a truncated or unreadable shard is a finding, not a crash
            report.problems.append(f"{url}: unreadable ({err})")
        if count != shard.clips:
            report.problems.append(f"{url}: {count} clips, the index says {shard.clips}")
    missing = len(manifest) - len(seen)
    if missing:
        absent = [i for i in manifest.ids.tolist() if i not in seen][:5]
        report.problems.append(f"{missing} manifest clips are in no shard, e.g. {absent}")
    return report


def _check_clip(record: dict, audio: bytes, manifest: Manifest, rows: Mapping[str, int],
                codec: str, seen: set[str]) -> str:
    """One clip's mismatch with the manifest, or ``""``."""
    clip_id = record["id"]
    if clip_id not in rows:
        return f"clip {clip_id!r} is not in the manifest"
    if clip_id in seen:
        return f"clip {clip_id!r} is in more than one shard"
    seen.add(clip_id)
    clip = manifest[rows[clip_id]]
    expected = {"category": clip.category, "group": clip.group, "sample_rate": clip.sample_rate,
                "frames": clip.frames, "channels": clip.channels}
    wrong = {k: (record[k], v) for k, v in expected.items() if record[k] != v}
    if wrong:
        return f"clip {clip_id!r}: record differs from the manifest {wrong}"
    got, rate = sf.read(io.BytesIO(audio), dtype="float32", always_2d=True)
    ref, _ = sf.read(clip.path, dtype="float32", always_2d=True)
    if got.shape != ref.shape or rate != clip.sample_rate:
        return f"clip {clip_id!r}: audio {got.shape} at {rate} Hz, file {ref.shape}"
    if codec == "original":
        tolerance = 0.0
    else:
        tolerance = 2.0 ** (1 - (24 if sf.info(io.BytesIO(audio)).subtype == "PCM_24" else 16))
    error = float(np.max(np.abs(got - ref))) if got.size else 0.0
    if error > tolerance:
        return f"clip {clip_id!r}: audio differs from the file by {error:.3g} (> {tolerance:g})"
    return ""


__all__ = ["INDEX_NAME", "RECORD_FIELDS", "REQUIRED_FIELDS", "ShardError", "ShardIndex",
           "ShardInfo", "VerifyReport", "category_order", "iter_shard", "read_record",
           "resolve_url", "shard_samples", "verify_shards", "write_shards"]
