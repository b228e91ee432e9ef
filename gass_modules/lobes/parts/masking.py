"""The masker convention of SpeechBrain's separation models, and SpeechBrain models as separators.

A masker maps encoder features ``[B, N, T']`` to one mask per source, ``[S, B, N, T']``, as
SpeechBrain's ``Dual_Path_Model`` (SepFormer) does; a separation recipe multiplies the features
by each mask and decodes each product. TDANet's and BSRNN's masker forms
(:class:`~gass_modules.lobes.tdanet.TDANetMasker`, :class:`~gass_modules.lobes.bsrnn.BSRNNMasker`)
follow it: :func:`check_encoder_features` refuses other inputs with a message that says what was
expected, and :func:`make_mask_activation` builds the non-linearity applied to the masks.

SpeechBrain's separation models (SepFormer, Conv-TasNet, DPRNN, ... in
``speechbrain.lobes.models``) are three modules that ``SepformerSeparation.separate_batch``
composes: an encoder ``[B, T] -> [B, N, L]``, a masknet ``[B, N, L] -> [S, B, N, L]`` and a
decoder ``[B, N, L] -> [B, T']``. :class:`EncoderMaskerDecoder` composes them the same way and
adds what the separator contract (docs/architecture.md) asks for: ``num_sources``,
``sample_rate``, any input length, ``[B, T, S]`` out. ``GASSSeparator`` builds one when its
``modules`` hold ``encoder``, ``masknet`` and ``decoder``, so a SpeechBrain model gets gass's
chunked separation of long files in bounded memory (SpeechBrain's own ``separate_file`` runs the
whole file at once).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import torch
from torch import nn

from gass_modules.lobes.base import check_mixture, check_positive_int

__all__ = ["MASK_ACTIVATIONS", "EncoderMaskerDecoder", "check_encoder_features",
           "make_mask_activation"]

#: Names of the mask non-linearities of the maskers (:func:`make_mask_activation`).
MASK_ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh")


def make_mask_activation(name: str, source_dim: int) -> nn.Module:
    """The non-linearity a masker applies to its masks.

    ``"relu"`` (non-negative masks, as in Conv-TasNet and TDANet), ``"sigmoid"``, ``"tanh"``,
    ``"linear"`` (unbounded, e.g. complex masks) or ``"softmax"``: a softmax across the sources,
    so that the masks of every channel and frame are non-negative and sum to 1 (ratio masks, like
    the IRM: with a linear decoder the estimates add up to the mixture).

    Arguments
    ---------
    name : str
        One of :data:`MASK_ACTIVATIONS`.
    source_dim : int
        The sources' axis of the masks (used by ``"softmax"``).

    Returns
    -------
    torch.nn.Module
        The activation.

    Example
    -------
    >>> masks = torch.tensor([[0.0, 1.0], [0.0, -1.0]])  # [S, N]
    >>> make_mask_activation("softmax", source_dim=0)(masks).sum(0)
    tensor([1., 1.])
    >>> make_mask_activation("relu", source_dim=0)(masks)
    tensor([[0., 1.],
            [0., 0.]])
    """
    plain = {"linear": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
    if name == "softmax":
        return nn.Softmax(dim=source_dim)
    if name not in plain:
        raise ValueError(f"mask_activation must be one of {list(MASK_ACTIVATIONS)}, got {name!r}")
    return plain[name]()


def check_encoder_features(feats: torch.Tensor, channels: int) -> None:
    """Raises a ``ValueError`` unless ``feats`` are floating-point features ``[B, channels, T']``.

    Arguments
    ---------
    feats : torch.Tensor
        What a masker was given.
    channels : int
        The encoder channels ``N`` the masker was built for.

    Example
    -------
    >>> check_encoder_features(torch.zeros(2, 8, 5), 8)
    >>> check_encoder_features(torch.zeros(2, 6, 5), 8)
    Traceback (most recent call last):
    ...
    ValueError: expected encoder features [B, 8, T'] (floating point), got torch.float32 (2, 6, 5)
    """
    if not isinstance(feats, torch.Tensor) or feats.dim() != 3 or feats.shape[1] != channels or (
            not feats.is_floating_point()):
        found = (f"{feats.dtype} {tuple(feats.shape)}" if isinstance(feats, torch.Tensor)
                 else type(feats).__name__)
        raise ValueError(f"expected encoder features [B, {channels}, T'] (floating point), got "
                         f"{found}")


class EncoderMaskerDecoder(nn.Module):
    """A SpeechBrain encoder / masknet / decoder triple as a separator ``[B, T] -> [B, T, S]``.

    ``forward`` is ``SepformerSeparation.separate_batch``: ``w = encoder(x)``, masks
    ``m = masknet(w)`` (``[S, B, N, L]``), source ``s`` is ``decoder(w * m[s])``, and the output
    is right-padded with zeros or cropped to the input length. Inputs shorter than the encoder's
    kernel are zero-padded first (a convolution needs one kernel of input).

    Arguments
    ---------
    encoder : torch.nn.Module
        ``[B, T] -> [B, N, L]``, e.g. ``speechbrain.lobes.models.dual_path.Encoder``.
    masknet : torch.nn.Module
        ``[B, N, L] -> [S, B, N, L]``, e.g. ``speechbrain.lobes.models.dual_path.Dual_Path_Model``.
    decoder : torch.nn.Module
        ``[B, N, L] -> [B, T']``, e.g. ``speechbrain.lobes.models.dual_path.Decoder``.
    num_sources : int
        ``S`` (SpeechBrain's ``num_spks``).
    sample_rate : int
        The rate the model was trained at (Hz).

    Example
    -------
    >>> from speechbrain.lobes.models.dual_path import (
    ...     Decoder, Dual_Path_Model, Encoder, SBTransformerBlock)
    >>> model = EncoderMaskerDecoder(
    ...     Encoder(kernel_size=16, out_channels=16),
    ...     Dual_Path_Model(16, 16, SBTransformerBlock(1, 16, 2), SBTransformerBlock(1, 16, 2),
    ...                     K=20, num_spks=2),
    ...     Decoder(in_channels=16, out_channels=1, kernel_size=16, stride=8, bias=False),
    ...     num_sources=2, sample_rate=8000)
    >>> model(torch.randn(3, 1001)).shape, model(torch.randn(1, 5)).shape
    (torch.Size([3, 1001, 2]), torch.Size([1, 5, 2]))
    """

    def __init__(self, encoder: nn.Module, masknet: nn.Module, decoder: nn.Module,
                 num_sources: int, sample_rate: int) -> None:
        super().__init__()
        for name, module in (("encoder", encoder), ("masknet", masknet), ("decoder", decoder)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module (SpeechBrain's "
                                f"encoder/masknet/decoder layout), got {type(module).__name__}")
        check_positive_int(num_sources=num_sources, sample_rate=sample_rate)
        self.encoder = encoder
        self.masknet = masknet
        self.decoder = decoder
        self.num_sources = num_sources
        self.sample_rate = sample_rate
        kernel = getattr(getattr(encoder, "conv1d", None), "kernel_size", (1,))
        self.min_length = int(kernel[0] if isinstance(kernel, tuple) else kernel)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates ``mix`` as ``SepformerSeparation.separate_batch`` does.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures, any ``T >= 1``.

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` estimated sources.
        """
        check_mixture(mix)
        length = mix.shape[-1]
        if length < self.min_length:
            mix = nn.functional.pad(mix, (0, self.min_length - length))
        mix_w = self.encoder(mix)  # [B, N, L]
        masks = self.masknet(mix_w)  # [S, B, N, L]
        if masks.dim() != 4 or masks.shape[0] != self.num_sources or masks.shape[1:] != (
            mix_w.shape
        ):
            raise RuntimeError(f"the masknet returned {tuple(masks.shape)} for encoded input "
                               f"{tuple(mix_w.shape)}; expected [S={self.num_sources}, B, N, L] "
                               "(set num_sources to the masknet's num_spks)")
        sources = []
        for mask in mix_w.unsqueeze(0) * masks:  # S times [B, N, L]
            wave = self.decoder(mask)
            sources.append(wave if wave.dim() == 2 else wave.reshape(mix.shape[0], -1))
        est = torch.stack(sources, dim=-1)  # [B, T', S]
        if est.shape[1] < length:
            return nn.functional.pad(est, (0, 0, 0, length - est.shape[1]))
        return est[:, :length]
