"""A GASS mixing scenario: which categories, how many sources, which gains (a yaml table).

:class:`Scenario` holds the keys of ``hparams/mixer/gass.yaml`` (:data:`DEFAULT_SCENARIO`): the
output rate and duration, the distribution of the number of sources, the foreground and
background categories with their weights, gain ranges in dB and the crop-level rules that
:class:`~gass_modules.dataio.mixer.GASSMixer` follows.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "hparams" / "mixer" / "gass.yaml"


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
    multi_background_prob : float
        Probability that a background source is a low-volume multi-source background: several
        clips of its category, each at its own background gain, summed into the one target slot
        and scaled together to the slot's gain. Evaluation counts the slot as one source.
    multi_background_clips : sequence of int
        ``[low, high]``: the number of clips summed in such a slot, drawn uniformly (at least 2).
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
    >>> s.num_samples, s.max_sources, s.multi_background_prob
    (32000, 4, 0.0)
    >>> Scenario(multi_background_clips=[1, 3])
    Traceback (most recent call last):
      ...
    ValueError: multi_background_clips: expected [low, high] whole numbers of clips with ...
    >>> Scenario(foreground_gain_db=[-5, 5], background_gain_db=[-3, 0])
    Traceback (most recent call last):
      ...
    ValueError: background_gain_db: the background must be lower than the foreground ...
    """

    sample_rate: int = 16000
    duration: float = 4.0
    max_sources: int = 4
    num_sources_probs: Sequence[float] = (0.25, 0.25, 0.25, 0.25)
    background_prob: float = 0.3
    multi_background_prob: float = 0.0
    multi_background_clips: Sequence[int] = (2, 3)
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
        for name in ("background_prob", "multi_background_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got "
                                 f"{getattr(self, name)!r}")
        clips = list(self.multi_background_clips)
        if len(clips) != 2 or not all(isinstance(c, (int, np.integer)) and not
                                      isinstance(c, bool) for c in clips) or not (
                2 <= clips[0] <= clips[1]):
            raise ValueError(f"multi_background_clips: expected [low, high] whole numbers of "
                             f"clips with 2 <= low <= high, got {self.multi_background_clips!r}")
        self.multi_background_clips = (int(clips[0]), int(clips[1]))
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
