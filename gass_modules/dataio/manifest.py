"""Source manifests: compact, columnar clip lists for on-the-fly mixing at the 2-million-clip scale.

GASS draws every training mixture from ≈1.9 M recordings. A list of dicts costs ≈1 KB per clip
(≈2 GB at that scale) and is copied page by page into every dataloader worker as soon as Python
touches the reference counts. :class:`Manifest` keeps the same information in a handful of numpy
arrays instead:

* ``ids`` and ``paths``: one ``uint8`` blob each plus ``int64`` offsets
  (:class:`~gass_modules.dataio.columns.StringColumn`);
* ``frames`` (``int64``), ``sample_rate`` (``int32``), ``channels`` (``int16``);
* ``category`` and ``group`` as small integer codes with lookup tables (``categories`` is a tuple
  of names; group names are a ``StringColumn``).

That is ≈100 bytes per clip for typical paths, shared copy-on-write by forked workers, and one
index array per category (built once) makes drawing a clip of a category O(1) whatever the
manifest size.

Group ids (speaker, song, recording) drive :meth:`Manifest.split_by_group`, a train/valid/test
split in which no group lands in two splits. CSV files follow SpeechBrain's conventions (an
``ID`` column, ``duration`` in seconds, ``$placeholder`` replacements in paths), so the same file
loads with ``DynamicItemDataset.from_csv``.

Manifests are made from folders of audio files by :func:`~gass_modules.dataio.scan.scan_audio`
and checked against the files by :func:`~gass_modules.dataio.scan.check_clips`
(:mod:`gass_modules.dataio.scan`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gass_modules.dataio.columns import StringColumn

CSV_COLUMNS = ("ID", "duration", "wav", "frames", "sample_rate", "channels", "category", "group")


_VARIABLE = re.compile(r"\$([\w.]+)")
# Integer columns and the ranges their storage (int64, int32, int16) and audio allow.
_INT_RANGES = {"frames": (1, 2**62), "sample_rate": (1, 2**31 - 1), "channels": (1, 2**15 - 1)}


def _integer(text: str, column: str, path: Path, line: int) -> int:
    """A csv field of an integer column, or a ``ValueError`` naming the row."""
    low, high = _INT_RANGES[column]
    value = int(text.strip()) if re.fullmatch(r"\s*[+-]?\d+\s*", text) else None
    if value is None:
        raise ValueError(f"{path}:{line}: {column} must be a whole number, got {text!r}; "
                         "rebuild the manifest (tools/make_manifest.py)")
    if not low <= value <= high:
        raise ValueError(f"{path}:{line}: {column} = {value} is out of range [{low}, {high}]; "
                         "rebuild the manifest (tools/make_manifest.py) or drop the row")
    return value


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

    Build it from columns (any sequences) or with :meth:`from_csv` /
    :func:`~gass_modules.dataio.scan.scan_audio`.
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

    @staticmethod
    def _read_rows(path: Path, cols: dict[str, list]) -> None:
        """Reads the csv rows of :meth:`from_csv` into ``cols`` (checked row by row)."""
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM is not a name
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
                    cols[c].append(_integer(v, c, path, line) if c in _INT_RANGES else v)

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
        try:
            cls._read_rows(path, cols)
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text ({err}); save the manifest as UTF-8 "
                             "(tools/make_manifest.py writes it so)") from None
        except csv.Error as err:
            raise ValueError(f"{path} is not a readable csv file ({err})") from None
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
