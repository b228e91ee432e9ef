"""Per-source scores of aligned estimates: SI-SNR, SI-SNRi, output energies and activity.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math

import torch

from gass_modules import metrics


def check_pair(mix: torch.Tensor, targets: torch.Tensor) -> None:
    """Raises a ValueError unless ``mix`` is ``[B, T]`` and ``targets`` is ``[B, T, S]``.

    Arguments
    ---------
    mix : torch.Tensor
        ``[B, T]`` mixtures.
    targets : torch.Tensor
        ``[B, T, S]`` references, the same ``B`` and ``T``, at least 1 sample and 1 source.

    Example
    -------
    >>> check_pair(torch.zeros(2, 8), torch.zeros(2, 8, 4))
    >>> check_pair(torch.zeros(2, 8), torch.zeros(2, 9, 4))
    Traceback (most recent call last):
    ...
    ValueError: expected mix [B, T] and targets [B, T, S] with the same B and T, got ... (2, 9, 4)
    """
    if mix.dim() != 2 or targets.dim() != 3 or targets.shape[:2] != mix.shape:
        raise ValueError(f"expected mix [B, T] and targets [B, T, S] with the same B and T, got "
                         f"mix {tuple(mix.shape)} and targets {tuple(targets.shape)}")
    if mix.shape[1] < 1 or targets.shape[2] < 1:
        raise ValueError(f"expected at least 1 sample and 1 source, got targets "
                         f"{tuple(targets.shape)}")


def power_db(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Mean power in dB along ``dim`` (``-inf`` for an all-zero signal, never NaN).

    Arguments
    ---------
    x : torch.Tensor
        Signals, e.g. ``[B, T, S]``.
    dim : int
        The time axis.

    Returns
    -------
    torch.Tensor
        ``10 log10(mean(x²))``, ``x`` with ``dim`` removed.

    Example
    -------
    >>> power_db(torch.ones(1, 4) * 0.1)
    tensor([-20.])
    """
    return 10.0 * torch.log10(x.double().pow(2).mean(dim)).to(torch.float32)


def score_separation(mix: torch.Tensor, targets: torch.Tensor, aligned: torch.Tensor,
                     activity_db: float = -20.0) -> dict[str, torch.Tensor]:
    """Per-source scores of aligned estimates: SI-SNR, SI-SNRi, energies and activity.

    A target is *present* when it is not all-zero (``metrics.active_sources``); present targets
    get SI-SNR and SI-SNRi (``gass_modules.metrics``: zero-mean, limited to ±100 dB), the others
    NaN. For over/under-separation counting a target or an output is *active* when its power is
    at least ``activity_db`` relative to the mixture's; a mixture is over-separated when it has
    more active outputs than active targets, under-separated when fewer. Mixtures whose
    estimates hold NaN/Inf get ``finite = False`` and NaN scores instead of an error, so that
    one failure does not abort an evaluation.

    Arguments
    ---------
    mix : torch.Tensor
        ``[B, T]`` mixtures.
    targets : torch.Tensor
        ``[B, T, S]`` references.
    aligned : torch.Tensor
        ``[B, T, S]`` estimates, output ``s`` matched to target ``s``
        (``gass_modules.metrics.align_estimates``).
    activity_db : float
        Activity threshold in dB relative to the mixture power.

    Returns
    -------
    dict of torch.Tensor
        ``si_snr``, ``si_snri`` ([B, S], dB, NaN for absent targets), ``energy_db`` ([B, S],
        power of each output relative to the mixture, dB), ``present``, ``active_target``,
        ``active_output`` ([B, S] bool), ``finite`` ([B] bool: all estimates finite).

    Example
    -------
    >>> targets = torch.zeros(1, 1000, 2)
    >>> targets[0, :, 0] = torch.randn(1000)
    >>> scores = score_separation(targets.sum(-1), targets, targets.clone())
    >>> scores["present"].tolist(), scores["active_output"].tolist()
    ([[True, False]], [[True, False]])
    >>> scores["si_snr"][0, 0].item(), bool(scores["si_snr"][0, 1].isnan())
    (100.0, True)
    """
    check_pair(mix, targets)
    if aligned.shape != targets.shape:
        raise ValueError(f"expected estimates shaped like targets {tuple(targets.shape)}, got "
                         f"{tuple(aligned.shape)}")
    if not (torch.isfinite(mix).all() and torch.isfinite(targets).all()):
        raise ValueError("the mixture or the references hold NaN/Inf: check the data")
    targets, aligned, mix = targets.double(), aligned.double(), mix.double()
    finite = torch.isfinite(aligned).all(dim=2).all(dim=1)  # [B]
    safe = torch.where(finite[:, None, None], aligned, 0.0)  # metrics refuse NaN: score zeros
    present = metrics.active_sources(targets)  # [B, S]
    mix_db = power_db(mix, dim=1).unsqueeze(1)  # [B, 1]
    energy_db = power_db(aligned, dim=1) - mix_db  # [B, S]
    active_target = (power_db(targets, dim=1) - mix_db >= activity_db) & present
    active_output = (energy_db >= activity_db) & finite[:, None]
    si_snr = metrics.si_snr(targets, safe)  # [B, S]
    si_snri = metrics.si_snri(targets, safe, mix)  # [B, S]
    keep = present & finite[:, None]
    return {
        "si_snr": torch.where(keep, si_snr, math.nan).float(),
        "si_snri": torch.where(keep, si_snri, math.nan).float(),
        "energy_db": energy_db.float(),
        "present": present,
        "active_target": active_target,
        "active_output": active_output,
        "finite": finite,
    }


__all__ = ["check_pair", "power_db", "score_separation"]
