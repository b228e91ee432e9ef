"""GASS as an ASR front end: separate the input, keep the speech stream(s), transcribe them.

A GASS separator splits a recording into ``S`` streams (speech, music, sound events, in an
arbitrary order, some of them silent). An ASR needs the speech, so this module adds the one
thing separation lacks: choosing which streams are speech.

* :class:`IntonationScore` scores how speech-like a waveform is (the criterion below);
* :class:`GASSFrontEnd` is an ``nn.Module`` for a SpeechBrain ASR yaml, placed before
  ``compute_features``: ``wavs [B, T]`` (+ ``wav_lens``) in, the selected speech stream
  ``[B, T]`` (or the ``K`` best ``[B, T, K]``) out;
* :class:`SeparateThenTranscribe` composes a
:class:`~gass_modules.inference.separator.GASSSeparator`
  with any SpeechBrain ASR interface (``EncoderASR``, ``EncoderDecoderASR``: anything with
  ``transcribe_batch(wavs, wav_lens)``) and returns one transcript per active stream.

Selection criterion
-------------------
Streams whose energy is under ``activity_db`` relative to the mixture
(:func:`gass_modules.audio.source_activity`) are never preferred to an active one; among the
others the most speech-like wins (ties: the louder), by the intonation score of
:mod:`gass_modules.asr.intonation` (the fraction of active frames that are voiced with a gliding
F0).
``benchmarks/bench_asr_frontend.py`` measures how often it picks the speech stream on the demo
corpus against the alternatives a user would try first (loudest stream, random stream). The
criterion needs no training and no labelled data, so it works with any separator and any ASR;
any ``nn.Module`` mapping ``[N, T]`` (+ relative lengths) to ``[N]`` scores can replace it.

:class:`~gass_modules.asr.intonation.IntonationScore`,
:func:`~gass_modules.lengths.absolute_lengths`
and :class:`~gass_modules.asr.transcribe.SeparateThenTranscribe` live in their own modules.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from gass_modules.asr.intonation import IntonationScore
from gass_modules.audio import DEFAULT_THRESHOLD_DB, source_activity
from gass_modules.lengths import absolute_lengths, length_mask
from gass_modules.lobes.base import check_mixture, check_separator

__all__ = ["GASSFrontEnd", "StreamSelection", "rank_streams", "separate_at"]


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


def separate_at(separator: nn.Module, mix: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Separates ``[B, T]`` mixtures given at ``sample_rate`` and returns streams at that rate.

    A :class:`~gass_modules.inference.separator.GASSSeparator` does it with its own chunked,
    resampling
    ``separate_batch`` (:func:`gass_modules.inference.chunking.stream_separation`: bounded memory
    for long
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
    >>> model = ScaledCopies([0.5, 0.5], sample_rate=8000)  # tests/doubles.py: g_s * mix
    >>> separate_at(model, torch.ones(2, 160), 16000).shape
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
        check_separator(separator)
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
        mask = length_mask(lengths, wavs.shape[-1], wavs.device)  # [B, T]
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
