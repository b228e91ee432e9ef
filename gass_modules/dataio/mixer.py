"""The GASS mixer: on-the-fly mixtures of speech, music and sound events as SpeechBrain data-io.

GASS (Pons et al., ICASSP 2024) trains on mixtures of 1-4 sources drawn from a large pool of
recordings: foreground sources at a comfortable level, background sources lower. A
:class:`Scenario` (a yaml table, ``hparams/mixer/gass.yaml``) says which categories may be
foreground or background, how many sources a mixture has, and the gain ranges in dB.
:class:`GASSMixer` draws one mixture from a :class:`~gass_modules.dataio.manifest.Manifest`:

1. the number of sources ``n`` and, per source, its role, category, clip and gain;
2. a random crop read with ``soundfile.read(start=, frames=)`` (never a whole-file decode),
   downmixed to mono and resampled with torchaudio when the clip's rate differs; a crop whose
   RMS is below ``silence_threshold_db`` is rejected and redrawn, at most ``max_retries`` times;
3. each source scaled to ``reference_db + gain_db`` dB RMS (relative to its own RMS), so the
   level ratio of two sources is exactly their gain difference;
4. targets rescaled together when the mixture or a target would exceed ``peak_limit``, and the
   mixture computed last as the sum of the final targets.

Items follow the mixer-item contract (docs/architecture.md, "Mixer item"): ``id``,
``mix [T]``, ``targets [T, S_max]``, ``num_sources``, ``categories`` (``""`` for empty slots);
``mix == targets.sum(-1)`` and empty slots are exactly zero. Two ways to consume them with
SpeechBrain's dataloader and ``PaddedBatch``:

* :func:`make_eval_set`: a ``DynamicItemDataset`` whose item ``i`` is a pure function of
  (manifest, scenario, seed, i); :func:`export_eval_set` freezes it to wav + csv and
  :func:`load_eval_set` reads the frozen copy back as a ``DynamicItemDataset``;
* :class:`MixtureStream`: a ``torch.utils.data.IterableDataset`` for training, whose items are
  seeded from (seed, epoch, rank, k) with ``k`` strided over dataloader workers, so DDP ranks and
  workers never repeat each other's mixtures.

Run the mixer in dataloader workers (``num_workers >= 1``), where PyTorch uses one intra-op
thread: its resampling convolutions are small, and with several threads on a busy CPU they can
be tens of times slower than with one.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from speechbrain.dataio.dataio import read_audio
from speechbrain.dataio.dataset import DynamicItemDataset

from gass_modules.dataio.manifest import Manifest, load_manifest

logger = logging.getLogger(__name__)

ITEM_KEYS = ("id", "mix", "targets", "num_sources", "categories")
DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "hparams" / "mixer" / "gass.yaml"
_EVAL_STREAM, _TRAIN_STREAM = 0, 1  # first seed key: eval items and training items never meet


# ------------------------------------------------------------------------------------ scenario
def _weights(value: Mapping[str, float] | Sequence[str], name: str) -> dict[str, float]:
    """Normalises a category table given as ``{name: weight}`` or a list of names."""
    table = dict(value) if isinstance(value, Mapping) else {str(c): 1.0 for c in value}
    bad = {k: w for k, w in table.items() if not (isinstance(w, (int, float)) and w >= 0)}
    if bad:
        raise ValueError(f"{name}: expected non-negative weights, got {bad}")
    return {str(k): float(w) for k, w in table.items()}


def _gain_range(value: Sequence[float], name: str) -> tuple[float, float]:
    """Validates a ``[low, high]`` range in dB."""
    lo_hi = tuple(float(v) for v in value)
    if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
        raise ValueError(f"{name}: expected [low_db, high_db] with low <= high, got {value}")
    return lo_hi  # type: ignore[return-value]


@dataclass
class Scenario:
    """A GASS mixing scenario (the keys of ``hparams/mixer/gass.yaml``).

    Arguments
    ---------
    sample_rate : int
        Output sample rate in Hz.
    duration : float
        Mixture length in seconds.
    max_sources : int
        ``S_max``: the number of target slots (GASS models always predict 4).
    num_sources_probs : sequence of float
        Probability of 1, 2, ..., ``max_sources`` sources (normalised).
    background_prob : float
        Probability that each source after the first is a background source (the first source
        is always foreground).
    foreground_categories : mapping of str to float, or list of str
        Categories allowed as foreground, with draw weights. Categories absent from a manifest
        are ignored, so one table serves manifests with ``music`` or with stem labels.
    background_categories : mapping of str to float, or list of str
        Categories allowed as background, with draw weights (may be empty).
    foreground_gain_db : sequence of float
        ``[low, high]`` foreground level range in dB relative to ``reference_db``.
    background_gain_db : sequence of float
        ``[low, high]`` background level range; ``high`` must not exceed the foreground ``low``.
    reference_db : float
        RMS level in dBFS of a source at 0 dB gain.
    silence_threshold_db : float
        Crops whose RMS (dBFS) is below this are rejected as silent.
    max_retries : int
        Silent crops redrawn per source before giving up with an error.
    peak_limit : float
        Largest absolute sample value allowed in the mixture and targets.

    Example
    -------
    >>> s = Scenario(duration=2.0, num_sources_probs=[0, 1, 0, 0])
    >>> s.num_samples, s.max_sources
    (32000, 4)
    >>> Scenario(foreground_gain_db=[-5, 5], background_gain_db=[-3, 0])
    Traceback (most recent call last):
      ...
    ValueError: background_gain_db: the background must be lower than the foreground ...
    """

    sample_rate: int = 16000
    duration: float = 6.0
    max_sources: int = 4
    num_sources_probs: Sequence[float] = (0.25, 0.25, 0.25, 0.25)
    background_prob: float = 0.3
    foreground_categories: Mapping[str, float] = field(
        default_factory=lambda: {"speech": 1.0, "music": 1.0, "sfx": 1.0})
    background_categories: Mapping[str, float] = field(
        default_factory=lambda: {"music": 1.0, "sfx": 1.0})
    foreground_gain_db: Sequence[float] = (-5.0, 5.0)
    background_gain_db: Sequence[float] = (-20.0, -8.0)
    reference_db: float = -25.0
    silence_threshold_db: float = -60.0
    max_retries: int = 10
    peak_limit: float = 0.9

    def __post_init__(self) -> None:
        for name in ("sample_rate", "max_sources", "max_retries"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or (
                    value < (0 if name == "max_retries" else 1)):
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not self.duration > 0:
            raise ValueError(f"duration: expected seconds > 0, got {self.duration!r}")
        probs = np.asarray(self.num_sources_probs, dtype=np.float64)
        if probs.shape != (self.max_sources,) or np.any(probs < 0) or probs.sum() <= 0:
            raise ValueError(
                f"num_sources_probs: expected {self.max_sources} non-negative probabilities "
                f"(for 1..{self.max_sources} sources), got {list(self.num_sources_probs)}"
            )
        self.num_sources_probs = tuple((probs / probs.sum()).tolist())
        if not 0.0 <= self.background_prob <= 1.0:
            raise ValueError(f"background_prob: expected [0, 1], got {self.background_prob}")
        self.foreground_categories = _weights(self.foreground_categories,
                                              "foreground_categories")
        self.background_categories = _weights(self.background_categories,
                                              "background_categories")
        if sum(self.foreground_categories.values()) <= 0:
            raise ValueError("foreground_categories: expected at least one positive weight")
        self.foreground_gain_db = _gain_range(self.foreground_gain_db, "foreground_gain_db")
        self.background_gain_db = _gain_range(self.background_gain_db, "background_gain_db")
        if self.background_gain_db[1] > self.foreground_gain_db[0]:
            raise ValueError(
                "background_gain_db: the background must be lower than the foreground (its high "
                f"end <= the foreground's low end), got {list(self.background_gain_db)} vs "
                f"{list(self.foreground_gain_db)}"
            )
        if not 0.0 < self.peak_limit <= 1.0:
            raise ValueError(f"peak_limit: expected (0, 1], got {self.peak_limit}")

    @property
    def num_samples(self) -> int:
        """Mixture length ``T`` in samples."""
        return int(round(self.duration * self.sample_rate))

    @classmethod
    def from_yaml(cls, path: str | Path = DEFAULT_SCENARIO,
                  overrides: Mapping[str, object] | None = None) -> Scenario:
        """Loads a scenario table with hyperpyyaml, optionally overriding keys.

        Arguments
        ---------
        path : str or Path
            The yaml table (default: ``hparams/mixer/gass.yaml``).
        overrides : mapping, optional
            Keys to replace, as hyperpyyaml overrides.

        Returns
        -------
        Scenario
            The validated scenario.

        Example
        -------
        >>> Scenario.from_yaml(overrides={"duration": 4.0}).num_samples
        64000
        """
        from hyperpyyaml import load_hyperpyyaml

        with open(path) as f:
            table = load_hyperpyyaml(f, dict(overrides or {}))
        return cls.coerce(table)

    @classmethod
    def coerce(cls, value: Scenario | Mapping[str, object] | str | Path | None) -> Scenario:
        """A scenario from a Scenario, a dict (e.g. a recipe's ``!include:``) or a yaml path.

        Arguments
        ---------
        value : Scenario, mapping, str, Path or None
            None means the default table ``hparams/mixer/gass.yaml``.

        Returns
        -------
        Scenario
            The validated scenario.

        Example
        -------
        >>> Scenario.coerce({"duration": 1.0}).num_samples
        16000
        """
        if isinstance(value, Scenario):
            return value
        if value is None or isinstance(value, (str, Path)):
            return cls.from_yaml(DEFAULT_SCENARIO if value is None else value)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown scenario keys {unknown}; expected some of {sorted(known)}")
        return cls(**dict(value))


# ------------------------------------------------------------------------------------ audio
@functools.lru_cache(maxsize=64)
def _resampler(orig_freq: int, new_freq: int) -> torchaudio.transforms.Resample:
    """One torchaudio resampler per rate pair: the sinc kernel is computed once."""
    return torchaudio.transforms.Resample(orig_freq, new_freq)


def resample(waveform: torch.Tensor, orig_freq: int, new_freq: int) -> torch.Tensor:
    """Resamples along the last axis with torchaudio's sinc interpolation (kernel cached).

    Arguments
    ---------
    waveform : torch.Tensor
        ``[..., T]`` float audio.
    orig_freq : int
        Its sample rate in Hz.
    new_freq : int
        The rate wanted in Hz.

    Returns
    -------
    torch.Tensor
        ``[..., ceil(T * new_freq / orig_freq)]`` resampled audio (the input when rates agree).

    Example
    -------
    >>> resample(torch.zeros(2, 441), 44100, 16000).shape
    torch.Size([2, 160])
    """
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"expected positive sample rates, got {orig_freq} -> {new_freq}")
    if orig_freq == new_freq:
        return waveform
    return _resampler(int(orig_freq), int(new_freq))(waveform)


def _resample_margin(orig_freq: int, new_freq: int) -> tuple[int, int, int]:
    """Input period ``a``, output period ``b`` and margin (input frames, multiple of ``a``).

    torchaudio's kernel reads ``ceil(6 * a / (0.99 * min(a, b)))`` input samples on each side
    (``lowpass_filter_width=6``, ``rolloff=0.99``); a crop read with at least that much context
    and starting on a multiple of ``a`` resamples to exactly the matching slice of the whole
    file resampled at once.
    """
    g = math.gcd(orig_freq, new_freq)
    a, b = orig_freq // g, new_freq // g
    width = math.ceil(6 * a / (0.99 * min(a, b))) + 2
    return a, b, a * math.ceil(width / a)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS (``-inf`` for silence, NaN when a sample is NaN or Inf).

    Arguments
    ---------
    x : numpy.ndarray
        Samples (any shape).

    Returns
    -------
    float
        ``20 log10(sqrt(mean(x^2)))``.

    Example
    -------
    >>> round(rms_db(np.full(10, 0.1)), 6), rms_db(np.zeros(4)), rms_db(np.full(4, np.nan))
    (-20.0, -inf, nan)
    """
    flat = np.ravel(x)
    power = float(np.dot(flat, flat)) / flat.size if flat.size else 0.0
    if not math.isfinite(power):
        return math.nan
    return 10.0 * math.log10(power) if power > 0 else -math.inf


# ------------------------------------------------------------------------------------ mixer
@dataclass
class Mixture:
    """One drawn mixture with its provenance (what :meth:`GASSMixer.draw` returns).

    Arguments
    ---------
    targets : numpy.ndarray
        ``[T, S_max]`` float32 sources after gains and rescaling; empty slots all zero.
    mix : numpy.ndarray
        ``[T]`` float32, the sum of ``targets`` over sources.
    num_sources : int
        Number of active slots (the first ``num_sources``).
    categories : list of str
        Category per slot, ``""`` for empty slots.
    clips : list of int
        Manifest row of each active source.
    roles : list of str
        ``"foreground"`` or ``"background"`` per active source.
    starts : list of int
        First frame of each crop in its file (in the file's own rate).
    offsets : list of int
        Output sample where each crop was placed (non-zero only for clips shorter than ``T``).
    gains_db : list of float
        Drawn gain of each active source, relative to ``reference_db``.
    scale : float
        Joint anti-clipping factor applied to all targets (1.0 when not needed).

    Example
    -------
    >>> t = np.zeros((4, 2), dtype=np.float32); t[:, 0] = 0.5
    >>> m = Mixture(t, t.sum(1), 1, ["sfx", ""], [3], ["foreground"], [0], [0], [1.5], 1.0)
    >>> item = m.to_item("mix-0")
    >>> item["mix"].tolist(), item["targets"].shape, item["categories"]
    ([0.5, 0.5, 0.5, 0.5], torch.Size([4, 2]), ['sfx', ''])
    """

    targets: np.ndarray
    mix: np.ndarray
    num_sources: int
    categories: list[str]
    clips: list[int]
    roles: list[str]
    starts: list[int]
    offsets: list[int]
    gains_db: list[float]
    scale: float

    def to_item(self, mix_id: str) -> dict:
        """The mixer item of docs/architecture.md (tensors share memory with the arrays).

        Arguments
        ---------
        mix_id : str
            The item's ``id``.

        Returns
        -------
        dict
            ``id``, ``mix [T]``, ``targets [T, S_max]``, ``num_sources``, ``categories``.
        """
        return {"id": mix_id, "mix": torch.from_numpy(self.mix),
                "targets": torch.from_numpy(self.targets), "num_sources": self.num_sources,
                "categories": list(self.categories)}


class GASSMixer:
    """Draws GASS mixtures from a manifest according to a scenario.

    Arguments
    ---------
    manifest : Manifest, str, Path or sequence of them
        Source clips (a ``Manifest`` or csv path(s), see ``load_manifest``).
    scenario : Scenario, mapping, str, Path or None
        The mixing scenario; a mapping is what a recipe's ``!include:`` of the yaml table gives,
        None loads ``hparams/mixer/gass.yaml``.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> t = np.arange(8000) / 8000
    >>> sf.write(folder / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 8000)
    >>> sf.write(folder / "hum.wav", 0.1 * np.sin(2 * np.pi * 50 * t), 8000)
    >>> manifest = Manifest(["tone", "hum"], [str(folder / "tone.wav"), str(folder / "hum.wav")],
    ...                     [8000, 8000], [8000, 8000], [1, 1], ["speech", "sfx"], ["a", "b"])
    >>> mixer = GASSMixer(manifest, {"sample_rate": 8000, "duration": 0.5,
    ...                              "num_sources_probs": [0, 1, 0, 0]})
    >>> m = mixer.draw(np.random.default_rng(0))
    >>> m.num_sources, m.targets.shape, m.categories[2:], bool(np.all(m.targets[:, 2:] == 0))
    (2, (4000, 4), ['', ''], True)
    >>> bool(np.allclose(m.mix, m.targets.sum(1)))
    True
    """

    def __init__(self, manifest: Manifest | str | Path | Sequence[str | Path],
                 scenario: Scenario | Mapping | str | Path | None = None) -> None:
        self.manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        self.scenario = Scenario.coerce(scenario)
        if len(self.manifest) == 0:
            raise ValueError("expected a manifest with clips, got an empty one")
        self._roles = {}
        for role, table in (("foreground", self.scenario.foreground_categories),
                            ("background", self.scenario.background_categories)):
            codes, weights = [], []
            for name, weight in table.items():
                if weight > 0 and name in self.manifest.categories and len(
                        self.manifest.indices_of(name)) > 0:
                    codes.append(self.manifest.category_code(name))
                    weights.append(weight)
            ignored = sorted(set(table) - set(self.manifest.categories))
            if ignored:
                logger.info("%s categories %s are not in the manifest: ignored", role, ignored)
            if codes:
                cum = np.cumsum(weights) / np.sum(weights)
                self._roles[role] = (np.asarray(codes), cum)
        if "foreground" not in self._roles:
            raise ValueError(
                f"none of the foreground categories {sorted(self.scenario.foreground_categories)}"
                f" has clips in the manifest (it has {list(self.manifest.categories)}); fix the "
                "scenario's foreground_categories or the manifest's category column"
            )
        self._num_cum = np.cumsum(self.scenario.num_sources_probs)

    def _pick(self, cum: np.ndarray, rng: np.random.Generator) -> int:
        """Index drawn from a cumulative distribution (cheaper than ``rng.choice``)."""
        return min(int(np.searchsorted(cum, rng.random(), side="right")), len(cum) - 1)

    def _choose_clip(self, code: int, rng: np.random.Generator, used: list[int],
                     rejected: set[int]) -> int:
        """Draws a clip of a category, preferring clips whose group (speaker, song, sound file)
        no earlier source of this mixture has, then clips neither used in this mixture nor
        rejected as silent, then clips not rejected (a few tries each: O(1), and a category of
        one clip or one group still works). Two sources of one speaker would make a
        speech+speech mixture a same-speaker one, which no listener or benchmark asks to split.
        """
        groups = self.manifest.group_codes
        taken = {int(groups[c]) for c in used}
        avoid = set(used) | rejected
        for other_group, skip in ((True, avoid), (False, avoid), (False, rejected)):
            for _ in range(8):
                clip = self.manifest.draw(code, rng)
                if clip not in skip and not (other_group and int(groups[clip]) in taken):
                    return clip
        return clip

    def read_crop(self, clip: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """Reads a random crop of one clip, mono, at the scenario's rate (at most ``T`` long).

        Only the crop (plus the resampler's context) is read from disk. Crops of resampled clips
        start on a multiple of the rate ratio's period, so they equal the matching slice of the
        whole file resampled at once. A clip shorter than ``T`` is read whole and given a random
        placement in the output.

        Arguments
        ---------
        clip : int
            Manifest row.
        rng : numpy.random.Generator
            Source of randomness (crop start, placement).

        Returns
        -------
        numpy.ndarray
            ``[L]`` float32 samples, ``1 <= L <= T``.
        int
            First frame read, in the file's own rate.
        int
            Output sample where the crop goes.

        Example
        -------
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "ramp.wav"
        >>> sf.write(path, np.linspace(-1, 1, 24000, dtype=np.float32), 16000, "FLOAT")
        >>> mixer = GASSMixer(Manifest(["r"], [str(path)], [24000], [16000], [1], ["speech"],
        ...                            ["g"]), {"duration": 1.0})
        >>> x, start, offset = mixer.read_crop(0, np.random.default_rng(0))
        >>> x.shape, offset, bool(np.array_equal(x, sf.read(path, dtype="float32")[0][start:
        ...                                                             start + 16000]))
        ((16000,), 0, True)
        """
        sc = self.scenario
        path = self.manifest.paths[clip]
        frames = int(self.manifest.frames[clip])
        rate = int(self.manifest.sample_rates[clip])
        out_len = sc.num_samples
        if rate == sc.sample_rate:
            a, b, margin = 1, 1, 0
        else:
            a, b, margin = _resample_margin(rate, sc.sample_rate)
        need = math.ceil(out_len * a / b)  # source frames covering T output samples
        if frames >= need:
            start = a * int(rng.integers((frames - need) // a + 1))
            first = max(0, start - margin)
            last = min(frames, start + need + margin)
        else:
            start, first, last = 0, 0, frames
        data, _ = sf.read(path, start=first, frames=last - first, dtype="float32",
                          always_2d=True)  # [n, C]
        if data.shape[0] == 0:
            raise ValueError(f"expected audio frames {first}..{last} in {path}, read none; "
                             "the manifest does not match the file: rebuild it")
        x = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)  # [n]
        if rate != sc.sample_rate:
            y = resample(torch.from_numpy(np.ascontiguousarray(x)), rate, sc.sample_rate)
            skip = (start - first) // a * b
            x = y.numpy()[skip:skip + out_len]
        x = x[:out_len]
        offset = int(rng.integers(out_len - len(x) + 1)) if len(x) < out_len else 0
        return np.ascontiguousarray(x, dtype=np.float32), start, offset

    def draw(self, rng: np.random.Generator) -> Mixture:
        """Draws one mixture (all randomness comes from ``rng``).

        Arguments
        ---------
        rng : numpy.random.Generator
            Source of randomness; the same generator state gives the same mixture.

        Returns
        -------
        Mixture
            Targets, mixture and provenance.
        """
        sc = self.scenario
        m = self.manifest
        n = 1 + self._pick(self._num_cum, rng)
        targets = np.zeros((sc.num_samples, sc.max_sources), dtype=np.float32)  # [T, S_max]
        mix = np.zeros(sc.num_samples, dtype=np.float32)  # [T]
        categories = [""] * sc.max_sources
        clips, roles, starts, offsets, gains = [], [], [], [], []
        rejected: set[int] = set()  # clips that gave a silent crop in this mixture
        peak = 0.0
        for slot in range(n):
            background = (slot > 0 and "background" in self._roles
                          and rng.random() < sc.background_prob)
            role = "background" if background else "foreground"
            codes, cum = self._roles[role]
            code = int(codes[self._pick(cum, rng)])
            lo, hi = sc.background_gain_db if background else sc.foreground_gain_db
            gain_db = float(rng.uniform(lo, hi))
            for attempt in range(sc.max_retries + 1):
                clip = self._choose_clip(code, rng, clips, rejected)
                x, start, offset = self.read_crop(clip, rng)
                level = rms_db(x)
                if math.isnan(level):
                    raise ValueError(f"clip {m.ids[clip]!r} ({m[clip].path}) holds NaN or Inf "
                                     f"samples (from frame {start}); repair the file or remove "
                                     "its row from the manifest")
                if level >= sc.silence_threshold_db and level > -math.inf:
                    break
                rejected.add(clip)
                if attempt == sc.max_retries:
                    raise RuntimeError(
                        f"{sc.max_retries + 1} crops of category {m.categories[code]!r} were "
                        f"all below silence_threshold_db={sc.silence_threshold_db} dBFS (last: "
                        f"{m.ids[clip]!r} at {level:.1f} dBFS); remove silent clips from the "
                        "manifest or lower the threshold"
                    )
            x *= np.float32(10.0 ** ((sc.reference_db + gain_db - level) / 20.0))
            targets[offset:offset + len(x), slot] = x
            mix[offset:offset + len(x)] += x  # in slot order, as targets.sum(-1) adds them
            peak = max(peak, float(x.max()), -float(x.min()))
            categories[slot] = m.categories[code]
            clips.append(clip)
            roles.append(role)
            starts.append(start)
            offsets.append(offset)
            gains.append(gain_db)
        peak = max(peak, float(mix.max()), -float(mix.min()))
        joint = 1.0
        if peak > sc.peak_limit:
            joint = sc.peak_limit / peak
            targets *= np.float32(joint)
            mix[:] = 0.0  # recomputed from the rescaled targets: the invariant still holds
            for slot in range(n):
                mix += targets[:, slot]
        return Mixture(targets, mix, n, categories, clips, roles, starts, offsets, gains, joint)


def mixture_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator seeded from a tuple of integers (numpy ``SeedSequence``: no collisions).

    Unlike additive schemes (``seed + 100 * worker + rank``), distinct tuples always give
    independent streams.

    Arguments
    ---------
    seed : int
        Base seed.
    *keys : int
        Further keys (stream kind, epoch, rank, item index...).

    Returns
    -------
    numpy.random.Generator
        A fresh generator.

    Example
    -------
    >>> mixture_rng(1, 2).random() == mixture_rng(1, 2).random() != mixture_rng(2, 1).random()
    True
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


# ------------------------------------------------------------------------------------ datasets
class _EvalPipeline:
    """The dynamic item of :func:`make_eval_set` (a class so that the dataset pickles)."""

    def __init__(self, mixer: GASSMixer, seed: int) -> None:
        self.mixer = mixer
        self.seed = seed

    def __call__(self, index: int) -> Iterator:
        m = self.mixer.draw(mixture_rng(self.seed, _EVAL_STREAM, index))
        item = m.to_item("")
        yield item["mix"]
        yield item["targets"]
        yield item["num_sources"]
        yield item["categories"]


def make_eval_set(mixer: GASSMixer, num_mixtures: int, seed: int = 0,
                  id_prefix: str = "eval") -> DynamicItemDataset:
    """A deterministic evaluation set: item ``i`` is a pure function of (mixer, seed, i).

    The mixer fixes manifest and scenario. Item ``i`` does not depend on ``num_mixtures`` (a
    larger set extends a smaller one) nor on the order or process in which items are read.

    Arguments
    ---------
    mixer : GASSMixer
        Manifest + scenario.
    num_mixtures : int
        Number of items.
    seed : int
        Seed of the set.
    id_prefix : str
        Item ids are ``<id_prefix>-<index:06d>``.

    Returns
    -------
    DynamicItemDataset
        Output keys ``id``, ``mix``, ``targets``, ``num_sources``, ``categories``; use it with
        ``speechbrain.dataio.dataloader.make_dataloader`` (PaddedBatch is the default collate).

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "noise.wav"
    >>> sf.write(path, np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(path)], [16000], [16000], [1], ["sfx"], ["g"]),
    ...                   {"duration": 0.5, "foreground_categories": ["sfx"]})
    >>> ds = make_eval_set(mixer, 3, seed=7)
    >>> ds[2]["id"], ds[2]["targets"].shape, torch.equal(ds[2]["mix"], ds[2]["mix"])
    ('eval-000002', torch.Size([8000, 4]), True)
    """
    if num_mixtures < 1:
        raise ValueError(f"expected num_mixtures >= 1, got {num_mixtures}")
    data = {f"{id_prefix}-{i:06d}": {"index": i} for i in range(num_mixtures)}
    dataset = DynamicItemDataset(data)
    dataset.add_dynamic_item(_EvalPipeline(mixer, seed).__call__, takes=["index"],
                             provides=list(ITEM_KEYS[1:]))
    dataset.set_output_keys(list(ITEM_KEYS))
    return dataset


def export_eval_set(mixer: GASSMixer, num_mixtures: int, out_dir: str | Path, seed: int = 0,
                    id_prefix: str = "eval") -> Path:
    """Freezes :func:`make_eval_set` to float wav files and a SpeechBrain csv.

    Writes ``<out_dir>/<id>/mix.wav`` and ``s1.wav`` ... ``s<S_max>.wav`` (32-bit float, so the
    frozen set reproduces the on-the-fly one sample for sample) and ``<out_dir>/<id_prefix>.csv``
    with columns ``ID, duration, mix_wav, s1_wav, ..., active_sources, source_categories,
    source_clips, gains_db`` (paths as ``$data_root/...``, lists joined with ``;``).

    Arguments
    ---------
    mixer : GASSMixer
        Manifest + scenario.
    num_mixtures : int
        Number of items.
    out_dir : str or Path
        Output folder.
    seed : int
        Seed of the set (as in :func:`make_eval_set`).
    id_prefix : str
        Item id prefix (as in :func:`make_eval_set`).

    Returns
    -------
    Path
        The csv file.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "n.wav", np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(folder / "n.wav")], [16000], [16000], [1],
    ...                            ["sfx"], ["g"]), {"duration": 0.25})
    >>> csv_path = export_eval_set(mixer, 2, folder / "frozen", seed=3)
    >>> csv_path.name, len(csv_path.read_text().splitlines())
    ('eval.csv', 3)
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sc = mixer.scenario
    slots = [f"s{k + 1}" for k in range(sc.max_sources)]
    header = ["ID", "duration", "mix_wav", *[f"{s}_wav" for s in slots], "active_sources",
              "source_categories", "source_clips", "gains_db"]
    csv_path = out_dir / f"{id_prefix}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(num_mixtures):
            mix_id = f"{id_prefix}-{i:06d}"
            m = mixer.draw(mixture_rng(seed, _EVAL_STREAM, i))
            folder = out_dir / mix_id
            folder.mkdir(exist_ok=True)
            sf.write(folder / "mix.wav", m.mix, sc.sample_rate, subtype="FLOAT")
            for k, s in enumerate(slots):
                sf.write(folder / f"{s}.wav", m.targets[:, k], sc.sample_rate, subtype="FLOAT")
            writer.writerow([
                mix_id, f"{sc.duration:.6g}", f"$data_root/{mix_id}/mix.wav",
                *[f"$data_root/{mix_id}/{s}.wav" for s in slots], m.num_sources,
                ";".join(m.categories), ";".join(mixer.manifest.ids[c] for c in m.clips),
                ";".join(f"{g:.4f}" for g in m.gains_db),
            ])
    return csv_path


class _FrozenPipeline:
    """The dynamic item of :func:`load_eval_set`: wav files back to the item contract."""

    def __call__(self, mix_wav: str, *rest: str) -> Iterator:
        *source_wavs, active, cats = rest
        yield read_audio(mix_wav)
        yield torch.stack([read_audio(p) for p in source_wavs], dim=-1)  # [T, S_max]
        yield int(active)
        yield cats.split(";")


def load_eval_set(csv_path: str | Path,
                  replacements: Mapping[str, str] | None = None) -> DynamicItemDataset:
    """Reads a frozen evaluation set written by :func:`export_eval_set`.

    Arguments
    ---------
    csv_path : str or Path
        The csv file.
    replacements : mapping, optional
        ``$name`` replacements; ``data_root`` defaults to the csv's folder.

    Returns
    -------
    DynamicItemDataset
        Same output keys and values as the on-the-fly :func:`make_eval_set`.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "n.wav", np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(folder / "n.wav")], [16000], [16000], [1],
    ...                            ["sfx"], ["g"]), {"duration": 0.25})
    >>> frozen = load_eval_set(export_eval_set(mixer, 2, folder / "frozen", seed=3))
    >>> torch.equal(frozen[1]["targets"], make_eval_set(mixer, 2, seed=3)[1]["targets"])
    True
    """
    csv_path = Path(csv_path)
    repl = {"data_root": str(csv_path.parent.resolve()), **(replacements or {})}
    dataset = DynamicItemDataset.from_csv(str(csv_path), replacements=repl)
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    slots = sorted((c for c in header if c.startswith("s") and c.endswith("_wav")),
                   key=lambda c: int(c[1:-4]))
    if "mix_wav" not in header or not slots:
        raise ValueError(f"expected mix_wav and s<k>_wav columns in {csv_path}, found {header}")
    dataset.add_dynamic_item(_FrozenPipeline().__call__,
                             takes=["mix_wav", *slots, "active_sources", "source_categories"],
                             provides=list(ITEM_KEYS[1:]))
    dataset.set_output_keys(list(ITEM_KEYS))
    return dataset


def _distributed_rank() -> int:
    """This process's DDP rank (torch.distributed when initialised, else ``$RANK``, else 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


class MixtureStream(torch.utils.data.IterableDataset):
    """Training mixtures drawn on the fly, distinct per epoch, DDP rank and dataloader worker.

    Item ``k`` of an epoch on a rank is drawn with a generator seeded from
    ``(seed, epoch, rank, k)`` and dataloader worker ``w`` of ``W`` takes the items
    ``k = w, w + W, w + 2W, ...``. The worker id thus enters every seed (as in lhotse's
    ``make_worker_init_fn``, which seeds from seed, rank and worker id), but with numpy's
    ``SeedSequence`` instead of a sum, so no two (rank, worker, item) ever share a seed; and the
    set of mixtures a rank sees in an epoch does not change with ``num_workers``.

    Arguments
    ---------
    mixer : GASSMixer
        Manifest + scenario.
    seed : int
        Base seed.
    epoch_size : int, optional
        Items per epoch and rank; None streams forever (use SpeechBrain's
        ``make_dataloader(..., looped_nominal_epoch=N)``).
    rank : int, optional
        DDP rank; by default ``torch.distributed``'s rank, else ``$RANK``, else 0.
    id_prefix : str
        Item ids are ``<id_prefix>-e<epoch>-r<rank>-<k:09d>``.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "noise.wav"
    >>> sf.write(path, np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(path)], [16000], [16000], [1], ["sfx"], ["g"]),
    ...                   {"duration": 0.25})
    >>> stream = MixtureStream(mixer, seed=1, epoch_size=3, rank=1)
    >>> [item["id"] for item in stream]
    ['train-e0-r1-000000000', 'train-e0-r1-000000001', 'train-e0-r1-000000002']
    """

    def __init__(self, mixer: GASSMixer, seed: int = 0, epoch_size: int | None = None,
                 rank: int | None = None, id_prefix: str = "train") -> None:
        super().__init__()
        if epoch_size is not None and epoch_size < 1:
            raise ValueError(f"expected epoch_size >= 1 or None (endless), got {epoch_size}")
        if rank is not None and rank < 0:
            raise ValueError(f"expected rank >= 0 or None, got {rank}")
        self.mixer = mixer
        self.seed = seed
        self.epoch_size = epoch_size
        self.rank = rank
        self.id_prefix = id_prefix
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose stream the next iteration yields.

        Arguments
        ---------
        epoch : int
            Epoch number (>= 0).
        """
        if epoch < 0:
            raise ValueError(f"expected epoch >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.epoch_size is None:
            raise TypeError("an endless MixtureStream has no length; give epoch_size or use "
                            "make_dataloader(..., looped_nominal_epoch=N)")
        return self.epoch_size

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        rank = _distributed_rank() if self.rank is None else self.rank
        k = worker
        while self.epoch_size is None or k < self.epoch_size:
            rng = mixture_rng(self.seed, _TRAIN_STREAM, self.epoch, rank, k)
            mix_id = f"{self.id_prefix}-e{self.epoch}-r{rank}-{k:09d}"
            yield self.mixer.draw(rng).to_item(mix_id)
            k += num_workers
