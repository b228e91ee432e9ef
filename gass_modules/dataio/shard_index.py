"""The index of a shard set (``index.json``): its shards, totals per category, url resolution.

:class:`ShardIndex` is what ``tools/make_shards.py`` writes beside the shards and what the shard
source (:mod:`gass_modules.dataio.shard_source`) plans its streams from, without opening a
shard: per shard its url (relative to the index), category, clips, seconds, bytes, first clip
and sha256. It is read from a path, ``file://``, ``http(s)://`` or ``pipe:`` url through
WebDataset's ``gopen``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

import webdataset as wds

INDEX_NAME = "index.json"
PARTIAL_NAME = "index.partial.json"
FORMAT = "gass-shards"
VERSION = 1
# A shard url in an index's content: a path (relative to the index, or absolute) or an
# http(s):// or file:// url, of characters no shell interprets. An index is data, possibly
# fetched from elsewhere: a "pipe:" url in it would run its command (webdataset's gopen runs
# pipe: urls in a shell), and a url substituted into the user's own pipe template (shard_base)
# must not extend the command. A pipe is the user's choice: the index location or shard_base.
SAFE_SHARD_URL = re.compile(r"^(?:(?:https?|file)://[\w.-]*(?::\d+)?)?/?[\w.+=%~-]+"
                            r"(?:/[\w.+=%~-]+)*$")


class ShardError(ValueError):
    """A shard or shard index that cannot be used (what is wrong and what to do).

    Example
    -------
    >>> isinstance(ShardError("x.tar: truncated"), ValueError)
    True
    """


# ------------------------------------------------------------------------------------ index
@dataclass
class ShardInfo:
    """One shard of a :class:`ShardIndex`.

    Arguments
    ---------
    url : str
        Location relative to the index's folder (or absolute).
    category : str
        The category of all its clips.
    clips : int
        Number of clips.
    seconds : float
        Total duration.
    bytes : int
        Size of the tar file.
    first : int
        Position of its first clip in the category's order (its tar keys count from here).
    sha256 : str
        Digest of the tar file.

    Example
    -------
    >>> ShardInfo("speech/speech-000000.tar", "speech", 3, 12.5, 10240, 0, "ab").clips
    3
    """

    url: str
    category: str
    clips: int
    seconds: float
    bytes: int
    first: int = 0
    sha256: str = ""


@dataclass
class ShardIndex:
    """The index of a shard set: its shards and totals per category (``index.json``).

    Arguments
    ---------
    shards : list of ShardInfo
        Every shard, categories in sorted order, shards in order within a category.
    codec : str
        ``original`` or ``flac``.
    options : dict
        What the writer was given (max_bytes, seed, manifest digest): a resumed run must match.
    location : str
        Where the index was read from (shard urls are resolved against it); empty when built
        in memory.

    Example
    -------
    >>> index = ShardIndex([ShardInfo("a/a-0.tar", "a", 2, 3.0, 100),
    ...                     ShardInfo("a/a-1.tar", "a", 1, 1.5, 60, 2)], "original")
    >>> index.categories, index.totals()["a"]["clips"], index.num_clips
    (('a',), 3, 3)
    >>> index.urls_of("a", base="http://127.0.0.1:8000/train/index.json")[1]
    'http://127.0.0.1:8000/train/a/a-1.tar'
    """

    shards: list[ShardInfo]
    codec: str = "original"
    options: dict = field(default_factory=dict)
    location: str = ""

    @property
    def categories(self) -> tuple[str, ...]:
        """Categories that have shards, sorted."""
        return tuple(sorted({s.category for s in self.shards}))

    @property
    def num_clips(self) -> int:
        """Clips in all shards."""
        return int(sum(s.clips for s in self.shards))

    def shards_of(self, category: str) -> list[ShardInfo]:
        """The shards of one category, in order.

        Arguments
        ---------
        category : str
            A category name.

        Returns
        -------
        list of ShardInfo
            Possibly empty.
        """
        return [s for s in self.shards if s.category == category]

    def totals(self) -> dict[str, dict]:
        """Per category: ``shards``, ``clips``, ``seconds``, ``bytes``.

        Returns
        -------
        dict
            ``{category: {"shards": n, "clips": n, "seconds": s, "bytes": b}}``.
        """
        out: dict[str, dict] = {}
        for s in self.shards:
            t = out.setdefault(s.category, {"shards": 0, "clips": 0, "seconds": 0.0, "bytes": 0})
            t["shards"] += 1
            t["clips"] += s.clips
            t["seconds"] += s.seconds
            t["bytes"] += s.bytes
        for t in out.values():
            t["seconds"] = round(t["seconds"], 3)
        return out

    def urls_of(self, category: str, base: str | None = None) -> list[str]:
        """The shard urls of one category, resolved against the index's location.

        Arguments
        ---------
        category : str
            A category name.
        base : str, optional
            Where relative urls are resolved: a path or url of the index (its folder is used),
            or a template holding ``{url}`` (e.g. ``"pipe:aws s3 cp s3://b/train/{url} -"``).
            Default: the index's own location.

        Returns
        -------
        list of str
            Urls that ``webdataset.gopen`` opens.
        """
        return [resolve_url(s.url, self.location if base is None else base)
                for s in self.shards_of(category)]

    def to_json(self) -> dict:
        """The ``index.json`` content (shards and per-category totals).

        Returns
        -------
        dict
            Plain json data.
        """
        return {"format": FORMAT, "version": VERSION, "codec": self.codec,
                "options": self.options, "categories": self.totals(),
                "clips": self.num_clips, "shards": [asdict(s) for s in self.shards]}

    def save(self, path: str | Path) -> Path:
        """Writes the index atomically (temporary file, then rename).

        Arguments
        ---------
        path : str or Path
            The json file.

        Returns
        -------
        Path
            ``path``.
        """
        path = Path(path)
        write_atomic(path, json.dumps(self.to_json(), indent=1).encode())
        return path

    @classmethod
    def from_json(cls, data: Mapping, location: str = "") -> ShardIndex:
        """Builds an index from ``index.json`` data, validating it.

        Arguments
        ---------
        data : mapping
            The parsed json.
        location : str
            Where it was read from.

        Returns
        -------
        ShardIndex
            The index.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ShardError(f"{location or 'index'}: not a gass shard index (expected "
                             f"\"format\": \"{FORMAT}\"); write one with tools/make_shards.py")
        names = {f for f in ShardInfo.__dataclass_fields__}
        shards = []
        for i, row in enumerate(data.get("shards", [])):
            missing = {"url", "category", "clips", "seconds", "bytes"} - set(row)
            if missing:
                raise ShardError(f"{location or 'index'}: shard {i} lacks {sorted(missing)}; "
                                 "rewrite the index with tools/make_shards.py")
            if not isinstance(row["url"], str) or not SAFE_SHARD_URL.match(row["url"]):
                raise ShardError(f"{location or 'index'}: shard {i} has the url {row['url']!r}; "
                                 "an index lists shard paths or http(s)/file urls (letters, "
                                 "digits and . _ - + = % ~ /), never a pipe: command; give a "
                                 "pipe as the shard_base template holding {url} instead")
            shards.append(ShardInfo(**{k: v for k, v in row.items() if k in names}))
        return cls(shards, data.get("codec", "original"), dict(data.get("options", {})),
                   location)

    @classmethod
    def load(cls, url: str | Path) -> ShardIndex:
        """Reads ``index.json`` from a path, ``file://``, ``http(s)://`` or ``pipe:`` url.

        Arguments
        ---------
        url : str or Path
            The index (a folder means ``<folder>/index.json``).

        Returns
        -------
        ShardIndex
            The index, its ``location`` set to ``url``.

        Example
        -------
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = ShardIndex([ShardInfo("a/a-0.tar", "a", 2, 3.0, 100)]).save(folder / INDEX_NAME)
        >>> ShardIndex.load(folder).urls_of("a") == [str(folder / "a" / "a-0.tar")]
        True
        """
        url = str(url)
        if "://" not in url and not url.startswith("pipe:") and Path(url).is_dir():
            url = str(Path(url) / INDEX_NAME)
        try:
            with wds.gopen(url, "rb") as stream:
                raw = stream.read()
        except Exception as err:  # a missing file, an unreachable host, a failing pipe
            raise ShardError(f"cannot read the shard index {url}: {err}; check the url (and "
                             "that the server or bucket is reachable from this node)") from err
        if not raw:
            raise ShardError(f"the shard index {url} is empty or could not be fetched; check "
                             "the url (and that the server is reachable from this node)")
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise ShardError(f"{url} is not json ({err}); point to the index.json that "
                             "tools/make_shards.py wrote") from err
        return cls.from_json(data, url)


def resolve_url(url: str, base: str) -> str:
    """Resolves a shard url from the index against the index's location.

    Arguments
    ---------
    url : str
        A url of the index (relative, or absolute with a scheme or a leading ``/``).
    base : str
        The index's path or url, a folder (ending in ``/``), or a template with ``{url}``.

    Returns
    -------
    str
        The url to open.

    Example
    -------
    >>> resolve_url("a/a-0.tar", "/data/train/index.json")
    '/data/train/a/a-0.tar'
    >>> resolve_url("a/a-0.tar", "file:///data/train/index.json")
    'file:///data/train/a/a-0.tar'
    >>> resolve_url("a/a-0.tar", "pipe:curl -s http://h/train/{url}")
    'pipe:curl -s http://h/train/a/a-0.tar'
    """
    if "{url}" in base:  # the user's command: the url must not extend it
        if not SAFE_SHARD_URL.match(url) or "://" in url:
            raise ShardError(f"the shard url {url!r} cannot go into the template {base!r}: "
                             "only a relative path (letters, digits and . _ - + = % ~ /) can")
        return base.replace("{url}", url)
    if "://" in url or url.startswith(("/", "pipe:")) or not base:
        return url
    if base.startswith("pipe:"):
        raise ShardError(f"cannot resolve the relative shard url {url!r} against a pipe: index "
                         f"location ({base!r}); give shard_base a template holding {{url}}, "
                         "e.g. 'pipe:aws s3 cp s3://bucket/train/{url} -'")
    if urlparse(base).scheme in ("", "file") and "://" not in base:
        folder = base if base.endswith("/") else os.path.dirname(base)
        return os.path.join(folder, url)
    return urljoin(base, url)


def write_atomic(path: Path, data: bytes) -> None:
    """Writes bytes to ``path`` through a temporary file, flushed and renamed.

    Arguments
    ---------
    path : Path
        The file.
    data : bytes
        Its content.

    Example
    -------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.json"
    >>> write_atomic(target, b"{}"); target.read_bytes()
    b'{}'
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


__all__ = ["INDEX_NAME", "PARTIAL_NAME", "ShardError", "ShardIndex", "ShardInfo", "resolve_url",
           "write_atomic"]
