"""Matching a pre-trained model's outputs to a fixed-order benchmark's stems before fine-tuning.

A GASS model is trained with permutation-invariant training: it may put drums on any of its
outputs, mixture by mixture. A fixed-order benchmark (DnR, MUSDB18: output ``k`` is stem ``k``)
fine-tunes with a fixed-order loss, so a start whose outputs hold the stems in other slots must
first move them, and loses much of what it learned on the way (measured in benchmarks/RESULTS.md,
"bench_finetune #25: four seeds", where GASS-mini's music fine-tuning fell from 2.48 to -1.01 dB
in its first 100 updates and ended behind scratch; with its outputs matched it beat scratch on
every seed). This module counts, on a few mixtures of the task, which output PIT matches to each
stem, picks the assignment that keeps the most of them (the Hungarian-style search of
:func:`gass_modules.losses.best_permutation`), and renumbers the model's outputs with
:meth:`gass_modules.lobes.base.Separator.permute_outputs`, which changes nothing but their order.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from gass_modules.lobes.base import check_positive_int
from gass_modules.losses import best_permutation, pairwise_log_mse
from gass_modules.metrics import active_sources

logger = logging.getLogger(__name__)


def output_slots(separator: torch.nn.Module, dataset: Sequence, num_stems: int,
                 max_items: int = 200, max_seconds: float = 10.0) -> torch.Tensor:
    """Counts, over a task's mixtures, which output the PIT matching gives each stem.

    Arguments
    ---------
    separator : torch.nn.Module
        ``[B, T]`` -> ``[B, T, S]`` (run in eval mode, without gradients; its mode is restored).
    dataset : Sequence
        Items with ``mix`` (``[T]``, or ``[C, T]``: each channel a mixture) and ``targets``
        (``[T, S']`` or ``[C, T, S']``, the stems in their fixed order first), at the
        separator's rate (``gass_modules.dataio.benchmark_sets.load_benchmark_set``).
    num_stems : int
        The task's stems ``K <= S``: the first ``K`` target slots.
    max_items : int
        Items read (the first ones).
    max_seconds : float
        Each mixture's first seconds only (bounds the cost on long recordings).

    Returns
    -------
    torch.Tensor
        ``[K, S]`` int64 counts: stem ``k`` matched to output ``j`` (active stems only).

    Example
    -------
    >>> class Swap(torch.nn.Module):  # stem 1 on output 0, stem 0 on output 2
    ...     num_sources, sample_rate = 3, 8000
    ...     def forward(self, mix):
    ...         return torch.stack([0.2 * mix, torch.zeros_like(mix), 0.8 * mix], dim=-1)
    >>> a = torch.randn(800, generator=torch.Generator().manual_seed(0))
    >>> item = {"mix": a, "targets": torch.stack([0.8 * a, 0.2 * a, 0 * a], dim=-1)}
    >>> output_slots(Swap(), [item, item], num_stems=2).tolist()
    [[0, 0, 2], [2, 0, 0]]
    """
    outputs = int(separator.num_sources)
    check_positive_int(num_stems=num_stems, max_items=max_items)
    if num_stems > outputs:
        raise ValueError(f"the task has {num_stems} stems but the separator only {outputs} "
                         "outputs: build it with at least as many")
    limit = max(1, int(max_seconds * int(separator.sample_rate)))
    counts = torch.zeros(num_stems, outputs, dtype=torch.int64)
    training = separator.training
    separator.eval()
    try:
        with torch.no_grad():
            for i in range(min(len(dataset), max_items)):
                item = dataset[i]
                mix, targets = item["mix"], item["targets"]
                if mix.dim() == 1:  # [T] -> [1, T]
                    mix, targets = mix.unsqueeze(0), targets.unsqueeze(0)
                mix, targets = mix[:, :limit].float(), targets[:, :limit].float()  # [C, T]
                slots = torch.zeros(*targets.shape[:2], outputs)  # [C, T, S]
                stems = min(num_stems, targets.shape[-1])
                slots[..., :stems] = targets[..., :stems]
                estimates = separator(mix)[:, :mix.shape[-1]]  # [C, T, S]
                perm = best_permutation(pairwise_log_mse(slots, estimates, mix))  # [C, S]
                active = active_sources(slots)  # [C, S]
                for k in range(stems):
                    chosen = perm[active[:, k], k]
                    counts[k] += torch.bincount(chosen, minlength=outputs)
    finally:
        separator.train(training)
    return counts


def slot_order(counts: torch.Tensor | Sequence) -> list[int]:
    """The output to make output ``0, 1, ...``: the distinct outputs that keep the most matches.

    Arguments
    ---------
    counts : torch.Tensor or array-like
        ``[K, S]`` counts from :func:`output_slots` (``K <= S``).

    Returns
    -------
    list of int
        ``order[k]``: the output that becomes output ``k`` (stems first; the outputs no stem
        takes follow in their own order, for the task's surplus slots).

    Example
    -------
    >>> slot_order(torch.tensor([[14, 150, 215, 21], [0, 233, 113, 54], [1, 17, 57, 325]]))
    [2, 1, 3, 0]
    """
    counts = torch.as_tensor(counts)
    if counts.dim() != 2 or counts.shape[0] > counts.shape[1]:
        raise ValueError(f"expected [K, S] counts with K <= S, got {tuple(counts.shape)}")
    stems, outputs = counts.shape
    cost = torch.zeros(1, outputs, outputs, dtype=torch.float64)  # [1, target, estimate]
    cost[0, :stems] = -counts.to(torch.float64)  # most matches = least cost
    chosen = best_permutation(cost)[0, :stems].tolist()
    return chosen + [j for j in range(outputs) if j not in chosen]


def match_outputs_to_stems(separator: torch.nn.Module, dataset: Sequence, num_stems: int,
                           max_items: int = 200) -> dict:
    """Renumbers a pre-trained separator's outputs so that output ``k`` is where it puts stem ``k``.

    Counts the matches (:func:`output_slots`), chooses the order (:func:`slot_order`) and applies
    it with ``separator.permute_outputs`` (which changes nothing but the order of the outputs).
    A separator that cannot renumber its outputs is left as it is, with a warning.

    Arguments
    ---------
    separator : torch.nn.Module
        The pre-trained separator (a ``Separator``), changed in place.
    dataset : Sequence
        The task's mixtures (see :func:`output_slots`); validation mixtures suit (no test data).
    num_stems : int
        The task's stems, in their fixed order.
    max_items : int
        Items read.

    Returns
    -------
    dict
        ``order`` (the permutation applied, or ``None``), ``counts`` (``[K, S]`` as lists),
        ``kept`` (share of the stems' matches on their new output), ``before`` (the same share
        on outputs ``0 .. K-1`` as they were), ``applied`` (bool).

    Example
    -------
    >>> from gass_modules.lobes.tdanet import TDANetSTFT
    >>> model = TDANetSTFT(num_sources=3, sample_rate=8000, n_fft=64, hop_length=16,
    ...                    bottleneck_channels=8, hidden_channels=8, depth=1, num_blocks=1,
    ...                    num_heads=1)
    >>> g = torch.Generator().manual_seed(0)
    >>> items = [{"mix": m, "targets": torch.stack([m, 0 * m], -1)}
    ...          for m in torch.randn(4, 800, generator=g)]
    >>> report = match_outputs_to_stems(model, items, num_stems=2)
    >>> sorted(report["order"]), report["kept"] >= report["before"]
    ([0, 1, 2], True)
    """
    counts = output_slots(separator, dataset, num_stems, max_items)  # [K, S]
    total = int(counts.sum())
    if total == 0:
        logger.warning("no active stem in the mixtures read: outputs left in their order")
        return {"order": None, "counts": counts.tolist(), "kept": 0.0, "before": 0.0,
                "applied": False}
    order = slot_order(counts)
    stems = counts.shape[0]
    kept = float(sum(counts[k, order[k]] for k in range(stems))) / total
    before = float(sum(counts[k, k] for k in range(stems))) / total
    try:
        separator.permute_outputs(order)
    except NotImplementedError as error:
        logger.warning(f"outputs left in their order ({error}); {before:.0%} of the stems' "
                       f"matches are on their own output")
        return {"order": None, "counts": counts.tolist(), "kept": before, "before": before,
                "applied": False}
    logger.info(f"outputs matched to the stems: output k is the pre-trained output {order[:stems]}"
                f" ({kept:.0%} of the stems' matches on their output, {before:.0%} before)")
    return {"order": order, "counts": counts.tolist(), "kept": kept, "before": before,
            "applied": True}
