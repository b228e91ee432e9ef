"""How speech-like a waveform is: the intonation score (voiced frames with a gliding F0).

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

:class:`~gass_modules.asr.frontend.GASSFrontEnd` and
:class:`~gass_modules.asr.transcribe.SeparateThenTranscribe` rank separated streams by it
(``benchmarks/bench_asr_frontend.py`` measures how often that picks the speech stream). It
needs no training and no labelled data.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from gass_modules.lengths import absolute_lengths, length_mask


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
        valid = length_mask(n_valid, peak.shape[1], peak.device)  # [N, F]
        loudest = torch.where(valid, energy_db, torch.full_like(energy_db, -1e4)).amax(-1)
        active = valid & (energy_db > loudest[:, None] - self.floor_db) & (energy_db > -100)
        voiced = active & (peak >= self.voicing_threshold)
        step = (log_f0[:, 1:] - log_f0[:, :-1]).abs()  # [N, F - 1] octaves per hop
        glide = voiced[:, 1:] & voiced[:, :-1] & (step >= self.glide_min) & (
            step <= self.glide_max)
        counted = active[:, 1:].sum(-1)  # [N]
        return glide.sum(-1).float() / counted.clamp_min(1).float()  # [N]


__all__ = ["IntonationScore"]
