"""The metrics of two benchmark protocols: FUSS (Wisdom et al., 2021) and MUSDB18 (SiSEC 2018, MDX).

Built on :mod:`gass_modules.metrics` (same shapes, float64 values in dB and conventions for
silence and the ±100 dB limit):

* FUSS: multi-source SI-SNRi over the active references only
  (:func:`fuss_multi_source_si_snri`, with :func:`fuss_active_estimates`, FUSS's rule for which
  estimates count), and the single-source SI-SNR with which one output reproduces a
  single-source input (:func:`fuss_single_source_si_snr`). They align the estimates themselves,
  as the FUSS evaluation does.
* MUSDB: uSDR, the utterance-level SDR of the MDX challenge (:func:`musdb_usdr`), and cSDR, the
  median over 1-s frames of museval's BSS Eval v4 SDR (:func:`musdb_csdr`). Their inputs are
  ``[B, T, S]`` or ``[B, C, T, S]`` (stereo), aligned.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy
import torch

from gass_modules.losses import check_sources
from gass_modules.metrics import (
    DB_LIMIT,
    active_mean,
    active_sources,
    align_estimates,
    check_finite,
    si_snr,
    si_snri,
    snr,
)
from gass_modules.optional import import_optional

__all__ = [
    "fuss_active_estimates",
    "fuss_multi_source_si_snri",
    "fuss_single_source_si_snr",
    "musdb_csdr",
    "musdb_usdr",
]


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
    check_finite(targets=s, estimates=est)
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
    try:  # museval is the optional extra [musdb]: a clear message when it is missing
        return import_optional("museval.metrics", "musdb", "MUSDB18 cSDR")
    except RuntimeError:
        spec = importlib.util.find_spec("museval")
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
