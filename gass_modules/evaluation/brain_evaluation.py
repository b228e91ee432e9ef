"""Evaluation of a separator on a test set, and the export of its model folder.

:class:`Evaluator` separates each test item and hands it to a scorer
(:mod:`gass_modules.evaluation.scorer`: ``add`` / ``summary`` / ``write``), then writes the
scorer's files, ``headline.json`` (updates, parameters, test loss and the scorer's summary) and
logs the summary, under ``<output_folder>/eval/``. Mixer items (``mix [T]`` at the model's rate)
are separated as a batch; recordings (benchmark test items: ``mix [C, T]`` with their own
``sample_rate``) one by one, chunk by chunk at their own rate, in bounded memory
(:func:`gass_modules.inference.chunking.separate_chunked`, with the recipe's ``chunk_seconds``,
``chunk_overlap`` and ``order``). The scorer is the recipe's ``scorer`` (e.g.
``gass_modules.evaluation.benchmarks.BenchmarkScorer``, each benchmark's metrics) or, by default,
``gass_modules.evaluation.report.SeparationReport``, the GASS evaluation:

* ``per_mixture.csv``: one row per mixture and system (``model`` and the ``irm`` oracle) with
  per-source SI-SNR and SI-SNRi, output energies, and over/under-separation flags;
* ``summary.md``: tables by number of sources and by source category, model beside the
  ``gass_modules.evaluation.oracle.IRMOracle`` (STFT ideal ratio mask), as GASS reports it;
* ``audio/<id>/*.wav`` (estimates, references, mixture) and ``figures/<id>.png`` (spectrograms)
  for the first few mixtures.

:meth:`Evaluator.export_model_folder` writes the model folder at the end of a recipe (the GASS
recipe and the benchmark recipes call it through the brain).

An :class:`Evaluator` works alone (:meth:`Evaluator.evaluate` on any iterable of
``PaddedBatch`` es) and is what :class:`gass_modules.training.brain.SeparationBrain` delegates to:
its
``evaluate(test_set)`` runs SpeechBrain's test loop, whose stage hooks call
:meth:`Evaluator.start`, :meth:`Evaluator.separate_batch`, :meth:`Evaluator.score_batch` and
:meth:`Evaluator.finish`, and its ``export_model_folder``, ``separate_recording`` and
``eval_folder`` are the evaluator's.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.distributed import if_main_process
from torch import nn

from gass_modules.evaluation.report import SeparationReport
from gass_modules.evaluation.scorer import Scorer
from gass_modules.inference.chunking import separate_chunked
from gass_modules.model_folder.folder import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP,
    save_model_folder,
    unwrap_module,
)

logger = logging.getLogger(__name__)


def holds_recordings(batch: PaddedBatch) -> bool:
    """Whether a test batch holds whole recordings at their own rate.

    Benchmark evaluation items carry ``sample_rate`` (``mix [C, T]`` at that rate); mixer items
    do not (``mix [T]`` at the model's rate).

    Arguments
    ---------
    batch : speechbrain.dataio.batch.PaddedBatch
        A test batch.

    Returns
    -------
    bool
        True for recordings.

    Example
    -------
    >>> mixer = PaddedBatch([{"id": "a", "mix": torch.zeros(8)}])
    >>> recordings = PaddedBatch([{"id": "a", "mix": torch.zeros(2, 8), "sample_rate": 44100}])
    >>> holds_recordings(mixer), holds_recordings(recordings)
    (False, True)
    """
    return hasattr(batch, "sample_rate")


class Evaluator:
    """Evaluates a separator on a test set with a scorer; exports its model folder.

    The evaluation of :class:`gass_modules.training.brain.SeparationBrain`, usable alone: give it
    the
    separator and the recipe's hyperparameters, then :meth:`evaluate` batches of mixer items or
    recordings (or drive :meth:`start`, :meth:`separate_batch`, :meth:`score_batch` and
    :meth:`finish` from a test loop, as the brain does). The outputs go to :attr:`eval_folder`.

    Arguments
    ---------
    separator : torch.nn.Module
        The separator (wrapped by DDP or ``torch.compile`` or not: it is called as given, its
        attributes read from the unwrapped module).
    hparams : Mapping or namespace
        The recipe's hyperparameters (a dict or SpeechBrain's ``brain.hparams``): ``loss``
        (required to score), and optionally ``output_folder`` / ``eval_folder``, ``scorer`` (a
        factory of the scorer, e.g. ``!name:``), ``oracle``, ``activity_db``,
        ``eval_save_audio``, ``eval_figures`` (the default ``SeparationReport``), ``eval_title``,
        ``sample_rate``, ``chunk_seconds``, ``chunk_overlap``, ``model_folder`` and
        ``train_logger``.
    device : str or torch.device
        Where recordings are separated.
    order : str
        The model's output order (``"aligned"`` or ``"fixed"``), for chunked separation and the
        model folder.

    Example
    -------
    >>> from gass_modules.losses import pit_log_mse
    >>> tmp = getfixture("tmp_path")
    >>> refs = torch.randn(2, 8000, 2)
    >>> items = [{"id": f"m{i}", "mix": refs[i].sum(-1), "targets": refs[i], "num_sources": 2,
    ...           "categories": ["speech", "music"]} for i in range(2)]
    >>> evaluator = Evaluator(ScaledCopies([0.5, 0.5], 8000),
    ...                       {"loss": pit_log_mse, "output_folder": tmp, "eval_save_audio": 0,
    ...                        "eval_figures": 0})
    >>> loss = evaluator.evaluate([PaddedBatch(items)])
    >>> sorted(p.name for p in evaluator.eval_folder.iterdir())
    ['headline.json', 'per_mixture.csv', 'summary.md']
    >>> headline = json.loads((evaluator.eval_folder / "headline.json").read_text())
    >>> len(evaluator.scorer.rows), headline["loss"] == loss  # a row per mixture
    (2, True)
    """

    def __init__(self, separator: nn.Module, hparams: Mapping[str, Any] | Any,
                 device: str | torch.device = "cpu", order: str = "aligned") -> None:
        if not isinstance(separator, nn.Module):
            raise TypeError(f"Evaluator needs the separator nn.Module, got "
                            f"{type(separator).__name__}")
        self.separator = separator
        self.hparams = SimpleNamespace(**hparams) if isinstance(hparams, Mapping) else hparams
        self.device = torch.device(device)
        self.order = order  # checked where it is used (separate_chunked, save_model_folder)
        self.scorer: Scorer | None = None  # the current evaluation's (see start)

    @property
    def model(self) -> nn.Module:
        """The separator itself, unwrapped (for its attributes and its parameters)."""
        return unwrap_module(self.separator)

    @property
    def eval_folder(self) -> Path:
        """Where evaluation outputs go: ``hparams.eval_folder`` or ``<output_folder>/eval``."""
        folder = getattr(self.hparams, "eval_folder", None)
        if folder is None:
            folder = Path(getattr(self.hparams, "output_folder", ".")) / "eval"
        return Path(folder)

    def start(self) -> Scorer:
        """Starts an evaluation with a new scorer (:attr:`scorer`), which it returns.

        The scorer is ``hparams.scorer()`` (a factory, e.g. ``!name:``) or the GASS report with
        the ``oracle``, ``activity_db``, ``eval_save_audio`` and ``eval_figures``
        hyperparameters.

        Returns
        -------
        Scorer
            The new scorer.
        """
        factory = getattr(self.hparams, "scorer", None)
        if factory is None:
            hp = self.hparams
            scorer = SeparationReport(num_slots=int(self.model.num_sources),
                                      oracle=getattr(hp, "oracle", None),
                                      activity_db=float(getattr(hp, "activity_db", -20.0)),
                                      save_audio=int(getattr(hp, "eval_save_audio", 3)),
                                      figures=int(getattr(hp, "eval_figures", 2)))
        else:
            scorer = factory() if callable(factory) else factory
        if not isinstance(scorer, Scorer):
            raise TypeError(f"hparams['scorer'] must make a scorer (add, summary, write: "
                            f"gass_modules.evaluation.scorer), e.g. `scorer: !name:gass_modules."
                            f"evaluation.benchmarks.BenchmarkScorer`; got {type(scorer).__name__}")
        self.scorer = scorer
        return scorer

    def separate_batch(self, batch: PaddedBatch) -> torch.Tensor | list[torch.Tensor]:
        """Separates a test batch: mixer items as a batch, recordings one by one, chunked.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``mix`` (``[B, T]``; recordings: ``[B, C, T]`` and ``sample_rate``).

        Returns
        -------
        torch.Tensor or list of torch.Tensor
            ``[B, T, S]`` estimates; for recordings, ``[C, T, S]`` per item.
        """
        mix = batch.mix.data.to(self.device, non_blocking=True)  # [B, T]
        if holds_recordings(batch):
            return [self.separate_recording(mix[b], int(batch.sample_rate[b]))
                    for b in range(mix.shape[0])]
        if mix.dim() != 2:
            raise ValueError(f"expected batch.mix.data [B, T], got {tuple(mix.shape)}; the "
                             "mixer must yield mono mixtures of shape [T]")
        return self.separator(mix)  # [B, T, S]

    def score_batch(self, predictions: torch.Tensor | list[torch.Tensor],
                    batch: PaddedBatch) -> torch.Tensor:
        """Hands each test item to the scorer; the mean recipe loss on the aligned estimates.

        Each item is cropped to its own length; an item whose aligned estimates are not finite
        counts as NaN.

        Arguments
        ---------
        predictions : torch.Tensor or list of torch.Tensor
            From :meth:`separate_batch`.
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``mix``, ``targets`` ``[B, T, S]``, ``num_sources``, ``categories`` and ``id``.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        if self.scorer is None:
            raise RuntimeError("score_batch needs a scorer: call start() first (evaluate() does)")
        if isinstance(predictions, list):  # recordings: [C, T, S] each, at their own rate
            items = [(batch.mix.data[b], batch.targets.data[b], est,
                      int(batch.sample_rate[b])) for b, est in enumerate(predictions)]
        else:  # mixer items: [B, T] at the model's rate, cropped to their own lengths
            mix, targets = batch.mix.data, batch.targets.data
            if targets.dim() != 3 or targets.shape[:2] != mix.shape:
                raise ValueError(f"expected batch.targets.data [B, T, S] matching mix "
                                 f"{tuple(mix.shape)}, got {tuple(targets.shape)}")
            rate = int(getattr(self.hparams, "sample_rate", self.model.sample_rate))
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

    def finish(self, test_loss: float, updates: int = 0) -> None:
        """Writes the scorer's files and ``headline.json`` (updates, parameters, test loss and the
        scorer's summary) from the main process, and logs the summary.

        Arguments
        ---------
        test_loss : float
            The mean test loss (of :meth:`score_batch`).
        updates : int
            The training updates of the model, for ``headline.json``.
        """
        if self.scorer is None:
            raise RuntimeError("finish needs a scorer: call start() first (evaluate() does)")
        model = self.model
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
            headline = {"updates": int(updates), "parameters": int(size * 1e6),
                        **stats}
            (self.eval_folder / "headline.json").write_text(json.dumps(headline, indent=1))
            summary = next((p for p in written if p.name == "summary.md"), None)
            logger.info(f"evaluation in {self.eval_folder}\n"
                        f"{summary.read_text() if summary else stats}")
        train_logger = getattr(self.hparams, "train_logger", None)
        if train_logger is not None:  # log_stats is main-process-only and syncs ranks
            train_logger.log_stats(stats_meta={"test": getattr(self.hparams, "eval_title", "") or
                                               "final"}, test_stats=stats)

    def evaluate(self, batches: Iterable[PaddedBatch], updates: int = 0) -> float:
        """Separates and scores every batch, then writes the evaluation (:meth:`finish`).

        The separator runs in eval mode without gradients (its mode is restored after).

        Arguments
        ---------
        batches : iterable of speechbrain.dataio.batch.PaddedBatch
            Test batches (a ``DataLoader`` with ``collate_fn=PaddedBatch``, or a list).
        updates : int
            The training updates of the model, for ``headline.json``.

        Returns
        -------
        float
            The mean test loss over batches (as SpeechBrain's test loop averages it).
        """
        self.start()
        training = self.separator.training
        self.separator.eval()
        total, count = 0.0, 0
        try:
            with torch.no_grad():
                for batch in batches:
                    loss = self.score_batch(self.separate_batch(batch), batch)
                    total, count = total + float(loss), count + 1
        finally:
            self.separator.train(training)
        if count == 0:
            raise ValueError("Evaluator.evaluate got no test batches; check the test set")
        test_loss = total / count
        self.finish(test_loss, updates)
        return test_loss

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
            The model card as trained (``gass_modules.training.recipe.included_card``), path or yaml
            text,
            to check the separator against.
        folder : str or os.PathLike, optional
            Where to write (default: ``hparams.model_folder``).

        Returns
        -------
        pathlib.Path or None
            The folder (None on other processes than the main one).

        Example
        -------
        >>> from gass_modules.inference.separator import GASSSeparator
        >>> tmp = getfixture("tmp_path")
        >>> card = ("sample_rate: 8000\\nnum_sources: 2\\nseparator: !new:tests.doubles."
        ...         "ScaledCopies\\n    gains: [1.0, 1.0]\\n    sample_rate: !ref <sample_rate>\\n")
        >>> evaluator = Evaluator(ScaledCopies([0.5, 0.25], 8000),
        ...                       {"model_folder": tmp / "model"}, order="fixed")
        >>> folder = evaluator.export_model_folder(card)
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
            self.model, folder, card=card, overwrite=True,
            chunk_seconds=float(getattr(self.hparams, "chunk_seconds", DEFAULT_CHUNK_SECONDS)),
            overlap=float(getattr(self.hparams, "chunk_overlap", DEFAULT_OVERLAP)),
            order=self.order)
        logger.info(f"model folder for GASSSeparator.from_hparams(source=...): {path}")
        return path

    def separate_recording(self, mix: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Separates one whole recording at its own rate, chunk by chunk, in bounded memory.

        :func:`gass_modules.inference.chunking.separate_chunked` with the model (resampled to and
        from its
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
            ``[C, T, S]`` estimates in the model's output order, float32 on the evaluator's device.

        Example
        -------
        >>> evaluator = Evaluator(ScaledCopies([0.5, 0.25], 8000), {"chunk_seconds": 0.5})
        >>> evaluator.separate_recording(torch.ones(2, 44100), 44100).shape  # 1 s, stereo, 44.1 kHz
        torch.Size([2, 44100, 2])
        """
        return separate_chunked(
            self.separator, mix.float(), sample_rate=int(sample_rate),
            model_rate=int(self.model.sample_rate),
            chunk_seconds=float(getattr(self.hparams, "chunk_seconds", DEFAULT_CHUNK_SECONDS)),
            overlap=float(getattr(self.hparams, "chunk_overlap", DEFAULT_OVERLAP)),
            order=self.order, rows="channels", device=self.device)


__all__ = ["Evaluator", "holds_recordings"]
