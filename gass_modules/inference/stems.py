"""Separating a recording into stem files, with an activity report (what ``gass-separate`` writes).

:func:`separate_to_stems` reads an audio file (wav, flac, ogg, ...; any length, rate and channel
count) block by block through a chunked separation (``stream``: e.g.
:func:`gass_modules.inference.chunking.stream_separation` with a model), measures each output's
activity
relative to the mixture as the blocks come out and writes the stems at the file's rate and
channel count (:mod:`gass_modules.inference.output_files`: atomic writes under an ``OutputLock``),
or
keeps them in memory. Silent outputs are dropped and the others sorted loudest first, unless the
outputs are labelled stems. :class:`Separation` is the report. ``GASSSeparator.separate_to_files``
runs it with the interface's model, chunking and order; the CLI and the ASR front end use that.
``Spectrogram`` draws the mixture and stems block by block for ``gass-separate --plot``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import torch
from tqdm.auto import tqdm

from gass_modules.audio import (
    DEFAULT_THRESHOLD_DB,
    ActivityMeter,
    FileReader,
    open_audio,
    scan_finite,
    truncation_warning,
)
from gass_modules.inference.chunking import check_rate
from gass_modules.inference.output_files import (
    OutputLock,
    StemWriter,
    make_folder,
    reported_stems,
    temporary_file,
)
from gass_modules.optional import import_optional

logger = logging.getLogger(__name__)

#: ``stream(reader, *, sample_rate, rows, downmix, name)`` -> ``(mix [C, n], sources [C, n, S])``
#: blocks: a chunked separation with its model, chunking and order bound.
BlockStream = Callable[..., Iterator[tuple[torch.Tensor, torch.Tensor]]]


@dataclass
class Separation:
    """What :func:`separate_to_stems` (``GASSSeparator.separate_to_files``) returns: the kept
    stems and the activity report.

    Arguments
    ---------
    sample_rate : int
        The input file's rate; stems are at this rate.
    num_frames : int
        Input length in samples.
    channels : int
        Channels of each stem (1 when the input was downmixed).
    energy_db : list of float
        Per model output, energy relative to the mixture in dB (``-inf`` when silent).
    active : list of bool
        Per model output, ``energy_db >= threshold_db`` (all False for a silent mixture).
    active_seconds : list of float
        Per model output, seconds of 0.1 s frames whose power is over ``threshold_db`` relative
        to the mixture's mean power.
    kept : list of int
        Model output indices of the stems, in stem order (loudest first).
    sources : torch.Tensor, optional
        ``[C, T, K]`` kept stems, when no ``out_dir`` was given.
    files : list of pathlib.Path
        The written stems ``<name>_s1.wav ...`` (``kept[k]`` is in ``files[k]``).
    clipped : list of int
        Per model output, samples clipped to [-1, 1] when written in an integer encoding
        (PCM, u-law, A-law).
    warnings : list of str
        What the user should know about the input (e.g. a truncated file: how many frames were
        read; a model whose band is narrower than the input's, :func:`bandwidth_note`); also
        logged.
    residual : torch.Tensor, optional
        ``[C, T]`` the mixture minus the sum of the kept stems, when asked for without
        ``out_dir``.
    residual_file : pathlib.Path, optional
        ``<name>_residual.wav``, when asked for with ``out_dir``.

    Example
    -------
    >>> r = Separation(8000, 16000, 1, [-3.0, -40.0], [True, False], [2.0, 0.0], [0])
    >>> r.num_active, r.duration
    (1, 2.0)
    """

    sample_rate: int
    num_frames: int
    channels: int
    energy_db: list[float]
    active: list[bool]
    active_seconds: list[float]
    kept: list[int]
    sources: torch.Tensor | None = None
    files: list[Path] = field(default_factory=list)
    clipped: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    residual: torch.Tensor | None = None
    residual_file: Path | None = None

    @property
    def num_active(self) -> int:
        """Number of outputs over the activity threshold."""
        return int(sum(self.active))

    @property
    def duration(self) -> float:
        """Input duration in seconds."""
        return self.num_frames / self.sample_rate


def bandwidth_note(model_rate: int, input_rate: int, residual: bool = False) -> str | None:
    """What a user should know when the model's band is narrower than the input's, or None.

    A model at ``model_rate`` separates content up to ``model_rate / 2``; the stems of an input
    at a higher rate (resampled in and out) hold nothing above it, and that content stays in the
    residual (the mixture minus the stems, ``residual=True``).

    Arguments
    ---------
    model_rate : int
        The model's rate (Hz).
    input_rate : int
        The input's rate (Hz).
    residual : bool
        Whether the residual is written (the note then says where the content is).

    Returns
    -------
    str or None
        The note, or None when the model covers the input's band.

    Example
    -------
    >>> print(bandwidth_note(8000, 44100, residual=True))
    the model separates up to 4 kHz (it runs at 8000 Hz, the input at 44100 Hz); content ...
    >>> bandwidth_note(16000, 16000) is None
    True
    """
    if model_rate >= input_rate:
        return None
    note = (f"the model separates up to {model_rate / 2000:g} kHz (it runs at {model_rate} Hz, "
            f"the input at {input_rate} Hz); content above it goes to the residual")
    if residual:
        return note + " (<name>_residual.wav)"
    return note + (", which is not written (residual=True, gass-separate --residual, writes "
                   "<name>_residual.wav)")


def separate_to_stems(
    stream: BlockStream,
    path: str | os.PathLike,
    *,
    model_rate: int,
    num_sources: int,
    by_index: bool = False,
    out_dir: str | os.PathLike | None = None,
    channels: str = "mix",
    keep_silent: bool = False,
    threshold_db: float = DEFAULT_THRESHOLD_DB,
    overwrite: bool = False,
    on_block: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
    protected: Iterable[str | os.PathLike] = (),
    residual: bool = False,
) -> Separation:
    """Separates an audio file into stems at the file's rate, with an activity report.

    The file is read in blocks; with ``out_dir`` the stems are written as they are computed
    (``<name>_s1.wav``, ... at the file's rate, in its sample format when WAV has it, FLOAT for
    lossy codecs), so memory does not grow with the length. Silent outputs
    (``energy_db < threshold_db``) are dropped unless ``keep_silent``; stems are ordered loudest
    first, except with ``by_index``, where output ``k`` is always written as
    ``<name>_s{k+1}.wav`` (labelled stems keep their index). ``GASSSeparator.separate_to_files``
    documents the options from the user's side.

    Arguments
    ---------
    stream : callable
        ``stream(reader, sample_rate=rate, rows="channels", downmix=..., name=...)``: the chunked
        separation of a reader (``length``, ``read(start, stop) -> [C, n]``) at the file's
        ``rate``, yielding ``(mix [C, n], sources [C, n, S])`` blocks in model output order; e.g.
        :func:`gass_modules.inference.chunking.stream_separation` with a model, its rate, the
        chunking and
        the order bound (``functools.partial``).
    path : str or os.PathLike
        The input file.
    model_rate : int
        The model's rate (Hz); file rates whose resampling to it would be too costly are refused.
    num_sources : int
        The model's number of outputs ``S``.
    by_index : bool
        Labelled stems (``order: fixed``): keep the model's output order and indices.
    out_dir : str or os.PathLike, optional
        Write the stems there; otherwise they are returned in ``Separation.sources``.
    channels : str
        ``"mix"``: downmix to mono and separate once; ``"each"``: separate every channel.
    keep_silent : bool
        Keep all ``S`` outputs, silent ones included.
    threshold_db : float
        Activity threshold relative to the mixture energy (dB).
    overwrite : bool
        Replace existing ``<name>_s*.wav`` in ``out_dir``; otherwise ``FileExistsError``.
    on_block : callable, optional
        Called with every finished block ``(mix [C, n], sources [C, n, S])`` in model output
        order, on the CPU.
    protected : iterable of paths
        Files never written over; ``path`` itself always is.
    residual : bool
        Also give the residual, the mixture minus the sum of the kept stems (as demucs'
        ``no_<stem>``): ``<name>_residual.wav`` in ``out_dir`` (``Separation.residual_file``)
        or ``Separation.residual``. Stems plus residual give the input back (up to the output
        encoding's rounding): what the model put in no output, content above its band
        (:func:`bandwidth_note`) and the dropped silent outputs.

    Returns
    -------
    Separation
        Stems (or their files) and the activity report.

    Example
    -------
    >>> import functools, soundfile
    >>> from gass_modules.inference.chunking import stream_separation
    >>> tmp = getfixture("tmp_path")
    >>> soundfile.write(tmp / "mix.wav", 0.5 * torch.randn(16000, 2).numpy(), 16000)
    >>> model = ScaledCopies([0.0, 1.0], sample_rate=8000)  # tests/doubles.py: g_s * mix
    >>> stream = functools.partial(stream_separation, model, model_rate=8000, chunk_seconds=0.5,
    ...                            overlap=0.25, order="aligned")
    >>> result = separate_to_stems(stream, tmp / "mix.wav", model_rate=8000, num_sources=2)
    >>> result.kept, tuple(result.sources.shape), result.sample_rate  # loudest first, silent out
    ([1], (1, 16000, 1), 16000)
    >>> result = separate_to_stems(stream, tmp / "mix.wav", model_rate=8000, num_sources=2,
    ...                            residual=True)
    >>> mix = torch.from_numpy(soundfile.read(tmp / "mix.wav", dtype="float32")[0].mean(1))
    >>> torch.allclose(result.sources[0, :, 0] + result.residual[0], mix, atol=1e-6)
    True
    >>> result.warnings[-1][:40]
    'the model separates up to 4 kHz (it runs'
    """
    if channels not in ("mix", "each"):
        raise ValueError(f"channels must be 'mix' (downmix) or 'each' (per channel), got "
                         f"{channels!r}")
    if not isinstance(threshold_db, (int, float)) or math.isnan(threshold_db):
        raise ValueError(f"threshold_db must be a number of dB, got {threshold_db!r}")
    path = Path(path)
    protected = frozenset(Path(p).resolve() for p in (path, *protected))
    with open_audio(path) as handle, contextlib.ExitStack() as stack:
        length, rate, subtype = handle.frames, handle.samplerate, handle.subtype
        if length <= 0:
            raise ValueError(f"expected audio, got 0 samples in {path}")
        rate = check_rate(rate, model_rate)
        notes = [w for w in [truncation_warning(handle, str(path))] if w]
        for note in notes:
            logger.warning(note)
        band = bandwidth_note(model_rate, rate, residual)
        if band:  # information, not a fault: in the report (gass-separate prints it once a run)
            logger.info(band)
            notes.append(band)
        if subtype in ("FLOAT", "DOUBLE"):
            scan_finite(handle, str(path))
        out_channels = 1 if channels == "mix" else handle.channels
        writer = residual_writer = raw = raw_path = None
        if out_dir is not None:
            make_folder(out_dir)
            stack.enter_context(OutputLock(out_dir, path.stem))
            writer = StemWriter(Path(out_dir), path.stem, num_sources, rate, out_channels,
                                 subtype, length, overwrite, protected)
            if residual:
                try:
                    residual_writer = StemWriter(Path(out_dir), path.stem, 1, rate,
                                                  out_channels, subtype, length, overwrite,
                                                  protected, labels=["residual"])
                    # mixture - all outputs, in float: the silent outputs are added back at the
                    # end, when activity tells which outputs are dropped
                    raw_path = temporary_file(Path(out_dir), f".{path.stem}_residual_raw.",
                                               ".partial.wav")
                    raw = sf.SoundFile(raw_path, "w", rate, out_channels, "FLOAT",
                                       format="RF64")
                except BaseException:
                    writer.abort()
                    if residual_writer is not None:
                        residual_writer.abort()
                    if raw_path is not None:
                        raw_path.unlink(missing_ok=True)
                    raise
            elif overwrite:  # a residual an earlier run wrote would no longer match
                stale = Path(out_dir) / f"{path.stem}_residual.wav"  # a symlink: the link goes
                if stale.resolve() in reported_stems(Path(out_dir) / f"{path.stem}.json") and (
                        stale.resolve() not in protected):
                    stale.unlink(missing_ok=True)
        meter = ActivityMeter(num_sources, rate)
        blocks, residual_blocks = [], []
        residual_file = None
        try:
            separated = stream(FileReader(handle, str(path)), sample_rate=rate, rows="channels",
                               downmix=channels == "mix", name=path.name)
            for mix_block, est in separated:
                mix_block, est = mix_block.cpu(), est.cpu()
                meter.update(mix_block, est)
                if on_block is not None:
                    on_block(mix_block, est)
                if writer is not None:
                    writer.write(est)
                else:
                    blocks.append(est)
                if residual:
                    rest = mix_block - est.sum(-1)  # [C, n]: what no output holds
                    if raw is not None:
                        raw.write(rest.T.numpy())
                    else:
                        residual_blocks.append(rest)
            energy_db, active, seconds = meter.result(threshold_db)
            if by_index:  # labelled stems keep their index
                kept = list(range(num_sources))
            else:
                kept = sorted(range(num_sources), key=lambda s: (not active[s], -energy_db[s]))
            if not keep_silent:
                kept = [s for s in kept if active[s]]
            if raw is not None:
                raw.close()
                dropped = [writer.parts[s] for s in range(num_sources) if s not in kept]
                for handle in writer.handles:
                    handle.close()  # the dropped outputs are read back below
                residual_file = _write_residual(raw_path, dropped, residual_writer)
            files = writer.finish(kept, by_index=by_index) if writer is not None else []
        except BaseException:
            if writer is not None:
                writer.abort()
            if residual_writer is not None:
                residual_writer.abort()
            if raw is not None:
                raw.close()
                raw_path.unlink(missing_ok=True)
            raise
    sources = None if writer is not None else torch.cat(blocks, dim=1)[..., kept]
    residual_signal = None
    if residual and writer is None:
        dropped = [s for s in range(num_sources) if s not in kept]
        residual_signal = torch.cat(residual_blocks, dim=1)  # [C, T]
        if dropped:
            residual_signal = residual_signal + torch.cat(blocks, dim=1)[..., dropped].sum(-1)
    return Separation(sample_rate=rate, num_frames=length, channels=out_channels,
                      energy_db=energy_db, active=active, active_seconds=seconds, kept=kept,
                      sources=sources, files=files,
                      clipped=writer.clipped if writer else [0] * num_sources,
                      warnings=notes, residual=residual_signal, residual_file=residual_file)


PROGRESS_SECONDS = 10.0  # without a terminal: one progress line at most this often
BAR_DELAY = 1.0  # on a terminal: a file still running after this many seconds gets a bar


class FileProgress:
    """Progress of one file's separation, fed by ``on_block``: a tqdm line on a terminal (kept
    when done: chunks, ETA), plain lines at most every ``PROGRESS_SECONDS`` otherwise (a log gets
    lines, not bar redraws). Nothing is shown for a file done within the first interval.

    Arguments
    ---------
    name : str
        The file's name, shown on each line.
    frames : int
        Its length in frames.
    rate : int
        Its sample rate (Hz).
    chunks : int
        The number of chunks its separation runs.

    Example
    -------
    >>> progress = FileProgress("a.wav", 16000, 8000, 2)
    >>> progress.update(torch.zeros(1, 8000), torch.zeros(1, 8000, 4)); progress.close()
    >>> progress.done, progress.count
    (8000, 1)
    """

    def __init__(self, name: str, frames: int, rate: int, chunks: int) -> None:
        self.name, self.frames, self.rate, self.chunks = name, frames, rate, chunks
        self.done = self.count = 0
        self.start = self.last = time.monotonic()
        self.bar = None
        self.terminal = sys.stderr.isatty()

    def update(self, mix: torch.Tensor, est: torch.Tensor) -> None:
        """Counts a finished block ``mix [C, n]`` (one chunk)."""
        self.done += mix.shape[-1]
        self.count += 1
        now = time.monotonic()
        if self.terminal:
            if self.bar is None and now - self.start >= BAR_DELAY and self.count < self.chunks:
                self.bar = tqdm(total=self.chunks, desc=self.name, unit="chunk", leave=True,
                                initial=self.count - 1, file=sys.stderr)
            if self.bar is not None:
                self.bar.update(1)
            return
        if now - self.last >= PROGRESS_SECONDS and self.count < self.chunks:
            self.last = now
            elapsed = now - self.start
            eta = elapsed * (self.frames - self.done) / max(self.done, 1)
            print(f"gass-separate: {self.name}: {100 * self.done / self.frames:.0f}% "
                  f"({self.done / self.rate:.1f} of {self.frames / self.rate:.1f} s), chunk "
                  f"{self.count}/{self.chunks}, ETA {eta:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Ends the terminal line."""
        if self.bar is not None:
            self.bar.close()


PLOT_COLUMNS = 800  # time columns of the spectrogram image, whatever the input's length
PLOT_MAX_FFT = 1 << 14  # 32 ms up to 384 kHz; a header's 2 GHz would want a 1-GB window


class Spectrogram:
    """Power spectrogram of the mixture and every output, accumulated block by block.

    Columns average the STFT frames (32 ms Hann, at most ``PLOT_MAX_FFT`` samples, half
    overlap) whose centre falls in them, so the
    image has at most ``PLOT_COLUMNS`` columns and memory does not grow with the input length.
    :meth:`save` draws it (``gass-separate --plot``; needs the ``plots`` extra).

    Arguments
    ---------
    num_frames : int
        The input's length in samples.
    sample_rate : int
        Its sample rate in Hz.
    num_sources : int
        ``S``, the number of outputs.

    Example
    -------
    >>> spectrogram = Spectrogram(num_frames=1600, sample_rate=8000, num_sources=2)
    >>> spectrogram.n_fft, spectrogram.power.shape  # [S + 1, F, columns]
    (256, torch.Size([3, 129, 13]))
    >>> mix = torch.randn(1, 1600)  # [C, n]
    >>> spectrogram.update(mix, torch.stack([mix, 0 * mix], -1))  # est [C, n, S]
    >>> torch.equal(spectrogram.power[0], spectrogram.power[1]), spectrogram.power[2].max().item()
    (True, 0.0)
    """

    def __init__(self, num_frames: int, sample_rate: int, num_sources: int) -> None:
        self.sample_rate = sample_rate
        self.n_fft = min(PLOT_MAX_FFT, 2 ** max(6, round(math.log2(0.032 * sample_rate))))
        self.hop = self.n_fft // 2
        self.width = max(self.hop, math.ceil(num_frames / PLOT_COLUMNS))  # samples a column
        self.columns = max(1, math.ceil(num_frames / self.width))
        self.power = torch.zeros(num_sources + 1, self.n_fft // 2 + 1, self.columns)
        self.count = torch.zeros(self.columns)
        self.window = torch.hann_window(self.n_fft)
        self.offset = 0

    def update(self, mix: torch.Tensor, est: torch.Tensor) -> None:
        """Adds a block ``mix [C, n]``, ``est [C, n, S]``."""
        signals = torch.cat([mix.unsqueeze(-1), est], dim=-1)  # [C, n, S + 1]
        channels, length, count = signals.shape
        if length >= self.n_fft:
            flat = signals.permute(2, 0, 1).reshape(count * channels, length)
            spec = torch.stft(flat, self.n_fft, self.hop, window=self.window, center=False,
                              return_complex=True).abs().pow(2)  # [(S+1)C, F, N]
            spec = spec.view(count, channels, *spec.shape[1:]).mean(1)  # [S+1, F, N]
            centres = self.offset + self.n_fft // 2 + self.hop * torch.arange(spec.shape[-1])
            column = (centres // self.width).clamp(max=self.columns - 1)  # [N]
            self.power.index_add_(2, column, spec)
            self.count.index_add_(0, column, torch.ones(spec.shape[-1]))
        self.offset += length

    def save(self, path: Path, result: Separation, title: str) -> None:
        """Draws the mixture and the kept stems and writes a PNG."""
        # no pyplot: no global state, no display needed
        Figure = import_optional("matplotlib.figure", "plots", "--plot").Figure

        mean = self.power / self.count.clamp(min=1)  # [S+1, F, cols]
        db = 10 * torch.log10(mean + 1e-12)
        top = float(db.max())
        rows = [(0, "mixture")] + [
            (s + 1, f"s{k + 1}: output {s + 1}, {result.energy_db[s]:.1f} dB")
            for k, s in enumerate(result.kept)]
        fig = Figure(figsize=(10, 1.6 * len(rows) + 0.6))
        axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
        extent = (0.0, result.duration, 0.0, self.sample_rate / 2000)
        for ax, (index, label) in zip(axes, rows):
            image = ax.imshow(db[index].numpy(), origin="lower", aspect="auto", extent=extent,
                              vmin=top - 80, vmax=top, cmap="magma")
            ax.set_ylabel("kHz")
            ax.set_title(label, fontsize=9, loc="left")
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(title, fontsize=10)
        fig.colorbar(image, ax=list(axes), label="dB")
        fig.savefig(path, dpi=90)

def _write_residual(raw_path: Path, dropped: list[Path], out: StemWriter,
                    block: int = 1 << 16) -> Path:
    """Writes ``<name>_residual.wav``: the float file of mixture minus all outputs plus the
    dropped outputs' files (so that it is the mixture minus the kept stems), block by block;
    removes the float file."""
    readers = [sf.SoundFile(p) for p in (raw_path, *dropped)]
    try:
        while True:
            parts = [r.read(block, dtype="float32", always_2d=True) for r in readers]  # [n, C]
            if len(parts[0]) == 0:
                break
            total = sum(parts[1:], parts[0])
            out.write(torch.from_numpy(total.T.copy()).unsqueeze(-1))  # [C, n, 1]
    finally:
        for reader in readers:
            reader.close()
        raw_path.unlink(missing_ok=True)
    return out.finish([0], by_index=True)[0]


__all__ = ["BlockStream", "FileProgress", "Separation", "Spectrogram", "bandwidth_note",
           "separate_to_stems"]
