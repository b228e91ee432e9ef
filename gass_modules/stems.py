"""Separating a recording into stem files, with an activity report (what ``gass-separate`` writes).

:func:`separate_to_stems` reads an audio file (wav, flac, ogg, ...; any length, rate and channel
count) block by block through a chunked separation (``stream``: e.g.
:func:`gass_modules.chunking.stream_separation` with a model), measures each output's activity
relative to the mixture as the blocks come out and writes the stems at the file's rate and
channel count (:mod:`gass_modules.output_files`: atomic writes under an ``OutputLock``), or
keeps them in memory. Silent outputs are dropped and the others sorted loudest first, unless the
outputs are labelled stems. :class:`Separation` is the report. ``GASSSeparator.separate_to_files``
runs it with the interface's model, chunking and order; the CLI and the ASR front end use that.
``_Spectrogram`` draws the mixture and stems block by block for ``gass-separate --plot``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gass_modules.audio import (
    DEFAULT_THRESHOLD_DB,
    _ActivityMeter,
    _FileReader,
    _open_audio,
    _scan_finite,
    _truncation_warning,
)
from gass_modules.chunking import check_rate
from gass_modules.optional import import_optional
from gass_modules.output_files import OutputLock, _StemWriter, make_folder

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
        read); also logged.

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

    @property
    def num_active(self) -> int:
        """Number of outputs over the activity threshold."""
        return int(sum(self.active))

    @property
    def duration(self) -> float:
        """Input duration in seconds."""
        return self.num_frames / self.sample_rate


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
        :func:`gass_modules.chunking.stream_separation` with a model, its rate, the chunking and
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

    Returns
    -------
    Separation
        Stems (or their files) and the activity report.

    Example
    -------
    >>> import functools, soundfile
    >>> from gass_modules.chunking import stream_separation
    >>> tmp = getfixture("tmp_path")
    >>> soundfile.write(tmp / "mix.wav", 0.5 * torch.randn(16000, 2).numpy(), 16000)
    >>> model = ScaledCopies([0.0, 1.0], sample_rate=8000)  # tests/doubles.py: g_s * mix
    >>> stream = functools.partial(stream_separation, model, model_rate=8000, chunk_seconds=0.5,
    ...                            overlap=0.25, order="aligned")
    >>> result = separate_to_stems(stream, tmp / "mix.wav", model_rate=8000, num_sources=2)
    >>> result.kept, tuple(result.sources.shape), result.sample_rate  # loudest first, silent out
    ([1], (1, 16000, 1), 16000)
    """
    if channels not in ("mix", "each"):
        raise ValueError(f"channels must be 'mix' (downmix) or 'each' (per channel), got "
                         f"{channels!r}")
    if not isinstance(threshold_db, (int, float)) or math.isnan(threshold_db):
        raise ValueError(f"threshold_db must be a number of dB, got {threshold_db!r}")
    path = Path(path)
    protected = frozenset(Path(p).resolve() for p in (path, *protected))
    with _open_audio(path) as handle, contextlib.ExitStack() as stack:
        length, rate, subtype = handle.frames, handle.samplerate, handle.subtype
        if length <= 0:
            raise ValueError(f"expected audio, got 0 samples in {path}")
        rate = check_rate(rate, model_rate)
        notes = [w for w in [_truncation_warning(handle, str(path))] if w]
        for note in notes:
            logger.warning(note)
        if subtype in ("FLOAT", "DOUBLE"):
            _scan_finite(handle, str(path))
        out_channels = 1 if channels == "mix" else handle.channels
        writer = None
        if out_dir is not None:
            make_folder(out_dir)
            stack.enter_context(OutputLock(out_dir, path.stem))
            writer = _StemWriter(Path(out_dir), path.stem, num_sources, rate, out_channels,
                                 subtype, length, overwrite, protected)
        meter = _ActivityMeter(num_sources, rate)
        blocks = []
        try:
            separated = stream(_FileReader(handle, str(path)), sample_rate=rate, rows="channels",
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
            energy_db, active, seconds = meter.result(threshold_db)
            if by_index:  # labelled stems keep their index
                kept = list(range(num_sources))
            else:
                kept = sorted(range(num_sources), key=lambda s: (not active[s], -energy_db[s]))
            if not keep_silent:
                kept = [s for s in kept if active[s]]
            files = writer.finish(kept, by_index=by_index) if writer is not None else []
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    sources = None if writer is not None else torch.cat(blocks, dim=1)[..., kept]
    return Separation(sample_rate=rate, num_frames=length, channels=out_channels,
                      energy_db=energy_db, active=active, active_seconds=seconds, kept=kept,
                      sources=sources, files=files,
                      clipped=writer.clipped if writer else [0] * num_sources,
                      warnings=notes)


PLOT_COLUMNS = 800  # time columns of the spectrogram image, whatever the input's length


class _Spectrogram:
    """Power spectrogram of the mixture and every output, accumulated block by block.

    Columns average the STFT frames (32 ms Hann, half overlap) whose centre falls in them, so the
    image has at most ``PLOT_COLUMNS`` columns and memory does not grow with the input length.
    """

    def __init__(self, num_frames: int, sample_rate: int, num_sources: int) -> None:
        self.sample_rate = sample_rate
        self.n_fft = 2 ** max(6, round(math.log2(0.032 * sample_rate)))
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


__all__ = ["BlockStream", "Separation", "separate_to_stems"]
