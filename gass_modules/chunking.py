"""Chunked separation: the chunk geometry and how chunks and channels are matched.

Files of any length, rate and channel count
-------------------------------------------
Let ``f_in`` be the file's rate and ``f_m`` the model's, ``g = gcd(f_in, f_m)``. The file is cut
into chunks of ``L`` input samples that overlap by ``O`` samples (hop ``H = L - O``), ``L`` and
``O`` multiples of ``f_in / g`` so every chunk starts on a sample of both rates. Each chunk is read
with a margin of ``M`` input samples on both sides, resampled to ``f_m`` (torchaudio's windowed
sinc), separated, resampled back to ``f_in`` and cropped to its core. ``M`` covers the support of
both resampling kernels, so for a separator that acts sample by sample the chunked result equals
the whole-file result: chunking only changes what a real model sees, never the resampling.

The separator's output order is arbitrary (it is trained with PIT), so each chunk's sources are
permuted to match the previous chunk on the ``O`` shared samples, by the PIT criterion of training
(``pairwise_log_mse`` + ``best_permutation``), before overlap-add with complementary Hann ramps
(``w_up[n] + w_down[n] = 1``), so a source stays on one output from the first chunk to the last.
When channels are separated one by one, each channel's sources are first matched to channel 0's
by absolute cosine similarity (a source's level differs between channels); an order must win by
1e-4 to replace the model's own.
Memory is bounded by one chunk: files are read in sequential blocks (soundfile) and the stems
written as they are produced.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gass_modules.losses import best_permutation, pairwise_log_mse

_TIE_MARGIN = 1e-4  # cosine similarity by which another channel order must win


@dataclass
class _ChunkPlan:
    """Chunk geometry in input samples (see the module docstring)."""

    chunk: int  # L
    overlap: int  # O
    margin: int  # M
    count: int  # number of chunks
    last: int  # core length of the last chunk

    @property
    def hop(self) -> int:
        """H = L - O."""
        return self.chunk - self.overlap


def match_chunk(reference: torch.Tensor, est: torch.Tensor, mix: torch.Tensor,
                joint: bool) -> torch.Tensor:
    """The permutation ``[C, S]`` that best matches ``est`` to ``reference`` (``[C, n, S]``).

    The criterion is training's PIT log-MSE with the reference as target. ``joint``: one
    permutation for all rows (costs summed: channels of one recording), else one per row
    (independent batch items). Over silence every order scores the same and the first
    (identity) is kept: with no signal there is nothing to match.

    Arguments
    ---------
    reference : torch.Tensor
        ``[C, n, S]`` the previous chunk's sources on the shared samples.
    est : torch.Tensor
        ``[C, n, S]`` this chunk's sources on the same samples.
    mix : torch.Tensor
        ``[C, n]`` the mixture on those samples (the loss's threshold).
    joint : bool
        One permutation for all rows (channels of one recording) instead of one per row.

    Returns
    -------
    torch.Tensor
        ``[C, S]`` permutation; ``losses.permute(est, perm)`` reorders ``est``.

    Example
    -------
    >>> ref = torch.randn(1, 100, 2)
    >>> match_chunk(ref, ref.flip(-1), ref.sum(-1), joint=False).tolist()
    [[1, 0]]
    """
    cost = pairwise_log_mse(reference, est, mixtures=mix)  # [C, S, S]
    if joint:
        return best_permutation(cost.sum(0, keepdim=True)).expand(est.shape[0], -1)
    return best_permutation(cost)  # [C, S]


def match_channels(est: torch.Tensor) -> torch.Tensor:
    """The permutation ``[C, S]`` that matches each channel's sources to channel 0's.

    A source's image differs in level (panning) and polarity between channels, so the
    criterion is scale-invariant: the absolute cosine similarity of the estimates over the
    chunk, ``|<r_i, e_j>| / (|r_i| |e_j|)``, maximised over permutations.

    Arguments
    ---------
    est : torch.Tensor
        ``[C, n, S]`` the sources of each channel of one chunk.

    Returns
    -------
    torch.Tensor
        ``[C, S]`` permutation (identity for channel 0).

    Example
    -------
    >>> left = torch.randn(1, 100, 2)
    >>> est = torch.cat([left, -0.5 * left.flip(-1)])  # channel 1: swapped, scaled, inverted
    >>> match_channels(est).tolist()
    [[0, 1], [1, 0]]
    """
    unit = est / est.norm(dim=1, keepdim=True).clamp(min=1e-12)  # [C, n, S]
    similarity = torch.einsum("ni,cnj->cij", unit[0], unit).abs()  # [C, S, S]
    # keep the model's order unless another is better by a margin: channels whose estimates
    # are indistinguishable (e.g. scaled copies) would otherwise be permuted by float noise
    similarity = similarity + _TIE_MARGIN * torch.eye(est.shape[-1])
    return best_permutation(-similarity)
