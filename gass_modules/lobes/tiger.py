"""TIGER (Xu, Li, Chen & Hu, ICLR 2025) as a GASS separator lobe.

"TIGER: Time-frequency Interleaved Gain Extraction and Reconstruction for Efficient Speech
Separation" (arXiv 2410.01469), written from the paper as a general multi-source separator. The
model, in the paper's order:

* encoder: the complex STFT ``X`` (``F`` bins, ``T`` frames);
* band split: the bins are grouped into ``K`` sub-bands by a band plan in Hz (prior knowledge:
  narrow bands where speech has most of its information, wide bands above); each band's
  ``[Re, Im]`` parts are normalised and projected to ``N`` features, giving ``Z`` of shape
  ``[B, T, K, N]`` (:class:`~gass_modules.lobes.parts.band_layers.BandSplit`, band plans from
  :func:`~gass_modules.lobes.parts.bands.band_bins`, preset ``"tiger"``);
* separator: one frequency-frame interleaved (FFI) block (:class:`FrequencyFrameBlock`) applied
  ``num_blocks`` times with **shared parameters**, ``Z_1 = FFI(Z_0)`` and
  ``Z_{b+1} = FFI(PReLU(DW1x1(Z_0 + Z_b)))``. Each FFI block runs a frequency path (each frame
  seen as a sequence of ``K`` bands) then a frame path (each band seen as a sequence of ``T``
  frames); each path is a multi-scale selective attention module (MSA) then a full-frequency-frame
  attention module (F³A, :class:`FullBandFrameAttention`), a LayerNorm and a residual;
* band restoration (gain extraction and reconstruction, :class:`BandMaskHead`): per band, PReLU
  and a linear map give a complex mask per bin and source through a GLU; the masks are shifted
  to sum to one over the sources, so the estimates add up to the mixture;
* decoder: masks times the mixture spectrum, iSTFT.

MSA is TDANet's encoder-decoder block (the same authors' earlier model), reused here as
:class:`~gass_modules.lobes.parts.uconv.UConvBlock` with ``num_heads=0``: bottom-up depthwise
stride-2
convolutions give ``depth + 1`` scales, their average-pooled sum goes through a convolutional FFN
(TIGER has no self-attention there), and selective-attention layers
(``x * sigmoid(W_a g)↑ + W_g g↑``) inject the global features into every scale and fuse the
scales from coarse to fine. F³A attends along one axis with every position described by all of
the other axis: across bands with each band's queries and keys holding all its frames, and
across frames with each frame's holding all its bands.

Departures from the released code (github.com/JusperLee/TIGER), all deliberate:

* The band split normalises each band over its ``2 G_k`` features and all frames of the item, as
  the released code's ``GroupNorm(1, 2 G_k)`` does (``BandSplit(norm="band")``), but the Nyquist
  bin joins the last band instead of forming a band of its own (66 bands at 16 kHz, not 67).
* MSA fuses coarse to fine starting from the coarsest scale (the released code's first top-down
  step takes the scale below it, as TDANet's release did), its global FFN has a residual, and
  it zero-pads its sequence to a multiple of ``2^depth`` and crops back (the released code
  halves with rounding up and interpolates to the sizes).
* The grouped mask layer groups by source: source ``s`` gets its masks from its own
  ``N / S`` features (the released grouped convolution has the same parameter count but, by its
  output layout, groups value/gate and real/imaginary parts instead). ``N`` must be a multiple
  of ``S``.

``torch.export``: the frame count is padded inside each MSA call (an expression of the symbolic
length, never a Python branch), attention uses ``scaled_dot_product_attention`` whose scale
follows the symbolic embedding size, and the stride ``hop_length * 2^depth`` leaves at least two
frames at the coarsest scale of the frame path (see the separator contract).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gass_modules.lobes.base import Separator, check_positive_int
from gass_modules.lobes.parts.band_layers import BandGroups, BandSplit
from gass_modules.lobes.parts.bands import band_bins
from gass_modules.lobes.parts.blocks import (
    Conv1d,
    ISTFTDecoder,
    STFTEncoder,
    apply_complex_masks,
    pad_to_multiple,
)
from gass_modules.lobes.parts.uconv import UConvBlock


class HeadProjection(nn.Module):
    """Per-head pointwise projection, PReLU and LayerNorm: the 1x1 conv + act + norm of F³A.

    ``y_h = LN_h(PReLU_h(W_h x + b_h))`` for ``h = 1..H`` heads of ``D`` channels each, computed
    as one linear map to ``H * D`` channels: the same parameters as ``H`` separate
    ``Conv2d(C, D, 1)`` + ``PReLU()`` + ``LayerNorm(D)`` (one PReLU slope per head; the norm is
    over the ``D`` channels of each position).

    Arguments
    ---------
    in_channels : int
        Input channels ``C`` (the last dimension).
    num_heads : int
        ``H``.
    head_channels : int
        ``D``, channels per head.

    Example
    -------
    >>> proj = HeadProjection(8, num_heads=2, head_channels=3)
    >>> y = proj(torch.randn(4, 5, 8))
    >>> y.shape
    torch.Size([4, 5, 2, 3])
    >>> torch.allclose(y.mean(-1), torch.zeros(4, 5, 2), atol=1e-5)
    True
    """

    def __init__(self, in_channels: int, num_heads: int, head_channels: int) -> None:
        super().__init__()
        check_positive_int(in_channels=in_channels, num_heads=num_heads,
                           head_channels=head_channels)
        self.num_heads = num_heads
        self.head_channels = head_channels
        self.linear = nn.Linear(in_channels, num_heads * head_channels)
        self.slope = nn.Parameter(torch.full((num_heads, 1), 0.25))  # nn.PReLU's initial slope
        self.norm_weight = nn.Parameter(torch.ones(num_heads, head_channels))
        self.norm_bias = nn.Parameter(torch.zeros(num_heads, head_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projects every position.

        Arguments
        ---------
        x : torch.Tensor
            ``[..., C]`` features.

        Returns
        -------
        torch.Tensor
            ``[..., H, D]``.
        """
        y = self.linear(x).unflatten(-1, (self.num_heads, self.head_channels))  # [..., H, D]
        y = torch.where(y >= 0, y, self.slope.to(y.dtype) * y)
        y = nn.functional.layer_norm(y, (self.head_channels,))
        return y * self.norm_weight + self.norm_bias  # [..., H, D]


class FullBandFrameAttention(nn.Module):
    """F³A: multi-head attention along one axis, each position described by the whole other one.

    For features ``x`` of shape ``[B, A, O, C]`` it attends along ``A``: head ``h`` projects each
    position to queries and keys of ``E`` channels and values of ``C / H`` channels
    (:class:`HeadProjection`), flattens them over the ``O`` axis (query ``a`` is the
    ``O * E``-vector of position ``a`` across all of ``O``), computes
    ``softmax(Q K^T / sqrt(O E)) V`` over the ``A`` positions, and a projection (1x1, PReLU,
    LayerNorm) merges the heads, added to ``x``. In TIGER's frequency path ``A`` are the bands and
    ``O`` the frames (full-frame attention), in the frame path ``A`` are the frames and ``O`` the
    bands (full-frequency attention).

    Arguments
    ---------
    channels : int
        ``C`` (divisible by ``num_heads``).
    num_heads : int
        ``H``.
    key_channels : int
        ``E``, channels per head of the queries and keys.

    Example
    -------
    >>> f3a = FullBandFrameAttention(channels=8, num_heads=2, key_channels=3)
    >>> f3a(torch.randn(2, 6, 5, 8)).shape
    torch.Size([2, 6, 5, 8])
    """

    def __init__(self, channels: int, num_heads: int = 4, key_channels: int = 4) -> None:
        super().__init__()
        check_positive_int(channels=channels, num_heads=num_heads, key_channels=key_channels)
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads "
                             f"({num_heads})")
        self.channels = channels
        self.num_heads = num_heads
        self.query = HeadProjection(channels, num_heads, key_channels)
        self.key = HeadProjection(channels, num_heads, key_channels)
        self.value = HeadProjection(channels, num_heads, channels // num_heads)
        self.out = HeadProjection(channels, 1, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attends along dim 1.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, A, O, C]`` features.

        Returns
        -------
        torch.Tensor
            ``[B, A, O, C]``.
        """
        if x.dim() != 4 or x.shape[-1] != self.channels:
            raise ValueError(f"expected features [B, A, O, {self.channels}] (attending along A), "
                             f"got {tuple(x.shape)}")
        # [B, A, O, H, D] -> [B, H, A, O * D]: one vector per position of A and head
        q, k, v = (proj(x).permute(0, 3, 1, 2, 4).flatten(3)
                   for proj in (self.query, self.key, self.value))
        heads = nn.functional.scaled_dot_product_attention(q, k, v)  # [B, H, A, O * C / H]
        heads = heads.unflatten(3, (-1, self.channels // self.num_heads))  # [B, H, A, O, C/H]
        merged = heads.permute(0, 2, 3, 1, 4).flatten(3)  # [B, A, O, C]
        return x + self.out(merged)[..., 0, :]  # [B, A, O, C]


class FrequencyFrameBlock(nn.Module):
    """TIGER's frequency-frame interleaved (FFI) block: a frequency path, then a frame path.

    Frequency path: every frame's ``K`` bands are a sequence for MSA
    (:class:`~gass_modules.lobes.parts.uconv.UConvBlock` without self-attention), then F³A attends
    across the bands (each band described by all frames); ``Z <- Z + LN(F³A(MSA(Z)))``. Frame
    path: the same across the ``T`` frames of every band (each frame described by all bands).
    Each MSA call zero-pads its sequence to a multiple of ``2^depth`` and crops back.

    Arguments
    ---------
    channels : int
        ``N``, features per band.
    hidden_channels : int
        Width of the MSA modules' multi-scale features.
    depth : int
        Stride-2 down-samplings in MSA (``depth + 1`` scales; the paper's 5 scales are
        ``depth=4``).
    kernel_size : int
        Odd kernel of MSA's depthwise convolutions.
    num_heads : int
        F³A heads.
    key_channels : int
        F³A query/key channels per head.
    dropout : float
        Dropout in MSA's FFN.

    Example
    -------
    >>> block = FrequencyFrameBlock(channels=8, hidden_channels=16, depth=2, num_heads=2,
    ...                             key_channels=2)
    >>> block(torch.randn(2, 9, 5, 8)).shape
    torch.Size([2, 9, 5, 8])
    """

    def __init__(self, channels: int, hidden_channels: int, depth: int = 4, kernel_size: int = 5,
                 num_heads: int = 4, key_channels: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        check_positive_int(channels=channels, hidden_channels=hidden_channels, depth=depth)
        self.channels = channels
        self.multiple = 2 ** depth

        def msa() -> UConvBlock:
            return UConvBlock(channels, hidden_channels, depth, kernel_size, num_heads=0,
                              ffn_factor=1, dropout=dropout)

        self.freq_msa, self.frame_msa = msa(), msa()
        self.freq_attention = FullBandFrameAttention(channels, num_heads, key_channels)
        self.frame_attention = FullBandFrameAttention(channels, num_heads, key_channels)
        self.freq_norm = nn.LayerNorm(channels)
        self.frame_norm = nn.LayerNorm(channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Runs the frequency path, then the frame path.

        Arguments
        ---------
        z : torch.Tensor
            ``[B, T, K, N]`` band features.

        Returns
        -------
        torch.Tensor
            ``[B, T, K, N]``.
        """
        if z.dim() != 4 or z.shape[-1] != self.channels:
            raise ValueError(f"expected band features [B, T, K, {self.channels}], got "
                             f"{tuple(z.shape)}")
        batch, frames, bands, _ = z.shape
        # frequency path: the K bands of each frame are one sequence
        y = pad_to_multiple(z.flatten(0, 1), self.multiple, dim=1)  # [B*T, K', N]
        y = self.freq_msa(y)[:, :bands].unflatten(0, (batch, -1))  # [B, T, K, N]
        y = self.freq_attention(y.transpose(1, 2)).transpose(1, 2)  # across bands
        z = z + self.freq_norm(y)  # [B, T, K, N]
        # frame path: the T frames of each band are one sequence
        y = pad_to_multiple(z.transpose(1, 2).flatten(0, 1), self.multiple, dim=1)  # [B*K,T',N]
        y = self.frame_msa(y)[:, :frames].unflatten(0, (batch, bands))  # [B, K, T, N]
        y = self.frame_attention(y.transpose(1, 2))  # [B, T, K, N], across frames
        return z + self.frame_norm(y)  # [B, T, K, N]


class BandMaskHead(nn.Module):
    """Band restoration: per-band PReLU, source-grouped linear map and GLU -> complex masks.

    Band ``k`` (``G_k`` bins): ``PReLU_k``, then source ``s`` maps its own ``N / S`` features to
    ``4 G_k`` outputs (weights per band and source), and a GLU (first half times the sigmoid of
    the second) gives the real and imaginary mask of each bin (value feature ``2j + c`` is bin
    ``j``, real ``c = 0`` or imaginary ``c = 1``). With ``sum_to_one`` the masks of every bin are
    then shifted by the same amount for every source so that they sum to ``1 + 0i``: the
    estimates add up to the mixture. Bands of equal width run together (:class:`BandGroups`).

    Arguments
    ---------
    bins : sequence of (int, int)
        Contiguous bin ranges of the bands (see :func:`~gass_modules.lobes.parts.bands.band_bins`).
    feature_dim : int
        ``N``, a multiple of ``num_sources``.
    num_sources : int
        ``S``.
    sum_to_one : bool
        Shift the masks to sum to one over the sources.

    Example
    -------
    >>> head = BandMaskHead([(0, 1), (1, 4), (4, 7)], feature_dim=8, num_sources=2)
    >>> masks = head(torch.randn(3, 5, 3, 8))
    >>> masks.shape
    torch.Size([3, 2, 7, 5, 2])
    >>> torch.allclose(masks.sum(1), torch.tensor([1.0, 0.0]).expand(3, 7, 5, 2), atol=1e-6)
    True
    """

    def __init__(self, bins: Sequence[tuple[int, int]], feature_dim: int, num_sources: int,
                 sum_to_one: bool = True) -> None:
        super().__init__()
        check_positive_int(feature_dim=feature_dim, num_sources=num_sources)
        if feature_dim % num_sources:
            raise ValueError(f"feature_dim ({feature_dim}) must be a multiple of num_sources "
                             f"({num_sources}): each source's masks come from its own "
                             f"feature_dim / num_sources features; e.g. feature_dim="
                             f"{-(-feature_dim // num_sources) * num_sources} (132 suits 2, "
                             "3 and 4 sources)")
        self.groups = BandGroups(bins)
        self.bins = self.groups.bins
        self.feature_dim = feature_dim
        self.num_sources = num_sources
        self.sum_to_one = sum_to_one
        per_source = feature_dim // num_sources
        bound = 1 / math.sqrt(per_source)  # nn.Conv1d's default initialisation
        self.slopes, self.weights, self.biases = (nn.ParameterList() for _ in range(3))
        for width, members in zip(self.groups.widths, self.groups.members):
            count = len(members)
            self.slopes.append(nn.Parameter(torch.full((count, 1), 0.25)))  # nn.PReLU's init
            self.weights.append(nn.Parameter(
                torch.empty(count, num_sources, per_source, 4 * width).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(
                torch.empty(count, num_sources, 4 * width).uniform_(-bound, bound)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Estimates the masks of every bin.

        Arguments
        ---------
        z : torch.Tensor
            ``[B, T, K, N]`` band features.

        Returns
        -------
        torch.Tensor
            ``[B, S, F, T, 2]`` float32 real and imaginary masks, bands merged in bin order.
        """
        if z.dim() != 4 or z.shape[2] != len(self.bins) or z.shape[3] != self.feature_dim:
            raise ValueError(f"expected band features [B, T, {len(self.bins)}, "
                             f"{self.feature_dim}], got {tuple(z.shape)}")
        masks = []
        for g, width in enumerate(self.groups.widths):
            x = self.groups.gather_bands(z, g)  # [B, T, n_g, N]
            x = torch.where(x >= 0, x, self.slopes[g].to(x.dtype) * x)  # PReLU per band
            x = x.unflatten(-1, (self.num_sources, -1))  # [B, T, n_g, S, N / S]
            y = torch.einsum("btksi,ksio->btkso", x, self.weights[g].to(x.dtype))
            y = nn.functional.glu(y + self.biases[g].to(y.dtype), dim=-1)  # [B, T, n_g, S, 2G]
            y = y.unflatten(-1, (width, 2)).permute(0, 3, 1, 2, 4, 5)  # [B, S, T, n_g, G, 2]
            masks.append(y.flatten(3, 4).float())  # [B, S, T, n_g * G, 2]
        merged = self.groups.bins_in_order(masks, dim=3)  # [B, S, T, F, 2]
        if self.sum_to_one:  # a constant of the module, not a branch on shapes
            one = torch.tensor([1.0, 0.0], device=merged.device)
            merged = merged - (merged.sum(1, keepdim=True) - one) / self.num_sources
        return merged.transpose(2, 3)  # [B, S, F, T, 2]


class TIGER(Separator):
    """TIGER separator: mixture ``[B, T]`` -> ``num_sources`` sources ``[B, T, S]``.

    STFT (Hann window of ``n_fft`` samples, hop ``hop_length``, zero-padded centred frames) ->
    :class:`~gass_modules.lobes.parts.band_layers.BandSplit` (``norm="band"``) -> one
    :class:`FrequencyFrameBlock` applied ``num_blocks`` times with shared parameters ->
    :class:`BandMaskHead` -> masks times the mixture spectrum -> iSTFT. The stride is
    ``hop_length * 2^depth``: the ``L / hop + 1`` frames are padded to a multiple of ``2^depth``
    inside MSA, so its coarsest scale always holds at least two frames.

    Arguments
    ---------
    num_sources : int
        ``S``, the number of outputs (GASS: 4; the paper: 2 speakers).
    sample_rate : int
        Sample rate in Hz; with ``n_fft`` it turns the band plan into bins.
    n_fft : int
        FFT size and window length (the paper: 640 at 16 kHz, 40 ms).
    hop_length : int
        STFT hop in samples (the paper: 160 at 16 kHz, 10 ms), at most ``n_fft // 2``.
    band_plan : str or sequence of (float, float)
        A preset name (``"tiger"``, ``"tiger_dnr"``, ``"gass"``, ...) or bands in Hz.
    feature_dim : int
        ``N``, features per band (a multiple of ``num_sources``).
    hidden_dim : int
        Width of the MSA modules.
    depth : int
        Down-samplings in MSA (``depth + 1`` scales).
    num_blocks : int
        Applications of the shared FFI block (the paper's small model 4, large 8).
    kernel_size : int
        Odd depthwise kernel of MSA.
    num_heads : int
        F³A heads (``feature_dim`` must be divisible by it).
    key_channels : int
        F³A query/key channels per head.
    dropout : float
        Dropout of MSA's FFN.
    sum_to_one : bool
        Masks sum to one over the sources (the estimates add up to the mixture).

    Example
    -------
    >>> model = TIGER(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
    ...               band_plan="speech", feature_dim=8, hidden_dim=16, depth=2, num_blocks=2,
    ...               num_heads=2, key_channels=2).eval()
    >>> model.stride, model.num_bands
    (128, 30)
    >>> mix = torch.randn(3, 1001)
    >>> est = model(mix)
    >>> est.shape
    torch.Size([3, 1001, 2])
    >>> torch.allclose(est.sum(-1), mix, atol=1e-4)
    True
    """

    def __init__(
        self,
        num_sources: int = 4,
        sample_rate: int = 16000,
        n_fft: int = 640,
        hop_length: int = 160,
        band_plan: str | Sequence[Sequence[float]] = "tiger",
        feature_dim: int = 128,
        hidden_dim: int = 256,
        depth: int = 4,
        num_blocks: int = 4,
        kernel_size: int = 5,
        num_heads: int = 4,
        key_channels: int = 4,
        dropout: float = 0.1,
        sum_to_one: bool = True,
    ) -> None:
        check_positive_int(hop_length=hop_length, depth=depth, num_blocks=num_blocks,
                           feature_dim=feature_dim)
        super().__init__(num_sources=num_sources, sample_rate=sample_rate,
                         stride=hop_length * 2 ** depth)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.num_blocks = num_blocks
        self.bins = band_bins(band_plan, sample_rate, n_fft)
        self.num_bands = len(self.bins)
        self.encoder = STFTEncoder(n_fft, hop_length)  # Hann, centred, zero-padded frames
        self.decoder = ISTFTDecoder(n_fft, hop_length)
        self.band_split = BandSplit(self.bins, feature_dim, norm="band")
        self.block = FrequencyFrameBlock(feature_dim, hidden_dim, depth, kernel_size, num_heads,
                                         key_channels, dropout)
        # Re-injects the band-split features before every application after the first (absent
        # when the block runs once, so that every parameter is used).
        self.reinject = nn.Sequential(
            Conv1d(feature_dim, feature_dim, 1, groups=feature_dim, frames_last=True),
            nn.PReLU(),
        ) if num_blocks > 1 else None
        self.mask_head = BandMaskHead(self.bins, feature_dim, num_sources, sum_to_one)

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates a mixture whose length is a multiple of ``stride``.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, L]`` mixture, ``L % stride == 0``.

        Returns
        -------
        torch.Tensor
            ``[B, L, S]`` estimated sources.
        """
        spec = self.encoder(mix)  # [B, F, T'] complex, T' = L / hop + 1
        z0 = self.band_split(spec)  # [B, T', K, N]
        z = self.block(z0)
        for _ in range(self.num_blocks - 1):  # the same block: parameters shared
            z = self.block(self.reinject((z0 + z).flatten(1, 2)).unflatten(
                1, (-1, self.num_bands)))  # [B, T', K, N]
        masks = self.mask_head(z)  # [B, S, F, T', 2] float32
        return apply_complex_masks(self.decoder, spec, masks)  # [B, L, S]
