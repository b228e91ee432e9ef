"""Separation metrics: SI-SNR, SNR, SDR and their improvements; FUSS and MUSDB protocols.

Every metric takes ``targets`` and ``estimates`` as ``[B, T, S]`` tensors (MUSDB ones also accept
``[B, C, T, S]`` for stereo), ``mixture`` as ``[B, T]``, and returns ``[B, S]`` (per source) or
``[B]`` (per mixture) float64 values in dB. They compare source ``i`` of the estimates with source
``i`` of the targets: align the estimates first (:func:`align_estimates`, or
``gass_modules.losses.permute`` with the training permutation), except for the FUSS metrics,
which align by themselves as the FUSS evaluation does.

* ``snr``: ``10·log10(‖s‖² / ‖s − ŝ‖²)``.
* ``si_snr``: ``10·log10(‖αs‖² / ‖αs − ŝ‖²)``, ``α = <ŝ, s>/‖s‖²`` (Le Roux et al., 2019), after
  removing the means by default (as SpeechBrain and asteroid do; FUSS does not).
* ``sdr``: BSS Eval SDR with a 512-tap time-invariant distortion filter, from fast-bss-eval.
* ``snri`` / ``si_snri`` / ``sdri``: the metric of the estimate minus that of the mixture used
  as the estimate of every source (0 dB where reference and estimate are both silent). Their
  per-mixture mean is :func:`active_mean` (over the active references), not ``.mean(-1)``,
  which would count empty slots.
* FUSS (Wisdom et al., 2021): multi-source SI-SNRi over the active references only, and the
  single-source SI-SNR with which one output reproduces a single-source input.
* MUSDB: uSDR, the utterance-level SDR of the MDX challenge, and cSDR, the median over 1-s
  frames of museval's BSS Eval v4 SDR.

Conventions for silence and perfection (no metric returns NaN or Inf):

* values are limited to ``[-DB_LIMIT, DB_LIMIT] = [-100, 100]`` dB: an exact estimate scores
  +100, an estimate orthogonal to its reference −100;
* a *silent* signal is all-zero (after mean removal where the metric removes the mean);
  ``active_sources`` flags the non-silent references;
* silent reference and silent estimate: 0 dB for every metric, improvements included
  (undefined 0/0: neither reward nor penalty; exclude such slots with ``active_sources``, e.g.
  with :func:`active_mean`);
* silent reference, non-silent estimate: −100 dB;
* non-silent reference, silent estimate: SNR-type metrics (``snr``, ``musdb_usdr``) keep their
  exact value 0 dB (``‖s‖²/‖s‖²``); scale-invariant and filtered metrics (``si_snr``, ``sdr``)
  give −100 dB, the worst score, because nothing was separated (fast-bss-eval gives −∞ there and
  FUSS's evaluation −80 dB); otherwise a silent output would "improve" on a mixture whose SI-SNR
  is negative.

The metrics run in float64 (a 100 dB range needs more than float32's 7 digits) with autocast
disabled; they are evaluation code and carry no gradient guarantees.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import fast_bss_eval
import numpy
import torch

from gass_modules.losses import best_permutation, check_sources, permute

__all__ = [
    "ALIGNMENTS",
    "DB_LIMIT",
    "active_mean",
    "active_sources",
    "align_estimates",
    "align_to_references",
    "fuss_active_estimates",
    "fuss_multi_source_si_snri",
    "fuss_single_source_si_snr",
    "musdb_csdr",
    "musdb_usdr",
    "sdr",
    "sdri",
    "si_snr",
    "si_snri",
    "snr",
    "snri",
]

DB_LIMIT = 100.0
# How estimates meet references: the best permutation (PIT models) or output k for stem k.
ALIGNMENTS = ("oracle", "fixed")


def _ratio_db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``10·log10(num/den)`` limited to ±DB_LIMIT, with 0/0 = 0 dB (float64, never NaN)."""
    value = 10.0 * (torch.log10(num) - torch.log10(den))  # ±inf for zeros, nan for 0/0
    value = torch.where((num == 0) & (den == 0), torch.zeros_like(value), value)
    return value.clamp(-DB_LIMIT, DB_LIMIT)


def _float64(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The tensors as float64 (metrics are evaluation code: precision over speed)."""
    return [x.detach().to(torch.float64) for x in tensors]


def _check_finite(**tensors: torch.Tensor) -> None:
    """Raises a ValueError naming the tensors that hold NaN or Inf."""
    bad = [name for name, x in tensors.items() if not bool(torch.isfinite(x).all())]
    if bad:
        raise ValueError(f"metrics got NaN or Inf values in {', '.join(bad)}; the metric is "
                         "undefined there (check the separator output and the data)")


def _expand_mixture(mixture: torch.Tensor, sources: int) -> torch.Tensor:
    """``[B, T]`` mixture repeated as the estimate of each of ``S`` sources: ``[B, T, S]``."""
    return mixture.unsqueeze(2).expand(-1, -1, sources)


def active_sources(targets: torch.Tensor) -> torch.Tensor:
    """Which reference slots hold a source (any non-zero sample).

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references; empty slots are all-zero (the mixer's invariant).

    Returns
    -------
    torch.Tensor
        ``[B, S]`` bool.

    Example
    -------
    >>> s = torch.zeros(1, 10, 3)
    >>> s[0, 4, 1] = 0.5
    >>> active_sources(s)
    tensor([[False,  True, False]])
    """
    if not isinstance(targets, torch.Tensor) or targets.dim() != 3:
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else targets
        raise ValueError(f"expected targets of shape [B, T, S], got {shape}")
    return (targets != 0).any(dim=1)


def active_mean(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-mixture mean of ``[B, S]`` values over the active references (the reported mean).

    Empty slots (all-zero references) carry no source, so averaging them in (``.mean(-1)``)
    would mix the convention's 0 dB (or −100 dB) into the score; they are left out.

    Arguments
    ---------
    values : torch.Tensor
        ``[B, S]`` per-source values, e.g. :func:`si_snri`.
    targets : torch.Tensor
        ``[B, T, S]`` references (empty slots all-zero).

    Returns
    -------
    torch.Tensor
        ``[B]`` mean over the active slots; 0.0 for a mixture without any (float64).

    Example
    -------
    >>> s = torch.zeros(1, 4, 4)
    >>> s[0, :, :2] = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    >>> active_mean(si_snri(s, s.sum(-1, keepdim=True).expand_as(s), s.sum(-1)), s)
    tensor([0.], dtype=torch.float64)
    """
    active = active_sources(targets)  # [B, S]
    if not isinstance(values, torch.Tensor) or values.shape != active.shape:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else values
        raise ValueError(f"expected values of shape [B, S] = {tuple(active.shape)} (one per "
                         f"reference slot), got {shape}")
    values = values.detach().to(torch.float64)
    weights = active.to(torch.float64)
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _improvement(targets: torch.Tensor, estimates: torch.Tensor, of_estimate: torch.Tensor,
                 of_mixture: torch.Tensor, zero_mean: bool = False) -> torch.Tensor:
    """``of_estimate - of_mixture``, 0 dB where reference and estimate are both silent.

    Without this, a silent slot left silent would "improve" by 100 dB on the mixture, which
    scores −100 dB against a silent reference (module docstring). ``zero_mean``: silence is
    judged after mean removal, as the metric does.
    """
    both = None
    for x in _float64(targets, estimates):
        if zero_mean:
            x = x - x.mean(dim=1, keepdim=True)
        silent = (x == 0).all(dim=1)  # [B, S]
        both = silent if both is None else both & silent
    gain = of_estimate - of_mixture
    return torch.where(both, torch.zeros_like(gain), gain)


def snr(targets: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``10·log10(‖s‖² / ‖s − ŝ‖²)`` per source.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references ``s``.
    estimates : torch.Tensor
        ``[B, T, S]`` aligned estimates ``ŝ``.

    Returns
    -------
    torch.Tensor
        ``[B, S]`` SNR in dB (float64, within ±100 dB; conventions in the module docstring).

    Example
    -------
    >>> s = torch.ones(1, 4, 1)
    >>> snr(s, 0.9 * s)        # error energy 1% of the signal's
    tensor([[20.0000]], dtype=torch.float64)
    """
    check_sources(targets, estimates)
    with torch.autocast(device_type=targets.device.type, enabled=False):
        s, est = _float64(targets, estimates)
        _check_finite(targets=s, estimates=est)
        return _ratio_db(s.square().sum(dim=1), (s - est).square().sum(dim=1))  # [B, S]


def si_snr(targets: torch.Tensor, estimates: torch.Tensor, zero_mean: bool = True
           ) -> torch.Tensor:
    """Scale-invariant SNR (SI-SDR of Le Roux et al., 2019) per source.

    ``10·log10(‖αs‖² / ‖αs − ŝ‖²)`` with ``α = <ŝ, s>/‖s‖²``: only the part of the estimate
    along its reference counts as signal, so rescaling the estimate changes nothing.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references ``s``.
    estimates : torch.Tensor
        ``[B, T, S]`` aligned estimates ``ŝ``.
    zero_mean : bool
        Remove each signal's mean first (SpeechBrain/asteroid convention; FUSS uses False).

    Returns
    -------
    torch.Tensor
        ``[B, S]`` SI-SNR in dB (float64, within ±100 dB; conventions in the module docstring).

    Example
    -------
    >>> s = torch.tensor([[[1.0], [-1.0], [1.0], [-1.0]]])
    >>> si_snr(s, 3.0 * s)                   # any gain: exact
    tensor([[100.]], dtype=torch.float64)
    >>> noise = torch.tensor([[[1.0], [1.0], [-1.0], [-1.0]]])   # orthogonal to s
    >>> si_snr(s, s + 0.1 * noise)
    tensor([[20.0000]], dtype=torch.float64)
    """
    check_sources(targets, estimates)
    with torch.autocast(device_type=targets.device.type, enabled=False):
        s, est = _float64(targets, estimates)
        _check_finite(targets=s, estimates=est)
        if zero_mean:
            s = s - s.mean(dim=1, keepdim=True)
            est = est - est.mean(dim=1, keepdim=True)
        ref_energy = s.square().sum(dim=1, keepdim=True)  # [B, 1, S]
        ref_silent = ref_energy == 0
        alpha = (est * s).sum(dim=1, keepdim=True) / torch.where(ref_silent, 1.0, ref_energy)
        projection = alpha * s  # [B, T, S]: the part of ŝ along s (0 for a silent reference)
        value = _ratio_db(projection.square().sum(dim=1), (est - projection).square().sum(dim=1))
        return _silence_convention(value, ref_silent.squeeze(1), (est == 0).all(dim=1))


def _silence_convention(value: torch.Tensor, ref_silent: torch.Tensor,
                        est_silent: torch.Tensor) -> torch.Tensor:
    """Applies the module's conventions for silent references/estimates to ``[B, S]`` values."""
    worst = torch.full_like(value, -DB_LIMIT)
    value = torch.where(ref_silent ^ est_silent, worst, value)
    return torch.where(ref_silent & est_silent, torch.zeros_like(value), value)


def sdr(targets: torch.Tensor, estimates: torch.Tensor, filter_length: int = 512
        ) -> torch.Tensor:
    """BSS Eval SDR per source, computed by fast-bss-eval (``bss_eval_sources`` definition).

    The estimate may match its reference up to a ``filter_length``-tap time-invariant filter
    (Vincent et al., 2006); no permutation is searched (align first).

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references, ``T >= filter_length``.
    estimates : torch.Tensor
        ``[B, T, S]`` aligned estimates.
    filter_length : int
        Taps of the distortion filter (512 in BSS Eval; 1 gives SI-SNR without mean removal).

    Returns
    -------
    torch.Tensor
        ``[B, S]`` SDR in dB (float64, within ±100 dB; conventions in the module docstring).

    Example
    -------
    >>> s = torch.randn(1, 2000, 2)
    >>> echo = s.clone()
    >>> echo[:, 3:] += 0.5 * s[:, :-3]                # a short filter is (almost) no distortion
    >>> bool((sdr(s, echo, filter_length=16) > 40).all() and (si_snr(s, echo) < 7).all())
    True
    """
    check_sources(targets, estimates)
    if isinstance(filter_length, bool) or not isinstance(filter_length, int) or filter_length < 1:
        raise ValueError(f"expected filter_length as a positive int, got {filter_length!r}")
    if targets.shape[1] < filter_length:
        raise ValueError(f"signals of {targets.shape[1]} samples are shorter than the distortion "
                         f"filter (filter_length={filter_length}); pass a smaller filter_length")
    with torch.autocast(device_type=targets.device.type, enabled=False):
        s, est = _float64(targets, estimates)
        _check_finite(targets=s, estimates=est)
        ref_silent = (s == 0).all(dim=1)  # [B, S]
        est_silent = (est == 0).all(dim=1)
        # fast-bss-eval's filter solve is singular for a silent reference: score a stand-in
        # (a unit impulse) and overwrite those entries with the convention below.
        impulse = torch.zeros_like(s[:, :, :1])
        impulse[:, 0] = 1.0
        s = torch.where(ref_silent.unsqueeze(1), impulse, s)
        # SDR ignores the scale of either signal, but fast-bss-eval floors norms at 1e-6 when it
        # normalises: unit-norm inputs keep quiet signals exact.
        s = s / s.norm(dim=1, keepdim=True)
        est = est / torch.where(est_silent, 1.0, est.norm(dim=1)).unsqueeze(1)
        neg = fast_bss_eval.sdr_loss(est.transpose(1, 2), s.transpose(1, 2),
                                     filter_length=filter_length, clamp_db=DB_LIMIT)  # [B, S]
        return _silence_convention(-neg, ref_silent, est_silent)


def snri(targets: torch.Tensor, estimates: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """SNR improvement: ``snr(s, ŝ) − snr(s, x)`` per source.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references.
    estimates : torch.Tensor
        ``[B, T, S]`` aligned estimates.
    mixture : torch.Tensor
        ``[B, T]`` mixture ``x`` (the do-nothing estimate of every source).

    Returns
    -------
    torch.Tensor
        ``[B, S]`` improvement in dB.

    Example
    -------
    >>> s = torch.ones(1, 4, 2)
    >>> snri(s, s, s.sum(-1))                # exact estimates: 100 − 0 dB
    tensor([[100., 100.]], dtype=torch.float64)
    """
    check_sources(targets, estimates, mixture)
    return _improvement(targets, estimates, snr(targets, estimates),
                        snr(targets, _expand_mixture(mixture, targets.shape[2])))


def si_snri(targets: torch.Tensor, estimates: torch.Tensor, mixture: torch.Tensor,
            zero_mean: bool = True) -> torch.Tensor:
    """SI-SNR improvement: ``si_snr(s, ŝ) − si_snr(s, x)`` per source.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references.
    estimates : torch.Tensor
        ``[B, T, S]`` aligned estimates.
    mixture : torch.Tensor
        ``[B, T]`` mixture.
    zero_mean : bool
        Remove means first (see :func:`si_snr`).

    Returns
    -------
    torch.Tensor
        ``[B, S]`` improvement in dB (0 dB for a silent slot left silent); the per-mixture
        SI-SNRi is ``active_mean(si_snri(...), targets)``, the mean over active references.

    Example
    -------
    >>> s = torch.tensor([[[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]])
    >>> si_snri(s, s, s.sum(-1))             # mixture at 0 dB SI-SNR, exact estimates
    tensor([[100., 100.]], dtype=torch.float64)
    """
    check_sources(targets, estimates, mixture)
    mix = _expand_mixture(mixture, targets.shape[2])
    return _improvement(targets, estimates, si_snr(targets, estimates, zero_mean),
                        si_snr(targets, mix, zero_mean), zero_mean)


def sdri(targets: torch.Tensor, estimates: torch.Tensor, mixture: torch.Tensor,
         filter_length: int = 512) -> torch.Tensor:
    """SDR improvement: ``sdr(s, ŝ) − sdr(s, x)`` per source (fast-bss-eval).

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references.
    estimates : torch.Tensor
        ``[B, T, S]`` aligned estimates.
    mixture : torch.Tensor
        ``[B, T]`` mixture.
    filter_length : int
        Taps of the BSS Eval distortion filter.

    Returns
    -------
    torch.Tensor
        ``[B, S]`` improvement in dB.

    Example
    -------
    >>> s = torch.randn(1, 1000, 2)
    >>> bool((sdri(s, s + 0.01 * torch.randn(1, 1000, 2), s.sum(-1), 32) > 30).all())
    True
    """
    check_sources(targets, estimates, mixture)
    mix = _expand_mixture(mixture, targets.shape[2])
    return _improvement(targets, estimates, sdr(targets, estimates, filter_length),
                        sdr(targets, mix, filter_length))


def _pairwise_si_snr(targets: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """``[B, S, S]`` SI-SNR (no mean removal) of estimate j against reference i, from Gram terms.

    float64 cancellation in ``‖ŝ‖² − <ŝ, s>²/‖s‖²`` is accurate far beyond what matching needs;
    the reported values are recomputed directly by :func:`si_snr` after alignment.
    """
    s, est = _float64(targets, estimates)
    cross = torch.bmm(s.transpose(1, 2), est)  # [B, S, S]: <s_i, ŝ_j>
    ref_energy = s.square().sum(dim=1).unsqueeze(2)  # [B, S, 1]
    est_energy = est.square().sum(dim=1).unsqueeze(1)  # [B, 1, S]
    signal = cross.square() / torch.where(ref_energy == 0, 1.0, ref_energy)  # ‖αs‖²
    value = _ratio_db(signal, (est_energy - signal).clamp_min(0.0))
    return _silence_convention(value, ref_energy == 0, est_energy == 0)


def align_estimates(targets: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """Reorders estimates to maximise the summed SI-SNR over the active references.

    The matching of the FUSS evaluation: silent reference slots do not influence it, and the
    estimates left over go to them.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references (silent slots all-zero).
    estimates : torch.Tensor
        ``[B, T, S]`` estimates in any order.

    Returns
    -------
    torch.Tensor
        ``[B, T, S]`` estimates, source ``i`` matched to reference ``i``.

    Example
    -------
    >>> s = torch.randn(2, 500, 3)
    >>> torch.equal(align_estimates(s, s[:, :, [1, 2, 0]]), s)
    True
    """
    check_sources(targets, estimates)
    with torch.autocast(device_type=targets.device.type, enabled=False):
        s, est = _float64(targets, estimates)
        _check_finite(targets=s, estimates=est)
        gain = _pairwise_si_snr(s, est)  # [B, S, S]
        active = active_sources(s).unsqueeze(2)  # [B, S, 1]
        cost = torch.where(active, -gain, torch.zeros_like(gain))  # silent rows: no preference
        return permute(estimates, best_permutation(cost))


def align_to_references(targets: torch.Tensor, estimates: torch.Tensor,
                        alignment: str = "oracle") -> torch.Tensor:
    """The estimates matched to the references, as many as there are references.

    ``fixed`` keeps output ``k`` for reference ``k``; ``oracle`` takes the permutation that
    maximises the summed SI-SNR over the active references (:func:`align_estimates`), one
    permutation for all channels. With more outputs than references (a 4-output GASS model on
    Libri2Mix) the references get all-zero slots first, so the surplus outputs are matched to
    silence; with fewer, all-zero outputs are added.

    Arguments
    ---------
    targets : torch.Tensor
        ``[C, T, S_ref]`` references (channels first; ``C = 1`` for mono).
    estimates : torch.Tensor
        ``[C, T, S_est]`` estimates.
    alignment : str
        ``oracle`` or ``fixed``.

    Returns
    -------
    torch.Tensor
        ``[C, T, S_ref]`` estimates, ``k`` matched to reference ``k``.

    Example
    -------
    >>> refs = torch.randn(1, 500, 2)
    >>> est = torch.cat([torch.zeros(1, 500, 1), refs[..., [1]], torch.zeros(1, 500, 1),
    ...                  refs[..., [0]]], dim=-1)                     # 4 outputs, shuffled
    >>> torch.equal(align_to_references(refs, est), refs)
    True
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS} (oracle: best permutation, "
                         f"for PIT-trained models; fixed: stem order), got {alignment!r}")
    if targets.dim() != 3 or estimates.dim() != 3 or targets.shape[:2] != estimates.shape[:2]:
        raise ValueError(f"expected targets [C, T, S] and estimates [C, T, S'] with the same C "
                         f"and T, got {tuple(targets.shape)} and {tuple(estimates.shape)}")
    num_refs, num_est = targets.shape[-1], estimates.shape[-1]
    if num_est < num_refs:
        estimates = torch.nn.functional.pad(estimates, (0, num_refs - num_est))
    if alignment == "fixed":
        return estimates[..., :num_refs]
    slots = max(num_refs, num_est)
    refs = torch.nn.functional.pad(targets, (0, slots - num_refs))
    channels, length = targets.shape[:2]
    flat = align_estimates(refs.reshape(1, channels * length, slots),
                                   estimates.reshape(1, channels * length, slots))
    return flat.reshape(channels, length, slots)[..., :num_refs]


def fuss_multi_source_si_snri(targets: torch.Tensor, estimates: torch.Tensor,
                              mixture: torch.Tensor) -> torch.Tensor:
    """FUSS multi-source SI-SNRi (MSi): mean SI-SNRi over the active references of each mixture.

    Estimates are aligned with :func:`align_estimates`; SI-SNR without mean removal, as in the
    FUSS evaluation. FUSS reports it over mixtures with 2-4 active sources (filter with
    ``active_sources(targets).sum(-1) >= 2``), pooling per-source values; for that pooling use
    ``si_snri(targets, align_estimates(targets, estimates), mixture, zero_mean=False)`` and
    the mask ``active_sources(targets)``. FUSS additionally drops pairs whose estimate is 20 dB
    quieter than the quietest reference (:func:`fuss_active_estimates`); this function keeps
    them (active references only).

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references, silent slots all-zero.
    estimates : torch.Tensor
        ``[B, T, S]`` estimates in any order.
    mixture : torch.Tensor
        ``[B, T]`` mixture.

    Returns
    -------
    torch.Tensor
        ``[B]`` mean SI-SNRi in dB over active references; 0.0 for a mixture without any.

    Example
    -------
    >>> s = torch.zeros(1, 4, 4)
    >>> s[0, :, 0] = torch.tensor([1.0, -1.0, 1.0, -1.0])
    >>> s[0, :, 2] = torch.tensor([1.0, 1.0, -1.0, -1.0])
    >>> fuss_multi_source_si_snri(s, s[:, :, [2, 3, 0, 1]], s.sum(-1))   # exact, shuffled
    tensor([100.], dtype=torch.float64)
    """
    check_sources(targets, estimates, mixture)
    aligned = align_estimates(targets, estimates)
    gain = si_snri(targets, aligned, mixture, zero_mean=False)  # [B, S]
    return active_mean(gain, targets)


def fuss_active_estimates(targets: torch.Tensor, estimates: torch.Tensor,
                          power_ratio: float = 0.01) -> torch.Tensor:
    """FUSS's rule for which aligned estimates count: power above 1 % (−20 dB) of the quietest
    active reference's.

    The FUSS evaluation pools multi-source SI-SNRi over reference/estimate pairs whose reference
    is active and whose estimate is not (near-)silent; this is the estimate side of that mask
    (``active_sources(targets) & fuss_active_estimates(targets, aligned)`` gives the pairs).

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references, silent slots all-zero.
    estimates : torch.Tensor
        ``[B, T, S]`` estimates aligned to them (:func:`align_estimates`).
    power_ratio : float
        Fraction of the quietest active reference's mean power an estimate must exceed.

    Returns
    -------
    torch.Tensor
        ``[B, S]`` bool; all false for a mixture without active references.

    Example
    -------
    >>> s = torch.zeros(1, 4, 3)
    >>> s[0, :, 0], s[0, :, 1] = 1.0, 0.5          # powers 1 and 0.25
    >>> est = torch.stack([s[0, :, 0], 0.05 * s[0, :, 1], 0.2 * s[0, :, 0]], -1)[None]
    >>> fuss_active_estimates(s, est)              # powers 1, 6.25e-4, 0.04 vs floor 2.5e-3
    tensor([[ True, False,  True]])
    """
    check_sources(targets, estimates)
    if not power_ratio > 0:
        raise ValueError(f"power_ratio must be positive, got {power_ratio!r}")
    active = active_sources(targets)  # [B, S]
    power_ref = targets.double().square().mean(dim=1)  # [B, S]
    power_est = estimates.double().square().mean(dim=1)
    quietest = torch.where(active, power_ref, torch.full_like(power_ref, float("inf"))).amin(dim=1)
    return (power_est > power_ratio * quietest.unsqueeze(1)) & active.any(dim=1, keepdim=True)


def fuss_single_source_si_snr(targets: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """FUSS single-source SI-SNR (1S): how well one output reproduces a single-source input.

    ``max_j si_snr(Σ_i s_i, ŝ_j)`` without mean removal: for a mixture with one active source it
    is the SI-SNR of the estimate matched to that source, as the FUSS evaluation reports (a
    separator should put the whole input in one output, not split it). Not the SI-SNR of
    ``Σ_j ŝ_j``, which mixture consistency makes trivially exact. FUSS reports it over the
    mixtures with ``active_sources(targets).sum(-1) == 1``.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references.
    estimates : torch.Tensor
        ``[B, T, S]`` estimates in any order.

    Returns
    -------
    torch.Tensor
        ``[B]`` SI-SNR in dB.

    Example
    -------
    >>> s = torch.zeros(1, 4, 2)
    >>> s[0, :, 1] = torch.tensor([1.0, -1.0, 1.0, -1.0])
    >>> est = torch.zeros(1, 4, 2)
    >>> est[0, :, 0] = torch.tensor([1.1, -0.9, 1.1, -0.9])    # in output 0, with a DC error
    >>> fuss_single_source_si_snr(s, est)
    tensor([20.0000], dtype=torch.float64)
    """
    check_sources(targets, estimates)
    whole = targets.sum(dim=2, keepdim=True).expand_as(targets)  # [B, T, S]
    return si_snr(whole, estimates, zero_mean=False).max(dim=1).values  # [B]


def _as_channels(x: torch.Tensor, name: str) -> torch.Tensor:
    """``[B, T, S]`` or ``[B, C, T, S]`` as float64 ``[B, C, T, S]``."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else x
        raise ValueError(f"expected {name} of shape [B, T, S] or [B, C, T, S] (stereo), got "
                         f"{shape}")
    if not x.is_floating_point():
        raise ValueError(f"expected floating-point {name}, got {x.dtype}")
    x = x.detach().to(torch.float64)
    return x.unsqueeze(1) if x.dim() == 3 else x


def _check_musdb(targets: torch.Tensor, estimates: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Validates MUSDB inputs and returns them as float64 ``[B, C, T, S]``."""
    s = _as_channels(targets, "targets")
    est = _as_channels(estimates, "estimates")
    if s.shape != est.shape:
        raise ValueError(f"targets and estimates must have the same shape, got "
                         f"{tuple(targets.shape)} and {tuple(estimates.shape)}")
    if min(s.shape) < 1:
        raise ValueError(f"expected non-empty signals, got shape {tuple(targets.shape)}")
    _check_finite(targets=s, estimates=est)
    return s, est


def musdb_usdr(targets: torch.Tensor, estimates: torch.Tensor, delta: float = 1e-7
               ) -> torch.Tensor:
    """Utterance-level SDR of the MDX challenge (the "new" MUSDB SDR).

    ``10·log10((‖s‖² + δ) / (‖s − ŝ‖² + δ))`` over the whole track and all channels, with the
    module's conventions: both silent 0 dB, a silent reference with a non-silent estimate −100 dB
    (with ``δ`` alone it would depend on the estimate's level), values limited to ±100 dB.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` or ``[B, C, T, S]`` reference stems.
    estimates : torch.Tensor
        Estimates of the same shape, aligned.
    delta : float
        The MDX challenge's ``δ = 1e-7``.

    Returns
    -------
    torch.Tensor
        ``[B, S]`` uSDR in dB.

    Example
    -------
    >>> s = torch.ones(1, 2, 1000, 4)                       # stereo, 4 stems
    >>> musdb_usdr(s, 0.9 * s)[0, 0].item()
    20.0...
    >>> musdb_usdr(torch.zeros(1, 100, 1), torch.full((1, 100, 1), 1e-3))   # silent reference
    tensor([[-100.]], dtype=torch.float64)
    """
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta > 0:
        raise ValueError(f"expected delta as a positive float, got {delta!r}")
    s, est = _check_musdb(targets, estimates)
    num = s.square().sum(dim=(1, 2)) + delta  # [B, S]
    den = (s - est).square().sum(dim=(1, 2)) + delta
    value = (10.0 * torch.log10(num / den)).clamp(-DB_LIMIT, DB_LIMIT)
    ref_silent, est_silent = ((x == 0).all(dim=1).all(dim=1) for x in (s, est))  # [B, S]
    return torch.where(ref_silent & ~est_silent, torch.full_like(value, -DB_LIMIT), value)


@functools.cache
def _museval_metrics() -> ModuleType:
    """museval's BSS Eval v4 module, importable without ffmpeg.

    ``import museval`` imports musdb and stempeg, and stempeg raises at import time when ffmpeg
    is missing (it is not a gass dependency). ``museval/metrics.py`` needs only numpy and scipy,
    so when the package import fails it is loaded on its own from the installed museval.
    """
    try:
        from museval import metrics
        return metrics
    except RuntimeError:
        spec = importlib.util.find_spec("museval")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("museval is not installed; pip install -r requirements.txt") from None
        path = Path(next(iter(spec.submodule_search_locations))) / "metrics.py"
        module_spec = importlib.util.spec_from_file_location("_gass_museval_metrics", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module


def musdb_csdr(targets: torch.Tensor, estimates: torch.Tensor, window: int = 44100,
               hop: int = 44100) -> torch.Tensor:
    """MUSDB cSDR: median over frames of museval's BSS Eval v4 SDR (SiSEC 2018 protocol).

    Calls museval's ``bss_eval`` per track with the arguments of ``museval.evaluate`` (v4
    images, time-invariant 512-tap filters, 1-s frames at 44.1 kHz). museval marks a frame NaN
    when any reference or estimate is silent in it; those frames are skipped (``nanmedian``,
    as the MUSDB aggregation does), and frame values are limited to ±100 dB. Where museval
    scores no frame at all (a stem silent throughout, which museval refuses), the entry falls
    back to :func:`snr` over the whole track (the v4 image SDR is a framewise SNR, so this is
    the same measure on one frame), with the module's silence conventions.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` or ``[B, C, T, S]`` reference stems.
    estimates : torch.Tensor
        Estimates of the same shape, aligned.
    window : int
        Frame length in samples (1 s at 44.1 kHz).
    hop : int
        Frame hop in samples.

    Returns
    -------
    torch.Tensor
        ``[B, S]`` cSDR in dB (float64).

    Example
    -------
    >>> s = torch.randn(1, 800, 2)
    >>> musdb_csdr(s, 0.9 * s, window=200, hop=200)
    tensor([[20.0000, 20.0000]], dtype=torch.float64)
    """
    for name, value in (("window", window), ("hop", hop)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expected {name} as a positive number of samples, got {value!r}")
    s, est = _check_musdb(targets, estimates)  # [B, C, T, S]
    metrics = _museval_metrics()
    whole = snr(s.flatten(1, 2), est.flatten(1, 2))  # [B, S]: the fallback
    out = whole.clone()
    refs = s.permute(0, 3, 2, 1).cpu().numpy()  # [B, S, T, C], museval's layout
    ests = est.permute(0, 3, 2, 1).cpu().numpy()
    for b in range(refs.shape[0]):  # museval evaluates one track at a time
        silent = [(x.sum(axis=2) == 0).all(axis=1).any() for x in (refs[b], ests[b])]
        if any(silent):  # museval raises for a stem that is silent throughout
            continue
        frames = metrics.bss_eval(refs[b], ests[b], window=window, hop=hop,
                                  compute_permutation=False, filters_len=512,
                                  framewise_filters=False, bsseval_sources_version=False)[0]
        frames = numpy.clip(frames, -DB_LIMIT, DB_LIMIT)  # [S, frames], NaN kept
        for j, row in enumerate(frames):
            if not numpy.isnan(row).all():
                out[b, j] = float(numpy.nanmedian(row))
    return out
