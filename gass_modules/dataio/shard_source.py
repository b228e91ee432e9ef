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
   ``webdataset.tarfile_to_samples`` from paths, ``file://``, ``http(s)://`` or ``pipe:`` urls.
2. **Shuffle buffers.** Each category keeps a buffer of clips (their encoded bytes, about
   ``buffer_size / categories`` each); the mixer draws a source by picking a random buffer slot,
   preferring a group (speaker, song) not yet in the mixture, and the slot is refilled from the
   stream (WebDataset's shuffle, one buffer per category). Each clip read gives one source.
3. **The GASS mixer.** Number of sources, roles, categories, gains, silent-crop redraws, the
   anti-clipping rescale: :meth:`GASSMixer.draw` itself, whose clip choice and crop reading are
   those of the buffers here (a crop is decoded from the buffered bytes, only its frames).

Determinism and resume: mixture ``b * B + i`` (batch ``b``, item ``i``) of epoch ``e`` on rank
``r`` is drawn with a generator seeded from ``(seed, e, r, b, i)``; batch ``b`` is made by
worker ``b mod W``. A worker's state is its next batch, and per category the stream position
(pass, shard, sample), the bad-shard count and the positions of the buffered clips. The last item
of each batch carries that state; :class:`ShardLoader` records it when the batch reaches the
training loop, and the dataset (a SpeechBrain recoverable, saved on every rank) writes the states
of the batches consumed so far. A resumed run re-reads the buffered clips from their shards and
continues every stream where it was: the mixtures from the resume point on are bit-identical to
those of an uninterrupted run.

Bad data: a shard that cannot be read (unreachable url, truncated tar, records lacking a field)
is skipped with a warning naming it and counted (``bad_shards`` in the state, logged by the
loader); only a category none of whose shards of a pass gives a clip stops the run, with an
error that says what to fix.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from gass_modules.dataio.mixer import GASSMixer, Scenario, crop_clip, mixture_rng, role_tables
from gass_modules.dataio.shards import ShardError, ShardIndex, read_record

logger = logging.getLogger(__name__)

_SHARD_STREAM = 2  # first seed key (0: eval items, 1: file-mixer training items)


def reader_info() -> tuple[int, int, int, int]:
    """``(rank, world_size, worker, num_workers)`` as WebDataset's splitters see them.

    Returns
    -------
    tuple of int
        From ``$RANK``/``$WORLD_SIZE`` or ``torch.distributed``, and the dataloader worker.

    Example
    -------
    >>> reader_info()[2:]
    (0, 1)
    """
    return wds.utils.pytorch_worker_info()


def explain(err: Exception) -> str:
    """A reader's error in words that say what happened to the shard.

    Arguments
    ---------
    err : Exception
        What reading a shard raised.

    Returns
    -------
    str
        The explanation.

    Example
    -------
    >>> explain(ValueError("empty file", "x"))
    'nothing could be read (unreachable url, missing or empty file): empty file'
    """
    text = str(err.args[0]) if err.args else repr(err)
    if isinstance(err, ShardError):
        return text
    if "empty file" in text:
        return f"nothing could be read (unreachable url, missing or empty file): {text}"
    if "unexpected end of data" in text or "truncated" in text:
        return f"the tar is truncated: {text}"
    if "exit " in text and "curl" in text:
        return f"the download failed (curl {text.rsplit('exit ', 1)[1].split()[0]}): {text}"
    return f"{type(err).__name__}: {text}"


class _Entry:
    """One buffered clip: its record, encoded audio and stream position (pass, shard, sample)."""

    __slots__ = ("audio", "position", "record")

    def __init__(self, record: dict, audio: bytes, position: tuple[int, int, int]) -> None:
        self.record = record
        self.audio = audio
        self.position = position


class CategoryStream:
    """The clips of one category for one reader (rank, worker), pass after pass, resumable.

    Arguments
    ---------
    category : str
        The category.
    urls : sequence of str
        Its shard urls, in index order.
    seed : int
        Base seed (shard permutations, resampling).
    resampled : bool
        Draw shards with replacement (``webdataset.ResampledShards``) instead of splitting a
        permutation over the readers.

    Example
    -------
    >>> stream = CategoryStream("sfx", ["a.tar", "b.tar", "c.tar"], seed=0)
    >>> sorted(stream.shards_of_pass(0)) == ["a.tar", "b.tar", "c.tar"]  # one reader: all
    True
    """

    def __init__(self, category: str, urls: Sequence[str], seed: int = 0,
                 resampled: bool = False) -> None:
        if not urls:
            raise ShardError(f"category {category!r} has no shards; write them with "
                             "tools/make_shards.py or drop the category from the scenario")
        self.category = category
        self.urls = list(urls)
        self.seed = int(seed)
        self.resampled = resampled
        self.key = zlib.crc32(category.encode())
        self.pass_ = 0
        self.shard = 0  # position in this reader's shard list of the pass
        self.sample = 0  # samples consumed from that shard
        self.bad_shards = 0
        self._samples: Iterator | None = None
        self._order: list[str] | None = None
        self._pass_clips = 0

    def shards_of_pass(self, pass_: int) -> list[str]:
        """This reader's shards in one pass (split by WebDataset's node and worker splitters).

        Arguments
        ---------
        pass_ : int
            Pass number.

        Returns
        -------
        list of str
            Urls, in reading order.
        """
        rank, world, worker, workers = reader_info()
        if self.resampled:
            per_reader = max(1, math.ceil(len(self.urls) / (world * workers)))
            source = wds.ResampledShards(
                self.urls, nshards=per_reader, seed=self.seed, deterministic=True,
                worker_seed=lambda: wds.utils.make_seed(self.key, rank, worker))
            source.epoch = pass_ - 1  # its __iter__ counts epochs from -1
            return [s["url"] for s in source]
        order = np.random.default_rng([self.seed, self.key, pass_]).permutation(len(self.urls))
        shards = ({"url": self.urls[i]} for i in order)
        return [s["url"] for s in wds.split_by_worker(wds.split_by_node(shards))]

    def check_readers(self) -> None:
        """Raises when a split pass leaves this reader without shards (too few shards)."""
        rank, world, worker, workers = reader_info()
        if not self.resampled and len(self.urls) < world * workers:
            raise ShardError(
                f"category {self.category!r} has {len(self.urls)} shards for {world} ranks x "
                f"{workers} workers; each reader needs at least one: write smaller shards "
                "(tools/make_shards.py --shard-mb), use fewer workers, or resampled: True")

    def _open(self) -> Iterator:
        """Samples of the current shard from the current sample on."""
        url = self._order[self.shard]
        # WebDataset opens local shards with Python's default 8 kB buffer, and its tar reader
        # asks for 10 kB at a time: a 1 MB buffer (its GOPEN_BUFFER setting) reads shards
        # ~20 % faster per core (benchmarks/bench_shards.py). A user's own setting wins.
        os.environ.setdefault("GOPEN_BUFFER", str(1 << 20))
        samples = wds.tarfile_to_samples()([{"url": url}])
        for _ in range(self.sample):  # resume inside a shard: skip what was consumed
            next(samples)
        return samples

    def next_clip(self) -> _Entry:
        """The next clip of the stream (moving to the next shard and pass as needed).

        Returns
        -------
        _Entry
            Record, audio bytes and position.
        """
        empty_passes = 0
        while True:
            if self._order is None:
                self._order = self.shards_of_pass(self.pass_)
                self._pass_clips = 0
            if self.shard >= len(self._order):
                empty_passes = empty_passes + 1 if self._pass_clips == 0 else 0
                if empty_passes >= 2:
                    raise ShardError(
                        f"category {self.category!r}: no shard of this reader gave a clip in "
                        f"a whole pass ({self.bad_shards} bad shards, e.g. {self._order[:3]}); "
                        "check the urls and re-verify the shards (tools/make_shards.py verify)")
                self.pass_, self.shard, self.sample, self._order = self.pass_ + 1, 0, 0, None
                continue
            url = self._order[self.shard]
            try:
                if self._samples is None:
                    self._samples = self._open()
                sample = next(self._samples)
                record, audio, _ = read_record(sample, url)
            except StopIteration:
                self._samples = None
                self.shard, self.sample = self.shard + 1, 0
                continue
            except Exception as err:  # unreachable, truncated, malformed: skip the shard
                self.bad_shards += 1
                logger.warning("skipping bad shard %s of category %r (%d bad so far): %s", url,
                               self.category, self.bad_shards, explain(err))
                self._samples = None
                self.shard, self.sample = self.shard + 1, 0
                continue
            entry = _Entry(record, audio, (self.pass_, self.shard, self.sample))
            self.sample += 1
            self._pass_clips += 1
            return entry

    def read_positions(self, positions: Sequence[tuple[int, int, int]]) -> dict:
        """Re-reads the clips at given stream positions (a resumed buffer).

        Arguments
        ---------
        positions : sequence of (pass, shard, sample)
            Stream positions.

        Returns
        -------
        dict
            ``{position: _Entry}`` for the clips that could be read.
        """
        wanted: dict[tuple[int, int], set[int]] = {}
        for p, s, k in positions:
            wanted.setdefault((int(p), int(s)), set()).add(int(k))
        found = {}
        for (p, s), samples in sorted(wanted.items()):
            url = self.shards_of_pass(p)[s]
            try:
                for k, sample in enumerate(wds.tarfile_to_samples()([{"url": url}])):
                    if k in samples:
                        record, audio, _ = read_record(sample, url)
                        found[(p, s, k)] = _Entry(record, audio, (p, s, k))
                    if k >= max(samples):
                        break
            except Exception as err:
                self.bad_shards += 1
                logger.warning("resuming: shard %s of category %r unreadable (%s); its "
                               "buffered clips are replaced by new ones", url, self.category, err)
        return found

    def state(self) -> dict:
        """Position and counters (json data)."""
        return {"pass": self.pass_, "shard": self.shard, "sample": self.sample,
                "bad_shards": self.bad_shards}

    def load_state(self, state: Mapping) -> None:
        """Continues from a :meth:`state`.

        Arguments
        ---------
        state : mapping
            From :meth:`state`.
        """
        self.pass_, self.shard, self.sample = (int(state["pass"]), int(state["shard"]),
                                               int(state["sample"]))
        self.bad_shards = int(state.get("bad_shards", 0))
        self._order, self._samples = None, None


class _BufferView:
    """What :meth:`GASSMixer.draw` reads of its manifest, for clips held in shard buffers."""

    def __init__(self, categories: tuple[str, ...]) -> None:
        self.categories = categories
        self.table: dict[int, _Entry] = {}
        self.ids = self  # ``ids[clip]``

    def __getitem__(self, clip: int):
        entry = self.table[clip]
        return _ClipName(entry.record["id"], entry.record.get("source", entry.record["id"]))


class _ClipName:
    """The id and path of a buffered clip (for the mixer's error messages)."""

    def __init__(self, clip_id: str, path: str) -> None:
        self.id, self.path = clip_id, path

    def __repr__(self) -> str:
        return repr(self.id)


class ShardMixer(GASSMixer):
    """:class:`GASSMixer` whose sources come from per-category shard streams and buffers.

    ``draw`` is the file mixer's own; only the choice of a clip (a random slot of the
    category's buffer, refilled from the stream) and the crop reading (from the buffered bytes)
    differ. Built inside the process that reads (a dataloader worker), by
    :class:`ShardMixtureStream`.

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
    shard_base : str, optional
        Where relative shard urls are resolved (default: the index's location).
    """

    def __init__(self, index: ShardIndex, scenario: Scenario, seed: int = 0,
                 buffer_size: int = 1000, resampled: bool = False,
                 shard_base: str | None = None) -> None:  # no super().__init__: no manifest
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
        self.buffers: dict[int, list[_Entry]] = {code: [] for code in used}
        self._next_handle = 0
        self.last_ids: list[str] = []

    def check_readers(self) -> None:
        """Raises when some category has fewer shards than readers (see CategoryStream)."""
        for stream in self.streams.values():
            stream.check_readers()

    def _fill(self, code: int) -> list[_Entry]:
        buffer = self.buffers[code]
        while len(buffer) < self.capacity:
            buffer.append(self.streams[code].next_clip())
        return buffer

    def _choose_clip(self, code: int, rng: np.random.Generator, used: list[int],
                     rejected: set[int]) -> int:
        """Takes a clip out of the category's buffer (refilled from the stream), preferring a
        group that no earlier source of this mixture has (a few tries, as the file mixer)."""
        buffer = self._fill(code)
        taken = {self.manifest.table[c].record["group"] for c in used}
        for _ in range(8):
            slot = int(rng.random() * len(buffer))  # as Manifest.draw: same draws
            if buffer[slot].record["group"] not in taken:
                break
        entry = buffer[slot]
        buffer[slot] = self.streams[code].next_clip()
        handle = self._next_handle
        self._next_handle += 1
        self.manifest.table[handle] = entry
        return handle

    def read_crop(self, clip: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """A random crop of a buffered clip (:func:`crop_clip` on its bytes)."""
        record = self.manifest.table[clip].record
        return crop_clip(io.BytesIO(self.manifest.table[clip].audio), int(record["frames"]),
                         int(record["sample_rate"]), self.scenario, rng)

    def draw(self, rng: np.random.Generator):
        """One mixture (:meth:`GASSMixer.draw`); its clips leave the buffers.

        The ids of the clips of the last mixture are in ``last_ids`` (its ``clips`` are
        handles valid only during the draw).
        """
        try:
            mixture = super().draw(rng)
            self.last_ids = [self.manifest.table[c].record["id"] for c in mixture.clips]
            return mixture
        finally:
            self.manifest.table.clear()

    def state(self) -> dict:
        """Streams and buffers (positions only) as json data."""
        return {self.streams[code].category: {
            **self.streams[code].state(),
            "buffer": [list(e.position) for e in self.buffers[code]]} for code in self.streams}

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
            positions = [tuple(p) for p in saved["buffer"]]
            found = stream.read_positions(positions)
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
                 id_prefix: str = "shards") -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("batches_per_epoch", batches_per_epoch),
                            ("buffer_size", buffer_size)):
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
        self.epoch = 0
        self.consumed: dict[int, dict] = {}  # stream slot -> state after its last consumed batch
        # checked here, in the main process, so that a bad setup fails before any worker starts
        ShardMixer(self.index, self.scenario, self.seed, self.buffer_size, self.resampled,
                   self.shard_base)

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
        mixer = ShardMixer(self.index, self.scenario, self.seed, self.buffer_size,
                           self.resampled, self.shard_base)
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
        batch = self._next_batch(slot)
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


# SpeechBrain runs savers on the main process only unless told otherwise: every rank saves its
# own streams here (the checkpointer gives all ranks the same folder).
register_checkpoint_hooks(ShardMixtureStream, save_on_main_only=False)


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
    """

    def __init__(self, dataset: ShardMixtureStream, *args, remix: int = 0, **kwargs) -> None:
        super().__init__(dataset, *args, **kwargs)
        if remix < 0:
            raise ValueError(f"remix: expected >= 0 remixed batches per batch, got {remix}")
        self.remix = int(remix)

    def __len__(self) -> int:
        return super().__len__() * (1 + self.remix)

    def __iter__(self):
        bad = self.dataset.bad_shards
        for batch in super().__iter__():
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
        seed = mixture_rng(ds.seed, _SHARD_STREAM + 1, ds.epoch, *batch_keys(batch.id[0]),
                           r).integers(2**62)
        mix, targets, num, cats = remix_batch(batch.targets.data, batch.categories,
                                              torch.Generator().manual_seed(int(seed)),
                                              ds.scenario.peak_limit)
        items = [{"id": f"{batch.id[b]}-remix{r}", "mix": mix[b], "targets": targets[b],
                  "num_sources": int(num[b]), "categories": cats[b], "source_ids": [],
                  "stream_state": None} for b in range(mix.shape[0])]
        return self.collate_fn(items)


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


__all__ = ["CategoryStream", "ShardLoader", "ShardMixer", "ShardMixtureStream", "batch_keys",
           "explain", "reader_info", "remix_batch"]
