"""Audio files and levels: reading, decoding checks, resampling and source activity.

Source activity: output ``s`` has energy ``E_s = 10 log10(sum(s^2) / sum(x^2))`` dB relative to
the mixture ``x``; outputs with ``E_s`` under ``threshold_db`` (default −20 dB, the level under
which the training loss's inactive-source term ``10 log10(|s|^2 + 10^-2 |x|^2)`` stops pushing)
are reported silent and, by default, not written.

Writing outputs (atomic files, locks, stem files, run records) is
:mod:`gass_modules.inference.output_files`.

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
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import nn

from gass_modules.lobes.base import check_mixture

logger = logging.getLogger(__name__)


DEFAULT_THRESHOLD_DB = -20.0
# File name suffixes of the formats libsndfile reads (soundfile.available_formats()); headerless
# RAW and the MATLAB formats (.mat: mostly not audio) are left out. Folder scans (gass-separate,
# gass_modules.dataio.scan) pick these up.
_FORMAT_SUFFIXES = {
    "WAV": (".wav",), "WAVEX": (".wav",), "RF64": (".rf64",), "W64": (".w64",),
    "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
    "AIFF": (".aiff", ".aif", ".aifc"), "AU": (".au", ".snd"), "CAF": (".caf",),
    "NIST": (".nist", ".sph"), "IRCAM": (".sf", ".ircam"), "VOC": (".voc",), "PAF": (".paf",),
    "SVX": (".svx", ".8svx"), "PVF": (".pvf",), "XI": (".xi",), "HTK": (".htk",),
    "SDS": (".sds",), "AVR": (".avr",), "SD2": (".sd2",), "WVE": (".wve",), "MPC2K": (".mpc2k",),
}
READABLE_SUFFIXES = frozenset(suffix for fmt in sf.available_formats()
                              for suffix in _FORMAT_SUFFIXES.get(fmt, ()))
# Largest sample magnitude taken as audio: float files hold [-1, 1] audio (an int16 value stored
# as float is 3.3e4); beyond this, energies overflow float32 inside a model.
MAX_SAMPLE_MAGNITUDE = 1e6
FRAME_SECONDS = 0.1  # activity frames, for the seconds each source is active
# Largest product of the gcd-reduced rates we resample between: torchaudio's sinc kernel has about
# 13 * f_in/g * f_m/g taps, so rates without a common divisor (44101 Hz) would need gigabytes.
MAX_RATE_PRODUCT = 1 << 22


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


class ActivityMeter:
    """Streams the energies behind a separation's report: totals and 0.1 s frame energies.

    Blocks of a mixture and its estimates are added in order (:meth:`update`); :meth:`result`
    gives what :func:`source_activity` gives for the whole signal (the energy of each output
    relative to the mixture, and whether it is over the threshold) plus the seconds each output
    is active (frames of ``FRAME_SECONDS`` whose power is over the threshold times the mixture's
    mean power), without keeping the audio.

    Arguments
    ---------
    num_sources : int
        ``S``, the number of outputs.
    sample_rate : int
        Sample rate in Hz (for the frame length and the seconds).

    Example
    -------
    >>> meter = ActivityMeter(num_sources=2, sample_rate=10)
    >>> mix = torch.ones(1, 20)  # [C, n]: 2 s at 10 Hz
    >>> est = torch.stack([mix, torch.cat([mix[:, :10], 0 * mix[:, 10:]], 1)], -1)  # [C, n, S]
    >>> meter.update(mix[:, :7], est[:, :7])
    >>> meter.update(mix[:, 7:], est[:, 7:])
    >>> energy_db, active, seconds = meter.result(threshold_db=-20.0)
    >>> [round(e, 2) for e in energy_db], active, seconds
    ([0.0, -3.01], [True, True], [2.0, 1.0])
    """

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


class ArrayReader:
    """Reads zero-padded ranges of an in-memory ``[C, N]`` signal (the reader of chunking).

    The in-memory twin of :class:`FileReader`: chunked separation reads any range through
    ``read(start, stop)``, whether the signal is a tensor or a file.

    Arguments
    ---------
    signal : torch.Tensor
        ``[C, N]`` samples.

    Example
    -------
    >>> reader = ArrayReader(torch.tensor([[1., 2., 3.]]))
    >>> reader.length, reader.read(-1, 5).tolist()
    (3, [[0.0, 1.0, 2.0, 3.0, 0.0, 0.0]])
    """

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


class FileReader:
    """Reads zero-padded ranges of an open ``soundfile.SoundFile`` sequentially, in blocks.

    Only the samples from the last requested start on are kept, so memory is one chunk whatever
    the file's length; every block is checked for NaN/Inf, for samples too loud to be audio
    (``MAX_SAMPLE_MAGNITUDE``) and for truncation, with a ``ValueError`` naming the file.

    Arguments
    ---------
    handle : soundfile.SoundFile
        An open file (:func:`open_audio`).
    name : str
        The file's name in error messages.

    Example
    -------
    >>> import io
    >>> buffer = io.BytesIO()
    >>> sf.write(buffer, np.array([[0.5], [0.25], [-0.5]]), 8000, format="WAV", subtype="FLOAT")
    >>> _ = buffer.seek(0)
    >>> reader = FileReader(sf.SoundFile(buffer), "three.wav")
    >>> reader.length, reader.read(-1, 4).tolist()
    (3, [[0.0, 0.5, 0.25, -0.5, 0.0]])
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
            _check_samples(block, self.name, self.start + len(self.buffer),
                           self.handle.samplerate)
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


def _check_samples(block: np.ndarray, name: str, position: int, rate: int) -> None:
    """Raises a ``ValueError`` for NaN/Inf samples or samples too loud to be audio
    (``|x| > MAX_SAMPLE_MAGNITUDE``) in ``block [n, C]``, which starts at frame ``position``."""
    bad = ~np.isfinite(block)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(nonfinite_message(name, position + int(row), int(col), rate))
    loud = np.abs(block) > MAX_SAMPLE_MAGNITUDE
    if loud.any():
        row, col = np.argwhere(loud)[0]
        at = position + int(row)
        raise ValueError(f"{name}: input too loud: sample {at} ({at / rate:.3f} s, channel "
                         f"{int(col)}) is {float(block[row, col]):.3g}, over "
                         f"{MAX_SAMPLE_MAGNITUDE:.0e}; expected float audio in [-1, 1]: scale "
                         "the file down (e.g. divide by its peak) and rerun")


def nonfinite_message(name: str, position: int, channel: int, rate: int) -> str:
    """The error message for NaN/Inf input samples: where the first one is, and what to do.

    Arguments
    ---------
    name : str
        The input's name (a file, or ``mix[b]``).
    position : int
        The sample index of the first NaN/Inf.
    channel : int
        Its channel.
    rate : int
        Sample rate in Hz (to say the time).

    Returns
    -------
    str
        The message.

    Example
    -------
    >>> nonfinite_message("a.wav", 8000, 1, 16000)[:70]
    'a.wav contains NaN or Inf samples (first at sample 8000, 0.500 s, chan'
    """
    return (f"{name} contains NaN or Inf samples (first at sample {position}, "
            f"{position / rate:.3f} s, channel {channel}); expected finite audio: replace them "
            "(e.g. numpy.nan_to_num) and rerun")


def open_audio(path: Path) -> sf.SoundFile:
    """Opens ``path`` for reading, with errors that say what is wrong with the file.

    Arguments
    ---------
    path : pathlib.Path
        The audio file.

    Returns
    -------
    soundfile.SoundFile
        The open file (use it as a context manager).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A directory, or a file libsndfile cannot open as audio (the message says why).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(80), 8000)
    >>> with open_audio(folder / "a.wav") as handle:
    ...     handle.frames, handle.samplerate
    (80, 8000)
    >>> _ = (folder / "b.wav").write_text("not audio")
    >>> open_audio(folder / "b.wav")
    Traceback (most recent call last):
    ...
    ValueError: ... is not a readable audio file (...); expected wav, flac or ogg audio
    """
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


def wav_subtype(subtype: str) -> str:
    """The WAV subtype of the stems written for an input encoded as ``subtype``.

    PCM, float and G.711 encodings are kept; block codecs (ADPCM, GSM 6.10, ...) become
    ``PCM_16`` (they pad the last block, which would make a stem longer than its input), signed
    8-bit becomes ``PCM_U8`` (WAV's 8-bit), and codecs WAV cannot hold become ``FLOAT``.

    Arguments
    ---------
    subtype : str
        The input's ``soundfile`` subtype (``SoundFile.subtype``).

    Returns
    -------
    str
        A WAV subtype.

    Example
    -------
    >>> [wav_subtype(s) for s in ("PCM_24", "IMA_ADPCM", "PCM_S8", "VORBIS")]
    ['PCM_24', 'PCM_16', 'PCM_U8', 'FLOAT']
    """
    if subtype in _WAV_KEEP:
        return subtype
    if subtype == "PCM_S8":
        return "PCM_U8"
    return "PCM_16" if subtype in _BLOCK_CODECS else "FLOAT"


def truncation_warning(handle: sf.SoundFile, name: str) -> str | None:
    """A warning when the header announces more audio than the file holds (None otherwise).

    WAV-like files: libsndfile reads the frames that are there and notes
    ``data : N (should be M)`` (bytes) in its log (``extra_info``). Ogg: the stream's own length
    is the granule position of its last page; a stream damaged in the middle decodes (and
    libsndfile counts) only the samples before the damage, so fewer frames than that.

    Arguments
    ---------
    handle : soundfile.SoundFile
        The open file.
    name : str
        The file's name in the warning.

    Returns
    -------
    str or None
        The warning (what the header announces, what was read), or None for a whole file.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "cut.wav"
    >>> sf.write(path, np.zeros(800), 8000, subtype="PCM_16")
    >>> with open(path, "r+b") as f:
    ...     _ = f.truncate(44 + 400)  # half the data bytes
    >>> with open_audio(path) as handle:
    ...     print(truncation_warning(handle, "cut.wav")[:62])
    cut.wav is truncated: its header announces 1600 bytes of audio
    >>> sf.write(path, np.zeros(800), 8000)
    >>> with open_audio(path) as handle:
    ...     truncation_warning(handle, "cut.wav") is None
    True
    """
    if handle.format == "OGG":
        return _ogg_short_warning(handle, name)
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


def _ogg_short_warning(handle: sf.SoundFile, name: str) -> str | None:
    """The warning for an Ogg stream that decodes to fewer frames than its last page announces.

    The granule position (bytes 6-13 of an ``OggS`` page header, little-endian) of the file's
    last page is the number of samples decoded up to its end (for Opus at 48 kHz and counting
    the pre-skip, bytes 10-11 of the ``OpusHead`` packet). Read here from the last 64 KiB.
    """
    try:
        with open(handle.name, "rb") as f:
            head = f.read(64)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - (1 << 16)))
            tail = f.read()
    except (OSError, TypeError):  # not a named file (a buffer)
        return None
    page = tail.rfind(b"OggS")
    if page < 0 or len(tail) < page + 14:
        return None
    granule = int.from_bytes(tail[page + 6: page + 14], "little", signed=True)
    opus = head.find(b"OpusHead")
    if opus >= 0 and len(head) >= opus + 12:
        granule -= int.from_bytes(head[opus + 10: opus + 12], "little")  # pre-skip
    slack = max(1, handle.samplerate // 100)  # 10 ms: last-page rounding of some encoders
    if granule <= handle.frames + slack:
        return None
    seconds = handle.frames / handle.samplerate
    return (f"{name} is damaged: its Ogg stream announces {granule} frames but only "
            f"{handle.frames} could be decoded (corrupt data near {seconds:.2f} s); separated "
            f"those {handle.frames} frames (re-encode or repair the file for the rest)")


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


def scan_finite(handle: sf.SoundFile, name: str, block: int = 1 << 16) -> None:
    """Raises before any separation if a float file holds NaN/Inf or samples too loud to be
    audio (``MAX_SAMPLE_MAGNITUDE``); otherwise rewinds the file to its start.

    Arguments
    ---------
    handle : soundfile.SoundFile
        The open file.
    name : str
        The file's name in the error.
    block : int
        Frames decoded at a time.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "nan.wav"
    >>> sf.write(path, np.array([0.0, np.nan, 0.0]), 8000, subtype="FLOAT")
    >>> with open_audio(path) as handle:
    ...     scan_finite(handle, "nan.wav")
    Traceback (most recent call last):
    ...
    ValueError: nan.wav contains NaN or Inf samples (first at sample 1, 0.000 s, channel 0); ...
    """
    position = 0
    with _decoding(name, position):
        for data in handle.blocks(blocksize=block, dtype="float32", always_2d=True):
            _check_samples(data, name, position, handle.samplerate)
            position += len(data)
        handle.seek(0)
