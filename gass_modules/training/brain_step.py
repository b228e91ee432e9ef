"""The fast training step of :class:`~gass_modules.training.brain.SeparationBrain`: sync-free,
compiled
regions, or one CUDA graph (:class:`FastStepMixin`, which ``SeparationBrain`` inherits).

* Sync-free step (on a GPU): backward always runs, a non-finite loss makes its update a no-op on
  the device (:class:`~gass_modules.training.training_step.GuardedUpdate`; the loss is NaN and its
  gradients finite zeros, see :meth:`FastStepMixin._guarded_loss`), and the loss average and the
  count of skipped steps live on the device and are read every ``sync_interval`` steps, when
  ``nonfinite_patience`` is checked.
* ``compile_regions``: the separator's repeated blocks compiled for training
  (:mod:`gass_modules.training.compile_regions`).
* ``cuda_graphs``: the step captured in one CUDA graph
  (:class:`~gass_modules.training.training_step.GraphedTrainStep`), or one log line saying why not.

Both switches hold training to one batch shape (:meth:`FastStepMixin._check_static_shape`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch

from gass_modules.sync_free import sync_free as sync_free_mode  # no host checks in lobes, loss
from gass_modules.training.compile_regions import compile_regions
from gass_modules.training.training_step import (
    GraphedTrainStep,
    GuardedUpdate,
    cuda_graph_blocker,
    make_fused,
)

# one logger for the training loop's lines
logger = logging.getLogger("gass_modules.training.brain")


class FastStepMixin:
    """The sync-free, compiled and graphed training steps of ``SeparationBrain``.

    Relies on the brain's attributes (``sync_free``, ``sync_interval``, ``compile_regions``,
    ``cuda_graphs``, ``regions``, ``graphed_step``, the optimiser and SpeechBrain's run options)
    and on its ``compute_forward`` / ``compute_objectives`` / ``_scheduler_step``.

    Example
    -------
    >>> from gass_modules.training.brain import SeparationBrain
    >>> issubclass(SeparationBrain, FastStepMixin)
    True
    """

    def _guarded_loss(self, predictions: torch.Tensor, targets: torch.Tensor,
                      mix: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        """The training loss without a host read: NaN when an input is not finite.

        Non-finite inputs are zeroed before the loss (which then never sees them) and the result
        is replaced by NaN, so the gradients are finite zeros and the update is skipped on the
        device (:meth:`_step_sync_free`).
        """
        zero = torch.zeros((), device=mix.device, dtype=predictions.dtype)
        predictions, targets, mix = (torch.where(finite, t, zero)
                                     for t in (predictions, targets, mix))
        with torch.autocast(device_type=self.device_type, enabled=False):
            loss = self.hparams.loss(targets.float(), predictions.float(), mix.float()).mean()
        return torch.where(finite, loss, torch.full_like(loss, math.nan))

    def _train_forward(self, batch: PaddedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (under the training precision) and loss of a training batch."""
        with self.training_ctx:
            outputs = self.compute_forward(batch, sb.Stage.TRAIN)
        return outputs, self.compute_objectives(outputs, batch, sb.Stage.TRAIN)

    def _fit_batch_sync_free(self, batch: PaddedBatch, scheduled: bool = False) -> torch.Tensor:
        """The eager step without host reads: backward always runs (a non-finite batch's
        gradients are finite zeros, see :meth:`_guarded_loss`), the update is skipped on the
        device when the loss of any batch of the accumulation window, on any rank, was not
        finite, and the counters are read every ``sync_interval`` steps. ``scheduled``: the
        learning-rate scheduler already stepped for this batch."""
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.on_fit_batch_start(batch, should_step)
        with self.no_sync(not should_step), sync_free_mode():  # no host check in the lobes
            outputs, loss = self._train_forward(batch)
            ok = self._finite_flag(loss)
            (loss / self.grad_accumulation_factor).backward()
        self._window_ok = ok if self._window_ok is None else self._window_ok & ok
        if should_step:
            if not scheduled:
                self._scheduler_step()
            self._step_sync_free(self._window_ok)
            self._window_ok = None
        loss = loss.detach()
        self._account(loss, ok)
        self.on_fit_batch_end(batch, outputs, loss, should_step)
        return loss

    def _step_sync_free(self, ok: torch.Tensor) -> None:
        """Clips (on the device) and applies the update where ``ok``; zeroes the gradients."""
        if self.opt_class is None:
            return
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        self._guarded_update.step(ok)
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer_step += 1

    def _fit_batch_graphed(self, batch: PaddedBatch) -> torch.Tensor:
        """One replay of the captured step (or a warm-up step before the capture)."""
        self.on_fit_batch_start(batch, True)
        self._scheduler_step()
        inputs = {"mix": batch.mix.data, "targets": batch.targets.data}
        try:
            loss, ok = self.graphed_step(inputs)
        except RuntimeError as err:
            if self.graphed_step.graph is not None:
                raise
            self.optimizer.zero_grad(set_to_none=True)  # the interrupted step's gradients
            self._fall_back_to_eager(f"the step cannot be captured ({str(err).splitlines()[0]})")
            return self._fit_batch_sync_free(batch, scheduled=True)
        self.optimizer_step += 1
        loss = loss.detach().clone()  # the static output is overwritten by the next replay
        self._account(loss, ok)
        self.on_fit_batch_end(batch, None, loss, True)
        return loss

    def _graph_body(self, inputs: Mapping[str, torch.Tensor]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss and backward on the captured step's static inputs (no host read)."""
        mix, targets = inputs["mix"], inputs["targets"]  # [B, T], [B, T, S]
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        # cache_enabled=False: autocast's weight-cast cache must not outlive a graph capture
        with sync_free_mode():  # the lobes and the loss check on the device, not the host
            with torch.autocast(device_type=self.device_type, dtype=dtype or torch.float32,
                                enabled=dtype is not None, cache_enabled=False):
                predictions = self.modules.separator(torch.where(torch.isfinite(mix), mix, 0.0))
            finite = torch.stack([torch.isfinite(t).all()
                                  for t in (predictions, targets, mix)]).all()
            loss = self._guarded_loss(predictions, targets, mix, finite)
            loss.backward()
        return loss.detach(), torch.isfinite(loss)

    def _fall_back_to_eager(self, reason: str) -> None:
        """The one log line of a ``cuda_graphs`` run that trains with the eager step."""
        logger.warning(f"cuda_graphs: training with the eager step instead: {reason}")
        self.graphed_step = None
        self._graph_fallback = reason  # said once per brain

    def _check_static_shape(self, batch: PaddedBatch) -> None:
        """Compiled and graphed steps train on one batch shape for the whole run."""
        shape = (tuple(batch.mix.data.shape), tuple(batch.targets.data.shape))
        if self._static_shape is None:
            self._static_shape = shape
        elif shape != self._static_shape:
            raise ValueError(f"training batch of shape mix {shape[0]}, targets {shape[1]} after "
                             f"batches of {self._static_shape[0]}, {self._static_shape[1]}: with "
                             "compile_regions or cuda_graphs every training batch must have one "
                             "shape (fixed segment_seconds, a constant batch_size and "
                             "drop_last: true in train_dataloader_opts)")

    def _finite_flag(self, loss: torch.Tensor) -> torch.Tensor:
        """On-device bool: the loss is finite on every DDP rank (all-reduced, not read)."""
        flag = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return flag[0].bool()

    def _account(self, loss: torch.Tensor, ok: torch.Tensor) -> None:
        """Adds a step to the on-device counters; reads them every ``sync_interval`` steps."""
        step = torch.stack([torch.where(ok, loss.float(), 0.0), ok.float(), (~ok).float()])
        if self._counters is None:
            self._counters = torch.zeros(3, device=loss.device)
        self._counters += step
        if self.step % self.sync_interval == 0:
            self._read_counters()

    def _read_counters(self) -> None:
        """The one host read of the sync-free step: loss average and non-finite count; raises
        once ``nonfinite_patience`` is exhausted."""
        if self._counters is None:
            return
        total, finite, skipped = self._counters.tolist()
        self._avg_loss = total / finite if finite else math.nan
        new = int(skipped) - self.nonfinite_count
        if new > 0:
            self.nonfinite_count = int(skipped)
            self.skipped_nonfinite += new
            logger.warning(f"{new} non-finite losses (here or on another rank) since the last "
                           f"check: their updates were skipped ({self.nonfinite_count} this "
                           f"epoch, patience {self.nonfinite_patience})")
            self._check_patience()

    def update_average(self, loss: torch.Tensor, avg_loss: float) -> float:
        """SpeechBrain's running training loss; the sync-free step's last read average.

        Arguments
        ---------
        loss : torch.Tensor
            The step's detached loss.
        avg_loss : float
            The running average so far.

        Returns
        -------
        float
            The running average.
        """
        if self.sync_free and self._counters is not None:
            return self._avg_loss
        return super().update_average(loss, avg_loss)

    def _prepare_fast_step(self) -> None:
        """Compiles the regions, builds the graphed step or the sync-free update (once)."""
        if self.compile_regions and self.regions is None:
            start = time.monotonic()
            self.regions = compile_regions(self.separator)
            logger.info(f"compile_regions: {len(self.regions)} regions set up in "
                        f"{time.monotonic() - start:.1f} s (compiled at their first call)")
        if self.cuda_graphs and self.graphed_step is None and self._graph_fallback is None:
            reason = cuda_graph_blocker(
                self.device, getattr(self, "optimizer", None), precision=self.precision,
                grad_accumulation=self.grad_accumulation_factor,
                distributed=torch.distributed.is_available()
                and torch.distributed.is_initialized(),
                optimizers=len(self.optimizers_dict or {}) if self.opt_class else 0)
            if reason is None:
                self.sync_free = True
                torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls and convolutions
                torch.backends.cudnn.allow_tf32 = True
                self.graphed_step = GraphedTrainStep(self._graph_body, self.optimizer,
                                                     self.max_grad_norm)
                logger.info("cuda_graphs: the training step is captured after 3 warm-up steps")
            else:
                self._fall_back_to_eager(reason)
        if self.sync_free and self.opt_class is not None:
            make_fused(self.optimizer)  # Adam/AdamW skip updates inside their kernels
            self._guarded_update = GuardedUpdate(self.optimizer)


__all__ = ["FastStepMixin"]
