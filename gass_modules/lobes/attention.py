"""Attention layers of TDANet (Li, Yang & Hu, ICLR 2023), export-friendly.

* :class:`SinusoidalPositions`: the sinusoidal positional encoding, computed from ``arange(T)``
  (no table, so no length cap and no ``torch.export`` guard on the length);
* :class:`MultiHeadSelfAttention`: attention over the frames of each item (batch first; the
  official TDANet attends across the batch by mistake);
* :class:`GlobalAttention` (GA): self-attention then a convolutional feed-forward network
  (``num_heads=0``: the feed-forward network alone, as TIGER uses it);
* :class:`LocalAttention` (LA): a coarse input gates and shifts a finer one;
* :class:`UConvBlock`: TDANet's multi-scale encoder-decoder block built from them (bottom-up
  depthwise convolutions, GA at the coarsest scale, top-down LA), the block of
  :mod:`gass_modules.lobes.tdanet` that :mod:`gass_modules.lobes.tiger` shares (without
  self-attention), so neither model imports the other.

Features are frames-last, ``[B, T, C]``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gass_modules.lobes.base import check_positive_int
from gass_modules.lobes.blocks import Conv1d, ConvNorm


class SinusoidalPositions(nn.Module):
    """Sinusoidal positional encoding (Vaswani et al. 2017) for ``[B, T, C]`` sequences.

    Same values as SpeechBrain's ``PositionalEncoding`` (sin on even channels, cos on odd ones),
    but computed from ``arange(T)`` instead of sliced from a table: a table caps the length (and
    a cap of 65536 frames would cost 128 MiB at 512 channels), and slicing it puts a guard
    ``T <= max_len`` on the length under ``torch.export``; this puts none.

    Arguments
    ---------
    channels : int
        Even embedding size ``C``.

    Example
    -------
    >>> pe = SinusoidalPositions(4)(torch.zeros(2, 3, 4))
    >>> pe.shape
    torch.Size([1, 3, 4])
    >>> pe[0, 1]
    tensor([0.8415, 0.5403, 0.0100, 0.9999])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        check_positive_int(channels=channels)
        if channels % 2:
            raise ValueError(f"positional encoding needs an even channel count, got {channels}")
        inv_freq = torch.exp(torch.arange(0, channels, 2) * (-math.log(10000.0) / channels))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # [C / 2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the encoding for the length of ``x``.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, C]`` sequence (only its length and device are used).

        Returns
        -------
        torch.Tensor
            ``[1, T, C]`` float32 encoding.
        """
        pos = torch.arange(x.shape[1], device=x.device, dtype=torch.float32)  # [T]
        angles = pos[:, None] * self.inv_freq[None, :]  # [T, C / 2]
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).unsqueeze(0)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over the frames of each item (batch first).

    ``softmax(Q K^T / sqrt(d)) V`` per head with ``[Q; K; V] = W_in x + b_in`` and an output
    projection, computed by ``torch.nn.functional.scaled_dot_product_attention``: the same maths
    and parameter shapes as ``nn.MultiheadAttention(batch_first=True)`` (``qkv`` =
    ``in_proj_weight/bias``, ``out`` = ``out_proj``), which is not used because it works
    sequence-first internally: its projections reshape ``[T * B, 3C]`` to ``[T, B, 3C]``, which
    ``torch.export`` traces with a guard ``B != 1`` (the program then rejects single mixtures).
    Here every reshape splits or merges channel dimensions only.

    Arguments
    ---------
    channels : int
        Embedding size ``C`` (divisible by ``num_heads``).
    num_heads : int
        Number of heads ``h``; each has ``C / h`` channels.
    dropout : float
        Dropout on the attention weights while training.

    Example
    -------
    >>> attention = MultiHeadSelfAttention(channels=8, num_heads=2, dropout=0.0).eval()
    >>> x = torch.randn(3, 5, 8)
    >>> reference = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    >>> reference.in_proj_weight.data = attention.qkv.weight.data
    >>> reference.in_proj_bias.data = attention.qkv.bias.data
    >>> reference.out_proj.load_state_dict(attention.out.state_dict())
    <All keys matched successfully>
    >>> torch.allclose(attention(x), reference(x, x, x)[0], atol=1e-6)
    True
    """

    def __init__(self, channels: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        check_positive_int(channels=channels, num_heads=num_heads)
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads "
                             f"({num_heads})")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attends over frames, independently for each item.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, C]`` sequence.

        Returns
        -------
        torch.Tensor
            ``[B, T, C]`` attended sequence.
        """
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1))  # [B, T, 3, h, C / h]
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, h, T, C / h]
        heads = nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0)  # [B, h, T, C / h]
        return self.out(heads.transpose(1, 2).flatten(2))  # [B, T, C]


class GlobalAttention(nn.Module):
    """The GA module: multi-head self-attention then a convolutional feed-forward network.

    ``y = x + Dropout(MHSA(LN(x) + PE))`` over the frames of each item (items never attend to
    each other), then ``y + FFN(y)`` with ``FFN = ConvNorm(1x1) -> depthwise conv -> ReLU ->
    Dropout -> ConvNorm(1x1) -> Dropout``. Features are frames-last, ``[B, T, C]``. With
    ``num_heads=0`` there is no self-attention, only ``x + FFN(x)``: the global stage of TIGER's
    multi-scale selective attention (:mod:`gass_modules.lobes.tiger`).

    Arguments
    ---------
    channels : int
        Feature channels ``C`` (divisible by ``num_heads``, even).
    num_heads : int
        Attention heads; 0 for none (the FFN alone).
    ffn_factor : int
        Hidden width of the FFN is ``ffn_factor * C``.
    kernel_size : int
        Kernel of the FFN's depthwise conv (odd).
    dropout : float
        Dropout in the attention and the FFN.

    Example
    -------
    >>> ga = GlobalAttention(channels=16, num_heads=4)
    >>> ga(torch.randn(2, 10, 16)).shape
    torch.Size([2, 10, 16])
    >>> ffn_only = GlobalAttention(channels=16, num_heads=0)
    >>> hasattr(ffn_only, "attention"), ffn_only(torch.randn(2, 10, 16)).shape
    (False, torch.Size([2, 10, 16]))
    """

    def __init__(self, channels: int, num_heads: int = 8, ffn_factor: int = 2,
                 kernel_size: int = 5, dropout: float = 0.1) -> None:
        super().__init__()
        check_positive_int(channels=channels, ffn_factor=ffn_factor)
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 0:
            raise ValueError(f"num_heads must be an int >= 0 (0: no self-attention), got "
                             f"{num_heads!r}")
        if num_heads and channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads "
                             f"({num_heads})")
        hidden = ffn_factor * channels
        self.num_heads = num_heads
        if num_heads:
            self.norm = nn.LayerNorm(channels)
            self.positions = SinusoidalPositions(channels)
            self.attention = MultiHeadSelfAttention(channels, num_heads, dropout)
            self.attention_dropout = nn.Dropout(dropout)
        self.ffn = nn.Sequential(
            ConvNorm(channels, hidden, 1, bias=False, frames_last=True),
            Conv1d(hidden, hidden, kernel_size, padding=(kernel_size - 1) // 2, groups=hidden,
                   frames_last=True),
            nn.ReLU(),
            nn.Dropout(dropout),
            ConvNorm(hidden, channels, 1, bias=False, frames_last=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies self-attention over frames, then the FFN, both with residuals.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, C]`` features (the coarsest scale).

        Returns
        -------
        torch.Tensor
            ``[B, T, C]`` global features ``G``.
        """
        if self.num_heads:  # a constant of the module, not a branch on shapes
            query = self.norm(x)
            query = query + self.positions(query).to(query.dtype)
            x = x + self.attention_dropout(self.attention(query))
        return x + self.ffn(x)


class LocalAttention(nn.Module):
    """The LA layer: a coarse input gates and shifts a finer one.

    ``LA(x, y) = W_l(x) * sigmoid(W_a(y))↑r + W_g(y)↑r`` where each ``W`` is a depthwise conv +
    gLN and ``↑r`` repeats every coarse frame ``r`` times (nearest up-sampling by an exact
    factor, so the fine length is never computed in Python). Features are frames-last.

    Arguments
    ---------
    channels : int
        Feature channels ``C``.
    kernel_size : int
        Odd kernel of the depthwise convs.

    Example
    -------
    >>> la = LocalAttention(channels=8, kernel_size=5)
    >>> la(torch.randn(2, 12, 8), torch.randn(2, 3, 8), factor=4).shape
    torch.Size([2, 12, 8])
    """

    def __init__(self, channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        check_positive_int(channels=channels, kernel_size=kernel_size)
        self.local, self.gate, self.shift = (
            ConvNorm(channels, channels, kernel_size, groups=channels, bias=False,
                     frames_last=True) for _ in range(3))

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor, factor: int) -> torch.Tensor:
        """Modulates ``fine`` by ``coarse``.

        Arguments
        ---------
        fine : torch.Tensor
            ``[B, T, C]`` lateral (finer) features.
        coarse : torch.Tensor
            ``[B, T / factor, C]`` top-down (coarser) features.
        factor : int
            Exact length ratio (a constant of the architecture, not read from shapes).

        Returns
        -------
        torch.Tensor
            ``[B, T, C]`` fused features.
        """
        # Nearest up-sampling by broadcasting each coarse frame against its `factor` fine frames
        # (channels innermost, so the product stays vectorised), never materialising the copies.
        gate = torch.sigmoid(self.gate(coarse)).unsqueeze(2)  # [B, T / r, 1, C]
        shift = self.shift(coarse).unsqueeze(2)  # [B, T / r, 1, C]
        local = self.local(fine).unflatten(1, (-1, factor))  # [B, T / r, r, C]
        return torch.addcmul(shift, local, gate).flatten(1, 2)  # [B, T, C]


class UConvBlock(nn.Module):
    """One TDANet encoder-decoder block (bottom-up, GA, top-down LA) with a residual.

    Features are frames-last (``[B, T, C]``): every depthwise convolution, normalisation,
    pooling and up-sampling then runs with channels innermost, about 1.3x faster on CPU than
    channels-first (the block is dominated by memory-bound ops at the finest scale).

    Arguments
    ---------
    channels : int
        Input/output channels ``B`` (the bottleneck width).
    hidden_channels : int
        Width ``H`` of the multi-scale features.
    depth : int
        Number of stride-2 down-samplings ``S`` (``S + 1`` scales); the input length must be a
        multiple of ``2^S``.
    kernel_size : int
        Odd kernel of the depthwise convs and of the cascaded LA layers.
    num_heads : int
        Attention heads of the GA module (0: no self-attention, the FFN alone).
    ffn_factor : int
        FFN width factor of the GA module.
    dropout : float
        Dropout of the GA module.

    Example
    -------
    >>> block = UConvBlock(channels=8, hidden_channels=16, depth=2, num_heads=4)
    >>> block(torch.randn(2, 12, 8)).shape
    torch.Size([2, 12, 8])
    """

    def __init__(self, channels: int, hidden_channels: int, depth: int = 4,
                 kernel_size: int = 5, num_heads: int = 8, ffn_factor: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__()
        check_positive_int(channels=channels, hidden_channels=hidden_channels, depth=depth)
        self.depth = depth
        h = hidden_channels
        self.project = ConvNorm(channels, h, 1, activation=True, frames_last=True)
        self.down = nn.ModuleList(
            [ConvNorm(h, h, kernel_size, stride=1 if i == 0 else 2, groups=h, frames_last=True)
             for i in range(depth + 1)]
        )
        self.global_attention = GlobalAttention(h, num_heads, ffn_factor, kernel_size, dropout)
        self.inject = nn.ModuleList([LocalAttention(h, 1) for _ in range(depth + 1)])
        self.top_down = nn.ModuleList([LocalAttention(h, kernel_size) for _ in range(depth)])
        self.residual = Conv1d(h, channels, 1, frames_last=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the block.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, C]`` features, ``T`` a multiple of ``2^depth``.

        Returns
        -------
        torch.Tensor
            ``[B, T, C]`` features.
        """
        scales = [self.down[0](self.project(x))]  # F_0: [B, T, H]
        for i in range(1, self.depth + 1):
            scales.append(self.down[i](scales[-1]))  # F_i: [B, T / 2^i, H]
        pooled = scales[-1]
        for i in range(self.depth):  # mean over each window of 2^(S - i) frames
            pooled = pooled + scales[i].unflatten(1, (-1, 2 ** (self.depth - i))).mean(2)
        glob = self.global_attention(pooled)  # G: [B, T / 2^S, H]
        fused = [self.inject[i](f, glob, 2 ** (self.depth - i)) for i, f in enumerate(scales)]
        out = fused[-1]  # U_S = F'_S: the coarsest level starts the top-down path
        for i in range(self.depth - 1, -1, -1):
            out = self.top_down[i](fused[i], out, 2)  # U_i = LA(F'_i, U_{i+1})
        return self.residual(out) + x
