"""A column of strings stored as one UTF-8 blob plus offsets (the manifests' id and path columns).

A Python list of ``str`` costs ≈58 bytes per entry on top of the characters, and forked dataloader
workers copy its pages as soon as they touch the reference counts; :class:`StringColumn` holds
the characters plus 8 bytes per entry in two numpy arrays, shared copy-on-write.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


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
