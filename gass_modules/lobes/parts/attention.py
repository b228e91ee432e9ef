"""Attention layers of TDANet (Li, Yang & Hu, ICLR 2023), export-friendly.

* :class:`SinusoidalPositions`: the sinusoidal positional encoding, computed from ``arange(T)``
  (no table, so no length cap and no ``torch.export`` guard on the length);
* :class:`MultiHeadSelfAttention`: attention over the frames of each item (batch first; the
  official TDANet attends across the batch by mistake);
* :class:`GlobalAttention` (GA): self-attention then a convolutional feed-forward network
  (``num_heads=0``: the feed-forward network alone, as TIGER uses it);
* :class:`LocalAttention` (LA): a coarse input gates and shifts a finer one.

With ``causal=True`` (issue #28) GA and LA are built from the causal parts of
:mod:`gass_modules.lobes.parts.causal` (left-padded convolutions, frame-wise LayerNorms; GA attends
to
a bounded look-back of past frames) and stream (``init_state`` / ``forward_streaming``).

Features are frames-last, ``[B, T, C]``. :mod:`gass_modules.lobes.parts.uconv` builds TDANet's
encoder-decoder block from them (used by :mod:`gass_modules.lobes.tdanet` and
:mod:`gass_modules.lobes.tiger`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gass_modules.lobes.base import check_positive_int
from gass_modules.lobes.parts.blocks import Conv1d, ConvNorm
from gass_modules.lobes.parts.causal import (
    CausalConv1d,
    CausalConvNorm,
    lookback_mask,
    sequential_state,
    stream_sequential,
)


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

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attends over frames, independently for each item.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, C]`` sequence.
        attn_mask : torch.Tensor, optional
            ``[T, T]`` bool, ``True`` where query ``i`` may attend to key ``j`` (all when
            ``None``).

        Returns
        -------
        torch.Tensor
            ``[B, T, C]`` attended sequence.
        """
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1))  # [B, T, 3, h, C / h]
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, h, T, C / h]
        heads = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0)  # [B, h, T, C / h]
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
    causal : bool
        Frame ``t`` sees frames ``<= t`` only: the attention is masked to the last ``lookback``
        frames and has no positional encoding (a stream's positions grow without bound, past
        any length trained on; the mask and the causal convolutions carry the order, as causal
        transformers learn position without one, Haviv et al. 2022), the FFN's convolutions
        are left-padded and its norms frame-wise; the module streams.
    lookback : int
        Frames each frame attends to, itself included (``causal`` only).

    Example
    -------
    >>> live = GlobalAttention(channels=16, num_heads=4, causal=True, lookback=3).eval()
    >>> x = torch.randn(2, 10, 16)
    >>> state = live.init_state(2)
    >>> parts = [live.forward_streaming(p, state) for p in x.split([4, 0, 1, 5], dim=1)]
    >>> torch.allclose(torch.cat(parts, 1), live(x), atol=1e-5)
    True
    >>> ga = GlobalAttention(channels=16, num_heads=4)
    >>> ga(torch.randn(2, 10, 16)).shape
    torch.Size([2, 10, 16])
    >>> ffn_only = GlobalAttention(channels=16, num_heads=0)
    >>> hasattr(ffn_only, "attention"), ffn_only(torch.randn(2, 10, 16)).shape
    (False, torch.Size([2, 10, 16]))
    """

    def __init__(self, channels: int, num_heads: int = 8, ffn_factor: int = 2,
                 kernel_size: int = 5, dropout: float = 0.1, causal: bool = False,
                 lookback: int = 32) -> None:
        super().__init__()
        check_positive_int(channels=channels, ffn_factor=ffn_factor, lookback=lookback)
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 0:
            raise ValueError(f"num_heads must be an int >= 0 (0: no self-attention), got "
                             f"{num_heads!r}")
        if num_heads and channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads "
                             f"({num_heads})")
        hidden = ffn_factor * channels
        self.num_heads = num_heads
        self.causal = causal
        self.lookback = lookback
        if num_heads:
            self.norm = nn.LayerNorm(channels)
            if not causal:
                self.positions = SinusoidalPositions(channels)
            self.attention = MultiHeadSelfAttention(channels, num_heads, dropout)
            self.attention_dropout = nn.Dropout(dropout)
        if causal:
            self.ffn = nn.Sequential(
                CausalConvNorm(channels, hidden, 1, bias=False),
                CausalConv1d(hidden, hidden, kernel_size, groups=hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                CausalConvNorm(hidden, channels, 1, bias=False),
                nn.Dropout(dropout),
            )
            return
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
        if self.num_heads and self.causal:  # constants of the module, not branches on shapes
            query = self.norm(x)
            mask = lookback_mask(x.shape[1], self.lookback, x.device)
            x = x + self.attention_dropout(self.attention(query, mask))
        elif self.num_heads:
            query = self.norm(x)
            query = query + self.positions(query).to(query.dtype)
            x = x + self.attention_dropout(self.attention(query))
        return x + self.ffn(x)

    def init_state(self, batch: int) -> dict:
        """A new stream's state (causal modules): no past frames, the FFN's buffers.

        Arguments
        ---------
        batch : int
            Number of streams.

        Returns
        -------
        dict
            ``past`` (the normalised frames still in the look-back) and ``ffn``.
        """
        if not self.causal:
            raise TypeError("GlobalAttention streams only when built with causal=True")
        weight = self.ffn[0].conv.weight
        return {"past": weight.new_zeros(batch, 0, self.norm.normalized_shape[0])
                if self.num_heads else None, "ffn": sequential_state(self.ffn, batch)}

    def forward_streaming(self, x: torch.Tensor, state: dict) -> torch.Tensor:
        """The next frames of :meth:`forward` (``[B, n, C]``, ``n >= 0``); updates ``state``.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, n, C]`` the next frames.
        state : dict
            From :meth:`init_state`; updated in place.

        Returns
        -------
        torch.Tensor
            ``[B, n, C]``.
        """
        if x.shape[1] == 0:
            return x
        if self.num_heads:  # the kept frames are keys and values; only the new ones query
            keys = torch.cat([state["past"], self.norm(x)], dim=1)  # [B, m + n, C]
            mask = lookback_mask(keys.shape[1], self.lookback, x.device)
            x = x + self.attention_dropout(self.attention(keys, mask)[:, -x.shape[1]:])
            state["past"] = keys[:, max(0, keys.shape[1] - (self.lookback - 1)):]
        return x + stream_sequential(self.ffn, x, state["ffn"])


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
    causal : bool
        :class:`~gass_modules.lobes.parts.causal.CausalConvNorm` convolutions (left-padded,
        frame-wise norms); the coarse frame ``c`` then serves fine frames ``r c .. r c + r - 1``
        while it sees nothing after fine frame ``r c`` (when built causally), and the layer
        streams.

    Example
    -------
    >>> live = LocalAttention(channels=8, kernel_size=5, causal=True)
    >>> fine, coarse = torch.randn(2, 12, 8), torch.randn(2, 3, 8)
    >>> state = live.init_state(2)
    >>> a = live.forward_streaming(fine[:, :5], coarse[:, :2], 4, state)
    >>> b = live.forward_streaming(fine[:, 5:], coarse[:, 2:], 4, state)
    >>> torch.allclose(torch.cat([a, b], 1), live(fine, coarse, 4), atol=1e-6)
    True
    >>> la = LocalAttention(channels=8, kernel_size=5)
    >>> la(torch.randn(2, 12, 8), torch.randn(2, 3, 8), factor=4).shape
    torch.Size([2, 12, 8])
    """

    def __init__(self, channels: int, kernel_size: int = 5, causal: bool = False) -> None:
        super().__init__()
        check_positive_int(channels=channels, kernel_size=kernel_size)
        self.causal = causal
        if causal:
            self.local, self.gate, self.shift = (
                CausalConvNorm(channels, channels, kernel_size, groups=channels, bias=False)
                for _ in range(3))
            return
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

    def init_state(self, batch: int) -> dict:
        """A new stream's state (causal layers): the convolutions' buffers, no coarse frame.

        Arguments
        ---------
        batch : int
            Number of streams.

        Returns
        -------
        dict
            The three convolutions' states, the coarse frames still needed (``gate``,
            ``shift``, the first one's index ``first``) and the fine frames done (``done``).
        """
        if not self.causal:
            raise TypeError("LocalAttention streams only when built with causal=True")
        empty = self.gate.conv.weight.new_zeros(batch, 0, self.gate.conv.out_channels)
        return {"convs": [conv.init_state(batch) for conv in (self.local, self.gate,
                                                               self.shift)],
                "gate": empty, "shift": empty, "first": 0, "done": 0}

    def forward_streaming(self, fine: torch.Tensor, coarse: torch.Tensor, factor: int,
                          state: dict) -> torch.Tensor:
        """The next fine frames of :meth:`forward` from the next fine and coarse frames.

        Arguments
        ---------
        fine : torch.Tensor
            ``[B, n, C]`` the next fine frames.
        coarse : torch.Tensor
            ``[B, m, C]`` the next coarse frames: with those before, at least up to coarse
            frame ``floor((done + n - 1) / factor)``.
        factor : int
            Exact length ratio.
        state : dict
            From :meth:`init_state`; updated in place.

        Returns
        -------
        torch.Tensor
            ``[B, n, C]`` fused frames.
        """
        convs = state["convs"]
        if coarse.shape[1]:  # most calls at the coarse scales complete no coarse frame
            gate, convs[1] = self.gate.forward_streaming(coarse, convs[1])  # [B, m, C]
            shift, convs[2] = self.shift.forward_streaming(coarse, convs[2])
            state["gate"] = torch.cat([state["gate"], torch.sigmoid(gate)], dim=1)
            state["shift"] = torch.cat([state["shift"], shift], dim=1)
        if fine.shape[1] == 0:
            return fine
        local, convs[0] = self.local.forward_streaming(fine, convs[0])  # [B, n, C]
        gate, shift = state["gate"], state["shift"]
        done = state["done"]
        index = torch.arange(done, done + fine.shape[1], device=fine.device) // factor
        index = index - state["first"]  # the coarse frame of each fine frame, in the kept ones
        out = torch.addcmul(shift[:, index], local, gate[:, index])  # [B, n, C]
        state["done"] = done = done + fine.shape[1]
        drop = done // factor - state["first"]  # coarse frames no later fine frame needs
        state["gate"], state["shift"] = gate[:, drop:], shift[:, drop:]
        state["first"] += drop
        return out
