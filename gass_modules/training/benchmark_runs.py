"""Fine-tuning GASS models on benchmarks: the recipe driver the four benchmark recipes share.

GASS (Pons et al., ICASSP 2024) evaluates its pre-trained separators out of distribution ("no
tuning") and fine-tunes them on FUSS, Libri2Mix, Divide and Remaster (DnR) and MUSDB18. The four
recipes under ``recipes/`` train and evaluate with ``gass_modules.training.brain.SeparationBrain``
and the
benchmark's scorer (``scorer: !name:gass_modules.evaluation.benchmarks.BenchmarkScorer`` in their
yaml: each community's metrics); at TEST the brain separates whole recordings chunk by chunk at
their own rate (``gass_modules.inference.chunking``). What is here:

* :func:`run_benchmark_recipe`: the whole of a benchmark recipe's ``train.py`` (the recipe
  passes its ``prepare`` function): load the recipe, prepare the manifests on the main process,
  then :func:`run_benchmark`;
* :func:`run_benchmark`: what a recipe's ``train.py`` does after data preparation: train from
  scratch, fine-tune from ``pretrained_path``
  (``gass_modules.training.transfer.prepare_finetuning``: at
  the pre-trained model's rate and outputs by default, ``finetune_rate``; with the recipe's
  fine-tuning optimiser, schedule and updates, :func:`finetuning_settings`), or evaluate a GASS
  model folder as is (``no_tuning``);
* :func:`benchmark_scorer`: the recipe's scorer factory (also for recipes written before
  ``scorer:``, with their ``benchmark`` and ``stems`` keys);

The loss of labelled-stem benchmarks is ``gass_modules.losses.fixed_order_log_mse``; estimates
meet references through ``gass_modules.metrics.align_to_references``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from speechbrain.utils.distributed import if_main_process, run_on_main

from gass_modules.dataio.benchmark_sets import load_benchmark_set
from gass_modules.evaluation.benchmarks import BenchmarkScorer
from gass_modules.inference.separator import GASSSeparator
from gass_modules.model_folder.folder import CHECKPOINT_FILE, HPARAMS_FILE
from gass_modules.model_folder.pretrained import model_source
from gass_modules.training.brain import SeparationBrain
from gass_modules.training.output_order import match_outputs_to_stems
from gass_modules.training.random_states import keep_random_states
from gass_modules.training.recipe import load_recipe
from gass_modules.training.transfer import TransferReport, prepare_finetuning

logger = logging.getLogger(__name__)


def benchmark_scorer(hparams: Mapping, order: str | None = None
                     ) -> Callable[[], BenchmarkScorer]:
    """The recipe's scorer factory, for ``SeparationBrain``'s ``scorer`` hyperparameter.

    ``hparams["scorer"]`` (``!name:gass_modules.evaluation.benchmarks.BenchmarkScorer`` with the
    benchmark's arguments), with ``order`` replaced when given (``no_tuning`` evaluates a PIT
    model: ``"aligned"``). A recipe without ``scorer:`` (before gass 2.0.0 ``benchmark``,
    ``stems``, ``eval_alignment`` and ``csdr_window_seconds`` keys made one) is an error that
    says what to write.

    Arguments
    ---------
    hparams : Mapping
        The loaded recipe.
    order : str, optional
        ``"aligned"`` or ``"fixed"``, replacing the recipe's.

    Returns
    -------
    callable
        A new ``BenchmarkScorer`` at every call.

    Example
    -------
    >>> factory = benchmark_scorer({"scorer": functools.partial(BenchmarkScorer, "dnr",
    ...                                                           ["speech"], order="fixed")},
    ...                            order="aligned")
    >>> factory().order
    'aligned'
    """
    factory = hparams.get("scorer")
    if factory is None:
        raise KeyError("the recipe needs `scorer: !name:gass_modules.evaluation.benchmarks."
                       "BenchmarkScorer` with its benchmark, stems and order (the benchmark: "
                       "and stems: keys alone were removed in gass 2.0.0; CHANGELOG.md)")
    if not callable(factory):
        raise TypeError(f"scorer must be a factory (`!name:` in the yaml), got "
                        f"{type(factory).__name__}")
    return factory if order is None else functools.partial(factory, order=order)


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


FINETUNE_KEYS = {"opt_class": "finetune_opt_class", "lr_scheduler": "finetune_lr_scheduler",
                 "optimizer_step_limit": "finetune_updates"}


def finetuning_settings(hparams: Mapping) -> dict:
    """The recipe's settings for a fine-tuning run: its ``finetune_*`` keys in place of scratch's.

    ``finetune_opt_class`` replaces ``opt_class``, ``finetune_lr_scheduler`` replaces
    ``lr_scheduler`` (a per-update scheduler, e.g. warm-up then linear decay) and
    ``finetune_updates`` becomes SpeechBrain's ``optimizer_step_limit`` (a command-line
    ``--optimizer_step_limit`` still wins). A recipe without them keeps its scratch settings,
    with a warning.

    Arguments
    ---------
    hparams : Mapping
        The loaded recipe.

    Returns
    -------
    dict
        A copy of ``hparams`` with the fine-tuning settings in place.

    Example
    -------
    >>> out = finetuning_settings({"opt_class": "scratch", "finetune_opt_class": "tuned",
    ...                            "lr_scheduler": None, "finetune_lr_scheduler": "decay",
    ...                            "finetune_updates": 2000})
    >>> out["opt_class"], out["lr_scheduler"], out["optimizer_step_limit"]
    ('tuned', 'decay', 2000)
    """
    settings = dict(hparams)
    missing = [k for k in FINETUNE_KEYS.values() if k not in hparams]
    if missing:
        logger.warning(f"the recipe lacks {missing}: fine-tuning with its scratch settings "
                       "(add finetune_opt_class, finetune_lr_scheduler and finetune_updates, "
                       "see recipes/*/separation/hparams/*.yaml)")
    for key, tuned in FINETUNE_KEYS.items():
        if tuned in hparams:
            settings[key] = hparams[tuned]
    return settings


def _use_separator(hparams: dict, separator: torch.nn.Module) -> None:
    """Puts a rebuilt separator wherever the recipe's yaml put the one it built."""
    old = hparams["separator"]
    hparams["separator"] = separator
    hparams["modules"] = {**hparams["modules"], "separator": separator}
    checkpointer = hparams.get("checkpointer")
    if checkpointer is not None:
        for name, obj in list(checkpointer.recoverables.items()):
            if obj is old:
                checkpointer.recoverables[name] = separator


def _write_transfer(output: Path, report: TransferReport) -> None:
    """``transfer.txt`` (the account) and ``transfer.json`` (with the transferred fraction)."""
    if if_main_process():
        output.mkdir(parents=True, exist_ok=True)
        (output / "transfer.txt").write_text(report.format() + "\n")
        (output / "transfer.json").write_text(json.dumps(report.to_dict(), indent=1))
    logger.info(f"transferred {100.0 * report.fraction:.1f}% of the parameters' values "
                f"(finetune_rate: {report.mode})")


def _match_outputs(hparams: Mapping, mixtures, output: Path) -> None:
    """Renumbers the pre-trained outputs to the stems (fixed order), into ``output_order.json``."""
    matched = match_outputs_to_stems(hparams["modules"]["separator"], mixtures,
                                     len(hparams["stems"]))
    if if_main_process():
        output.mkdir(parents=True, exist_ok=True)
        (output / "output_order.json").write_text(json.dumps(matched, indent=1))


def run_benchmark(hparams: dict, run_opts: Mapping, card: str) -> SeparationBrain:
    """Trains or fine-tunes on the benchmark, evaluates, exports; or evaluates GASS as is.

    * ``no_tuning: True``: ``pretrained_path`` must be a model folder (``save_model_folder``),
      loaded safely unless ``trust_model_code: True`` (``--trust_model_code=True``: full
      hyperpyyaml, which runs code from the folder); its model is evaluated as it is (its own
      rate and number of outputs; recordings are resampled, chunks aligned and outputs matched
      to the references by the best permutation: ``order: aligned``) into
      ``<output_folder>/eval_no_tuning``.
    * otherwise: the recipe's separator (its model card with the benchmark's ``num_sources`` and
      ``sample_rate``) is trained from scratch, or, with ``pretrained_path``, fine-tuned:
      rebuilt at the pre-trained model's rate and outputs (``finetune_rate: model``, the
      default: benchmark audio resampled in, outputs out for scoring) or at the benchmark's
      rate with windows and kernels converted (``finetune_rate: benchmark``), started from the
      checkpoint (:func:`gass_modules.training.transfer.prepare_finetuning`; the account per module
      in
      ``<output_folder>/transfer.txt``, the transferred fraction in ``transfer.json`` and in
      ``eval/headline.json``) and trained with the recipe's fine-tuning settings
      (:func:`finetuning_settings`). With ``order: fixed`` the pre-trained outputs are first
      renumbered to where the model puts each stem on the validation mixtures
      (:func:`gass_modules.training.output_order.match_outputs_to_stems`, into
      ``<output_folder>/output_order.json``; ``finetune_match_outputs: False`` keeps them). It is
      trained with ``SeparationBrain.fit``, evaluated with
      its best checkpoint into ``<output_folder>/eval`` by the recipe's scorer (whole
      recordings at their own rate), and exported to ``model_folder``
      (``SeparationBrain.export_model_folder``, as the GASS recipe does).

    Arguments
    ---------
    hparams : dict
        The loaded recipe (keys of :func:`build_benchmark_sets`, ``SeparationBrain``'s with
        ``scorer`` (:func:`benchmark_scorer`), and
        ``pretrained_path``, ``no_tuning``, ``modules``, ``opt_class``, ``checkpointer``,
        ``epoch_counter``, ``*_dataloader_opts``, ``save_folder``, ``output_folder``,
        ``model_folder``).
    run_opts : Mapping
        SpeechBrain run options.
    card : str
        The model card as trained (``gass_modules.training.recipe.included_card``), for the export.

    Returns
    -------
    SeparationBrain
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
    if source:  # a bundled model's name (gass-mini) works as in gass-separate
        source = model_source(source)
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
        settings = {**hparams, "eval_folder": output / "eval_no_tuning", "order": "aligned",
                    "scorer": benchmark_scorer(hparams, "aligned"),
                    "eval_title": f"{hparams.get('benchmark', 'benchmark')}: GASS model "
                                  f"{source}, no tuning"}
        brain = SeparationBrain(modules={"separator": gass.mods.separator}, hparams=settings,
                                run_opts=run_opts)
        brain.evaluate(datasets["test"], test_loader_kwargs=hparams["test_dataloader_opts"])
        return brain
    report = None
    if source:
        built = hparams["separator"]
        separator, report = prepare_finetuning(
            built, source, int(hparams["sample_rate"]), int(hparams["num_sources"]),
            mode=str(hparams.get("finetune_rate", "model")),
            collect_in=Path(hparams["save_folder"]) / "pretrained")
        hparams = finetuning_settings(hparams)
        if separator is not built:
            _use_separator(hparams, separator)
            # trained at the model's rate and outputs; the test set stays at the benchmark's
            hparams.update(sample_rate=int(separator.sample_rate),
                           num_sources=int(separator.num_sources))
            card = None  # the folder is written (and checked) from the separator's description
        _write_transfer(output, report)
    datasets = build_benchmark_sets(hparams)
    if report is not None and hparams.get("order") == "fixed" and hparams.get(
            "finetune_match_outputs", True):
        _match_outputs(hparams, datasets["valid"], output)
    keep_random_states(hparams["checkpointer"])  # a resumed run draws the crops it would have
    brain = SeparationBrain(modules=hparams["modules"], opt_class=hparams["opt_class"],
                            hparams={**hparams, "scorer": benchmark_scorer(hparams)},
                            run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.fit(hparams["epoch_counter"], datasets["train"], datasets["valid"],
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    brain.evaluate(datasets["test"], min_key="loss",
                   test_loader_kwargs=hparams["test_dataloader_opts"])
    headline = brain.eval_folder / "headline.json"
    if report is not None and if_main_process() and headline.is_file():
        results = json.loads(headline.read_text())
        results.update(transferred_fraction=report.fraction, finetune_rate=report.mode)
        headline.write_text(json.dumps(results, indent=1))
    brain.export_model_folder(card)  # the best checkpoint, loaded by evaluate()
    return brain


PREPARE_KEYS = ("data_folder", "save_folder", "skip_prep")  # every benchmark's prepare takes them


def run_benchmark_recipe(argv: list[str], prepare: Callable[..., object],
                         prepare_keys: Mapping[str, str] | None = None) -> SeparationBrain:
    """A benchmark recipe's ``train.py``: load the recipe, prepare its manifests, then run it.

    The command line is loaded with ``gass_modules.training.recipe.load_recipe`` (SpeechBrain's run
    options, torchrun, the locked output folder, the model card as trained); ``prepare`` (the
    recipe's ``prepare.py`` function) writes the manifests on the main process
    (``run_on_main``), called with the recipe's ``data_folder``, ``save_folder`` and
    ``skip_prep`` and the keys of ``prepare_keys``; then :func:`run_benchmark` trains from
    scratch, fine-tunes from ``--pretrained_path=<GASS model folder>``, or evaluates that folder
    as it is with ``--no_tuning=True``.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (hparams file, then SpeechBrain run options and overrides).
    prepare : callable
        The recipe's data preparation, taking keyword arguments.
    prepare_keys : Mapping, optional
        Further keyword arguments of ``prepare``: its argument name -> the recipe's key.

    Returns
    -------
    SeparationBrain
        The brain after evaluation (``brain.scorer`` holds the results).

    Raises
    ------
    KeyError
        When the recipe lacks a key that ``prepare`` is given.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> _ = (tmp / "card.yaml").write_text("sample_rate: 8000\\nnum_sources: 2\\n")
    >>> _ = (tmp / "bench.yaml").write_text(
    ...     f"output_folder: {tmp / 'exp'}\\nsave_folder: {tmp / 'exp' / 'save'}\\n"
    ...     "data_folder: !PLACEHOLDER\\nskip_prep: False\\nrate: 8000\\n"
    ...     "no_tuning: True\\npretrained_path: null\\nmodel: !include:card.yaml\\n")
    >>> calls = []
    >>> logging.disable(logging.INFO)  # the experiment folder's log lines
    >>> try:  # prepared, then no_tuning without a model folder to evaluate
    ...     run_benchmark_recipe([str(tmp / "bench.yaml"), f"--data_folder={tmp}"],
    ...                          lambda **kwargs: calls.append(kwargs), {"sample_rate": "rate"})
    ... except ValueError as error:
    ...     print(str(error)[:40])
    no_tuning evaluates a pre-trained GASS m
    >>> logging.disable(logging.NOTSET)
    >>> sorted(calls[0].items()) == [("data_folder", str(tmp)), ("sample_rate", 8000),
    ...                              ("save_folder", str(tmp / "exp" / "save")),
    ...                              ("skip_prep", False)]
    True
    """
    hparams, run_opts, card = load_recipe(argv)
    keys = {name: name for name in PREPARE_KEYS} | dict(prepare_keys or {})
    missing = sorted(key for key in keys.values() if key not in hparams)
    if missing:
        raise KeyError(f"{argv[0]} has no {missing}: the recipe's data preparation "
                       f"({getattr(prepare, '__name__', prepare)}) is given them; add them")
    run_on_main(prepare, kwargs={name: hparams[key] for name, key in keys.items()})
    return run_benchmark(hparams, run_opts, card)


__all__ = ["PREPARE_KEYS", "benchmark_scorer", "build_benchmark_sets",
           "finetuning_settings", "run_benchmark", "run_benchmark_recipe"]
