"""TDANet (Li, Yang & Hu, ICLR 2023) as SpeechBrain lobes: TDANet-Wav and TDANet-STFT.

"An efficient encoder-decoder architecture with top-down attention for speech separation".
The masker of TDANet is one encoder-decoder block
(:class:`~gass_modules.lobes.parts.uconv.UConvBlock`) unfolded ``num_blocks`` times with shared
weights.
Inside the block (paper §3, Fig. 1-2), with ``S = depth``:

* bottom-up: ``F_0 = DWConv(P(x))`` and ``F_i = DWConv_stride2(F_{i-1})`` for ``i = 1..S``,
  i.e. ``S + 1`` scales of ``T / 2^i`` frames (depthwise convs + gLN);
* global attention (GA): ``G = FFN(MHSA(sum_i pool(F_i)))``, the scales average-pooled to the
  coarsest one (fixed factors ``2^(S - i)``), multi-head self-attention then a conv FFN;
* top-down: ``F'_i = LA(F_i, G)`` injects ``G`` into every scale, then local attention layers
  fuse coarse to fine, ``U_S = F'_S`` and ``U_i = LA(F'_i, U_{i+1})``, where
  ``LA(x, y) = W_l(x) * sigmoid(W_a(y))↑ + W_g(y)↑`` (``↑``: nearest up-sampling by an exact
  factor) and the output is ``R(U_0) + x``.

Two known bugs of the official implementation are *not* reproduced: its
``nn.MultiheadAttention`` is built without ``batch_first=True`` while fed ``[B, T, C]`` tensors,
so it attends across the batch (here :class:`MultiHeadSelfAttention` attends over the frames of
each item, and the conformance suite checks batch independence); and its first top-down fusion
step takes the level below (``i - 1``) instead of the coarsest level. Down- and up-sampling use
fixed factors, the frame count is padded to a multiple of ``2^S``, the positional encoding is
computed from ``arange(T)`` in the graph and the coarsest scale never has a single frame, so the
separators export with a dynamic batch and length.

Separators (``gass_modules.lobes.base.Separator``, ``[B, T] -> [B, T, S]``):

* :class:`TDANetWav`: learned conv encoder, ReLU masks on the encoder features, transposed-conv
  decoder (the paper's model; GASS uses a 1024-channel encoder);
* :class:`TDANetSTFT`: STFT encoder, real+imag channels into the masker, complex masks on the
  spectrogram, iSTFT decoder.

``causal=True`` (issue #28) makes the block causal (left-padded convolutions and pooling,
frame-wise LayerNorms, attention over a bounded look-back of past coarse frames: see
:class:`UConvBlock`) and TDANet-STFT streams (``init_state`` / ``forward_streaming``), each scale
of each unfolded block carrying its own state.

Both expose ``encoder``, ``masker`` (:class:`TDANetMasker`, ``[B, N, T'] -> [S, B, N, T']``, the
SpeechBrain ``Dual_Path_Model`` convention) and ``decoder``, so the masker composes with
``speechbrain.lobes.models.dual_path.Encoder``/``Decoder`` (see :class:`TDANetMasker`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gass_modules.lobes.base import Separator, check_positive_int
from gass_modules.lobes.parts.blocks import (
    Conv1d,
    ConvDecoder,
    ConvEncoder,
    ISTFTDecoder,
    STFTEncoder,
    channels_to_complex,
    complex_to_channels,
    global_layer_norm,
    pad_to_multiple,
)
from gass_modules.lobes.parts.causal import (
    StreamingSTFT,
)
from gass_modules.lobes.parts.masking import check_encoder_features, make_mask_activation
from gass_modules.lobes.parts.output_layers import check_permutation, permute_source_groups
from gass_modules.lobes.parts.uconv import UConvBlock


class TDANetMasker(nn.Module):
    """TDANet's masker: gLN, bottleneck, the unfolded UConv block, mask estimation.

    ``x_0 = Conv1x1(gLN(w))``, ``x_1 = U(x_0)``, ``x_{k+1} = U(PReLU(DW1x1(x_0 + x_k)))`` for
    ``num_blocks`` applications of the same block ``U``, then ``masks = act(Conv1x1(PReLU(x)))``.
    Any frame count works: frames are zero-padded to a multiple of ``2^depth`` and cropped back.
    (Inside, features are frames-last; the interface is SpeechBrain's channels-first one.)

    Arguments
    ---------
    enc_channels : int
        Channels ``N`` of the encoder features (and of each mask).
    num_sources : int
        Number of masks ``S``.
    bottleneck_channels : int
        Bottleneck width ``B``.
    hidden_channels : int
        Width ``H`` inside the UConv block.
    depth : int
        Down-samplings ``S`` inside the block.
    num_blocks : int
        Times the shared block is applied.
    kernel_size : int
        Odd depthwise kernel size.
    num_heads : int
        Attention heads.
    ffn_factor : int
        FFN width factor of the GA module.
    dropout : float
        Dropout of the GA module.
    mask_activation : str
        ``"relu"`` (the paper), ``"sigmoid"``, ``"tanh"``, ``"linear"`` (complex masks) or
        ``"softmax"``: a softmax across the ``S`` sources, so that the masks of every channel and
        frame are non-negative and sum to 1 (ratio masks, like the IRM: the estimates add up to
        the mixture when the decoder is linear).
    mask_channels : int, optional
        Channels of each mask (default ``enc_channels``; e.g. ``F`` magnitude masks from ``2F``
        real+imag features).
    causal : bool
        A causal block (see :class:`UConvBlock`) and a frame-wise LayerNorm of the input for
        gLN: mask frame ``t`` depends on feature frames ``<= t``; the masker streams.
    attention_lookback : int
        Coarse frames the causal GA attends to.

    Example
    -------
    Composed with SpeechBrain's encoder and decoder, as SepFormer's recipe composes its masker:

    >>> from speechbrain.lobes.models.dual_path import Decoder, Encoder
    >>> encoder = Encoder(kernel_size=16, out_channels=64)
    >>> masker = TDANetMasker(enc_channels=64, num_sources=2, bottleneck_channels=16,
    ...                       hidden_channels=32, depth=2, num_blocks=2, num_heads=4)
    >>> decoder = Decoder(in_channels=64, out_channels=1, kernel_size=16, stride=8, bias=False)
    >>> mix = torch.randn(3, 1000)
    >>> feats = encoder(mix)  # [B, N, T'], T' = 124 (not a multiple of 4)
    >>> masks = masker(feats)  # [S, B, N, T']
    >>> masks.shape
    torch.Size([2, 3, 64, 124])
    >>> est = torch.stack([decoder(feats * m) for m in masks], dim=-1)  # [B, T, S]
    >>> est.shape
    torch.Size([3, 1000, 2])
    """

    def __init__(self, enc_channels: int, num_sources: int, bottleneck_channels: int = 128,
                 hidden_channels: int = 512, depth: int = 4, num_blocks: int = 16,
                 kernel_size: int = 5, num_heads: int = 8, ffn_factor: int = 2,
                 dropout: float = 0.1, mask_activation: str = "relu",
                 mask_channels: int | None = None, causal: bool = False,
                 attention_lookback: int = 32) -> None:
        super().__init__()
        mask_channels = enc_channels if mask_channels is None else mask_channels
        check_positive_int(enc_channels=enc_channels, num_sources=num_sources,
                           bottleneck_channels=bottleneck_channels, num_blocks=num_blocks,
                           mask_channels=mask_channels)
        activation = make_mask_activation(mask_activation, source_dim=2)  # on [B, T', S, N]
        self.enc_channels = enc_channels
        self.mask_channels = mask_channels
        self.num_sources = num_sources
        self.num_blocks = num_blocks
        self.multiple = 2 ** depth
        self.causal = causal
        self.norm = nn.LayerNorm(enc_channels, eps=1e-8) if causal else global_layer_norm(
            enc_channels)
        self.bottleneck = Conv1d(enc_channels, bottleneck_channels, 1, frames_last=True)
        self.block = UConvBlock(bottleneck_channels, hidden_channels, depth, kernel_size,
                                num_heads, ffn_factor, dropout, causal, attention_lookback)
        # Re-injects the block input before every application after the first (absent when the
        # block runs once, so that every parameter is used).
        self.reinject = nn.Sequential(
            Conv1d(bottleneck_channels, bottleneck_channels, 1, groups=bottleneck_channels,
                   frames_last=True),
            nn.PReLU(),
        ) if num_blocks > 1 else None
        self.mask = nn.Sequential(
            nn.PReLU(),
            Conv1d(bottleneck_channels, num_sources * mask_channels, 1, frames_last=True),
        )
        self.mask_activation = activation

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Estimates one mask per source.

        Arguments
        ---------
        feats : torch.Tensor
            ``[B, N, T']`` encoder features, any ``T' >= 1``.

        Returns
        -------
        torch.Tensor
            ``[S, B, N, T']`` masks (``mask_channels`` in place of ``N`` when given).
        """
        check_encoder_features(feats, self.enc_channels)
        frames = feats.shape[-1]
        normed = (self.norm(feats.transpose(1, 2)) if self.causal  # frame-wise
                  else self.norm(feats).transpose(1, 2))
        x0 = self.bottleneck(normed)  # [B, T', B_c]
        x0 = pad_to_multiple(x0, self.multiple, dim=1)  # [B, T'', B_c]
        x = self.block(x0)
        for _ in range(self.num_blocks - 1):
            x = self.block(self.reinject(x0 + x))
        return self._masks(x[:, :frames])

    def _masks(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T', B_c]`` block output -> ``[S, B, N, T']`` masks."""
        masks = self.mask(x).unflatten(2, (self.num_sources, self.mask_channels))
        return self.mask_activation(masks).permute(2, 0, 3, 1)  # [B, T', S, N] -> [S, B, N, T']

    def permute_sources(self, order: list[int]) -> None:
        """Renumbers the masks in place: mask ``k`` becomes mask ``order[k]`` (the output
        convolution's rows are source-major, ``[S * mask_channels]``)."""
        conv = self.mask[1]
        for tensor in (conv.weight, conv.bias):
            if tensor is not None:
                permute_source_groups(tensor, order, dim=0)

    def init_state(self, batch: int) -> list:
        """A new stream's state (causal maskers): one per application of the shared block."""
        return [self.block.init_state(batch) for _ in range(self.num_blocks)]

    def forward_streaming(self, feats: torch.Tensor, state: list) -> torch.Tensor:
        """``[B, N, k]`` next encoder frames -> their ``[S, B, N, k]`` masks (updates ``state``)."""
        x0 = self.bottleneck(self.norm(feats.transpose(1, 2)))  # [B, k, B_c]
        x = self.block.forward_streaming(x0, state[0])
        for i in range(1, self.num_blocks):
            x = self.block.forward_streaming(self.reinject(x0 + x), state[i])
        return self._masks(x)


class TDANetWav(Separator):
    """TDANet-Wav: learned conv encoder, TDANet masker, transposed-conv decoder.

    ``w = Enc(x)`` (``N`` channels, hop ``enc_stride``), ``m_s = Masker(w)_s``,
    ``ŝ_s = Dec(w * m_s)``. The total stride is ``enc_stride * 2^(depth + 1)``: the encoder frame
    count is a multiple of ``2^depth`` and the coarsest scale holds an even number (at least 2)
    of frames. A single coarsest frame would be traced by ``torch.export`` as a special case
    (PyTorch's size-1 checks add guards ``T_coarse != 1``), so the program traced on longer
    inputs would reject the shortest ones.

    Arguments
    ---------
    num_sources : int
        Output sources ``S`` (GASS: 4).
    sample_rate : int
        Sample rate in Hz.
    enc_channels : int
        Encoder basis size ``N`` (GASS: 1024).
    enc_kernel_size : int
        Encoder window in samples.
    enc_stride : int
        Encoder hop in samples (``enc_kernel_size - enc_stride`` even).
    bottleneck_channels : int
        Bottleneck width.
    hidden_channels : int
        UConv width.
    depth : int
        Down-samplings per block.
    num_blocks : int
        Unfolded applications of the shared block.
    kernel_size : int
        Depthwise kernel size.
    num_heads : int
        Attention heads.
    ffn_factor : int
        FFN width factor.
    dropout : float
        Dropout of the GA module.
    mask_activation : str
        Mask non-linearity (see :class:`TDANetMasker`).

    Example
    -------
    >>> model = TDANetWav(num_sources=2, sample_rate=8000, enc_channels=32, enc_kernel_size=16,
    ...                   enc_stride=8, bottleneck_channels=16, hidden_channels=32, depth=2,
    ...                   num_blocks=2, num_heads=4).eval()
    >>> model.stride
    64
    >>> model(torch.randn(2, 1001)).shape
    torch.Size([2, 1001, 2])
    """

    def __init__(self, num_sources: int = 4, sample_rate: int = 16000, enc_channels: int = 1024,
                 enc_kernel_size: int = 64, enc_stride: int = 16, bottleneck_channels: int = 128,
                 hidden_channels: int = 512, depth: int = 4, num_blocks: int = 16,
                 kernel_size: int = 5, num_heads: int = 8, ffn_factor: int = 2,
                 dropout: float = 0.1, mask_activation: str = "relu") -> None:
        check_positive_int(enc_stride=enc_stride, depth=depth)
        super().__init__(num_sources, sample_rate, enc_stride * 2 ** (depth + 1))
        self.encoder = ConvEncoder(enc_channels, enc_kernel_size, enc_stride)
        self.masker = TDANetMasker(enc_channels, num_sources, bottleneck_channels,
                                   hidden_channels, depth, num_blocks, kernel_size, num_heads,
                                   ffn_factor, dropout, mask_activation)
        self.decoder = ConvDecoder(enc_channels, enc_kernel_size, enc_stride)

    def permute_outputs(self, order: Sequence[int]) -> None:
        """Renumbers the outputs in place (see :meth:`Separator.permute_outputs`).

        Arguments
        ---------
        order : sequence of int
            Output ``k`` becomes what output ``order[k]`` was.
        """
        self.masker.permute_sources(check_permutation(order, self.num_sources))

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates a mixture whose length is a multiple of ``stride``.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, L]`` mixture.

        Returns
        -------
        torch.Tensor
            ``[B, L, S]`` estimated sources.
        """
        feats = self.encoder(mix)  # [B, N, L / enc_stride]
        masks = self.masker(feats)  # [S, B, N, L / enc_stride]
        return self.decoder(masks * feats).permute(1, 2, 0)  # [S, B, L] -> [B, L, S]


class TDANetSTFT(Separator):
    """TDANet-STFT: STFT encoder, TDANet masker on spectral features, masks, iSTFT.

    ``X = STFT(x)`` (``[B, F, N]``), ``M_s = Masker(features(X))_s``, ``ŝ_s = iSTFT(M_s * X)``.
    Features are ``[Re X; Im X]`` (``"ri"``, 2F channels) or the compressed magnitude
    ``|X|^0.3`` (``"mag"``, F channels; with the masker's gLN both are invariant to the input
    gain). Masks are complex (``"complex"``: 2F channels per source, first ``F`` real, last ``F``
    imaginary) or real magnitude masks that keep the mixture's phase (``"magnitude"``: F
    channels). Magnitude features and masks learn much faster from few updates (the CPU demo);
    the GASS card keeps real+imag features and complex masks. The total stride is
    ``hop_length * 2^depth``; the ``L / hop + 1`` frames are padded to a multiple of
    ``2^depth`` inside the masker, so the coarsest scale always holds at least 2 frames.

    Arguments
    ---------
    num_sources : int
        Output sources ``S`` (GASS: 4).
    sample_rate : int
        Sample rate in Hz.
    n_fft : int
        FFT size (Hann window of the same length); ``F = n_fft // 2 + 1``.
    hop_length : int
        STFT hop in samples (at most ``n_fft // 2``).
    bottleneck_channels : int
        Bottleneck width.
    hidden_channels : int
        UConv width.
    depth : int
        Down-samplings per block.
    num_blocks : int
        Unfolded applications of the shared block.
    kernel_size : int
        Depthwise kernel size.
    num_heads : int
        Attention heads.
    ffn_factor : int
        FFN width factor.
    dropout : float
        Dropout of the GA module.
    mask_activation : str
        Applied to the mask values (real and imaginary parts of complex masks); ``"linear"``
        (unbounded complex masks) by default. ``"softmax"`` (ratio masks summing to 1 across
        sources, whose estimates add up to the mixture) needs ``mask_type="magnitude"``.
    features : str
        ``"ri"`` (real and imaginary parts) or ``"mag"`` (magnitude to the power 0.3).
    mask_type : str
        ``"complex"`` or ``"magnitude"``.
    causal : bool
        A causal masker (:class:`TDANetMasker`), so the output at sample ``n`` depends on the
        input up to ``n + n_fft - 2`` (``lookahead``: the window, as for the causal BSRNN) and
        the model streams (``init_state`` / ``forward_streaming``).
    attention_lookback : int
        Coarse frames (``hop_length * 2^depth`` samples each) the causal GA attends to.

    Example
    -------
    >>> live = TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
    ...                   bottleneck_channels=16, hidden_channels=32, depth=2, num_blocks=2,
    ...                   num_heads=4, causal=True, attention_lookback=4).eval()
    >>> live.causal, live.lookahead
    (True, 62)
    >>> mix = torch.randn(1, 400)
    >>> out, state = live.forward_streaming(mix, live.init_state(1))
    >>> out.shape  # the samples the first 400 finish: 400 - n_fft + hop
    torch.Size([1, 352, 2])
    >>> torch.allclose(out, live(mix)[:, :352], atol=1e-5)
    True
    >>> model = TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
    ...                    bottleneck_channels=16, hidden_channels=32, depth=2, num_blocks=2,
    ...                    num_heads=4).eval()
    >>> model.stride
    64
    >>> model(torch.randn(2, 1001)).shape
    torch.Size([2, 1001, 2])
    >>> fast = TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
    ...                   bottleneck_channels=16, hidden_channels=32, depth=2, num_blocks=2,
    ...                   num_heads=4, mask_activation="sigmoid", features="mag",
    ...                   mask_type="magnitude").eval()
    >>> fast(torch.randn(2, 1001)).shape
    torch.Size([2, 1001, 2])
    """

    FEATURES = ("ri", "mag")
    MASK_TYPES = ("complex", "magnitude")
    MAGNITUDE_EXPONENT = 0.3

    def __init__(self, num_sources: int = 4, sample_rate: int = 16000, n_fft: int = 512,
                 hop_length: int = 128, bottleneck_channels: int = 128,
                 hidden_channels: int = 512, depth: int = 4, num_blocks: int = 16,
                 kernel_size: int = 5, num_heads: int = 8, ffn_factor: int = 2,
                 dropout: float = 0.1, mask_activation: str = "linear", features: str = "ri",
                 mask_type: str = "complex", causal: bool = False,
                 attention_lookback: int = 32) -> None:
        check_positive_int(hop_length=hop_length, depth=depth)
        if features not in self.FEATURES:
            raise ValueError(f"features must be one of {self.FEATURES}, got {features!r}")
        if mask_type not in self.MASK_TYPES:
            raise ValueError(f"mask_type must be one of {self.MASK_TYPES}, got {mask_type!r}")
        if mask_activation == "softmax" and mask_type != "magnitude":
            raise ValueError("mask_activation='softmax' makes ratio masks summing to 1 across "
                             "sources, which applies to magnitude masks only; set "
                             "mask_type='magnitude' (or pick another mask_activation)")
        if not isinstance(causal, bool):
            raise ValueError(f"causal must be True or False, got {causal!r}")
        super().__init__(num_sources, sample_rate, hop_length * 2 ** depth)
        self.causal = causal
        self.lookahead = n_fft - 2 if causal else None  # as BSRNN's (the periodic Hann window)
        self.features = features
        self.mask_type = mask_type
        self.encoder = STFTEncoder(n_fft, hop_length)
        bins = self.encoder.num_bins
        self.masker = TDANetMasker(
            2 * bins if features == "ri" else bins, num_sources, bottleneck_channels,
            hidden_channels, depth, num_blocks, kernel_size, num_heads, ffn_factor, dropout,
            mask_activation, 2 * bins if mask_type == "complex" else bins, causal,
            attention_lookback)
        self.decoder = ISTFTDecoder(n_fft, hop_length)

    permute_outputs = TDANetWav.permute_outputs  # the same masker, the same renumbering

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates a mixture whose length is a multiple of ``stride``.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, L]`` mixture.

        Returns
        -------
        torch.Tensor
            ``[B, L, S]`` estimated sources.
        """
        spec = self.encoder(mix)  # [B, F, N] complex
        masks = self._complex_masks(self.masker(self._features(spec)))  # [S, B, F, N]
        return self.decoder(masks * spec).permute(1, 2, 0)  # [S, B, L] -> [B, L, S]

    def _features(self, spec: torch.Tensor) -> torch.Tensor:
        """``[B, F, N]`` complex spectrum -> ``[B, 2F or F, N]`` masker input."""
        if self.features == "ri":  # constants of the module, not branches on shapes
            return complex_to_channels(spec)  # [B, 2F, N]
        # |X|^0.3 from the squared magnitude: finite gradient at |X| = 0
        return (spec.real.square() + spec.imag.square() + 1e-12).pow(
            self.MAGNITUDE_EXPONENT / 2)  # [B, F, N]

    def _complex_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """``[S, B, 2F or F, N]`` masker output -> masks applicable to the spectrum."""
        if self.mask_type == "complex":
            return channels_to_complex(masks)  # [S, B, F, N] complex
        return masks

    def init_state(self, batch: int) -> dict:
        """``batch`` new streams' state (causal models; see ``Separator``): STFT, masker."""
        self.check_streaming(batch)
        stft = StreamingSTFT(self.encoder.stft.window, self.encoder.hop_length)
        return {"stft": stft, "stft_state": stft.init_state(batch), "batch": batch,
                "masker": self.masker.init_state(batch)}

    def stream_chunk(self, chunk: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """The separation of the samples ``chunk`` finishes (see ``Separator.stream_chunk``)."""
        def estimate(spec: torch.Tensor) -> torch.Tensor:  # [B, F, k] -> [B, S, F, k]
            masks = self.masker.forward_streaming(self._features(spec), state["masker"])
            return (self._complex_masks(masks) * spec).transpose(0, 1)

        return state["stft"].separate(chunk, state["stft_state"], self.num_sources,
                                      estimate), state


__all__ = ["TDANetMasker", "TDANetSTFT", "TDANetWav"]
