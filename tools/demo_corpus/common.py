"""What every source of the demo corpus shares: the clip record, package lookup, decoding
(torchaudio resampling) and writing.

Packages the corpus uses are either installed (``apt-get install``, files under ``/``) or
unpacked without their dependencies into ``${GASS_CACHE:-~/.cache/gass}/debs/root``
(``apt-get download`` + ``dpkg -x``, as ``tools/setup_env.sh`` does for
``tools/debian-data-packages.txt``): :func:`find` looks in both.
"""

from __future__ import annotations

import os
import re
import shutil
import zlib
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gass_modules.dataio.mixer import resample


def deb_root() -> Path:
    """``${GASS_CACHE:-~/.cache/gass}/debs/root``: where data packages are unpacked.

    Returns
    -------
    Path
        The folder (it may not exist).
    """
    cache = Path(os.environ.get("GASS_CACHE", Path.home() / ".cache" / "gass"))
    return cache / "debs" / "root"


def find(pattern: str, recursive: bool = False) -> list[str]:
    """Sorted files matching an absolute glob, installed or unpacked under :func:`deb_root`.

    Arguments
    ---------
    pattern : str
        An absolute glob such as ``/usr/share/klettres/*/alpha/*.ogg``.
    recursive : bool
        Whether ``**`` matches nested folders.

    Returns
    -------
    list of str
        Matching paths (installed ones first when a file is in both places, each listed once).
    """
    found = glob(pattern, recursive=recursive)
    if not found:
        found = glob(str(deb_root()) + pattern, recursive=recursive)
    return sorted(found)


def probe_found(probe: str) -> bool:
    """Whether a requirement probe (``bin:PROGRAM`` or an absolute glob) finds something.

    Arguments
    ---------
    probe : str
        ``bin:NAME`` for a program on ``PATH``, else a glob for :func:`find`.

    Returns
    -------
    bool
        True when present.
    """
    if probe.startswith("bin:"):
        return shutil.which(probe[4:]) is not None
    return bool(find(probe, recursive="**" in probe))


@dataclass
class Clip:
    """One written clip: what the manifest lists, plus what the statistics count.

    ``source`` names the voice, song or sound file the clip comes from (speakers are counted by
    it; several voices may share a split group, e.g. one language across community packages);
    ``bandwidth`` is the highest frequency (Hz) the clip holds: half its native rate.
    """

    id: str
    category: str
    group: str
    path: str
    frames: int
    source: str = ""
    bandwidth: float = 0.0
    synthetic: bool = False


def native_rate(path: str | Path) -> int:
    """The sample rate a file was recorded at (its header).

    Arguments
    ---------
    path : str or Path
        Any file libsndfile reads.

    Returns
    -------
    int
        Rate in Hz.
    """
    return int(sf.info(str(path)).samplerate)


def load_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decodes a file, downmixes it and resamples it (torchaudio) to ``sample_rate``.

    Arguments
    ---------
    path : str or Path
        Any file libsndfile reads.
    sample_rate : int
        Output rate in Hz.

    Returns
    -------
    numpy.ndarray
        ``[T]`` float32 samples.
    """
    data, rate = sf.read(path, dtype="float32", always_2d=True)  # [T, C]
    x = data.mean(axis=1, dtype=np.float32)
    if rate != sample_rate and len(x):  # an empty file stays empty
        x = resample(torch.from_numpy(np.ascontiguousarray(x)), rate, sample_rate).numpy()
    return x


def write_clip(out: Path, clip_id: str, category: str, group: str, x: np.ndarray,
               sample_rate: int, source: str = "", bandwidth: float | None = None,
               synthetic: bool = False) -> Clip:
    """Writes one clip as 16-bit wav (scaled down if it would clip).

    Arguments
    ---------
    out : Path
        Corpus folder; the clip goes to ``out/wav/<category>/<clip_id>.wav``.
    clip_id, category, group : str
        Manifest fields.
    x : numpy.ndarray
        ``[T]`` samples at ``sample_rate``.
    sample_rate : int
        Rate in Hz.
    source : str
        Voice, song or file the clip comes from (statistics).
    bandwidth : float, optional
        Highest frequency held (Hz); default ``sample_rate / 2``.
    synthetic : bool
        A synthetic voice (counted apart from real speakers).

    Returns
    -------
    Clip
        The record of the written file.
    """
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0.99:
        x = x * np.float32(0.99 / peak)
    path = out / "wav" / category / f"{clip_id}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sample_rate, subtype="PCM_16")
    band = sample_rate / 2 if bandwidth is None else min(float(bandwidth), sample_rate / 2)
    return Clip(clip_id, category, group, str(path), len(x), source or group, band, synthetic)


def band_limit(x: np.ndarray, sample_rate: int, band_hz: float) -> np.ndarray:
    """Removes what lies above ``band_hz`` the way a recording at ``2 * band_hz`` would lack it.

    Arguments
    ---------
    x : numpy.ndarray
        ``[T]`` samples at ``sample_rate``.
    sample_rate : int
        Rate in Hz.
    band_hz : float
        Highest frequency kept (Hz); at or above ``sample_rate / 2`` nothing changes.

    Returns
    -------
    numpy.ndarray
        ``[T]`` float32 samples, resampled to ``2 * band_hz`` and back (torchaudio).

    Example
    -------
    >>> t = np.arange(16000) / 16000
    >>> x = (np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    >>> y = band_limit(x, 16000, 4000)
    >>> spec = np.abs(np.fft.rfft(y))
    >>> bool(spec[1000] > 1000 and spec[6000] < 1e-2 * spec[1000])
    True
    """
    low = int(round(2 * band_hz))
    if low >= sample_rate:
        return np.asarray(x, dtype=np.float32)
    y = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    y = resample(resample(y, sample_rate, low), low, sample_rate)
    return y[: len(x)].numpy()


def passages(utterances: list[np.ndarray], sample_rate: int, clip_s: float,
             gap_s: float = 0.3) -> list[np.ndarray]:
    """Concatenates utterances (with short pauses) into passages of about ``clip_s`` seconds.

    Arguments
    ---------
    utterances : list of numpy.ndarray
        ``[T_i]`` signals in speaking order.
    sample_rate : int
        Their rate in Hz.
    clip_s : float
        Target passage length in seconds; a last passage shorter than half of it is dropped.
    gap_s : float
        Pause between utterances in seconds.

    Returns
    -------
    list of numpy.ndarray
        The passages.

    Example
    -------
    >>> parts = passages([np.ones(6), np.ones(6), np.ones(6)], 10, clip_s=1.0, gap_s=0.2)
    >>> [len(p) for p in parts]
    [14, 6]
    """
    gap = np.zeros(int(gap_s * sample_rate), dtype=np.float32)
    out, current, length = [], [], 0
    for u in utterances:
        current += [u, gap]
        length += len(u) + len(gap)
        if length >= clip_s * sample_rate:
            out.append(np.concatenate(current[:-1]))
            current, length = [], 0
    if current and length >= 0.5 * clip_s * sample_rate:
        out.append(np.concatenate(current[:-1]))
    return out


def rng_for(seed: int, name: str) -> np.random.Generator:
    """A generator per job, stable across runs and job orders.

    Arguments
    ---------
    seed : int
        The build's seed.
    name : str
        The job's name.

    Returns
    -------
    numpy.random.Generator
        Seeded from both.

    Example
    -------
    >>> float(rng_for(0, "a").random()) == float(rng_for(0, "a").random())
    True
    """
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def slug(text: str) -> str:
    """Lower-case ``[a-z0-9_]`` form of a name, for ids and groups.

    Arguments
    ---------
    text : str
        Any name.

    Returns
    -------
    str
        The slug.

    Example
    -------
    >>> slug("Default_es/Hello World.ogg")
    'default_es_hello_world_ogg'
    """
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
