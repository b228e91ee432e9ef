"""Chunked separation of signals of any length and rate, with any separator.

:func:`stream_separation` (and :func:`separate_chunked`, which collects its blocks) runs any
separator callable ``[B, T] -> [B, T, S]`` over a tensor or a reader chunk by chunk, the way
demucs' ``apply_model`` and asteroid's ``LambdaOverlapAdd`` do: ``GASSSeparator`` (tensors and
files), ``SeparationBrain``'s evaluation of whole benchmark recordings and the ASR front end use
it. Memory is bounded by one chunk.

Chunk geometry
--------------
Let ``f_in`` be the signal's rate and ``f_m`` the model's, ``g = gcd(f_in, f_m)``. The signal is
cut into chunks of ``L`` input samples that overlap by ``O`` samples (hop ``H = L - O``), ``L`` and
``O`` multiples of ``f_in / g`` so every chunk starts on a sample of both rates. Each chunk is read
with a margin of ``M`` input samples on both sides, resampled to ``f_m`` (torchaudio's windowed
sinc), separated, resampled back to ``f_in`` and cropped to its core. ``M`` covers the support of
both resampling kernels, so for a separator that acts sample by sample the chunked result equals
the whole-signal result: chunking only changes what a real model sees, never the resampling.

Source order (``order``)
------------------------
``"aligned"`` (models trained with PIT, whose output order is arbitrary): each chunk's sources are
permuted to match the previous chunk on the ``O`` shared samples, by the PIT criterion of training
(``pairwise_log_mse`` + ``best_permutation``), so a source stays on one output from the first
chunk to the last; the outputs come in the order of the first chunk. When the rows are the
channels of one recording (``rows="channels"``), each channel's sources are first matched to
channel 0's by absolute cosine similarity (a source's level differs between channels); an order
must win by 1e-4 to replace the model's own. ``"fixed"`` (labelled stems, e.g. DnR or MUSDB18
trained without permutation): output ``k`` is stem ``k`` in every chunk and nothing is permuted.
Chunks are then overlap-added with complementary Hann ramps (``w_up[n] + w_down[n] = 1``).

The two words and their checks are :mod:`gass_modules.order`'s, the one owner of this vocabulary.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from tqdm.auto import tqdm

from gass_modules.audio import MAX_RATE_PRODUCT, ArrayReader, cached_resampler
from gass_modules.losses import best_permutation, pairwise_log_mse, permute
from gass_modules.model_folder.folder import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP, check_chunking
from gass_modules.order import check_order

__all__ = ["ROWS", "ChunkPlan", "Reader", "check_rate", "match_channels", "match_chunk",
           "plan_chunks", "separate_chunked", "stream_separation"]

ROWS = ("items", "channels")  # independent mixtures, or the channels of one recording
_TIE_MARGIN = 1e-4  # cosine similarity by which another channel order must win


@runtime_checkable
class Reader(Protocol):
    """What :func:`stream_separation` reads from: ``length`` samples of ``C`` rows.

    ``read(start, stop)`` returns samples ``[start, stop)`` as ``[C, stop - start]``, zeros
    outside ``[0, length)``. Calls come in increasing ``start`` order, so a file reader can keep
    only one chunk in memory (``gass_modules.audio.FileReader``); a tensor is wrapped in an
    in-memory reader.

    Example
    -------
    >>> class Ramp:  # a signal computed on demand, never held in memory
    ...     length = 10**9
    ...     def read(self, start, stop):
    ...         t = torch.arange(start, stop, dtype=torch.float32)
    ...         return (torch.sin(t / 100) * ((t >= 0) & (t < self.length)))[None]  # [1, n]
    >>> isinstance(Ramp(), Reader), Ramp().read(-2, 2).shape
    (True, torch.Size([1, 4]))
    """

    length: int

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` as ``[C, stop - start]``."""
        ...


def check_rate(sample_rate: object, model_rate: int) -> int:
    """Validates an input rate; rates whose resampling kernel would be huge are refused.

    Arguments
    ---------
    sample_rate : object
        The input's rate in Hz.
    model_rate : int
        The separator's rate in Hz.

    Returns
    -------
    int
        ``sample_rate``.

    Example
    -------
    >>> check_rate(44100, 16000)
    44100
    >>> check_rate(44101, 16000)
    Traceback (most recent call last):
    ...
    ValueError: cannot resample 44101 Hz to the model's 16000 Hz exactly ...
    """
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    g = math.gcd(sample_rate, model_rate)
    if (sample_rate // g) * (model_rate // g) > MAX_RATE_PRODUCT:
        raise ValueError(f"cannot resample {sample_rate} Hz to the model's {model_rate} Hz "
                         f"exactly (gcd {g} Hz: the sinc kernel would have billions of taps); "
                         "convert the file to a standard rate (e.g. 44100 or 48000 Hz) first")
    return sample_rate


@dataclass(frozen=True)
class ChunkPlan:
    """Chunk geometry in input samples (see the module docstring).

    Arguments
    ---------
    chunk : int
        ``L``, the chunk length.
    overlap : int
        ``O``, samples shared by consecutive chunks.
    margin : int
        ``M``, samples read on both sides of a chunk for the resampling kernels (0 without
        resampling).
    count : int
        Number of chunks.
    last : int
        Core length of the last chunk.

    Example
    -------
    >>> plan = plan_chunks(24000, 8000, 8000, chunk_seconds=1.0, overlap=0.25)
    >>> plan.count, plan.hop, plan.margin
    (4, 6000, 0)
    """

    chunk: int
    overlap: int
    margin: int
    count: int
    last: int

    @property
    def hop(self) -> int:
        """``H = L - O``."""
        return self.chunk - self.overlap


def plan_chunks(length: int, sample_rate: int, model_rate: int, chunk_seconds: float,
                overlap: float) -> ChunkPlan:
    """Chunk geometry for ``length`` samples at ``sample_rate`` (module docstring).

    Chunks are rounded up to whole common ticks of both rates and never longer than the input.

    Arguments
    ---------
    length : int
        Input samples ``N >= 1``.
    sample_rate : int
        The input's rate (Hz).
    model_rate : int
        The separator's rate (Hz).
    chunk_seconds : float
        Requested chunk length (s).
    overlap : float
        Fraction of a chunk shared with the next one, in (0, 0.5].

    Returns
    -------
    ChunkPlan
        The geometry.

    Example
    -------
    >>> plan_chunks(100, 8000, 8000, chunk_seconds=10.0, overlap=0.25).count  # one chunk
    1
    >>> plan_chunks(44100, 44100, 16000, 0.5, 0.25).margin > 0  # resampling margins
    True
    """
    check_chunking(chunk_seconds, overlap)
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"expected at least 1 sample, got length {length!r}")
    check_rate(sample_rate, model_rate)  # before the resampling kernels (GB for 2**31 - 1 Hz)
    g = math.gcd(sample_rate, model_rate)
    unit, unit_model = sample_rate // g, model_rate // g  # one "common" tick, both rates

    def up(n: float) -> int:
        return max(unit, math.ceil(n / unit) * unit)

    chunk = up(min(chunk_seconds * sample_rate, length))  # never longer than the input
    chunk = max(chunk, 2 * unit)
    ov = min(up(overlap * chunk), (chunk // 2) // unit * unit)
    margin = 0
    if sample_rate != model_rate:
        forward = cached_resampler(sample_rate, model_rate, "cpu")
        back = cached_resampler(model_rate, sample_rate, "cpu")
        # output at p depends on input within width + unit of p, in the kernel's own rate
        need = forward.width + unit + math.ceil((back.width + unit_model) * unit / unit_model)
        margin = up(need + 1)
    if length <= chunk:
        return ChunkPlan(chunk, ov, margin, 1, up(length))
    hop = chunk - ov
    count = math.ceil((length - ov) / hop)
    return ChunkPlan(chunk, ov, margin, count, up(length - (count - 1) * hop))


def match_chunk(reference: torch.Tensor, est: torch.Tensor, mix: torch.Tensor,
                joint: bool) -> torch.Tensor:
    """The permutation ``[C, S]`` that best matches ``est`` to ``reference`` (``[C, n, S]``).

    The criterion is training's PIT log-MSE with the reference as target. ``joint``: one
    permutation for all rows (costs summed: channels of one recording), else one per row
    (independent batch items). Over silence every order scores the same and the first
    (identity) is kept: with no signal there is nothing to match.

    Arguments
    ---------
    reference : torch.Tensor
        ``[C, n, S]`` the previous chunk's sources on the shared samples.
    est : torch.Tensor
        ``[C, n, S]`` this chunk's sources on the same samples.
    mix : torch.Tensor
        ``[C, n]`` the mixture on those samples (the loss's threshold).
    joint : bool
        One permutation for all rows (channels of one recording) instead of one per row.

    Returns
    -------
    torch.Tensor
        ``[C, S]`` permutation; ``losses.permute(est, perm)`` reorders ``est``.

    Example
    -------
    >>> ref = torch.randn(1, 100, 2)
    >>> match_chunk(ref, ref.flip(-1), ref.sum(-1), joint=False).tolist()
    [[1, 0]]
    """
    cost = pairwise_log_mse(reference, est, mixtures=mix)  # [C, S, S]
    if joint:
        return best_permutation(cost.sum(0, keepdim=True)).expand(est.shape[0], -1)
    return best_permutation(cost)  # [C, S]


def match_channels(est: torch.Tensor) -> torch.Tensor:
    """The permutation ``[C, S]`` that matches each channel's sources to channel 0's.

    A source's image differs in level (panning) and polarity between channels, so the
    criterion is scale-invariant: the absolute cosine similarity of the estimates over the
    chunk, ``|<r_i, e_j>| / (|r_i| |e_j|)``, maximised over permutations.

    Arguments
    ---------
    est : torch.Tensor
        ``[C, n, S]`` the sources of each channel of one chunk.

    Returns
    -------
    torch.Tensor
        ``[C, S]`` permutation (identity for channel 0).

    Example
    -------
    >>> left = torch.randn(1, 100, 2)
    >>> est = torch.cat([left, -0.5 * left.flip(-1)])  # channel 1: swapped, scaled, inverted
    >>> match_channels(est).tolist()
    [[0, 1], [1, 0]]
    """
    unit = est / est.norm(dim=1, keepdim=True).clamp(min=1e-12)  # [C, n, S]
    similarity = torch.einsum("ni,cnj->cij", unit[0], unit).abs()  # [C, S, S]
    # keep the model's order unless another is better by a margin: channels whose estimates
    # are indistinguishable (e.g. scaled copies) would otherwise be permuted by float noise
    similarity = similarity + _TIE_MARGIN * torch.eye(est.shape[-1], device=est.device)
    return best_permutation(-similarity)


def _separate_chunk(separator: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    sample_rate: int, model_rate: int) -> torch.Tensor:
    """Resample ``x [C, n]`` to the model rate, separate, resample back: ``[C, n, S]`` float32
    on ``x``'s device."""
    if sample_rate != model_rate:
        x = cached_resampler(sample_rate, model_rate, str(x.device))(x)  # [C, n_m]
    est = separator(x)  # [C, n_m, S]
    if not isinstance(est, torch.Tensor) or est.dim() != 3 or est.shape[:2] != x.shape:
        shape = tuple(est.shape) if isinstance(est, torch.Tensor) else type(est).__name__
        raise RuntimeError(f"the separator returned {shape} for input {tuple(x.shape)}; "
                           "expected [B, T, S] with the input's B and T (docs/"
                           "architecture.md, 'Separator contract')")
    est = est.float()
    if not torch.isfinite(est).all():
        raise RuntimeError("the separator returned NaN or Inf (input was finite); try "
                           "precision fp32 or check the checkpoint")
    if sample_rate != model_rate:
        est = cached_resampler(model_rate, sample_rate, str(est.device))(
            est.transpose(1, 2).contiguous()).transpose(1, 2)  # [C, n, S]
    return est


def stream_separation(
    separator: Callable[[torch.Tensor], torch.Tensor],
    signal: torch.Tensor | Reader,
    *,
    sample_rate: int,
    model_rate: int | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    overlap: float = DEFAULT_OVERLAP,
    order: str = "aligned",
    rows: str = "items",
    downmix: bool = False,
    device: str | torch.device | None = None,
    progress: bool = False,
    name: str = "signal",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Separates a signal chunk by chunk and yields its finished blocks in time order.

    Memory is one chunk: ``signal`` is read a chunk at a time (a file reader never holds more)
    and each block is yielded as soon as the next chunk's overlap is added to it. Gradients flow
    through the separator and the overlap-add when they are enabled (e.g. to train through a
    front end); run it under ``torch.no_grad()`` for inference, as ``GASSSeparator`` does.

    Arguments
    ---------
    separator : callable
        ``[B, T] -> [B, T, S]`` at ``model_rate`` (docs/architecture.md, separator contract):
        a separator module, a ``GASSSeparator``'s model, or any function.
    signal : torch.Tensor or Reader
        ``[C, N]`` tensor, or a :class:`Reader` of ``C`` rows.
    sample_rate : int
        The signal's rate (Hz); it is resampled to ``model_rate`` and back chunk by chunk.
    model_rate : int, optional
        The separator's rate (default: its ``sample_rate`` attribute, else ``sample_rate``).
    chunk_seconds : float
        Chunk length in seconds (chunks never exceed the signal).
    overlap : float
        Fraction of a chunk shared with the next one, in (0, 0.5].
    order : str
        ``"aligned"`` or ``"fixed"`` (module docstring).
    rows : str
        ``"items"``: the rows are independent mixtures (each its own source order);
        ``"channels"``: the rows are the channels of one recording (one source order, channels
        matched to channel 0).
    downmix : bool
        Average the rows into one before separating (a mono separation of a recording).
    device : str or torch.device, optional
        Where chunks are separated (default: the tensor's device, else the CPU).
    progress : bool
        Show a tqdm bar over chunks.
    name : str
        What the signal is, for the progress bar and error messages.

    Returns
    -------
    iterator of (torch.Tensor, torch.Tensor)
        ``(mix [C', n], sources [C', n, S])`` blocks on ``device`` (``C' = 1`` with ``downmix``),
        the sources float32 at ``sample_rate``; their lengths add up to ``N``.

    Example
    -------
    >>> gains = torch.tensor([0.25, 0.75])
    >>> def separator(x):  # [B, T] -> [B, T, 2], an oracle stand-in
    ...     return x.unsqueeze(-1) * gains
    >>> mix = torch.randn(2, 20000)
    >>> blocks = list(stream_separation(separator, mix, sample_rate=8000, chunk_seconds=1.0))
    >>> [tuple(est.shape) for _, est in blocks]
    [(2, 6000, 2), (2, 6000, 2), (2, 8000, 2)]
    """
    if not callable(separator):
        raise TypeError(f"separator must be callable [B, T] -> [B, T, S], got "
                        f"{type(separator).__name__}")
    if isinstance(signal, torch.Tensor):
        if signal.dim() != 2 or signal.shape[-1] < 1 or not signal.is_floating_point():
            raise ValueError(f"expected a float signal [C, N] with N >= 1, got "
                             f"{signal.dtype} {tuple(signal.shape)}; add a row axis with "
                             "x.unsqueeze(0) for one mixture")
        if device is None:
            device = signal.device
        reader = ArrayReader(signal.float())
    elif callable(getattr(signal, "read", None)) and isinstance(getattr(signal, "length", None),
                                                                 int):
        reader = signal
    else:
        raise TypeError(f"signal must be a [C, N] tensor or a reader with length and "
                        f"read(start, stop), got {type(signal).__name__}")
    if model_rate is None:
        model_rate = getattr(separator, "sample_rate", sample_rate)
    check_rate(model_rate, model_rate)
    check_rate(sample_rate, model_rate)
    check_order(order)
    if rows not in ROWS:
        raise ValueError(f"rows must be one of {ROWS} (independent mixtures, or the channels "
                         f"of one recording), got {rows!r}")
    plan = plan_chunks(reader.length, sample_rate, model_rate, chunk_seconds, overlap)
    return _stream(separator, reader, plan, sample_rate, model_rate, order, rows, downmix,
                   torch.device(device if device is not None else "cpu"), progress, name)


def _stream(separator: Callable[[torch.Tensor], torch.Tensor], reader: Reader, plan: ChunkPlan,
            rate: int, model_rate: int, order: str, rows: str, downmix: bool,
            device: torch.device, progress: bool, name: str
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The generator behind :func:`stream_separation` (arguments validated there)."""
    length, ov, margin = reader.length, plan.overlap, plan.margin
    aligned, joint = order == "aligned", rows == "channels"
    ramp = torch.hann_window(2 * ov, periodic=True, dtype=torch.float64).float().to(device)
    w_up, w_down = ramp[:ov, None], ramp[ov:, None]  # [O, 1]: w_up + w_down = 1
    tail = reference = None
    for k in tqdm(range(plan.count), desc=name, unit="chunk", leave=False,
                  disable=not progress or plan.count == 1):
        start = k * plan.hop
        core = plan.chunk if k < plan.count - 1 else plan.last
        seg = reader.read(start - margin, start + core + margin).to(device)  # [C, n]
        x = seg.mean(0, keepdim=True) if downmix else seg  # [C', n]
        mix = x[:, margin: margin + core]  # [C', core]
        try:
            est = _separate_chunk(separator, x, rate, model_rate)[:, margin: margin + core]
        except RuntimeError as err:
            raise RuntimeError(f"{name}, chunk {k + 1}/{plan.count} at "
                               f"{start / rate:.2f} s: {err}") from err
        if aligned and joint and est.shape[0] > 1:  # channels of one recording: match ch. 0
            est = permute(est, match_channels(est.detach()))
        if k > 0:  # keep each source on its output: match the previous chunk's tail
            if aligned:
                perm = match_chunk(reference.detach(), est[:, :ov].detach(), mix[:, :ov], joint)
                est = permute(est, perm)
            est = torch.cat([est[:, :ov] * w_up + tail, est[:, ov:]], dim=1)  # overlap-add
        if k < plan.count - 1:
            reference = est[:, core - ov:]
            tail = reference * w_down
            emit = core - ov
        else:
            emit = length - start
        yield mix[:, :emit], est[:, :emit]


def separate_chunked(separator: Callable[[torch.Tensor], torch.Tensor],
                     signal: torch.Tensor | Reader, **options: object) -> torch.Tensor:
    """:func:`stream_separation`'s blocks joined: the separated signal ``[C, N, S]``.

    Arguments
    ---------
    separator : callable
        ``[B, T] -> [B, T, S]`` at its model rate.
    signal : torch.Tensor or Reader
        ``[C, N]`` tensor or reader.
    **options
        Keyword arguments of :func:`stream_separation` (``sample_rate`` is required).

    Returns
    -------
    torch.Tensor
        ``[C, N, S]`` (``[1, N, S]`` with ``downmix``) float32 sources at ``sample_rate``, on
        the separation device.

    Example
    -------
    >>> def separator(x):  # two outputs in a different order at every call
    ...     separator.calls += 1
    ...     out = torch.stack([0.2 * x, 0.8 * x], -1)
    ...     return out.flip(-1) if separator.calls % 2 else out
    >>> separator.calls = 0
    >>> mix = torch.randn(1, 30000)
    >>> est = separate_chunked(separator, mix, sample_rate=8000, chunk_seconds=1.0)
    >>> separator.calls, torch.allclose(est, torch.stack([0.8 * mix, 0.2 * mix], -1))
    (5, True)
    >>> fixed = separate_chunked(separator, mix, sample_rate=8000, chunk_seconds=1.0,
    ...                          order="fixed")  # stems swap with every chunk: wrong here
    >>> torch.allclose(fixed, est)
    False
    """
    return torch.cat([est for _, est in stream_separation(separator, signal, **options)], dim=1)
