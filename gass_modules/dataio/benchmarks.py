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
* :func:`load_benchmark_set`: a ``DynamicItemDataset`` over such a manifest whose items follow
  the mixer-item contract of docs/architecture.md (``id``, ``mix [T]``, ``targets [T, S]``,
  ``num_sources``, ``categories``): crops read with ``soundfile.read(start=, frames=)``, downmixed
  to mono and resampled to the model rate with torchaudio (training and validation), or whole
  recordings at their own rate and channel count (``mix [C, T]``, ``targets [C, T, S]``, plus
  ``mix_wav``) for evaluation, where the separator is run chunk by chunk by
  ``gass_modules.inference.GASSSeparator``.

Unlike mixer items, benchmark mixtures need not equal the sum of their targets: Libri2Mix's
``mix_both`` adds noise and DnR adds a low noise floor to every mix. The mixture file is what the
separator hears; the targets are the official references.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from gass_modules.dataio.manifest import AudioHeader, probe_audio
from gass_modules.dataio.mixer import resample

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
    """Header of one file (:func:`~gass_modules.dataio.manifest.probe_audio`), or the problem
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


# ------------------------------------------------------------------------------ data pipeline
def _read(path: str, start: int, frames: int, channels: int) -> torch.Tensor:
    """``frames`` samples from ``start`` as ``[C, frames]`` float32 (zeros for an empty slot)."""
    if not path:
        return torch.zeros(channels, frames)
    data, _ = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
    if data.shape[0] != frames:
        raise ValueError(f"{path} is truncated: expected {frames} samples from {start}, read "
                         f"{data.shape[0]}; re-extract the file (its header announces more)")
    return torch.from_numpy(data.T.copy())  # [C, n]


class _BenchmarkPipeline:
    """The dynamic item of :func:`load_benchmark_set` (a class so dataloader workers pickle it)."""

    def __init__(self, sample_rate: int | None, num_slots: int, segment_seconds: float | None,
                 random_crop: bool) -> None:
        self.sample_rate = sample_rate
        self.num_slots = num_slots
        self.segment_seconds = segment_seconds
        self.random_crop = random_crop

    def _window(self, frames: int, rate: int) -> tuple[int, int]:
        """(start, length) of the crop in file samples."""
        if self.segment_seconds is None:
            return 0, frames
        length = max(1, round(self.segment_seconds * rate))
        if frames <= length:
            return 0, frames
        if self.random_crop:  # torch's generator: seeded by SpeechBrain, distinct per worker
            return int(torch.randint(0, frames - length + 1, ())), length
        return (frames - length) // 2, length  # validation: the middle of the recording

    def __call__(self, *fields: str) -> Iterator:
        *paths, active, cats, frames, rate, channels = fields
        mix_path, source_paths = paths[0], paths[1:]
        frames, rate, channels = int(frames), int(rate), int(channels)
        if int(active) > self.num_slots or any(source_paths[self.num_slots:]):
            raise ValueError(f"{mix_path} has {active} sources but the model has "
                             f"num_sources={self.num_slots}; raise num_sources in the recipe")
        start, length = self._window(frames, rate)
        mix = _read(mix_path, start, length, channels)  # [C, n]
        targets = torch.stack([_read(p, start, length, channels)
                               for p in source_paths[: self.num_slots]], dim=-1)  # [C, n, S']
        slots = targets.shape[-1]
        if slots < self.num_slots:
            targets = torch.nn.functional.pad(targets, (0, self.num_slots - slots))  # [C, n, S]
        categories = (cats.split(";") + [""] * self.num_slots)[: self.num_slots]
        if self.sample_rate is None:  # evaluation: the recording as it is
            yield mix  # [C, T]
            yield targets  # [C, T, S]
        else:
            mix = resample(mix.mean(0), rate, self.sample_rate)  # [T]
            targets = resample(targets.mean(0).T, rate, self.sample_rate).T  # [T, S]
            if self.segment_seconds is not None:
                want = max(1, round(self.segment_seconds * self.sample_rate))
                have = mix.shape[0]
                if have >= want:
                    mix, targets = mix[:want], targets[:want]
                elif self.random_crop:  # pad short recordings so training batches are uniform
                    mix = torch.nn.functional.pad(mix, (0, want - have))
                    targets = torch.nn.functional.pad(targets, (0, 0, 0, want - have))
            yield mix.contiguous()  # [T]
            yield targets.contiguous()  # [T, S]
        yield int(active)
        yield categories


def load_benchmark_set(csv_path: str | os.PathLike, num_slots: int,
                       sample_rate: int | None = None, segment_seconds: float | None = None,
                       random_crop: bool = False,
                       replacements: Mapping[str, str] | None = None) -> DynamicItemDataset:
    """A ``DynamicItemDataset`` over a benchmark manifest written by :func:`write_manifests`.

    Two modes:

    * ``sample_rate`` given (training, validation): mono items at the model rate, ``mix [T]``
      and ``targets [T, num_slots]``, optionally cropped to ``segment_seconds`` (a random crop,
      zero-padded when the recording is shorter, with ``random_crop``; otherwise the middle of
      the recording);
    * ``sample_rate=None`` (evaluation): whole recordings at their own rate and channel count,
      ``mix [C, T]`` and ``targets [C, T, num_slots]``, plus ``mix_wav`` (the file, for chunked
      separation) and ``sample_rate``.

    Arguments
    ---------
    csv_path : str or pathlib.Path
        The manifest.
    num_slots : int
        Target slots per item (the separator's ``num_sources``); empty slots are all-zero.
    sample_rate : int, optional
        The model rate; None keeps the recordings as they are.
    segment_seconds : float, optional
        Crop length (needs ``sample_rate``); None keeps whole recordings.
    random_crop : bool
        Random crops (training) instead of the middle one (validation).
    replacements : Mapping, optional
        ``$name`` replacements in paths; ``data_root`` is required when paths use it.

    Returns
    -------
    speechbrain.dataio.dataset.DynamicItemDataset
        Output keys ``id, mix, targets, num_sources, categories`` (+ ``mix_wav, sample_rate``
        in evaluation mode).

    Example
    -------
    >>> import tempfile, numpy
    >>> tmp = Path(tempfile.mkdtemp())
    >>> a = numpy.random.default_rng(0).uniform(-0.5, 0.5, (4410, 2)).astype("float32")
    >>> for name, x in (("mix", 2 * a), ("s1", a), ("s2", a)):
    ...     sf.write(tmp / f"{name}.wav", x, 44100)
    >>> ex = BenchmarkExample("t", tmp / "mix.wav", (tmp / "s1.wav", tmp / "s2.wav"),
    ...                       ("vocals", "other"))
    >>> csv_path = write_manifests("X", {"test": [ex]}, tmp, tmp, 2, {}, ["mix.wav"])["test"]
    >>> train = load_benchmark_set(csv_path, 4, sample_rate=16000, segment_seconds=0.05,
    ...                            random_crop=True, replacements={"data_root": str(tmp)})
    >>> item = train[0]
    >>> item["mix"].shape, item["targets"].shape, item["num_sources"], item["categories"]
    (torch.Size([800]), torch.Size([800, 4]), 2, ['vocals', 'other', '', ''])
    >>> test = load_benchmark_set(csv_path, 2, replacements={"data_root": str(tmp)})
    >>> test[0]["mix"].shape, test[0]["targets"].shape, test[0]["sample_rate"]
    (torch.Size([2, 4410]), torch.Size([2, 4410, 2]), 44100)
    """
    if not isinstance(num_slots, int) or num_slots < 1:
        raise ValueError(f"num_slots must be a positive int, got {num_slots!r}")
    if segment_seconds is not None and (sample_rate is None or not segment_seconds > 0
                                        or not math.isfinite(segment_seconds)):
        raise ValueError(f"segment_seconds={segment_seconds!r} needs a positive finite length "
                         f"and a model sample_rate (got {sample_rate!r}); evaluation mode "
                         "(sample_rate=None) always uses whole recordings")
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"manifest not found: {csv_path}; run the recipe's prepare.py "
                                "(train.py does) first")
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f), [])
    slots = sorted((c for c in header if c.startswith("s") and c.endswith("_wav")),
                   key=lambda c: int(c[1:-4]))
    missing = [c for c in (*FIXED_COLUMNS, *TRAILING_COLUMNS) if c not in header]
    if missing or not slots:
        raise ValueError(f"{csv_path} is not a benchmark manifest: missing columns "
                         f"{missing or ['s1_wav']}; found {header}")
    dataset = DynamicItemDataset.from_csv(str(csv_path), replacements=dict(replacements or {}))
    pipeline = _BenchmarkPipeline(sample_rate, num_slots, segment_seconds, random_crop)
    dataset.add_dynamic_item(pipeline.__call__, takes=["mix_wav", *slots, *TRAILING_COLUMNS],
                             provides=["mix", "targets", "num_sources", "categories"])
    keys = ["id", "mix", "targets", "num_sources", "categories"]
    if sample_rate is None:
        dataset.add_dynamic_item(int, takes="sample_rate", provides="rate")
        keys += ["mix_wav", "rate"]
    dataset.set_output_keys(keys if sample_rate is not None else
                            {**{k: k for k in keys[:-1]}, "sample_rate": "rate"})
    return dataset


__all__ = ["AudioHeader", "BenchmarkExample", "LayoutError", "load_benchmark_set",
           "manifests_ready", "probe_examples", "require_folders", "write_manifest",
           "write_manifests"]
