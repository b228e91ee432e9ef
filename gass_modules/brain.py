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
* ``gass_modules.checkpointing.AtomicCheckpointer`` writes each checkpoint into a staging
  folder and renames it into place, so a run killed while saving never leaves a half-written
  checkpoint behind (SpeechBrain writes ``CKPT.yaml`` first and the parameter files after it).

Evaluation (``brain.evaluate(test_set)``) separates each test item and hands it to a scorer
(:mod:`gass_modules.evaluation.scorer`: ``add`` / ``summary`` / ``write``), then writes the
scorer's files, ``headline.json`` (updates, parameters, test loss and the scorer's summary) and
logs the summary, under ``<output_folder>/eval/``. Mixer items (``mix [T]`` at the model's rate)
are separated as a batch; recordings (benchmark test items: ``mix [C, T]`` with their own
``sample_rate``) one by one, chunk by chunk at their own rate, in bounded memory
(:func:`gass_modules.chunking.separate_chunked`, with the recipe's ``chunk_seconds``,
``chunk_overlap`` and ``order``). The scorer is the recipe's ``scorer`` (e.g.
``gass_modules.evaluation.benchmarks.BenchmarkScorer``, each benchmark's metrics) or, by default,
``gass_modules.evaluation.report.SeparationReport``, the GASS evaluation:

* ``per_mixture.csv``: one row per mixture and system (``model`` and the ``irm`` oracle) with
  per-source SI-SNR and SI-SNRi, output energies, and over/under-separation flags;
* ``summary.md``: tables by number of sources and by source category, model beside the
  ``gass_modules.evaluation.oracle.IRMOracle`` (STFT ideal ratio mask), as GASS reports it;
* ``audio/<id>/*.wav`` (estimates, references, mixture) and ``figures/<id>.png`` (spectrograms)
  for the first few mixtures.

:meth:`SeparationBrain.export_model_folder` writes the model folder at the end of a recipe (the
GASS recipe and the benchmark recipes call it).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataloader import LoopedLoader
from speechbrain.nnet.schedulers import NewBobScheduler, ReduceLROnPlateau, update_learning_rate
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import if_main_process
from torch import nn

from gass_modules import metrics
from gass_modules.checkpointing import AtomicCheckpointer
from gass_modules.chunking import resolve_order, separate_chunked
from gass_modules.evaluation.report import SeparationReport
from gass_modules.evaluation.scorer import Scorer
from gass_modules.model_folder import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP,
    save_model_folder,
    unwrap_module,
)

logger = logging.getLogger(__name__)

EPOCH_SCHEDULERS = (ReduceLROnPlateau, NewBobScheduler)


class SeparationBrain(sb.Brain):
    """Training and evaluation of any gass separator (``modules["separator"]``).

    Batches are SpeechBrain ``PaddedBatch`` es of mixer items (docs/architecture.md, "Mixer item"):
    ``batch.mix.data`` ``[B, T]``, ``batch.targets.data`` ``[B, T, S]``, ``batch.num_sources``,
    ``batch.categories``, ``batch.id``.

    Hyperparameters read (``hparams`` keys): ``loss`` (required; ``(targets, estimates,
    mixtures) -> [B]``, e.g. ``!name:gass_modules.losses.pit_log_mse``); optional
    ``lr_scheduler`` (SpeechBrain scheduler: ``ReduceLROnPlateau`` / ``NewBobScheduler`` are
    called with the validation loss after each epoch, any other ``scheduler(optimizer)`` after
    each optimiser step), ``train_logger``, ``output_folder`` (evaluation outputs go to
    ``<output_folder>/eval`` unless ``eval_folder`` is given), ``sample_rate``, ``oracle``
    (e.g. ``gass_modules.evaluation.oracle.IRMOracle``; evaluated beside the model),
    ``activity_db`` (-20),
    ``eval_save_audio`` (3 mixtures), ``eval_figures`` (2 mixtures) (these three for the
    default scorer), ``scorer`` (a factory of the evaluation's scorer, e.g.
    ``!name:gass_modules.evaluation.benchmarks.BenchmarkScorer``; default ``SeparationReport``),
    ``eval_title`` (the summary's heading), ``order`` (``aligned`` / ``fixed``: the model's
    output order, for chunked evaluation and the model folder; the deprecated
    ``eval_alignment: oracle|fixed`` means the same), ``chunk_seconds`` (10) and
    ``chunk_overlap`` (0.25) (recordings are separated in such chunks), ``model_folder``
    (:meth:`export_model_folder`), ``num_threads`` (torch
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
        Preferably a ``gass_modules.checkpointing.AtomicCheckpointer``.

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
        limit = self.optimizer_step_limit
        if isinstance(limit, str):  # SpeechBrain 1.1.2 leaves --optimizer_step_limit=N as text
            if not limit.strip().isdigit():
                raise ValueError(f"optimizer_step_limit must be a whole number of updates, got "
                                 f"{limit!r}")
            self.optimizer_step_limit = int(limit)
        threads = hparams.get("num_threads")
        if threads is not None:  # the recipe's intra-op threads (see the GASS recipe README)
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValueError(f"num_threads must be a positive int or null, got {threads!r}")
            torch.set_num_threads(threads)
        self.skipped_nonfinite = 0  # batches skipped over the whole run (this process)
        self.train_stats: dict = {}
        self.valid_stats: dict = {}  # loss and mean SI-SNRi (2+ sources) of the last validation
        self.scorer: Scorer | None = None  # the last evaluation's (see on_stage_start)
        self.order = resolve_order(hparams.get("order"),
                                   eval_alignment=hparams.get("eval_alignment"))
        self._has_valid = False
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
    def compute_forward(self, batch: PaddedBatch, stage: sb.Stage
                        ) -> torch.Tensor | list[torch.Tensor]:
        """Separates the batch's mixtures with ``self.modules.separator``.

        At TEST, a batch of recordings (items with their own ``sample_rate``, ``mix [C, T]``)
        is separated item by item with :meth:`separate_recording`.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``mix`` (``[B, T]``; recordings: ``[B, C, T]`` and ``sample_rate``).
        stage : speechbrain.Stage
            TEST separates recordings chunk by chunk; otherwise unused.

        Returns
        -------
        torch.Tensor or list of torch.Tensor
            ``[B, T, S]`` estimates; for recordings, ``[C, T, S]`` per item.
        """
        mix = batch.mix.data.to(self.device)  # [B, T]
        if stage == sb.Stage.TEST and _holds_recordings(batch):
            return [self.separate_recording(mix[b], int(batch.sample_rate[b]))
                    for b in range(mix.shape[0])]
        if mix.dim() != 2:
            raise ValueError(f"expected batch.mix.data [B, T], got {tuple(mix.shape)}; the "
                             "mixer must yield mono mixtures of shape [T]")
        return self.modules.separator(mix)  # [B, T, S]

    def separate_recording(self, mix: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Separates one whole recording at its own rate, chunk by chunk, in bounded memory.

        :func:`gass_modules.chunking.separate_chunked` with the model (resampled to and from its
        rate when they differ), the recipe's ``chunk_seconds`` and ``chunk_overlap``, and
        ``order``; the channels are separated one by one, their sources matched to channel 0's.

        Arguments
        ---------
        mix : torch.Tensor
            ``[C, T]`` recording.
        sample_rate : int
            Its rate (Hz).

        Returns
        -------
        torch.Tensor
            ``[C, T, S]`` estimates in the model's output order, float32 on the brain's device.

        Example
        -------
        >>> from gass_modules.losses import pit_log_mse
        >>> brain = SeparationBrain({"separator": ScaledCopies([0.5, 0.25], 8000)},
        ...                         hparams={"loss": pit_log_mse, "chunk_seconds": 0.5},
        ...                         run_opts={"device": "cpu"})
        >>> brain.separate_recording(torch.ones(2, 44100), 44100).shape  # 1 s, stereo, 44.1 kHz
        torch.Size([2, 44100, 2])
        """
        return separate_chunked(
            self.modules.separator, mix.float(), sample_rate=int(sample_rate),
            model_rate=int(self.separator.sample_rate),
            chunk_seconds=float(getattr(self.hparams, "chunk_seconds", DEFAULT_CHUNK_SECONDS)),
            overlap=float(getattr(self.hparams, "chunk_overlap", DEFAULT_OVERLAP)),
            order=self.order, rows="channels", device=self.device)

    def compute_objectives(self, predictions: torch.Tensor | list[torch.Tensor],
                           batch: PaddedBatch, stage: sb.Stage) -> torch.Tensor:
        """PIT thresholded log-MSE averaged over the batch (and test-set scoring at TEST).

        The loss is computed in float32 with autocast disabled, whatever the training precision.
        At TEST each item is scored by the scorer (which aligns the estimates to the
        references) and the loss is the mean over items of the recipe's loss on the aligned
        estimates, each item cropped to its own length.

        Arguments
        ---------
        predictions : torch.Tensor or list of torch.Tensor
            ``[B, T, S]`` estimates from :meth:`compute_forward` (recordings: ``[C, T, S]`` per
            item).
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``mix`` ``[B, T]`` and ``targets`` ``[B, T, S]``.
        stage : speechbrain.Stage
            At ``TEST`` the batch is also scored.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        if stage == sb.Stage.TEST:
            return self._score_test_batch(predictions, batch)
        mix = batch.mix.data.to(self.device)  # [B, T]
        targets = batch.targets.data.to(self.device)  # [B, T, S]
        if targets.dim() != 3 or targets.shape[:2] != mix.shape:
            raise ValueError(f"expected batch.targets.data [B, T, S] matching mix "
                             f"{tuple(mix.shape)}, got {tuple(targets.shape)}")
        if predictions.shape != targets.shape:
            raise ValueError(f"the separator returned {tuple(predictions.shape)} but the targets "
                             f"are {tuple(targets.shape)}; set the model card's num_sources to the "
                             "mixer's number of target slots (GASS: 4)")
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
        evaluation's scorer (TEST: a new one from ``hparams.scorer``, or a ``SeparationReport``).

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
            self.scorer = self._new_scorer()

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: int | None = None) -> None:
        """Logs, schedules, checkpoints (TRAIN/VALID) or writes the evaluation (TEST).

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
            self._write_evaluation(stage_loss)

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

    def _new_scorer(self) -> Scorer:
        """The evaluation's scorer: ``hparams.scorer()`` (a factory, e.g. ``!name:``) or the GASS
        report with the ``oracle``, ``activity_db``, ``eval_save_audio`` and ``eval_figures``
        hyperparameters."""
        factory = getattr(self.hparams, "scorer", None)
        if factory is None:
            hp = self.hparams
            return SeparationReport(num_slots=int(self.separator.num_sources),
                                    oracle=getattr(hp, "oracle", None),
                                    activity_db=float(getattr(hp, "activity_db", -20.0)),
                                    save_audio=int(getattr(hp, "eval_save_audio", 3)),
                                    figures=int(getattr(hp, "eval_figures", 2)))
        scorer = factory() if callable(factory) else factory
        if not isinstance(scorer, Scorer):
            raise TypeError(f"hparams['scorer'] must make a scorer (add, summary, write: "
                            f"gass_modules.evaluation.scorer), e.g. `scorer: !name:gass_modules."
                            f"evaluation.benchmarks.BenchmarkScorer`; got {type(scorer).__name__}")
        return scorer

    def _score_test_batch(self, predictions: torch.Tensor | list[torch.Tensor],
                          batch: PaddedBatch) -> torch.Tensor:
        """Hands each test item to the scorer and returns the mean recipe loss on the aligned
        estimates (NaN when an item's estimates are not finite)."""
        if isinstance(predictions, list):  # recordings: [C, T, S] each, at their own rate
            items = [(batch.mix.data[b], batch.targets.data[b], est,
                      int(batch.sample_rate[b])) for b, est in enumerate(predictions)]
        else:  # mixer items: [B, T] at the model's rate, cropped to their own lengths
            mix, targets = batch.mix.data, batch.targets.data
            if targets.dim() != 3 or targets.shape[:2] != mix.shape:
                raise ValueError(f"expected batch.targets.data [B, T, S] matching mix "
                                 f"{tuple(mix.shape)}, got {tuple(targets.shape)}")
            rate = int(getattr(self.hparams, "sample_rate", self.separator.sample_rate))
            items = []
            for b in range(mix.shape[0]):
                length = max(1, int(round(float(batch.mix.lengths[b]) * mix.shape[1])))
                items.append((mix[b : b + 1, :length], targets[b : b + 1, :length],
                              predictions[b : b + 1, :length], rate))
        num_sources = torch.as_tensor(batch.num_sources).reshape(-1).tolist()
        losses = []
        for b, (mix, targets, est, rate) in enumerate(items):
            est = est.detach().float()
            device = est.device
            mix, targets = mix.to(device).float(), targets.to(device).float()  # [C, T(, S)]
            systems = self.scorer.add(str(batch.id[b]), mix, targets, est, rate,
                                      num_sources=int(num_sources[b]),
                                      categories=list(batch.categories[b]))
            aligned = systems["model"].to(device).float()
            if not torch.isfinite(aligned).all():
                losses.append(torch.full((), math.nan, device=device))
                continue
            with torch.autocast(device_type=device.type, enabled=False):
                losses.append(self.hparams.loss(targets, aligned, mix).mean())
        return torch.stack(losses).mean()

    def _write_evaluation(self, test_loss: float) -> None:
        """Writes the scorer's files and ``headline.json`` (updates, parameters, test loss and the
        scorer's summary) from the main process and logs the summary."""
        model = self.separator
        size = sum(p.numel() for p in model.parameters()) / 1e6
        loss = self.hparams.loss
        name = getattr(getattr(loss, "func", loss), "__name__", "loss")
        title = str(getattr(self.hparams, "eval_title", "") or
                    f"Model: {type(model).__name__}, {size:.2f} M parameters, "
                    f"{model.sample_rate} Hz, {model.num_sources} outputs. Test loss "
                    f"({name}): {test_loss:.3f} dB")
        stats = {"loss": test_loss, **self.scorer.summary()}
        if if_main_process():
            written = self.scorer.write(self.eval_folder, title)
            if not written:
                return
            headline = {"updates": int(self.optimizer_step), "parameters": int(size * 1e6),
                        **stats}
            (self.eval_folder / "headline.json").write_text(json.dumps(headline, indent=1))
            summary = next((p for p in written if p.name == "summary.md"), None)
            logger.info(f"evaluation in {self.eval_folder}\n"
                        f"{summary.read_text() if summary else stats}")
        train_logger = getattr(self.hparams, "train_logger", None)
        if train_logger is not None:  # log_stats is main-process-only and syncs ranks
            train_logger.log_stats(stats_meta={"test": getattr(self.hparams, "eval_title", "") or
                                               "final"}, test_stats=stats)

    def export_model_folder(self, card: str | os.PathLike | None = None,
                            folder: str | os.PathLike | None = None) -> Path | None:
        """Writes the separator's model folder (``save_model_folder``) from the main process.

        The one export of every recipe (the GASS recipe and ``run_benchmark``): the separator as
        it is now (after ``evaluate(min_key="loss")``, the best checkpoint), described by itself
        (its class and constructor arguments), with the recipe's ``chunk_seconds`` /
        ``chunk_overlap`` (defaults 10 s, 0.25) and ``order``. The recipe's model card, when
        given, is built and checked against the separator (the folder is written from the
        separator either way). An existing folder is replaced.

        Arguments
        ---------
        card : str or os.PathLike, optional
            The model card as trained (``gass_modules.recipe.included_card``), path or yaml text,
            to check the separator against.
        folder : str or os.PathLike, optional
            Where to write (default: ``hparams.model_folder``).

        Returns
        -------
        pathlib.Path or None
            The folder (None on other processes than the main one).

        Example
        -------
        >>> from gass_modules.inference import GASSSeparator
        >>> from gass_modules.losses import fixed_order_log_mse
        >>> tmp = getfixture("tmp_path")
        >>> card = ("sample_rate: 8000\\nnum_sources: 2\\nseparator: !new:tests.doubles."
        ...         "ScaledCopies\\n    gains: [1.0, 1.0]\\n    sample_rate: !ref <sample_rate>\\n")
        >>> brain = SeparationBrain({"separator": ScaledCopies([0.5, 0.25], 8000)},
        ...                         hparams={"loss": fixed_order_log_mse, "order": "fixed",
        ...                                  "model_folder": tmp / "model"},
        ...                         run_opts={"device": "cpu"})
        >>> folder = brain.export_model_folder(card)
        >>> GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"}).order
        'fixed'
        """
        if folder is None:
            folder = getattr(self.hparams, "model_folder", None)
        if folder is None:
            raise ValueError("export_model_folder needs a folder: pass one or set model_folder "
                             "in the recipe")
        if not if_main_process():
            return None
        path = save_model_folder(
            self.separator, folder, card=card, overwrite=True,
            chunk_seconds=float(getattr(self.hparams, "chunk_seconds", DEFAULT_CHUNK_SECONDS)),
            overlap=float(getattr(self.hparams, "chunk_overlap", DEFAULT_OVERLAP)),
            order=self.order)
        logger.info(f"model folder for GASSSeparator.from_hparams(source=...): {path}")
        return path


def _holds_recordings(batch: PaddedBatch) -> bool:
    """Whether a test batch holds whole recordings at their own rate (benchmark evaluation
    items carry ``sample_rate``; mixer items are at the model's rate)."""
    return hasattr(batch, "sample_rate")


__all__ = ["SeparationBrain"]
