"""SpeechBrain's relative lengths (``wav_lens``) as sample counts and masks.

SpeechBrain pads a batch to its longest item and passes each item's length as a fraction of the
padded length (``wav_lens`` in ``[0, 1]``). :func:`absolute_lengths` turns them into sample counts
and :func:`length_mask` into the mask of the valid samples, so padding can be silenced before a
separator hears it and excluded from scores.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import torch


def absolute_lengths(wav_lens: torch.Tensor | None, batch: int, length: int) -> torch.Tensor:
    """Converts SpeechBrain relative lengths to sample counts (``round(wav_lens * T)``).

    Arguments
    ---------
    wav_lens : torch.Tensor, optional
        ``[B]`` relative lengths in (0, 1] (``None``: every item is ``length`` long).
    batch : int
        ``B``, to check ``wav_lens`` against.
    length : int
        ``T``, the padded length.

    Returns
    -------
    torch.Tensor
        ``[B]`` int64 lengths in samples, in ``[0, T]``.

    Example
    -------
    >>> absolute_lengths(torch.tensor([1.0, 0.5]), 2, 10).tolist()
    [10, 5]
    >>> absolute_lengths(torch.tensor([1.5]), 1, 10)
    Traceback (most recent call last):
    ...
    ValueError: expected relative lengths wav_lens in [0, 1] (SpeechBrain's convention), got ...
    """
    if wav_lens is None:
        return torch.full((batch,), length, dtype=torch.long)
    if not isinstance(wav_lens, torch.Tensor) or wav_lens.shape != (batch,):
        shape = tuple(wav_lens.shape) if isinstance(wav_lens, torch.Tensor) else type(wav_lens)
        raise ValueError(f"expected wav_lens of shape ({batch},) (one relative length per item), "
                         f"got {shape}")
    lens = wav_lens.detach().double().cpu()
    if not torch.isfinite(lens).all() or (lens < 0).any() or (lens > 1 + 1e-6).any():
        raise ValueError(f"expected relative lengths wav_lens in [0, 1] (SpeechBrain's "
                         f"convention), got {lens.tolist()}; divide sample counts by the padded "
                         "length")
    return torch.round(lens * length).long().clamp(0, length)


def length_mask(lengths: torch.Tensor, size: int, device: torch.device | str) -> torch.Tensor:
    """``[N, size]`` bool, True on the first ``lengths[n]`` positions of row ``n``.

    Arguments
    ---------
    lengths : torch.Tensor
        ``[N]`` valid lengths (e.g. from :func:`absolute_lengths`).
    size : int
        The padded length.
    device : torch.device or str
        Where to build the mask.

    Returns
    -------
    torch.Tensor
        ``[N, size]`` bool mask.

    Example
    -------
    >>> length_mask(torch.tensor([3, 1]), 4, "cpu").int().tolist()
    [[1, 1, 1, 0], [1, 0, 0, 0]]
    """
    return torch.arange(size, device=device) < lengths.to(device)[:, None]


__all__ = ["absolute_lengths", "length_mask"]
