"""Band-split RoPE transformer (BS-RoFormer) as a GASS separator lobe.

Written from W.-T. Lu, J.-C. Wang, Q. Kong and Y.-N. Hung, "Music source separation with
band-split RoPE transformer", ICASSP 2024 (arXiv 2309.02612). The paper's symbols: the complex
spectrogram ``X`` (``F`` bins, ``T`` frames) is split into ``N`` subbands of ``F_n`` bins (here
``K`` bands of ``G_k`` bins, as in :mod:`gass_modules.lobes.bsrnn`, whose ``N`` is the feature
size); each band goes through an RMSNorm and a linear layer to ``D`` features (``feature_dim``),
giving ``H_0`` of shape ``[T, K, D]``; ``L`` RoPE transformer blocks each apply a transformer
layer across time within every band (the "time-Transformer"), then one across bands within
every frame (the "subband-Transformer"); per-band MLPs (RMSNorm, linear, tanh, linear, GLU)
estimate complex ratio masks (cIRMs); the masked spectra are inverted with the iSTFT.

A transformer layer (the paper's Fig. 2) is pre-norm and residual twice:

* attention: RMSNorm, ``Q = H W_q``, ``K = H W_k``, ``V = H W_v`` (``D x Z`` each, no bias), split
  into ``h`` heads, rotary position embeddings (RoPE, Su et al. 2021) on the queries and keys,
  ``softmax(Q K^T / sqrt(Z / h)) V`` (``torch.nn.functional.scaled_dot_product_attention``), a
  linear layer back to ``D`` and dropout;
* feed-forward: RMSNorm, linear to ``4 D``, GELU, dropout, linear to ``D``, dropout.

RoPE has no parameters: position ``p`` rotates the pair ``(x_{2i}, x_{2i+1})`` of a head by the
angle ``p * base^(-2i / d)`` (``d = Z / h``), so the dot product of a rotated query at ``p`` and a
rotated key at ``p'`` depends on ``p - p'`` only. The angles come from ``torch.arange`` of the
sequence's runtime length, without a cache or a branch on the length, so ``torch.export`` keeps
the number of frames symbolic. The paper shares one RoPE encoder across the blocks for time and
one for bands; both are the same function, which every attention layer here computes.

The paper's parameter counts fix what it leaves unsaid: ``Z = D`` (``h = 8`` heads of 48 at
``D = 384``) and a ``4 D`` feed-forward reproduce the difference between its ``L = 12`` and
``L = 6`` models (93.4 M - 72.2 M = 21.2 M; six of these blocks have 21.27 M), and with the
band split and the ``4 D`` mask MLPs of its 62 bands both totals (72.16 M and 93.43 M for one
stereo stem per model).

Departures from the paper, all deliberate:

* The contract's mixtures are mono (``[B, T]``). As for BSRNN, stereo music is separated one
  channel at a time (``GASSSeparator.separate_file(..., channels="each")`` and the MUSDB18
  evaluation run each channel; the recipes train on mono downmixes); the paper's model takes
  both channels into each band.
* One model outputs all ``S`` sources: each band's mask MLP has one hidden layer for all sources
  and an output layer for all their masks (the paper trains one model per stem).
* Dropout defaults to 0 (the paper's 0.1 is in the music card); the STFT is the shared
  zero-padded one (:class:`~gass_modules.lobes.parts.blocks.STFTEncoder`) with the hop as the
  stride.

The band split, the mask MLPs, the STFT and the masking are BSRNN's
(:class:`~gass_modules.lobes.band_split.BandSplitSeparator`, with RMSNorm); this module adds the
transformer blocks.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gass_modules.lobes.band_split import BandSplitSeparator, across_time_then_bands
from gass_modules.lobes.base import check_positive_int
from gass_modules.lobes.parts.band_layers import BAND_NORM_EPS


class RMSNorm(nn.RMSNorm):
    """``torch.nn.RMSNorm`` (gain, no bias, ``eps`` 1e-5) computed in float32 for any input dtype.

    Under bf16 autocast the transformer's activations are bf16 while the gain is float32, which
    ``nn.RMSNorm`` computes in bf16 on a slower unfused path (and warns); this normalises in
    float32, as autocast does for ``layer_norm``, and returns the input's dtype.

    Arguments
    ---------
    dim : int
        Features of the last axis.

    Example
    -------
    >>> norm = RMSNorm(4)
    >>> norm(torch.tensor([[3.0, -3.0, 3.0, -3.0]])).tolist()
    [[1.0, -1.0, 1.0, -1.0]]
    >>> norm(torch.ones(2, 4, dtype=torch.bfloat16)).dtype
    torch.bfloat16
    """

    def __init__(self, dim: int) -> None:
        check_positive_int(dim=dim)
        super().__init__(dim, eps=BAND_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalises ``x`` by its root mean square over the last axis, times the gain.

        Arguments
        ---------
        x : torch.Tensor
            ``[..., dim]``.

        Returns
        -------
        torch.Tensor
            ``[..., dim]`` in ``x``'s dtype.
        """
        return nn.functional.rms_norm(x.float(), self.normalized_shape, self.weight,
                                      self.eps).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) of the last axis, by position along ``seq_dim``.

    Position ``p`` rotates each pair ``(x_{2i}, x_{2i+1})`` by the angle ``p * base^(-2i / d)``:
    ``(x_{2i} cos - x_{2i+1} sin, x_{2i} sin + x_{2i+1} cos)``, computed as ``x * cos + swap(x) *
    (-sin, sin)`` with ``swap`` exchanging the two of each pair: four element-wise passes, on the
    queries and keys together (:class:`RoPEAttention`), where rotating the even and odd halves of
    per-head views separately cost 14 % of a CPU training step (D 64, L 4). The angles are from
    ``torch.arange`` of the input's length on every call (float32, then cast to the input's
    dtype), so any length works and ``torch.export`` keeps it symbolic.

    Arguments
    ---------
    head_dim : int
        ``d``, the (even) size of the rotated axis.
    base : float
        Wavelength scale of the rotations (10000 as in RoFormer).

    Example
    -------
    >>> rope = RotaryEmbedding(head_dim=4)
    >>> x = torch.ones(1, 3, 4)  # [..., L, d]
    >>> rope(x)[0, 0].tolist()  # position 0 is not rotated
    [1.0, 1.0, 1.0, 1.0]
    >>> torch.allclose(rope(x).norm(dim=-1), x.norm(dim=-1))  # rotations keep the norm
    True
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        check_positive_int(head_dim=head_dim)
        if head_dim % 2:
            raise ValueError(f"RoPE rotates pairs of features: head_dim must be even, got "
                             f"{head_dim}; pick attention_dim / num_heads even")
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1:
            raise ValueError(f"expected a RoPE base > 1, got {base!r}")
        self.head_dim = head_dim
        self.base = float(base)
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
        self.register_buffer("inv_freq", (self.base ** -exponents).float(), persistent=False)
        self.register_buffer("pair_sign", torch.tensor([-1.0, 1.0]).repeat(head_dim // 2),
                             persistent=False)

    def angles(self, length: int | torch.SymInt, device: torch.device | None = None
               ) -> torch.Tensor:
        """Rotation angles of every position and pair, ``p * base^(-2i / d)``.

        Arguments
        ---------
        length : int
            Number of positions ``L``.
        device : torch.device, optional
            Where to build them (the buffer's device by default).

        Returns
        -------
        torch.Tensor
            ``[L, d / 2]`` float32 angles in radians.

        Example
        -------
        >>> RotaryEmbedding(head_dim=4, base=100.0).angles(3)
        tensor([[0.0000, 0.0000],
                [1.0000, 0.1000],
                [2.0000, 0.2000]])
        """
        device = self.inv_freq.device if device is None else device
        positions = torch.arange(length, device=device, dtype=torch.float32)  # [L]
        return positions[:, None] * self.inv_freq.to(device)  # [L, d/2]

    def forward(self, x: torch.Tensor, seq_dim: int = -2) -> torch.Tensor:
        """Rotates ``x`` by position.

        Arguments
        ---------
        x : torch.Tensor
            ``[..., L, d]`` queries or keys, or ``[..., L, *, d]`` with ``seq_dim`` naming the
            position axis (e.g. ``[M, L, heads, d]``, ``seq_dim=-3``).
        seq_dim : int
            The position axis, counted from the end (``<= -2``).

        Returns
        -------
        torch.Tensor
            Rotated ``x``, same shape and dtype.
        """
        if not -x.dim() <= seq_dim <= -2 or x.shape[-1] != self.head_dim:
            raise ValueError(f"expected queries or keys [..., L, ..., {self.head_dim}] with the "
                             f"positions on axis {seq_dim}, got shape {tuple(x.shape)}")
        angles = self.angles(x.shape[seq_dim], x.device).repeat_interleave(2, dim=-1)  # [L, d]
        cos = angles.cos().to(x.dtype)  # cos_0 cos_0 cos_1 cos_1 ...
        sin = (angles.sin() * self.pair_sign).to(x.dtype)  # -sin_0 sin_0 -sin_1 sin_1 ...
        for _ in range(-seq_dim - 2):  # broadcast over the axes between positions and features
            cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
        swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # x_1 x_0 x_3 x_2 ...
        return x * cos + swapped * sin


class RoPEAttention(nn.Module):
    """Pre-norm multi-head self-attention with rotary embeddings: ``Linear(SDPA(RoPE(q), RoPE(k),
    v))`` of ``RMSNorm(x)`` (no residual; :class:`RoPETransformerLayer` adds it).

    Arguments
    ---------
    dim : int
        ``D``, input and output features.
    num_heads : int
        ``h``.
    attention_dim : int or None
        ``Z``, the width of the queries, keys and values (``Z / h`` per head, even); ``None``
        means ``D`` (the paper's sizes).
    dropout : float
        Dropout on the attention weights and on the output, in training mode.
    rope_base : float
        RoPE's wavelength scale.

    Example
    -------
    >>> attention = RoPEAttention(dim=16, num_heads=2)
    >>> attention(torch.randn(3, 5, 16)).shape
    torch.Size([3, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int, attention_dim: int | None = None,
                 dropout: float = 0.0, rope_base: float = 10000.0) -> None:
        super().__init__()
        attention_dim = _attention_dim(dim, num_heads, attention_dim)
        self.dim = dim
        self.num_heads = num_heads
        self.dropout = _check_dropout(dropout)
        self.norm = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * attention_dim, bias=False)  # W_q, W_k, W_v
        self.rope = RotaryEmbedding(attention_dim // num_heads, rope_base)
        self.out = nn.Linear(attention_dim, dim)
        self.out_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attends over the sequence axis.

        Arguments
        ---------
        x : torch.Tensor
            ``[M, L, D]`` sequences.

        Returns
        -------
        torch.Tensor
            ``[M, L, D]``.
        """
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected sequences [M, L, {self.dim}], got shape "
                             f"{tuple(x.shape)}")
        qkv = self.qkv(self.norm(x)).unflatten(-1, (-1, self.rope.head_dim))  # [M, L, 3h, d]
        qk = self.rope(qkv[:, :, :2 * self.num_heads], seq_dim=-3)  # [M, L, 2h, d], rotated
        q, k = qk.unflatten(2, (2, self.num_heads)).permute(2, 0, 3, 1, 4)  # [M, h, L, d] each
        v = qkv[:, :, 2 * self.num_heads:].transpose(1, 2)  # [M, h, L, d]
        attended = nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0)
        merged = attended.transpose(1, 2).flatten(2)  # [M, L, Z]
        return self.out_dropout(self.out(merged))  # [M, L, D]


class RoPETransformerLayer(nn.Module):
    """One transformer layer of BS-RoFormer: ``x + Attention(x)``, then ``x + FeedForward(x)``.

    The attention is :class:`RoPEAttention`; the feed-forward module is RMSNorm, linear to
    ``ffn_dim``, GELU, dropout, linear back to ``D``, dropout (the paper's Fig. 2).

    Arguments
    ---------
    dim : int
        ``D``.
    num_heads : int
        ``h``.
    attention_dim : int or None
        ``Z``; ``None`` means ``D``.
    ffn_dim : int or None
        Hidden units of the feed-forward module; ``None`` means ``4 D``.
    dropout : float
        Dropout of both modules (training mode only).
    rope_base : float
        RoPE's wavelength scale.

    Example
    -------
    >>> layer = RoPETransformerLayer(dim=16, num_heads=2)
    >>> layer(torch.randn(3, 5, 16)).shape
    torch.Size([3, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int, attention_dim: int | None = None,
                 ffn_dim: int | None = None, dropout: float = 0.0,
                 rope_base: float = 10000.0) -> None:
        super().__init__()
        ffn_dim = 4 * dim if ffn_dim is None else ffn_dim
        check_positive_int(ffn_dim=ffn_dim)
        self.attention = RoPEAttention(dim, num_heads, attention_dim, dropout, rope_base)
        self.feedforward = nn.Sequential(
            RMSNorm(dim),
            nn.Linear(dim, ffn_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the layer.

        Arguments
        ---------
        x : torch.Tensor
            ``[M, L, D]`` sequences.

        Returns
        -------
        torch.Tensor
            ``[M, L, D]``.
        """
        x = x + self.attention(x)  # [M, L, D]
        return x + self.feedforward(x)  # [M, L, D]


class RoFormerBlock(nn.Module):
    """One BS-RoFormer block (the paper's Algorithm 1): a transformer layer across time within
    each band, then one across bands within each frame.

    Arguments
    ---------
    dim : int
        ``D``.
    num_heads : int
        ``h``.
    attention_dim : int or None
        ``Z``; ``None`` means ``D``.
    ffn_dim : int or None
        Feed-forward hidden units; ``None`` means ``4 D``.
    dropout : float
        Dropout (training mode only).
    rope_base : float
        RoPE's wavelength scale.

    Example
    -------
    >>> block = RoFormerBlock(dim=16, num_heads=2)
    >>> block(torch.randn(2, 7, 3, 16)).shape  # [B, T, K, D]
    torch.Size([2, 7, 3, 16])
    """

    def __init__(self, dim: int, num_heads: int, attention_dim: int | None = None,
                 ffn_dim: int | None = None, dropout: float = 0.0,
                 rope_base: float = 10000.0) -> None:
        super().__init__()
        self.time_transformer = RoPETransformerLayer(dim, num_heads, attention_dim, ffn_dim,
                                                     dropout, rope_base)
        self.band_transformer = RoPETransformerLayer(dim, num_heads, attention_dim, ffn_dim,
                                                     dropout, rope_base)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Models ``z`` across time (per band), then across bands (per frame).

        Arguments
        ---------
        z : torch.Tensor
            ``[B, T, K, D]`` band features.

        Returns
        -------
        torch.Tensor
            ``[B, T, K, D]``.
        """
        return across_time_then_bands(z, self.time_transformer, self.band_transformer)


class BSRoFormer(BandSplitSeparator):
    """BS-RoFormer separator: mixture ``[B, T]`` -> ``num_sources`` sources ``[B, T, S]``.

    A :class:`~gass_modules.lobes.band_split.BandSplitSeparator` (STFT, RMSNorm band split, blocks,
    RMSNorm mask MLPs with a GLU, complex masks, iSTFT) whose blocks are ``num_blocks`` x
    :class:`RoFormerBlock`. The stride is ``hop_length``: a padded length of ``k`` hops gives
    ``k + 1 >= 2`` frames.

    Arguments
    ---------
    num_sources : int
        ``S``, the number of outputs (4 for GASS).
    sample_rate : int
        Sample rate in Hz; with ``n_fft`` it turns the band plan into bins.
    n_fft : int
        FFT size and window length (2048 in the paper, at 44.1 kHz).
    hop_length : int
        Hop in samples (the stride), at most ``n_fft // 2`` (10 ms in the paper).
    band_plan : str or sequence of (float, float)
        A preset name (``"roformer"`` is the paper's, ``"gass"``, ``"speech"``, ``"music"``) or
        bands in Hz (see :func:`~gass_modules.lobes.parts.bands.band_bins`).
    feature_dim : int
        ``D``, features per band (384 in the paper).
    num_blocks : int
        ``L``, RoFormer blocks (12 in the paper, 6 for its smaller model).
    num_heads : int
        ``h``, attention heads (8 in the paper).
    attention_dim : int or None
        ``Z``, width of queries, keys and values; ``None`` means ``D``.
    ffn_dim : int or None
        Feed-forward hidden units; ``None`` means ``4 D``.
    mask_hidden_dim : int or None
        Hidden units of the per-band mask MLPs; ``None`` means ``4 D`` (the paper).
    dropout : float
        Dropout of the attention and feed-forward modules in training mode (0.1 in the paper).
    rope_base : float
        RoPE's wavelength scale.

    Example
    -------
    >>> model = BSRoFormer(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
    ...                    band_plan="speech", feature_dim=16, num_blocks=1, num_heads=2)
    >>> model(torch.randn(3, 1001)).shape
    torch.Size([3, 1001, 2])
    >>> model.num_bands, model.stride
    (30, 32)
    >>> BSRoFormer(feature_dim=16, num_heads=3)
    Traceback (most recent call last):
    ...
    ValueError: attention_dim=16 must split into num_heads=3 equal heads; pick a multiple of ...
    """

    def __init__(
        self,
        num_sources: int = 4,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 128,
        band_plan: str | Sequence[Sequence[float]] = "gass",
        feature_dim: int = 64,
        num_blocks: int = 4,
        num_heads: int = 4,
        attention_dim: int | None = None,
        ffn_dim: int | None = None,
        mask_hidden_dim: int | None = None,
        dropout: float = 0.0,
        rope_base: float = 10000.0,
    ) -> None:
        # The blocks' arguments are checked before anything is built (clear errors first).
        check_positive_int(feature_dim=feature_dim, num_blocks=num_blocks)
        _attention_dim(feature_dim, num_heads, attention_dim)
        _check_dropout(dropout)
        super().__init__(
            num_sources=num_sources, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
            band_plan=band_plan, feature_dim=feature_dim,
            mask_hidden_dim=4 * feature_dim if mask_hidden_dim is None else mask_hidden_dim,
            blocks=lambda: (RoFormerBlock(feature_dim, num_heads, attention_dim, ffn_dim,
                                          dropout, rope_base) for _ in range(num_blocks)),
            norm="rms",
        )


def _attention_dim(dim: int, num_heads: int, attention_dim: int | None) -> int:
    """``Z`` (``D`` when ``None``), checked: positive, ``h`` heads of an even size."""
    attention_dim = dim if attention_dim is None else attention_dim
    check_positive_int(dim=dim, num_heads=num_heads, attention_dim=attention_dim)
    if attention_dim % num_heads:
        raise ValueError(f"attention_dim={attention_dim} must split into num_heads={num_heads} "
                         "equal heads; pick a multiple of num_heads")
    if (attention_dim // num_heads) % 2:
        raise ValueError(f"RoPE rotates pairs of features: the head size attention_dim / "
                         f"num_heads = {attention_dim // num_heads} must be even; change "
                         "num_heads or attention_dim")
    return attention_dim


def _check_dropout(dropout: float) -> float:
    """A dropout probability in ``[0, 1)`` as a float, or a ``ValueError`` naming it."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
            0 <= dropout < 1):
        raise ValueError(f"expected dropout as a probability in [0, 1), got {dropout!r}")
    return float(dropout)
