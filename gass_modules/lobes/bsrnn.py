"""Band-split RNN (BSRNN) as a GASS separator lobe, with band plans given in Hz.

Written from Y. Luo and J. Yu, "Music source separation with band-split RNN", IEEE/ACM TASLP
2023 (arXiv 2209.15174), as a general multi-source separator (GASS, Pons et al., ICASSP 2024).
The paper's symbols: the complex spectrogram ``X`` (``F`` bins, ``T`` frames) is split into
``K`` subbands of ``G_k`` bins; each band is normalised and projected to ``N`` features
(``feature_dim``), giving ``Z`` of shape ``[N, K, T]``; interleaved residual BLSTMs model ``Z``
across time (per band) and across bands (per frame); per-band MLPs with a GLU estimate a complex
mask ``M_k`` for each band and each of the ``S`` sources; the masked spectra are inverted with
the iSTFT.

Departures from the paper, all deliberate:

* Normalisation never spans time: the paper's group norm over ``[N, T]`` becomes a LayerNorm over
  the ``N`` features of each (frame, band), so any length works, the output of item ``b`` depends
  only on item ``b``, and zero-padding a mixture does not change the statistics of its frames.
* One mask head per band outputs masks for all ``S`` sources at once (the paper trains one model
  per source).
* The STFT (the shared :class:`~gass_modules.lobes.parts.blocks.STFTEncoder`) zero-pads its centred
  frames rather than reflecting, so lengths down to one hop work and ``torch.export`` adds no
  minimum-length guard.


The skeleton (STFT, band split, blocks, mask MLPs, iSTFT) is
:class:`~gass_modules.lobes.band_split.BandSplitSeparator`, in
:mod:`gass_modules.lobes.band_split`, shared by the band-split models: BSRNN passes BLSTM blocks,
BS-RoFormer (:mod:`gass_modules.lobes.bs_roformer`) transformer blocks, with ``norm="rms"``.

The parts live in their own modules: band plans in Hz and their
bin ranges in :mod:`gass_modules.lobes.parts.bands` (presets ``"music"``, ``"speech"``, ``"gass"``,
``"roformer"``, ``"tiger"``, ``"tiger_dnr"``), :class:`BandSplit` and :class:`MaskEstimator` with
their norms in :mod:`gass_modules.lobes.parts.band_layers`, and :class:`ExportableBLSTM` (a BLSTM
that
``torch.export`` traces with a symbolic length) in :mod:`gass_modules.lobes.blstm`. This module
adds BSRNN's blocks and models: :class:`BandSequenceBlock`, :class:`BSRNN`, and
:class:`BSRNNMasker`, the masker form (``[B, N, T'] -> [S, B, N, T']``) for SpeechBrain
separation recipes, as :class:`~gass_modules.lobes.tdanet.TDANetMasker` is TDANet's.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gass_modules.lobes.band_split import BandSplitSeparator, across_time_then_bands, band_masks
from gass_modules.lobes.base import check_positive_int
from gass_modules.lobes.blstm import ResidualBLSTM
from gass_modules.lobes.parts.band_layers import BandSplit, MaskEstimator
from gass_modules.lobes.parts.causal import ResidualLSTM
from gass_modules.lobes.parts.masking import check_encoder_features, make_mask_activation


class BandSequenceBlock(nn.Module):
    """One band-and-sequence block: a residual BLSTM across time, then one across bands.

    Arguments
    ---------
    feature_dim : int
        ``N``.
    hidden_dim : int
        BLSTM hidden units per direction.
    causal : bool
        Model time with a unidirectional LSTM
        (:class:`~gass_modules.lobes.parts.causal.ResidualLSTM`,
        ``hidden_dim`` units), so frame ``t`` depends on frames ``<= t`` only and the block
        streams (:meth:`forward_streaming`); the band BLSTM stays (it runs within a frame).

    Example
    -------
    >>> block = BandSequenceBlock(8, 16)
    >>> block(torch.randn(2, 7, 3, 8)).shape
    torch.Size([2, 7, 3, 8])
    """

    def __init__(self, feature_dim: int, hidden_dim: int, causal: bool = False) -> None:
        super().__init__()
        self.causal = causal
        self.time_rnn = (ResidualLSTM if causal else ResidualBLSTM)(feature_dim, hidden_dim)
        self.band_rnn = ResidualBLSTM(feature_dim, hidden_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Models ``z`` across time (per band), then across bands (per frame).

        Arguments
        ---------
        z : torch.Tensor
            ``[B, T, K, N]`` band features.

        Returns
        -------
        torch.Tensor
            ``[B, T, K, N]``.
        """
        return across_time_then_bands(z, self.time_rnn, self.band_rnn)  # [B, T, K, N]

    def init_state(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The zero state of a stream (causal blocks only).

        Arguments
        ---------
        rows : int
            Batch size times the number of bands.

        Returns
        -------
        tuple of torch.Tensor
            The time LSTM's ``(h, c)``.
        """
        if not self.causal:
            raise TypeError("a BandSequenceBlock streams only when built with causal=True")
        return self.time_rnn.init_state(rows)

    def forward_streaming(self, z: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """:meth:`forward` on the next frames of a stream, carrying the time LSTM's state.

        Arguments
        ---------
        z : torch.Tensor
            ``[B, T, K, N]`` band features of the next ``T`` frames.
        state : tuple
            From :meth:`init_state` or the previous call.

        Returns
        -------
        tuple
            ``[B, T, K, N]`` features and the new state.
        """
        carried = [state]

        def time_model(x: torch.Tensor) -> torch.Tensor:
            y, carried[0] = self.time_rnn.forward_streaming(x, carried[0])
            return y

        return across_time_then_bands(z, time_model, self.band_rnn), carried[0]


class BSRNN(BandSplitSeparator):
    """Band-split RNN separator: mixture ``[B, T]`` -> ``num_sources`` sources ``[B, T, S]``.

    A :class:`BandSplitSeparator` (STFT, LayerNorm band split, blocks, LayerNorm mask MLPs,
    iSTFT) whose blocks are ``num_blocks`` x :class:`BandSequenceBlock` (a residual BLSTM across
    time, then one across bands).

    Arguments
    ---------
    num_sources : int
        ``S``, the number of outputs (4 for GASS).
    sample_rate : int
        Sample rate in Hz; with ``n_fft`` it turns the band plan into bins.
    n_fft : int
        FFT size and window length.
    hop_length : int
        Hop in samples (the stride), at most ``n_fft // 2`` so the window overlap-adds safely.
    band_plan : str or sequence of (float, float)
        A preset name (``"music"``, ``"speech"``, ``"gass"``, ``"roformer"``) or bands in Hz.
    feature_dim : int
        ``N``, features per band.
    hidden_dim : int
        BLSTM hidden units per direction (the paper uses ``2 N``).
    num_blocks : int
        Band-and-sequence blocks (each a time and a band BLSTM).
    mask_hidden_dim : int or None
        Hidden units of the per-band mask MLPs; ``None`` means ``4 * feature_dim`` (the paper).
    causal : bool
        Unidirectional LSTMs across time (``hidden_dim`` units; the band BLSTMs stay), so the
        output at sample ``n`` depends on the input up to ``n + n_fft - 2`` (the STFT window)
        and the model streams (``init_state`` / ``forward_streaming``): ``lookahead`` is
        ``n_fft - 2`` (the periodic Hann window is zero at its first sample).

    Example
    -------
    >>> model = BSRNN(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
    ...               band_plan="speech", feature_dim=8, hidden_dim=8, num_blocks=1)
    >>> model(torch.randn(3, 1001)).shape
    torch.Size([3, 1001, 2])
    >>> model.num_bands
    30
    >>> live = BSRNN(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
    ...              band_plan="speech", feature_dim=8, hidden_dim=8, num_blocks=1,
    ...              causal=True).eval()
    >>> live.causal, live.lookahead
    (True, 126)
    >>> out, state = live.forward_streaming(torch.randn(3, 320), live.init_state(3))
    >>> out.shape  # the samples the first 320 finish: 320 - n_fft + hop
    torch.Size([3, 224, 2])
    """

    def __init__(
        self,
        num_sources: int = 4,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 128,
        band_plan: str | Sequence[Sequence[float]] = "gass",
        feature_dim: int = 128,
        hidden_dim: int = 256,
        num_blocks: int = 10,
        mask_hidden_dim: int | None = None,
        causal: bool = False,
    ) -> None:
        check_positive_int(feature_dim=feature_dim, hidden_dim=hidden_dim, num_blocks=num_blocks)
        if not isinstance(causal, bool):
            raise ValueError(f"causal must be True or False, got {causal!r}")
        super().__init__(
            num_sources=num_sources, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
            band_plan=band_plan, feature_dim=feature_dim,
            mask_hidden_dim=4 * feature_dim if mask_hidden_dim is None else mask_hidden_dim,
            blocks=lambda: (BandSequenceBlock(feature_dim, hidden_dim, causal)
                            for _ in range(num_blocks)),
            norm="layer",
        )
        self.causal = causal
        # output n is touched by the frames whose windows cover it; the periodic Hann window is
        # 0 at its first sample, so the latest of them ends n_fft - 2 samples after n
        self.lookahead = n_fft - 2 if causal else None



class BSRNNMasker(nn.Module):
    """BSRNN's band-and-sequence masker on encoder features, in SpeechBrain's masker convention.

    ``[B, N, T'] -> [S, B, N, T']`` masks, the convention of SpeechBrain's ``Dual_Path_Model``
    (SepFormer) and of :class:`~gass_modules.lobes.tdanet.TDANetMasker`, so it is a ``MaskNet``
    of a SpeechBrain separation recipe (its ``compute_forward`` multiplies the encoder features
    by each mask and decodes each product). The ``N`` encoder channels are split into bands of
    consecutive channels; each band is normalised and projected to ``feature_dim`` features by
    its own layer (:class:`BandSplit`), residual BLSTMs model the bands across time and across
    bands (:class:`BandSequenceBlock`), and per-band MLPs with a GLU give each channel's mask for
    every source (:class:`MaskEstimator`). Those layers read and write pairs of values (the real
    and imaginary part of a bin in :class:`BSRNN`); here channel ``2j + c`` is part ``c`` of pair
    ``j``, so a band of ``2 G`` channels is ``G`` pairs and no weight is unused.

    :class:`BSRNN` itself (STFT, complex masks) does not fit that convention: SpeechBrain's
    recipe multiplies features and masks elementwise, which cannot express a complex product.
    To train it in a SpeechBrain recipe, its ``compute_forward`` is one line, since every gass
    separator returns SpeechBrain's ``est_source`` layout ``[B, T, S]``:
    ``est_source = self.hparams.separator(mix)``.

    Arguments
    ---------
    enc_channels : int
        ``N``, the encoder's channels (even).
    num_sources : int
        ``S``, the number of masks.
    band_channels : int or sequence of int
        Channels per band: one even width that divides ``N`` (equal bands), or the even widths
        of the bands from channel 0 on, summing to ``N``.
    feature_dim : int
        Features per band.
    hidden_dim : int
        BLSTM hidden units per direction.
    num_blocks : int
        Band-and-sequence blocks.
    mask_hidden_dim : int or None
        Hidden units of the per-band mask MLPs; ``None`` means ``4 * feature_dim``.
    mask_activation : str
        ``"relu"`` (non-negative masks on a learned filterbank, as Conv-TasNet's), ``"sigmoid"``,
        ``"tanh"``, ``"linear"`` or ``"softmax"`` across the sources (masks summing to 1).

    Example
    -------
    Composed with SpeechBrain's encoder and decoder, as SepFormer's recipe composes its masker:

    >>> from speechbrain.lobes.models.dual_path import Decoder, Encoder
    >>> encoder = Encoder(kernel_size=16, out_channels=64)
    >>> masker = BSRNNMasker(enc_channels=64, num_sources=2, band_channels=8, feature_dim=16,
    ...                      hidden_dim=16, num_blocks=1)
    >>> decoder = Decoder(in_channels=64, out_channels=1, kernel_size=16, stride=8, bias=False)
    >>> mix = torch.randn(3, 1000)
    >>> feats = encoder(mix)  # [B, N, T'], T' = 124
    >>> masks = masker(feats)  # [S, B, N, T']
    >>> masks.shape, masker.num_bands
    (torch.Size([2, 3, 64, 124]), 8)
    >>> est = torch.stack([decoder(feats * m) for m in masks], dim=-1)  # [B, T, S]
    >>> est.shape
    torch.Size([3, 1000, 2])
    """

    def __init__(
        self,
        enc_channels: int,
        num_sources: int,
        band_channels: int | Sequence[int] = 16,
        feature_dim: int = 64,
        hidden_dim: int = 128,
        num_blocks: int = 4,
        mask_hidden_dim: int | None = None,
        mask_activation: str = "relu",
    ) -> None:
        super().__init__()
        check_positive_int(enc_channels=enc_channels, num_sources=num_sources,
                           feature_dim=feature_dim, hidden_dim=hidden_dim, num_blocks=num_blocks)
        if isinstance(band_channels, int) and not isinstance(band_channels, bool):
            if band_channels < 2 or band_channels % 2 or enc_channels % band_channels:
                raise ValueError(f"band_channels={band_channels} must be an even width that "
                                 f"divides enc_channels={enc_channels}; or give the widths of "
                                 "the bands as a list")
            widths = [band_channels] * (enc_channels // band_channels)
        else:
            widths = list(band_channels)
            if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 2 or w % 2
                                 for w in widths) or sum(widths) != enc_channels:
                raise ValueError(f"band_channels must be even band widths summing to "
                                 f"enc_channels={enc_channels}, got {band_channels!r}")
        starts = [sum(widths[:k]) // 2 for k in range(len(widths))]  # in pairs of channels
        self.bins = list(zip(starts, starts[1:] + [enc_channels // 2]))
        self.enc_channels = enc_channels
        self.num_sources = num_sources
        self.num_bands = len(widths)
        self.band_split = BandSplit(self.bins, feature_dim)
        self.blocks = nn.ModuleList(BandSequenceBlock(feature_dim, hidden_dim)
                                    for _ in range(num_blocks))
        self.mask_estimator = MaskEstimator(self.bins, feature_dim, num_sources,
                                            4 * feature_dim if mask_hidden_dim is None
                                            else mask_hidden_dim)
        self.mask_activation = make_mask_activation(mask_activation, source_dim=0)

    def permute_sources(self, order: list[int]) -> None:
        """Renumbers the masks in place: mask ``k`` becomes mask ``order[k]``."""
        self.mask_estimator.permute_sources(order)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Estimates one mask per source and encoder channel.

        Arguments
        ---------
        feats : torch.Tensor
            ``[B, N, T']`` encoder features, any ``T' >= 1``.

        Returns
        -------
        torch.Tensor
            ``[S, B, N, T']`` masks, in the dtype of ``feats``.
        """
        check_encoder_features(feats, self.enc_channels)
        pairs = feats.float().transpose(1, 2).unflatten(2, (-1, 2))  # [B, T', N/2, 2]
        spec = torch.view_as_complex(pairs.contiguous()).transpose(1, 2)  # [B, N/2, T']
        masks = band_masks(self, spec)  # [B, S, N/2, T', 2]
        masks = masks.permute(1, 0, 2, 4, 3).flatten(2, 3)  # [S, B, N, T'], channel 2j + c
        return self.mask_activation(masks).to(feats.dtype)


__all__ = ["BSRNN", "BSRNNMasker", "BandSequenceBlock"]
