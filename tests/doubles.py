"""Test doubles: small stand-ins that satisfy the contracts of docs/architecture.md.

``ScaledCopies`` is a separator that separates nothing (output ``s`` is ``g_s * x``); it makes
the examples and tests of model folders, export, the CLI and the ASR front end runnable without a
trained network, with closed-form expected values. It is registered with
:func:`gass_modules.model_folder.safe_hparams.register_separator` when this module is imported, so
model
folders naming ``tests.doubles.ScaledCopies`` load without ``trust_code``; the root
``conftest.py`` hands it to the package's doctests (``doctest_namespace``).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import torch
from torch import nn

from gass_modules.lobes.base import Separator
from gass_modules.model_folder.safe_hparams import register_separator


@register_separator
class ScaledCopies(Separator):
    """A minimal separator: output ``s`` is ``g_s * x`` (a fixed gain per source, learnable).

    It satisfies the separator contract (docs/architecture.md: any length, no mixing across the
    batch, exports with a dynamic length) and does not separate anything.

    Arguments
    ---------
    gains : list of float
        ``g_s``, one per output source.
    sample_rate : int
        The rate the model declares.

    Example
    -------
    >>> model = ScaledCopies([0.25, 0.75], sample_rate=8000)
    >>> model(torch.ones(1, 3))[0].tolist()
    [[0.25, 0.75], [0.25, 0.75], [0.25, 0.75]]
    """

    def __init__(self, gains: list[float], sample_rate: int) -> None:
        if len(gains) < 1:
            raise ValueError("gains must hold one gain per source, got an empty list")
        super().__init__(num_sources=len(gains), sample_rate=sample_rate, stride=1)
        self.gains = nn.Parameter(torch.tensor([float(g) for g in gains]))  # [S]

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        """Returns ``g_s * mix`` for every source.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, L]`` mixture.

        Returns
        -------
        torch.Tensor
            ``[B, L, S]``.
        """
        return mix.unsqueeze(-1) * self.gains  # [B, L, S]
