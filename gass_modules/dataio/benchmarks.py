"""Preparation helpers shared by the benchmark recipes (FUSS, Libri2Mix, DnR, MUSDB18).

Each recipe's ``prepare.py`` reads its dataset in the official layout (as distributed) into a
list of :class:`BenchmarkExample` and hands it to :func:`write_manifests`; this module holds what
the four have in common:

* :class:`LayoutError` and :func:`require_folders`: the documented error for a wrong path or an
  incomplete download, naming the folders that were expected and what was found instead;
* :func:`probe_examples`: header-only reads (``soundfile.info``, no decoding) of every mixture
  and source file, which catch missing, empty or unreadable files and stems whose length, rate
  or channel count disagrees with their mixture (typical of a half-extracted archive);
* :func:`write_manifests`: SpeechBrain csv manifests (``ID``, ``duration``, ``$data_root``
  paths) with the columns of the frozen evaluation sets of :mod:`gass_modules.dataio.mixer`
  (``mix_wav``, ``s<k>_wav``, ``active_sources``, ``source_categories``) plus ``frames``,
  ``sample_rate`` and ``channels``, and a record of the preparation options so that a second run
  with the same options is skipped, as SpeechBrain recipes do;
* :func:`~gass_modules.dataio.benchmark_sets.load_benchmark_set`
  (:mod:`gass_modules.dataio.benchmark_sets`) reads such a manifest
  back as a ``DynamicItemDataset`` of mixer items.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gass_modules.dataio.scan import AudioHeader, probe_audio

logger = logging.getLogger(__name__)

OPTIONS_FILE = "prepare_options.json"
FIXED_COLUMNS = ("ID", "duration", "mix_wav")
TRAILING_COLUMNS = ("active_sources", "source_categories", "frames", "sample_rate", "channels")
_MAX_LISTED = 5  # problems listed in an error message before "... and N more"


class LayoutError(FileNotFoundError):
    """A dataset folder is not in its official layout: wrong path or incomplete download.

    The message names the dataset, the folder, what is wrong, the layout that was expected and
    what to do. It subclasses ``FileNotFoundError`` so callers that handle missing data keep
    working.

    Arguments
    ---------
    dataset : str
        Dataset name, e.g. ``"Libri2Mix"``.
    root : str or pathlib.Path
        The folder that was given.
    problem : str
        What is wrong (missing folders, incomplete examples, ...).
    expected : sequence of str
        The official layout, one line per folder or file pattern.
    hint : str
        What to do about it.

    Example
    -------
    >>> err = LayoutError("DnR", "/data/dnr", "missing folders ['tt']", ["dnr_v2/tt/<id>/mix.wav"],
    ...                   "download dnr_v2 from Zenodo")
    >>> print(err)
    DnR: missing folders ['tt'] in /data/dnr. Expected the official layout:
        dnr_v2/tt/<id>/mix.wav
    download dnr_v2 from Zenodo
    """

    def __init__(self, dataset: str, root: str | os.PathLike, problem: str,
                 expected: Sequence[str], hint: str = "") -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.problem = problem
        self.expected = list(expected)
        lines = [f"{dataset}: {problem} in {root}. Expected the official layout:"]
        lines += [f"    {line}" for line in self.expected]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return (type(self), (self.dataset, self.root, self.problem, self.expected, ""))


def _listing(folder: Path, limit: int = 8) -> str:
    """A short description of what a folder holds, for error messages."""
    if not folder.exists():
        return f"{folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return f"{folder} is empty"
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{folder} holds {names[:limit]}{more}"


def require_folders(dataset: str, root: str | os.PathLike, folders: Sequence[str],
                    expected: Sequence[str], hint: str = "") -> Path:
    """Checks that ``root`` is a folder holding every relative folder of ``folders``.

    Arguments
    ---------
    dataset : str
        Dataset name for the message.
    root : str or pathlib.Path
        The folder to check.
    folders : sequence of str
        Relative paths that must be folders (``"train"``, ``"wav8k/min/test/s1"``, ...).
    expected : sequence of str
        The official layout, shown in the error.
    hint : str
        What to do, shown in the error.

    Returns
    -------
    pathlib.Path
        ``root`` as a ``Path``.

    Raises
    ------
    LayoutError
        Naming the missing folders and what ``root`` holds instead.

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "train").mkdir()
    >>> require_folders("MUSDB18-HQ", root, ["train"], ["train/<track>/mixture.wav"]) == root
    True
    >>> require_folders("MUSDB18-HQ", root, ["train", "test"], ["test/<track>/mixture.wav"])
    Traceback (most recent call last):
    ...
    gass_modules.dataio.benchmarks.LayoutError: MUSDB18-HQ: missing folders ['test'] ...
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(dataset, root, f"the dataset folder does not exist ({_listing(root)})",
                          expected, hint)
    missing = [f for f in folders if not (root / f).is_dir()]
    if missing:
        raise LayoutError(dataset, root, f"missing folders {missing} ({_listing(root)})",
                          expected, hint)
    return root


@dataclass(frozen=True)
class BenchmarkExample:
    """One mixture of a benchmark and its reference sources, as files.

    Arguments
    ---------
    id : str
        Unique id within the split (the official file or folder name).
    mix : pathlib.Path
        The mixture file.
    sources : tuple of pathlib.Path or None
        One file per source slot; ``None`` for an empty slot (FUSS mixtures have 1-4 sources).
    categories : tuple of str
        One name per slot (``"speech"``, ``"vocals"``, ...; ``""`` for an empty slot).

    Example
    -------
    >>> ex = BenchmarkExample("m1", Path("m1/mix.wav"), (Path("m1/s1.wav"), None), ("sfx", ""))
    >>> ex.num_sources
    1
    """

    id: str
    mix: Path
    sources: tuple[Path | None, ...]
    categories: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.categories) or not self.sources:
            raise ValueError(f"example {self.id}: expected one category per source slot (at "
                             f"least one), got {len(self.sources)} sources and "
                             f"{len(self.categories)} categories")

    @property
    def num_sources(self) -> int:
        """Number of non-empty source slots."""
        return sum(s is not None for s in self.sources)


def _header(path: Path) -> AudioHeader | str:
    """Header of one file (:func:`~gass_modules.dataio.scan.probe_audio`), or the problem
    worded for a layout error."""
    head = probe_audio(path)
    if isinstance(head, AudioHeader):
        return head
    kind, _, detail = head.partition(": ")
    if kind == "missing":
        return f"missing file {path}"
    if kind == "empty":
        return f"empty file {path} (0 samples)"
    return f"{kind} file {path} ({detail})"


def _check_example(example: BenchmarkExample) -> AudioHeader | str:
    """The example's header, or the first problem found in its files."""
    mix = _header(example.mix)
    if isinstance(mix, str):
        return f"{example.id}: {mix}"
    for path in example.sources:
        if path is None:
            continue
        src = _header(path)
        if isinstance(src, str):
            return f"{example.id}: {src}"
        if src != mix:
            return (f"{example.id}: {path.name} has {src.frames} samples, {src.channels} "
                    f"channel(s) at {src.sample_rate} Hz but the mixture {example.mix.name} has "
                    f"{mix.frames}, {mix.channels} at {mix.sample_rate} Hz")
    return mix


def probe_examples(dataset: str, root: str | os.PathLike, examples: Sequence[BenchmarkExample],
                   expected: Sequence[str], hint: str = "", workers: int = 4
                   ) -> list[AudioHeader]:
    """Reads the headers of every file of every example, in parallel threads.

    Arguments
    ---------
    dataset : str
        Dataset name for the error message.
    root : str or pathlib.Path
        The dataset folder, for the error message.
    examples : sequence of BenchmarkExample
        The examples to check (at least one).
    expected : sequence of str
        The official layout, shown in the error.
    hint : str
        What to do, shown in the error.
    workers : int
        Probing threads (libsndfile releases the GIL).

    Returns
    -------
    list of AudioHeader
        One per example, in order.

    Raises
    ------
    LayoutError
        When there is no example, or when any file is missing, empty, unreadable, or disagrees
        with its mixture in length, rate or channels (the first problems are listed).

    Example
    -------
    >>> import tempfile, numpy
    >>> import soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("mix", "s1"):
    ...     sf.write(root / f"{name}.wav", numpy.zeros(800, dtype="float32"), 8000)
    >>> ok = BenchmarkExample("m", root / "mix.wav", (root / "s1.wav",), ("speech",))
    >>> probe_examples("X", root, [ok], ["<id>/mix.wav"])
    [AudioHeader(frames=800, sample_rate=8000, channels=1)]
    >>> bad = BenchmarkExample("b", root / "mix.wav", (root / "s2.wav",), ("speech",))
    >>> probe_examples("X", root, [ok, bad], ["<id>/mix.wav"])
    Traceback (most recent call last):
    ...
    gass_modules.dataio.benchmarks.LayoutError: X: 1 of 2 examples are incomplete ... missing...
    """
    if not examples:
        raise LayoutError(dataset, root, "no example found", expected, hint)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(_check_example, examples))
    problems = [r for r in results if isinstance(r, str)]
    if problems:
        more = (f" ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED
                else "")
        listed = "; ".join(problems[:_MAX_LISTED])
        raise LayoutError(dataset, root, f"{len(problems)} of {len(examples)} examples are "
                          f"incomplete (a partial download or extraction?): {listed}{more}",
                          expected, hint)
    return results  # type: ignore[return-value]


def _portable(path: Path, data_root: Path | None) -> str:
    """``$data_root/<relative>`` when ``path`` is under ``data_root``, else the absolute path."""
    path = path.resolve()
    if data_root is not None:
        try:
            return "$data_root/" + path.relative_to(data_root).as_posix()
        except ValueError:
            pass
    return str(path)


def write_manifest(examples: Sequence[BenchmarkExample], headers: Sequence[AudioHeader],
                   csv_path: str | os.PathLike, num_slots: int,
                   data_root: str | os.PathLike | None = None) -> Path:
    """Writes one split as a SpeechBrain csv (atomically: a temporary file, then a rename).

    Columns: ``ID, duration, mix_wav, s1_wav ... s<num_slots>_wav, active_sources,
    source_categories`` (``;``-joined, one per slot), ``frames, sample_rate, channels``. Empty
    slots have an empty path and category.

    Arguments
    ---------
    examples : sequence of BenchmarkExample
        The split's examples.
    headers : sequence of AudioHeader
        Their headers (:func:`probe_examples`).
    csv_path : str or pathlib.Path
        Output file.
    num_slots : int
        Source columns to write (at least the largest number of slots of any example).
    data_root : str or pathlib.Path, optional
        Paths under it are written as ``$data_root/...`` (pass ``replacements={"data_root":
        ...}`` when loading).

    Returns
    -------
    pathlib.Path
        ``csv_path``.

    Example
    -------
    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> ex = BenchmarkExample("m1", tmp / "mix.wav", (tmp / "a.wav",), ("speech",))
    >>> path = write_manifest([ex], [AudioHeader(16000, 8000, 1)], tmp / "x.csv", 2, tmp)
    >>> print(path.read_text().splitlines()[1])
    m1,2,$data_root/mix.wav,$data_root/a.wav,,1,speech;,16000,8000,1
    """
    if len(examples) != len(headers):
        raise ValueError(f"expected one header per example, got {len(headers)} for "
                         f"{len(examples)} examples")
    widest = max((len(e.sources) for e in examples), default=0)
    if num_slots < widest:
        raise ValueError(f"num_slots={num_slots} is smaller than the {widest} source slots of "
                         "the examples")
    root = Path(data_root).resolve() if data_root is not None else None
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = csv_path.with_name(f".{csv_path.name}.partial")
    slots = [f"s{k + 1}_wav" for k in range(num_slots)]
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FIXED_COLUMNS, *slots, *TRAILING_COLUMNS])
        for ex, head in zip(examples, headers):
            pad = num_slots - len(ex.sources)
            sources = [_portable(p, root) if p is not None else "" for p in ex.sources]
            cats = [c if p is not None else "" for c, p in zip(ex.categories, ex.sources)]
            writer.writerow([ex.id, f"{head.duration:g}", _portable(ex.mix, root),
                             *sources, *[""] * pad, ex.num_sources, ";".join(cats + [""] * pad),
                             head.frames, head.sample_rate, head.channels])
    os.replace(tmp, csv_path)
    return csv_path


def _options_path(save_folder: Path) -> Path:
    return save_folder / OPTIONS_FILE


def manifests_ready(save_folder: str | os.PathLike, splits: Sequence[str],
                    options: Mapping[str, object]) -> bool:
    """True when every ``<split>.csv`` exists and was written with the same options.

    Arguments
    ---------
    save_folder : str or pathlib.Path
        Where the manifests are.
    splits : sequence of str
        Split names (``train``, ``valid``, ``test``).
    options : Mapping
        The preparation options (json-serialisable); any change forces a new preparation.

    Returns
    -------
    bool
        Whether the preparation can be skipped.

    Example
    -------
    >>> import tempfile
    >>> manifests_ready(tempfile.mkdtemp(), ["train"], {"mode": "min"})
    False
    """
    save_folder = Path(save_folder)
    if not all((save_folder / f"{s}.csv").is_file() for s in splits):
        return False
    try:
        saved = json.loads(_options_path(save_folder).read_text())
    except (OSError, ValueError):
        return False
    return saved == json.loads(json.dumps(dict(options), default=str))


def write_manifests(dataset: str, split_examples: Mapping[str, Sequence[BenchmarkExample]],
                    save_folder: str | os.PathLike, data_root: str | os.PathLike,
                    num_slots: int, options: Mapping[str, object], expected: Sequence[str],
                    hint: str = "", workers: int = 4) -> dict[str, Path]:
    """Probes every split's files and writes ``<save_folder>/<split>.csv`` for each.

    Nothing is written unless every split passes :func:`probe_examples`; the options are then
    recorded so :func:`manifests_ready` can skip a second run.

    Arguments
    ---------
    dataset : str
        Dataset name for error messages.
    split_examples : Mapping of str to sequence of BenchmarkExample
        Examples per split name.
    save_folder : str or pathlib.Path
        Output folder.
    data_root : str or pathlib.Path
        The dataset folder (paths below it become ``$data_root/...``).
    num_slots : int
        Source columns per manifest.
    options : Mapping
        Preparation options to record.
    expected : sequence of str
        The official layout, for error messages.
    hint : str
        What to do when the layout is wrong.
    workers : int
        Header-probing threads.

    Returns
    -------
    dict of str to pathlib.Path
        The manifest of each split.

    Example
    -------
    >>> import tempfile, numpy
    >>> import soundfile as sf
    >>> tmp = Path(tempfile.mkdtemp())
    >>> sf.write(tmp / "mix.wav", numpy.zeros(400, dtype="float32"), 8000)
    >>> ex = BenchmarkExample("m", tmp / "mix.wav", (tmp / "mix.wav",), ("speech",))
    >>> out = write_manifests("X", {"test": [ex]}, tmp / "save", tmp, 1, {"a": 1}, ["mix.wav"])
    >>> sorted(out), manifests_ready(tmp / "save", ["test"], {"a": 1})
    (['test'], True)
    """
    save_folder = Path(save_folder)
    headers = {split: probe_examples(dataset, data_root, examples, expected, hint, workers)
               for split, examples in split_examples.items()}
    paths = {}
    for split, examples in split_examples.items():
        paths[split] = write_manifest(examples, headers[split], save_folder / f"{split}.csv",
                                      num_slots, data_root)
        hours = sum(h.duration for h in headers[split]) / 3600
        logger.info(f"{dataset} {split}: {len(examples)} mixtures, {hours:.2f} h -> "
                    f"{paths[split]}")
    _options_path(save_folder).write_text(json.dumps(dict(options), default=str, indent=1))
    return paths


__all__ = ["AudioHeader", "BenchmarkExample", "LayoutError", "manifests_ready", "probe_examples",
           "require_folders", "write_manifest", "write_manifests"]
