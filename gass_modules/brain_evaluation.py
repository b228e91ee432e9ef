"""How ``SeparationBrain`` evaluates a separator and exports its model folder.

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

:meth:`EvaluationMixin.export_model_folder` writes the model folder at the end of a recipe (the
GASS recipe and the benchmark recipes call it).

These are the evaluation and export methods of :class:`gass_modules.brain.SeparationBrain`,
kept apart from its training loop as :class:`EvaluationMixin`, which ``SeparationBrain``
inherits.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.distributed import if_main_process

from gass_modules.chunking import separate_chunked
from gass_modules.evaluation.report import SeparationReport
from gass_modules.evaluation.scorer import Scorer
from gass_modules.model_folder import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP, save_model_folder

logger = logging.getLogger(__name__)


class EvaluationMixin:
    """The evaluation and model-folder export of :class:`gass_modules.brain.SeparationBrain`.

    A mixin of ``SeparationBrain`` (it reads the brain's ``hparams``, ``modules``,
    ``separator``, ``device``, ``order``, ``scorer`` and ``optimizer_step``), not a class to use
    alone. At TEST, ``compute_forward`` separates recordings with :meth:`separate_recording`,
    ``compute_objectives`` scores each item with the evaluation's scorer, and the end of the
    stage writes the scorer's files and ``headline.json`` to :attr:`eval_folder`;
    :meth:`export_model_folder` writes the model folder.

    Example
    -------
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> from gass_modules.brain import SeparationBrain
    >>> from gass_modules.losses import pit_log_mse
    >>> tmp = getfixture("tmp_path")
    >>> refs = torch.randn(2, 8000, 2)
    >>> items = [{"id": f"m{i}", "mix": refs[i].sum(-1), "targets": refs[i], "num_sources": 2,
    ...           "categories": ["speech", "music"]} for i in range(2)]
    >>> brain = SeparationBrain({"separator": ScaledCopies([0.5, 0.5], 8000)},
    ...                         hparams={"loss": pit_log_mse, "output_folder": tmp,
    ...                                  "eval_save_audio": 0, "eval_figures": 0},
    ...                         run_opts={"device": "cpu"})
    >>> isinstance(brain, EvaluationMixin)
    True
    >>> _ = brain.evaluate(items, progressbar=False,
    ...                    test_loader_kwargs={"batch_size": 2, "collate_fn": PaddedBatch})
    >>> sorted(p.name for p in brain.eval_folder.iterdir())
    ['headline.json', 'per_mixture.csv', 'summary.md']
    """

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
        >>> from gass_modules.brain import SeparationBrain
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
        >>> from gass_modules.brain import SeparationBrain
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


def _holds_recordings(batch: PaddedBatch) -> bool:
    """Whether a test batch holds whole recordings at their own rate (benchmark evaluation
    items carry ``sample_rate``; mixer items are at the model's rate)."""
    return hasattr(batch, "sample_rate")


__all__ = ["EvaluationMixin"]
