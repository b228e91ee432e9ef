"""Per-category shard streams of one reader (DDP rank, loader worker), pass after pass.

:class:`CategoryStream` reads the clips of one category from its WebDataset shards: each pass
permutes the shards (seeded by seed, category and pass) and splits them over ranks and workers
with WebDataset's ``split_by_node`` and ``split_by_worker`` (or draws them with
``ResampledShards``), reads them with :func:`~gass_modules.dataio.shards.shard_samples`
(WebDataset's opener and sample grouping), skips a bad shard with a warning and a count, and
can stop and continue at any clip (its state is pass, shard and sample).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import webdataset as wds

from gass_modules.dataio.shards import ShardError, explain, read_record, shard_samples

logger = logging.getLogger(__name__)


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


class Entry:
    """One clip read from a stream: record, encoded audio, position (pass, shard, sample), and
    how many crops were taken from it.

    Example
    -------
    >>> Entry({"id": "a"}, b"RIFF", (0, 2, 5)).uses
    0
    """

    __slots__ = ("audio", "position", "record", "uses")

    def __init__(self, record: dict, audio: bytes, position: tuple[int, int, int],
                 uses: int = 0) -> None:
        self.record = record
        self.audio = audio
        self.position = position
        self.uses = uses


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
        samples = shard_samples(url)
        for _ in range(self.sample):  # resume inside a shard: skip what was consumed
            next(samples)
        return samples

    def next_clip(self) -> Entry:
        """The next clip of the stream (moving to the next shard and pass as needed).

        Returns
        -------
        Entry
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
            entry = Entry(record, audio, (self.pass_, self.shard, self.sample))
            self.sample += 1
            self._pass_clips += 1
            return entry

    def read_positions(self, positions: Sequence[tuple[int, int, int]],
                       keep: Callable[[Entry], object] | None = None) -> dict:
        """Re-reads the clips at given stream positions (a resumed buffer).

        Arguments
        ---------
        positions : sequence of (pass, shard, sample)
            Stream positions.
        keep : callable, optional
            What to keep of each clip, applied as it is read (e.g. its crops: then the whole
            clips are never all in memory at once); default the :class:`Entry` itself.

        Returns
        -------
        dict
            ``{position: keep(Entry)}`` for the clips that could be read.
        """
        wanted: dict[tuple[int, int], set[int]] = {}
        for p, s, k in positions:
            wanted.setdefault((int(p), int(s)), set()).add(int(k))
        found = {}
        for (p, s), samples in sorted(wanted.items()):
            url = self.shards_of_pass(p)[s]
            try:
                for k, sample in enumerate(shard_samples(url)):
                    if k in samples:
                        record, audio, _ = read_record(sample, url)
                        entry = Entry(record, audio, (p, s, k))
                        found[(p, s, k)] = entry if keep is None else keep(entry)
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


__all__ = ["CategoryStream", "Entry", "reader_info"]
