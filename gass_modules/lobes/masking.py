"""The masker convention shared by TDANet's and BSRNN's masker forms (SpeechBrain's ``MaskNet``).

A masker maps encoder features ``[B, N, T']`` to one mask per source, ``[S, B, N, T']``, as
SpeechBrain's ``Dual_Path_Model`` (SepFormer) does; a separation recipe multiplies the features
by each mask and decodes each product. :func:`check_encoder_features` refuses other inputs with
a message that says what was expected, and :func:`make_mask_activation` builds the non-linearity
applied to the masks.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import torch
from torch import nn

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
