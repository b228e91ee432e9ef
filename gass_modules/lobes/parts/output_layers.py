"""Renumbering a separator's outputs: checking a permutation and permuting an output layer's
per-source rows (what ``Separator.permute_outputs`` implementations share).

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_permutation(order: Sequence[int], size: int) -> list[int]:
    """``order`` as a list, after checking that it is a permutation of ``0 .. size - 1``.

    Arguments
    ---------
    order : sequence of int
        The candidate permutation.
    size : int
        Its length (the number of outputs).

    Returns
    -------
    list of int
        The permutation.

    Example
    -------
    >>> check_permutation((2, 0, 1), 3)
    [2, 0, 1]
    >>> check_permutation([0, 0, 1], 3)
    Traceback (most recent call last):
    ...
    ValueError: order must be a permutation of 0..2 (one entry per output), got [0, 0, 1]
    """
    values = list(order)
    if (len(values) != size or any(isinstance(v, bool) or not isinstance(v, int) for v in values)
            or sorted(values) != list(range(size))):
        raise ValueError(f"order must be a permutation of 0..{size - 1} (one entry per output), "
                         f"got {values}")
    return values


def permute_source_groups(param: torch.Tensor, order: Sequence[int], dim: int,
                          halves: int = 1) -> None:
    """Permutes, in place, the per-source groups along one dimension of an output layer's tensor.

    The dimension is laid out ``[halves, S, per_source]`` (``halves=2`` for a layer followed by
    a GLU, which splits it in two); group ``k`` of each half becomes group ``order[k]``.

    Arguments
    ---------
    param : torch.Tensor
        The tensor (a parameter: changed in place, without recording gradients).
    order : sequence of int
        A permutation of the ``S`` sources.
    dim : int
        The dimension holding the sources' groups.
    halves : int
        Parts the dimension is split into before the sources (GLU: 2).

    Example
    -------
    >>> w = torch.arange(12.0).reshape(6, 2)  # 3 sources x 2 rows each
    >>> permute_source_groups(w, [2, 0, 1], dim=0)
    >>> w[:, 0].tolist()
    [8.0, 10.0, 0.0, 2.0, 4.0, 6.0]
    >>> b = torch.arange(8.0)  # GLU halves [a0 a1 a2 a3 | g0 g1 g2 g3], 2 sources x 2
    >>> permute_source_groups(b, [1, 0], dim=0, halves=2)
    >>> b.tolist()
    [2.0, 3.0, 0.0, 1.0, 6.0, 7.0, 4.0, 5.0]
    """
    sources = len(order)
    dim = dim % param.dim()
    size = param.shape[dim]
    if size % (halves * sources):
        raise ValueError(f"dimension {dim} of size {size} does not split into {halves} x "
                         f"{sources} source groups")
    index = torch.as_tensor(list(order), device=param.device)
    with torch.no_grad():
        grouped = param.unflatten(dim, (halves, sources, size // (halves * sources)))
        param.copy_(grouped.index_select(dim + 1, index).flatten(dim, dim + 2))
