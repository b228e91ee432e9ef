"""The GASS mixer over WebDataset shards: per-rank, per-worker resumable source streams.

:class:`ShardMixtureStream` is the shard counterpart of
:class:`~gass_modules.dataio.mixture_sets.MixtureStream`: the same scenario tables and mixing
rules (:class:`~gass_modules.dataio.mixer.GASSMixer`'s ``draw``, :func:`~gass_modules.dataio.mixer.
role_tables`, :func:`~gass_modules.dataio.mixer.crop_clip`), with sources read from the tar
shards that ``tools/make_shards.py`` writes instead of one file per source.

How the sources flow, per category of the scenario that the shard index holds:

1. **Shard streams.** In pass ``p`` the category's shards are permuted with a generator seeded
   from ``(seed, category, p)`` and split over DDP ranks and dataloader workers with
   WebDataset's ``split_by_node`` and ``split_by_worker`` (each shard to exactly one reader:
   no clip is read twice in a pass), or, with ``resampled=True``, drawn with replacement by
   WebDataset's ``ResampledShards`` (deterministic, seeded per reader). Shards are read with
   :func:`~gass_modules.dataio.shards.shard_samples` (WebDataset's opener and grouping) from
   paths, ``file://``, ``http(s)://`` or ``pipe:`` urls.
2. **Shuffle buffers.** Each category keeps a buffer of clips (about ``buffer_size /
   categories`` each); the mixer draws a source by picking a random buffer slot, preferring a
   group (speaker, song) not yet in the mixture, and the slot is refilled from the stream
   (WebDataset's shuffle, one buffer per category). Each clip read gives ``crops_per_clip``
   sources. A clip's crop starts are drawn when it enters the buffer, from a generator seeded
   by ``(seed, category, rank, worker, stream position)``, and only the frames of its crops are
   decoded and kept (:class:`~gass_modules.dataio.shard_crops.BufferedClip`; PCM WAV by a numpy
   view, other codecs by soundfile): a buffer holds crops, not whole clips.
3. **The GASS mixer.** Number of sources, roles, categories, gains, silent-crop redraws, the
   anti-clipping rescale: :meth:`GASSMixer.draw` itself, whose clip choice and crop reading are
   those of the buffers here. The mixture's generator makes the same draws as the file
   mixer's (the crop-start draw included, unused), so with the same clips and crop starts a
   shard mixture is the file mixer's bit for bit (``tests/unittests/test_shards.py``).

Determinism and resume: item ``i`` of batch ``b`` of epoch ``e`` on rank ``r`` is drawn with a
generator seeded from ``(seed, e, r, b, i)``; batch ``b`` is made by stream slot ``b mod W``.
A slot's state (next batch; per category the stream position, bad-shard count and buffered
clips' positions) rides on the last item of each batch; the loader records it when the batch
reaches the training loop, and the dataset, a recoverable saved on every rank, writes it. A
resumed run re-reads the buffered clips and continues every stream where it was: its mixtures
are bit-identical to an uninterrupted run's from the resume point on.

Bad data: an unreadable shard (unreachable, truncated, records lacking a field) is skipped with
a warning naming it and counted (``bad_shards``); a category none of whose shards of a pass
gives a clip stops the run with an error that says what to fix.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from gass_modules.dataio.mixer import (
    GASSMixer,
    crop_span,
    finish_crop,
    mixture_rng,
    role_tables,
)
from gass_modules.dataio.scenario import Scenario
from gass_modules.dataio.shard_crops import BufferedClip
from gass_modules.dataio.shard_loader import ShardLoader, release_free_memory
from gass_modules.dataio.shard_stream import CategoryStream, Entry, reader_info
from gass_modules.dataio.shards import ShardError, ShardIndex

logger = logging.getLogger(__name__)

_SHARD_STREAM = 2  # first seed key (0: eval items, 1: file-mixer training items)
_CROP_STREAM = 4  # first seed key of the crop starts drawn at buffer insertion (3: remixes)


class _BufferView:
    """What :meth:`GASSMixer.draw` reads of its manifest, for clips held in shard buffers."""

    def __init__(self, categories: tuple[str, ...]) -> None:
        self.categories = categories
        self.table: dict[int, tuple[BufferedClip, int]] = {}  # handle -> (clip, its crop)
        self.ids = self  # ``ids[clip]``

    def __getitem__(self, clip: int):
        record = self.table[clip][0].record
        return _ClipName(record["id"], record.get("source", record["id"]))


class _ClipName(NamedTuple):
    """The id and path of a buffered clip (for the mixer's error messages)."""

    id: str
    path: str
    __repr__ = lambda self: repr(self.id)  # noqa: E731 (printed as the id)


class ShardMixer(GASSMixer):
    """:class:`GASSMixer` whose sources come from per-category shard streams and buffers.

    ``draw`` is the file mixer's own; only the choice of a clip (a random slot of the
    category's buffer, refilled from the stream) and the crop reading (crops drawn and decoded
    when the clip entered the buffer) differ. Built inside the process that reads (a
    dataloader worker), by :class:`ShardMixtureStream`.

    Arguments
    ---------
    index : ShardIndex
        The shards.
    scenario : Scenario
        The mixing scenario.
    seed : int
        Base seed of the streams.
    buffer_size : int
        Clips buffered in all, split evenly over the categories the scenario draws.
    resampled : bool
        Shards drawn with replacement instead of split.
    crops_per_clip : int
        Crops (sources) taken from a clip before it leaves its buffer; more than one gives
        more mixtures per byte read (a clip never gives two sources of one mixture).
    shard_base : str, optional
        Where relative shard urls are resolved (default: the index's location).

    Example
    -------
    >>> import tempfile
    >>> import soundfile as sf
    >>> from gass_modules.dataio.manifest import Manifest
    >>> from gass_modules.dataio.shards import write_shards
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.random.default_rng(0).uniform(-.5, .5, 800), 8000)
    >>> m = Manifest(["a"], [str(folder / "a.wav")], [800], [8000], [1], ["sfx"], ["g"])
    >>> mixer = ShardMixer(write_shards(m, folder / "s"), Scenario(
    ...     sample_rate=8000, duration=0.05, foreground_categories=["sfx"],
    ...     num_sources_probs=[1, 0, 0, 0]), buffer_size=1)
    >>> mixer.draw(np.random.default_rng(0)).num_sources, mixer.last_ids
    (1, ['a'])
    """

    def __init__(self, index: ShardIndex, scenario: Scenario, seed: int = 0,
                 buffer_size: int = 1000, resampled: bool = False,
                 shard_base: str | None = None,
                 crops_per_clip: int = 1) -> None:  # no super().__init__: no manifest
        if crops_per_clip < 1:
            raise ValueError(f"crops_per_clip: expected >= 1, got {crops_per_clip}")
        self.crops_per_clip = int(crops_per_clip)
        self.scenario = scenario
        categories = index.categories
        self._roles = role_tables(scenario, categories, lambda name: True)
        self._num_cum = np.cumsum(scenario.num_sources_probs)
        self.manifest = _BufferView(categories)
        used = sorted({int(c) for codes, _ in self._roles.values() for c in codes})
        self.streams = {code: CategoryStream(categories[code],
                                             index.urls_of(categories[code], shard_base),
                                             seed, resampled) for code in used}
        self.capacity = max(1, math.ceil(buffer_size / len(used)))
        self.buffers: dict[int, list[BufferedClip]] = {code: [] for code in used}
        self._seed = int(seed)
        self._reader = reader_info()[:3]  # rank, world size, worker (its stream slot)
        self._next_handle = 0
        self.last_ids: list[str] = []

    def check_readers(self) -> None:
        """Raises when some category has fewer shards than readers (see CategoryStream)."""
        for stream in self.streams.values():
            stream.check_readers()

    def _buffered(self, code: int, entry: Entry) -> BufferedClip:
        """A clip entering its buffer: its crop starts drawn (seeded by its stream position,
        so a resumed buffer re-reads the same crops) and only their frames decoded."""
        record = entry.record
        rng = mixture_rng(self._seed, _CROP_STREAM, self.streams[code].key, *self._reader,
                          *entry.position)
        spans = [crop_span(int(record["frames"]), int(record["sample_rate"]), self.scenario,
                           rng) for _ in range(self.crops_per_clip)]
        return BufferedClip(record, entry.audio, entry.position, spans)

    def _next(self, code: int) -> BufferedClip:
        return self._buffered(code, self.streams[code].next_clip())

    def _fill(self, code: int) -> list[BufferedClip]:
        buffer = self.buffers[code]
        while len(buffer) < self.capacity:
            buffer.append(self._next(code))
        return buffer

    def _choose_clip(self, code: int, rng: np.random.Generator, used: list[int],
                     rejected: set[int]) -> int:
        """Takes a crop's clip from the category's buffer, preferring a group that no earlier
        source of this mixture has (a few tries, as the file mixer); a clip leaves the buffer
        (refilled from the stream) after ``crops_per_clip`` crops or when already in this
        mixture."""
        buffer = self._fill(code)
        taken = {self.manifest.table[c][0].record["group"] for c in used}
        mine = {id(self.manifest.table[c][0]) for c in used}
        for _ in range(8):
            slot = int(rng.random() * len(buffer))  # as Manifest.draw: same draws
            if buffer[slot].record["group"] not in taken and id(buffer[slot]) not in mine:
                break
        if id(buffer[slot]) in mine:  # one source per clip and mixture: evict it for the next
            buffer[slot] = self._next(code)
        entry = buffer[slot]
        crop = entry.uses
        entry.uses += 1
        if entry.uses >= self.crops_per_clip:
            buffer[slot] = self._next(code)
        handle = self._next_handle
        self._next_handle += 1
        self.manifest.table[handle] = (entry, crop)
        return handle

    def read_crop(self, clip: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """The next crop of a buffered clip (drawn and decoded when it entered the buffer)."""
        entry, k = self.manifest.table[clip]
        rate = int(entry.record["sample_rate"])
        # the file mixer's crop-start draw, made and unused: the mixture's other draws (gains,
        # categories, placements) stay those of the file mixer for the same generator
        crop_span(int(entry.record["frames"]), rate, self.scenario, rng)
        start, first, last = entry.spans[k]
        data = entry.crop(k)  # [n, C]
        if data.shape[0] == 0:
            raise ValueError(f"expected audio frames {first}..{last} in clip "
                             f"{entry.record['id']!r} of a shard, read none; the shard record "
                             "does not match the audio: rewrite the shard (tools/make_shards.py)")
        x, offset = finish_crop(data, start, first, rate, self.scenario, rng)
        return x, start, offset

    def draw(self, rng: np.random.Generator):
        """One mixture (:meth:`GASSMixer.draw`); its clips leave the buffers.

        The ids of the clips of the last mixture are in ``last_ids`` (its ``clips`` are
        handles valid only during the draw).
        """
        try:
            mixture = super().draw(rng)
            self.last_ids = [self.manifest.table[c][0].record["id"] for c in mixture.clips]
            return mixture
        finally:
            self.manifest.table.clear()

    def state(self) -> dict:
        """Streams and buffers (positions only) as json data."""
        return {self.streams[code].category: {
            **self.streams[code].state(),
            "buffer": [[*e.position, e.uses] for e in self.buffers[code]]}
            for code in self.streams}

    def load_state(self, state: Mapping) -> None:
        """Continues streams and rebuilds buffers (re-reading their clips) from :meth:`state`.

        Arguments
        ---------
        state : mapping
            From :meth:`state`.
        """
        for code, stream in self.streams.items():
            saved = state.get(stream.category)
            if saved is None:
                continue
            stream.load_state(saved)
            positions = [tuple(p[:3]) for p in saved["buffer"]]
            found = stream.read_positions(positions, lambda e, c=code: self._buffered(c, e))
            for p in saved["buffer"]:  # crops already taken from each buffered clip
                if tuple(p[:3]) in found:
                    found[tuple(p[:3])].uses = int(p[3]) if len(p) > 3 else 0
            self.buffers[code] = [found[p] for p in positions if p in found]


class ShardMixtureStream(torch.utils.data.IterableDataset):
    """Training mixtures from WebDataset shards, resumable per rank and dataloader worker.

    Arguments
    ---------
    index : ShardIndex, str or Path
        The shard index (``index.json``, its folder or url).
    scenario : Scenario, mapping, str, Path or None
        The mixing scenario (as :class:`GASSMixer`).
    seed : int
        Base seed.
    batch_size : int
        Items per batch (a worker makes whole batches).
    batches_per_epoch : int
        Batches per epoch and rank.
    buffer_size : int
        Clips buffered per worker, over all categories.
    resampled : bool
        Draw shards with replacement (endless, no pass structure) instead of splitting.
    shard_base : str, optional
        Where relative shard urls resolve (a folder, url or ``{url}`` template); default: the
        index's location.
    id_prefix : str
        Item ids are ``<id_prefix>-e<epoch>-r<rank>-<batch>-<item>``.
    crops_per_clip : int
        Sources taken from each clip read (see :class:`ShardMixer`).
    trim_every : int
        In a loader worker, return the heap's free pages to the system after about every
        ``trim_every`` mixtures, at the end of a batch (``release_free_memory``; 0: never).
        Without it a worker's heap grows well past its buffer; the default costs a few % of the
        worker's time (benchmarks/RESULTS.md, bench_shards).

    Example
    -------
    >>> import tempfile
    >>> import soundfile as sf
    >>> from gass_modules.dataio.manifest import Manifest
    >>> from gass_modules.dataio.shards import write_shards
    >>> folder = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> for k in range(4):
    ...     sf.write(folder / f"{k}.wav", rng.uniform(-.5, .5, 4000), 8000, subtype="PCM_16")
    >>> m = Manifest([f"c{k}" for k in range(4)], [str(folder / f"{k}.wav") for k in range(4)],
    ...              [4000] * 4, [8000] * 4, [1] * 4, ["sfx"] * 4, [f"g{k}" for k in range(4)])
    >>> index = write_shards(m, folder / "shards", max_bytes=20000)
    >>> stream = ShardMixtureStream(folder / "shards", {"sample_rate": 8000, "duration": 0.25,
    ...     "foreground_categories": ["sfx"], "num_sources_probs": [1, 0, 0, 0]},
    ...     batch_size=2, batches_per_epoch=2, buffer_size=2)
    >>> items = list(stream)
    >>> [item["id"] for item in items][:2], items[0]["mix"].shape
    (['shards-e0-r0-000000-0', 'shards-e0-r0-000000-1'], torch.Size([2000]))
    >>> items[1]["stream_state"]["next_batch"], items[0]["stream_state"] is None
    (1, True)
    """

    def __init__(self, index: ShardIndex | str | Path,
                 scenario: Scenario | Mapping | str | Path | None = None, seed: int = 0,
                 batch_size: int = 1, batches_per_epoch: int = 1000, buffer_size: int = 1000,
                 resampled: bool = False, shard_base: str | None = None,
                 id_prefix: str = "shards", crops_per_clip: int = 1,
                 trim_every: int = 32) -> None:
        super().__init__()
        if int(trim_every) < 0:
            raise ValueError(f"trim_every: expected >= 0 (0: never), got {trim_every}")
        self.trim_every = int(trim_every)
        for name, value in dict(batch_size=batch_size, batches_per_epoch=batches_per_epoch,
                                buffer_size=buffer_size).items():
            if int(value) < 1:
                raise ValueError(f"{name}: expected >= 1, got {value}")
        self.index = index if isinstance(index, ShardIndex) else ShardIndex.load(index)
        self.scenario = Scenario.coerce(scenario)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.batches_per_epoch = int(batches_per_epoch)
        self.buffer_size = int(buffer_size)
        self.resampled = resampled
        self.shard_base = shard_base
        self.id_prefix = id_prefix
        self.crops_per_clip = crops_per_clip
        self.epoch = 0
        self.consumed: dict[int, dict] = {}  # stream slot -> state after its last consumed batch
        # checked here, in the main process, so that a bad setup fails before any worker starts
        self._mixer()

    def _mixer(self) -> ShardMixer:
        return ShardMixer(self.index, self.scenario, self.seed, self.buffer_size,
                          self.resampled, self.shard_base, self.crops_per_clip)

    def __len__(self) -> int:
        return self.batch_size * self.batches_per_epoch

    def _next_batch(self, slot: int) -> int:
        """The next batch of a stream slot in the current epoch (from the consumed states)."""
        saved = self.consumed.get(slot)
        if saved is not None and saved["epoch"] == self.epoch:
            return int(saved["next_batch"])
        return slot

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        workers = 1 if info is None else info.num_workers
        # A DataLoader hands out batches round-robin from worker 0, whatever came before; after
        # a resume at batch n, worker w continues the stream slot that makes batch n + w, and
        # WebDataset's splitters are told that slot (their WORKER/NUM_WORKERS override).
        first = min(self._next_batch(s) for s in range(workers))
        slot = (first + (0 if info is None else info.id)) % workers
        if info is not None:
            os.environ["WORKER"], os.environ["NUM_WORKERS"] = str(slot), str(workers)
        rank, world, _, _ = reader_info()
        mixer = self._mixer()
        mixer.check_readers()
        saved = self.consumed.get(slot)
        if saved is not None:
            if (saved["rank"], saved["world_size"], saved["num_workers"]) != (rank, world,
                                                                              workers):
                raise ShardError(
                    f"the saved shard-stream state is for rank {saved['rank']} of "
                    f"{saved['world_size']} with {saved['num_workers']} workers, this reader "
                    f"is rank {rank} of {world} with {workers}; resume with the same torchrun "
                    "layout and num_workers, or start from a fresh output folder")
            mixer.load_state(saved["streams"])
        batch, made = self._next_batch(slot), 0  # made: mixtures since the last heap trim
        while batch < self.batches_per_epoch:
            for i in range(self.batch_size):
                rng = mixture_rng(self.seed, _SHARD_STREAM, self.epoch, rank, batch, i)
                item = mixer.draw(rng).to_item(
                    f"{self.id_prefix}-e{self.epoch}-r{rank}-{batch:06d}-{i}")
                item["source_ids"] = mixer.last_ids
                item["stream_state"] = None
                if i == self.batch_size - 1:
                    item["stream_state"] = {
                        "epoch": self.epoch, "next_batch": batch + workers, "slot": slot,
                        "rank": rank, "world_size": world, "num_workers": workers,
                        "streams": mixer.state()}
                yield item
            batch += workers
            made += self.batch_size
            if info is not None and self.trim_every and made >= self.trim_every:
                release_free_memory()  # the worker's own heap (not the main process's)
                made = 0

    def record(self, state: Mapping) -> None:
        """Notes the state after a batch that reached the training loop (main process).

        Arguments
        ---------
        state : mapping
            The ``stream_state`` of the batch's last item.
        """
        self.consumed[int(state["slot"])] = dict(state)

    def end_epoch(self) -> None:
        """Called when every batch of the epoch was consumed: the next iteration is epoch+1."""
        self.epoch += 1

    @property
    def bad_shards(self) -> int:
        """Bad shards met by the consumed batches' readers (all categories)."""
        return sum(s["bad_shards"] for state in self.consumed.values()
                   for s in state["streams"].values())

    @mark_as_saver
    def _save(self, path: Path) -> None:
        rank = reader_info()[0]
        data = {"epoch": self.epoch, "consumed": {str(w): s for w, s in self.consumed.items()}}
        Path(path).with_suffix(f".rank{rank}.json").write_text(json.dumps(data))
        if rank == 0:
            Path(path).write_text(json.dumps({"ranks_saved_as": "<name>.rank<r>.json"}))

    @mark_as_loader
    def _recover(self, path: Path, end_of_epoch: bool) -> None:
        del end_of_epoch  # the state says where each stream is
        rank = reader_info()[0]
        own = Path(path).with_suffix(f".rank{rank}.json")
        if not own.is_file():
            raise ShardError(f"no shard-stream state for rank {rank} in {own.parent}; resume "
                             "with the same number of ranks as the checkpointed run")
        data = json.loads(own.read_text())
        self.epoch = int(data["epoch"])
        self.consumed = {int(w): s for w, s in data["consumed"].items()}

    def make_loader(self, num_workers: int = 0, collate_fn=None, remix: int = 0,
                    **kwargs) -> ShardLoader:
        """A :class:`ShardLoader` over this stream (``batch_size`` is the stream's).

        Arguments
        ---------
        num_workers : int
            Dataloader workers.
        collate_fn : callable, optional
            Default: SpeechBrain's ``PaddedBatch``.
        remix : int
            Remixed batches after each batch read (:func:`remix_batch`).
        **kwargs
            More ``torch.utils.data.DataLoader`` arguments (``batch_size`` and
            ``looped_nominal_epoch`` are ignored: the stream fixes both).

        Returns
        -------
        ShardLoader
            The loader to hand to ``Brain.fit`` as the training set.
        """
        from speechbrain.dataio.batch import PaddedBatch

        kwargs.pop("batch_size", None)
        kwargs.pop("looped_nominal_epoch", None)
        kwargs.pop("shuffle", None)
        return ShardLoader(self, batch_size=self.batch_size, num_workers=num_workers,
                           collate_fn=collate_fn or PaddedBatch, remix=remix, **kwargs)


# SpeechBrain runs savers on the main process only unless told: every rank saves its streams.
register_checkpoint_hooks(ShardMixtureStream, save_on_main_only=False)


__all__ = ["CategoryStream", "ShardMixer", "ShardMixtureStream", "reader_info"]  # (re-exported)
