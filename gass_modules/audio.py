"""Audio files and levels: reading, atomic writing, resampling and source activity.

Source activity: output ``s`` has energy ``E_s = 10 log10(sum(s^2) / sum(x^2))`` dB relative to
the mixture ``x``; outputs with ``E_s`` under ``threshold_db`` (default −20 dB, the level under
which the training loss's inactive-source term ``10 log10(|s|^2 + 10^-2 |x|^2)`` stops pushing)
are reported silent and, by default, not written.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import nn

from gass_modules.lobes.base import check_mixture

try:
    import fcntl
except ImportError:  # Windows: OutputLock falls back to an exclusively created file
    fcntl = None

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD_DB = -20.0
FRAME_SECONDS = 0.1  # activity frames, for the seconds each source is active
# Largest product of the gcd-reduced rates we resample between: torchaudio's sinc kernel has about
# 13 * f_in/g * f_m/g taps, so rates without a common divisor (44101 Hz) would need gigabytes.
_MAX_RATE_PRODUCT = 1 << 22


def source_activity(
    mix: torch.Tensor, sources: torch.Tensor, threshold_db: float = DEFAULT_THRESHOLD_DB
) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy of each estimate relative to its mixture, and whether it is over the threshold.

    Arguments
    ---------
    mix : torch.Tensor
        ``[B, T]`` mixtures.
    sources : torch.Tensor
        ``[B, T, S]`` estimates.
    threshold_db : float
        Outputs with ``10 log10(sum(s^2) / sum(x^2)) < threshold_db`` are silent.

    Returns
    -------
    energy_db : torch.Tensor
        ``[B, S]`` relative energies in dB (``-inf`` for all-zero outputs).
    active : torch.Tensor
        ``[B, S]`` bool; False everywhere for an all-zero mixture.

    Example
    -------
    >>> x = torch.ones(1, 100)
    >>> energy_db, active = source_activity(x, torch.stack([x, 0.01 * x], -1))
    >>> energy_db.round().tolist(), active.tolist()
    ([[0.0, -40.0]], [[True, False]])
    """
    check_mixture(mix)
    if sources.dim() != 3 or sources.shape[:2] != mix.shape:
        raise ValueError(f"expected sources [B, T, S] matching mix {tuple(mix.shape)}, got "
                         f"{tuple(sources.shape)}")
    mix_energy = mix.double().pow(2).sum(-1, keepdim=True)  # [B, 1]
    energy = sources.double().pow(2).sum(1)  # [B, S]
    energy_db = 10 * torch.log10(energy / mix_energy)  # [B, S]
    active = (energy_db >= threshold_db) & (mix_energy > 0)
    return energy_db.float(), active


class _ActivityMeter:
    """Streams the energies behind :class:`Separation`: totals and 0.1 s frame energies."""

    def __init__(self, num_sources: int, sample_rate: int) -> None:
        self.frame = max(1, round(FRAME_SECONDS * sample_rate))
        self.sample_rate = sample_rate
        self.mix_energy = 0.0
        self.energy = torch.zeros(num_sources, dtype=torch.float64)  # [S]
        self.frames = torch.zeros(64, num_sources, dtype=torch.float64)  # [F, S]
        self.offset = 0

    def update(self, mix: torch.Tensor, est: torch.Tensor) -> None:
        """Adds a block: ``mix [C, n]``, ``est [C, n, S]``."""
        n = mix.shape[-1]
        self.mix_energy += float(mix.double().pow(2).sum())
        per_sample = est.double().pow(2).sum(0)  # [n, S]
        self.energy += per_sample.sum(0)
        index = (self.offset + torch.arange(n)) // self.frame  # [n]
        needed = int(index[-1]) + 1
        if needed > self.frames.shape[0]:
            grown = torch.zeros(max(needed, 2 * self.frames.shape[0]), self.frames.shape[1],
                                dtype=torch.float64)
            grown[: self.frames.shape[0]] = self.frames
            self.frames = grown
        self.frames.index_add_(0, index, per_sample)
        self.offset += n

    def result(self, threshold_db: float) -> tuple[list[float], list[bool], list[float]]:
        """(energy_db, active, active_seconds) per output."""
        count = -(-self.offset // self.frame)
        lengths = torch.full((count,), float(self.frame), dtype=torch.float64)  # [F]
        lengths[-1] = self.offset - (count - 1) * self.frame
        if self.mix_energy <= 0:
            silent = [False] * self.energy.numel()
            return [-math.inf] * self.energy.numel(), silent, [0.0] * self.energy.numel()
        energy_db = (10 * torch.log10(self.energy / self.mix_energy)).tolist()
        active = [e >= threshold_db for e in energy_db]
        floor = 10 ** (threshold_db / 10) * self.mix_energy / self.offset  # power, per sample
        power = self.frames[:count] / lengths[:, None]  # [F, S]
        seconds = ((power >= floor) * lengths[:, None]).sum(0) / self.sample_rate  # [S]
        return energy_db, active, seconds.tolist()


class _ArrayReader:
    """Reads zero-padded ranges of an in-memory ``[C, N]`` signal."""

    def __init__(self, signal: torch.Tensor) -> None:
        self.signal = signal  # [C, N]

    @property
    def length(self) -> int:
        """``N``, the number of samples."""
        return self.signal.shape[-1]

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` as ``[C, stop - start]``, zeros outside ``[0, N)``."""
        length = self.signal.shape[-1]
        lo, hi = max(start, 0), min(stop, length)
        return nn.functional.pad(self.signal[:, lo:hi], (lo - start, stop - hi))


class _FileReader:
    """Reads zero-padded ranges of an open ``soundfile.SoundFile`` sequentially, in blocks.

    Only the samples from the last requested start on are kept, so memory is one chunk whatever
    the file's length; every block is checked for NaN/Inf and for truncation.
    """

    def __init__(self, handle: sf.SoundFile, name: str) -> None:
        self.handle = handle
        self.name = name
        self.length = handle.frames
        self.buffer = np.zeros((0, handle.channels), dtype=np.float32)  # [n, C]
        self.start = 0  # file position of buffer[0]

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` as ``[C, stop - start]``, zeros outside ``[0, N)``."""
        lo, hi = max(start, 0), min(stop, self.length)
        with _decoding(self.name, lo):
            if lo > self.start + len(self.buffer):  # a jump forward: nothing kept is needed
                self.handle.seek(lo)
                self.buffer, self.start = self.buffer[:0], lo
            else:
                self.buffer, self.start = self.buffer[lo - self.start:], lo
        missing = hi - (self.start + len(self.buffer))
        if missing > 0:
            with _decoding(self.name, self.start + len(self.buffer)):
                block = self.handle.read(missing, dtype="float32", always_2d=True)  # [m, C]
            if len(block) < missing:
                stopped = self.start + len(self.buffer) + len(block)
                raise ValueError(f"{self.name} is truncated: its header announces {self.length} "
                                 f"samples but reading stopped at {stopped}; re-encode or "
                                 "repair the file")
            bad = ~np.isfinite(block)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                pos = self.start + len(self.buffer) + int(row)
                raise ValueError(_nonfinite_message(self.name, pos, int(col),
                                                    self.handle.samplerate))
            self.buffer = np.concatenate([self.buffer, block])
        out = np.zeros((stop - start, self.buffer.shape[1]), dtype=np.float32)
        out[lo - start: hi - start] = self.buffer[: hi - lo]
        return torch.from_numpy(out.T.copy())  # [C, n]


@contextlib.contextmanager
def _decoding(name: str, position: int) -> Iterator[None]:
    """Turns libsndfile's decoding errors into a ``ValueError`` naming the file and frame."""
    try:
        yield
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise ValueError(f"cannot decode {name} near frame {position} ({err}); the file is "
                         "corrupt or truncated: re-encode or repair it") from err


def _nonfinite_message(name: str, position: int, channel: int, rate: int) -> str:
    """The error for NaN/Inf input samples."""
    return (f"{name} contains NaN or Inf samples (first at sample {position}, "
            f"{position / rate:.3f} s, channel {channel}); expected finite audio: replace them "
            "(e.g. numpy.nan_to_num) and rerun")


def _open_audio(path: Path) -> sf.SoundFile:
    """Opens ``path`` for reading, with errors that say what is wrong with the file."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"expected an audio file, got a directory or special file: {path}")
    try:
        return sf.SoundFile(path)
    except sf.LibsndfileError as err:
        raise ValueError(f"{path} is not a readable audio file ({err.error_string}); expected "
                         "wav, flac or ogg audio") from err
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    except (TypeError, RuntimeError) as err:  # e.g. a .raw file: no header to say the rate
        raise ValueError(f"{path} cannot be opened as audio ({err}); expected a file with a "
                         "header (wav, flac, ogg, ...): convert headerless audio first") from err


# WAV encodings that keep the input's sample format with the input's length; block codecs
# (IMA/MS ADPCM, GSM 6.10, G.721, NMS ADPCM) pad the last block (a longer stem), so they become
# PCM_16, and codecs WAV cannot hold (MP3, Vorbis, Opus, ALAC, ...) become FLOAT.
_WAV_KEEP = ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW")
_BLOCK_CODECS = ("IMA_ADPCM", "MS_ADPCM", "GSM610", "G721_32", "G723_24", "G723_40",
                 "NMS_ADPCM_16", "NMS_ADPCM_24", "NMS_ADPCM_32", "VOX_ADPCM")


def _wav_subtype(subtype: str) -> str:
    """The WAV subtype of the stems for an input of ``subtype`` (module comment above)."""
    if subtype in _WAV_KEEP:
        return subtype
    if subtype == "PCM_S8":
        return "PCM_U8"
    return "PCM_16" if subtype in _BLOCK_CODECS else "FLOAT"


def _truncation_warning(handle: sf.SoundFile, name: str) -> str | None:
    """A warning when the header announces more audio than the file holds (None otherwise).

    libsndfile then reads the frames that are there and notes ``data : N (should be M)`` (bytes)
    in its log (``extra_info``).
    """
    found = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", handle.extra_info or "",
                      re.MULTILINE)
    if not found:
        return None
    announced, present = (int(v) for v in found.groups())
    if present >= announced or present <= 0:
        return None
    expected = round(handle.frames * announced / present)
    return (f"{name} is truncated: its header announces {announced} bytes of audio (about "
            f"{expected} frames) but the file holds {present}; separated the {handle.frames} "
            "frames that were read (re-encode or repair the file for the rest)")


class OutputLock:
    """An exclusive, per-process-reentrant lock on the outputs ``<out_dir>/<stem>*``.

    Two runs writing the same stem name into one folder would otherwise interleave their files
    (a finished run could hold the other's stems). The lock is ``fcntl.flock`` on
    ``.<stem>.gass-lock`` (released by the OS if the process dies; removed on release), or an
    exclusively created file where ``fcntl`` does not exist. ``GASSSeparator.separate_to_files``
    and ``gass-separate`` hold it while they write; hold it around anything else you write beside
    the stems.

    Arguments
    ---------
    out_dir : str or os.PathLike
        The output folder (must exist).
    stem : str
        The outputs' common name (the input file's stem).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> with OutputLock(tmp, "song"):
    ...     (tmp / ".song.gass-lock").exists()
    True
    >>> (tmp / ".song.gass-lock").exists()  # removed on release
    False
    """

    _held: dict[Path, list] = {}  # path -> [fd, count], this process's locks

    def __init__(self, out_dir: str | os.PathLike, stem: str) -> None:
        self.path = Path(os.path.abspath(out_dir)) / f".{stem}.gass-lock"

    def __enter__(self) -> OutputLock:
        held = self._held.get(self.path)
        if held is not None:
            held[1] += 1
            return self
        busy = FileExistsError(f"another process is writing the outputs of {self.path.parent}/"
                               f"{self.path.name[1:-len('.gass-lock')]}* (lock {self.path}); "
                               "wait for it to finish or choose another output folder")
        while True:
            fd = self._open()
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise busy from None
            try:  # the holder before us may have removed the file: lock the current one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._held[self.path] = [fd, 1]
        return self

    def _open(self) -> int:
        """Opens (without ``fcntl``: exclusively creates) the lock file."""
        flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if fcntl is None else 0)
        try:
            return os.open(self.path, flags, 0o644)
        except FileExistsError as err:  # only without fcntl
            raise FileExistsError(f"{self.path} exists: another process is writing these "
                                  "outputs, or one was killed (then delete the file)") from err
        except PermissionError as err:
            raise _permission_error(self.path.parent, err) from err

    def __exit__(self, *exc: object) -> None:
        held = self._held[self.path]
        held[1] -= 1
        if held[1] == 0:
            del self._held[self.path]
            self.path.unlink(missing_ok=True)  # while locked: no one else holds this inode
            os.close(held[0])


def _permission_error(folder: Path, err: OSError) -> PermissionError:
    """The error for an output folder that cannot be written."""
    return PermissionError(f"cannot write in {folder}: permission denied ({err.strerror}); make "
                           "it writable or choose another output folder")


def make_folder(folder: str | os.PathLike) -> None:
    """``mkdir -p`` with a clear error when the folder cannot be created.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder to create (with its parents); an existing folder is fine.

    Raises
    ------
    PermissionError
        When the folder cannot be written (the message says to choose another one).
    NotADirectoryError
        When a file of that name exists.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> make_folder(tmp / "a" / "b")
    >>> (tmp / "a" / "b").is_dir()
    True
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise _permission_error(folder, err) from err
    except FileExistsError as err:
        raise NotADirectoryError(f"output folder {folder} exists and is not a folder") from err


def _temporary_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new, uniquely named empty file in ``folder`` (for an atomic ``os.replace`` later)."""
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except PermissionError as err:
        raise _permission_error(folder, err) from err
    os.close(fd)
    return Path(name)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes a text file through a unique temporary file and an atomic rename.

    Readers (and concurrent writers) see either the old file or the complete new one.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write (its folder must exist).
    text : str
        The content (UTF-8).

    Returns
    -------
    pathlib.Path
        ``path``.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> write_text_atomic(tmp / "a.json", "{}").read_text(), sorted(p.name for p in tmp.iterdir())
    ('{}', ['a.json'])
    """
    path = Path(path)
    part = _temporary_file(path.parent, f".{path.stem}.", f".partial{path.suffix}")
    try:
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path


class _StemWriter:
    """Writes ``S`` stems incrementally to uniquely named hidden files, renamed on success.

    Integer encodings are clipped to [-1, 1] and the clipped samples counted (they would wrap
    around otherwise); files in ``protected`` (the inputs of a run) are never written over.
    """

    def __init__(self, out_dir: Path, stem: str, num_sources: int, sample_rate: int,
                 channels: int, subtype: str, num_frames: int, overwrite: bool,
                 protected: frozenset[Path] = frozenset(),
                 labels: list[str] | None = None) -> None:
        # <stem>_<label>.wav; by default the stems <stem>_s1.wav ... (their partial files are
        # named by model output, o1 ..., as outputs are renamed to stems loudest first)
        names = labels or [f"s{s + 1}" for s in range(num_sources)]
        self.finals = [out_dir / f"{stem}_{name}.wav" for name in names]
        part_names = labels or [f"o{s + 1}" for s in range(num_sources)]
        inputs = [str(p) for p in self.finals if p.resolve() in protected]
        if inputs:
            raise ValueError(f"the stems would be written over the input(s) {inputs}; choose an "
                             "output folder outside the input folder (or rename the inputs)")
        existing = [str(p) for p in self.finals if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"outputs already exist: {existing}; pass --overwrite "
                                  "(overwrite=True) to replace them")
        make_folder(out_dir)
        self.subtype = _wav_subtype(subtype)
        self.clip = self.subtype not in ("FLOAT", "DOUBLE")
        size = num_frames * channels * 8  # at most 8 bytes a sample
        fmt = "RF64" if size >= (1 << 32) - (1 << 20) else "WAV"
        self.parts: list[Path] = []
        self.handles: list[sf.SoundFile] = []
        try:
            for s in range(num_sources):
                self.parts.append(_temporary_file(out_dir, f".{stem}_{part_names[s]}.",
                                                  ".partial.wav"))
                self.handles.append(sf.SoundFile(self.parts[-1], "w", sample_rate, channels,
                                                 self.subtype, format=fmt))
        except BaseException:
            self.abort()
            raise
        self.clipped = [0] * num_sources

    def write(self, est: torch.Tensor) -> None:
        """Appends a block ``[C, n, S]``."""
        for s, handle in enumerate(self.handles):
            data = est[:, :, s].T.numpy()  # [n, C]
            if self.clip:
                over = np.abs(data) > 1.0
                if over.any():
                    self.clipped[s] += int(over.sum())
                    data = np.clip(data, -1.0, 1.0)
            handle.write(data)

    def finish(self, order: list[int], by_index: bool = False) -> list[Path]:
        """Closes the stems, renames output ``order[k]`` to ``<stem>_s{k+1}.wav`` (or output
        ``s`` to ``<stem>_s{s+1}.wav`` when ``by_index``)."""
        for handle in self.handles:
            handle.close()
        names = [self.finals[s] for s in order] if by_index else self.finals[: len(order)]
        for s, final in zip(order, names):
            os.replace(self.parts[s], final)
        for s in set(range(len(self.parts))) - set(order):
            self.parts[s].unlink(missing_ok=True)
        for stale in set(self.finals) - set(names):  # left by an earlier run (overwrite=True)
            stale.unlink(missing_ok=True)
        return names

    def abort(self) -> None:
        """Closes and removes the partial files."""
        for handle in self.handles:
            handle.close()
        for part in self.parts:
            part.unlink(missing_ok=True)


@functools.lru_cache(maxsize=64)
def cached_resampler(orig: int, new: int, device: str = "cpu") -> torchaudio.transforms.Resample:
    """torchaudio's windowed-sinc resampler for a rate pair and device, built once and kept.

    The one resampler cache of the package (the mixer, chunked separation and file reading use
    it): the sinc kernel takes a while to build.

    Arguments
    ---------
    orig : int
        Input sample rate in Hz.
    new : int
        Output sample rate in Hz.
    device : str
        Where the kernel lives (``str(tensor.device)``).

    Returns
    -------
    torchaudio.transforms.Resample
        The resampler (the same object for the same arguments).

    Example
    -------
    >>> cached_resampler(44100, 16000) is cached_resampler(44100, 16000)
    True
    >>> cached_resampler(44100, 16000)(torch.zeros(2, 441)).shape
    torch.Size([2, 160])
    """
    return torchaudio.transforms.Resample(orig, new).to(device)


def _scan_finite(handle: sf.SoundFile, name: str, block: int = 1 << 16) -> None:
    """Raises before any separation if a float file holds NaN/Inf (then rewinds)."""
    position = 0
    with _decoding(name, position):
        for data in handle.blocks(blocksize=block, dtype="float32", always_2d=True):
            bad = ~np.isfinite(data)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                raise ValueError(_nonfinite_message(name, position + int(row), int(col),
                                                    handle.samplerate))
            position += len(data)
        handle.seek(0)
