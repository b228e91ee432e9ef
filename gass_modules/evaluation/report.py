"""SeparationReport: the GASS evaluation's scorer (per-mixture scores of the model and the IRM
oracle, written as a CSV, a summary, example audio and figures).

It implements the scorer protocol of :mod:`gass_modules.evaluation.scorer`, which
``SeparationBrain`` uses at TEST.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gass_modules import metrics
from gass_modules.evaluation.plots import plot_separation
from gass_modules.evaluation.scoring import score_separation

logger = logging.getLogger(__name__)


class SeparationReport:
    """Collects per-mixture scores of one or more systems and writes the CSV and the summary.

    As a scorer (:mod:`gass_modules.evaluation.scorer`), :meth:`add` aligns the model's
    estimates to the references as the FUSS evaluation does (``metrics.align_estimates``: best
    summed SI-SNR over the present references; leftover outputs go to the silent slots), runs the
    ``oracle`` beside it and scores both (:func:`score_separation`); :meth:`write` writes
    ``per_mixture.csv``, ``summary.md`` and, for the first mixtures, ``audio/<id>/*.wav`` and
    ``figures/<id>.png``.

    Systems are named (``"model"``, ``"irm"``); every mixture is added once per system with the
    scores of :func:`score_separation` (:meth:`add_scores`). The summary breaks results down by
    number of sources (SI-SNRi over present sources; SI-SNR for 1-source mixtures, where SI-SNRi
    is undefined because the mixture *is* the source) and by category (sources of mixtures with
    at least 2 sources), with over/under-separation counts and the energy of outputs matched to
    silent targets. Mixtures with non-finite estimates are counted and left out of the means.

    Arguments
    ---------
    num_slots : int
        Number of target slots ``S``.
    oracle : callable, optional
        ``oracle(mix [B, T], targets [B, T, S]) -> [B, T, S]``, scored as system ``"irm"``
        (e.g. ``gass_modules.evaluation.oracle.IRMOracle``).
    activity_db : float
        Activity threshold of :func:`score_separation` (dB relative to the mixture).
    save_audio : int
        Mixtures whose audio (mixture, references, model estimates) :meth:`write` saves.
    figures : int
        Mixtures whose spectrogram figure :meth:`write` saves.

    Example
    -------
    >>> report = SeparationReport(num_slots=2)
    >>> targets = torch.randn(1, 800, 2)
    >>> scores = score_separation(targets.sum(-1), targets, targets)
    >>> report.add_scores("model", ["m1"], [2], [["speech", "music"]], scores)
    >>> report.rows[0]["si_snr"][0] > 60
    True
    >>> print(report.summary_markdown().splitlines()[0])
    ### By number of sources
    >>> scorer = SeparationReport(num_slots=2)  # as SeparationBrain uses it
    >>> aligned = scorer.add("m2", targets.sum(-1), targets, targets.flip(-1), 8000,
    ...                      num_sources=2, categories=["speech", "music"])
    >>> torch.equal(aligned["model"], targets), scorer.summary()["model_si_snri_2src"] > 60
    (True, True)
    """

    def __init__(self, num_slots: int,
                 oracle: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 activity_db: float = -20.0, save_audio: int = 0, figures: int = 0) -> None:
        if not isinstance(num_slots, int) or num_slots < 1:
            raise ValueError(f"num_slots must be a positive int, got {num_slots!r}")
        for name, value in (("save_audio", save_audio), ("figures", figures)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a number of mixtures (int >= 0), got {value!r}")
        self.num_slots = num_slots
        self.oracle = oracle
        self.activity_db = float(activity_db)
        self.save_audio = save_audio
        self.figures = figures
        self.rows: list[dict] = []
        self.systems: list[str] = []
        self.examples: list[dict] = []  # the first mixtures, for audio and figures

    def add(self, item_id: str, mix: torch.Tensor, targets: torch.Tensor,
            estimates: torch.Tensor, sample_rate: int, *, num_sources: int | None = None,
            categories: Sequence[str] = ()) -> dict[str, torch.Tensor]:
        """Aligns, scores and keeps one mixture (the scorer protocol's ``add``).

        Channels (``C > 1``) are scored as one signal, one after the other.

        Arguments
        ---------
        item_id : str
            Mixture id.
        mix : torch.Tensor
            ``[C, T]`` mixture.
        targets : torch.Tensor
            ``[C, T, S]`` references.
        estimates : torch.Tensor
            ``[C, T, S]`` estimates in the model's order.
        sample_rate : int
            Rate of the signals (for the examples).
        num_sources : int, optional
            Non-empty reference slots (default: the present ones).
        categories : sequence of str
            Category of each slot.

        Returns
        -------
        dict of str to torch.Tensor
            ``[C, T, S]`` estimates matched to the references: ``"model"`` and, with an oracle,
            ``"irm"``.
        """
        if mix.dim() != 2 or targets.dim() != 3 or targets.shape[:2] != mix.shape:
            raise ValueError(f"expected mix [C, T] and targets [C, T, S], got "
                             f"{tuple(mix.shape)} and {tuple(targets.shape)}")
        if estimates.shape != targets.shape:
            raise ValueError(f"the separator returned {tuple(estimates.shape)} but the targets "
                             f"are {tuple(targets.shape)}; set the model card's num_sources to "
                             "the mixer's number of target slots (GASS: 4)")
        channels, length, slots = targets.shape
        x = mix.reshape(1, channels * length).float()  # channels one after the other
        ref = targets.reshape(1, channels * length, slots).float()
        est = estimates.reshape(1, channels * length, slots).float()
        systems = {"model": metrics.align_estimates(ref, est)
                   if bool(torch.isfinite(est).all()) else est}
        if self.oracle is not None:
            systems["irm"] = self.oracle(x, ref)
        if num_sources is None:
            num_sources = int(metrics.active_sources(ref).sum())
        for name, aligned in systems.items():
            self.add_scores(name, [item_id], [int(num_sources)], [list(categories)],
                            score_separation(x, ref, aligned, activity_db=self.activity_db))
        if len(self.examples) < max(self.save_audio, self.figures):
            self.examples.append({"id": str(item_id), "mix": x[0].cpu(), "targets": ref[0].cpu(),
                                  "systems": {k: v[0].detach().cpu() for k, v in systems.items()},
                                  "sample_rate": int(sample_rate)})
        return {k: v.reshape(channels, length, slots) for k, v in systems.items()}

    def summary(self) -> dict[str, float]:
        """The headline numbers: per system, the mean SI-SNRi by number of sources (2+) and by
        pair type (the scorer protocol's ``summary``).

        Returns
        -------
        dict of str to float
            ``<system>_si_snri_<n>src`` and ``<system>_si_snri_<pair>`` (dB).
        """
        stats = {}
        for system in self.systems:
            for n in sorted({r["num_sources"] for r in self.rows}):
                if n >= 2:
                    stats[f"{system}_si_snri_{n}src"] = self.means(system, n)["si_snri"]
            for pair, v in self.pair_means(system).items():
                stats[f"{system}_si_snri_{pair}"] = v["si_snri"]
        return stats

    def write(self, folder: str | os.PathLike, title: str = "") -> list[Path]:
        """Writes ``per_mixture.csv``, ``summary.md`` (``title``, then the tables) and the
        examples' ``audio/<id>/`` and ``figures/<id>.png`` (the scorer protocol's ``write``).

        Arguments
        ---------
        folder : str or os.PathLike
            The evaluation folder (created).
        title : str
            The summary's first paragraph (the model and its test loss).

        Returns
        -------
        list of pathlib.Path
            What was written; nothing (and a warning) when no mixture was added.
        """
        if not self.rows:
            logger.warning("evaluation saw no mixtures: no report written")
            return []
        folder = Path(folder)
        written = [self.write_csv(folder / "per_mixture.csv"), folder / "summary.md"]
        text = self.summary_markdown()
        written[1].write_text(f"{title}\n\n{text}" if title else text)
        names = {"model": "model", "irm": "IRM"}
        for index, example in enumerate(self.examples):
            name, rate = _safe_name(example["id"]), example["sample_rate"]
            if index < self.save_audio:
                written.append(save_example_audio(folder / "audio" / name, example["mix"],
                                                  example["targets"],
                                                  example["systems"]["model"], rate))
            if index < self.figures:
                written.append(plot_separation(
                    folder / "figures" / f"{name}.png", example["mix"], example["targets"],
                    {names.get(k, k): v for k, v in example["systems"].items()}, rate,
                    title=example["id"]))
        return written

    def add_scores(self, system: str, ids: Sequence[str], num_sources: Sequence[int],
                   categories: Sequence[Sequence[str]], scores: Mapping[str, torch.Tensor]
                   ) -> None:
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
        >>> report.add_scores("m", ["a", "b"], [1, 1], [["speech"], ["sfx"]],
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
        >>> report.add_scores("model", ["m1"], [2], [["speech", "music_bass"]], scores)
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


def _safe_name(text: str) -> str:
    """A file-system-safe version of a mixture id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "mixture"


def save_example_audio(folder: str | os.PathLike, mix: torch.Tensor, targets: torch.Tensor,
                       estimates: torch.Tensor, sample_rate: int) -> Path:
    """Writes ``mix.wav``, ``ref_<k>.wav`` and ``est_<k>.wav`` into ``folder``.

    Files are 32-bit float WAV (no clipping, levels as estimated), written with soundfile.

    Arguments
    ---------
    folder : str or os.PathLike
        Output folder (created), e.g. ``eval/audio/<id>``.
    mix : torch.Tensor
        ``[T]`` mixture.
    targets : torch.Tensor
        ``[T, S]`` references.
    estimates : torch.Tensor
        ``[T, S]`` estimates aligned with the references.
    sample_rate : int
        Rate of the signals (Hz).

    Returns
    -------
    pathlib.Path
        The folder written.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> refs = torch.randn(100, 2)
    >>> folder = save_example_audio(tmp / "m", refs.sum(-1), refs, refs, 8000)
    >>> sorted(p.name for p in folder.iterdir())
    ['est_1.wav', 'est_2.wav', 'mix.wav', 'ref_1.wav', 'ref_2.wav']
    """
    if mix.dim() != 1 or targets.dim() != 2 or estimates.shape != targets.shape:
        raise ValueError(f"expected mix [T], targets and estimates [T, S], got "
                         f"{tuple(mix.shape)}, {tuple(targets.shape)}, "
                         f"{tuple(estimates.shape)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "mix.wav", mix.cpu().numpy(), sample_rate, subtype="FLOAT")
    for s in range(targets.shape[1]):
        sf.write(folder / f"ref_{s + 1}.wav", targets[:, s].cpu().numpy(), sample_rate,
                 subtype="FLOAT")
        sf.write(folder / f"est_{s + 1}.wav", estimates[:, s].cpu().numpy(), sample_rate,
                 subtype="FLOAT")
    return folder


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


__all__ = ["SeparationReport", "save_example_audio"]
