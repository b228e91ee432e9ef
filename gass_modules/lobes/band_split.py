"""The band-split separators' skeleton (STFT, band split, blocks, masks, iSTFT), shared by models.

A band-split separator (Y. Luo and J. Yu, "Music source separation with band-split RNN",
IEEE/ACM TASLP 2023, arXiv 2209.15174) takes the STFT of the mixture, splits its bins into ``K``
bands projected to ``N`` features each (:class:`~gass_modules.lobes.parts.band_layers.BandSplit`),
models the band features ``[B, T', K, N]`` with a stack of blocks, estimates a complex mask per
band and source (:class:`~gass_modules.lobes.parts.band_layers.MaskEstimator`), and inverts the
masked
spectra. The models differ only in their blocks: BSRNN (:mod:`gass_modules.lobes.bsrnn`) uses
BLSTMs, BS-RoFormer (:mod:`gass_modules.lobes.bs_roformer`) transformers, each across time
within a band and then across bands within a frame (:func:`across_time_then_bands`).

This module holds what they share, so no model imports a sibling model:
:func:`across_time_then_bands`, :class:`BandSplitSeparator` and :func:`band_masks`.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from gass_modules.lobes.base import Separator, check_positive_int
from gass_modules.lobes.parts.band_layers import BAND_NORMS, BandSplit, MaskEstimator
from gass_modules.lobes.parts.bands import band_bins
from gass_modules.lobes.parts.blocks import ISTFTDecoder, STFTEncoder, apply_complex_masks
from gass_modules.lobes.parts.causal import StreamingSTFT
from gass_modules.lobes.parts.output_layers import check_permutation


def across_time_then_bands(
    z: torch.Tensor,
    time_model: Callable[[torch.Tensor], torch.Tensor],
    band_model: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Applies a sequence model across time within each band, then one across bands per frame.

    The interleaving of the band-split separators (BSRNN's BLSTMs, BS-RoFormer's transformers):
    the bands of every item become sequences over time ``[B*K, T, N]``, then the frames become
    sequences over bands ``[B*T, K, N]``.

    Arguments
    ---------
    z : torch.Tensor
        ``[B, T, K, N]`` band features.
    time_model : callable
        ``[M, T, N] -> [M, T, N]``, applied with ``M = B * K``.
    band_model : callable
        ``[M, K, N] -> [M, K, N]``, applied with ``M = B * T``.

    Returns
    -------
    torch.Tensor
        ``[B, T, K, N]``.

    Example
    -------
    >>> z = torch.arange(24.).view(1, 3, 2, 4)  # [B, T, K, N]
    >>> cumsum = lambda x: x.cumsum(1)  # along the sequence axis
    >>> out = across_time_then_bands(z, cumsum, lambda x: x)
    >>> torch.equal(out, z.cumsum(1)), torch.equal(across_time_then_bands(z, lambda x: x, cumsum),
    ...                                             z.cumsum(2))
    (True, True)
    """
    batch, frames, bands, _ = z.shape
    z = z.transpose(1, 2).flatten(0, 1)  # [B*K, T, N]
    z = time_model(z).unflatten(0, (batch, bands)).transpose(1, 2)  # [B, T, K, N]
    z = band_model(z.flatten(0, 1))  # [B*T, K, N]
    return z.unflatten(0, (batch, frames))  # [B, T, K, N]


class BandSplitSeparator(Separator):
    """The band-split separators' skeleton: STFT, band split, band-sequence blocks, masks, iSTFT.

    STFT (periodic Hann window of ``n_fft`` samples, hop ``hop_length``, zero-padded centred
    frames) -> :class:`~gass_modules.lobes.parts.band_layers.BandSplit` -> ``blocks`` (each
    ``[B, T', K, N] -> [B, T', K, N]``) ->
    :class:`~gass_modules.lobes.parts.band_layers.MaskEstimator`
    -> complex masks times the mixture spectrum -> iSTFT. BSRNN and BS-RoFormer differ only in
    their blocks (and in the norm of the band split and the masks),
    so a new band-split model subclasses this and passes its blocks. The padded length is a
    multiple of ``hop_length`` (the stride), so the iSTFT returns exactly that length, and a
    stride gives two frames (the contract's minimum).

    Arguments
    ---------
    num_sources : int
        ``S``, the number of outputs.
    sample_rate : int
        Sample rate in Hz; with ``n_fft`` it turns the band plan into bins.
    n_fft : int
        FFT size and window length.
    hop_length : int
        Hop in samples (the stride), at most ``n_fft // 2`` so the window overlap-adds safely.
    band_plan : str or sequence of (float, float)
        A preset name from :data:`~gass_modules.lobes.parts.bands.BAND_PLANS` or bands in Hz.
    feature_dim : int
        ``N``, features per band.
    mask_hidden_dim : int
        Hidden units of the per-band mask MLPs.
    blocks : callable
        Called once, with no argument, after the band split is built: returns the blocks (an
        iterable of modules), applied in turn to the band features. A callable rather than the
        modules keeps the order in which parameters are created (and initialised from the seed)
        the order of the model: band split, blocks, masks.
    norm : str
        Norm of the band split and the mask MLPs: ``"layer"`` or ``"rms"``.

    Example
    -------
    >>> model = BandSplitSeparator(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
    ...                            band_plan="speech", feature_dim=8, mask_hidden_dim=16,
    ...                            blocks=lambda: [torch.nn.Identity()])
    >>> model(torch.randn(3, 1001)).shape
    torch.Size([3, 1001, 2])
    >>> model.num_bands
    30
    """

    def __init__(
        self,
        num_sources: int,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        band_plan: str | Sequence[Sequence[float]],
        feature_dim: int,
        mask_hidden_dim: int,
        blocks: Callable[[], Iterable[nn.Module]],
        norm: str = "layer",
    ) -> None:
        super().__init__(num_sources=num_sources, sample_rate=sample_rate, stride=hop_length)
        check_positive_int(feature_dim=feature_dim, mask_hidden_dim=mask_hidden_dim)
        if norm not in BAND_NORMS:
            raise ValueError(f"unknown band norm {norm!r}; use one of {BAND_NORMS}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.bins = band_bins(band_plan, sample_rate, n_fft)
        self.num_bands = len(self.bins)
        self.encoder = STFTEncoder(n_fft, hop_length)  # Hann, centred, zero-padded frames
        self.decoder = ISTFTDecoder(n_fft, hop_length)
        self.band_split = BandSplit(self.bins, feature_dim, norm)
        self.blocks = nn.ModuleList(blocks())
        self.mask_estimator = MaskEstimator(self.bins, feature_dim, num_sources, mask_hidden_dim,
                                            norm)

    def permute_outputs(self, order: Sequence[int]) -> None:
        """Renumbers the outputs in place (see :meth:`Separator.permute_outputs`).

        Arguments
        ---------
        order : sequence of int
            Output ``k`` becomes what output ``order[k]`` was.
        """
        self.mask_estimator.permute_sources(check_permutation(order, self.num_sources))

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates a mixture whose length is a multiple of ``hop_length``.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, L]`` mixture, ``L % hop_length == 0``.

        Returns
        -------
        torch.Tensor
            ``[B, L, S]`` estimated sources.
        """
        spec = self.encoder(mix)  # [B, F, T'] complex, T' = L / hop + 1
        masks = band_masks(self, spec).float()  # [B, S, F, T', 2]
        return self.apply_masks(spec, masks)  # [B, L, S]

    def apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Multiplies the mixture spectrum by complex masks and inverts each source.

        Arguments
        ---------
        spec : torch.Tensor
            ``[B, F, T']`` complex mixture spectrogram (``self.encoder(mix)``).
        masks : torch.Tensor
            ``[B, S, F, T', 2]`` real and imaginary masks (float32).

        Returns
        -------
        torch.Tensor
            ``[B, L, S]`` waveforms, ``L = (T' - 1) * hop_length``.

        Example
        -------
        >>> model = BandSplitSeparator(num_sources=1, sample_rate=8000, n_fft=64,
        ...                            hop_length=16, band_plan=[(0, 4000)], feature_dim=4,
        ...                            mask_hidden_dim=4, blocks=lambda: [])
        >>> mix = torch.randn(2, 160)
        >>> spec = model.encoder(mix)
        >>> ones = torch.stack([torch.ones(spec.shape), torch.zeros(spec.shape)], -1)
        >>> torch.allclose(model.apply_masks(spec, ones.unsqueeze(1))[..., 0], mix, atol=1e-5)
        True
        """
        return apply_complex_masks(self.decoder, spec, masks)  # [B, L, S]

    def init_state(self, batch: int) -> dict:
        """The state of ``batch`` new streams (causal blocks only: see ``Separator``).

        Arguments
        ---------
        batch : int
            Number of streams.

        Returns
        -------
        dict
            The STFT's buffers and each block's state.
        """
        self.check_streaming(batch)
        window = self.encoder.stft.window
        stft = StreamingSTFT(window, self.hop_length)
        return {"stft": stft, "stft_state": stft.init_state(batch), "batch": batch,
                "blocks": [block.init_state(batch * self.num_bands) for block in self.blocks]}

    def stream_chunk(self, chunk: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """The separation of the samples ``chunk`` finishes (see ``Separator.stream_chunk``)."""
        def estimate(spec: torch.Tensor) -> torch.Tensor:  # [B, F, k] -> [B, S, F, k]
            z = self.band_split(spec)  # [B, k, K, N]
            for i, block in enumerate(self.blocks):
                z, state["blocks"][i] = block.forward_streaming(z, state["blocks"][i])
            masks = self.mask_estimator(z).float()  # [B, S, F, k, 2]
            return torch.view_as_complex(masks.contiguous()) * spec.unsqueeze(1)

        return state["stft"].separate(chunk, state["stft_state"], self.num_sources,
                                      estimate), state


def band_masks(model: nn.Module, spec: torch.Tensor) -> torch.Tensor:
    """Band split, blocks and mask estimation: complex spectra -> complex masks per source.

    The part that :class:`BandSplitSeparator` and the masker form of BSRNN
    (:class:`~gass_modules.lobes.bsrnn.BSRNNMasker`) share: ``model.band_split``
    (``[B, F, T']`` complex -> ``[B, T', K, N]``), each of ``model.blocks`` in turn, then
    ``model.mask_estimator`` (``[B, T', K, N]`` -> ``[B, S, F, T', 2]``).

    Arguments
    ---------
    model : torch.nn.Module
        A module with ``band_split``, ``blocks`` (an iterable of modules) and ``mask_estimator``.
    spec : torch.Tensor
        ``[B, F, T']`` complex spectra (or pairs of encoder channels seen as complex values).

    Returns
    -------
    torch.Tensor
        ``[B, S, F, T', 2]`` real and imaginary masks.

    Example
    -------
    >>> model = BandSplitSeparator(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
    ...                            band_plan=[(0, 2000), (2000, 4000)], feature_dim=4,
    ...                            mask_hidden_dim=8, blocks=lambda: [torch.nn.Identity()])
    >>> spec = model.encoder(torch.randn(3, 160))  # [B, F, T'] = [3, 33, 11]
    >>> masks = band_masks(model, spec)
    >>> masks.shape
    torch.Size([3, 2, 33, 11, 2])
    >>> z = model.band_split(spec)  # with identity blocks: the mask MLPs on the band split
    >>> torch.equal(masks, model.mask_estimator(z))
    True
    """
    if not hasattr(model, "band_split") or not hasattr(model, "blocks") or not hasattr(
            model, "mask_estimator"):
        raise TypeError(f"band_masks needs a model with band_split, blocks and mask_estimator "
                        f"(a BandSplitSeparator or a BSRNNMasker), got {type(model).__name__}")
    z = model.band_split(spec)  # [B, T', K, N]
    for block in model.blocks:
        z = block(z)  # [B, T', K, N]
    return model.mask_estimator(z)  # [B, S, F, T', 2]


__all__ = ["BandSplitSeparator", "across_time_then_bands", "band_masks"]
