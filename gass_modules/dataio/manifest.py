"""Source manifests: compact, columnar clip lists for on-the-fly mixing at the 2-million-clip scale.

GASS draws every training mixture from ≈1.9 M recordings. A list of dicts costs ≈1 KB per clip
(≈2 GB at that scale) and is copied page by page into every dataloader worker as soon as Python
touches the reference counts. :class:`Manifest` keeps the same information in a handful of numpy
arrays instead:

* ``ids`` and ``paths``: one ``uint8`` blob each plus ``int64`` offsets (:class:`StringColumn`);
* ``frames`` (``int64``), ``sample_rate`` (``int32``), ``channels`` (``int16``);
* ``category`` and ``group`` as small integer codes with lookup tables (``categories`` is a tuple
  of names; group names are a :class:`StringColumn`).

That is ≈100 bytes per clip for typical paths, shared copy-on-write by forked workers, and one
index array per category (built once) makes drawing a clip of a category O(1) whatever the
manifest size.

Group ids (speaker, song, recording) drive :meth:`Manifest.split_by_group`, a train/valid/test
split in which no group lands in two splits. CSV files follow SpeechBrain's conventions (an
``ID`` column, ``duration`` in seconds, ``$placeholder`` replacements in paths), so the same file
loads with ``DynamicItemDataset.from_csv``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

CSV_COLUMNS = ("ID", "duration", "wav", "frames", "sample_rate", "channels", "category", "group")

# Extensions of the formats libsndfile can read (header-only probes need no decoder).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64",
     ".rf64", ".wv"}
)

_VARIABLE = re.compile(r"\$([\w.]+)")


class StringColumn:
    """An immutable column of strings stored as one UTF-8 blob plus offsets.

    A Python ``str`` costs ≈50 bytes of overhead on top of its characters and a list adds 8 more
    per entry; this column costs the characters plus 8 bytes, and pickles/forks as two arrays.

    Arguments
    ---------
    blob : numpy.ndarray
        ``uint8`` concatenated UTF-8 bytes of all strings.
    offsets : numpy.ndarray
        ``int64`` ``[N + 1]``: string ``i`` is ``blob[offsets[i]:offsets[i + 1]]``.

    Example
    -------
    >>> col = StringColumn.from_strings(["a/b.wav", "", "ç.flac"])
    >>> len(col), col[0], col[1], col[-1]
    (3, 'a/b.wav', '', 'ç.flac')
    >>> col.take([2, 0]).tolist()
    ['ç.flac', 'a/b.wav']
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        blob = np.ascontiguousarray(blob, dtype=np.uint8)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(blob):
            raise ValueError(
                f"expected offsets [N + 1] from 0 to len(blob)={len(blob)}, got shape "
                f"{offsets.shape} ending at {offsets[-1] if len(offsets) else None}"
            )
        if np.any(np.diff(offsets) < 0):
            raise ValueError("expected non-decreasing offsets, found a decreasing step")
        self.blob = blob
        self.offsets = offsets

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> StringColumn:
        """Builds a column from any iterable of strings.

        Arguments
        ---------
        strings : iterable of str
            The values, in order.

        Returns
        -------
        StringColumn
            The encoded column.

        Example
        -------
        >>> StringColumn.from_strings(iter(["x", "yz"])).offsets.tolist()
        [0, 1, 3]
        """
        encoded = [s.encode("utf-8") for s in strings]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return cls(blob, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"string index {index} out of range for a column of {len(self)}")
        index %= len(self)
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.blob[start:end].tobytes().decode("utf-8")

    def tolist(self) -> list[str]:
        """Decodes every string (O(N) Python objects: for small columns and exports).

        Returns
        -------
        list of str
            All values in order.

        Example
        -------
        >>> StringColumn.from_strings(["a", "b"]).tolist()
        ['a', 'b']
        """
        data = self.blob.tobytes()
        off = self.offsets.tolist()
        return [data[off[i]:off[i + 1]].decode("utf-8") for i in range(len(self))]

    def take(self, indices: Sequence[int] | np.ndarray) -> StringColumn:
        """Gathers a subset of the strings (vectorised, no per-string Python work).

        Arguments
        ---------
        indices : sequence of int
            Positions to keep, in the order wanted.

        Returns
        -------
        StringColumn
            The gathered column.

        Example
        -------
        >>> StringColumn.from_strings(["a", "bb", "ccc"]).take([2, 2, 0]).tolist()
        ['ccc', 'ccc', 'a']
        """
        idx = np.asarray(indices, dtype=np.int64)
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # position j of the new blob reads old position starts[k] + (j - offsets[k])
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return StringColumn(self.blob[gather], offsets)

    @property
    def nbytes(self) -> int:
        """Bytes held by the column's arrays."""
        return int(self.blob.nbytes + self.offsets.nbytes)


class ClipInfo(NamedTuple):
    """One manifest row, decoded (see :class:`Manifest`).

    Example
    -------
    >>> ClipInfo("c1", "/a.wav", 16000, 16000, 1, "speech", "spk1").duration
    1.0
    """

    id: str
    path: str
    frames: int
    sample_rate: int
    channels: int
    category: str
    group: str

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


def _codes(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Integer codes and sorted lookup table of a string sequence.

    A dict pass instead of ``np.unique`` on strings: the latter first copies the column into a
    fixed-width unicode array (4 bytes per character of the longest value, per row).
    """
    lookup: dict[str, int] = {}
    first_seen = np.fromiter((lookup.setdefault(str(v), len(lookup)) for v in values),
                             dtype=np.int64, count=len(values))
    table = sorted(lookup)
    remap = np.empty(len(table), dtype=np.int64)
    remap[[lookup[name] for name in table]] = np.arange(len(table))
    return remap[first_seen], table


class Manifest:
    """A columnar list of audio clips (id, path, frames, rate, channels, category, group).

    Build it from columns (any sequences) or with :meth:`from_csv` / :func:`scan_audio`.
    Categories and groups are stored as integer codes; ``categories`` is the lookup table.

    Arguments
    ---------
    ids : sequence of str
        Unique clip ids (SpeechBrain's ``ID``).
    paths : sequence of str
        Audio file paths.
    frames : sequence of int
        Length of each clip in frames (samples per channel), ``>= 1``.
    sample_rates : sequence of int
        Sample rate of each clip in Hz.
    channels : sequence of int
        Number of channels of each clip.
    categories : sequence of str
        Category of each clip (``speech``, ``music``, ``sfx`` or finer labels such as stems).
    groups : sequence of str
        Group of each clip (speaker / song / recording): the unit of leakage-free splits.

    Example
    -------
    >>> m = Manifest(["a", "b", "c"], ["a.wav", "b.wav", "c.wav"], [16000, 8000, 4000],
    ...              [16000, 16000, 8000], [1, 2, 1], ["speech", "sfx", "speech"],
    ...              ["spk1", "f1", "spk2"])
    >>> len(m), m.categories, m[1].duration, m[2].group
    (3, ('sfx', 'speech'), 0.5, 'spk2')
    >>> m.indices_of("speech").tolist()
    [0, 2]
    >>> int(m.draw("speech", np.random.default_rng(0))) in (0, 2)
    True
    """

    def __init__(
        self,
        ids: Sequence[str],
        paths: Sequence[str],
        frames: Sequence[int] | np.ndarray,
        sample_rates: Sequence[int] | np.ndarray,
        channels: Sequence[int] | np.ndarray,
        categories: Sequence[str],
        groups: Sequence[str],
    ) -> None:
        n = len(ids)
        lengths = {"paths": len(paths), "frames": len(frames), "sample_rates": len(sample_rates),
                   "channels": len(channels), "categories": len(categories),
                   "groups": len(groups)}
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(f"every column needs {n} entries (one per id), got {bad}")
        cat_codes, cat_table = _codes(categories) if n else (np.zeros(0, np.int64), [])
        grp_codes, grp_table = _codes(groups) if n else (np.zeros(0, np.int64), [])
        self._init_columns(
            StringColumn.from_strings(ids), StringColumn.from_strings(paths),
            np.asarray(frames, dtype=np.int64), np.asarray(sample_rates, dtype=np.int32),
            np.asarray(channels, dtype=np.int16), cat_codes.astype(np.int16), tuple(cat_table),
            grp_codes.astype(np.int32), StringColumn.from_strings(grp_table),
        )
        if len(set(self.ids.tolist())) != n:
            dup = [k for k, c in Counter(self.ids.tolist()).items() if c > 1][:5]
            raise ValueError(f"expected unique ids, found duplicates such as {dup}")

    def _init_columns(self, ids, paths, frames, sample_rates, channels, category_codes,
                      categories, group_codes, group_names) -> None:
        """Sets the columns directly (used by the constructors) and validates them."""
        n = len(ids)
        for name, arr in (("frames", frames), ("sample_rates", sample_rates),
                          ("channels", channels)):
            if len(arr) and int(arr.min()) < 1:
                i = int(np.argmin(arr))
                raise ValueError(
                    f"expected {name} >= 1 for every clip, found {int(arr[i])} for clip "
                    f"{ids[i]!r}; drop empty or unreadable clips (tools/make_manifest.py does)"
                )
        if len(categories) > np.iinfo(np.int16).max:
            raise ValueError(f"at most 32767 categories are supported, got {len(categories)}")
        self.ids = ids
        self.paths = paths
        self.frames = frames  # [N] int64
        self.sample_rates = sample_rates  # [N] int32
        self.channels = channels  # [N] int16
        self.category_codes = category_codes  # [N] int16, index into self.categories
        self.categories = tuple(categories)
        self.group_codes = group_codes  # [N] int32, index into self.group_names
        self.group_names = group_names
        self._order: np.ndarray | None = None  # [N] int32, rows sorted by category
        self._bounds: np.ndarray | None = None  # [C + 1] start of each category in _order
        assert len(paths) == n

    # ---------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> ClipInfo:
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip index {i} out of range for a manifest of {len(self)} clips")
        i %= len(self)
        return ClipInfo(self.ids[i], self.paths[i], int(self.frames[i]),
                        int(self.sample_rates[i]), int(self.channels[i]),
                        self.categories[self.category_codes[i]],
                        self.group_names[self.group_codes[i]])

    @property
    def durations(self) -> np.ndarray:
        """``[N]`` float64 durations in seconds."""
        return self.frames / self.sample_rates.astype(np.float64)

    @property
    def nbytes(self) -> int:
        """Bytes held by all columns, lookup tables and category indexes."""
        total = self.ids.nbytes + self.paths.nbytes + self.group_names.nbytes
        total += sum(a.nbytes for a in (self.frames, self.sample_rates, self.channels,
                                        self.category_codes, self.group_codes))
        total += sum(len(c) + 49 for c in self.categories)
        if self._order is not None:
            total += self._order.nbytes + self._bounds.nbytes
        return int(total)

    def _build_index(self) -> None:
        """Sorts rows by category once: every category is then one contiguous slice."""
        dtype = np.int32 if len(self) < 2**31 else np.int64
        self._order = np.argsort(self.category_codes, kind="stable").astype(dtype)
        self._bounds = np.searchsorted(self.category_codes[self._order],
                                       np.arange(len(self.categories) + 1))

    def category_code(self, category: str) -> int:
        """Integer code of a category name.

        Arguments
        ---------
        category : str
            A category present in the manifest.

        Returns
        -------
        int
            Its index in ``categories``.

        Example
        -------
        >>> m = Manifest(["a"], ["a.wav"], [1], [8000], [1], ["sfx"], ["g"])
        >>> m.category_code("sfx")
        0
        """
        try:
            return self.categories.index(category)
        except ValueError:
            raise KeyError(
                f"category {category!r} is not in this manifest (it has {list(self.categories)})"
            ) from None

    def indices_of(self, category: str | int) -> np.ndarray:
        """Row indices of one category (a view: no copy).

        Arguments
        ---------
        category : str or int
            Category name or code.

        Returns
        -------
        numpy.ndarray
            ``[N_c]`` row indices, ascending.

        Example
        -------
        >>> m = Manifest(["a", "b"], ["a.wav", "b.wav"], [1, 1], [8000] * 2, [1, 1],
        ...              ["x", "y"], ["g", "h"])
        >>> m.indices_of("y").tolist()
        [1]
        """
        if self._order is None:
            self._build_index()
        code = self.category_code(category) if isinstance(category, str) else int(category)
        return self._order[self._bounds[code]:self._bounds[code + 1]]

    def draw(self, category: str | int, rng: np.random.Generator) -> int:
        """Draws one clip of a category uniformly at random, in O(1).

        Arguments
        ---------
        category : str or int
            Category name or code.
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        int
            A row index.

        Example
        -------
        >>> m = Manifest(["a", "b"], ["a.wav", "b.wav"], [1, 1], [8000] * 2, [1, 1],
        ...              ["x", "y"], ["g", "h"])
        >>> m.draw("y", np.random.default_rng(1))
        1
        """
        rows = self.indices_of(category)
        if len(rows) == 0:
            raise ValueError(f"category {category!r} has no clips in this manifest")
        # rng.random() costs a fraction of rng.integers() per scalar call; uniform for N < 2^53
        return int(rows[int(rng.random() * len(rows))])

    # ---------------------------------------------------------------------------- subsets
    def select(self, indices: Sequence[int] | np.ndarray) -> Manifest:
        """A new manifest with the given rows (lookup tables are kept as they are).

        Arguments
        ---------
        indices : sequence of int
            Rows to keep, in order.

        Returns
        -------
        Manifest
            The subset.

        Example
        -------
        >>> m = Manifest(["a", "b"], ["a.wav", "b.wav"], [1, 2], [8000] * 2, [1, 1],
        ...              ["x", "y"], ["g", "h"])
        >>> sub = m.select([1])
        >>> len(sub), sub[0].id, sub[0].frames
        (1, 'b', 2)
        """
        idx = np.asarray(indices, dtype=np.int64)
        out = Manifest.__new__(Manifest)
        out._init_columns(
            self.ids.take(idx), self.paths.take(idx), self.frames[idx], self.sample_rates[idx],
            self.channels[idx], self.category_codes[idx], self.categories,
            self.group_codes[idx], self.group_names,
        )
        return out

    @staticmethod
    def concat(manifests: Sequence[Manifest]) -> Manifest:
        """Concatenates manifests (e.g. one per folder or per category).

        Arguments
        ---------
        manifests : sequence of Manifest
            Manifests whose ids are disjoint.

        Returns
        -------
        Manifest
            All rows, in order.

        Example
        -------
        >>> a = Manifest(["a"], ["a.wav"], [1], [8000], [1], ["x"], ["g"])
        >>> b = Manifest(["b"], ["b.wav"], [2], [8000], [1], ["y"], ["g"])
        >>> m = Manifest.concat([a, b])
        >>> len(m), m.categories, m[1].group
        (2, ('x', 'y'), 'g')
        """
        if not manifests:
            raise ValueError("expected at least one manifest to concatenate, got none")
        cols = {k: [] for k in ("ids", "paths", "categories", "groups")}
        for m in manifests:
            cols["ids"] += m.ids.tolist()
            cols["paths"] += m.paths.tolist()
            cols["categories"] += [m.categories[c] for c in m.category_codes.tolist()]
            names = m.group_names.tolist()
            cols["groups"] += [names[g] for g in m.group_codes.tolist()]
        return Manifest(
            cols["ids"], cols["paths"], np.concatenate([m.frames for m in manifests]),
            np.concatenate([m.sample_rates for m in manifests]),
            np.concatenate([m.channels for m in manifests]), cols["categories"], cols["groups"],
        )

    def split_by_group(
        self,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        names: Sequence[str] = ("train", "valid", "test"),
    ) -> dict[str, Manifest]:
        """Splits into disjoint sets of groups, stratified by category, by duration share.

        Categories are visited in name order; within each, the groups not yet placed are shuffled
        and each goes to the split furthest below its target share of that category's duration
        (ties go to the earlier split), so with at least as many groups as splits every split
        gets every category. A group spanning several categories (a song's stems) is placed once
        and all its clips follow it: no group appears in two splits.

        Arguments
        ---------
        fractions : sequence of float
            Target duration share of each split (normalised; zero means unused).
        seed : int
            Seed of the group shuffle.
        names : sequence of str
            Split names, one per fraction.

        Returns
        -------
        dict of str to Manifest
            One manifest per name (possibly empty when there are fewer groups than splits).

        Example
        -------
        >>> m = Manifest([f"c{i}" for i in range(6)], [f"{i}.wav" for i in range(6)], [10] * 6,
        ...              [10] * 6, [1] * 6, ["speech"] * 6, ["s1", "s1", "s2", "s3", "s4", "s4"])
        >>> parts = m.split_by_group((0.5, 0.25, 0.25), seed=0)
        >>> {k: sorted({p[i].group for i in range(len(p))}) for k, p in parts.items()}
        {'train': ['s3', 's4'], 'valid': ['s1'], 'test': ['s2']}
        """
        frac = np.asarray(fractions, dtype=np.float64)
        if len(frac) != len(names) or np.any(frac < 0) or frac.sum() <= 0:
            raise ValueError(
                f"expected one non-negative fraction per split name {list(names)} with a "
                f"positive sum, got {list(fractions)}"
            )
        frac = frac / frac.sum()
        used = np.flatnonzero(frac > 0)
        rng = np.random.default_rng(seed)
        split_of_group = np.full(len(self.group_names), -1, dtype=np.int64)
        durations = self.durations
        for code in np.argsort(np.array(self.categories, dtype=object)):
            rows = self.indices_of(int(code))
            per_group = np.bincount(self.group_codes[rows], weights=durations[rows],
                                    minlength=len(self.group_names))
            present = np.flatnonzero(per_group > 0)
            totals = np.zeros(len(names))
            placed = present[split_of_group[present] >= 0]
            np.add.at(totals, split_of_group[placed], per_group[placed])
            todo = present[split_of_group[present] < 0]
            for g in todo[rng.permutation(len(todo))]:
                k = used[np.argmin(totals[used] / frac[used])]
                split_of_group[g] = k
                totals[k] += per_group[g]
        split_of_row = split_of_group[self.group_codes]
        return {name: self.select(np.flatnonzero(split_of_row == k))
                for k, name in enumerate(names)}

    # ---------------------------------------------------------------------------- csv
    def to_csv(self, path: str | Path, data_root: str | Path | None = None) -> Path:
        """Writes a SpeechBrain-style csv (``ID``, ``duration``, ``wav``, ...).

        Arguments
        ---------
        path : str or Path
            Output csv file (parent folders are created).
        data_root : str or Path, optional
            Paths under this folder are written as ``$data_root/<relative path>`` so that the csv
            can move with its data (read back with ``replacements={"data_root": ...}``).

        Returns
        -------
        Path
            The csv written.

        Example
        -------
        >>> import tempfile
        >>> m = Manifest(["a"], ["/data/a.wav"], [8000], [16000], [1], ["sfx"], ["g"])
        >>> out = m.to_csv(Path(tempfile.mkdtemp()) / "m.csv", data_root="/data")
        >>> out.read_text().splitlines()[1]
        'a,0.5,$data_root/a.wav,8000,16000,1,sfx,g'
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        root = None if data_root is None else os.path.abspath(data_root).rstrip("/") + "/"
        ids, paths, names = self.ids.tolist(), self.paths.tolist(), self.group_names.tolist()
        durations = self.durations
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for i in range(len(self)):
                p = paths[i]
                if root is not None and os.path.abspath(p).startswith(root):
                    p = "$data_root/" + os.path.abspath(p)[len(root):]
                writer.writerow((ids[i], f"{durations[i]:.6g}", p, int(self.frames[i]),
                                 int(self.sample_rates[i]), int(self.channels[i]),
                                 self.categories[self.category_codes[i]],
                                 names[self.group_codes[i]]))
        return path

    @classmethod
    def from_csv(
        cls, path: str | Path, replacements: Mapping[str, str] | None = None
    ) -> Manifest:
        """Reads a csv written by :meth:`to_csv` (or any csv with the same columns).

        Streams rows into columns instead of calling SpeechBrain's ``load_data_csv``, which
        builds a dict per row (≈1 KB each: 2 GB at 2 M clips); the ``$variable`` replacement
        rule is the same as SpeechBrain's.

        Arguments
        ---------
        path : str or Path
            The csv file.
        replacements : mapping of str to str, optional
            Values for ``$name`` placeholders in paths. ``data_root`` defaults to the csv's
            folder.

        Returns
        -------
        Manifest
            The manifest.

        Example
        -------
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> m = Manifest(["a"], [str(folder / "a.wav")], [8000], [16000], [2], ["sfx"], ["g"])
        >>> back = Manifest.from_csv(m.to_csv(folder / "m.csv", data_root=folder))
        >>> back[0] == m[0]
        True
        """
        path = Path(path)
        repl = {"data_root": str(path.parent.resolve())}
        repl.update({k: str(v) for k, v in (replacements or {}).items()})
        cols: dict[str, list] = {c: [] for c in CSV_COLUMNS}
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != list(CSV_COLUMNS):
                raise ValueError(
                    f"expected the header {','.join(CSV_COLUMNS)} in {path}, found {header}; "
                    "write manifests with Manifest.to_csv or tools/make_manifest.py"
                )
            for line, row in enumerate(reader, start=2):
                if len(row) != len(CSV_COLUMNS):
                    raise ValueError(f"{path}:{line}: expected {len(CSV_COLUMNS)} fields, "
                                     f"found {len(row)}: {row}")
                for c, v in zip(CSV_COLUMNS, row):
                    cols[c].append(v)

        def substitute(match: re.Match) -> str:
            if match[1] not in repl:
                raise KeyError(f"{path}: no value for ${match[1]}; pass "
                               f"replacements={{'{match[1]}': ...}}")
            return repl[match[1]]

        paths = [_VARIABLE.sub(substitute, p) if "$" in p else p for p in cols["wav"]]
        return cls(cols["ID"], paths, np.array(cols["frames"], dtype=np.int64),
                   np.array(cols["sample_rate"], dtype=np.int32),
                   np.array(cols["channels"], dtype=np.int16), cols["category"], cols["group"])

    def summary(self) -> dict[str, dict[str, float]]:
        """Totals per category: clips, hours and groups.

        Returns
        -------
        dict
            ``{category: {"clips": n, "hours": h, "groups": g}}``.

        Example
        -------
        >>> m = Manifest(["a", "b"], ["a.wav", "b.wav"], [3600, 7200], [1, 1], [1, 1],
        ...              ["x", "x"], ["g", "h"])
        >>> m.summary()
        {'x': {'clips': 2, 'hours': 3.0, 'groups': 2}}
        """
        out = {}
        durations = self.durations
        for code, name in enumerate(self.categories):
            rows = self.indices_of(code)
            out[name] = {"clips": len(rows), "hours": float(durations[rows].sum() / 3600),
                         "groups": len(np.unique(self.group_codes[rows]))}
        return out


def load_manifest(
    paths: str | Path | Sequence[str | Path], replacements: Mapping[str, str] | None = None
) -> Manifest:
    """Loads one csv, or several concatenated (handy from hyperpyyaml: ``!apply:``).

    Arguments
    ---------
    paths : str, Path or sequence of them
        Manifest csv file(s).
    replacements : mapping, optional
        ``$name`` replacements, as in :meth:`Manifest.from_csv`.

    Returns
    -------
    Manifest
        The (concatenated) manifest.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> a = Manifest(["a"], ["a.wav"], [1], [8000], [1], ["x"], ["g"]).to_csv(folder / "a.csv")
    >>> b = Manifest(["b"], ["b.wav"], [1], [8000], [1], ["y"], ["h"]).to_csv(folder / "b.csv")
    >>> len(load_manifest([a, b]))
    2
    """
    if isinstance(paths, (str, Path)):
        return Manifest.from_csv(paths, replacements)
    return Manifest.concat([Manifest.from_csv(p, replacements) for p in paths])


# -------------------------------------------------------------------------------- scanning
@dataclass
class ScanReport:
    """What :func:`scan_audio` found: skipped files with reasons, and totals per category.

    Example
    -------
    >>> r = ScanReport(skipped=[("x.wav", "unreadable: bad header")])
    >>> r.reason_counts()
    {'unreadable': 1}
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    totals: dict[str, dict[str, float]] = field(default_factory=dict)

    def reason_counts(self) -> dict[str, int]:
        """Number of skipped files per reason kind (the text before the first colon)."""
        return dict(Counter(reason.split(":")[0] for _, reason in self.skipped))

    def format(self) -> str:
        """A human-readable report (totals per category, then skip counts and examples).

        Returns
        -------
        str
            The report.

        Example
        -------
        >>> print(ScanReport(totals={"sfx": {"clips": 2, "hours": 0.5, "groups": 2}}).format())
        sfx: 2 clips, 0.50 h, 2 groups
        skipped: 0 files
        """
        lines = [f"{c}: {t['clips']} clips, {t['hours']:.2f} h, {t['groups']} groups"
                 for c, t in self.totals.items()]
        lines.append(f"skipped: {len(self.skipped)} files")
        for reason, count in sorted(self.reason_counts().items()):
            example = next(p for p, r in self.skipped if r.split(":")[0] == reason)
            lines.append(f"  {reason}: {count} (e.g. {example})")
        return "\n".join(lines)


@dataclass(frozen=True)
class AudioHeader:
    """What a header-only read of an audio file tells: length, rate and channels.

    Arguments
    ---------
    frames : int
        Length in samples.
    sample_rate : int
        Rate in Hz.
    channels : int
        Channel count.

    Example
    -------
    >>> AudioHeader(16000, 8000, 1).duration
    2.0
    """

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def probe_audio(path: str | os.PathLike) -> AudioHeader | str:
    """Header-only read of an audio file (``soundfile.info``, no decoding), or why it is unusable.

    The one probe behind :func:`scan_audio` and the benchmark layout checks
    (``gass_modules.dataio.benchmarks``). libsndfile releases the GIL, so threads overlap it.

    Arguments
    ---------
    path : str or os.PathLike
        The file.

    Returns
    -------
    AudioHeader or str
        The header, or a reason ``"<kind>: <detail>"`` with kind ``missing``, ``unreadable``,
        ``empty`` or ``invalid header``.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(800, dtype=np.float32), 8000)
    >>> probe_audio(folder / "a.wav")
    AudioHeader(frames=800, sample_rate=8000, channels=1)
    >>> _ = (folder / "b.wav").write_bytes(b"not audio")
    >>> probe_audio(folder / "b.wav").split(":")[0], probe_audio(folder / "c.wav")
    ('unreadable', 'missing: no such file')
    """
    if not Path(path).is_file():
        return "missing: no such file"
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile raises several types; all mean "cannot read"
        return f"unreadable: {str(err).splitlines()[0]}"
    if info.frames < 1:
        return "empty: 0 frames"
    if info.channels < 1 or info.samplerate < 1:
        return f"invalid header: {info.channels} channels at {info.samplerate} Hz"
    return AudioHeader(int(info.frames), int(info.samplerate), int(info.channels))


def probe_files(paths: Sequence[str | os.PathLike], workers: int = 2) -> list[AudioHeader | str]:
    """:func:`probe_audio` of every path, in parallel threads (order kept).

    Arguments
    ---------
    paths : sequence of str or os.PathLike
        The files.
    workers : int
        Number of probing threads.

    Returns
    -------
    list
        One :class:`AudioHeader` or reason per path.

    Example
    -------
    >>> probe_files(["no/such.wav"])
    ['missing: no such file']
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(probe_audio, paths, chunksize=64))


def check_clips(manifest: Manifest, workers: int = 2) -> list[tuple[str, str, str]]:
    """Finds the manifest rows a mixer could not read, with header probes in parallel threads.

    A row is bad when :func:`probe_audio` gives a reason (missing, unreadable, empty, invalid
    header), or when the file holds fewer frames than the row says (frames past the end), or
    another rate or channel count. Run it before training: a bad row otherwise fails only when
    the mixer draws it.

    Arguments
    ---------
    manifest : Manifest
        The clips.
    workers : int
        Number of probing threads.

    Returns
    -------
    list of (str, str, str)
        ``(id, path, reason)`` of every bad row, in manifest order.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(800, dtype=np.float32), 8000)
    >>> m = Manifest(["a", "b", "c"], [str(folder / "a.wav"), str(folder / "a.wav"), "x.wav"],
    ...              [800, 900, 1], [8000, 8000, 8000], [1, 1, 1], ["s"] * 3, ["g"] * 3)
    >>> [(i, r) for i, _, r in check_clips(m)]  # doctest: +NORMALIZE_WHITESPACE
    [('b', 'frames past the end: the manifest says 900 frames, the file holds 800'),
     ('c', 'missing: no such file')]
    """
    rows = [manifest[i] for i in range(len(manifest))]
    bad = []
    for row, probe in zip(rows, probe_files([r.path for r in rows], workers)):
        if isinstance(probe, str):
            reason = probe
        elif probe.frames < row.frames:
            reason = (f"frames past the end: the manifest says {row.frames} frames, the file "
                      f"holds {probe.frames}")
        elif probe.sample_rate != row.sample_rate:
            reason = (f"sample rate: the manifest says {row.sample_rate} Hz, the file is "
                      f"{probe.sample_rate} Hz")
        elif probe.channels != row.channels:
            reason = (f"channels: the manifest says {row.channels}, the file has "
                      f"{probe.channels}")
        else:
            continue
        bad.append((row.id, row.path, reason))
    return bad


def _group_of(rel: Path, root_name: str, group_depth: int) -> str:
    """Group name of a file at relative path ``rel`` under a root (see :func:`scan_audio`)."""
    parts = rel.parts[:-1]
    if group_depth == 0 or not parts:
        return f"{root_name}/{rel.with_suffix('').as_posix()}"
    return "/".join((root_name, *parts[:group_depth]))


def scan_audio(
    roots: Sequence[str | Path],
    categories: str | Sequence[str],
    group_depth: int = 1,
    workers: int = 2,
) -> tuple[Manifest, ScanReport]:
    """Scans folders for audio files with header-only reads, in parallel threads.

    Every file whose extension is in ``AUDIO_EXTENSIONS`` is probed with ``soundfile.info``
    (no decoding; libsndfile releases the GIL, so threads overlap the I/O). Unreadable and empty
    files are skipped and reported with a reason.

    Arguments
    ---------
    roots : sequence of str or Path
        Folders to scan recursively.
    categories : str or sequence of str
        One category for all roots, or one per root.
    group_depth : int
        The group of a file is its root's name plus the first ``group_depth`` folders below the
        root (1: ``LibriSpeech/train-clean-100/<speaker>``-style layouts give one group per
        speaker); 0 makes every file its own group. Files directly in a root are their own group.
    workers : int
        Number of probing threads.

    Returns
    -------
    Manifest
        The readable clips; ids are ``<root name>/<relative path without extension>``.
    ScanReport
        Skipped files with reasons and totals per category.

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()) / "corpus"
    >>> (root / "spk1").mkdir(parents=True)
    >>> sf.write(root / "spk1" / "u1.wav", np.zeros(800, dtype=np.float32), 8000)
    >>> _ = (root / "spk1" / "broken.wav").write_bytes(b"not audio")
    >>> m, report = scan_audio([root], "speech")
    >>> m[0].id, m[0].frames, m[0].group, report.reason_counts()
    ('corpus/spk1/u1', 800, 'corpus/spk1', {'unreadable': 1})
    """
    roots = [Path(r) for r in roots]
    cats = [categories] * len(roots) if isinstance(categories, str) else list(categories)
    if len(cats) != len(roots):
        raise ValueError(f"expected one category or one per root ({len(roots)}), "
                         f"got {len(cats)}: {cats}")
    if group_depth < 0:
        raise ValueError(f"expected group_depth >= 0, got {group_depth}")
    files: list[tuple[Path, Path, str]] = []
    for root, cat in zip(roots, cats):
        if not root.is_dir():
            raise FileNotFoundError(f"expected a folder to scan, {root} is not one")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.suffix.lower() in AUDIO_EXTENSIONS:
                    files.append((root, p, cat))
    probes = probe_files([p for _, p, _ in files], workers)
    report = ScanReport()
    cols: dict[str, list] = {k: [] for k in ("ids", "paths", "frames", "rates", "channels",
                                             "cats", "groups")}
    for (root, p, cat), probe in zip(files, probes):
        if isinstance(probe, str):
            report.skipped.append((str(p), probe))
            continue
        rel = p.relative_to(root)
        cols["ids"].append(f"{root.name}/{rel.with_suffix('').as_posix()}")
        cols["paths"].append(str(p.resolve()))
        cols["frames"].append(probe.frames)
        cols["rates"].append(probe.sample_rate)
        cols["channels"].append(probe.channels)
        cols["cats"].append(cat)
        cols["groups"].append(_group_of(rel, root.name, group_depth))
    manifest = Manifest(cols["ids"], cols["paths"], cols["frames"], cols["rates"],
                        cols["channels"], cols["cats"], cols["groups"])
    report.totals = manifest.summary()
    return manifest, report
