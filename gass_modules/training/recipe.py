"""Recipe utilities: the ``train.py`` preamble and the model card a recipe includes.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import inspect
import io
import logging
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import ruamel.yaml
import speechbrain as sb
from filelock import FileLock, Timeout
from hyperpyyaml import load_hyperpyyaml, resolve_references
from ruamel.yaml.comments import CommentedBase

logger = logging.getLogger(__name__)


def load_recipe(argv: list[str], card_key: str = "model") -> tuple[dict, dict, str]:
    r"""The preamble of every gass recipe's ``train.py``, as SpeechBrain recipes write it.

    Parses the command line (``sb.parse_arguments``; an option given twice is a usage error),
    joins the torchrun process group, loads the hparams file with the overrides, locks the
    output folder (:func:`lock_output_folder`: a second training into it is refused), creates
    the experiment folder (saving the hparams, the overrides and, as SpeechBrain recipes do, the
    calling ``train.py``) and reads back the model card the hparams file includes.

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
    >>> (tmp / "exp" / "recipe.py").exists()  # the caller's script is saved, not this module
    False
    """
    _refuse_repeated_options(argv)
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)  # torchrun: one process per device
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    if (Path(hparams["output_folder"]) / "separator.ckpt").exists():  # SpeechBrain would
        raise RuntimeError(  # write the recipe over the model folder's card
            f"output_folder {hparams['output_folder']} is a model folder (it holds "
            "separator.ckpt): this run would replace its hyperparams.yaml; give this run "
            "another output_folder (the model folder can still be --pretrained_path)")
    lock_output_folder(hparams["output_folder"])
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides)
    _save_caller_script(Path(hparams["output_folder"]), _recipe_script())
    logger.info(f"seeded with {hparams.get('global_seed')} before building the model")
    return hparams, run_opts, included_card(hparams_file, overrides, key=card_key)


def _refuse_repeated_options(argv: list[str]) -> None:
    """Exits with a usage error (status 2, as argparse) when an option is given twice
    (``--lr 1 --lr 2``): SpeechBrain would hand both to the yaml parser, whose duplicate-key
    traceback does not say what went wrong."""
    seen: dict[str, int] = {}
    for arg in argv[1:]:
        if arg.startswith("--") and len(arg) > 2:
            name = arg[2:].split("=", 1)[0]
            seen[name] = seen.get(name, 0) + 1
    repeated = sorted(name for name, count in seen.items() if count > 1)
    if repeated:
        print(f"{Path(sys.argv[0]).name}: error: "
              f"{', '.join('--' + name for name in repeated)} given more than once; give each "
              "option once (the last one is not taken silently)", file=sys.stderr)
        raise SystemExit(2)


_OUTPUT_LOCKS: dict[Path, FileLock] = {}  # output folders this process trains into


def lock_output_folder(folder: str | Path) -> None:
    """Takes the exclusive lock of a training output folder for this process's lifetime.

    Two trainings writing one folder would exchange checkpoints (the second resumes from the
    first's, its own seed mixed with the other's weights). The lock is ``filelock`` on
    ``<folder>/.gass-train.lock`` (``flock``: released by the OS when the process ends, even
    killed). The same process may lock a folder again (a script running several recipes in a
    row); with torchrun only the main process takes it (its ranks share the folder).

    Arguments
    ---------
    folder : str or pathlib.Path
        The recipe's ``output_folder`` (created if missing).

    Raises
    ------
    RuntimeError
        When another process holds the folder; the message says what to do.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> lock_output_folder(tmp / "exp")
    >>> (tmp / "exp" / ".gass-train.lock").exists()
    True
    """
    folder = Path(folder).resolve()
    if folder in _OUTPUT_LOCKS or not sb.utils.distributed.if_main_process():
        return
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / ".gass-train.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RuntimeError(f"another training is running in {folder} (it holds "
                           f"{folder / '.gass-train.lock'}); two runs in one output folder would "
                           "mix their checkpoints: wait for it to end, or give this run another "
                           "output_folder (e.g. another seed: --seed=N)") from None
    _OUTPUT_LOCKS[folder] = lock


def _recipe_script() -> Path:
    """The file of the first caller outside ``gass_modules``: the recipe's ``train.py``, also
    when it calls :func:`load_recipe` through a library entry point (``gass_recipe.build``,
    ``finetune.run_benchmark_recipe``)."""
    package = Path(sys.modules[__name__.split(".")[0]].__file__).resolve().parent  # at any depth
    frame = inspect.currentframe()
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if package not in path.resolve().parents:
            return path
        frame = frame.f_back
    return Path(__file__)  # not reached from a script: nothing is copied


def _save_caller_script(folder: Path, script: Path) -> None:
    """Keeps the recipe's script in the experiment folder instead of this module.

    ``sb.create_experiment_directory`` copies the file of its *caller*, which is this module when
    recipes go through :func:`load_recipe`; the experiment folder should hold the ``train.py``
    that ran, as SpeechBrain's own recipes leave it.
    """
    own = folder / Path(__file__).name
    if not sb.utils.distributed.if_main_process() or not own.is_file():
        return
    own.unlink()
    if script.is_file() and script.resolve() != Path(__file__).resolve():
        shutil.copy2(script, folder / script.name)


def included_card(hparams_file: str | Path, overrides: Mapping | str | None = None,
                  key: str = "model") -> str:
    r"""The yaml text of the model card that a recipe ``!include:`` s under ``key``.

    Recipes include a card (``model: !include:.../hparams/models/x.yaml``) and may shrink or
    change it with overrides (``--model="{separator: {num_blocks: 2}}"``). The exported model
    folder is written from the trained separator itself, and checked against the card *as
    trained* (``save_model_folder(..., card=...)``): this resolves the recipe with its overrides
    (``hyperpyyaml.resolve_references``, which expands the include without building any object)
    and returns the ``key`` subtree, tags kept and comments dropped (the card's comments describe
    its own values, which the overrides may have changed).

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


__all__ = ["included_card", "load_recipe", "lock_output_folder"]
