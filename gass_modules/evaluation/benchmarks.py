"""Scoring separated recordings as each benchmark's community reports them, one entry per benchmark.

GASS (Pons et al., ICASSP 2024) evaluates on FUSS, Libri2Mix, Divide and Remaster (DnR) and
MUSDB18. Each benchmark is one :class:`BenchmarkMetrics` entry in a registry: how one recording
is scored (a row of numbers), how the rows are summarised, and a note on the protocol. Adding a
benchmark is one :func:`register_benchmark` call; :class:`BenchmarkScorer` (the scorer the
benchmark recipes give ``SeparationBrain``, :mod:`gass_modules.evaluation.scorer`) looks it up by
name.

Metrics (from ``gass_modules.metrics`` and ``gass_modules.evaluation.benchmark_metrics``):

* FUSS (Wisdom et al., 2021, DCASE 2020 task 4 evaluation): estimates aligned to the references;
  SI-SNR without mean removal; a (reference, estimate) pair counts when the reference is active
  (not all-zero) and the estimate's power exceeds 1% (−20 dB) of the quietest active reference's;
  **1S** is the mean SI-SNR of the counted pairs of 1-source mixtures, **MSi** the mean SI-SNRi of
  the counted pairs of 2-4-source mixtures (pooled over pairs), with under/equal/over-separation
  rates;
* Libri2Mix: SI-SNRi (zero-mean SI-SNR) and SDRi (BSS Eval SDR, 512-tap filter, fast-bss-eval)
  per speaker, averaged over speakers then mixtures;
* DnR: SDR per stem (``10·log10(‖s‖² / ‖s − ŝ‖²)`` over the whole track, the "global SDR" of the
  Cinematic Demixing track of the Sound Demixing Challenge 2023) and SI-SDR per stem (the
  Cocktail Fork paper's measure), averaged over tracks;
* MUSDB18: cSDR (museval BSS Eval v4 SDR, median over 1-s frames per track, then median over
  tracks, SiSEC 2018) and uSDR (MDX 2021 utterance SDR, mean over tracks) per stem, and their
  average over the four stems.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from gass_modules import metrics
from gass_modules.evaluation import benchmark_metrics
from gass_modules.order import resolve_order

__all__ = ["BENCHMARK_METRICS", "BenchmarkMetrics", "BenchmarkScorer", "register_benchmark"]


@dataclass(frozen=True)
class BenchmarkMetrics:
    """How one benchmark scores a recording and summarises the scores.

    Arguments
    ---------
    score : callable
        ``score(scorer, mix, targets, aligned, sample_rate) -> dict | None``: one row of numbers
        for a recording (``mix [C, T]``, ``targets`` and ``aligned`` estimates ``[C, T, S]``,
        float64 on the CPU), or ``None`` to skip it. ``scorer`` is the :class:`BenchmarkScorer`
        (its ``stems`` and options).
    summarize : callable
        ``summarize(scorer) -> dict``: headline name to value from ``scorer.rows``.
    note : str
        The protocol in one line, formatted with the scorer's fields
        (e.g. ``{sdr_filter_length}``).

    Example
    -------
    >>> sorted(BENCHMARK_METRICS)
    ['dnr', 'fuss', 'librimix', 'musdb']
    """

    score: Callable[..., dict | None]
    summarize: Callable[..., dict]
    note: str


BENCHMARK_METRICS: dict[str, BenchmarkMetrics] = {}


def register_benchmark(name: str, entry: BenchmarkMetrics) -> BenchmarkMetrics:
    """Adds (or replaces) a benchmark's scoring under ``name``.

    Arguments
    ---------
    name : str
        The benchmark's name, as recipes give it in ``benchmark:``.
    entry : BenchmarkMetrics
        Its scoring.

    Returns
    -------
    BenchmarkMetrics
        ``entry``.

    Example
    -------
    >>> def score(scorer, mix, targets, aligned, rate):
    ...     return {"si_snr": float(metrics.si_snr(targets[:1], aligned[:1]).mean())}
    >>> def summarize(scorer):
    ...     return {"SI-SNR": _finite_mean([r["si_snr"] for r in scorer.rows])}
    >>> _ = register_benchmark("toy", BenchmarkMetrics(score, summarize, "mean SI-SNR"))
    >>> scorer = BenchmarkScorer("toy", ["a", "b"])
    >>> refs = torch.randn(1, 800, 2)
    >>> _ = scorer.add("m", refs.sum(-1), refs, refs.flip(-1), 8000)
    >>> scorer.summary()["SI-SNR"] > 90
    True
    >>> del BENCHMARK_METRICS["toy"]
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a benchmark needs a non-empty name, got {name!r}")
    if not isinstance(entry, BenchmarkMetrics):
        raise TypeError(f"register a BenchmarkMetrics (score, summarize, note), got "
                        f"{type(entry).__name__}")
    BENCHMARK_METRICS[name] = entry
    return entry


def _mono(x: torch.Tensor) -> torch.Tensor:
    """``[C, T, ...]`` as one ``[1, C*T, ...]`` signal (mono benchmarks stored with C = 1)."""
    return x.reshape(1, x.shape[0] * x.shape[1], *x.shape[2:])


def _finite_mean(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    vals = [v for v in values if math.isfinite(v)]
    return float(sum(vals) / len(vals)) if vals else math.nan


def _finite_median(values: Sequence[float]) -> float:
    """Median of the finite values (NaN when there are none)."""
    vals = [v for v in values if math.isfinite(v)]
    return float(statistics.median(vals)) if vals else math.nan


class BenchmarkScorer:
    """Scores separated recordings as the benchmark's community reports them.

    A scorer of :mod:`gass_modules.evaluation.scorer` (``SeparationBrain`` uses it when a
    recipe says ``scorer: !name:gass_modules.evaluation.benchmarks.BenchmarkScorer``). See the
    module docstring for each benchmark's metrics. ``add`` scores one recording and keeps a row;
    ``summary`` aggregates; ``write`` saves ``results.csv`` (one row per recording) and
    ``summary.md``.

    Arguments
    ---------
    benchmark : str
        A registered benchmark: ``fuss``, ``librimix``, ``dnr``, ``musdb`` or one added with
        :func:`register_benchmark`.
    stems : sequence of str
        Reference slot names (``s1, s2``; ``speech, music, sfx``; ...), for column names.
    order : str
        The model's output order (:mod:`gass_modules.order`): ``"aligned"`` (PIT-trained models,
        no-tuning evaluation: estimates matched to the references by the best permutation,
        ``metrics.align_to_references(..., "aligned")``) or ``"fixed"`` (stem-ordered models:
        output ``k`` is reference ``k``).
    csdr_window_seconds : float
        MUSDB cSDR frame length and hop (1 s in SiSEC 2018).
    sdr_filter_length : int
        Libri2Mix SDR distortion-filter taps (512 in BSS Eval).

    Example
    -------
    >>> scorer = BenchmarkScorer("librimix", ["s1", "s2"])
    >>> refs = torch.randn(1, 4000, 2)
    >>> aligned = scorer.add("m1", refs.sum(-1), refs, refs[..., [1, 0]] + 0.01 * torch.randn(
    ...                      1, 4000, 2), 8000)
    >>> 35 < scorer.summary()["SI-SNR"] < 45, scorer.order
    (True, 'aligned')
    """

    def __init__(self, benchmark: str, stems: Sequence[str], order: str | None = None,
                 csdr_window_seconds: float = 1.0, sdr_filter_length: int = 512) -> None:
        if benchmark not in BENCHMARK_METRICS:
            raise ValueError(f"benchmark must be one of {sorted(BENCHMARK_METRICS)} (or one "
                             f"added with register_benchmark), got {benchmark!r}")
        self.benchmark = benchmark
        self.order = resolve_order(order)
        self.stems = list(stems)
        if not self.stems:
            raise ValueError("stems must name at least one reference slot")
        self.csdr_window_seconds = float(csdr_window_seconds)
        self.sdr_filter_length = int(sdr_filter_length)
        self.rows: list[dict] = []
        self.skipped: list[str] = []

    @property
    def metrics(self) -> BenchmarkMetrics:
        """The registered scoring of ``benchmark``."""
        return BENCHMARK_METRICS[self.benchmark]

    def add(self, mix_id: str, mix: torch.Tensor, targets: torch.Tensor, estimates: torch.Tensor,
            sample_rate: int, *, num_sources: int | None = None,
            categories: Sequence[str] = ()) -> dict[str, torch.Tensor]:
        """Scores one recording and keeps its row (the scorer protocol's ``add``).

        Arguments
        ---------
        mix_id : str
            Recording id.
        mix : torch.Tensor
            ``[C, T]`` mixture.
        targets : torch.Tensor
            ``[C, T, S_ref]`` references (``S_ref = len(stems)``; empty slots all-zero).
        estimates : torch.Tensor
            ``[C, T, S_est]`` estimates in model order.
        sample_rate : int
            Rate of the signals (MUSDB cSDR frames).
        num_sources, categories
            Unused (the benchmark's references say it).

        Returns
        -------
        dict of str to torch.Tensor
            ``{"model": aligned}``, the ``[C, T, S_ref]`` estimates matched to the references
            (float64, CPU); the row of numbers is kept in ``rows`` (a recording without an
            active reference, which FUSS skips, in ``skipped``).
        """
        if mix.dim() != 2 or targets.dim() != 3 or targets.shape[:2] != mix.shape:
            raise ValueError(f"expected mix [C, T] and targets [C, T, S], got {tuple(mix.shape)} "
                             f"and {tuple(targets.shape)}")
        if targets.shape[-1] != len(self.stems):
            raise ValueError(f"expected {len(self.stems)} reference slots ({self.stems}), got "
                             f"{targets.shape[-1]}")
        targets, estimates, mix = (x.detach().double().cpu() for x in (targets, estimates, mix))
        aligned = metrics.align_to_references(targets, estimates, self.order)  # [C, T, S]
        row = self.metrics.score(self, mix, targets, aligned, sample_rate)
        if row is None:
            self.skipped.append(mix_id)
        else:
            self.rows.append({"id": mix_id, **row})
        return {"model": aligned}

    def summary(self) -> dict[str, float]:
        """The headline numbers (see the module docstring), NaN where nothing was scored.

        Returns
        -------
        dict of str to float
            Metric name to value in dB (rates as fractions, counts as numbers).
        """
        return {"recordings": float(len(self.rows)), **self.metrics.summarize(self)}

    def summary_markdown(self, title: str = "") -> str:
        """The summary as a markdown table.

        Arguments
        ---------
        title : str
            A heading line (e.g. the model and mode).

        Returns
        -------
        str
            Markdown text.
        """
        note = self.metrics.note.format(**vars(self))
        lines = [f"### {title}" if title else "### Results", "",
                 f"order: {self.order}; {note}", "",
                 "| metric | value |", "| --- | --- |"]
        for key, value in self.summary().items():
            shown = f"{value:.0f}" if key == "recordings" else (
                f"{value:.3f}" if key.endswith("separation") else f"{value:.2f}")
            lines.append(f"| {key} | {shown if math.isfinite(value) else '—'} |")
        if self.skipped:
            lines += ["", f"Skipped (all-zero references): {len(self.skipped)}"]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path, title: str = "") -> list[Path]:
        """Writes ``results.csv`` and ``summary.md`` into ``folder`` (the scorer protocol's
        ``write``).

        Arguments
        ---------
        folder : str or pathlib.Path
            Output folder (created).
        title : str
            Heading of the summary.

        Returns
        -------
        list of pathlib.Path
            The csv and the markdown file.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        csv_path = folder / "results.csv"
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns or ["id"])
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v)
                                 for k, v in row.items()})
        md_path = folder / "summary.md"
        md_path.write_text(self.summary_markdown(title))
        return [csv_path, md_path]


# ---------------------------------------------------------------------------------- FUSS
def _score_fuss(scorer, mix, targets, aligned, rate):
    refs, est, x = _mono(targets), _mono(aligned), _mono(mix)  # [1, T, S], [1, T]
    active = metrics.active_sources(refs)[0]  # [S]
    if not bool(active.any()):  # FUSS's evaluation skips all-zero references
        return None
    si = metrics.si_snr(refs, est, zero_mean=False)[0]
    sii = metrics.si_snri(refs, est, x, zero_mean=False)[0]
    active_est = benchmark_metrics.fuss_active_estimates(refs, est)[0]  # [S]
    counted = active & active_est
    row = {"num_active_refs": int(active.sum()), "num_active_seps": int(active_est.sum())}
    for k, stem in enumerate(scorer.stems):
        row[f"si_snr_{stem}"] = float(si[k]) if active[k] else math.nan
        row[f"si_snri_{stem}"] = float(sii[k]) if active[k] else math.nan
        row[f"counted_{stem}"] = bool(counted[k])
    return row


def _summarize_fuss(scorer):
    rows = scorer.rows

    def pooled(metric: str, counts: Sequence[int]) -> list[float]:
        return [r[f"{metric}_{s}"] for r in rows if r["num_active_refs"] in counts
                for s in scorer.stems if r[f"counted_{s}"]]

    out = {"1S SI-SNR": _finite_mean(pooled("si_snr", [1])),
           "MSi": _finite_mean(pooled("si_snri", [2, 3, 4]))}
    for n in (2, 3, 4):
        out[f"SI-SNRi {n} sources"] = _finite_mean(pooled("si_snri", [n]))
    for name, test in (("under", lambda a, b: a < b), ("equal", lambda a, b: a == b),
                       ("over", lambda a, b: a > b)):
        hits = [test(r["num_active_seps"], r["num_active_refs"]) for r in rows]
        out[f"{name}-separation"] = sum(hits) / len(hits) if hits else math.nan
    return out


# ------------------------------------------------------------------------------ Libri2Mix
def _score_librimix(scorer, mix, targets, aligned, rate):
    refs, est, x = _mono(targets), _mono(aligned), _mono(mix)
    taps = min(scorer.sdr_filter_length, refs.shape[1])
    values = {"si_snr": metrics.si_snr(refs, est)[0],
              "si_snri": metrics.si_snri(refs, est, x)[0],
              "sdr": metrics.sdr(refs, est, taps)[0],
              "sdri": metrics.sdri(refs, est, x, taps)[0]}
    row = {}
    for name, per_source in values.items():
        for k, stem in enumerate(scorer.stems):
            row[f"{name}_{stem}"] = float(per_source[k])
        row[name] = float(per_source.mean())
    return row


def _summarize_librimix(scorer):
    return {label: _finite_mean([r[name] for r in scorer.rows])
            for name, label in (("si_snri", "SI-SNRi"), ("sdri", "SDRi"), ("si_snr", "SI-SNR"),
                                ("sdr", "SDR"))}


# ----------------------------------------------------------------------- DnR and MUSDB18
def _score_dnr(scorer, mix, targets, aligned, rate):
    refs, est = _mono(targets), _mono(aligned)
    sdr, si_sdr = benchmark_metrics.musdb_usdr(refs, est)[0], metrics.si_snr(refs, est)[0]
    row = {}
    for k, stem in enumerate(scorer.stems):
        row[f"sdr_{stem}"] = float(sdr[k])
        row[f"si_sdr_{stem}"] = float(si_sdr[k])
    return row


def _score_musdb(scorer, mix, targets, aligned, rate):
    refs, est = targets.unsqueeze(0), aligned.unsqueeze(0)  # [1, C, T, S]
    window = max(1, round(scorer.csdr_window_seconds * rate))
    csdr = benchmark_metrics.musdb_csdr(refs, est, window=window, hop=window)[0]
    usdr = benchmark_metrics.musdb_usdr(refs, est)[0]
    row = {}
    for k, stem in enumerate(scorer.stems):
        row[f"csdr_{stem}"] = float(csdr[k])
        row[f"usdr_{stem}"] = float(usdr[k])
    return row


def _per_stem(scorer, columns: Sequence[tuple[str, str, Callable]]) -> dict[str, float]:
    """Per-stem aggregates of ``(metric, label, reduce)`` over tracks and their stem average."""
    out = {}
    for metric, label, reduce in columns:
        per_stem = [reduce([r[f"{metric}_{s}"] for r in scorer.rows]) for s in scorer.stems]
        for stem, value in zip(scorer.stems, per_stem):
            out[f"{label} {stem}"] = value
        out[f"{label} avg"] = _finite_mean(per_stem)
    return out


register_benchmark("fuss", BenchmarkMetrics(
    _score_fuss, _summarize_fuss,
    "FUSS protocol: SI-SNR without mean removal; pairs count when the estimate is above -20 dB "
    "of the quietest active reference; 1S over 1-source mixtures, MSi pooled over the pairs of "
    "2-4-source mixtures."))
register_benchmark("librimix", BenchmarkMetrics(
    _score_librimix, _summarize_librimix,
    "Mean over speakers, then mixtures; SDR with a {sdr_filter_length}-tap filter "
    "(fast-bss-eval)."))
register_benchmark("dnr", BenchmarkMetrics(
    _score_dnr,
    lambda scorer: _per_stem(scorer, (("sdr", "SDR", _finite_mean),
                                      ("si_sdr", "SI-SDR", _finite_mean))),
    "SDR = 10 log10(|s|^2 / |s - s_hat|^2) per track (SDX 2023 cinematic track), SI-SDR with "
    "mean removal; means over tracks."))
register_benchmark("musdb", BenchmarkMetrics(
    _score_musdb,
    lambda scorer: _per_stem(scorer, (("csdr", "cSDR", _finite_median),
                                      ("usdr", "uSDR", _finite_mean))),
    "cSDR: museval v4, median over 1-s frames, then median over tracks (SiSEC 2018); uSDR: MDX "
    "2021, mean over tracks."))
