"""Permutation-invariant thresholded log-MSE, the GASS training loss (docs/architecture.md).

GASS (Pons et al., ICASSP 2024) trains separators that always predict ``S = 4`` sources with
permutation-invariant training (PIT) on a log-MSE thresholded at ``snr_max = 30`` dB, the loss of
the FUSS baseline (Wisdom et al., 2021). For a target ``s`` and an estimate ``ŝ``:

* active target (not all-zero): ``L = 10·log10(‖s − ŝ‖² + τ‖s‖²)``, ``τ = 10^(−snr_max/10)``:
  the ``τ‖s‖²`` term caps the SNR the loss rewards at ``snr_max``, so a well separated source stops
  dominating the gradient;
* inactive (all-zero) target: ``L = 10·log10(‖ŝ‖² + τ0‖x‖²)``, ``τ0 = 10^(−zero_snr_max/10)``,
  ``x`` the mixture: surplus outputs are pushed towards silence, down to ``zero_snr_max`` dB below
  the mixture.

The ``[B, S, S]`` matrix of pairwise losses follows from ``‖s_i‖²``, ``‖ŝ_j‖²`` and the cross
terms ``<s_i, ŝ_j>`` of one batched matrix product (``‖s − ŝ‖² = ‖s‖² + ‖ŝ‖² − 2<s, ŝ>``),
instead of a ``[B, T, S, S]`` tensor of differences. The best permutation is an exhaustive tensor
search for ``S ≤ 4`` (24 permutations: gather, sum, argmin) and scipy's Hungarian solver above.

Numerics (all documented choices):

* computed in float32 with autocast disabled (bf16/half inputs are upcast); float64 inputs stay
  float64. Where TF32 matmuls are enabled on CUDA, the Gram products run in float64, since TF32's
  10-bit mantissa would swamp the −30 dB floor in the cancellation ``‖s‖² + ‖ŝ‖² − 2<s, ŝ>``;
* the error energy is clamped at 0 (that cancellation can leave ``−1e-7·‖s‖²``); with
  ``τ = 1e-3`` the rounding stays ~1000× below the floor;
* energies that overflow float32 (peak amplitudes above ~1e15 for 4 s at 16 kHz) are recomputed
  in float64, so the loss is correct for any float32 input;
* ``LOG_EPS = 1e-30`` is added inside the log only so that an all-zero mixture with all-zero
  estimates (where both thresholds vanish) stays finite: such an item scores
  ``10·log10(1e-30) = −300`` dB with a zero gradient. It is far below any real energy (it biases
  the loss by < 1e-5 dB while ``τ‖s‖² > 1e-24``, i.e. peak amplitudes above ~1e-13);
* inputs with NaN or Inf raise a ``ValueError`` naming the tensor and batch items.

Sync-free mode (``gass_modules.sync_free``: inside ``sync_free()`` and under ``torch.compile``;
the training loop turns it on) reads no tensor value on the host: NaN/Inf inputs give a
non-finite loss for their batch items instead of the error (the training loop skips such a step
with an on-device flag); float32 overflow is avoided by scaling each item by an exact power of two
(``2^-k``, ``k = 0`` unless the peak amplitude reaches ``2^40``) and adding ``6.02·k`` dB back,
instead of a float64 retry; ``permute`` checks its permutations with ``torch._assert_async``.
The Hungarian search (``S > 4``) still runs on the host in both modes.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy
import torch
from scipy.optimize import linear_sum_assignment

from gass_modules.sync_free import is_sync_free

__all__ = [
    "LOG_EPS",
    "best_permutation",
    "check_sources",
    "fixed_order_log_mse",
    "mixture_consistency",
    "pairwise_log_mse",
    "permute",
    "pit_log_mse",
]

LOG_EPS = 1e-30
# Exhaustive tensor search up to this many sources (24 permutations), Hungarian above.
_EXHAUSTIVE_MAX_SOURCES = 4
# Exhaustive search is refused above this (8! = 40320 permutations) even when asked for.
_EXHAUSTIVE_LIMIT = 8
# Energies above this are recomputed in float64 (float32 overflows at 3.4e38; the cancellation
# sums up to 4x the largest energy).
_FLOAT32_ENERGY_MAX = 1e36
# Sync-free mode scales float32 inputs by 2^-k so that their peak stays below 2^40: energies then
# stay below T·S²·2^80, far from float32's 2^128 for any realistic T and S.
_SYNC_FREE_PEAK_EXPONENT = 40
_DB_PER_OCTAVE = 20.0 * math.log10(2.0)  # the loss shift of an amplitude scale of 2


def check_sources(targets: torch.Tensor, estimates: torch.Tensor,
                  mixtures: torch.Tensor | None = None) -> None:
    """Raises an error that says what to do unless the inputs follow docs/architecture.md.

    Shared by the losses and :mod:`gass_modules.metrics`: ``targets`` and ``estimates`` are
    floating-point ``[B, T, S]`` tensors of the same shape on one device (``B, T, S >= 1``), and
    ``mixtures``, when given, is a floating-point ``[B, T]`` tensor on that device.

    Arguments
    ---------
    targets : torch.Tensor
        Candidate ``[B, T, S]`` references.
    estimates : torch.Tensor
        Candidate ``[B, T, S]`` estimates.
    mixtures : torch.Tensor, optional
        Candidate ``[B, T]`` mixtures.

    Example
    -------
    >>> check_sources(torch.zeros(2, 100, 4), torch.zeros(2, 100, 4), torch.zeros(2, 100))
    >>> check_sources(torch.zeros(2, 100, 4), torch.zeros(2, 100, 3))
    Traceback (most recent call last):
    ...
    ValueError: targets and estimates must have the same shape [B, T, S], got targets ...
    """
    for name, x in (("targets", targets), ("estimates", estimates)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected {name} as a torch.Tensor [B, T, S], got {type(x).__name__}")
        if x.dim() != 3:
            hint = "; add the source axis with x.unsqueeze(-1)" if x.dim() == 2 else ""
            raise ValueError(f"expected {name} of shape [B, T, S] (batch, time, sources), got "
                             f"shape {tuple(x.shape)}{hint}")
        if not x.is_floating_point():
            raise ValueError(f"expected floating-point {name}, got {x.dtype}; convert with "
                             ".float()")
    if targets.shape != estimates.shape:
        raise ValueError(f"targets and estimates must have the same shape [B, T, S], got "
                         f"targets {tuple(targets.shape)} and estimates {tuple(estimates.shape)}"
                         "; pad or crop the estimates to the target length and predict as many "
                         "sources as there are target slots (silent slots are all-zero)")
    batch, length, sources = targets.shape
    if batch < 1 or length < 1 or sources < 1:
        raise ValueError(f"expected at least 1 item, 1 sample and 1 source, got [B, T, S] = "
                         f"{tuple(targets.shape)}")
    if targets.device != estimates.device:
        raise ValueError(f"targets are on {targets.device} but estimates on {estimates.device}; "
                         "move both to the same device")
    if mixtures is not None:
        if not isinstance(mixtures, torch.Tensor):
            raise TypeError(f"expected mixtures as a torch.Tensor [B, T] or None, got "
                            f"{type(mixtures).__name__}")
        if mixtures.shape != (batch, length):
            raise ValueError(f"expected mixtures of shape [B, T] = {(batch, length)} to match the "
                             f"targets, got {tuple(mixtures.shape)}")
        if not mixtures.is_floating_point():
            raise ValueError(f"expected floating-point mixtures, got {mixtures.dtype}")
        if mixtures.device != targets.device:
            raise ValueError(f"mixtures are on {mixtures.device} but targets on "
                             f"{targets.device}; move both to the same device")


def _check_db(name: str, value: float) -> float:
    """Returns ``value`` as a float, or raises unless it is a finite number of decibels."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected {name} as a finite number of dB (e.g. 30.0), got {value!r}")
    return float(value)


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32 for 16/32-bit inputs, float64 when any input is float64 (or TF32 is on)."""
    dtype = torch.float32
    for x in tensors:
        dtype = torch.promote_types(dtype, x.dtype)
    if tensors[0].device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        dtype = torch.float64
    return dtype


class _GramStats(torch.autograd.Function):
    """Target Gram matrix, estimate energies and cross terms, with a fused backward.

    Forward: three batched matrix products over time. Backward (estimates):
    ``∂/∂ŝ_j = Σ_i s_i·g_cross[i, j] + 2·ŝ_j·g_energy[j]``, one matrix product plus one
    in-place multiply-add, where autograd would add two matrix products and an extra sum.
    """

    @staticmethod
    def forward(ctx, targets, estimates):  # [B, T, S] each
        """Returns (target Gram [B, S, S], estimate energies [B, S], cross [B, S, S])."""
        targets_t = targets.transpose(1, 2)  # [B, S, T]
        gram = torch.bmm(targets_t, targets)  # [B, S, S]: <s_i, s_k>
        energies = torch.bmm(estimates.transpose(1, 2), estimates).diagonal(
            dim1=1, dim2=2).contiguous()  # [B, S]: ‖ŝ_j‖²
        cross = torch.bmm(targets_t, estimates)  # [B, S, S]: <s_i, ŝ_j>
        ctx.save_for_backward(targets, estimates)
        return gram, energies, cross

    @staticmethod
    def backward(ctx, grad_gram, grad_energies, grad_cross):
        """Gradients with respect to targets and estimates."""
        targets, estimates = ctx.saved_tensors
        grad_targets = grad_estimates = None
        if ctx.needs_input_grad[1]:
            grad_estimates = torch.bmm(targets, grad_cross)  # [B, T, S]
            _add_scaled_sources_(grad_estimates, estimates, 2.0 * grad_energies)
        if ctx.needs_input_grad[0]:
            grad_targets = torch.bmm(targets, grad_gram + grad_gram.transpose(1, 2))
            grad_targets += torch.bmm(estimates, grad_cross.transpose(1, 2))  # [B, T, S]
        return grad_targets, grad_estimates


def _add_scaled_sources_(out: torch.Tensor, x: torch.Tensor, scale: torch.Tensor) -> None:
    """``out += x * scale[:, None, :]`` in place, for ``[B, T, S]`` tensors and ``scale [B, S]``.

    The plain broadcast runs an inner loop of only ``S = 4`` elements; viewing ``k`` time steps
    as one row (``[B, T/k, k·S]`` times a tiled ``[B, 1, k·S]`` scale) lets the CPU kernel
    vectorise, about 3x faster here. Non-contiguous inputs take the plain broadcast.
    """
    batch, length, sources = x.shape
    if not (x.is_contiguous() and out.is_contiguous()):
        out.addcmul_(x, scale.unsqueeze(1))
        return
    k = math.gcd(length, 16)
    shape = (batch, length // k, k * sources)
    out.view(shape).addcmul_(x.view(shape), scale.repeat(1, k).unsqueeze(1))


def _power_of_two_scales(*tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item exact scales ``2^-k`` bringing float32 peaks below ``2^40``, and ``k`` (float).

    ``k = 0`` (scale exactly 1) unless an item's peak amplitude reaches ``2^40``. Computed on
    the device from the float32 exponent bits, so it is exact and needs no host sync.
    """
    peak = torch.stack([x.detach().abs().flatten(1).amax(dim=1) for x in tensors], 1).amax(1)
    biased = (peak.view(torch.int32) >> 23) & 0xFF  # [B]: peak < 2^(biased - 126)
    k = (biased - (126 + _SYNC_FREE_PEAK_EXPONENT)).clamp_min(0)  # [B]; NaN/Inf: 89, harmless
    scale = ((127 - k) << 23).view(torch.float32)  # [B]: exactly 2^-k
    return scale, k.to(torch.float32)


def _log_mse_matrix(targets: torch.Tensor, estimates: torch.Tensor,
                    mixtures: torch.Tensor | None, snr_max: float, zero_snr_max: float,
                    dtype: torch.dtype) -> torch.Tensor | None:
    """The pairwise matrix in ``dtype``, or None when energies overflow it (caller retries).

    In sync-free mode it never returns None and reads nothing on the host: float32 inputs are
    scaled by exact powers of two instead (results are bit-identical while peaks stay below
    ``2^40``), and non-finite inputs give non-finite entries instead of an error.
    """
    targets = targets.to(dtype)  # no copy when already in dtype
    estimates = estimates.to(dtype)
    sync_free = is_sync_free()
    octaves = None
    if sync_free and dtype == torch.float32:
        mixtures = None if mixtures is None else mixtures.to(dtype)
        scale, octaves = _power_of_two_scales(targets, estimates, *(
            () if mixtures is None else (mixtures,)))  # [B] each
        targets, estimates = targets * scale[:, None, None], estimates * scale[:, None, None]
        mixtures = None if mixtures is None else mixtures * scale[:, None]
    gram, est_energy, cross = _GramStats.apply(targets, estimates)
    tgt_energy = gram.diagonal(dim1=1, dim2=2)  # [B, S]: ‖s_i‖²
    if mixtures is None:
        mix_energy = gram.sum(dim=(1, 2))  # [B]: ‖Σ_i s_i‖² = Σ_ik <s_i, s_k>
    else:
        mix = mixtures.to(dtype)
        mix_energy = (mix * mix).sum(dim=1)  # [B]
    stats = torch.cat([tgt_energy, est_energy, mix_energy.unsqueeze(1)], dim=1)  # [B, 2S + 1]
    # Checked mode: one host sync per call (False for NaN/Inf too): float32 overflow, bad inputs.
    if not sync_free and not bool((stats <= _FLOAT32_ENERGY_MAX).all()):
        if dtype != torch.float64:
            return None
        if not bool(torch.isfinite(stats).all()):
            _raise_non_finite(targets, estimates, mixtures)
    tau = 10.0 ** (-snr_max / 10.0)
    tau0 = 10.0 ** (-zero_snr_max / 10.0)
    # ‖s_i − ŝ_j‖² [B, S, S]; for an all-zero target the cross terms vanish and it is ‖ŝ_j‖².
    error = (tgt_energy.unsqueeze(2) + est_energy.unsqueeze(1) - 2.0 * cross).clamp_min(0.0)
    active = tgt_energy > 0  # [B, S]
    threshold = torch.where(active, tau * tgt_energy, tau0 * mix_energy.unsqueeze(1))  # [B, S]
    matrix = 10.0 * torch.log10(error + threshold.unsqueeze(2) + LOG_EPS)  # [B, S, S]
    if octaves is not None:  # undo the sync-free scaling: 2^-k in amplitude is −6.02·k dB
        matrix = matrix + (_DB_PER_OCTAVE * octaves)[:, None, None]
    return matrix


def _raise_non_finite(targets: torch.Tensor, estimates: torch.Tensor,
                      mixtures: torch.Tensor | None) -> None:
    """Raises a ValueError naming the non-finite inputs and their batch items."""
    named = [("targets", targets), ("estimates", estimates)]
    if mixtures is not None:
        named.append(("mixtures", mixtures))
    parts = []
    for name, x in named:
        bad = (~torch.isfinite(x)).flatten(1).any(dim=1).nonzero().flatten().tolist()
        if bad:
            parts.append(f"{name} (batch items {bad})")
    found = ", ".join(parts) if parts else "the inputs"
    raise ValueError(f"log-MSE got NaN or Inf values in {found}: a diverged separator (lower the "
                     "learning rate, clip gradients) or corrupt data; the loss is undefined there")


def pairwise_log_mse(targets: torch.Tensor, estimates: torch.Tensor,
                     mixtures: torch.Tensor | None = None, snr_max: float = 30.0,
                     zero_snr_max: float = 20.0) -> torch.Tensor:
    """Thresholded log-MSE of every estimate against every target.

    Entry ``[b, i, j]`` is the loss of estimate ``j`` against target ``i`` in dB:
    ``10·log10(‖s_i − ŝ_j‖² + τ‖s_i‖²)`` for an active target, ``10·log10(‖ŝ_j‖² + τ0‖x‖²)``
    for an all-zero target, with ``τ = 10^(−snr_max/10)``, ``τ0 = 10^(−zero_snr_max/10)``.
    Differentiable with respect to both ``targets`` and ``estimates``.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` reference sources ``s``; silent slots are all-zero.
    estimates : torch.Tensor
        ``[B, T, S]`` estimated sources ``ŝ``.
    mixtures : torch.Tensor, optional
        ``[B, T]`` mixtures ``x`` for the threshold of silent targets; ``None`` uses
        ``Σ_i s_i`` (the same thing when the mixture is the sum of its sources).
    snr_max : float
        SNR in dB above which an active target's loss saturates.
    zero_snr_max : float
        dB below the mixture energy at which a silent target's loss saturates.

    Returns
    -------
    torch.Tensor
        ``[B, S, S]`` losses in dB (float32, float64 for float64 inputs).

    Example
    -------
    >>> s = torch.zeros(1, 100, 2)
    >>> s[0, :, 0] = 1.0                  # one active source, one silent slot
    >>> m = pairwise_log_mse(s, s.flip(-1))
    >>> m.shape
    torch.Size([1, 2, 2])
    >>> round(m[0, 0, 1].item(), 2)       # estimate 1 == target 0: the −30 dB floor of ‖s‖² = 100
    -10.0
    >>> round(m[0, 1, 1].item(), 2)       # silent target, active estimate: 10·log10(100)
    20.0
    """
    check_sources(targets, estimates, mixtures)
    snr_max = _check_db("snr_max", snr_max)
    zero_snr_max = _check_db("zero_snr_max", zero_snr_max)
    inputs = (targets, estimates) if mixtures is None else (targets, estimates, mixtures)
    dtype = _compute_dtype(*inputs)
    with torch.autocast(device_type=targets.device.type, enabled=False):
        matrix = _log_mse_matrix(targets, estimates, mixtures, snr_max, zero_snr_max, dtype)
        if matrix is None:  # float32 overflow: the same in float64
            matrix = _log_mse_matrix(targets, estimates, mixtures, snr_max, zero_snr_max,
                                     torch.float64)
            matrix = matrix.to(dtype)
    return matrix


@functools.cache
def _permutation_table(num_sources: int, device: torch.device) -> torch.Tensor:
    """All ``S!`` permutations of ``range(S)`` as a ``[S!, S]`` LongTensor."""
    perms = list(itertools.permutations(range(num_sources)))
    return torch.tensor(perms, dtype=torch.long, device=device)


def _exhaustive_search(matrix: torch.Tensor) -> torch.Tensor:
    """Best permutation by scoring all ``S!`` permutations at once (no Python loop)."""
    sources = matrix.shape[-1]
    # dynamo traces the table's construction into the graph as a constant (it ignores the cache)
    table_of = _permutation_table.__wrapped__ if torch.compiler.is_compiling() else (
        _permutation_table)
    table = table_of(sources, matrix.device)  # [K, S]
    rows = torch.arange(sources, device=matrix.device)  # [S]
    costs = matrix[:, rows, table].sum(dim=-1)  # [B, K]: Σ_i matrix[b, i, table[k, i]]
    return table[costs.argmin(dim=-1)]  # [B, S]


def _hungarian_search(matrix: torch.Tensor) -> torch.Tensor:
    """Best permutation with scipy's ``linear_sum_assignment`` (CPU, one call per item)."""
    costs = matrix.detach().to("cpu", torch.float64).numpy()
    perms = [linear_sum_assignment(cost)[1] for cost in costs]  # scipy solves one matrix a call
    return torch.as_tensor(numpy.stack(perms), dtype=torch.long, device=matrix.device)


def best_permutation(matrix: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Assignment of estimates to targets that minimises the summed pairwise loss.

    Arguments
    ---------
    matrix : torch.Tensor
        ``[B, S, S]`` pairwise losses, entry ``[b, i, j]`` = loss of estimate ``j`` against
        target ``i`` (as :func:`pairwise_log_mse` returns); must be finite (checked outside
        sync-free mode; there a NaN matrix gives some permutation and the loss stays NaN).
    method : str
        ``"auto"`` (exhaustive for ``S ≤ 4``, Hungarian above), ``"exhaustive"`` (tensor search
        over all ``S!`` permutations, ``S ≤ 8``) or ``"hungarian"`` (scipy
        ``linear_sum_assignment``, one call per item on the CPU).

    Returns
    -------
    torch.Tensor
        ``[B, S]`` LongTensor ``perm``: estimate ``perm[b, i]`` goes with target ``i``. Ties go to
        the first permutation in lexicographic order (exhaustive) or to scipy's choice.

    Example
    -------
    >>> m = torch.tensor([[[5.0, 0.0], [0.0, 5.0]]])
    >>> best_permutation(m)
    tensor([[1, 0]])
    >>> best_permutation(m, method="hungarian")
    tensor([[1, 0]])
    """
    if not isinstance(matrix, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor [B, S, S], got {type(matrix).__name__}")
    if matrix.dim() != 3 or matrix.shape[1] != matrix.shape[2] or matrix.shape[1] < 1:
        raise ValueError(f"expected a square pairwise matrix [B, S, S] with S >= 1, got shape "
                         f"{tuple(matrix.shape)}")
    if not matrix.is_floating_point():
        raise ValueError(f"expected a floating-point matrix, got {matrix.dtype}")
    if method not in ("auto", "exhaustive", "hungarian"):
        raise ValueError(f"expected method 'auto', 'exhaustive' or 'hungarian', got {method!r}")
    sources = matrix.shape[-1]
    if method == "exhaustive" and sources > _EXHAUSTIVE_LIMIT:
        raise ValueError(f"exhaustive search over {sources}! permutations is too large (at most "
                         f"{_EXHAUSTIVE_LIMIT} sources); use method='hungarian'")
    if not is_sync_free() and not bool(torch.isfinite(matrix).all()):  # sync-free: NaN loss
        raise ValueError("the pairwise matrix holds NaN or Inf; no permutation is defined there")
    with torch.no_grad():
        if method == "hungarian" or (method == "auto" and sources > _EXHAUSTIVE_MAX_SOURCES):
            return _hungarian_search(matrix)
        return _exhaustive_search(matrix)


def _check_perm(perm: torch.Tensor, batch: int, sources: int) -> None:
    """Raises unless ``perm`` is a ``[B, S]`` integer tensor of permutations of ``range(S)``."""
    if not isinstance(perm, torch.Tensor):
        raise TypeError(f"expected perm as a LongTensor [B, S], got {type(perm).__name__}")
    if perm.shape != (batch, sources) or perm.is_floating_point() or perm.dtype == torch.bool:
        raise ValueError(f"expected perm as an integer tensor of shape [B, S] = "
                         f"{(batch, sources)}, got {perm.dtype} {tuple(perm.shape)}")
    expected = torch.arange(sources, device=perm.device).expand(batch, sources)
    valid = (perm.sort(dim=1).values == expected).all()
    if is_sync_free():  # fails on the device, without a host sync (fatal to a CUDA context)
        torch._assert_async(valid, "every row of perm must be a permutation of 0..S-1")
    elif not bool(valid):
        raise ValueError(f"every row of perm must be a permutation of 0..{sources - 1}, got "
                         f"{perm.tolist()}")


def permute(estimates: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Reorders the sources of each item: ``out[b, :, i] = estimates[b, :, perm[b, i]]``.

    Arguments
    ---------
    estimates : torch.Tensor
        ``[B, T, S]`` sources (any dtype, differentiable).
    perm : torch.Tensor
        ``[B, S]`` permutations, as :func:`best_permutation` returns.

    Returns
    -------
    torch.Tensor
        ``[B, T, S]`` estimates aligned with the targets.

    Example
    -------
    >>> est = torch.tensor([[[1.0, 2.0, 3.0]]])        # [B=1, T=1, S=3]
    >>> permute(est, torch.tensor([[2, 0, 1]]))
    tensor([[[3., 1., 2.]]])
    """
    if not isinstance(estimates, torch.Tensor) or estimates.dim() != 3:
        shape = tuple(estimates.shape) if isinstance(estimates, torch.Tensor) else estimates
        raise ValueError(f"expected estimates of shape [B, T, S], got {shape}")
    batch, length, sources = estimates.shape
    _check_perm(perm, batch, sources)
    index = perm.to(estimates.device).unsqueeze(1).expand(batch, length, sources)  # [B, T, S]
    return torch.gather(estimates, 2, index)


def pit_log_mse(targets: torch.Tensor, estimates: torch.Tensor,
                mixtures: torch.Tensor | None = None, snr_max: float = 30.0,
                zero_snr_max: float = 20.0) -> torch.Tensor:
    """Permutation-invariant thresholded log-MSE, the GASS loss (SpeechBrain order).

    The mean over sources of :func:`pairwise_log_mse` under the permutation that minimises it.
    To also get the permutation (e.g. to align estimates for metrics), compose the parts::

        matrix = pairwise_log_mse(targets, estimates, mixtures)
        perm = best_permutation(matrix)
        loss = matrix.gather(2, perm.unsqueeze(2)).mean(dim=(1, 2))   # == pit_log_mse(...)
        aligned = permute(estimates, perm)

    In hyperpyyaml: ``loss: !name:gass_modules.losses.pit_log_mse`` (add ``snr_max: 25.0`` etc.
    below it to change the thresholds).

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` reference sources; silent slots are all-zero.
    estimates : torch.Tensor
        ``[B, T, S]`` separator outputs.
    mixtures : torch.Tensor, optional
        ``[B, T]`` mixtures for the silent-target threshold (default: the sum of the targets).
    snr_max : float
        Saturation SNR in dB for active targets (GASS: 30).
    zero_snr_max : float
        Saturation in dB below the mixture for silent targets (FUSS: 20).

    Returns
    -------
    torch.Tensor
        ``[B]`` loss per item in dB; take ``.mean()`` for the batch loss.

    Example
    -------
    >>> targets = torch.randn(2, 800, 4)
    >>> targets[:, :, 3] = 0.0                        # a silent slot
    >>> estimates = targets[:, :, [2, 0, 3, 1]]       # perfect, but shuffled
    >>> loss = pit_log_mse(targets, estimates)
    >>> loss.shape
    torch.Size([2])
    >>> bool((loss < pit_log_mse(targets, targets + 0.1)).all())
    True
    """
    matrix = pairwise_log_mse(targets, estimates, mixtures, snr_max, zero_snr_max)  # [B, S, S]
    perm = best_permutation(matrix)  # [B, S]
    return matrix.gather(2, perm.unsqueeze(2)).mean(dim=(1, 2))  # [B]


def mixture_consistency(estimates: torch.Tensor, mixture: torch.Tensor,
                        weights: str | torch.Tensor = "uniform") -> torch.Tensor:
    """Projects estimates so that they sum to the mixture (Wisdom et al., ICASSP 2019; FUSS).

    ``ŝ'_i = ŝ_i + w_i·(x − Σ_j ŝ_j)`` with ``Σ_i w_i = 1``: the smallest change in the
    ``Σ_i ‖ŝ'_i − ŝ_i‖²/w_i`` sense that makes ``Σ_i ŝ'_i = x``. Differentiable; use it as the
    last layer of a separator.

    Arguments
    ---------
    estimates : torch.Tensor
        ``[B, T, S]`` separated sources.
    mixture : torch.Tensor
        ``[B, T]`` mixture.
    weights : str or torch.Tensor
        ``"uniform"`` (``w_i = 1/S``), ``"energy"`` (``w_i = ‖ŝ_i‖² / Σ_j ‖ŝ_j‖²``, uniform for an
        item whose estimates are all zero), or a non-negative tensor ``[B, S]`` or ``[B, T, S]``
        summing to 1 over sources (e.g. a softmax the network predicts).

    Returns
    -------
    torch.Tensor
        ``[B, T, S]`` projected estimates; ``out.sum(-1)`` equals ``mixture`` up to rounding.

    Example
    -------
    >>> est = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])   # [B=1, T=2, S=2]
    >>> mixture_consistency(est, torch.tensor([[2.0, 2.0]]))
    tensor([[[1.5000, 0.5000],
             [0.5000, 1.5000]]])
    """
    if not isinstance(estimates, torch.Tensor) or estimates.dim() != 3:
        shape = tuple(estimates.shape) if isinstance(estimates, torch.Tensor) else estimates
        raise ValueError(f"expected estimates of shape [B, T, S], got {shape}")
    batch, length, sources = estimates.shape
    if not isinstance(mixture, torch.Tensor) or mixture.shape != (batch, length):
        shape = tuple(mixture.shape) if isinstance(mixture, torch.Tensor) else mixture
        raise ValueError(f"expected mixture of shape [B, T] = {(batch, length)}, got {shape}")
    if not estimates.is_floating_point() or not mixture.is_floating_point():
        raise ValueError(f"expected floating-point inputs, got estimates {estimates.dtype} and "
                         f"mixture {mixture.dtype}")
    if isinstance(weights, str):
        if weights == "uniform":
            w = estimates.new_full((batch, 1, sources), 1.0 / sources)  # [B, 1, S]
        elif weights == "energy":
            energy = estimates.square().sum(dim=1, keepdim=True)  # [B, 1, S]
            total = energy.sum(dim=2, keepdim=True)  # [B, 1, 1]
            w = torch.where(total > 0, energy / total.clamp_min(torch.finfo(total.dtype).tiny),
                            torch.full_like(energy, 1.0 / sources))
        else:
            raise ValueError(f"expected weights 'uniform', 'energy' or a tensor, got {weights!r}")
    elif isinstance(weights, torch.Tensor):
        if weights.shape == (batch, sources):
            w = weights.unsqueeze(1)  # [B, 1, S]
        elif weights.shape == (batch, length, sources):
            w = weights
        else:
            raise ValueError(f"expected weights of shape [B, S] = {(batch, sources)} or "
                             f"[B, T, S] = {(batch, length, sources)}, got "
                             f"{tuple(weights.shape)}")
    else:
        raise TypeError(f"expected weights as a str or a torch.Tensor, got "
                        f"{type(weights).__name__}")
    residual = mixture - estimates.sum(dim=2)  # [B, T]
    return estimates + w * residual.unsqueeze(2)  # [B, T, S]


def fixed_order_log_mse(targets: torch.Tensor, estimates: torch.Tensor,
                        mixtures: torch.Tensor | None = None, snr_max: float = 30.0,
                        zero_snr_max: float = 20.0) -> torch.Tensor:
    """The thresholded log-MSE of output ``k`` against target ``k`` (no permutation).

    The diagonal of :func:`pairwise_log_mse`, averaged over sources: the loss for
    benchmarks whose outputs are labelled stems.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references, in stem order.
    estimates : torch.Tensor
        ``[B, T, S]`` estimates, output ``k`` for stem ``k``.
    mixtures : torch.Tensor, optional
        ``[B, T]`` mixtures (reference level of the all-zero-target term).
    snr_max : float
        SNR (dB) above which an active target's loss saturates.
    zero_snr_max : float
        Level (dB under the mixture) above which silent outputs are penalised.

    Returns
    -------
    torch.Tensor
        ``[B]`` loss per mixture.

    Example
    -------
    >>> targets = torch.randn(2, 800, 3)
    >>> swapped = targets[..., [1, 0, 2]]
    >>> bool(fixed_order_log_mse(targets, swapped).mean() > fixed_order_log_mse(targets,
    ...      targets).mean() + 10)
    True
    """
    matrix = pairwise_log_mse(targets, estimates, mixtures, snr_max=snr_max,
                              zero_snr_max=zero_snr_max)  # [B, S, S]
    return matrix.diagonal(dim1=1, dim2=2).mean(dim=-1)  # [B]
