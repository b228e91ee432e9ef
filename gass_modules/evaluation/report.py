"""SeparationReport: per-mixture scores of several systems, written as a CSV and a summary.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from gass_modules.evaluation.scoring import score_separation  # noqa: F401 (doctest examples)


class SeparationReport:
    """Collects per-mixture scores of one or more systems and writes the CSV and the summary.

    Systems are named (``"model"``, ``"irm"``); every mixture is added once per system with the
    scores of :func:`score_separation`. The summary breaks results down by number of sources
    (SI-SNRi over present sources; SI-SNR for 1-source mixtures, where SI-SNRi is undefined
    because the mixture *is* the source) and by category (sources of mixtures with at least 2
    sources), with over/under-separation counts and the energy of outputs matched to silent
    targets. Mixtures with non-finite estimates are counted and left out of the means.

    Arguments
    ---------
    num_slots : int
        Number of target slots ``S``.

    Example
    -------
    >>> report = SeparationReport(num_slots=2)
    >>> targets = torch.randn(1, 800, 2)
    >>> scores = score_separation(targets.sum(-1), targets, targets)
    >>> report.add("model", ["m1"], [2], [["speech", "music"]], scores)
    >>> report.rows[0]["si_snr"][0] > 60
    True
    >>> print(report.summary_markdown().splitlines()[0])
    ### By number of sources
    """

    def __init__(self, num_slots: int) -> None:
        if not isinstance(num_slots, int) or num_slots < 1:
            raise ValueError(f"num_slots must be a positive int, got {num_slots!r}")
        self.num_slots = num_slots
        self.rows: list[dict] = []
        self.systems: list[str] = []

    def add(self, system: str, ids: Sequence[str], num_sources: Sequence[int],
            categories: Sequence[Sequence[str]], scores: Mapping[str, torch.Tensor]) -> None:
        """Adds one batch of scored mixtures for ``system``.

        Arguments
        ---------
        system : str
            System name, e.g. ``"model"`` or ``"irm"``.
        ids : sequence of str
            Mixture ids (length B).
        num_sources : sequence of int
            Number of sources in each mixture.
        categories : sequence of sequence of str
            Category of each target slot ("" for empty slots), ``B`` lists of length ``S``.
        scores : Mapping
            Output of :func:`score_separation` for the batch.
        """
        size = len(ids)
        if not (len(num_sources) == len(categories) == size == scores["si_snr"].shape[0]):
            raise ValueError(f"expected {size} ids, num_sources, categories and scores rows, got "
                             f"{len(num_sources)}, {len(categories)}, {scores['si_snr'].shape[0]}")
        if scores["si_snr"].shape[1] != self.num_slots:
            raise ValueError(f"expected scores for {self.num_slots} slots, got "
                             f"{scores['si_snr'].shape[1]}")
        if system not in self.systems:
            self.systems.append(system)
        cols = {k: v.detach().cpu().tolist() for k, v in scores.items()}
        for b in range(size):
            cats = list(categories[b]) + [""] * (self.num_slots - len(categories[b]))
            present = cols["present"][b]
            silent_energy = [e for e, p in zip(cols["energy_db"][b], present) if not p]
            n_targets, n_outputs = sum(cols["active_target"][b]), sum(cols["active_output"][b])
            self.rows.append({
                "id": str(ids[b]), "system": system, "num_sources": int(num_sources[b]),
                "categories": cats[: self.num_slots], "present": present,
                "si_snr": cols["si_snr"][b], "si_snri": cols["si_snri"][b],
                "energy_db": cols["energy_db"][b], "finite": bool(cols["finite"][b]),
                "silent_energy_db": max(silent_energy) if silent_energy else math.nan,
                "active_targets": n_targets, "active_outputs": n_outputs,
                "over": n_outputs > n_targets, "under": n_outputs < n_targets,
            })

    def write_csv(self, path: str | Path) -> Path:
        """Writes one row per mixture and system.

        Columns: ``id, system, num_sources, categories`` (present ones, ``;``-joined),
        ``finite, active_targets, active_outputs, over_separated, under_separated,
        silent_output_energy_db`` (loudest output matched to a silent target, dB re mixture), then
        per slot ``k``: ``category_k, si_snr_k, si_snri_k, energy_db_k`` (empty when absent).

        Arguments
        ---------
        path : str or pathlib.Path
            Output CSV.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        slots = range(1, self.num_slots + 1)
        header = ["id", "system", "num_sources", "categories", "finite", "active_targets",
                  "active_outputs", "over_separated", "under_separated",
                  "silent_output_energy_db"]
        header += [f"{c}_{k}" for k in slots for c in ("category", "si_snr", "si_snri",
                                                         "energy_db")]
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row in self.rows:
                present_cats = [c for c, p in zip(row["categories"], row["present"]) if p]
                line = [row["id"], row["system"], row["num_sources"], ";".join(present_cats),
                        int(row["finite"]), row["active_targets"], row["active_outputs"],
                        int(row["over"]), int(row["under"]), _fmt(row["silent_energy_db"])]
                for s in range(self.num_slots):
                    line += [row["categories"][s], _fmt(row["si_snr"][s]),
                             _fmt(row["si_snri"][s]), _fmt(row["energy_db"][s])]
                writer.writerow(line)
        return path

    def means(self, system: str, num_sources: int | None = None,
              category: str | None = None) -> dict[str, float]:
        """Mean scores of ``system`` over a subset of mixtures / sources.

        Arguments
        ---------
        system : str
            System name.
        num_sources : int, optional
            Keep mixtures with this many sources (all when None).
        category : str, optional
            Keep sources of this category, from mixtures with >= 2 sources (all when None).

        Returns
        -------
        dict
            ``si_snr``, ``si_snri`` (means over present sources, NaN when there are none),
            ``sources``, ``mixtures``, ``nonfinite``, ``over``, ``under`` (counts), and
            ``silent_energy_db`` (mean over mixtures with silent slots).

        Example
        -------
        >>> report = SeparationReport(num_slots=1)
        >>> targets = torch.randn(2, 400, 1)
        >>> report.add("m", ["a", "b"], [1, 1], [["speech"], ["sfx"]],
        ...            score_separation(targets.sum(-1), targets, targets))
        >>> report.means("m", num_sources=1)["mixtures"]
        2
        """
        rows = [r for r in self.rows if r["system"] == system]
        if num_sources is not None:
            rows = [r for r in rows if r["num_sources"] == num_sources]
        if category is not None:
            rows = [r for r in rows if r["num_sources"] >= 2]
        good = [r for r in rows if r["finite"]]
        snr, snri = [], []
        for r in good:
            for s in range(self.num_slots):
                if r["present"][s] and (category is None or r["categories"][s] == category):
                    snr.append(r["si_snr"][s])
                    snri.append(r["si_snri"][s])
        silent = [r["silent_energy_db"] for r in good if not math.isnan(r["silent_energy_db"])]
        return {
            "si_snr": _mean(snr), "si_snri": _mean(snri), "sources": len(snr),
            "mixtures": len(rows), "nonfinite": len(rows) - len(good),
            "over": sum(r["over"] for r in good), "under": sum(r["under"] for r in good),
            "silent_energy_db": _mean([max(s, -120.0) for s in silent]),
        }

    def summary_markdown(self, model: str = "model", oracle: str = "irm") -> str:
        """The summary tables (markdown): by number of sources, then by category.

        Arguments
        ---------
        model : str
            The system whose over/under-separation counts are shown.
        oracle : str
            The reference system shown beside it (columns omitted when absent).

        Returns
        -------
        str
            Markdown text.
        """
        systems = [s for s in (model, oracle) if s in self.systems]
        names = {model: "model", oracle: "IRM"}
        counts = sorted({r["num_sources"] for r in self.rows})
        cols = ["sources", "mixtures"]
        cols += [f"SI-SNRi {names[s]}" for s in systems]
        cols += [f"SI-SNR {names[s]}" for s in systems]
        cols += ["over-sep.", "under-sep.", "silent-output energy (dB)"]
        lines = ["### By number of sources", "", _md_row(cols), _md_row(["---"] * len(cols))]
        for n in counts:
            stats = {s: self.means(s, num_sources=n) for s in systems}
            main = stats[systems[0]]
            cells = [str(n), str(main["mixtures"])]
            cells += ["—" if n == 1 else _fmt(stats[s]["si_snri"], 2) for s in systems]
            cells += [_fmt(stats[s]["si_snr"], 2) for s in systems]
            good = main["mixtures"] - main["nonfinite"]
            cells += [f"{main['over']}/{good}", f"{main['under']}/{good}",
                      _fmt(main["silent_energy_db"], 1) or "—"]
            lines.append(_md_row(cells))
        nonfinite = {s: self.means(s)["nonfinite"] for s in systems}
        categories = sorted({c for r in self.rows if r["num_sources"] >= 2
                             for c, p in zip(r["categories"], r["present"]) if p and c})
        lines += ["", "SI-SNRi over present sources (dB); 1-source mixtures show SI-SNR only "
                  "(the mixture is the source). Over/under-sep.: more/fewer outputs than targets "
                  "above the activity threshold; silent-output energy: loudest output matched to "
                  "an all-zero target, dB re mixture."]
        if any(nonfinite.values()):
            lines.append(f"Mixtures with non-finite estimates (left out): {nonfinite}.")
        if categories:
            cols = ["category", "sources"] + [f"SI-SNRi {names[s]}" for s in systems]
            cols += [f"SI-SNR {names[s]}" for s in systems]
            lines += ["", "### By source category (mixtures with 2+ sources)", "", _md_row(cols),
                      _md_row(["---"] * len(cols))]
            for cat in [*categories, None]:
                stats = {s: self.means(s, category=cat) if cat else self._multi(s)
                         for s in systems}
                cells = [cat or "**all**", str(stats[systems[0]]["sources"])]
                cells += [_fmt(stats[s]["si_snri"], 2) for s in systems]
                cells += [_fmt(stats[s]["si_snr"], 2) for s in systems]
                lines.append(_md_row(cells))
        pairs = {s: self.pair_means(s) for s in systems}
        if pairs[systems[0]]:
            cols = ["pair (2-source mixtures)", "mixtures"]
            cols += [f"SI-SNRi {names[s]}" for s in systems]
            if len(systems) == 2:
                cols.append("% of IRM")
            lines += ["", "### By pair type (2-source mixtures; music stems as music)", "",
                      _md_row(cols), _md_row(["---"] * len(cols))]
            for pair, main in pairs[systems[0]].items():
                vals = [pairs[s].get(pair, {}).get("si_snri", math.nan) for s in systems]
                cells = [pair, str(main["mixtures"])] + [_fmt(v, 2) for v in vals]
                if len(systems) == 2:
                    ratio = 100 * vals[0] / vals[1] if vals[1] and vals[1] > 0 else math.nan
                    cells.append(_fmt(ratio, 0))
                lines.append(_md_row(cells))
        return "\n".join(lines) + "\n"

    def pair_means(self, system: str) -> dict[str, dict[str, float]]:
        """Mean SI-SNRi of ``system`` on 2-source mixtures, by pair type.

        A pair type names the two categories in sorted order, music stems folded into
        ``music`` (``music+speech``, ``speech+speech``, ...): how well a general separator splits
        two sources of one kind (two speakers) against two of different kinds.

        Arguments
        ---------
        system : str
            System name.

        Returns
        -------
        dict
            ``{pair: {"si_snri": mean over both sources, "mixtures": count}}``, pairs sorted.

        Example
        -------
        >>> report = SeparationReport(num_slots=2)
        >>> targets = torch.randn(1, 800, 2)
        >>> estimates = targets + 0.1 * targets.flip(-1)  # a little leakage
        >>> scores = score_separation(targets.sum(-1), targets, estimates)
        >>> report.add("model", ["m1"], [2], [["speech", "music_bass"]], scores)
        >>> list(report.pair_means("model")), report.pair_means("model")["music+speech"]["mixtures"]
        (['music+speech'], 1)
        """
        by_pair: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        for r in self.rows:
            if r["system"] != system or r["num_sources"] != 2 or not r["finite"]:
                continue
            cats = [c for c, p in zip(r["categories"], r["present"]) if p]
            if len(cats) != 2:
                continue
            pair = "+".join(sorted("music" if c.startswith("music") else c for c in cats))
            counts[pair] = counts.get(pair, 0) + 1
            by_pair.setdefault(pair, []).extend(
                v for v, p in zip(r["si_snri"], r["present"]) if p)
        return {k: {"si_snri": _mean(by_pair[k]), "mixtures": counts[k]} for k in sorted(counts)}

    def _multi(self, system: str) -> dict[str, float]:
        """Means over every source of the mixtures with at least 2 sources."""
        counts = sorted({r["num_sources"] for r in self.rows if r["num_sources"] >= 2})
        parts = [self.means(system, num_sources=n) for n in counts]
        snr, snri, total = 0.0, 0.0, 0
        for p in parts:
            if p["sources"]:
                snr += p["si_snr"] * p["sources"]
                snri += p["si_snri"] * p["sources"]
                total += p["sources"]
        if not total:
            return {"si_snr": math.nan, "si_snri": math.nan, "sources": 0}
        return {"si_snr": snr / total, "si_snri": snri / total, "sources": total}


def _mean(values: Sequence[float]) -> float:
    """Mean of the finite values, NaN when there are none."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def _fmt(value: float, digits: int = 3) -> str:
    """A number for a table ("" for NaN / None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def _md_row(cells: Sequence[str]) -> str:
    """One markdown table row."""
    return "| " + " | ".join(cells) + " |"


__all__ = ["SeparationReport"]
