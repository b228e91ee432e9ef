"""Fine-tuning GASS models on benchmarks: the Brain and the recipe driver the four recipes share.

GASS (Pons et al., ICASSP 2024) evaluates its pre-trained separators out of distribution ("no
tuning") and fine-tunes them on FUSS, Libri2Mix, Divide and Remaster (DnR) and MUSDB18. The four
recipes under ``recipes/`` share what is here:

* :class:`BenchmarkBrain`: ``SeparationBrain`` whose TEST stage separates whole recordings chunk
  by chunk with ``gass_modules.inference.GASSSeparator`` (overlap-add, bounded memory, resampling
  when the model runs at another rate) and scores them with a
  ``gass_modules.evaluation.benchmarks.BenchmarkScorer`` (each community's metrics);
* :func:`run_benchmark`: what a recipe's ``train.py`` does after data preparation: train from
  scratch, fine-tune from ``pretrained_path`` (``gass_modules.transfer.transfer_from_checkpoint``),
  or evaluate a GASS model folder as is (``no_tuning``).

The loss of labelled-stem benchmarks is ``gass_modules.losses.fixed_order_log_mse``; estimates
meet references through ``gass_modules.metrics.align_to_references``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import soundfile as sf
import speechbrain as sb
import torch
from speechbrain.utils.distributed import if_main_process

from gass_modules.brain import SeparationBrain
from gass_modules.dataio.benchmarks import load_benchmark_set
from gass_modules.evaluation.benchmarks import BENCHMARK_METRICS, BenchmarkScorer
from gass_modules.inference import GASSSeparator
from gass_modules.model_folder import CHECKPOINT_FILE, HPARAMS_FILE, save_model_folder
from gass_modules.transfer import transfer_from_checkpoint

logger = logging.getLogger(__name__)


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
    >>> from gass_modules.losses import fixed_order_log_mse
    >>> tmp = getfixture("tmp_path")
    >>> refs = torch.randn(1, 8000, 2)
    >>> soundfile.write(tmp / "mix.wav", refs.sum(-1)[0].numpy(), 8000, subtype="FLOAT")
    >>> item = {"id": "m", "mix": refs.sum(-1), "targets": refs, "num_sources": 2,
    ...         "categories": ["speech", "music"], "mix_wav": str(tmp / "mix.wav"),
    ...         "sample_rate": 8000}
    >>> model = ScaledCopies([0.5, 0.5], 8000)  # tests/doubles.py: g_s * mix
    >>> brain = BenchmarkBrain({"separator": model}, None,
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
        if getattr(self.hparams, "benchmark", None) not in BENCHMARK_METRICS:
            raise ValueError(f"BenchmarkBrain needs hparams['benchmark'] in "
                             f"{sorted(BENCHMARK_METRICS)}, got "
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
        The model card as trained (``gass_modules.recipe.included_card``), for the export.

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
        folder = save_model_folder(brain.separator, hparams["model_folder"], card=card,
                                   overwrite=True, fixed_order=brain.fixed_order)
        logger.info(f"model folder for GASSSeparator.from_hparams(source=...): {folder}")
    return brain


__all__ = ["BenchmarkBrain", "build_benchmark_sets", "run_benchmark"]
