"""The GASS mixer: on-the-fly mixtures of speech, music and sound events as SpeechBrain data-io.

GASS (Pons et al., ICASSP 2024) trains on mixtures of 1-4 sources drawn from a large pool of
recordings: foreground sources at a comfortable level, background sources lower. A
:class:`~gass_modules.dataio.scenario.Scenario` (a yaml table, ``hparams/mixer/gass.yaml``)
says which categories may be foreground or background, how many sources a mixture has, and the
gain ranges in dB.
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
``mix == targets.sum(-1)`` and empty slots are exactly zero. The datasets that consume them
with SpeechBrain's dataloader (evaluation sets, live or frozen to wav + csv, and the training
stream ``MixtureStream``) are in :mod:`gass_modules.dataio.mixture_sets`, and the scenario
table in :mod:`gass_modules.dataio.scenario`.

Run the mixer in dataloader workers (``num_workers >= 1``), where PyTorch uses one intra-op
thread: its resampling convolutions are small, and with several threads on a busy CPU they can
be tens of times slower than with one.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gass_modules.audio import cached_resampler
from gass_modules.dataio.manifest import Manifest, load_manifest
from gass_modules.dataio.scenario import Scenario

logger = logging.getLogger(__name__)

ITEM_KEYS = ("id", "mix", "targets", "num_sources", "categories")



# ------------------------------------------------------------------------------------ audio
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
    return cached_resampler(int(orig_freq), int(new_freq), str(waveform.device))(waveform)


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


def crop_span(frames: int, rate: int, scenario: Scenario,
              rng: np.random.Generator) -> tuple[int, int, int]:
    """The frames a random crop of a clip needs (the first half of :func:`crop_clip`): its
    ``start``, on a multiple of the rate ratio's period, and ``[first, last)`` with the
    resampler's context (none at the scenario's rate).

    Arguments
    ---------
    frames : int
        The clip's length in frames.
    rate : int
        Its sample rate in Hz.
    scenario : Scenario
        Gives the output rate and length ``T``.
    rng : numpy.random.Generator
        Source of the start (one draw when the clip is longer than the crop).

    Returns
    -------
    tuple of int
        ``(start, first, last)`` in the clip's frames.

    Example
    -------
    >>> crop_span(800, 8000, Scenario(sample_rate=8000, duration=0.2), np.random.default_rng(0))
    (0, 0, 800)
    """
    if rate == scenario.sample_rate:
        a, b, margin = 1, 1, 0
    else:
        a, b, margin = _resample_margin(rate, scenario.sample_rate)
    need = math.ceil(scenario.num_samples * a / b)  # source frames covering T output samples
    if frames < need:
        return 0, 0, frames
    start = a * int(rng.integers((frames - need) // a + 1))
    return start, max(0, start - margin), min(frames, start + need + margin)


def finish_crop(data: np.ndarray, start: int, first: int, rate: int, scenario: Scenario,
                rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A crop's decoded frames as a mixer source: mono, at the scenario's rate, placed (the
    second half of :func:`crop_clip`, after :func:`crop_span` and decoding).

    Arguments
    ---------
    data : numpy.ndarray
        ``[n, C]`` float32 frames ``first..first + n`` of the clip.
    start, first : int
        The crop's first frame and that of ``data`` (``start >= first``).
    rate : int
        The clip's sample rate in Hz.
    scenario : Scenario
        Gives the output rate and length ``T``.
    rng : numpy.random.Generator
        Source of the placement of a crop shorter than ``T``.

    Returns
    -------
    numpy.ndarray
        ``[L]`` float32 samples, ``1 <= L <= T``.
    int
        Output sample where the crop goes.

    Example
    -------
    >>> x, offset = finish_crop(np.ones((3, 2), np.float32), 0, 0, 8000, Scenario(
    ...     sample_rate=8000, duration=0.001), np.random.default_rng(0))
    >>> x.tolist(), 0 <= offset <= 5
    ([1.0, 1.0, 1.0], True)
    """
    out_len, out_rate = scenario.num_samples, scenario.sample_rate
    x = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)  # [n]
    if rate != out_rate:
        a, b, _ = _resample_margin(rate, out_rate)
        y = resample(torch.from_numpy(np.ascontiguousarray(x)), rate, out_rate)
        skip = (start - first) // a * b
        x = y.numpy()[skip:skip + out_len]
    x = x[:out_len]
    offset = int(rng.integers(out_len - len(x) + 1)) if len(x) < out_len else 0
    return np.ascontiguousarray(x, dtype=np.float32), offset


def crop_clip(source, frames: int, rate: int, scenario: Scenario,
              rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """Reads a random crop of one clip, mono, at the scenario's rate (what a mixer source is).

    The rules of :meth:`GASSMixer.read_crop`, for any file or file-like object that
    ``soundfile`` reads: :func:`crop_span`, a read of only those frames, :func:`finish_crop`.

    Arguments
    ---------
    source : str, Path or file-like
        The audio (read with ``soundfile.read(start=, frames=)``).
    frames : int
        Its length in frames.
    rate : int
        Its sample rate in Hz.
    scenario : Scenario
        Gives the output rate and length ``T``.
    rng : numpy.random.Generator
        Source of randomness (crop start, placement).

    Returns
    -------
    numpy.ndarray
        ``[L]`` float32 samples, ``1 <= L <= T``.
    int
        First frame read, in the clip's own rate.
    int
        Output sample where the crop goes.

    Example
    -------
    >>> import io
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.full(800, 0.5, dtype=np.float32), 8000, format="WAV", subtype="FLOAT")
    >>> x, start, offset = crop_clip(io.BytesIO(buf.getvalue()), 800, 8000,
    ...                              Scenario(sample_rate=8000, duration=0.2),
    ...                              np.random.default_rng(0))
    >>> x.shape, start, 0 <= offset <= 800, float(x[0])
    ((800,), 0, True, 0.5)
    """
    start, first, last = crop_span(frames, rate, scenario, rng)
    data, _ = sf.read(source, start=first, frames=last - first, dtype="float32",
                      always_2d=True)  # [n, C]
    if data.shape[0] == 0:
        raise ValueError(f"expected audio frames {first}..{last} in {source}, read none; "
                         "the manifest or shard record does not match the audio: rebuild it")
    x, offset = finish_crop(data, start, first, rate, scenario, rng)
    return x, start, offset


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
    components : list of list of int
        Manifest rows summed in each active slot: ``[clip]`` for a single source, several for
        a multi-source background (``clips`` holds the first). Empty when not recorded.

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
    components: list[list[int]] = field(default_factory=list)

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


def role_tables(scenario: Scenario, categories: Sequence[str],
                has_clips: Callable[[str], bool]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The draw tables of the scenario's roles over the categories that have clips.

    Shared by the file mixer (categories of a manifest) and the shard source (categories of a
    shard index): categories absent from the data or of zero weight are left out.

    Arguments
    ---------
    scenario : Scenario
        The mixing scenario.
    categories : sequence of str
        The data's categories; a category's code is its position here.
    has_clips : callable
        ``has_clips(name)`` is True when the data holds clips of that category.

    Returns
    -------
    dict
        ``{"foreground": (codes, cumulative weights), "background": ...}`` (no ``background``
        key when no background category has clips).

    Example
    -------
    >>> tables = role_tables(Scenario(), ("music", "speech"), lambda name: True)
    >>> tables["foreground"][0].tolist(), tables["background"][1].tolist()
    ([1, 0], [1.0])
    """
    tables = {}
    for role, table in (("foreground", scenario.foreground_categories),
                        ("background", scenario.background_categories)):
        codes, weights = [], []
        for name, weight in table.items():
            if weight > 0 and name in categories and has_clips(name):
                codes.append(list(categories).index(name))
                weights.append(weight)
        ignored = sorted(set(table) - set(categories))
        if ignored:
            logger.info("%s categories %s are not in the data: ignored", role, ignored)
        if codes:
            cum = np.cumsum(weights) / np.sum(weights)
            tables[role] = (np.asarray(codes), cum)
    if "foreground" not in tables:
        raise ValueError(
            f"none of the foreground categories {sorted(scenario.foreground_categories)}"
            f" has clips in the data (it has {list(categories)}); fix the "
            "scenario's foreground_categories or the data's category column"
        )
    return tables


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
        self._roles = role_tables(self.scenario, self.manifest.categories,
                                  lambda name: len(self.manifest.indices_of(name)) > 0)
        used = set(self.scenario.foreground_categories) | set(self.scenario.background_categories)
        unknown = sorted(set(self.manifest.categories) - used)
        if unknown:  # clips the mixer will never draw: a typo, or a category the scenario forgot
            counts = {name: len(self.manifest.indices_of(name)) for name in unknown}
            logger.warning("the manifest has categories the scenario does not use, whose clips "
                           "are never drawn: %s (clips per category); add them to the "
                           "scenario's foreground/background categories or fix the manifest's "
                           "category column", counts)
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
        return crop_clip(self.manifest.paths[clip], int(self.manifest.frames[clip]),
                         int(self.manifest.sample_rates[clip]), self.scenario, rng)

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
        components: list[list[int]] = []
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
            x, clip, start, offset, level = self._source_crop(code, rng, clips, rejected)
            x *= np.float32(10.0 ** ((sc.reference_db + gain_db - level) / 20.0))
            parts = [clip]
            if background and sc.multi_background_prob > 0 and (
                    rng.random() < sc.multi_background_prob):
                x, offset, parts = self._multi_background(x, offset, clip, code, gain_db, rng,
                                                          clips, rejected)
            targets[offset:offset + len(x), slot] = x
            mix[offset:offset + len(x)] += x  # in slot order, as targets.sum(-1) adds them
            peak = max(peak, float(x.max()), -float(x.min()))
            categories[slot] = m.categories[code]
            clips.append(clip)
            components.append(parts)
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
        return Mixture(targets, mix, n, categories, clips, roles, starts, offsets, gains, joint,
                       components)

    def _source_crop(self, code: int, rng: np.random.Generator, used: list[int],
                     rejected: set[int]) -> tuple[np.ndarray, int, int, int, float]:
        """A non-silent crop of a clip of category ``code``: ``(x, clip, start, offset, level)``.

        Silent crops are redrawn (their clips added to ``rejected``) at most ``max_retries``
        times; NaN or Inf samples are an error naming the clip.
        """
        sc, m = self.scenario, self.manifest
        for _ in range(sc.max_retries + 1):
            clip = self._choose_clip(code, rng, used, rejected)
            x, start, offset = self.read_crop(clip, rng)
            level = rms_db(x)
            if math.isnan(level):
                raise ValueError(f"clip {m.ids[clip]!r} ({m[clip].path}) holds NaN or Inf "
                                 f"samples (from frame {start}); repair the file or remove "
                                 "its row from the manifest")
            if level >= sc.silence_threshold_db and level > -math.inf:
                return x, clip, start, offset, level
            rejected.add(clip)
        raise RuntimeError(
            f"{sc.max_retries + 1} crops of category {m.categories[code]!r} were "
            f"all below silence_threshold_db={sc.silence_threshold_db} dBFS (last: "
            f"{m.ids[clip]!r} at {level:.1f} dBFS); remove silent clips from the "
            "manifest or lower the threshold"
        )

    def _multi_background(self, first: np.ndarray, offset: int, clip: int, code: int,
                          gain_db: float, rng: np.random.Generator, used: list[int],
                          rejected: set[int]) -> tuple[np.ndarray, int, list[int]]:
        """A low-volume multi-source background: ``first`` (already at ``gain_db``) and further
        clips of its category, each at its own background gain, summed, and the sum scaled to
        ``gain_db`` (one target, one source). Returns ``(x [T], 0, clips summed)``."""
        sc = self.scenario
        lo, hi = sc.multi_background_clips
        count = int(rng.integers(lo, hi + 1))
        layer = np.zeros(sc.num_samples, dtype=np.float32)  # [T]
        layer[offset:offset + len(first)] = first
        parts = [clip]
        for _ in range(count - 1):
            part_db = float(rng.uniform(*sc.background_gain_db))
            y, other, _, at, level = self._source_crop(code, rng, used + parts, rejected)
            y *= np.float32(10.0 ** ((sc.reference_db + part_db - level) / 20.0))
            layer[at:at + len(y)] += y
            parts.append(other)
        layer *= np.float32(10.0 ** ((sc.reference_db + gain_db - rms_db(layer)) / 20.0))
        return layer, 0, parts


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


__all__ = ["ITEM_KEYS", "GASSMixer", "Mixture", "crop_clip", "crop_span", "finish_crop",
           "mixture_rng", "resample", "rms_db", "role_tables"]
