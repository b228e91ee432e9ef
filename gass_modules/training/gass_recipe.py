"""The GASS pre-training recipe as a library: what ``recipes/GASS/separation/train.py`` calls.

GASS (Pons et al., ICASSP 2024) trains a separator on mixtures of 1-4 sources of speech, music
and sound events drawn on the fly. The recipe's ``train.py`` parses its command line and calls:

* :func:`build`: checks the manifests before anything is built (:func:`check_manifests`, every
  bad row reported at once as a :class:`ManifestError`), loads the recipe
  (``gass_modules.training.recipe.load_recipe``: run options, torchrun, the output folder), and
  builds the
  training stream of ``data_format`` (:func:`train_stream`: the file mixer's, or WebDataset
  shards'), the held-out mixtures and the brain;
* :func:`run`: trains (``SeparationBrain.fit``), evaluates the best checkpoint on the test
  mixtures beside the IRM oracle and exports the model folder; or, with
  ``evaluate_model_folder``, scores an exported folder without training
  (:func:`evaluate_model_folder`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import speechbrain as sb
import yaml
from hyperpyyaml import resolve_references

from gass_modules.dataio.manifest import load_manifest
from gass_modules.dataio.mixture_sets import MixtureStream, make_eval_set
from gass_modules.dataio.scan import check_clips, overlapping_clips
from gass_modules.dataio.shard_source import ShardMixtureStream
from gass_modules.dataio.shards import ShardError
from gass_modules.model_folder.folder import CHECKPOINT_FILE, load_separator_checkpoint
from gass_modules.training.brain import SeparationBrain
from gass_modules.training.random_states import keep_random_states
from gass_modules.training.recipe import load_recipe

logger = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")
DATA_FORMATS = ("files", "shards")
MAX_LISTED = 50  # bad rows listed in the error (all are counted)
HOW_TO = ("write the manifests with tools/make_manifest.py (your corpora) or "
          "tools/build_demo_corpus.py (the demo corpus), then pass --data_folder=<their folder>")


class ManifestError(ValueError):
    """The recipe's manifests are missing or hold rows the mixer cannot use.

    The recipe's ``train.py`` turns it into a message without a traceback (the user's data, not
    a bug).

    Example
    -------
    >>> isinstance(ManifestError("no --data_folder given"), ValueError)
    True
    """


class _InertLoader(yaml.SafeLoader):
    """Reads a resolved recipe as data: every hyperpyyaml tag becomes None (nothing is built)."""


_InertLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def manifest_paths(argv: list[str]) -> dict[str, Path]:
    """The ``<split>_manifest`` paths of a command line, without building anything.

    The recipe's references and the command-line overrides are resolved
    (``hyperpyyaml.resolve_references``) and the result is read as plain data, so the mixers,
    which read the manifests, are not built yet.

    Arguments
    ---------
    argv : list of str
        The recipe's command line (hparams file, run options, overrides).

    Returns
    -------
    dict
        ``{"train": path, "valid": path, "test": path}`` (no ``train`` with
        ``data_format: shards``).

    Raises
    ------
    ManifestError
        When ``--data_folder`` is missing or not a folder, or a split has no manifest key.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> _ = (tmp / "r.yaml").write_text("data_folder: !PLACEHOLDER\\n" + "".join(
    ...     f"{s}_manifest: !ref <data_folder>/{s}.csv\\n" for s in ("train", "valid", "test")))
    >>> paths = manifest_paths([str(tmp / "r.yaml"), f"--data_folder={tmp}"])
    >>> {split: path.relative_to(tmp).as_posix() for split, path in paths.items()}
    {'train': 'train.csv', 'valid': 'valid.csv', 'test': 'test.csv'}
    >>> manifest_paths([str(tmp / "r.yaml"), "--data_folder=/no/such/folder"])
    Traceback (most recent call last):
    ...
    gass_modules.training.gass_recipe.ManifestError: --data_folder=/no/such/folder is not ...
    """
    hparams_file, _, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as fin:
        try:
            text = resolve_references(fin, overrides).getvalue()
        except ValueError as err:  # e.g. "'data_folder' is a !PLACEHOLDER and must be replaced."
            raise ManifestError(f"{hparams_file}: {err} (pass it as --<key>=...); {HOW_TO}"
                                ) from err
    resolved = yaml.load(text, Loader=_InertLoader)  # noqa: S506 (a SafeLoader subclass)
    folder = resolved.get("data_folder")
    if not isinstance(folder, str) or not folder:
        raise ManifestError(f"no --data_folder given; {HOW_TO}")
    if not Path(folder).is_dir():
        raise ManifestError(f"--data_folder={folder} is not a folder; {HOW_TO}")
    data_format = resolved.get("data_format", "files")
    if data_format not in DATA_FORMATS:
        raise ManifestError(f"data_format: expected one of {DATA_FORMATS}, got {data_format!r}")
    paths = {}
    for split in SPLITS:
        if split == "train" and data_format == "shards":
            continue  # the training sources are shards (checked when the stream is built)
        value = resolved.get(f"{split}_manifest")
        if not isinstance(value, str) or not value:
            raise ManifestError(f"{hparams_file} has no {split}_manifest path")
        paths[split] = Path(value)
    return paths


def check_manifests(argv: list[str], workers: int | None = None) -> None:
    """Validates the manifests before anything is built, reporting every bad row.

    Each split's manifest must exist and hold rows; every row's audio is probed (header only,
    in parallel threads: :func:`gass_modules.dataio.scan.check_clips`, as
    ``tools/make_manifest.py`` does): missing, unreadable or empty files, frames past the end
    (of the header, or of the decoded audio), another rate or channel count. All problems are
    reported at once, before training starts. Clips in two splits (same id or same audio) are
    a warning.

    Arguments
    ---------
    argv : list of str
        The recipe's command line.
    workers : int, optional
        Probing threads (default: the CPU count, at most 16).

    Raises
    ------
    ManifestError
        Listing every problem (at most ``MAX_LISTED`` rows, the rest counted).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> _ = (tmp / "r.yaml").write_text("data_folder: !PLACEHOLDER\\n" + "".join(
    ...     f"{s}_manifest: !ref <data_folder>/{s}.csv\\n" for s in ("train", "valid", "test")))
    >>> try:
    ...     check_manifests([str(tmp / "r.yaml"), f"--data_folder={tmp}"], workers=1)
    ... except ManifestError as error:
    ...     print(str(error).splitlines()[0])
    3 problem(s) with the manifests, found before training (fix the files or remove their rows; ...
    """
    workers = workers or min(16, os.cpu_count() or 1)
    problems, bad_rows, loaded = [], 0, {}
    for split, path in manifest_paths(argv).items():
        if not path.is_file():
            problems.append(f"{split}: expected the manifest at {path}; {HOW_TO}")
            continue
        try:
            manifest = load_manifest(path)
        except (ValueError, KeyError, OSError) as err:
            problems.append(f"{split}: cannot read {path}: {err}")
            continue
        if len(manifest) == 0:
            problems.append(f"{split}: {path} has no rows; {HOW_TO}")
            continue
        loaded[split] = manifest
        for clip_id, clip_path, reason in check_clips(manifest, workers):
            bad_rows += 1
            if bad_rows <= MAX_LISTED:
                problems.append(f"{split}: {path} row {clip_id!r} ({clip_path}): {reason}")
    if bad_rows > MAX_LISTED:
        problems.append(f"... and {bad_rows - MAX_LISTED} more bad rows")
    shared = overlapping_clips(loaded)
    if shared:  # a warning: some setups mean it (a smoke test on its own training data)
        listed = "; ".join(f"{clip} in {a} and {b} ({why})" for a, b, clip, why in shared[:10])
        logger.warning(f"{len(shared)} clip(s) are in two splits, so the evaluation sees "
                       f"training data and overstates the results: {listed}"
                       + (" ..." if len(shared) > 10 else ""))
    if problems:
        raise ManifestError(f"{len(problems)} problem(s) with the manifests, found before "
                            "training (fix the files or remove their rows; "
                            "tools/make_manifest.py skips unusable files):\n  "
                            + "\n  ".join(problems))


def train_stream(hparams: dict) -> MixtureStream | ShardMixtureStream:
    """The training stream of ``data_format``: the file mixer's or the shard source's.

    Arguments
    ---------
    hparams : dict
        The loaded recipe.

    Returns
    -------
    MixtureStream or ShardMixtureStream
        With ``shards``, the stream is registered with the checkpointer (every rank saves the
        position of its own streams).

    Raises
    ------
    ManifestError
        When the shards cannot be read (``data_format: shards``).

    Example
    -------
    >>> import numpy as np
    >>> import soundfile as sf
    >>> from gass_modules.dataio.manifest import Manifest
    >>> from gass_modules.dataio.mixer import GASSMixer
    >>> path = getfixture("tmp_path") / "noise.wav"
    >>> sf.write(path, np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(path)], [16000], [16000], [1], ["sfx"], ["g"]),
    ...                   {"duration": 0.25})
    >>> stream = train_stream({"train_mixer": lambda: mixer, "seed": 3})
    >>> item = next(iter(stream))
    >>> type(stream).__name__, item["id"], tuple(item["mix"].shape)
    ('MixtureStream', 'train-e0-r0-000000000', (4000,))
    """
    if hparams.get("data_format", "files") == "files":
        return MixtureStream(hparams["train_mixer"](), seed=hparams["seed"])
    opts = hparams["train_dataloader_opts"]
    try:
        stream = ShardMixtureStream(
            hparams["train_shards"], hparams["scenario"], seed=hparams["seed"],
            batch_size=opts["batch_size"], batches_per_epoch=opts["looped_nominal_epoch"],
            buffer_size=hparams["shard_buffer"], resampled=hparams["shard_resampled"],
            crops_per_clip=hparams["shard_crops_per_clip"])
    except (ShardError, ValueError) as err:
        raise ManifestError(f"data_format: shards: {err}") from err
    hparams["checkpointer"].add_recoverable("train_stream", stream)
    return stream


def build(argv: list[str], brain_class: type = SeparationBrain) -> tuple:
    """Parses the command line, loads the recipe and builds the brain and the datasets.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (hparams file, then SpeechBrain run options and overrides).
    brain_class : type
        ``SeparationBrain`` or a subclass of it.

    Returns
    -------
    tuple
        ``(brain, hparams, datasets, card)``: datasets maps ``train``/``valid``/``test`` to
        datasets, ``card`` is the model card as trained (yaml text).

    Raises
    ------
    ManifestError
        When the manifests are missing or hold bad rows (:func:`check_manifests`), before the
        recipe is loaded (no output folder is written).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> _ = (tmp / "r.yaml").write_text(f"output_folder: {tmp / 'out'}\\n"
    ...                                 "data_folder: !PLACEHOLDER\\n")
    >>> build([str(tmp / "r.yaml")])
    Traceback (most recent call last):
    ...
    gass_modules.training.gass_recipe.ManifestError: ...'data_folder' is a !PLACEHOLDER ...
    >>> (tmp / "out").exists()
    False
    """
    check_manifests(argv)  # before load_recipe, which builds the mixers (they read them)
    hparams, run_opts, card = load_recipe(argv)
    eval_seed = hparams.get("eval_seed", hparams["seed"])  # one test set for several seeds
    datasets = {
        "train": train_stream(hparams),
        "valid": make_eval_set(hparams["valid_mixer"], hparams["num_valid_mixtures"],
                               seed=eval_seed, id_prefix="valid"),
        "test": make_eval_set(hparams["test_mixer"], hparams["num_test_mixtures"],
                              seed=eval_seed, id_prefix="test"),
    }
    keep_random_states(hparams["checkpointer"])  # dropout and loader seeds resume as they were
    brain = brain_class(modules=hparams["modules"], opt_class=hparams["opt_class"],
                        hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    return brain, hparams, datasets, card


def run(brain: SeparationBrain, hparams: dict, datasets: dict, card: str,
        evaluate: bool = True) -> None:
    """Trains, evaluates on the test mixtures (model and IRM oracle) and exports the model folder.

    Arguments
    ---------
    brain : SeparationBrain
        From :func:`build`.
    hparams : dict
        The loaded recipe.
    datasets : dict
        ``train``, ``valid`` and ``test`` datasets.
    card : str
        The model card as trained, for the exported folder.
    evaluate : bool
        Evaluate and export after training.

    Example
    -------
    >>> class Brain:  # what run() asks of a SeparationBrain, printed
    ...     def fit(self, epochs, train, valid, **loaders): print("fit", train, valid)
    ...     def evaluate(self, test, **kwargs): print("evaluate", test, kwargs["min_key"])
    ...     def export_model_folder(self, card): print("export", card)
    >>> hparams = {"epoch_counter": range(1), **{f"{split}_dataloader_opts": {}
    ...                                          for split in ("train", "valid", "test")}}
    >>> run(Brain(), hparams, {"train": "T", "valid": "V", "test": "E"}, "card.yaml")
    fit T V
    evaluate E loss
    export card.yaml
    >>> run(Brain(), hparams, {"train": "T", "valid": "V", "test": "E"}, "", evaluate=False)
    fit T V
    """
    if hparams.get("evaluate_model_folder"):
        evaluate_model_folder(brain, hparams, datasets, hparams["evaluate_model_folder"])
        return
    train = datasets["train"]
    if isinstance(train, ShardMixtureStream):  # its loader records what was trained on
        train = train.make_loader(remix=hparams["shard_remix"],
                                  **hparams["train_dataloader_opts"])
    brain.fit(hparams["epoch_counter"], train, datasets["valid"],
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    if not evaluate:
        return
    brain.evaluate(datasets["test"], min_key="loss",
                   test_loader_kwargs=hparams["test_dataloader_opts"])
    brain.export_model_folder(card)  # the best checkpoint, loaded by evaluate()


def evaluate_model_folder(brain: SeparationBrain, hparams: dict, datasets: dict,
                          folder: str | os.PathLike) -> None:
    """Evaluates an exported model folder on the recipe's test mixtures, without training.

    The folder's weights are loaded strictly into the recipe's separator (so the folder must hold
    the model this recipe builds: same card, same sizes) and the evaluation is written to
    ``<output_folder>/eval`` as after training; no checkpoint is read or written. A run trained
    elsewhere (e.g. on a lent GPU, with a lossy copy of the corpus) is scored this way on the
    original test split.

    Arguments
    ---------
    brain : SeparationBrain
        From :func:`build`.
    hparams : dict
        The loaded recipe.
    datasets : dict
        Its datasets (``test`` is used).
    folder : str or os.PathLike
        The model folder (``hyperparams.yaml`` + ``separator.ckpt``).

    Raises
    ------
    FileNotFoundError
        When the folder has no ``separator.ckpt``.
    ValueError
        When its weights do not fit the recipe's separator.

    Example
    -------
    >>> evaluate_model_folder(None, {}, {}, "/no/such/run/model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: evaluate_model_folder=/no/such/run/model holds no separator.ckpt; ...
    """
    ckpt = Path(folder) / CHECKPOINT_FILE
    if not ckpt.is_file():
        raise FileNotFoundError(f"evaluate_model_folder={folder} holds no {CHECKPOINT_FILE}; "
                                "pass the model/ folder of a finished run of this recipe")
    load_separator_checkpoint(brain.modules.separator, ckpt)
    brain.checkpointer = None  # score these weights, not a checkpoint of the output folder
    logger.info(f"evaluating {folder} (no training)")
    brain.evaluate(datasets["test"], test_loader_kwargs=hparams["test_dataloader_opts"])


__all__ = ["DATA_FORMATS", "MAX_LISTED", "SPLITS", "ManifestError", "build", "check_manifests",
           "evaluate_model_folder", "manifest_paths", "run", "train_stream"]
