"""SeparationBrain: the one training and evaluation loop that every gass recipe uses.

Training follows SpeechBrain's ``sb.Brain`` with the changes separation needs:

* the separator is called through ``self.modules`` (so a DDP wrapper all-reduces gradients;
  SpeechBrain's own separation recipes call ``self.hparams.*`` and silently skip that);
* the objective is the PIT thresholded log-MSE of ``gass_modules.losses`` (``[B]`` per mixture),
  computed in float32 outside autocast;
* a non-finite loss skips the backward pass and the update on *every* rank (one all-reduce of a
  flag), is counted, and stops training once ``nonfinite_patience`` is exhausted (SpeechBrain
  1.1.2 counts it but still back-propagates the NaN);
* on a GPU the step is sync-free (nothing reads a tensor value on the host): a non-finite loss
  makes the update a no-op on the device
  (:class:`~gass_modules.training.training_step.GuardedUpdate`),
  and the loss average and the skip count are read every ``sync_interval`` steps;
* ``compile_regions: true`` (``--compile_regions=True``) compiles the separator's repeated blocks
  (:mod:`gass_modules.training.compile_regions`) and ``cuda_graphs: true`` (``--cuda_graphs=True``)
  captures the whole step in one CUDA graph (:mod:`gass_modules.training.training_step`); both hold
  the
  training batches to one shape (``drop_last``, a clear error on another shape);
* the learning-rate scheduler is checkpointed with the model, optimiser and epoch counter;
* ``gass_modules.training.checkpointing.AtomicCheckpointer`` writes each checkpoint into a staging
  folder and renames it into place, so a run killed while saving never leaves a half-written
  checkpoint behind (SpeechBrain writes ``CKPT.yaml`` first and the parameter files after it).

Evaluation (``brain.evaluate(test_set)``) separates each test item and hands it to a scorer
(:mod:`gass_modules.evaluation.scorer`), then writes the scorer's files and ``headline.json``
under ``<output_folder>/eval/``; ``export_model_folder`` writes the model folder at the end of a
recipe. Both are :class:`gass_modules.evaluation.brain_evaluation.Evaluator`'s, which documents them
and
works alone; the brain delegates to an evaluator of its separator and hyperparameters.

Authors
 * gass developers 2026
"""

from __future__ import annotations

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
from torch import nn

from gass_modules import metrics
from gass_modules.evaluation.brain_evaluation import Evaluator
from gass_modules.evaluation.scorer import Scorer
from gass_modules.model_folder.folder import unwrap_module
from gass_modules.order import check_no_former_names, resolve_order
from gass_modules.training.brain_step import FastStepMixin
from gass_modules.training.checkpointing import AtomicCheckpointer
from gass_modules.training.compile_regions import CompiledRegions
from gass_modules.training.training_step import GraphedTrainStep

logger = logging.getLogger(__name__)

EPOCH_SCHEDULERS = (ReduceLROnPlateau, NewBobScheduler)


class SeparationBrain(FastStepMixin, sb.Brain):
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
    output order, for chunked evaluation and the model folder, :mod:`gass_modules.order`;
    ``eval_alignment`` and ``fixed_order``, its names before 2.0.0, are an error that says
    which ``order`` to write), ``chunk_seconds`` (10) and
    ``chunk_overlap`` (0.25) (recordings are separated in such chunks), ``model_folder``
    (:meth:`export_model_folder`), ``num_threads`` (torch
    intra-op threads of this process, set when the brain is built) and ``max_train_minutes``
    (a wall-clock budget: once spent, the current epoch stops, is validated and checkpointed, and
    ``fit`` returns; through SpeechBrain's ``optimizer_step_limit``), ``compile_regions``
    (bool, default false: compile the separator's repeated blocks for training; evaluation stays
    eager), ``cuda_graphs`` (bool, default false: capture forward, loss, backward, clipping and
    a fused capturable Adam in one CUDA graph after 3 warm-up steps; on CPU, or when the step
    cannot be captured, one log line says why and the eager step runs) and ``sync_interval``
    (50: steps between host reads of the loss average and the non-finite count on a GPU). Run
    options
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
        Preferably a ``gass_modules.training.checkpointing.AtomicCheckpointer``.

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
        check_no_former_names(hparams, "the recipe")
        self.evaluation: Evaluator | None = None  # the running or last evaluation
        self.order = resolve_order(hparams.get("order"))
        self._has_valid = False
        self._valid_si_snri = [0.0, 0]
        self.compile_regions = _flag(hparams, "compile_regions")
        self.cuda_graphs = _flag(hparams, "cuda_graphs")
        interval = hparams.get("sync_interval", 50)
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"sync_interval must be a positive int (steps), got {interval!r}")
        self.sync_interval = interval
        # Sync-free step (on-device skip of non-finite updates, counters read every
        # sync_interval steps): on a GPU, where a host read stalls the launch queue. On the CPU a
        # read costs nothing and the eager step skips a non-finite batch's backward instead.
        # Tests set it to exercise the GPU logic on the CPU. fp16's GradScaler reads on the host.
        self.sync_free = self.device_type != "cpu" and self.precision != "fp16"
        self.regions: CompiledRegions | None = None
        self.graphed_step: GraphedTrainStep | None = None
        self._graph_fallback: str | None = None
        self._static_shape: tuple | None = None
        self._counters: torch.Tensor | None = None  # [loss sum, finite steps, skipped steps]
        self._window_ok: torch.Tensor | None = None
        self._avg_loss = math.nan

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

    # -- evaluation and export (gass_modules.evaluation.brain_evaluation)
    # ----------------------------------
    def evaluator(self) -> Evaluator:
        """A new :class:`~gass_modules.evaluation.brain_evaluation.Evaluator` of this brain's
        separator (as
        the brain runs it: wrapped by DDP or compiled), hyperparameters, device and ``order``.

        Returns
        -------
        Evaluator
            ``evaluate`` starts one per test set (:attr:`evaluation`, its scorer
            :attr:`scorer`); the export and ``separate_recording`` use a fresh one.

        Example
        -------
        >>> from gass_modules.losses import pit_log_mse
        >>> brain = SeparationBrain({"separator": ScaledCopies([0.5, 0.5], 8000)},
        ...                         hparams={"loss": pit_log_mse, "order": "fixed"},
        ...                         run_opts={"device": "cpu"})
        >>> evaluator = brain.evaluator()
        >>> evaluator.separator is brain.modules.separator, evaluator.order
        (True, 'fixed')
        """
        return Evaluator(self.modules.separator, self.hparams, device=self.device,
                         order=self.order)

    @property
    def eval_folder(self) -> Path:
        """Where evaluation outputs go: ``hparams.eval_folder`` or ``<output_folder>/eval``
        (:attr:`~gass_modules.evaluation.brain_evaluation.Evaluator.eval_folder`)."""
        return self.evaluator().eval_folder

    def separate_recording(self, mix: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``[C, T]`` recording at ``sample_rate`` -> ``[C, T, S]`` estimates, separated chunk by
        chunk (:meth:`gass_modules.evaluation.brain_evaluation.Evaluator.separate_recording`)."""
        return self.evaluator().separate_recording(mix, sample_rate)

    def export_model_folder(self, card: str | os.PathLike | None = None,
                            folder: str | os.PathLike | None = None) -> Path | None:
        """Writes the separator's model folder from the main process; returns it (None on other
        processes):
        :meth:`gass_modules.evaluation.brain_evaluation.Evaluator.export_model_folder`."""
        return self.evaluator().export_model_folder(card, folder)

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
        if stage == sb.Stage.TEST:
            return (self.evaluation or self.evaluator()).separate_batch(batch)
        mix = batch.mix.data.to(self.device, non_blocking=True)  # [B, T]
        if mix.dim() != 2:
            raise ValueError(f"expected batch.mix.data [B, T], got {tuple(mix.shape)}; the "
                             "mixer must yield mono mixtures of shape [T]")
        if stage == sb.Stage.TRAIN and self.sync_free:  # a NaN batch is skipped, not refused
            mix = torch.where(torch.isfinite(mix), mix, 0.0)
        return self.modules.separator(mix)  # [B, T, S]

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
            return (self.evaluation or self.evaluator()).score_batch(predictions, batch)
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
        if stage == sb.Stage.TRAIN and self.sync_free:
            return self._guarded_loss(predictions, targets, mix, finite)
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
            The detached loss (on CPU; on the training device in the sync-free and graphed
            steps, which do not copy it to the host).
        """
        if self.regions is not None or self.cuda_graphs:
            self._check_static_shape(batch)
        if self.graphed_step is not None:
            return self._fit_batch_graphed(batch)
        if self.sync_free:
            return self._fit_batch_sync_free(batch)
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.on_fit_batch_start(batch, should_step)
        with self.no_sync(not should_step):
            outputs, loss = self._train_forward(batch)
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

    def _check_patience(self) -> None:
        """Raises once the epoch's non-finite losses exceed ``nonfinite_patience``."""
        if self.nonfinite_count > self.nonfinite_patience:
            raise ValueError(f"{self.nonfinite_count} non-finite losses this epoch exceed "
                             f"nonfinite_patience={self.nonfinite_patience}; lower the learning "
                             "rate, check the data for NaN/Inf, or wrap fit() in "
                             "torch.autograd.detect_anomaly() to find the cause")

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
        self._check_patience()

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

        For a training set with ``set_epoch``
        (``gass_modules.dataio.mixture_sets.MixtureStream``) the stream's epoch key is set before
        each epoch. With SpeechBrain's
        ``looped_nominal_epoch`` (the recommended way: the loader's position is checkpointed, so a
        resumed epoch keeps its length), the stream is endless and its key is set once per run to
        the number of batches drawn before it (0 for a fresh run), so a run resumed after a kill
        draws new mixtures instead of replaying the first ones. Without validation data a
        checkpoint is saved after each training epoch. With ``compile_regions`` or
        ``cuda_graphs`` the training loader drops the last incomplete batch (``drop_last``).

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
            train_loader_kwargs = dict(train_loader_kwargs or {})
            if self.compile_regions or self.cuda_graphs:  # one batch shape for the whole run
                train_loader_kwargs.setdefault("drop_last", True)
            train_set = self.make_dataloader(train_set, stage=sb.Stage.TRAIN,
                                             **train_loader_kwargs)
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
        self._prepare_fast_step()
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
            self._counters, self._window_ok, self._avg_loss = None, None, math.nan
        if self.regions is not None:  # compiled for the training shape; evaluation is eager
            (self.regions.enable if stage == sb.Stage.TRAIN else self.regions.disable)()
        if stage == sb.Stage.VALID:
            self._valid_si_snri = [0.0, 0]  # sum, count
        if stage == sb.Stage.TEST:
            self.evaluation = self.evaluator()
            self.scorer = self.evaluation.start()

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
            if self.sync_free and self._counters is not None:
                self._read_counters()
                stage_loss = self._avg_loss
            self.train_stats = {"loss": stage_loss, "skipped": self.nonfinite_count}
            self._log_progress()
            if not self._has_valid:
                self._end_of_epoch(epoch, stage_loss, {})
        elif stage == sb.Stage.VALID:
            total, count = self._valid_si_snri
            self.valid_stats = {"loss": stage_loss, "si_snri": total / count if count else math.nan}
            self._end_of_epoch(epoch, stage_loss, self.valid_stats)
        else:
            self.evaluation.finish(stage_loss, updates=self.optimizer_step)

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


def _flag(hparams: Mapping, key: str) -> bool:
    """A boolean recipe switch (``key: true`` in the yaml or ``--key=True``), checked."""
    value = hparams.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


__all__ = ["SeparationBrain"]
