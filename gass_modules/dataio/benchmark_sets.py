"""Benchmark sets as SpeechBrain datasets: mixer items read from benchmark manifests.

:func:`load_benchmark_set` reads a manifest written by
:func:`~gass_modules.dataio.benchmarks.write_manifests` into a ``DynamicItemDataset`` whose items
follow the mixer-item contract of docs/architecture.md (``id``, ``mix [T]``, ``targets [T, S]``,
``num_sources``, ``categories``): crops read with ``soundfile.read(start=, frames=)``, downmixed
to mono and resampled to the model rate with torchaudio (training and validation), or whole
recordings at their own rate and channel count (``mix [C, T]``, ``targets [C, T, S]``, plus
``mix_wav``) for evaluation, where the separator is run chunk by chunk.

Unlike mixer items, benchmark mixtures need not equal the sum of their targets: Libri2Mix's
``mix_both`` adds noise and DnR adds a low noise floor to every mix. The mixture file is what the
separator hears; the targets are the official references.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from gass_modules.dataio.benchmarks import FIXED_COLUMNS, TRAILING_COLUMNS
from gass_modules.dataio.mixer import resample


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
    >>> from gass_modules.dataio.benchmarks import BenchmarkExample, write_manifests
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


__all__ = ["load_benchmark_set"]
