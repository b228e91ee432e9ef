"""SeparationBrain: the one training and evaluation loop that every gass recipe uses.

Training follows SpeechBrain's ``sb.Brain`` with the changes separation needs:

* the separator is called through ``self.modules`` (so a DDP wrapper all-reduces gradients;
  SpeechBrain's own separation recipes call ``self.hparams.*`` and silently skip that);
* the objective is the PIT thresholded log-MSE of ``gass_modules.losses`` (``[B]`` per mixture),
  computed in float32 outside autocast;
* a non-finite loss skips the backward pass and the update on *every* rank (one all-reduce of a
  flag), is counted, and stops training once ``nonfinite_patience`` is exhausted (SpeechBrain
  1.1.2 counts it but still back-propagates the NaN);
* the learning-rate scheduler is checkpointed with the model, optimiser and epoch counter;
* :class:`AtomicCheckpointer` writes each checkpoint into a staging folder and renames it into
  place, so a run killed while saving never leaves a half-written checkpoint behind (SpeechBrain
  writes ``CKPT.yaml`` first and the parameter files after it).

Evaluation (``brain.evaluate(test_set)``) aligns the estimates to the references as the FUSS
evaluation does (``gass_modules.metrics.align_estimates``: best summed SI-SNR over the present
references; the leftover outputs go to the silent slots) and writes, under
``<output_folder>/eval/``:

* ``per_mixture.csv``: one row per mixture and system (``model`` and the ``irm`` oracle) with
  per-source SI-SNR and SI-SNRi, output energies, and over/under-separation flags;
* ``summary.md``: tables by number of sources and by source category, model beside the
  :class:`IRMOracle` (STFT ideal ratio mask), as GASS reports it;
* ``audio/<id>/*.wav`` (estimates, references, mixture) and ``figures/<id>.png`` (spectrograms)
  for the first few mixtures.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import ruamel.yaml
import soundfile as sf
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references
from ruamel.yaml.comments import CommentedBase
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataloader import LoopedLoader
from speechbrain.nnet.schedulers import (
    LinearWarmupScheduler,
    NewBobScheduler,
    ReduceLROnPlateau,
    update_learning_rate,
)
from speechbrain.utils import checkpoints
from speechbrain.utils.checkpoints import Checkpoint, Checkpointer
from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast, if_main_process
from torch import nn

from gass_modules import metrics
from gass_modules.inference import unwrap_module

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
EPOCH_SCHEDULERS = (ReduceLROnPlateau, NewBobScheduler)


# ----------------------------------------------------------------------------------------------
# Checkpointing
# ----------------------------------------------------------------------------------------------
class AtomicCheckpointer(Checkpointer):
    """A SpeechBrain ``Checkpointer`` whose saves and deletions are atomic.

    SpeechBrain 1.1.2 creates ``CKPT+<stamp>/CKPT.yaml`` before it writes the parameter files, and
    deletes checkpoints with ``shutil.rmtree``; a process killed in between leaves a folder that
    ``recover_if_possible`` picks up and fails to load. Here a checkpoint is written into a hidden
    staging folder (ignored by SpeechBrain's listing, which only considers ``CKPT*`` folders),
    flushed to disk, and renamed into place with one ``os.replace``; a deletion first renames the
    folder out of the ``CKPT*`` namespace and then removes it. Leftovers of killed runs (staging or
    trash folders) are cleaned at the next save. Same constructor and API as ``Checkpointer``.

    Arguments
    ---------
    checkpoints_dir : str or pathlib.Path
        Folder holding the ``CKPT+...`` checkpoints.
    recoverables : Mapping, optional
        Objects to save and recover, by name.
    *args, **kwargs
        Passed to ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> model = torch.nn.Linear(2, 2)
    >>> ckpt = AtomicCheckpointer(tmp, {"model": model})
    >>> saved = ckpt.save_checkpoint(meta={"loss": 1.0})
    >>> sorted(p.name for p in saved.path.iterdir())
    ['CKPT.yaml', 'model.ckpt']
    >>> [p.name.startswith("CKPT+") for p in Path(tmp).iterdir()]
    [True]
    """

    def __init__(self, checkpoints_dir, recoverables=None, *args, **kwargs) -> None:
        super().__init__(checkpoints_dir, recoverables, *args, **kwargs)
        self._staging_dir: Path | None = None

    def _custom_checkpoint_dirpath(self, name: str) -> Path:
        # While a save is in flight the parent class is handed the staging folder as "custom" path.
        if self._staging_dir is not None:
            return self._staging_dir
        return super()._custom_checkpoint_dirpath(name)

    def save_checkpoint(self, meta: Mapping | None = None, end_of_epoch: bool = True,
                        name: str | None = None, verbosity: int = logging.INFO
                        ) -> Checkpoint | None:
        """Saves a checkpoint atomically (staging folder, fsync, rename).

        Arguments
        ---------
        meta : Mapping, optional
            Added to the checkpoint's ``CKPT.yaml`` (e.g. ``{"loss": 1.2}``).
        end_of_epoch : bool
            Whether the checkpoint is taken at the end of an epoch.
        name : str, optional
            Custom name (the folder is ``CKPT+<name>``); a timestamp by default.
        verbosity : int
            Logging level of the "saved" message.

        Returns
        -------
        speechbrain.utils.checkpoints.Checkpoint or None
            The saved checkpoint on the main process, None elsewhere.
        """
        final = None
        if if_main_process():
            self._remove_leftovers()
            final = (self._new_checkpoint_dirpath() if name is None
                     else super()._custom_checkpoint_dirpath(name))
        final = ddp_broadcast(final, src=0)
        staging = final.with_name(STAGING_PREFIX + final.name)
        if if_main_process() and staging.exists():
            shutil.rmtree(staging)
        self._staging_dir = staging
        try:
            staged = super().save_checkpoint(meta=dict(meta or {}), end_of_epoch=end_of_epoch,
                                             name="staging", verbosity=logging.DEBUG)
        finally:
            self._staging_dir = None
        result = None
        if if_main_process():
            _fsync_tree(staging)
            if final.exists():  # a custom name saved again: retire the old one first
                _retire(final)
            os.replace(staging, final)
            _fsync_dir(final.parent)
            logger.log(verbosity, f"Saved a checkpoint in {final}")
            paramfiles = {key: final / Path(path).name for key, path in staged.paramfiles.items()}
            result = Checkpoint(final, staged.meta, paramfiles)
        ddp_barrier()
        return result

    def delete_checkpoints(self, *, num_to_keep: int = 1, min_keys: list[str] | None = None,
                           max_keys: list[str] | None = None,
                           importance_keys: list[Callable] | None = None,
                           ckpt_predicate: Callable | None = None,
                           verbosity: int = logging.INFO) -> None:
        """Deletes all but the most important checkpoints, each by an atomic rename first.

        Same selection rules as ``Checkpointer.delete_checkpoints`` (``num_to_keep`` per
        importance order); re-implemented only because SpeechBrain calls its static
        ``Checkpointer._delete_checkpoint`` (a plain ``rmtree``) by class name.

        Arguments
        ---------
        num_to_keep : int
            Checkpoints kept per importance order.
        min_keys, max_keys : list of str, optional
            Meta keys whose lowest / highest values are kept.
        importance_keys : list of callable, optional
            Sort keys (higher is more important); recency by default.
        ckpt_predicate : callable, optional
            Only checkpoints for which it is True may be deleted.
        verbosity : int
            Logging level of the "deleted" messages.

        Example
        -------
        >>> import tempfile
        >>> ckpt = AtomicCheckpointer(tempfile.mkdtemp(), {"model": torch.nn.Linear(1, 1)})
        >>> for loss in (3.0, 1.0, 2.0):
        ...     _ = ckpt.save_checkpoint(meta={"loss": loss})
        >>> ckpt.delete_checkpoints(num_to_keep=1, min_keys=["loss"])
        >>> sorted(c.meta["loss"] for c in ckpt.list_checkpoints())  # best and most recent
        [1.0, 2.0]
        """
        if num_to_keep < 0:
            raise ValueError(f"num_to_keep must be >= 0, got {num_to_keep}")
        if importance_keys is None:
            importance_keys = [sb.utils.checkpoints.ckpt_recency]
        orders = [{"min_key": k} for k in min_keys or []]
        orders += [{"max_key": k} for k in max_keys or []]
        orders += [{"importance_key": k} for k in importance_keys]
        candidates, protected = set(), set()
        for order in orders:
            candidates.update(self.find_checkpoints(ckpt_predicate=ckpt_predicate, **order))
            protected.update(self.find_checkpoints(ckpt_predicate=ckpt_predicate,
                                                   max_num_checkpoints=num_to_keep, **order))
        ddp_barrier()
        if if_main_process():
            for ckpt in candidates - protected:
                _retire(ckpt.path)
                logger.log(verbosity, f"Deleted checkpoint in {ckpt.path}")
        ddp_barrier()

    def _remove_leftovers(self) -> None:
        """Removes staging/trash folders left by a run killed while saving or deleting."""
        if not self.checkpoints_dir.is_dir():
            return
        for path in self.checkpoints_dir.iterdir():
            if path.name.startswith((STAGING_PREFIX, TRASH_PREFIX)) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flushes every file of ``folder`` and the folder itself to disk."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Flushes a directory entry (renames) to disk where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _retire(path: Path) -> None:
    """Deletes a checkpoint folder atomically: rename out of the CKPT namespace, then remove."""
    trash = path.with_name(TRASH_PREFIX + path.name)
    if trash.exists():
        shutil.rmtree(trash)
    os.replace(path, trash)
    shutil.rmtree(trash)


# ----------------------------------------------------------------------------------------------
# IRM oracle and scores
# ----------------------------------------------------------------------------------------------
class IRMOracle(nn.Module):
    """The ideal ratio mask (IRM) oracle: the references' STFT magnitudes mask the mixture.

    For references ``s_j`` with STFTs ``S_j`` and mixture STFT ``X``, source ``j`` is estimated as
    ``iSTFT(M_j · X)`` with ``M_j = |S_j|^p / Σ_k |S_k|^p`` (``p = power``; 1 is the magnitude
    ratio mask used by GASS-style oracle tables, 2 the Wiener-like power ratio). Masks sum to 1
    wherever any reference has energy, so the estimates sum back to the mixture. The result is
    already aligned with the references (no permutation). Bins where every reference is silent
    get the mask ``1/S`` (no energy is there to split).

    Arguments
    ---------
    n_fft : int
        STFT size (Hann window of the same length).
    hop_length : int
        STFT hop.
    power : float
        Exponent ``p`` of the magnitudes in the ratio.

    Example
    -------
    >>> oracle = IRMOracle(n_fft=256, hop_length=64)
    >>> targets = torch.randn(2, 4000, 3)
    >>> estimates = oracle(targets.sum(-1), targets)  # [B, T, S]
    >>> estimates.shape
    torch.Size([2, 4000, 3])
    >>> torch.allclose(estimates.sum(-1), targets.sum(-1), atol=1e-4)
    True
    """

    def __init__(self, n_fft: int = 512, hop_length: int = 128, power: float = 1.0) -> None:
        super().__init__()
        if not isinstance(n_fft, int) or n_fft < 2:
            raise ValueError(f"n_fft must be an int >= 2, got {n_fft!r}")
        if not isinstance(hop_length, int) or not 1 <= hop_length <= n_fft:
            raise ValueError(f"hop_length must be an int in [1, n_fft={n_fft}], got {hop_length!r}")
        if not power > 0:
            raise ValueError(f"power must be > 0, got {power!r}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.power = float(power)

    def forward(self, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Estimates the sources of ``mix`` with the references' ideal ratio masks.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures.
        targets : torch.Tensor
            ``[B, T, S]`` references (all-zero slots get all-zero estimates).

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` oracle estimates, aligned with ``targets``.
        """
        _check_pair(mix, targets)
        batch, length, num = targets.shape
        dtype = torch.promote_types(mix.dtype, torch.float32)
        window = torch.hann_window(self.n_fft, dtype=dtype, device=mix.device)
        stft = dict(n_fft=self.n_fft, hop_length=self.hop_length, window=window, center=True)
        spec_mix = torch.stft(mix.to(dtype), pad_mode="constant", return_complex=True, **stft)
        refs = targets.to(dtype).transpose(1, 2).reshape(batch * num, length)  # [B*S, T]
        spec_refs = torch.stft(refs, pad_mode="constant", return_complex=True, **stft)
        mag = spec_refs.abs().pow(self.power).reshape(batch, num, *spec_refs.shape[1:])
        total = mag.sum(1, keepdim=True)  # [B, 1, F, N]
        tiny = torch.finfo(dtype).tiny
        mask = torch.where(total > tiny, mag / total.clamp_min(tiny), 1.0 / num)  # [B, S, F, N]
        masked = (mask * spec_mix.unsqueeze(1)).reshape(batch * num, *spec_mix.shape[1:])
        est = torch.istft(masked, length=length, **stft)  # [B*S, T]
        return est.reshape(batch, num, length).transpose(1, 2).to(targets.dtype)  # [B, T, S]


def _check_pair(mix: torch.Tensor, targets: torch.Tensor) -> None:
    """Raises a ValueError unless ``mix`` is ``[B, T]`` and ``targets`` is ``[B, T, S]``."""
    if mix.dim() != 2 or targets.dim() != 3 or targets.shape[:2] != mix.shape:
        raise ValueError(f"expected mix [B, T] and targets [B, T, S] with the same B and T, got "
                         f"mix {tuple(mix.shape)} and targets {tuple(targets.shape)}")
    if mix.shape[1] < 1 or targets.shape[2] < 1:
        raise ValueError(f"expected at least 1 sample and 1 source, got targets "
                         f"{tuple(targets.shape)}")


def power_db(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Mean power in dB along ``dim`` (``-inf`` for an all-zero signal, never NaN).

    Arguments
    ---------
    x : torch.Tensor
        Signals, e.g. ``[B, T, S]``.
    dim : int
        The time axis.

    Returns
    -------
    torch.Tensor
        ``10 log10(mean(x²))``, ``x`` with ``dim`` removed.

    Example
    -------
    >>> power_db(torch.ones(1, 4) * 0.1)
    tensor([-20.])
    """
    return 10.0 * torch.log10(x.double().pow(2).mean(dim)).to(torch.float32)


def score_separation(mix: torch.Tensor, targets: torch.Tensor, aligned: torch.Tensor,
                     activity_db: float = -20.0) -> dict[str, torch.Tensor]:
    """Per-source scores of aligned estimates: SI-SNR, SI-SNRi, energies and activity.

    A target is *present* when it is not all-zero (``metrics.active_sources``); present targets
    get SI-SNR and SI-SNRi (``gass_modules.metrics``: zero-mean, limited to ±100 dB), the others
    NaN. For over/under-separation counting a target or an output is *active* when its power is
    at least ``activity_db`` relative to the mixture's; a mixture is over-separated when it has
    more active outputs than active targets, under-separated when fewer. Mixtures whose
    estimates hold NaN/Inf get ``finite = False`` and NaN scores instead of an error, so that
    one failure does not abort an evaluation.

    Arguments
    ---------
    mix : torch.Tensor
        ``[B, T]`` mixtures.
    targets : torch.Tensor
        ``[B, T, S]`` references.
    aligned : torch.Tensor
        ``[B, T, S]`` estimates, output ``s`` matched to target ``s``
        (``gass_modules.metrics.align_estimates``).
    activity_db : float
        Activity threshold in dB relative to the mixture power.

    Returns
    -------
    dict of torch.Tensor
        ``si_snr``, ``si_snri`` ([B, S], dB, NaN for absent targets), ``energy_db`` ([B, S],
        power of each output relative to the mixture, dB), ``present``, ``active_target``,
        ``active_output`` ([B, S] bool), ``finite`` ([B] bool: all estimates finite).

    Example
    -------
    >>> targets = torch.zeros(1, 1000, 2)
    >>> targets[0, :, 0] = torch.randn(1000)
    >>> scores = score_separation(targets.sum(-1), targets, targets.clone())
    >>> scores["present"].tolist(), scores["active_output"].tolist()
    ([[True, False]], [[True, False]])
    >>> scores["si_snr"][0, 0].item(), bool(scores["si_snr"][0, 1].isnan())
    (100.0, True)
    """
    _check_pair(mix, targets)
    if aligned.shape != targets.shape:
        raise ValueError(f"expected estimates shaped like targets {tuple(targets.shape)}, got "
                         f"{tuple(aligned.shape)}")
    if not (torch.isfinite(mix).all() and torch.isfinite(targets).all()):
        raise ValueError("the mixture or the references hold NaN/Inf: check the data")
    targets, aligned, mix = targets.double(), aligned.double(), mix.double()
    finite = torch.isfinite(aligned).all(dim=2).all(dim=1)  # [B]
    safe = torch.where(finite[:, None, None], aligned, 0.0)  # metrics refuse NaN: score zeros
    present = metrics.active_sources(targets)  # [B, S]
    mix_db = power_db(mix, dim=1).unsqueeze(1)  # [B, 1]
    energy_db = power_db(aligned, dim=1) - mix_db  # [B, S]
    active_target = (power_db(targets, dim=1) - mix_db >= activity_db) & present
    active_output = (energy_db >= activity_db) & finite[:, None]
    si_snr = metrics.si_snr(targets, safe)  # [B, S]
    si_snri = metrics.si_snri(targets, safe, mix)  # [B, S]
    keep = present & finite[:, None]
    return {
        "si_snr": torch.where(keep, si_snr, math.nan).float(),
        "si_snri": torch.where(keep, si_snri, math.nan).float(),
        "energy_db": energy_db.float(),
        "present": present,
        "active_target": active_target,
        "active_output": active_output,
        "finite": finite,
    }


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# Figures and audio
# ----------------------------------------------------------------------------------------------
def plot_separation(path: str | Path, mix: torch.Tensor, targets: torch.Tensor,
                    estimates: Mapping[str, torch.Tensor], sample_rate: int,
                    n_fft: int = 512, hop_length: int = 128, title: str = "") -> Path:
    """Saves a spectrogram figure: the mixture, then per source the reference and each system.

    Arguments
    ---------
    path : str or pathlib.Path
        Output image (PNG).
    mix : torch.Tensor
        ``[T]`` mixture.
    targets : torch.Tensor
        ``[T, S]`` references.
    estimates : Mapping of str to torch.Tensor
        ``[T, S]`` aligned estimates per system name (e.g. ``{"model": ..., "IRM": ...}``).
    sample_rate : int
        Sample rate in Hz (axes in seconds and kHz).
    n_fft, hop_length : int
        STFT of the spectrograms.
    title : str
        Figure title.

    Returns
    -------
    pathlib.Path
        The image written.

    Example
    -------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "fig.png"
    >>> targets = torch.randn(4000, 2)
    >>> plot_separation(out, targets.sum(-1), targets, {"model": targets}, 8000).is_file()
    True
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe to call repeatedly
    import matplotlib.pyplot as plt

    if mix.dim() != 1 or targets.dim() != 2 or targets.shape[0] != mix.shape[0]:
        raise ValueError(f"expected mix [T] and targets [T, S], got {tuple(mix.shape)} and "
                         f"{tuple(targets.shape)}")
    for name, est in estimates.items():
        if est.shape != targets.shape:
            raise ValueError(f"estimates {name!r} must be shaped like targets "
                             f"{tuple(targets.shape)}, got {tuple(est.shape)}")
    window = torch.hann_window(n_fft)

    def spec_db(x: torch.Tensor) -> np.ndarray:
        spec = torch.stft(x.detach().float().cpu(), n_fft, hop_length, window=window,
                          center=True, pad_mode="constant", return_complex=True)
        return (20 * torch.log10(spec.abs() + 1e-8)).numpy()  # [F, N]

    num = targets.shape[1]
    columns = ["reference", *estimates]
    fig, axes = plt.subplots(num + 1, len(columns), figsize=(3.2 * len(columns), 1.9 * (num + 1)),
                             squeeze=False, sharex=True, sharey=True)
    top = spec_db(mix).max()
    extent = (0, mix.shape[0] / sample_rate, 0, sample_rate / 2000)
    style = dict(origin="lower", aspect="auto", extent=extent, vmin=top - 80, vmax=top,
                 cmap="magma")
    axes[0, 0].imshow(spec_db(mix), **style)
    axes[0, 0].set_title("mixture", fontsize=9)
    for ax in axes[0, 1:]:
        ax.axis("off")
    for s in range(num):
        for c, name in enumerate(columns):
            signal = targets[:, s] if name == "reference" else estimates[name][:, s]
            axes[s + 1, c].imshow(spec_db(signal), **style)
            axes[s + 1, c].set_title(f"{name} {s + 1}", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _safe_name(text: str) -> str:
    """A file-system-safe version of a mixture id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "mixture"


# ----------------------------------------------------------------------------------------------
# Recipes
# ----------------------------------------------------------------------------------------------
def load_recipe(argv: list[str], card_key: str = "model") -> tuple[dict, dict, str]:
    r"""The preamble of every gass recipe's ``train.py``, as SpeechBrain recipes write it.

    Parses the command line (``sb.parse_arguments``), joins the torchrun process group, loads the
    hparams file with the overrides, creates the experiment folder (saving the hparams and the
    overrides) and reads back the model card the hparams file includes.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (hparams file, then SpeechBrain run options and overrides).
    card_key : str
        The key under which the hparams file ``!include``s its model card.

    Returns
    -------
    tuple
        ``(hparams, run_opts, card)``: the loaded hparams, SpeechBrain's run options and the
        model card as trained (yaml text, see :func:`included_card`).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> _ = (tmp / "card.yaml").write_text("sample_rate: 8000\nnum_sources: 2\n")
    >>> _ = (tmp / "train.yaml").write_text(
    ...     f"output_folder: {tmp / 'exp'}\nglobal_seed: 0\n"
    ...     "model: !include:card.yaml\n    num_sources: 3\n")
    >>> logging.disable(logging.INFO)  # the experiment folder's log lines
    >>> hparams, run_opts, card = load_recipe([str(tmp / "train.yaml")])
    >>> logging.disable(logging.NOTSET)
    >>> hparams["model"]["num_sources"], "num_sources: 3" in card, (tmp / "exp").is_dir()
    (3, True, True)
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)  # torchrun: one process per device
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides)
    logger.info(f"seeded with {hparams.get('global_seed')} before building the model")
    return hparams, run_opts, included_card(hparams_file, overrides, key=card_key)


def included_card(hparams_file: str | Path, overrides: Mapping | str | None = None,
                  key: str = "model") -> str:
    r"""The yaml text of the model card that a recipe ``!include:`` s under ``key``.

    Recipes include a card (``model: !include:.../hparams/models/x.yaml``) and may shrink or
    change it with overrides (``--model="{separator: {num_blocks: 2}}"``). To export the trained
    model (``gass_modules.inference.save_model_folder``) the card *as trained* is needed: this
    resolves the recipe with its overrides (``hyperpyyaml.resolve_references``, which expands the
    include without building any object) and returns the ``key`` subtree, tags kept and comments
    dropped (the card's comments describe its own values, which the overrides may have changed).

    Arguments
    ---------
    hparams_file : str or pathlib.Path
        The recipe yaml.
    overrides : Mapping or str, optional
        The overrides the recipe was loaded with.
    key : str
        Top-level key holding the included card.

    Returns
    -------
    str
        Yaml text defining ``sample_rate``, ``num_sources`` and ``separator``.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "card.yaml").write_text(
    ...     "sample_rate: 8000\nnum_sources: 2\nseparator: !new:torch.nn.Linear\n"
    ...     "    in_features: 4  # four features\n    out_features: !ref <num_sources>\n")
    >>> _ = (folder / "recipe.yaml").write_text(
    ...     "lr: 0.1\nmodel: !include:card.yaml\n    separator: {}\n")
    >>> print(included_card(folder / "recipe.yaml", {"model": {"separator": {"in_features": 3}}}))
    sample_rate: 8000
    num_sources: 2
    separator: !new:torch.nn.Linear
      in_features: 3
      out_features: 2
    <BLANKLINE>
    """
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(fin, overrides)
    yaml = ruamel.yaml.YAML()
    tree = yaml.load(resolved)
    if key not in tree:
        raise KeyError(f"{hparams_file} has no top-level key {key!r}; the recipe must include "
                       f"its model card as `{key}: !include:<path to hparams/models/x.yaml>`")
    card = tree[key]
    _drop_comments(card)
    out = io.StringIO()
    yaml.dump(card, out)
    return out.getvalue()


def _drop_comments(node: object) -> None:
    """Removes the comments of a ruamel round-trip tree in place (keys, values and tags kept).

    The card's comments describe its own values (``# complex masks``); once a recipe's overrides
    change those values the comments would contradict the exported card, so none are kept.
    """
    if isinstance(node, CommentedBase):
        node.ca.comment = None
        node.ca.items.clear()
        node.ca.end = []
        for child in node.values() if isinstance(node, dict) else node:
            _drop_comments(child)


# ----------------------------------------------------------------------------------------------
# The Brain
# ----------------------------------------------------------------------------------------------
@checkpoints.register_checkpoint_hooks
class WallClockLinearDecay(LinearWarmupScheduler):
    """Per-update learning rate: linear warm-up over steps, then linear decay to zero over a
    wall-clock budget (``max_train_minutes``).

    SpeechBrain's ``LinearWarmupScheduler`` decays over a number of updates, which a run bounded
    by time does not know in advance; this one decays over ``minutes`` of the run's clock (started
    at the first update), so the learning rate reaches zero when ``max_train_minutes`` ends
    training, whatever the machine's speed. Decaying to zero instead of keeping a constant rate
    gave +0.5 dB SI-SNRi at 6000 updates in the demo's sweep (recipes/GASS/separation/README).
    Like ``max_train_minutes``, the budget is per run: a resumed run decays again over its own
    budget (the update count, hence the finished warm-up, is checkpointed).

    Arguments
    ---------
    initial_value : float
        Peak learning rate ``lr0``.
    num_warmup_steps : int
        Updates of linear warm-up from 0 to ``lr0``.
    minutes : float
        Wall-clock budget over which the rate decays from ``lr0`` to 0.
    clock : callable
        Monotonic clock in seconds (``time.monotonic``; replaceable in tests).

    Example
    -------
    >>> now = [0.0]
    >>> sched = WallClockLinearDecay(1.0, num_warmup_steps=2, minutes=10, clock=lambda: now[0])
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> [round(sched(opt)[1], 3) for _ in range(2)]  # warm-up over updates
    [0.5, 1.0]
    >>> now[0] = 150.0  # a quarter of the budget later
    >>> sched(opt)[1], opt.param_groups[0]["lr"]
    (0.75, 0.75)
    >>> now[0] = 900.0  # past the budget
    >>> sched(opt)[1]
    0.0
    """

    def __init__(self, initial_value: float, num_warmup_steps: int, minutes: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(minutes, (int, float)) or not minutes > 0 or math.isinf(minutes):
            raise ValueError(f"minutes must be a positive finite number (the training budget, "
                             f"max_train_minutes), got {minutes!r}")
        if not isinstance(num_warmup_steps, int) or num_warmup_steps < 0:
            raise ValueError(f"num_warmup_steps must be an int >= 0, got {num_warmup_steps!r}")
        super().__init__(initial_value, num_warmup_steps, num_training_steps=0)
        self.minutes = float(minutes)
        self.clock = clock
        self.start: float | None = None

    def calculate_lr(self, current_step: int) -> float:
        """The learning rate for update ``current_step`` at the current time.

        Arguments
        ---------
        current_step : int
            Updates so far, this one included.

        Returns
        -------
        float
            ``lr0 * min(1, step / warmup) * max(0, 1 - elapsed / budget)``.
        """
        now = self.clock()
        if self.start is None:
            self.start = now
        decay = max(0.0, 1.0 - (now - self.start) / (60.0 * self.minutes))
        warm = min(1.0, current_step / self.num_warmup_steps) if self.num_warmup_steps else 1.0
        return self.lr0 * warm * decay

    @checkpoints.mark_as_saver
    def save(self, path: str | Path) -> None:
        """Saves the update count and the settings (the clock restarts with each run).

        Arguments
        ---------
        path : str or pathlib.Path
            Where to save.
        """
        torch.save({"initial_value": self.lr0, "num_warmup_steps": self.num_warmup_steps,
                    "minutes": self.minutes, "current_step": self.current_step}, path)

    @checkpoints.mark_as_loader
    def load(self, path: str | Path, end_of_epoch: bool = False) -> None:
        """Restores what :meth:`save` wrote.

        Arguments
        ---------
        path : str or pathlib.Path
            Where to load from.
        end_of_epoch : bool
            Unused (SpeechBrain's loader signature).
        """
        del end_of_epoch
        data = torch.load(path, weights_only=True)
        self.lr0, self.num_warmup_steps = data["initial_value"], data["num_warmup_steps"]
        self.minutes, self.current_step = data["minutes"], data["current_step"]


class SeparationBrain(sb.Brain):
    """Training and evaluation of any gass separator (``modules["separator"]``).

    Batches are SpeechBrain ``PaddedBatch`` es of mixer items (DESIGN.md §2): ``batch.mix.data``
    ``[B, T]``, ``batch.targets.data`` ``[B, T, S]``, ``batch.num_sources``, ``batch.categories``,
    ``batch.id``.

    Hyperparameters read (``hparams`` keys): ``loss`` (required; ``(targets, estimates,
    mixtures) -> [B]``, e.g. ``!name:gass_modules.losses.pit_log_mse``); optional
    ``lr_scheduler`` (SpeechBrain scheduler: ``ReduceLROnPlateau`` / ``NewBobScheduler`` are
    called with the validation loss after each epoch, any other ``scheduler(optimizer)`` after
    each optimiser step), ``train_logger``, ``output_folder`` (evaluation outputs go to
    ``<output_folder>/eval`` unless ``eval_folder`` is given), ``sample_rate``, ``oracle``
    (e.g. :class:`IRMOracle`; evaluated beside the model), ``activity_db`` (-20),
    ``eval_save_audio`` (3 mixtures), ``eval_figures`` (2 mixtures), ``num_threads`` (torch
    intra-op threads of this process, set when the brain is built) and ``max_train_minutes``
    (a wall-clock budget: once spent, the current epoch stops, is validated and checkpointed, and
    ``fit`` returns; through SpeechBrain's ``optimizer_step_limit``). Run options
    (``max_grad_norm``, ``precision``, ``ckpt_interval_steps``/``ckpt_interval_minutes``,
    ``nonfinite_patience``, ``debug``...) are SpeechBrain's. Add ``epoch_counter`` and
    ``separator`` to the checkpointer's recoverables in the yaml; the optimiser, the scheduler and
    the brain's step counter are added here.

    Arguments
    ---------
    modules : Mapping
        Must hold ``separator`` (a ``gass_modules.lobes.base.Separator`` or any module with the
        separator contract).
    opt_class : callable
        Optimiser factory (``!name:torch.optim.Adam``).
    hparams : Mapping
        See above.
    run_opts : Mapping
        SpeechBrain run options.
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
        Preferably an :class:`AtomicCheckpointer`.

    Example
    -------
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> from gass_modules.losses import pit_log_mse
    >>> class Scale(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.gain = torch.nn.Parameter(torch.full((2,), 0.3))
    ...     def forward(self, mix):
    ...         return mix.unsqueeze(-1) * self.gain
    >>> targets = torch.randn(2, 400, 2)
    >>> items = [{"id": f"m{i}", "mix": targets[i].sum(-1), "targets": targets[i],
    ...           "num_sources": 2, "categories": ["speech", "music"]} for i in range(2)]
    >>> brain = SeparationBrain({"separator": Scale()}, lambda p: torch.optim.SGD(p, lr=0.1),
    ...                         {"loss": pit_log_mse}, run_opts={"device": "cpu"})
    >>> loader = torch.utils.data.DataLoader(items * 3, batch_size=2, collate_fn=PaddedBatch)
    >>> brain.fit(range(1), loader, progressbar=False)
    >>> brain.modules.separator.gain.data.ne(0.3).all()
    tensor(True)
    """

    def __init__(self, modules: Mapping[str, nn.Module] | None = None,
                 opt_class: Callable | None = None, hparams: Mapping | None = None,
                 run_opts: Mapping | None = None, checkpointer: Checkpointer | None = None
                 ) -> None:
        if not modules or "separator" not in modules:
            raise ValueError(f"SeparationBrain needs modules['separator'], got modules "
                             f"{sorted(modules or {})}")
        if not hparams or not callable(hparams.get("loss")):
            raise ValueError("SeparationBrain needs a callable hparams['loss'], e.g. "
                             "`loss: !name:gass_modules.losses.pit_log_mse` in the yaml")
        super().__init__(modules=modules, opt_class=opt_class, hparams=hparams,
                         run_opts=run_opts, checkpointer=checkpointer)
        if checkpointer is not None and not isinstance(checkpointer, AtomicCheckpointer):
            logger.warning("the checkpointer is not an AtomicCheckpointer: a run killed while "
                           "saving may leave a corrupted checkpoint")
        threads = hparams.get("num_threads")
        if threads is not None:  # the recipe's intra-op threads (see the GASS recipe README)
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValueError(f"num_threads must be a positive int or null, got {threads!r}")
            torch.set_num_threads(threads)
        self.skipped_nonfinite = 0  # batches skipped over the whole run (this process)
        self.train_stats: dict = {}
        self.valid_stats: dict = {}  # loss and mean SI-SNRi (2+ sources) of the last validation
        self.report: SeparationReport | None = None
        self._has_valid = False
        self._eval_examples = 0
        self._valid_si_snri = [0.0, 0]

    @property
    def separator(self) -> torch.nn.Module:
        """The separator itself, unwrapped: under DDP ``self.modules.separator`` is its
        ``DistributedDataParallel`` wrapper (SpeechBrain wraps each module in place, so
        ``raw_modules.separator`` is the wrapper too). Use it for attributes and export.

        Example
        -------
        >>> from gass_modules.losses import pit_log_mse
        >>> brain = SeparationBrain({"separator": torch.nn.Identity()},
        ...                         hparams={"loss": pit_log_mse}, run_opts={"device": "cpu"})
        >>> type(brain.separator).__name__
        'Identity'
        """
        return unwrap_module(self.modules.separator)

    # -- training -------------------------------------------------------------------------------
    def compute_forward(self, batch: PaddedBatch, stage: sb.Stage) -> torch.Tensor:
        """Separates the batch's mixtures with ``self.modules.separator``.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``mix`` (``[B, T]``).
        stage : speechbrain.Stage
            Unused (the separator is the same in every stage).

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` estimates.
        """
        mix = batch.mix.data.to(self.device)  # [B, T]
        if mix.dim() != 2:
            raise ValueError(f"expected batch.mix.data [B, T], got {tuple(mix.shape)}; the "
                             "mixer must yield mono mixtures of shape [T]")
        return self.modules.separator(mix)  # [B, T, S]

    def compute_objectives(self, predictions: torch.Tensor, batch: PaddedBatch,
                           stage: sb.Stage) -> torch.Tensor:
        """PIT thresholded log-MSE averaged over the batch (and test-set scoring at TEST).

        The loss is computed in float32 with autocast disabled, whatever the training precision.

        Arguments
        ---------
        predictions : torch.Tensor
            ``[B, T, S]`` estimates from :meth:`compute_forward`.
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``mix`` ``[B, T]`` and ``targets`` ``[B, T, S]``.
        stage : speechbrain.Stage
            At ``TEST`` the batch is also scored for the report.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        mix = batch.mix.data.to(self.device)  # [B, T]
        targets = batch.targets.data.to(self.device)  # [B, T, S]
        if targets.dim() != 3 or targets.shape[:2] != mix.shape:
            raise ValueError(f"expected batch.targets.data [B, T, S] matching mix "
                             f"{tuple(mix.shape)}, got {tuple(targets.shape)}")
        if predictions.shape != targets.shape:
            raise ValueError(f"the separator returned {tuple(predictions.shape)} but the targets "
                             f"are {tuple(targets.shape)}; set the model card's num_sources to the "
                             "mixer's number of target slots (GASS: 4)")
        if stage == sb.Stage.TEST:
            self._score_batch(batch, predictions.detach().float())
        finite = torch.stack([torch.isfinite(t).all() for t in (predictions, targets, mix)]).all()
        if not finite:  # the loss refuses NaN/Inf inputs; a NaN loss makes fit_batch skip it
            return torch.full((), math.nan, device=mix.device)
        if stage == sb.Stage.VALID:
            self._track_valid_si_snri(mix, targets, predictions.detach(), batch.num_sources)
        with torch.autocast(device_type=self.device_type, enabled=False):
            loss = self.hparams.loss(targets.float(), predictions.float(), mix.float())  # [B]
        return loss.mean()

    def _track_valid_si_snri(self, mix: torch.Tensor, targets: torch.Tensor,
                             estimates: torch.Tensor, num_sources) -> None:
        """Accumulates the SI-SNRi of present sources in mixtures of 2+ sources (validation)."""
        aligned = metrics.align_estimates(targets, estimates)  # [B, T, S]
        si_snri = metrics.si_snri(targets, aligned, mix)  # [B, S]
        multi = torch.as_tensor(num_sources, device=si_snri.device).reshape(-1, 1) >= 2  # [B, 1]
        keep = metrics.active_sources(targets) & multi  # [B, S]
        self._valid_si_snri[0] += float(si_snri[keep].sum())
        self._valid_si_snri[1] += int(keep.sum())

    def fit_batch(self, batch: PaddedBatch) -> torch.Tensor:
        """One training step; a non-finite loss skips backward and update on every rank.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            A training batch.

        Returns
        -------
        torch.Tensor
            The detached loss (on CPU).
        """
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.on_fit_batch_start(batch, should_step)
        with self.no_sync(not should_step):
            with self.training_ctx:
                outputs = self.compute_forward(batch, sb.Stage.TRAIN)
            loss = self.compute_objectives(outputs, batch, sb.Stage.TRAIN)
            finite = self._finite_everywhere(loss)
            if finite:
                self.scaler.scale(loss / self.grad_accumulation_factor).backward()
            else:
                self._skip_nonfinite(loss)
        if should_step and finite:
            self._scheduler_step()  # sets the learning rate of the update about to happen
            self.optimizers_step()
        elif should_step:
            self.zero_grad(set_to_none=True)  # drop what this accumulation window gathered
        self.on_fit_batch_end(batch, outputs, loss, should_step)
        return loss.detach().cpu()

    def _finite_everywhere(self, loss: torch.Tensor) -> bool:
        """True when the loss is finite on every DDP rank (one all-reduce under DDP)."""
        flag = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item())

    def _skip_nonfinite(self, loss: torch.Tensor) -> None:
        """Counts a skipped batch and raises once ``nonfinite_patience`` is exhausted."""
        self.nonfinite_count += 1
        self.skipped_nonfinite += 1
        value = float(loss.detach())
        logger.warning(f"non-finite loss ({value:.3g} here, or on another rank): batch skipped "
                       f"({self.nonfinite_count} this epoch, patience "
                       f"{self.nonfinite_patience})")
        if self.nonfinite_count > self.nonfinite_patience:
            raise ValueError(f"{self.nonfinite_count} non-finite losses this epoch exceed "
                             f"nonfinite_patience={self.nonfinite_patience}; lower the learning "
                             "rate, check the data for NaN/Inf, or wrap fit() in "
                             "torch.autograd.detect_anomaly() to find the cause")

    def _scheduler_step(self) -> None:
        """Advances a per-update learning-rate scheduler (Noam, warm-up, ...)."""
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None and not isinstance(scheduler, EPOCH_SCHEDULERS):
            scheduler(self.optimizer)

    def init_optimizers(self) -> None:
        """Creates the optimiser (SpeechBrain) and registers the scheduler with the checkpointer."""
        super().init_optimizers()
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if self.checkpointer is None:
            return
        known = self.checkpointer.recoverables
        if scheduler is not None and not any(obj is scheduler for obj in known.values()):
            self.checkpointer.add_recoverable("lr_scheduler", scheduler)

    def fit(self, epoch_counter: Iterable[int], train_set, valid_set=None,
            progressbar: bool | None = None, train_loader_kwargs: Mapping | None = None,
            valid_loader_kwargs: Mapping | None = None) -> None:
        """``sb.Brain.fit``, plus epoch seeding of iterable training streams.

        For a training set with ``set_epoch`` (``gass_modules.dataio.mixer.MixtureStream``) the
        stream's epoch key is set before each epoch. With SpeechBrain's
        ``looped_nominal_epoch`` (the recommended way: the loader's position is checkpointed, so a
        resumed epoch keeps its length), the stream is endless and its key is set once per run to
        the number of batches drawn before it (0 for a fresh run), so a run resumed after a kill
        draws new mixtures instead of replaying the first ones. Without validation data a
        checkpoint is saved after each training epoch.

        Arguments
        ---------
        epoch_counter : iterable
            Usually ``hparams["epoch_counter"]`` (a recoverable ``EpochCounter``).
        train_set, valid_set : Dataset or DataLoader
            Training and (optional) validation data.
        progressbar : bool, optional
            Show tqdm bars (default: unless ``--noprogressbar``).
        train_loader_kwargs, valid_loader_kwargs : dict, optional
            DataLoader options (``batch_size``, ``num_workers``, ``collate_fn``,
            ``looped_nominal_epoch`` for iterable training streams, ...).
        """
        self._has_valid = valid_set is not None
        if not isinstance(train_set, (torch.utils.data.DataLoader, LoopedLoader)):
            train_set = self.make_dataloader(train_set, stage=sb.Stage.TRAIN,
                                             **dict(train_loader_kwargs or {}))
        self._train_loader = train_set
        super().fit(epoch_counter, train_set, valid_set, progressbar,
                    valid_loader_kwargs=dict(valid_loader_kwargs or {}))

    def _seed_training_stream(self, epoch: int) -> None:
        """Sets the epoch key of an iterable training stream (see :meth:`fit`)."""
        loader = getattr(self, "_train_loader", None)
        if isinstance(loader, LoopedLoader):
            dataset = getattr(loader.loader, "dataset", None)
            if loader.iterator is None and hasattr(dataset, "set_epoch"):
                dataset.set_epoch(loader.total_steps)
        elif isinstance(loader, torch.utils.data.DataLoader):
            dataset = loader.dataset
            if isinstance(dataset, torch.utils.data.IterableDataset) and hasattr(dataset,
                                                                                 "set_epoch"):
                dataset.set_epoch(int(epoch))
                if self.step > 0:
                    logger.warning("resuming mid-epoch over an iterable dataset: the epoch starts "
                                   "over; pass looped_nominal_epoch in the train loader options "
                                   "to resume where it stopped")

    def on_fit_start(self) -> None:
        """SpeechBrain's start (DDP wrap, optimiser, recovery); starts the training clock."""
        super().on_fit_start()
        self._fit_start_time = time.monotonic()
        self._fit_start_step = self.optimizer_step  # a resumed run times its own updates
        self._update_budget = self.optimizer_step_limit
        interval = (f"{self.ckpt_interval_minutes} min" if self.ckpt_interval_minutes > 0 else
                    f"{self.ckpt_interval_steps} steps" if self.ckpt_interval_steps > 0 else "off")
        logger.info(f"gradient clipping at max_grad_norm={self.max_grad_norm}, precision "
                    f"{self.precision}, intra-epoch checkpoints: {interval}, "
                    f"{self.skipped_nonfinite} non-finite batches so far")

    def on_fit_batch_end(self, batch: PaddedBatch, outputs: torch.Tensor, loss: torch.Tensor,
                         should_step: bool) -> None:
        """Ends training once ``max_train_minutes`` is spent (same decision on every rank).

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            The batch just trained on.
        outputs : torch.Tensor
            Its estimates.
        loss : torch.Tensor
            Its loss.
        should_step : bool
            Whether the optimiser stepped.
        """
        budget = getattr(self.hparams, "max_train_minutes", None)
        if budget is None or not should_step:
            return
        spent = (time.monotonic() - self._fit_start_time) / 60.0 >= float(budget)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([int(spent)], device=loss.device)
            torch.distributed.broadcast(flag, src=0)  # rank 0's clock decides for everyone
            spent = bool(flag.item())
        if spent and self.optimizer_step_limit != self.optimizer_step:
            planned = getattr(self, "_update_budget", None)
            cut = (f" of the {planned} budgeted: the run was cut short by this safety stop, so "
                   "its result is not that of the full budget" if planned else "")
            logger.warning(f"max_train_minutes={budget} spent after {self.optimizer_step} "
                           f"updates{cut}; finishing this epoch")
            self.optimizer_step_limit = self.optimizer_step  # SpeechBrain stops the loops here

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None) -> None:
        """Seeds the training stream (TRAIN), resets the validation SI-SNRi (VALID) or the
        evaluation report (TEST).

        Arguments
        ---------
        stage : speechbrain.Stage
            The stage starting.
        epoch : int, optional
            The epoch.
        """
        if stage == sb.Stage.TRAIN:
            self._seed_training_stream(epoch)
        if stage == sb.Stage.VALID:
            self._valid_si_snri = [0.0, 0]  # sum, count
        if stage == sb.Stage.TEST:
            num = self.separator.num_sources
            self.report = SeparationReport(num_slots=int(num))
            self._eval_examples = 0

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: int | None = None) -> None:
        """Logs, schedules, checkpoints (TRAIN/VALID) or writes the evaluation report (TEST).

        Validation statistics (``self.valid_stats``, and the train log) are the loss and the mean
        SI-SNRi of the present sources of mixtures with 2+ sources.

        Arguments
        ---------
        stage : speechbrain.Stage
            The stage ending.
        stage_loss : float
            Its average loss.
        epoch : int, optional
            The epoch.
        """
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss, "skipped": self.nonfinite_count}
            self._log_progress()
            if not self._has_valid:
                self._end_of_epoch(epoch, stage_loss, {})
        elif stage == sb.Stage.VALID:
            total, count = self._valid_si_snri
            self.valid_stats = {"loss": stage_loss, "si_snri": total / count if count else math.nan}
            self._end_of_epoch(epoch, stage_loss, self.valid_stats)
        else:
            self._write_report(stage_loss)

    def _log_progress(self) -> None:
        """Logs updates done, seconds per update and, under an update budget
        (``optimizer_step_limit``), the estimated time left of the run."""
        start = getattr(self, "_fit_start_time", None)
        done = self.optimizer_step - getattr(self, "_fit_start_step", 0)
        if start is None or done <= 0:
            return
        per_update = (time.monotonic() - start) / done
        limit = self.optimizer_step_limit
        if limit is not None and limit > self.optimizer_step:
            eta = (limit - self.optimizer_step) * per_update / 60.0
            logger.info(f"update {self.optimizer_step}/{limit}, {per_update:.3f} s/update, "
                        f"ETA {eta:.1f} min")
        else:
            logger.info(f"update {self.optimizer_step}, {per_update:.3f} s/update")

    def _end_of_epoch(self, epoch: int, loss: float, valid_stats: dict) -> None:
        """Scheduler update (epoch-level), logging and the end-of-epoch checkpoint."""
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        lr = self.optimizer.param_groups[0]["lr"] if self.opt_class is not None else None
        if isinstance(scheduler, ReduceLROnPlateau) and lr is not None:
            _, lr = scheduler([self.optimizer], current_epoch=epoch, current_loss=loss)
            update_learning_rate(self.optimizer, lr)
        elif isinstance(scheduler, NewBobScheduler) and lr is not None:
            _, lr = scheduler(loss)
            update_learning_rate(self.optimizer, lr)
        train_logger = getattr(self.hparams, "train_logger", None)
        if train_logger is not None:  # log_stats is main-process-only and syncs ranks
            train_logger.log_stats(stats_meta={"epoch": epoch, "lr": lr},
                                   train_stats=self.train_stats,
                                   valid_stats=valid_stats or None)
        if self.checkpointer is not None:
            self.checkpointer.save_and_keep_only(meta={"loss": loss, "epoch": epoch},
                                                 min_keys=["loss"])

    # -- evaluation -----------------------------------------------------------------------------
    @property
    def eval_folder(self) -> Path:
        """Where evaluation outputs go: ``hparams.eval_folder`` or ``<output_folder>/eval``."""
        folder = getattr(self.hparams, "eval_folder", None)
        if folder is None:
            folder = Path(getattr(self.hparams, "output_folder", ".")) / "eval"
        return Path(folder)

    def _score_batch(self, batch: PaddedBatch, estimates: torch.Tensor) -> None:
        """Scores one test batch (model and oracle) and writes the first examples' audio/figures."""
        mix = batch.mix.data.to(estimates.device).float()  # [B, T]
        targets = batch.targets.data.to(estimates.device).float()  # [B, T, S]
        lengths = batch.mix.lengths
        oracle = getattr(self.hparams, "oracle", None)
        activity = float(getattr(self.hparams, "activity_db", -20.0))
        num_sources = [int(n) for n in torch.as_tensor(batch.num_sources).tolist()]
        for b in range(mix.shape[0]):  # per item: crop the padding PaddedBatch added
            length = max(1, int(round(float(lengths[b]) * mix.shape[1])))
            x, ref = mix[b : b + 1, :length], targets[b : b + 1, :length]
            systems = {"model": metrics.align_estimates(ref, estimates[b : b + 1, :length])}
            if oracle is not None:
                systems["irm"] = oracle(x, ref)
            for name, est in systems.items():
                self.report.add(name, [batch.id[b]], [num_sources[b]], [batch.categories[b]],
                                score_separation(x, ref, est, activity_db=activity))
            if if_main_process():
                self._save_example(batch.id[b], x[0], ref[0], systems)

    def _save_example(self, snt_id: str, mix: torch.Tensor, targets: torch.Tensor,
                      systems: Mapping[str, torch.Tensor]) -> None:
        """Writes audio and a figure for the first ``eval_save_audio`` / ``eval_figures`` items."""
        index = self._eval_examples
        self._eval_examples += 1
        rate = int(getattr(self.hparams, "sample_rate", self.separator.sample_rate))
        if index < int(getattr(self.hparams, "eval_save_audio", 3)):
            self.save_audio(snt_id, mix, targets, systems["model"][0])
        if index < int(getattr(self.hparams, "eval_figures", 2)):
            names = {"model": "model", "irm": "IRM"}
            plot_separation(self.eval_folder / "figures" / f"{_safe_name(snt_id)}.png", mix,
                            targets, {names[k]: v[0] for k, v in systems.items()}, rate,
                            title=str(snt_id))

    def save_audio(self, snt_id: str, mix: torch.Tensor, targets: torch.Tensor,
                   estimates: torch.Tensor) -> Path:
        """Writes ``mix.wav``, ``ref_<k>.wav`` and ``est_<k>.wav`` under ``eval/audio/<id>/``.

        Files are 32-bit float WAV (no clipping, levels as estimated), written with soundfile.

        Arguments
        ---------
        snt_id : str
            Mixture id (made file-system safe).
        mix : torch.Tensor
            ``[T]`` mixture.
        targets : torch.Tensor
            ``[T, S]`` references.
        estimates : torch.Tensor
            ``[T, S]`` estimates aligned with the references.

        Returns
        -------
        pathlib.Path
            The folder written.
        """
        if mix.dim() != 1 or targets.dim() != 2 or estimates.shape != targets.shape:
            raise ValueError(f"expected mix [T], targets and estimates [T, S], got "
                             f"{tuple(mix.shape)}, {tuple(targets.shape)}, "
                             f"{tuple(estimates.shape)}")
        rate = int(getattr(self.hparams, "sample_rate", self.separator.sample_rate))
        folder = self.eval_folder / "audio" / _safe_name(snt_id)
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / "mix.wav", mix.cpu().numpy(), rate, subtype="FLOAT")
        for s in range(targets.shape[1]):
            sf.write(folder / f"ref_{s + 1}.wav", targets[:, s].cpu().numpy(), rate,
                     subtype="FLOAT")
            sf.write(folder / f"est_{s + 1}.wav", estimates[:, s].cpu().numpy(), rate,
                     subtype="FLOAT")
        return folder

    def _write_report(self, test_loss: float) -> None:
        """Writes ``per_mixture.csv``, ``summary.md`` and ``headline.json`` (updates, parameters
        and the :meth:`_headline` means) from the main process and logs the summary."""
        if self.report is None or not self.report.rows:
            logger.warning("evaluation saw no mixtures: no report written")
            return
        summary = self.report.summary_markdown()
        if if_main_process():
            self.report.write_csv(self.eval_folder / "per_mixture.csv")
            model = self.separator
            size = sum(p.numel() for p in model.parameters()) / 1e6
            text = (f"Model: {type(model).__name__}, {size:.2f} M parameters, "
                    f"{model.sample_rate} Hz, {model.num_sources} outputs. "
                    f"Test loss (PIT log-MSE): {test_loss:.3f} dB\n\n{summary}")
            (self.eval_folder / "summary.md").write_text(text)
            headline = {"updates": int(self.optimizer_step), "parameters": int(size * 1e6),
                        **self._headline(test_loss)}
            (self.eval_folder / "headline.json").write_text(json.dumps(headline, indent=1))
            logger.info(f"evaluation report in {self.eval_folder}\n{summary}")
        train_logger = getattr(self.hparams, "train_logger", None)
        if train_logger is not None:  # log_stats is main-process-only and syncs ranks
            train_logger.log_stats(stats_meta={"test": "final"},
                                   test_stats=self._headline(test_loss))

    def _headline(self, test_loss: float) -> dict:
        """Test loss and the mean SI-SNRi per number of sources and per pair type."""
        stats = {"loss": test_loss}
        for system in self.report.systems:
            for n in sorted({r["num_sources"] for r in self.report.rows}):
                if n >= 2:
                    stats[f"{system}_si_snri_{n}src"] = self.report.means(system, n)["si_snri"]
            for pair, v in self.report.pair_means(system).items():
                stats[f"{system}_si_snri_{pair}"] = v["si_snri"]
        return stats


__all__ = ["AtomicCheckpointer", "IRMOracle", "SeparationBrain", "SeparationReport",
           "WallClockLinearDecay", "included_card", "load_recipe", "plot_separation",
           "power_db", "score_separation"]
