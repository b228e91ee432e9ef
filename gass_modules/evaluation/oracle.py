"""The ideal ratio mask (IRM) oracle, the upper bound that GASS-style tables report.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import torch
from torch import nn

from gass_modules.evaluation.scoring import check_pair


class IRMOracle(nn.Module):
    """The ideal ratio mask (IRM) oracle: the references' STFT magnitudes mask the mixture.

    For references ``s_j`` with STFTs ``S_j`` and mixture STFT ``X``, source ``j`` is estimated as
    ``iSTFT(M_j · X)`` with ``M_j = |S_j|^p / Σ_k |S_k|^p`` (``p = power``; 1 is the magnitude
    ratio mask used by GASS-style oracle tables, 2 the Wiener-like power ratio). Masks sum to 1
    wherever any reference has energy, so the estimates sum back to the mixture. The result is
    already aligned with the references (no permutation). Bins where every reference is silent
    get the mask ``1/S`` (no energy is there to split).

    Arguments
    ---------
    n_fft : int
        STFT size (Hann window of the same length).
    hop_length : int
        STFT hop.
    power : float
        Exponent ``p`` of the magnitudes in the ratio.

    Example
    -------
    >>> oracle = IRMOracle(n_fft=256, hop_length=64)
    >>> targets = torch.randn(2, 4000, 3)
    >>> estimates = oracle(targets.sum(-1), targets)  # [B, T, S]
    >>> estimates.shape
    torch.Size([2, 4000, 3])
    >>> torch.allclose(estimates.sum(-1), targets.sum(-1), atol=1e-4)
    True
    """

    def __init__(self, n_fft: int = 512, hop_length: int = 128, power: float = 1.0) -> None:
        super().__init__()
        if not isinstance(n_fft, int) or n_fft < 2:
            raise ValueError(f"n_fft must be an int >= 2, got {n_fft!r}")
        if not isinstance(hop_length, int) or not 1 <= hop_length <= n_fft:
            raise ValueError(f"hop_length must be an int in [1, n_fft={n_fft}], got {hop_length!r}")
        if not power > 0:
            raise ValueError(f"power must be > 0, got {power!r}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.power = float(power)

    def forward(self, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Estimates the sources of ``mix`` with the references' ideal ratio masks.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures.
        targets : torch.Tensor
            ``[B, T, S]`` references (all-zero slots get all-zero estimates).

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` oracle estimates, aligned with ``targets``.
        """
        check_pair(mix, targets)
        batch, length, num = targets.shape
        dtype = torch.promote_types(mix.dtype, torch.float32)
        window = torch.hann_window(self.n_fft, dtype=dtype, device=mix.device)
        stft = dict(n_fft=self.n_fft, hop_length=self.hop_length, window=window, center=True)
        spec_mix = torch.stft(mix.to(dtype), pad_mode="constant", return_complex=True, **stft)
        refs = targets.to(dtype).transpose(1, 2).reshape(batch * num, length)  # [B*S, T]
        spec_refs = torch.stft(refs, pad_mode="constant", return_complex=True, **stft)
        mag = spec_refs.abs().pow(self.power).reshape(batch, num, *spec_refs.shape[1:])
        total = mag.sum(1, keepdim=True)  # [B, 1, F, N]
        tiny = torch.finfo(dtype).tiny
        mask = torch.where(total > tiny, mag / total.clamp_min(tiny), 1.0 / num)  # [B, S, F, N]
        masked = (mask * spec_mix.unsqueeze(1)).reshape(batch * num, *spec_mix.shape[1:])
        est = torch.istft(masked, length=length, **stft)  # [B*S, T]
        return est.reshape(batch, num, length).transpose(1, 2).to(targets.dtype)  # [B, T, S]


__all__ = ["IRMOracle"]
