"""The scorer protocol: what ``SeparationBrain`` asks of an evaluation.

At TEST, ``SeparationBrain`` separates each item and hands it to a scorer; it never looks inside.
A scorer

* ``add(item_id, mix, targets, estimates, sample_rate, *, num_sources=None, categories=())``
  scores one item (``mix [C, T]``, ``targets [C, T, S_ref]``, ``estimates [C, T, S]`` in the
  model's output order) and returns the estimates it scored, matched to the references, by
  system name (``"model"`` always; the GASS report adds ``"irm"``, its oracle);
* ``summary()`` returns the headline numbers (name to float), which the brain logs and writes to
  ``headline.json``;
* ``write(folder, title="")`` writes its files (tables, summaries, examples) and returns them.

Two scorers implement it: ``gass_modules.evaluation.report.SeparationReport`` (the GASS
evaluation: SI-SNRi by number of sources and category, beside the IRM oracle) and
``gass_modules.evaluation.benchmarks.BenchmarkScorer`` (each benchmark's own metrics). A recipe
chooses one with ``scorer: !name:<class>`` and its arguments; without it ``SeparationBrain``
builds a ``SeparationReport``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

__all__ = ["Scorer"]


@runtime_checkable
class Scorer(Protocol):
    """Scores separated items, summarises them and writes the results (module docstring).

    Example
    -------
    >>> class MeanEnergy:  # a toy scorer: the mean energy of the first estimate
    ...     def __init__(self):
    ...         self.values = []
    ...     def add(self, item_id, mix, targets, estimates, sample_rate, *, num_sources=None,
    ...             categories=()):
    ...         self.values.append(float(estimates[..., 0].pow(2).mean()))
    ...         return {"model": estimates}
    ...     def summary(self):
    ...         return {"energy": sum(self.values) / len(self.values)}
    ...     def write(self, folder, title=""):
    ...         return []
    >>> scorer = MeanEnergy()
    >>> isinstance(scorer, Scorer)
    True
    >>> _ = scorer.add("a", torch.ones(1, 4), torch.ones(1, 4, 1), torch.ones(1, 4, 1), 8000)
    >>> scorer.summary()
    {'energy': 1.0}
    """

    def add(self, item_id: str, mix: torch.Tensor, targets: torch.Tensor,
            estimates: torch.Tensor, sample_rate: int, *, num_sources: int | None = None,
            categories: Sequence[str] = ()) -> dict[str, torch.Tensor]:
        """Scores one item.

        Arguments
        ---------
        item_id : str
            The item's id.
        mix : torch.Tensor
            ``[C, T]`` mixture (``C`` channels of one recording; 1 for mono).
        targets : torch.Tensor
            ``[C, T, S_ref]`` references (empty slots all-zero).
        estimates : torch.Tensor
            ``[C, T, S]`` estimates in the model's output order.
        sample_rate : int
            Rate of the signals (Hz).
        num_sources : int, optional
            Number of non-empty reference slots (the mixer item's ``num_sources``).
        categories : sequence of str
            Category of each reference slot (``""`` for an empty one).

        Returns
        -------
        dict of str to torch.Tensor
            ``[C, T, S_ref]`` estimates matched to the references, by system (``"model"``).
        """
        ...

    def summary(self) -> dict[str, float]:
        """The headline numbers.

        Returns
        -------
        dict of str to float
            Metric name to value.
        """
        ...

    def write(self, folder: str | os.PathLike, title: str = "") -> list[Path]:
        """Writes the results into ``folder``.

        Arguments
        ---------
        folder : str or os.PathLike
            The evaluation folder (created).
        title : str
            What was evaluated (model, mode), for the summary's heading.

        Returns
        -------
        list of pathlib.Path
            The files and folders written (empty when there was nothing to write).
        """
        ...
