"""Separation metrics: SI-SNR, SNR, SDR, their improvements, and aligning estimates.

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
* FUSS (Wisdom et al., 2021) and MUSDB (uSDR, cSDR) protocol metrics are in
  :mod:`gass_modules.evaluation.benchmark_metrics`, with the same conventions.

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

import fast_bss_eval
import torch

from gass_modules.losses import best_permutation, check_sources, permute
from gass_modules.order import check_order

__all__ = [
    "DB_LIMIT",
    "active_mean",
    "active_sources",
    "align_estimates",
    "align_to_references",
    "check_finite",
    "sdr",
    "sdri",
    "si_snr",
    "si_snri",
    "snr",
    "snri",
]

DB_LIMIT = 100.0


def _ratio_db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``10·log10(num/den)`` limited to ±DB_LIMIT, with 0/0 = 0 dB (float64, never NaN)."""
    value = 10.0 * (torch.log10(num) - torch.log10(den))  # ±inf for zeros, nan for 0/0
    value = torch.where((num == 0) & (den == 0), torch.zeros_like(value), value)
    return value.clamp(-DB_LIMIT, DB_LIMIT)


def _float64(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The tensors as float64 (metrics are evaluation code: precision over speed)."""
    return [x.detach().to(torch.float64) for x in tensors]


def check_finite(**tensors: torch.Tensor) -> None:
    """Raises a ValueError naming the tensors that hold NaN or Inf (a metric is undefined there).

    Arguments
    ---------
    **tensors : torch.Tensor
        Names (for the message) and tensors to check.

    Example
    -------
    >>> check_finite(targets=torch.zeros(2), estimates=torch.ones(2))
    >>> check_finite(targets=torch.zeros(2), estimates=torch.tensor([0.0, float("nan")]))
    Traceback (most recent call last):
    ...
    ValueError: metrics got NaN or Inf values in estimates; the metric is undefined there ...
    """
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
        check_finite(targets=s, estimates=est)
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
        check_finite(targets=s, estimates=est)
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
        check_finite(targets=s, estimates=est)
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
        check_finite(targets=s, estimates=est)
        gain = _pairwise_si_snr(s, est)  # [B, S, S]
        active = active_sources(s).unsqueeze(2)  # [B, S, 1]
        cost = torch.where(active, -gain, torch.zeros_like(gain))  # silent rows: no preference
        return permute(estimates, best_permutation(cost))


def align_to_references(targets: torch.Tensor, estimates: torch.Tensor,
                        order: str = "aligned") -> torch.Tensor:
    """The estimates matched to the references, as many as there are references.

    ``"fixed"`` keeps output ``k`` for reference ``k``; ``"aligned"`` takes the permutation that
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
    order : str
        The model's output order (:mod:`gass_modules.order`): ``"aligned"`` (PIT-trained
        outputs: best permutation) or ``"fixed"`` (output ``k`` is stem ``k``).

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
    check_order(order)
    if targets.dim() != 3 or estimates.dim() != 3 or targets.shape[:2] != estimates.shape[:2]:
        raise ValueError(f"expected targets [C, T, S] and estimates [C, T, S'] with the same C "
                         f"and T, got {tuple(targets.shape)} and {tuple(estimates.shape)}")
    num_refs, num_est = targets.shape[-1], estimates.shape[-1]
    if num_est < num_refs:
        estimates = torch.nn.functional.pad(estimates, (0, num_refs - num_est))
    if order == "fixed":
        return estimates[..., :num_refs]
    slots = max(num_refs, num_est)
    refs = torch.nn.functional.pad(targets, (0, slots - num_refs))
    channels, length = targets.shape[:2]
    flat = align_estimates(refs.reshape(1, channels * length, slots),
                                   estimates.reshape(1, channels * length, slots))
    return flat.reshape(channels, length, slots)[..., :num_refs]
