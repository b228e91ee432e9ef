"""The loader of the shard source: records what was trained on, and remixes batches.

:class:`ShardLoader` is the ``DataLoader`` that :meth:`~gass_modules.dataio.shard_source.
ShardMixtureStream.make_loader` returns: it hands the stream state carried by each batch to the
dataset when the batch reaches the training loop, so a checkpoint holds exactly the batches
trained on. :func:`remix_batch` recombines the sources of a batch into new mixtures
(demucs-style in-batch remix), for more mixtures per byte read.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Mapping, Sequence

import torch

from gass_modules.dataio.mixer import mixture_rng

logger = logging.getLogger(__name__)

_REMIX_STREAM = 3  # first seed key of remix permutations (2: the shard source's mixtures)


def remix_batch(targets: torch.Tensor, categories: Sequence[Sequence[str]],
                generator: torch.Generator, peak_limit: float = 0.9
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[list[str]]]:
    """New mixtures from the sources of a batch (demucs's in-batch remix, for GASS slots).

    Each slot is permuted over the batch on its own, so slot 0 (always an active foreground
    source) stays a foreground source and every new mixture has at least one source; active
    slots are moved first, and an item whose mixture exceeds ``peak_limit`` is scaled down as a
    whole, as the mixer does (its sources, mixer targets, are within the limit already). Runs on
    the tensors' device.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` sources of a batch (empty slots all zero).
    categories : sequence of sequence of str
        ``B`` lists of ``S`` categories (``""`` for empty slots).
    generator : torch.Generator
        Source of the permutations (on the CPU).
    peak_limit : float
        Largest absolute sample value.

    Returns
    -------
    tuple
        ``mix [B, T]``, ``targets [B, T, S]``, ``num_sources [B]`` and the categories.

    Example
    -------
    >>> t = torch.zeros(2, 4, 2); t[0, :, 0] = 0.1; t[1, :, 0] = 0.2; t[1, :, 1] = 0.3
    >>> mix, new, n, cats = remix_batch(t, [["a", ""], ["b", "c"]],
    ...                                 torch.Generator().manual_seed(0))
    >>> n.tolist(), cats, [round(v, 3) for v in mix[:, 0].tolist()]
    ([2, 1], [['a', 'c'], ['b', '']], [0.4, 0.2])
    """
    batch, _, slots = targets.shape
    perms = [torch.randperm(batch, generator=generator).tolist() for _ in range(slots)]
    rows, cols, cats, num = [], [], [], []
    for b in range(batch):  # item b takes source (perms[s][b], s) of each slot s
        picks = [(perms[s][b], s) for s in range(slots)]
        order = ([p for p in picks if categories[p[0]][p[1]]]  # active ("" marks empty slots)
                 + [p for p in picks if not categories[p[0]][p[1]]])
        rows.append([p[0] for p in order])
        cols.append([p[1] for p in order])
        cats.append([categories[i][k] for i, k in order])
        num.append(sum(1 for i, k in order if categories[i][k]))
    index = torch.tensor(rows, device=targets.device), torch.tensor(cols, device=targets.device)
    sources = targets[index[0], :, index[1]]  # [B, S, T], one gather
    mix = sources.sum(1)  # [B, T]
    peak = mix.abs().amax(-1)  # [B]; each source is within the limit already (the mixer's)
    if bool((peak > peak_limit).any()):
        scale = torch.where(peak > peak_limit, peak_limit / peak.clamp_min(1e-12),
                            torch.ones_like(peak))
        sources = sources * scale[:, None, None]
        mix = sources.sum(1)  # recomputed from the rescaled sources, as the mixer does
    return mix, sources.transpose(1, 2), torch.tensor(num), cats


class ShardLoader(torch.utils.data.DataLoader):
    """A ``DataLoader`` of a :class:`ShardMixtureStream` that records the consumed state.

    Each batch's stream state is handed to the dataset as the batch reaches the training loop,
    so a checkpoint holds the state of exactly the batches trained on (not of batches prefetched
    by workers). Give it to ``Brain.fit`` as the training set. With ``remix = k``, each batch
    read is followed by ``k`` batches of new mixtures of its sources (:func:`remix_batch`),
    more mixtures per byte read; the state is recorded after the last of them.

    Arguments
    ---------
    dataset : ShardMixtureStream
        The stream.
    *args
        ``torch.utils.data.DataLoader`` arguments.
    remix : int
        Remixed batches per batch read (0: none).
    **kwargs
        ``torch.utils.data.DataLoader`` arguments.

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import soundfile as sf
    >>> from gass_modules.dataio.manifest import Manifest
    >>> from gass_modules.dataio.shard_source import ShardMixtureStream
    >>> from gass_modules.dataio.shards import write_shards
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.random.default_rng(0).uniform(-.5, .5, 800), 8000)
    >>> m = Manifest(["a"], [str(folder / "a.wav")], [800], [8000], [1], ["sfx"], ["g"])
    >>> stream = ShardMixtureStream(write_shards(m, folder / "s"), {"sample_rate": 8000,
    ...     "duration": 0.05, "foreground_categories": ["sfx"], "num_sources_probs": [1, 0, 0, 0]},
    ...     batch_size=2, batches_per_epoch=3, buffer_size=1)
    >>> loader = stream.make_loader(remix=1)
    >>> [b.id[0] for b in loader][:2], len(loader), stream.consumed[0]["next_batch"], stream.epoch
    (['shards-e0-r0-000000-0', 'shards-e0-r0-000000-0-remix0'], 6, 3, 1)
    """

    def __init__(self, dataset: torch.utils.data.IterableDataset, *args, remix: int = 0,
                 **kwargs) -> None:
        super().__init__(dataset, *args, **kwargs)
        if remix < 0:
            raise ValueError(f"remix: expected >= 0 remixed batches per batch, got {remix}")
        self.remix = int(remix)

    def __len__(self) -> int:
        return super().__len__() * (1 + self.remix)

    def __iter__(self):
        bad = self.dataset.bad_shards
        # Workers are forked as the iterator starts. Objects frozen then are never visited by a
        # worker's garbage collector, which would otherwise write to (and so copy) every page of
        # the parent's objects it inherited: ≈45 MiB less per worker (benchmarks/bench_shards.py;
        # the gc.freeze-before-fork idiom of Python's gc docs). The parent unfreezes at once.
        gc.freeze()
        try:
            batches = super().__iter__()
        finally:
            gc.unfreeze()
        for batch in batches:
            states = batch.stream_state if hasattr(batch, "stream_state") else None
            state = states[-1] if states else None
            if not self.remix and state is not None:
                self.dataset.record(state)
            yield batch
            for r in range(self.remix):
                yield self._remixed(batch, state, r)
            if self.remix and state is not None:
                self.dataset.record(state)
        self.dataset.end_epoch()
        if self.dataset.bad_shards > bad:
            logger.warning("%d bad shards skipped so far (see the warnings above)",
                           self.dataset.bad_shards)

    def _remixed(self, batch, state: Mapping | None, r: int):
        """Remix ``r`` of a batch, as a batch of the same collate function."""
        ds = self.dataset
        seed = mixture_rng(ds.seed, _REMIX_STREAM, ds.epoch, *batch_keys(batch.id[0]),
                           r).integers(2**62)
        mix, targets, num, cats = remix_batch(batch.targets.data, batch.categories,
                                              torch.Generator().manual_seed(int(seed)),
                                              ds.scenario.peak_limit)
        items = [{"id": f"{batch.id[b]}-remix{r}", "mix": mix[b], "targets": targets[b],
                  "num_sources": int(num[b]), "categories": cats[b], "source_ids": [],
                  "stream_state": None} for b in range(mix.shape[0])]
        return self.collate_fn(items)


def release_free_memory() -> bool:
    """Returns the heap's free pages to the system (glibc's ``malloc_trim``); a loader worker's
    heap otherwise keeps the pages that decoded crops and mixtures leave behind.

    Python has no portable call for this, so it goes through ``ctypes`` to the C library; where
    that is not glibc (macOS, musl, Windows) it does nothing.

    Returns
    -------
    bool
        Whether the C library released anything (``False`` where unavailable).

    Example
    -------
    >>> release_free_memory() in (True, False)
    True
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` (looked up once per process)."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def batch_keys(item_id: str) -> tuple[int, int]:
    """``(rank, batch)`` of an item id ``<prefix>-e<epoch>-r<rank>-<batch>-<item>``.

    Arguments
    ---------
    item_id : str
        An id of :class:`ShardMixtureStream`.

    Returns
    -------
    tuple of int
        Rank and batch number.

    Example
    -------
    >>> batch_keys("shards-e0-r3-000012-1")
    (3, 12)
    """
    parts = item_id.rsplit("-", 3)
    return int(parts[1][1:]), int(parts[2])


__all__ = ["ShardLoader", "batch_keys", "remix_batch"]
