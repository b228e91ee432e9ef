"""Fine-tuning GASS models on benchmarks, and scoring them as each benchmark's community does.

GASS (Pons et al., ICASSP 2024) evaluates its pre-trained separators out of distribution ("no
tuning") and fine-tunes them on FUSS, Libri2Mix, Divide and Remaster (DnR) and MUSDB18. The four
recipes under ``recipes/`` share what is here:

* :func:`transfer_from_checkpoint`: starts a separator from a GASS checkpoint with SpeechBrain's
  ``Pretrainer`` and a custom load hook, :func:`load_matching_parameters`, that loads every
  tensor whose name and shape match and leaves the others as initialised (an output layer sized
  for 4 sources when the benchmark has 2, band-split layers of a BSRNN built for another sample
  rate, ...), and logs which parameters were not loaded;
* :func:`fixed_order_log_mse`: the thresholded log-MSE without permutation, for benchmarks with
  labelled stems (DnR: speech, music, sfx; MUSDB18: drums, bass, other, vocals) where output
  ``k`` must be stem ``k``;
* :class:`BenchmarkScorer`: the metrics each community reports, with the references' alignment
  (``oracle``: the permutation that maximises SI-SNR over the active references, as FUSS and
  Libri2Mix evaluate PIT models; ``fixed``: outputs in stem order);
* :class:`BenchmarkBrain`: ``SeparationBrain`` whose TEST stage separates whole recordings chunk
  by chunk with ``gass_modules.inference.GASSSeparator`` (overlap-add, bounded memory, resampling
  when the model runs at another rate) and scores them with a :class:`BenchmarkScorer`;
* :func:`run_benchmark`: what a recipe's ``train.py`` does after data preparation: train from
  scratch, fine-tune from ``pretrained_path``, or evaluate a GASS model folder as is
  (``no_tuning``).

Metrics (all from ``gass_modules.metrics``):

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
import logging
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.fetching import FetchConfig
from speechbrain.utils.parameter_transfer import Pretrainer

from gass_modules import metrics
from gass_modules.brain import SeparationBrain
from gass_modules.dataio.benchmarks import load_benchmark_set
from gass_modules.inference import CHECKPOINT_FILE, HPARAMS_FILE, GASSSeparator, save_model_folder
from gass_modules.losses import pairwise_log_mse

logger = logging.getLogger(__name__)

BENCHMARKS = ("fuss", "librimix", "dnr", "musdb")
ALIGNMENTS = ("oracle", "fixed")
_PARAM_FILE = CHECKPOINT_FILE  # what SpeechBrain's Checkpointer writes for a "separator"


# ------------------------------------------------------------------------------ transfer
@dataclass
class TransferReport:
    """What :func:`load_matching_parameters` did with a checkpoint.

    Arguments
    ---------
    source : pathlib.Path
        The checkpoint file.
    loaded : list of str
        State-dict entries copied from the checkpoint.
    reinitialised : dict of str to str
        Entries of the model left as initialised, with the reason.
    unused : list of str
        Checkpoint entries the model has no place for.
    loaded_numel, total_numel : int
        Values loaded and values in the model's state dict.
    source_sample_rate, source_num_sources : int, optional
        The checkpoint model's rate and outputs, when its model folder says so.

    Example
    -------
    >>> report = TransferReport(Path("x.ckpt"), ["a"], {"b": "not in the checkpoint"}, [], 6, 8)
    >>> print(report.format())
    loaded 1 of 2 tensors (75.0% of the values) from x.ckpt
    not loaded (left as initialised): b: not in the checkpoint
    """

    source: Path
    loaded: list[str]
    reinitialised: dict[str, str]
    unused: list[str]
    loaded_numel: int = 0
    total_numel: int = 0
    source_sample_rate: int | None = None
    source_num_sources: int | None = None

    def format(self) -> str:
        """A human-readable account (also written to ``<output_folder>/transfer.txt``).

        Returns
        -------
        str
            The report.
        """
        share = 100.0 * self.loaded_numel / max(1, self.total_numel)
        lines = [f"loaded {len(self.loaded)} of {len(self.loaded) + len(self.reinitialised)} "
                 f"tensors ({share:.1f}% of the values) from {self.source}"]
        if self.source_sample_rate or self.source_num_sources:
            lines.append(f"source model: {self.source_num_sources} sources at "
                         f"{self.source_sample_rate} Hz")
        if self.reinitialised:
            lines.append("not loaded (left as initialised): " + "; ".join(
                f"{k}: {v}" for k, v in self.reinitialised.items()))
        if self.unused:
            lines.append(f"checkpoint entries not used: {', '.join(self.unused)}")
        return "\n".join(lines)


def find_separator_checkpoint(source: str | Path) -> Path:
    """The separator parameter file of a GASS run or model folder.

    Accepts a ``separator.ckpt`` file, a model folder (``save_model_folder``) or a SpeechBrain
    checkpoint folder (``CKPT+...``) holding one, or a ``save`` folder of checkpoints (the one
    with the lowest ``loss`` meta is taken, else the most recent).

    Arguments
    ---------
    source : str or pathlib.Path
        Where the checkpoint is.

    Returns
    -------
    pathlib.Path
        The ``.ckpt`` file.

    Example
    -------
    >>> find_separator_checkpoint("no/such/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no GASS checkpoint at no/such/run: ...
    """
    path = Path(source)
    expected = (f"expected a {_PARAM_FILE} file, a model folder ({HPARAMS_FILE} + "
                f"{CHECKPOINT_FILE}, written by save_model_folder), a checkpoint folder "
                f"CKPT+<date>/ holding {_PARAM_FILE}, or a save/ folder of such checkpoints")
    if path.is_file():
        return path
    if path.is_dir():
        if (path / _PARAM_FILE).is_file():
            return path / _PARAM_FILE
        checkpointer = Checkpointer(path)
        candidates = [c for c in checkpointer.list_checkpoints()
                      if (c.path / _PARAM_FILE).is_file()]
        if candidates:
            with_loss = [c for c in candidates if "loss" in c.meta]
            best = (min(with_loss, key=lambda c: c.meta["loss"]) if with_loss
                    else max(candidates, key=lambda c: c.meta.get("unixtime", 0)))
            return best.path / _PARAM_FILE
        found = sorted(p.name for p in path.iterdir())[:8]
        raise FileNotFoundError(f"no GASS checkpoint in {path} (found {found}); {expected}")
    raise FileNotFoundError(f"no GASS checkpoint at {path}: {expected}")


def _card_value(folder: Path, key: str) -> int | None:
    """An integer top-level key of the hyperparams.yaml next to a checkpoint (None if unknown).

    Looks in the checkpoint's folder (a model folder), then two levels up (a ``CKPT+`` folder in
    ``<output_folder>/save``: SpeechBrain saves the run's resolved ``hyperparams.yaml`` in the
    output folder).
    """
    for candidate in (folder, folder.parent, folder.parent.parent):
        path = candidate / HPARAMS_FILE
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            match = re.search(rf"^{key}:\s*(\d+)\s*(#.*)?$", text, re.MULTILINE)
            return int(match.group(1)) if match else None
    return None


def load_matching_parameters(module: torch.nn.Module, path: str | Path) -> TransferReport:
    """Loads every checkpoint tensor whose name and shape match ``module``'s; keeps the rest.

    Entries missing from the checkpoint or shaped differently (e.g. an output layer for another
    number of sources) stay as initialised and are logged with a warning. A ``module.`` prefix
    (a checkpoint of a DDP-wrapped model) is removed first.

    Arguments
    ---------
    module : torch.nn.Module
        The freshly built separator.
    path : str or pathlib.Path
        A ``state_dict`` saved with ``torch.save`` (read with ``weights_only=True``).

    Returns
    -------
    TransferReport
        What was loaded and what was not.

    Raises
    ------
    ValueError
        When the file is not a readable state dict, or when no entry matches (another
        architecture: fine-tuning would silently start from scratch).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> source = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Linear(8, 4))
    >>> torch.save(source.state_dict(), tmp / "separator.ckpt")
    >>> target = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Linear(8, 2))
    >>> report = load_matching_parameters(target, tmp / "separator.ckpt")
    >>> report.loaded, sorted(report.reinitialised)
    (['0.weight', '0.bias'], ['1.bias', '1.weight'])
    >>> torch.equal(target[0].weight, source[0].weight)
    True
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        raise ValueError(f"cannot read the checkpoint {path} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); expected a "
                         "state_dict saved by torch.save") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state_dict of "
                         "tensors (a separator.ckpt of a GASS run or model folder)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    own = module.state_dict()
    loaded, skipped = {}, {}
    for name, tensor in own.items():
        if name not in state:
            skipped[name] = "not in the checkpoint"
        elif state[name].shape != tensor.shape:
            skipped[name] = (f"shape {tuple(state[name].shape)} in the checkpoint, "
                             f"{tuple(tensor.shape)} here")
        else:
            loaded[name] = state[name]
    if not loaded:
        raise ValueError(f"no parameter of the {type(module).__name__} matches {path} by name "
                         f"and shape (model: {list(own)[:3]}..., checkpoint: "
                         f"{list(state)[:3]}...); build the recipe with the model card the "
                         "checkpoint was trained with (same separator class and sizes)")
    module.load_state_dict(loaded, strict=False)
    report = TransferReport(
        source=path, loaded=list(loaded), reinitialised=skipped,
        unused=[k for k in state if k not in own],
        loaded_numel=sum(v.numel() for v in loaded.values()),
        total_numel=sum(v.numel() for v in own.values()),
        source_sample_rate=_card_value(path.parent, "sample_rate"),
        source_num_sources=_card_value(path.parent, "num_sources"))
    if skipped or report.unused:
        logger.warning(report.format())
    else:
        logger.info(report.format())
    return report


class _RecordingHook:
    """A Pretrainer load hook that keeps the :class:`TransferReport`."""

    def __init__(self) -> None:
        self.report: TransferReport | None = None

    def __call__(self, module: torch.nn.Module, path: str | Path) -> None:
        self.report = load_matching_parameters(module, path)


def transfer_from_checkpoint(separator: torch.nn.Module, source: str | Path,
                             collect_in: str | Path | None = None) -> TransferReport:
    """Starts ``separator`` from a GASS checkpoint through SpeechBrain's ``Pretrainer``.

    The checkpoint is located with :func:`find_separator_checkpoint`, collected by the
    ``Pretrainer`` (a symlink in ``collect_in``; never a download) and loaded with
    :func:`load_matching_parameters` as the custom hook: what matches is loaded, the rest (an
    output layer for another number of sources, layers that depend on the sample rate) stays as
    initialised and is logged. When the source model's rate is known (a model folder) and
    differs from the separator's, a warning says that the learned filters now run at another
    rate.

    Arguments
    ---------
    separator : torch.nn.Module
        The freshly built separator (the recipe's model card with the benchmark's
        ``num_sources`` and ``sample_rate``).
    source : str or pathlib.Path
        The GASS checkpoint: a model folder, a ``CKPT+`` folder, a ``save`` folder or a
        ``separator.ckpt`` file.
    collect_in : str or pathlib.Path, optional
        Where the Pretrainer links the file (SpeechBrain's ``collect_in``).

    Returns
    -------
    TransferReport
        What was loaded and what was not.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> gass = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 4))  # 4 outputs
    >>> torch.save(gass.state_dict(), tmp / "separator.ckpt")
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))  # 2 outputs
    >>> report = transfer_from_checkpoint(model, tmp, collect_in=tmp / "pretrained")
    >>> report.loaded, list(report.reinitialised)
    (['0.weight', '0.bias'], ['1.weight', '1.bias'])
    >>> (tmp / "pretrained" / "separator.ckpt").is_symlink()
    True
    """
    path = find_separator_checkpoint(source).resolve()
    hook = _RecordingHook()
    pretrainer = Pretrainer(collect_in=collect_in, loadables={"separator": separator},
                            paths={"separator": str(path)}, custom_hooks={"separator": hook})
    pretrainer.collect_files(fetch_config=FetchConfig(overwrite=True, allow_network=False))
    pretrainer.load_collected()
    report = hook.report
    if report is None:  # the hook always runs for a loadable; keep the contract explicit
        raise RuntimeError(f"the Pretrainer did not load {path}")
    report.source = path
    report.source_sample_rate = _card_value(path.parent, "sample_rate")
    report.source_num_sources = _card_value(path.parent, "num_sources")
    rate = getattr(separator, "sample_rate", None)
    if report.source_sample_rate and rate and report.source_sample_rate != rate:
        logger.warning(f"fine-tuning a model trained at {report.source_sample_rate} Hz at "
                       f"{rate} Hz: filters keep their length in samples, so they span "
                       f"{report.source_sample_rate / rate:.2f}x the time they were learned for")
    return report


# ------------------------------------------------------------------------------ loss
def fixed_order_log_mse(targets: torch.Tensor, estimates: torch.Tensor,
                        mixtures: torch.Tensor | None = None, snr_max: float = 30.0,
                        zero_snr_max: float = 20.0) -> torch.Tensor:
    """The thresholded log-MSE of output ``k`` against target ``k`` (no permutation).

    The diagonal of ``gass_modules.losses.pairwise_log_mse``, averaged over sources: the loss for
    benchmarks whose outputs are labelled stems.

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references, in stem order.
    estimates : torch.Tensor
        ``[B, T, S]`` estimates, output ``k`` for stem ``k``.
    mixtures : torch.Tensor, optional
        ``[B, T]`` mixtures (reference level of the all-zero-target term).
    snr_max : float
        SNR (dB) above which an active target's loss saturates.
    zero_snr_max : float
        Level (dB under the mixture) above which silent outputs are penalised.

    Returns
    -------
    torch.Tensor
        ``[B]`` loss per mixture.

    Example
    -------
    >>> targets = torch.randn(2, 800, 3)
    >>> swapped = targets[..., [1, 0, 2]]
    >>> bool(fixed_order_log_mse(targets, swapped).mean() > fixed_order_log_mse(targets,
    ...      targets).mean() + 10)
    True
    """
    matrix = pairwise_log_mse(targets, estimates, mixtures, snr_max=snr_max,
                              zero_snr_max=zero_snr_max)  # [B, S, S]
    return matrix.diagonal(dim1=1, dim2=2).mean(dim=-1)  # [B]


# ------------------------------------------------------------------------------ scoring
def align_to_references(targets: torch.Tensor, estimates: torch.Tensor,
                        alignment: str = "oracle") -> torch.Tensor:
    """The estimates matched to the references, as many as there are references.

    ``fixed`` keeps output ``k`` for reference ``k``; ``oracle`` takes the permutation that
    maximises the summed SI-SNR over the active references (``gass_modules.metrics.
    align_estimates``), one permutation for all channels. With more outputs than references
    (a 4-output GASS model on Libri2Mix) the references get all-zero slots first, so the surplus
    outputs are matched to silence; with fewer, all-zero outputs are added.

    Arguments
    ---------
    targets : torch.Tensor
        ``[C, T, S_ref]`` references (channels first; ``C = 1`` for mono).
    estimates : torch.Tensor
        ``[C, T, S_est]`` estimates.
    alignment : str
        ``oracle`` or ``fixed``.

    Returns
    -------
    torch.Tensor
        ``[C, T, S_ref]`` estimates, ``k`` matched to reference ``k``.

    Example
    -------
    >>> refs = torch.randn(1, 500, 2)
    >>> est = torch.cat([torch.zeros(1, 500, 1), refs[..., [1]], torch.zeros(1, 500, 1),
    ...                  refs[..., [0]]], dim=-1)                     # 4 outputs, shuffled
    >>> torch.equal(align_to_references(refs, est), refs)
    True
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if targets.dim() != 3 or estimates.dim() != 3 or targets.shape[:2] != estimates.shape[:2]:
        raise ValueError(f"expected targets [C, T, S] and estimates [C, T, S'] with the same C "
                         f"and T, got {tuple(targets.shape)} and {tuple(estimates.shape)}")
    num_refs, num_est = targets.shape[-1], estimates.shape[-1]
    if num_est < num_refs:
        estimates = torch.nn.functional.pad(estimates, (0, num_refs - num_est))
    if alignment == "fixed":
        return estimates[..., :num_refs]
    slots = max(num_refs, num_est)
    refs = torch.nn.functional.pad(targets, (0, slots - num_refs))
    channels, length = targets.shape[:2]
    flat = metrics.align_estimates(refs.reshape(1, channels * length, slots),
                                   estimates.reshape(1, channels * length, slots))
    return flat.reshape(channels, length, slots)[..., :num_refs]


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


@dataclass
class BenchmarkScorer:
    """Scores separated recordings as the benchmark's community reports them.

    See the module docstring for each benchmark's metrics. ``add`` scores one recording and
    keeps a row; ``summary`` aggregates; ``write`` saves ``results.csv`` (one row per recording)
    and ``summary.md``.

    Arguments
    ---------
    benchmark : str
        ``fuss``, ``librimix``, ``dnr`` or ``musdb``.
    stems : sequence of str
        Reference slot names (``s1, s2``; ``speech, music, sfx``; ...), for column names.
    alignment : str
        ``oracle`` (PIT-trained models, no-tuning evaluation) or ``fixed`` (stem-ordered models).
    csdr_window_seconds : float
        MUSDB cSDR frame length and hop (1 s in SiSEC 2018).
    sdr_filter_length : int
        Libri2Mix SDR distortion-filter taps (512 in BSS Eval).

    Example
    -------
    >>> scorer = BenchmarkScorer("librimix", ["s1", "s2"])
    >>> refs = torch.randn(1, 4000, 2)
    >>> row = scorer.add("m1", refs.sum(-1), refs, refs[..., [1, 0]] + 0.01 * torch.randn(1, 4000,
    ...                  2), 8000)
    >>> 35 < scorer.summary()["SI-SNR"] < 45
    True
    """

    benchmark: str
    stems: Sequence[str]
    alignment: str = "oracle"
    csdr_window_seconds: float = 1.0
    sdr_filter_length: int = 512
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {self.benchmark!r}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        self.stems = list(self.stems)
        if not self.stems:
            raise ValueError("stems must name at least one reference slot")

    def add(self, mix_id: str, mix: torch.Tensor, targets: torch.Tensor, estimates: torch.Tensor,
            sample_rate: int) -> dict:
        """Scores one recording and keeps its row.

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

        Returns
        -------
        dict
            The row (also kept in ``rows``); it holds the aligned estimates under ``"aligned"``
            only transiently (removed from the kept row).
        """
        if mix.dim() != 2 or targets.dim() != 3 or targets.shape[:2] != mix.shape:
            raise ValueError(f"expected mix [C, T] and targets [C, T, S], got {tuple(mix.shape)} "
                             f"and {tuple(targets.shape)}")
        if targets.shape[-1] != len(self.stems):
            raise ValueError(f"expected {len(self.stems)} reference slots ({self.stems}), got "
                             f"{targets.shape[-1]}")
        targets, estimates, mix = (x.detach().double().cpu() for x in (targets, estimates, mix))
        aligned = align_to_references(targets, estimates, self.alignment)  # [C, T, S]
        row = getattr(self, f"_score_{self.benchmark}")(mix, targets, aligned, sample_rate)
        if row is None:
            self.skipped.append(mix_id)
            return {"id": mix_id, "aligned": aligned}
        row = {"id": mix_id, **row}
        self.rows.append(row)
        return {**row, "aligned": aligned}

    # -- per benchmark ---------------------------------------------------------------------
    def _score_fuss(self, mix, targets, aligned, rate):
        refs, est, x = _mono(targets), _mono(aligned), _mono(mix)  # [1, T, S], [1, T]
        active = metrics.active_sources(refs)[0]  # [S]
        if not bool(active.any()):  # FUSS's evaluation skips all-zero references
            return None
        si = metrics.si_snr(refs, est, zero_mean=False)[0]
        sii = metrics.si_snri(refs, est, x, zero_mean=False)[0]
        active_est = metrics.fuss_active_estimates(refs, est)[0]  # [S]
        counted = active & active_est
        row = {"num_active_refs": int(active.sum()), "num_active_seps": int(active_est.sum())}
        for k, stem in enumerate(self.stems):
            row[f"si_snr_{stem}"] = float(si[k]) if active[k] else math.nan
            row[f"si_snri_{stem}"] = float(sii[k]) if active[k] else math.nan
            row[f"counted_{stem}"] = bool(counted[k])
        return row

    def _score_librimix(self, mix, targets, aligned, rate):
        refs, est, x = _mono(targets), _mono(aligned), _mono(mix)
        taps = min(self.sdr_filter_length, refs.shape[1])
        values = {"si_snr": metrics.si_snr(refs, est)[0],
                  "si_snri": metrics.si_snri(refs, est, x)[0],
                  "sdr": metrics.sdr(refs, est, taps)[0],
                  "sdri": metrics.sdri(refs, est, x, taps)[0]}
        row = {}
        for name, per_source in values.items():
            for k, stem in enumerate(self.stems):
                row[f"{name}_{stem}"] = float(per_source[k])
            row[name] = float(per_source.mean())
        return row

    def _score_dnr(self, mix, targets, aligned, rate):
        refs, est = _mono(targets), _mono(aligned)
        sdr, si_sdr = metrics.musdb_usdr(refs, est)[0], metrics.si_snr(refs, est)[0]
        row = {}
        for k, stem in enumerate(self.stems):
            row[f"sdr_{stem}"] = float(sdr[k])
            row[f"si_sdr_{stem}"] = float(si_sdr[k])
        return row

    def _score_musdb(self, mix, targets, aligned, rate):
        refs, est = targets.unsqueeze(0), aligned.unsqueeze(0)  # [1, C, T, S]
        window = max(1, round(self.csdr_window_seconds * rate))
        csdr = metrics.musdb_csdr(refs, est, window=window, hop=window)[0]
        usdr = metrics.musdb_usdr(refs, est)[0]
        row = {}
        for k, stem in enumerate(self.stems):
            row[f"csdr_{stem}"] = float(csdr[k])
            row[f"usdr_{stem}"] = float(usdr[k])
        return row

    # -- aggregation -------------------------------------------------------------------------
    def summary(self) -> dict[str, float]:
        """The headline numbers (see the module docstring), NaN where nothing was scored.

        Returns
        -------
        dict of str to float
            Metric name to value in dB (rates as fractions, counts as numbers).
        """
        rows = self.rows
        out: dict[str, float] = {"recordings": float(len(rows))}
        if self.benchmark == "fuss":
            def pooled(metric: str, counts: Sequence[int]) -> list[float]:
                return [r[f"{metric}_{s}"] for r in rows if r["num_active_refs"] in counts
                        for s in self.stems if r[f"counted_{s}"]]
            out["1S SI-SNR"] = _finite_mean(pooled("si_snr", [1]))
            out["MSi"] = _finite_mean(pooled("si_snri", [2, 3, 4]))
            for n in (2, 3, 4):
                out[f"SI-SNRi {n} sources"] = _finite_mean(pooled("si_snri", [n]))
            for name, test in (("under", lambda a, b: a < b), ("equal", lambda a, b: a == b),
                               ("over", lambda a, b: a > b)):
                hits = [test(r["num_active_seps"], r["num_active_refs"]) for r in rows]
                out[f"{name}-separation"] = sum(hits) / len(hits) if hits else math.nan
        elif self.benchmark == "librimix":
            for name, label in (("si_snri", "SI-SNRi"), ("sdri", "SDRi"), ("si_snr", "SI-SNR"),
                                ("sdr", "SDR")):
                out[label] = _finite_mean([r[name] for r in rows])
        elif self.benchmark == "dnr":
            for metric, label in (("sdr", "SDR"), ("si_sdr", "SI-SDR")):
                per_stem = [_finite_mean([r[f"{metric}_{s}"] for r in rows]) for s in self.stems]
                for stem, value in zip(self.stems, per_stem):
                    out[f"{label} {stem}"] = value
                out[f"{label} avg"] = _finite_mean(per_stem)
        else:
            for metric, label, reduce in (("csdr", "cSDR", _finite_median),
                                          ("usdr", "uSDR", _finite_mean)):
                per_stem = [reduce([r[f"{metric}_{s}"] for r in rows]) for s in self.stems]
                for stem, value in zip(self.stems, per_stem):
                    out[f"{label} {stem}"] = value
                out[f"{label} avg"] = _finite_mean(per_stem)
        return out

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
        notes = {"fuss": "FUSS protocol: SI-SNR without mean removal; pairs count when the "
                         "estimate is above -20 dB of the quietest active reference; 1S over "
                         "1-source mixtures, MSi pooled over the pairs of 2-4-source mixtures.",
                 "librimix": "Mean over speakers, then mixtures; SDR with a "
                             f"{self.sdr_filter_length}-tap filter (fast-bss-eval).",
                 "dnr": "SDR = 10 log10(|s|^2 / |s - s_hat|^2) per track (SDX 2023 cinematic "
                        "track), SI-SDR with mean removal; means over tracks.",
                 "musdb": "cSDR: museval v4, median over 1-s frames, then median over tracks "
                          "(SiSEC 2018); uSDR: MDX 2021, mean over tracks."}
        lines = [f"### {title}" if title else "### Results", "",
                 f"alignment: {self.alignment}; {notes[self.benchmark]}", "",
                 "| metric | value |", "| --- | --- |"]
        for key, value in self.summary().items():
            shown = f"{value:.0f}" if key == "recordings" else (
                f"{value:.3f}" if key.endswith("separation") else f"{value:.2f}")
            lines.append(f"| {key} | {shown if math.isfinite(value) else '—'} |")
        if self.skipped:
            lines += ["", f"Skipped (all-zero references): {len(self.skipped)}"]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path, title: str = "") -> tuple[Path, Path]:
        """Writes ``results.csv`` and ``summary.md`` into ``folder``.

        Arguments
        ---------
        folder : str or pathlib.Path
            Output folder (created).
        title : str
            Heading of the summary.

        Returns
        -------
        tuple of pathlib.Path
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
        return csv_path, md_path


# ------------------------------------------------------------------------------ brain
class BenchmarkBrain(SeparationBrain):
    """``SeparationBrain`` that evaluates whole recordings, scored as the benchmark reports them.

    Training and validation are ``SeparationBrain``'s (mono crops at the model rate, the recipe's
    loss). At TEST, each recording (``batch.mix_wav``, at its own rate and channel count) is
    separated by ``GASSSeparator.separate_file`` in overlapping chunks (``chunk_seconds``,
    ``chunk_overlap``), resampled to and from the model rate when they differ, stereo separated
    channel by channel with the sources matched to channel 0's and each chunk's order matched to
    the previous chunk's (with ``eval_alignment: fixed``, labelled stems, output ``k`` stays stem
    ``k``: no re-alignment, which could swap stems at chunk boundaries); the result is scored by
    a :class:`BenchmarkScorer` and written to ``<eval_folder>/results.csv`` and ``summary.md``.

    Hyperparameters read besides ``SeparationBrain``'s: ``benchmark``, ``stems``,
    ``eval_alignment`` (``oracle`` or ``fixed``), ``chunk_seconds`` (10), ``chunk_overlap``
    (0.25), ``csdr_window_seconds`` (1.0), ``eval_title``.

    Arguments
    ---------
    modules, opt_class, hparams, run_opts, checkpointer
        As for ``SeparationBrain``.

    Example
    -------
    >>> import soundfile, numpy
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> from gass_modules.inference import ScaledCopies
    >>> tmp = getfixture("tmp_path")
    >>> refs = torch.randn(1, 8000, 2)
    >>> soundfile.write(tmp / "mix.wav", refs.sum(-1)[0].numpy(), 8000, subtype="FLOAT")
    >>> item = {"id": "m", "mix": refs.sum(-1), "targets": refs, "num_sources": 2,
    ...         "categories": ["speech", "music"], "mix_wav": str(tmp / "mix.wav"),
    ...         "sample_rate": 8000}
    >>> brain = BenchmarkBrain({"separator": ScaledCopies([0.5, 0.5], 8000)}, None,
    ...                        {"loss": fixed_order_log_mse, "benchmark": "dnr",
    ...                         "stems": ["speech", "music"], "output_folder": str(tmp)},
    ...                        run_opts={"device": "cpu"})
    >>> _ = brain.evaluate([item], progressbar=False,
    ...                    test_loader_kwargs={"batch_size": 1, "collate_fn": PaddedBatch})
    >>> sorted(p.name for p in (tmp / "eval").iterdir())
    ['results.csv', 'summary.md']
    """

    def __init__(self, modules=None, opt_class=None, hparams=None, run_opts=None,
                 checkpointer=None) -> None:
        super().__init__(modules=modules, opt_class=opt_class, hparams=hparams,
                         run_opts=run_opts, checkpointer=checkpointer)
        if getattr(self.hparams, "benchmark", None) not in BENCHMARKS:
            raise ValueError(f"BenchmarkBrain needs hparams['benchmark'] in {BENCHMARKS}, got "
                             f"{getattr(self.hparams, 'benchmark', None)!r}")
        self.scorer: BenchmarkScorer | None = None
        self.interface: GASSSeparator | None = None

    @property
    def fixed_order(self) -> bool:
        """Labelled stems (``eval_alignment: fixed``, trained with a fixed-order loss): long
        recordings are stitched in the model's output order, and the model folder says so."""
        return getattr(self.hparams, "eval_alignment", "oracle") == "fixed"

    def on_stage_start(self, stage, epoch=None) -> None:
        """At TEST, sets up the scorer and the chunked separator; otherwise as SeparationBrain.

        Arguments
        ---------
        stage : speechbrain.Stage
            The stage starting.
        epoch : int, optional
            The epoch.
        """
        if stage != sb.Stage.TEST:
            super().on_stage_start(stage, epoch)
            return
        hp = self.hparams
        self.scorer = BenchmarkScorer(hp.benchmark, list(hp.stems),
                                      alignment=getattr(hp, "eval_alignment", "oracle"),
                                      csdr_window_seconds=float(getattr(
                                          hp, "csdr_window_seconds", 1.0)))
        separator = self.separator
        self.interface = GASSSeparator(
            modules={"separator": separator},
            hparams={"sample_rate": int(separator.sample_rate),
                     "num_sources": int(separator.num_sources),
                     "chunk_seconds": float(getattr(hp, "chunk_seconds", 10.0)),
                     "chunk_overlap": float(getattr(hp, "chunk_overlap", 0.25)),
                     "fixed_order": self.fixed_order},
            run_opts={"device": str(self.device), "precision": self.eval_precision},
            freeze_params=False)

    def compute_forward(self, batch, stage):
        """At TEST, separates each recording file chunk by chunk; otherwise as SeparationBrain.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            At TEST with ``mix_wav`` (file paths).
        stage : speechbrain.Stage
            The stage.

        Returns
        -------
        torch.Tensor or list
            ``[B, T, S]`` (TRAIN/VALID), or at TEST a list of ``([C, T, S], rate)`` per item.
        """
        if stage != sb.Stage.TEST:
            return super().compute_forward(batch, stage)
        if not hasattr(batch, "mix_wav"):
            raise ValueError("BenchmarkBrain evaluates recordings from files: the test set must "
                             "provide mix_wav (gass_modules.dataio.benchmarks.load_benchmark_set "
                             "with sample_rate=None)")
        out = []
        for path in batch.mix_wav:
            channels = sf.info(str(path)).channels  # stereo: separate each channel
            result = self.interface.separate_file(path, channels="each" if channels > 1 else "mix",
                                                  keep_silent=True)
            order = torch.as_tensor(result.kept)
            estimates = torch.empty_like(result.sources)
            estimates[..., order] = result.sources  # back to model output order: [C, T, S]
            out.append((estimates, result.sample_rate))
        return out

    def compute_objectives(self, predictions, batch, stage) -> torch.Tensor:
        """At TEST, scores each recording and returns the recipe loss on the aligned estimates.

        Arguments
        ---------
        predictions : torch.Tensor or list
            From :meth:`compute_forward`.
        batch : speechbrain.dataio.batch.PaddedBatch
            The batch.
        stage : speechbrain.Stage
            The stage.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        if stage != sb.Stage.TEST:
            return super().compute_objectives(predictions, batch, stage)
        losses = []
        for b, (estimates, rate) in enumerate(predictions):
            length = estimates.shape[1]
            mix = batch.mix.data[b, :, :length].cpu()  # [C, T] (crop PaddedBatch's padding)
            targets = batch.targets.data[b, :, :length].cpu()  # [C, T, S]
            row = self.scorer.add(str(batch.id[b]), mix, targets, estimates, int(rate))
            aligned = row["aligned"].float()
            with torch.autocast(device_type="cpu", enabled=False):
                losses.append(self.hparams.loss(targets.float(), aligned, mix.float()).mean())
        return torch.stack(losses).mean()

    def on_stage_end(self, stage, stage_loss, epoch=None) -> None:
        """At TEST, writes ``results.csv`` and ``summary.md``; otherwise as SeparationBrain.

        Arguments
        ---------
        stage : speechbrain.Stage
            The stage ending.
        stage_loss : float
            Its average loss.
        epoch : int, optional
            The epoch.
        """
        if stage != sb.Stage.TEST:
            super().on_stage_end(stage, stage_loss, epoch)
            return
        title = str(getattr(self.hparams, "eval_title", "") or self.hparams.benchmark)
        summary = self.scorer.summary()
        if if_main_process():
            csv_path, md_path = self.scorer.write(self.eval_folder, title)
            logger.info(f"benchmark results in {csv_path}\n{md_path.read_text()}")
            train_logger = getattr(self.hparams, "train_logger", None)
            if train_logger is not None:
                train_logger.log_stats(stats_meta={"test": title},
                                       test_stats={"loss": stage_loss, **summary})



# ------------------------------------------------------------------------------ recipe driver
def build_benchmark_sets(hparams: Mapping) -> dict:
    """The recipe's train, valid and test sets from its prepared manifests.

    Reads ``train_csv``, ``valid_csv``, ``test_csv``, ``data_folder`` (``$data_root``),
    ``num_sources``, ``sample_rate``, ``segment_seconds`` (training crops),
    ``valid_segment_seconds`` (validation crops, None for whole recordings), ``stems`` (the
    test references) and ``train_repeats`` (random crops of each recording per epoch, default
    1; give the training dataloader a ``collate_fn`` when above 1). The test set keeps the
    recordings as they are (see ``load_benchmark_set``).

    Arguments
    ---------
    hparams : Mapping
        The loaded recipe.

    Returns
    -------
    dict
        ``train``, ``valid`` and ``test`` datasets.

    Example
    -------
    >>> build_benchmark_sets({"train_csv": "missing.csv"})
    Traceback (most recent call last):
    ...
    KeyError: "the recipe lacks keys ['data_folder', ...]"
    """
    needed = ["data_folder", "num_sources", "sample_rate", "segment_seconds",
              "valid_segment_seconds", "train_csv", "valid_csv", "test_csv"]
    missing = [k for k in needed if k not in hparams]
    if missing:
        raise KeyError(f"the recipe lacks keys {missing}")
    replacements = {"data_root": str(hparams["data_folder"])}
    slots, rate = int(hparams["num_sources"]), int(hparams["sample_rate"])
    train = load_benchmark_set(hparams["train_csv"], slots, rate, hparams["segment_seconds"],
                               random_crop=True, replacements=replacements)
    repeats = int(hparams.get("train_repeats", 1))
    if repeats < 1:
        raise ValueError(f"train_repeats must be a positive int, got {repeats}")
    return {
        # a few random crops of every recording per epoch (long tracks: MUSDB18, DnR)
        "train": train if repeats == 1 else torch.utils.data.ConcatDataset([train] * repeats),
        "valid": load_benchmark_set(hparams["valid_csv"], slots, rate,
                                    hparams["valid_segment_seconds"], replacements=replacements),
        "test": load_benchmark_set(hparams["test_csv"], len(hparams["stems"]),
                                   replacements=replacements),
    }


def run_benchmark(hparams: dict, run_opts: Mapping, card: str) -> BenchmarkBrain:
    """Trains or fine-tunes on the benchmark, evaluates, exports; or evaluates GASS as is.

    * ``no_tuning: True``: ``pretrained_path`` must be a model folder (``save_model_folder``),
      loaded safely unless ``trust_model_code: True`` (``--trust_model_code=True``: full
      hyperpyyaml, which runs code from the folder); its model is evaluated as it is (its own
      rate and number of outputs; recordings are resampled and outputs matched to the
      references with the oracle alignment) into ``<output_folder>/eval_no_tuning``.
    * otherwise: the recipe's separator (its model card with the benchmark's ``num_sources`` and
      ``sample_rate``) starts from ``pretrained_path`` when given
      (:func:`transfer_from_checkpoint`, report in ``<output_folder>/transfer.txt``) or from
      scratch, is trained with ``BenchmarkBrain.fit``, evaluated with its best checkpoint into
      ``<output_folder>/eval``, and exported to ``model_folder``.

    Arguments
    ---------
    hparams : dict
        The loaded recipe (keys of :func:`build_benchmark_sets`, ``BenchmarkBrain``'s, and
        ``pretrained_path``, ``no_tuning``, ``modules``, ``opt_class``, ``checkpointer``,
        ``epoch_counter``, ``*_dataloader_opts``, ``save_folder``, ``output_folder``,
        ``model_folder``).
    run_opts : Mapping
        SpeechBrain run options.
    card : str
        The model card as trained (``gass_modules.brain.included_card``), for the export.

    Returns
    -------
    BenchmarkBrain
        The brain (its ``scorer`` holds the test results).

    Example
    -------
    >>> run_benchmark({"no_tuning": True, "pretrained_path": None}, {}, "")
    Traceback (most recent call last):
    ...
    ValueError: no_tuning evaluates a pre-trained GASS model as is: pass ...
    """
    output = Path(hparams.get("output_folder", "."))
    source = hparams.get("pretrained_path")
    if hparams.get("no_tuning"):
        if not source or not (Path(source) / HPARAMS_FILE).is_file():
            raise ValueError(f"no_tuning evaluates a pre-trained GASS model as is: pass "
                             f"--pretrained_path=<model folder with {HPARAMS_FILE} and "
                             f"{CHECKPOINT_FILE}> (written by save_model_folder at the end of the "
                             f"GASS recipe), got {source!r}")
        datasets = build_benchmark_sets(hparams)
        gass = GASSSeparator.from_hparams(source=source,
                                          run_opts={"device": run_opts.get("device") or "cpu"},
                                          trust_code=bool(hparams.get("trust_model_code")))
        settings = {**hparams, "eval_folder": output / "eval_no_tuning", "eval_alignment": "oracle",
                    "eval_title": f"{hparams['benchmark']}: GASS model {source}, no tuning"}
        brain = BenchmarkBrain(modules={"separator": gass.mods.separator}, hparams=settings,
                               run_opts=run_opts)
        brain.evaluate(datasets["test"], test_loader_kwargs=hparams["test_dataloader_opts"])
        return brain
    datasets = build_benchmark_sets(hparams)
    if source:
        report = transfer_from_checkpoint(hparams["separator"], source,
                                          collect_in=Path(hparams["save_folder"]) / "pretrained")
        if if_main_process():
            (output / "transfer.txt").write_text(report.format() + "\n")
    brain = BenchmarkBrain(modules=hparams["modules"], opt_class=hparams["opt_class"],
                           hparams=hparams, run_opts=run_opts,
                           checkpointer=hparams["checkpointer"])
    brain.fit(hparams["epoch_counter"], datasets["train"], datasets["valid"],
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    brain.evaluate(datasets["test"], min_key="loss",
                   test_loader_kwargs=hparams["test_dataloader_opts"])
    if if_main_process():  # the best checkpoint, loaded by evaluate()
        folder = save_model_folder(brain.separator, card, hparams["model_folder"],
                                   overwrite=True, fixed_order=brain.fixed_order)
        logger.info(f"model folder for GASSSeparator.from_hparams(source=...): {folder}")
    return brain


__all__ = ["BENCHMARKS", "BenchmarkBrain", "BenchmarkScorer", "TransferReport",
           "align_to_references", "build_benchmark_sets", "find_separator_checkpoint",
           "fixed_order_log_mse", "load_matching_parameters", "run_benchmark",
           "transfer_from_checkpoint"]
