"""GASS as an ASR front end: separate the input, keep the speech stream(s), transcribe them.

A GASS separator splits a recording into ``S`` streams (speech, music, sound events, in an
arbitrary order, some of them silent). An ASR needs the speech, so this module adds the one
thing separation lacks: choosing which streams are speech.

* :class:`IntonationScore` scores how speech-like a waveform is (the criterion below);
* :class:`GASSFrontEnd` is an ``nn.Module`` for a SpeechBrain ASR yaml, placed before
  ``compute_features``: ``wavs [B, T]`` (+ ``wav_lens``) in, the selected speech stream
  ``[B, T]`` (or the ``K`` best ``[B, T, K]``) out;
* :class:`SeparateThenTranscribe` composes a :class:`~gass_modules.inference.GASSSeparator`
  with any SpeechBrain ASR interface (``EncoderASR``, ``EncoderDecoderASR``: anything with
  ``transcribe_batch(wavs, wav_lens)``) and returns one transcript per active stream.

Selection criterion: the intonation score
-----------------------------------------
Speech is the one common source whose periodic (voiced) parts come with a *continuously
gliding* fundamental frequency: intonation moves F0 by a few to tens of semitones per second
inside every voiced stretch. Musical notes hold a steady pitch and jump between notes, and most
sound events are not periodic at all. The score of a stream is the fraction of its active frames
where it is voiced with a gliding F0:

1. resample to ``analysis_rate`` (8 kHz keeps the F0 range, halves the cost), frames of
   ``frame_ms`` every ``hop_ms``; frame ``n`` is *active* when its energy is within
   ``floor_db`` of the stream's loudest frame;
2. the normalised cross-correlation of the frame with itself at lag ``k`` (RAPT's NCCF, Talkin
   1995), ``r_n(k) = sum_i x_i x_(i+k) / sqrt(sum_(i<W-k) x_i^2 * sum_(i>=k) x_i^2)``, over the
   lags of ``f0_min``..``f0_max``; its peak ``r_n`` (refined by parabolic interpolation) gives
   the voicing strength and ``f0_n = analysis_rate / k*``;
3. frame ``n`` *glides* when frames ``n-1`` and ``n`` are both voiced (``r >= voicing_threshold``)
   and ``glide_min <= |log2 f0_n - log2 f0_(n-1)| / hop <= glide_max`` octaves per second: a held
   note changes by less than ``glide_min``, an octave error or a jump between notes by more than
   ``glide_max``;
4. ``rho = #gliding frames / #active frames`` in [0, 1].

Streams whose energy is under ``activity_db`` relative to the mixture
(:func:`gass_modules.audio.source_activity`) are never preferred to an active one; among
the others the highest ``rho`` wins (ties: the louder). ``benchmarks/bench_asr_frontend.py``
measures how often it picks the speech stream on the demo corpus (clean sources, separated
mixtures) against the alternatives a user would try first (loudest stream, random stream).
The criterion needs no training and no labelled data, so it works with any separator and any
ASR; any ``nn.Module`` mapping ``[N, T]`` (+ relative lengths) to ``[N]`` scores can replace it.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torchaudio
from torch import nn

from gass_modules.audio import DEFAULT_THRESHOLD_DB, source_activity
from gass_modules.lobes.base import check_mixture

__all__ = ["IntonationScore", "GASSFrontEnd", "StreamSelection", "StreamTranscript",
           "SeparateThenTranscribe", "absolute_lengths", "rank_streams", "separate_at"]


def absolute_lengths(wav_lens: torch.Tensor | None, batch: int, length: int) -> torch.Tensor:
    """Converts SpeechBrain relative lengths to sample counts (``round(wav_lens * T)``).

    Arguments
    ---------
    wav_lens : torch.Tensor, optional
        ``[B]`` relative lengths in (0, 1] (``None``: every item is ``length`` long).
    batch : int
        ``B``, to check ``wav_lens`` against.
    length : int
        ``T``, the padded length.

    Returns
    -------
    torch.Tensor
        ``[B]`` int64 lengths in samples, in ``[0, T]``.

    Example
    -------
    >>> absolute_lengths(torch.tensor([1.0, 0.5]), 2, 10).tolist()
    [10, 5]
    >>> absolute_lengths(torch.tensor([1.5]), 1, 10)
    Traceback (most recent call last):
    ...
    ValueError: expected relative lengths wav_lens in [0, 1] (SpeechBrain's convention), got ...
    """
    if wav_lens is None:
        return torch.full((batch,), length, dtype=torch.long)
    if not isinstance(wav_lens, torch.Tensor) or wav_lens.shape != (batch,):
        shape = tuple(wav_lens.shape) if isinstance(wav_lens, torch.Tensor) else type(wav_lens)
        raise ValueError(f"expected wav_lens of shape ({batch},) (one relative length per item), "
                         f"got {shape}")
    lens = wav_lens.detach().double().cpu()
    if not torch.isfinite(lens).all() or (lens < 0).any() or (lens > 1 + 1e-6).any():
        raise ValueError(f"expected relative lengths wav_lens in [0, 1] (SpeechBrain's "
                         f"convention), got {lens.tolist()}; divide sample counts by the padded "
                         "length")
    return torch.round(lens * length).long().clamp(0, length)


def _length_mask(lengths: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """``[N, size]`` bool, True on the first ``lengths[n]`` positions of row ``n``."""
    return torch.arange(size, device=device) < lengths.to(device)[:, None]


class IntonationScore(nn.Module):
    """Speech-likeness of waveforms: the fraction of active frames voiced with a gliding F0.

    See the module docstring for the definition and the reasons behind it. Everything is batched
    (no loop over streams); frames are processed in blocks of ``block_frames`` so memory stays
    bounded for long recordings.

    Arguments
    ---------
    sample_rate : int
        Rate of the waveforms given to ``forward`` (Hz).
    analysis_rate : int
        Rate the pitch analysis runs at (torchaudio resampling; >= 2 * f0_max).
    frame_ms : float
        Analysis window (ms); must hold two periods of ``f0_min``.
    hop_ms : float
        Frame hop (ms).
    f0_min, f0_max : float
        F0 search range (Hz), the range of adult and child voices.
    voicing_threshold : float
        NCCF peak over which a frame counts as voiced.
    glide_min, glide_max : float
        Range of ``|d log2 F0 / dt|`` (octaves per second) that counts as intonation.
    floor_db : float
        Frames quieter than the loudest frame by more than this are inactive.
    lag_taper : float
        The NCCF at lag ``k`` is weighted by ``1 - lag_taper * k / k_max`` when picking the
        period (RAPT's ``LAG_WT``), so the period beats its multiples.
    block_frames : int
        Frames processed at once (memory bound).

    Example
    -------
    >>> rate = 16000
    >>> t = torch.arange(2 * rate) / rate
    >>> f0 = 140 + 40 * torch.sin(2 * math.pi * 1.5 * t)        # gliding pitch, 100-180 Hz
    >>> phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    >>> voice = sum(torch.sin(h * phase) / h for h in range(1, 6))
    >>> note = sum(torch.sin(2 * math.pi * 220 * h * t) / h for h in range(1, 6))  # held note
    >>> noise = torch.randn(2 * rate)
    >>> scores = IntonationScore(sample_rate=rate)(torch.stack([voice, note, noise]))
    >>> [round(s, 1) for s in scores.tolist()]
    [1.0, 0.0, 0.0]
    """

    def __init__(self, sample_rate: int = 16000, analysis_rate: int = 8000,
                 frame_ms: float = 40.0, hop_ms: float = 10.0, f0_min: float = 70.0,
                 f0_max: float = 400.0, voicing_threshold: float = 0.6,
                 glide_min: float = 0.3, glide_max: float = 10.0, floor_db: float = 35.0,
                 lag_taper: float = 0.1, block_frames: int = 4096) -> None:
        super().__init__()
        for name, value in (("sample_rate", sample_rate), ("analysis_rate", analysis_rate),
                            ("block_frames", block_frames)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0 < f0_min < f0_max <= analysis_rate / 2:
            raise ValueError(f"expected 0 < f0_min < f0_max <= analysis_rate / 2, got f0_min="
                             f"{f0_min}, f0_max={f0_max}, analysis_rate={analysis_rate}")
        if not 0 <= glide_min < glide_max:
            raise ValueError(f"expected 0 <= glide_min < glide_max (octaves per second), got "
                             f"{glide_min}, {glide_max}")
        if not 0 < voicing_threshold < 1 or floor_db <= 0 or hop_ms <= 0 or not (
                0 <= lag_taper < 1):
            raise ValueError(f"expected voicing_threshold in (0, 1), floor_db > 0, hop_ms > 0, "
                             f"lag_taper in [0, 1), got {voicing_threshold}, {floor_db}, "
                             f"{hop_ms}, {lag_taper}")
        self.sample_rate = sample_rate
        self.analysis_rate = analysis_rate
        self.win = round(frame_ms * analysis_rate / 1000)
        self.hop = max(1, round(hop_ms * analysis_rate / 1000))
        self.lag_min = max(2, math.floor(analysis_rate / f0_max))
        self.lag_max = math.ceil(analysis_rate / f0_min)
        if self.win < 2 * self.lag_max:
            raise ValueError(f"frame_ms={frame_ms} holds {self.win} samples at {analysis_rate} Hz,"
                             f" fewer than two periods of f0_min={f0_min} Hz ({2 * self.lag_max}"
                             f"); use frame_ms >= {2000 / f0_min:.1f}")
        self.voicing_threshold = voicing_threshold
        lags = torch.arange(self.lag_min, self.lag_max + 1, dtype=torch.float32)
        self.register_buffer("taper", 1 - lag_taper * lags / self.lag_max, persistent=False)
        # octaves per second -> octaves per hop
        self.glide_min = glide_min * self.hop / analysis_rate
        self.glide_max = glide_max * self.hop / analysis_rate
        self.floor_db = floor_db
        self.block_frames = block_frames

    def frame_features(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor]:
        """Per-frame voicing strength, log2 F0 and energy of waveforms at ``sample_rate``.

        Arguments
        ---------
        waves : torch.Tensor
            ``[N, T]`` waveforms.

        Returns
        -------
        peak : torch.Tensor
            ``[N, F]`` NCCF peak (voicing strength, <= 1).
        log2_f0 : torch.Tensor
            ``[N, F]`` log2 of the F0 estimate in Hz.
        energy_db : torch.Tensor
            ``[N, F]`` frame energy in dB (mean removed; -100 dB for silent frames).

        Example
        -------
        >>> t = torch.arange(8000) / 8000
        >>> peak, log2_f0, _ = IntonationScore(sample_rate=8000).frame_features(
        ...     torch.sin(2 * math.pi * 200 * t)[None])
        >>> round(peak.min().item(), 2), round(2 ** log2_f0.median().item())
        (1.0, 200)
        """
        if waves.dim() != 2:
            raise ValueError(f"expected waveforms [N, T], got shape {tuple(waves.shape)}")
        x = waves.detach().float()
        if self.sample_rate != self.analysis_rate:
            x = torchaudio.functional.resample(x, self.sample_rate, self.analysis_rate)
        if x.shape[-1] < self.win:  # shorter than one frame: one zero-padded frame
            x = nn.functional.pad(x, (0, self.win - x.shape[-1]))
        frames = x.unfold(-1, self.win, self.hop)  # [N, F, W] (a view)
        lags = torch.arange(self.lag_min - 1, self.lag_max + 2, device=x.device)  # [K + 2]
        n_fft = 1 << (2 * self.win - 1).bit_length()  # no circular wrap for lags < W
        peaks, log_f0s, energies = [], [], []
        for start in range(0, frames.shape[1], self.block_frames):
            fr = frames[:, start:start + self.block_frames]  # [N, f, W]
            fr = fr - fr.mean(-1, keepdim=True)
            spec = torch.fft.rfft(fr, n=n_fft)
            acf = torch.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=n_fft)[..., lags]  # [N,f,K+2]
            power = fr.pow(2)  # [N, f, W]
            head = power.cumsum(-1)  # sum_(i <= j) x_i^2
            tail = power.flip(-1).cumsum(-1).flip(-1)  # sum_(i >= j) x_i^2
            norm = torch.sqrt(head[..., self.win - 1 - lags] * tail[..., lags])  # [N, f, K+2]
            nccf = acf / norm.clamp_min(1e-12)
            # RAPT's linear lag taper: multiples of the period correlate as well as the period
            # itself, so the shortest lag wins ties (no octave-down errors on steady tones)
            idx = (nccf[..., 1:-1] * self.taper).argmax(-1)  # [N, f]; idx + 1 indexes nccf
            peak = nccf.gather(-1, (idx + 1)[..., None])[..., 0]
            left = nccf.gather(-1, idx[..., None])[..., 0]
            right = nccf.gather(-1, (idx + 2)[..., None])[..., 0]
            curve = left - 2 * peak + right
            # parabolic interpolation of the peak (sub-sample lag), only at true maxima
            delta = torch.where(curve < 0, 0.5 * (left - right) / curve.clamp(max=-1e-12),
                                torch.zeros_like(curve)).clamp(-0.5, 0.5)
            lag = (lags[1:-1][idx] + delta).clamp_min(1.0)  # [N, f]
            peaks.append(peak)
            log_f0s.append(math.log2(self.analysis_rate) - torch.log2(lag))
            energies.append(10 * torch.log10(power.sum(-1).clamp_min(1e-10)))
        return torch.cat(peaks, 1), torch.cat(log_f0s, 1), torch.cat(energies, 1)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Intonation score ``rho`` of each waveform.

        Arguments
        ---------
        waves : torch.Tensor
            ``[N, T]`` waveforms at ``sample_rate``.
        lengths : torch.Tensor, optional
            ``[N]`` relative lengths (SpeechBrain's ``wav_lens``); frames past an item's end
            are ignored.

        Returns
        -------
        torch.Tensor
            ``[N]`` scores in [0, 1] (0 for silent or too short inputs).
        """
        if waves.dim() != 2 or waves.shape[-1] < 1:
            raise ValueError(f"expected waveforms [N, T] with T >= 1, got shape "
                             f"{tuple(waves.shape)}")
        if not torch.isfinite(waves).all():
            raise ValueError("expected finite waveforms, got NaN or Inf samples; check the "
                             "separator's output")
        total = absolute_lengths(lengths, waves.shape[0], waves.shape[-1])  # [N] samples
        peak, log_f0, energy_db = self.frame_features(waves)  # [N, F]
        # frame f is valid when it ends inside the item (in analysis-rate samples)
        ends = torch.ceil(total.double() * self.analysis_rate / self.sample_rate).long()
        n_valid = ((ends - self.win) // self.hop + 1).clamp_min(0)  # [N]
        valid = _length_mask(n_valid, peak.shape[1], peak.device)  # [N, F]
        loudest = torch.where(valid, energy_db, torch.full_like(energy_db, -1e4)).amax(-1)
        active = valid & (energy_db > loudest[:, None] - self.floor_db) & (energy_db > -100)
        voiced = active & (peak >= self.voicing_threshold)
        step = (log_f0[:, 1:] - log_f0[:, :-1]).abs()  # [N, F - 1] octaves per hop
        glide = voiced[:, 1:] & voiced[:, :-1] & (step >= self.glide_min) & (
            step <= self.glide_max)
        counted = active[:, 1:].sum(-1)  # [N]
        return glide.sum(-1).float() / counted.clamp_min(1).float()  # [N]


@dataclass
class StreamSelection:
    """What :meth:`GASSFrontEnd.select` returns.

    Arguments
    ---------
    streams : torch.Tensor
        ``[B, T, K]`` the selected streams, best first (zero past each item's length).
    indices : torch.Tensor
        ``[B, K]`` separator output index of each selected stream.
    scores : torch.Tensor
        ``[B, S]`` speech score of every separator output.
    energy_db : torch.Tensor
        ``[B, S]`` energy of every output relative to the mixture (dB).
    active : torch.Tensor
        ``[B, S]`` bool, ``energy_db >= activity_db``.
    sources : torch.Tensor
        ``[B, T, S]`` every separated output (zero past each item's length).

    Example
    -------
    >>> sel = StreamSelection(torch.zeros(1, 4, 1), torch.tensor([[2]]), torch.zeros(1, 3),
    ...                       torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool),
    ...                       torch.zeros(1, 4, 3))
    >>> sel.indices.tolist()
    [[2]]
    """

    streams: torch.Tensor
    indices: torch.Tensor
    scores: torch.Tensor
    energy_db: torch.Tensor
    active: torch.Tensor
    sources: torch.Tensor


def _check_separator_module(separator: object) -> None:
    """Raises unless ``separator`` follows the separator contract (docs/architecture.md)."""
    if not isinstance(separator, nn.Module):
        raise TypeError(f"expected a separator nn.Module (a gass lobe or a GASSSeparator), got "
                        f"{type(separator).__name__}")
    for name in ("num_sources", "sample_rate"):
        value = getattr(separator, name, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"a separator needs a positive int attribute {name} "
                             f"(docs/architecture.md, 'Separator contract'); "
                             f"{type(separator).__name__} has {value!r}")


def separate_at(separator: nn.Module, mix: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Separates ``[B, T]`` mixtures given at ``sample_rate`` and returns streams at that rate.

    A :class:`~gass_modules.inference.GASSSeparator` does it with its own chunked, resampling
    ``separate_batch`` (:func:`gass_modules.chunking.stream_separation`: bounded memory for long
    inputs); a bare separator lobe (e.g. one trained through the front end, ``freeze=False``)
    is run on the whole input, with gradients when they are enabled, resampled in and out with
    torchaudio when its ``sample_rate`` differs.

    Arguments
    ---------
    separator : torch.nn.Module
        A separator (docs/architecture.md) or a ``GASSSeparator``.
    mix : torch.Tensor
        ``[B, T]`` mixtures.
    sample_rate : int
        Rate of ``mix`` (Hz).

    Returns
    -------
    torch.Tensor
        ``[B, T, S]`` streams at ``sample_rate``.

    Example
    -------
    >>> from gass_modules.inference import ScaledCopies
    >>> separate_at(ScaledCopies([0.5, 0.5], sample_rate=8000), torch.ones(2, 160), 16000).shape
    torch.Size([2, 160, 2])
    """
    if hasattr(separator, "separate_batch"):
        return separator.separate_batch(mix, sample_rate=sample_rate)  # [B, T, S]
    rate, length = separator.sample_rate, mix.shape[-1]
    x = mix if rate == sample_rate else torchaudio.functional.resample(mix, sample_rate, rate)
    est = separator(x)  # [B, T', S]
    if rate != sample_rate:
        est = torchaudio.functional.resample(est.transpose(1, 2).contiguous(), rate,
                                             sample_rate)  # [B, S, T"]
        est = est[..., :length]
        est = nn.functional.pad(est, (0, length - est.shape[-1])).transpose(1, 2)
    return est  # [B, T, S]


class GASSFrontEnd(nn.Module):
    """Separates the ASR input with a GASS separator and keeps the most speech-like stream(s).

    Put it before ``compute_features`` in a SpeechBrain ASR (see README, "GASS ahead of ASR")::

        wavs = self.modules.gass_frontend(wavs, wav_lens)   # [B, T] -> [B, T]
        feats = self.hparams.compute_features(wavs)

    Streams under ``activity_db`` (relative to the mixture) are never preferred to active ones;
    active streams are ranked by ``scorer`` (default :class:`IntonationScore`), ties by energy.
    With ``freeze`` (default) the separator stays in eval mode and runs without gradients, also
    while the ASR's ``Brain`` puts its modules in training mode.

    Arguments
    ---------
    separator : torch.nn.Module
        A separator lobe (docs/architecture.md) or a ``GASSSeparator`` (model folder).
    sample_rate : int
        Rate of the ASR input (Hz); the separator's own rate is handled (resampling).
    num_streams : int
        ``K``: 1 returns ``[B, T]``, more returns the ``K`` best streams ``[B, T, K]``.
    scorer : torch.nn.Module, optional
        Maps ``[N, T]`` waveforms (+ relative lengths) to ``[N]`` speech scores; default
        ``IntonationScore(sample_rate)``.
    activity_db : float
        Activity threshold (dB relative to the mixture), as in ``GASSSeparator``.
    freeze : bool
        Keep the separator frozen (eval mode, no gradients).

    Example
    -------
    >>> from gass_modules.inference import ScaledCopies
    >>> front = GASSFrontEnd(ScaledCopies([0.0, 1.0, 0.5], sample_rate=16000))
    >>> wavs = torch.randn(2, 16000)
    >>> out = front(wavs, torch.tensor([1.0, 0.5]))
    >>> out.shape, bool(out[1, 8000:].abs().max() == 0)
    (torch.Size([2, 16000]), True)
    >>> front.select(wavs).indices.tolist()  # noise everywhere: the loudest active copy wins
    [[1], [1]]
    """

    def __init__(self, separator: nn.Module, sample_rate: int = 16000, num_streams: int = 1,
                 scorer: nn.Module | None = None, activity_db: float = DEFAULT_THRESHOLD_DB,
                 freeze: bool = True) -> None:
        super().__init__()
        _check_separator_module(separator)
        if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate < 1:
            raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
        if not isinstance(num_streams, int) or not 1 <= num_streams <= separator.num_sources:
            raise ValueError(f"num_streams must be an int in [1, {separator.num_sources}] (the "
                             f"separator's outputs), got {num_streams!r}")
        if not isinstance(activity_db, (int, float)) or math.isnan(activity_db):
            raise ValueError(f"activity_db must be a number of dB, got {activity_db!r}")
        self.separator = separator
        self.sample_rate = sample_rate
        self.num_streams = num_streams
        self.scorer = scorer if scorer is not None else IntonationScore(sample_rate=sample_rate)
        self.activity_db = float(activity_db)
        self.freeze = freeze
        if freeze:
            self.separator.eval()
            for param in self.separator.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> GASSFrontEnd:
        """Sets training mode, keeping a frozen separator in eval mode.

        Arguments
        ---------
        mode : bool
            Training mode for the (non-frozen) submodules.

        Returns
        -------
        GASSFrontEnd
            ``self``.
        """
        super().train(mode)
        if self.freeze:
            self.separator.eval()
        return self

    def separate(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """All separated streams, zero past each item's length.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` ASR input at ``sample_rate``.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths.

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` streams.
        """
        check_mixture(wavs)
        if not torch.isfinite(wavs).all():
            raise ValueError("expected finite ASR input, got NaN or Inf samples")
        lengths = absolute_lengths(wav_lens, *wavs.shape)
        mask = _length_mask(lengths, wavs.shape[-1], wavs.device)  # [B, T]
        wavs = wavs * mask  # padding is silence for the separator
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            est = separate_at(self.separator, wavs, self.sample_rate)  # [B, T, S]
        return est.to(wavs.dtype) * mask[..., None]

    def select(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> StreamSelection:
        """Separates, scores every stream and keeps the ``num_streams`` best.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` ASR input at ``sample_rate``.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths.

        Returns
        -------
        StreamSelection
            Selected streams and the scores, energies and activity of all outputs.
        """
        return self.select_among(wavs, self.separate(wavs, wav_lens), wav_lens)

    def select_among(self, wavs: torch.Tensor, est: torch.Tensor,
                     wav_lens: torch.Tensor | None = None) -> StreamSelection:
        """Scores given candidate streams and keeps the ``num_streams`` best (the criterion of
        :meth:`select`, e.g. on oracle streams to measure the criterion alone).

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` mixtures the streams come from (for their relative energy).
        est : torch.Tensor
            ``[B, T, S]`` candidate streams at ``sample_rate``.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths.

        Returns
        -------
        StreamSelection
            Selected streams and the scores, energies and activity of all candidates.

        Example
        -------
        >>> from gass_modules.inference import ScaledCopies
        >>> front = GASSFrontEnd(ScaledCopies([1.0], 8000), sample_rate=8000)
        >>> t = torch.arange(8000) / 8000
        >>> glide = torch.sin(2 * math.pi * (150 * t + 100 * t ** 2))  # F0 rising: speech-like
        >>> steady = torch.sin(2 * math.pi * 220 * t)  # a held note
        >>> streams = torch.stack([steady, glide], -1)[None]  # [1, T, 2]
        >>> front.select_among(streams.sum(-1), streams).indices.tolist()
        [[1]]
        """
        batch, length, sources = est.shape
        energy_db, active = source_activity(wavs, est, self.activity_db)  # [B, S]
        rel = None if wav_lens is None else wav_lens.repeat_interleave(sources)
        flat = est.transpose(1, 2).reshape(batch * sources, length)  # [B*S, T]
        with torch.no_grad():
            scores = self.scorer(flat, rel).reshape(batch, sources).float()  # [B, S]
        indices = rank_streams(scores, energy_db, active)[:, : self.num_streams]  # [B, K]
        streams = est.gather(2, indices[:, None, :].expand(-1, length, -1).to(est.device))
        return StreamSelection(streams, indices, scores, energy_db, active, est)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """The selected speech stream(s) of each input.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` ASR input at ``sample_rate``.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths (SpeechBrain's ``wav_lens``).

        Returns
        -------
        torch.Tensor
            ``[B, T]`` when ``num_streams == 1``, else ``[B, T, K]``.
        """
        streams = self.select(wavs, wav_lens).streams  # [B, T, K]
        return streams[..., 0] if self.num_streams == 1 else streams


def rank_streams(scores: torch.Tensor, energy_db: torch.Tensor,
                 active: torch.Tensor) -> torch.Tensor:
    """Orders streams: active ones by score, then energy; after them inactive ones by energy.

    Arguments
    ---------
    scores : torch.Tensor
        ``[B, S]`` speech scores.
    energy_db : torch.Tensor
        ``[B, S]`` energies (dB; ``-inf`` allowed).
    active : torch.Tensor
        ``[B, S]`` bool activity.

    Returns
    -------
    torch.Tensor
        ``[B, S]`` int64 output indices, best first.

    Example
    -------
    >>> rank_streams(torch.tensor([[0.9, 0.5, 0.5, 0.1]]), torch.tensor([[-30.0, -3.0, -1.0,
    ...              0.0]]), torch.tensor([[False, True, True, True]])).tolist()
    [[2, 1, 3, 0]]
    """
    if not (scores.shape == energy_db.shape == active.shape) or scores.dim() != 2:
        raise ValueError(f"expected scores, energy_db and active of one shape [B, S], got "
                         f"{tuple(scores.shape)}, {tuple(energy_db.shape)}, "
                         f"{tuple(active.shape)}")
    energy = torch.nan_to_num(energy_db.double(), nan=-math.inf)
    by_energy = torch.sort(energy, dim=-1, descending=True, stable=True).indices  # [B, S]
    key = torch.where(active, scores.double(), torch.full_like(scores, -1.0, dtype=torch.float64))
    order = torch.sort(key.gather(-1, by_energy), dim=-1, descending=True, stable=True).indices
    return by_energy.gather(-1, order)


@dataclass
class StreamTranscript:
    """One active separated stream and its transcript (from :class:`SeparateThenTranscribe`).

    Arguments
    ---------
    index : int
        Separator output index.
    text : str
        The ASR's transcript of the stream.
    speech_score : float
        The scorer's value (intonation score by default).
    energy_db : float
        Energy relative to the mixture (dB).
    is_speech : bool
        ``speech_score >= speech_threshold``.

    Example
    -------
    >>> StreamTranscript(2, "hello", 0.4, -3.0, True).text
    'hello'
    """

    index: int
    text: str
    speech_score: float
    energy_db: float
    is_speech: bool


class SeparateThenTranscribe:
    """A GASS separator followed by any SpeechBrain ASR: one transcript per active stream.

    The mixture is separated (any length and rate, see ``GASSSeparator``), outputs under
    ``activity_db`` are dropped, the others are resampled to the ASR's rate, scored as speech
    (``scorer``) and transcribed with ``asr.transcribe_batch(wavs, wav_lens)``. Streams come
    back most speech-like first, each flagged ``is_speech`` by ``speech_threshold``; with
    ``speech_only`` the streams under it are not sent to the ASR at all.

    Arguments
    ---------
    separator : gass_modules.inference.GASSSeparator
        Loaded with ``GASSSeparator.from_hparams(source=model_folder)``.
    asr : object
        ``EncoderASR``, ``EncoderDecoderASR`` or anything with ``transcribe_batch(wavs
        [N, T], wav_lens [N]) -> (texts, tokens)``.
    asr_sample_rate : int, optional
        The ASR's input rate; default ``asr.audio_normalizer.sample_rate`` (SpeechBrain
        interfaces have it), else 16000.
    scorer : torch.nn.Module, optional
        Speech scores of ``[N, T]`` streams; default :class:`IntonationScore`.
    activity_db : float
        Activity threshold relative to the mixture (dB).
    speech_threshold : float
        Scores at or over it mark a stream as speech (0.15: see the benchmark).
    speech_only : bool
        Transcribe only the streams marked as speech.
    batch_size : int
        Streams per ``transcribe_batch`` call.

    Example
    -------
    >>> from gass_modules.inference import GASSSeparator, ScaledCopies
    >>> class LengthASR:  # a stand-in ASR: "transcribes" the number of non-zero samples
    ...     def transcribe_batch(self, wavs, wav_lens):
    ...         n = (wav_lens * wavs.shape[1]).round().long()
    ...         return [f"{int((w[:k] != 0).sum())} samples" for w, k in zip(wavs, n)], None
    >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.0, 0.3], 16000)},
    ...                     hparams={"sample_rate": 16000, "num_sources": 3},
    ...                     run_opts={"device": "cpu"})
    >>> stt = SeparateThenTranscribe(sep, LengthASR(), asr_sample_rate=16000)
    >>> out = stt.transcribe_batch(torch.randn(2, 8000), torch.tensor([1.0, 0.5]))
    >>> [[(s.index, s.text) for s in item] for item in out]
    [[(0, '8000 samples'), (2, '8000 samples')], [(0, '4000 samples'), (2, '4000 samples')]]
    """

    def __init__(self, separator: nn.Module, asr: object, asr_sample_rate: int | None = None,
                 scorer: nn.Module | None = None, activity_db: float = DEFAULT_THRESHOLD_DB,
                 speech_threshold: float = 0.15, speech_only: bool = False,
                 batch_size: int = 8) -> None:
        if not hasattr(separator, "separate_batch") or not hasattr(separator,
                                                                    "separate_to_files"):
            raise TypeError(f"expected a GASSSeparator (GASSSeparator.from_hparams(source=...)), "
                            f"got {type(separator).__name__}; wrap a bare lobe as "
                            "GASSSeparator(modules={'separator': lobe}, hparams={...})")
        if not callable(getattr(asr, "transcribe_batch", None)):
            raise TypeError(f"expected an ASR interface with transcribe_batch(wavs, wav_lens) "
                            f"(EncoderASR, EncoderDecoderASR), got {type(asr).__name__}")
        if asr_sample_rate is None:
            asr_sample_rate = getattr(getattr(asr, "audio_normalizer", None), "sample_rate",
                                      16000)
        if not isinstance(asr_sample_rate, int) or asr_sample_rate < 1:
            raise ValueError(f"asr_sample_rate must be a positive int (Hz), got "
                             f"{asr_sample_rate!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.separator = separator
        self.asr = asr
        self.asr_sample_rate = asr_sample_rate
        self.scorer = scorer if scorer is not None else IntonationScore(asr_sample_rate)
        self.activity_db = float(activity_db)
        self.speech_threshold = float(speech_threshold)
        self.speech_only = speech_only
        self.batch_size = batch_size

    def transcribe_batch(self, mix: torch.Tensor, wav_lens: torch.Tensor | None = None,
                         sample_rate: int | None = None) -> list[list[StreamTranscript]]:
        """Separates and transcribes a batch of mixtures.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths.
        sample_rate : int, optional
            Rate of ``mix`` (default: the ASR's).

        Returns
        -------
        list of list of StreamTranscript
            Per mixture, its active streams, most speech-like first.
        """
        check_mixture(mix)
        rate = self.asr_sample_rate if sample_rate is None else sample_rate
        lengths = absolute_lengths(wav_lens, *mix.shape)
        mask = _length_mask(lengths, mix.shape[-1], mix.device)
        mix = mix * mask
        est = self.separator.separate_batch(mix, sample_rate=rate) * mask[..., None]  # [B, T, S]
        energy_db, active = source_activity(mix, est, self.activity_db)  # [B, S]
        streams = [[(est[b, : lengths[b], s], float(energy_db[b, s]), s)
                    for s in range(est.shape[-1]) if active[b, s]] for b in range(mix.shape[0])]
        return self._transcribe(streams, rate)

    def transcribe_file(self, path: str | Path, **separate_kwargs) -> list[StreamTranscript]:
        """Separates an audio file of any length, rate and channel count and transcribes it.

        Arguments
        ---------
        path : str or pathlib.Path
            The file (channels are downmixed).
        **separate_kwargs
            Forwarded to ``GASSSeparator.separate_to_files`` (``chunk_seconds``, ``overlap``).

        Returns
        -------
        list of StreamTranscript
            The active streams, most speech-like first.
        """
        result = self.separator.separate_to_files(path, channels="mix", keep_silent=False,
                                                  threshold_db=self.activity_db,
                                                  **separate_kwargs)
        streams = [(result.sources[0, :, k], result.energy_db[s], s)
                   for k, s in enumerate(result.kept)]
        return self._transcribe([streams], result.sample_rate)[0]

    def _transcribe(self, items: list[list[tuple[torch.Tensor, float, int]]],
                    rate: int) -> list[list[StreamTranscript]]:
        """Resamples, scores and transcribes ``(stream [n], energy_db, index)`` per item."""
        flat = [(b, wav, energy, s) for b, streams in enumerate(items)
                for wav, energy, s in streams]
        results: list[list[StreamTranscript]] = [[] for _ in items]
        for start in range(0, len(flat), self.batch_size):
            chunk = flat[start:start + self.batch_size]
            wavs, rel = _pad([self._to_asr_rate(wav, rate) for _, wav, _, _ in chunk])
            scores = self.scorer(wavs, rel).tolist()  # [n]
            keep = [i for i, sc in enumerate(scores)
                    if not self.speech_only or sc >= self.speech_threshold]
            texts: Sequence = []
            if keep:
                sub, sub_rel = _pad([wavs[i, : max(1, round(float(rel[i]) * wavs.shape[1]))]
                                     for i in keep])
                with torch.no_grad():
                    texts = self.asr.transcribe_batch(sub, sub_rel)[0]
            for j, i in enumerate(keep):
                b, _, energy, s = chunk[i]
                text = texts[j] if isinstance(texts[j], str) else " ".join(texts[j])
                results[b].append(StreamTranscript(s, text, scores[i], energy,
                                                   scores[i] >= self.speech_threshold))
        for streams in results:
            streams.sort(key=lambda r: (-r.speech_score, -r.energy_db))
        return results

    def _to_asr_rate(self, wav: torch.Tensor, rate: int) -> torch.Tensor:
        """``[n]`` at ``rate`` -> ``[n']`` at the ASR's rate (torchaudio)."""
        wav = wav.detach().float().cpu()
        if rate == self.asr_sample_rate:
            return wav
        return torchaudio.functional.resample(wav, rate, self.asr_sample_rate)


def _pad(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pads 1-D waveforms into ``[N, T]`` and their relative lengths ``[N]``."""
    longest = max(1, max(len(w) for w in wavs))
    batch = torch.stack([nn.functional.pad(w, (0, longest - len(w))) for w in wavs])
    return batch, torch.tensor([len(w) / longest for w in wavs])
