"""Model folders: what training writes and ``GASSSeparator.from_hparams`` loads.

A *model folder* is what SpeechBrain's ``Pretrained.from_hparams`` loads: ``hyperparams.yaml``
and ``separator.ckpt`` (the separator's ``state_dict``). :func:`save_model_folder` writes one from
the trained separator itself: a :class:`~gass_modules.lobes.base.Separator` records the class and
constructor arguments it was built with (``describe()``), and :class:`ModelCard` adds how to run
it (output order, chunking) and turns that into ``hyperparams.yaml``: the card keys
(``sample_rate``, ``num_sources``, ``separator: !new:<class>`` with its arguments,
``chunk_seconds``, ``chunk_overlap``, ``order``) and the ``modules`` and ``pretrainer`` keys of a
SpeechBrain interface. No yaml text is edited: the file is dumped from data, and
checked by building the separator from it before anything is written.

``GASSSeparator.from_hparams(source=folder)`` loads a folder from the local disk, never from the
network, and without running code from it (:mod:`gass_modules.model_folder.safe_hparams`: registered
separator classes and plain data only; ``trust_code=True`` opts into full hyperpyyaml). Folders
written before model cards were structured (the recipe's card text plus the same keys, e.g. the
bundled ``gass_modules/model_folder/pretrained/gass_mini``) have the same keys and load the same
way, and so
do folders written before gass 2.0.0 that record the output order as ``fixed_order: true|false``
instead of ``order: fixed|aligned`` (:func:`folder_order`; folders on disk cannot be rewritten),
or that name classes and functions by their paths of an earlier layout
(:data:`gass_modules.model_folder.safe_hparams.FORMER_PATHS`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references
from torch import nn

from gass_modules.lobes.base import SeparatorDescription, check_separator
from gass_modules.model_folder.safe_hparams import LOAD_HOOK, PRETRAINER, registered_separators
from gass_modules.order import check_order, order_from_former, resolve_order

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
CHECKPOINT_FILE = "separator.ckpt"
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_OVERLAP = 0.25
# Shortest chunk a GASSSeparator runs (its own stride permitting): shorter chunks cost one model
# call per few milliseconds (minutes for a second of audio) and see less context than any model
# trained here needs.
MIN_CHUNK_SECONDS = 0.1
_RESERVED_KEYS = ("modules", "pretrainer", "chunk_seconds", "chunk_overlap", "order",
                  "fixed_order")
_TOP_KEY = re.compile(r"^([A-Za-z_]\w*)\s*:", re.MULTILINE)


def _state_mismatch(expected: Mapping, found: Mapping, limit: int = 5) -> str:
    """Describes how two state_dicts differ in keys and shapes ("" when they match)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k}: expected {tuple(expected[k].shape)}, found {tuple(found[k].shape)}"
              for k in expected if k in found and expected[k].shape != found[k].shape]
    parts = []
    for what, items in (("missing keys", missing), ("unexpected keys", unexpected),
                        ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{what} {items[:limit]}{more}")
    return "; ".join(parts)


def load_separator_checkpoint(separator: nn.Module, path: str | os.PathLike) -> None:
    """Loads a separator's ``state_dict`` strictly, with ``torch.load(weights_only=True)``.

    The model folder's ``pretrainer`` uses it as its custom load hook for ``separator``, instead of
    SpeechBrain's default transfer hook, which loads non-strictly and only logs missing keys.

    Arguments
    ---------
    separator : torch.nn.Module
        The separator built from ``hyperparams.yaml``.
    path : str or os.PathLike
        The checkpoint (``separator.ckpt``).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not a readable tensor ``state_dict`` or its keys or shapes differ from
        the separator's (the message names the file and the keys).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> torch.save(torch.nn.Linear(3, 2).state_dict(), tmp / "separator.ckpt")
    >>> model = torch.nn.Linear(3, 2)
    >>> load_separator_checkpoint(model, tmp / "separator.ckpt")
    >>> load_separator_checkpoint(torch.nn.Linear(4, 2), tmp / "separator.ckpt")
    Traceback (most recent call last):
    ...
    ValueError: checkpoint ...separator.ckpt does not match the Linear...found (2, 3)']...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"separator checkpoint not found: {path}; a model folder holds "
                                f"{HPARAMS_FILE} and {CHECKPOINT_FILE} (see save_model_folder)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise ValueError(f"cannot read separator checkpoint {path} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); expected a state_dict "
                         "saved by torch.save (save_model_folder): the file is corrupt, truncated "
                         "or not a PyTorch checkpoint") from err
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, expected a state_dict "
                         "(a mapping of parameter names to tensors) as written by "
                         "save_model_folder")
    problem = _state_mismatch(separator.state_dict(), state)
    if problem:
        raise ValueError(f"checkpoint {path} does not match the {type(separator).__name__} built "
                         f"from the model card: {problem}; the checkpoint comes from a model with "
                         f"other hyperparameters than {path.parent / HPARAMS_FILE}")
    separator.load_state_dict(state, strict=True)


def unwrap_module(module: nn.Module) -> nn.Module:
    """The module under DDP/DataParallel (``.module``) or ``torch.compile`` (``._orig_mod``).

    Arguments
    ---------
    module : torch.nn.Module
        A module, wrapped or not (wrappers may nest).

    Returns
    -------
    torch.nn.Module
        The innermost module, whose attributes (``num_sources``) and parameter names are the
        separator's own.

    Example
    -------
    >>> inner = nn.Linear(2, 2)
    >>> unwrap_module(nn.DataParallel(inner)) is inner, unwrap_module(inner) is inner
    (True, True)
    """
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif hasattr(module, "_orig_mod") and isinstance(module._orig_mod, nn.Module):
            module = module._orig_mod
        else:
            return module


def check_chunking(chunk_seconds: float, overlap: float) -> None:
    """Raises a ``ValueError`` unless ``chunk_seconds > 0`` and ``0 < overlap <= 0.5``.

    The chunking settings of a model card (``chunk_seconds``, ``chunk_overlap``) and of chunked
    separation (:mod:`gass_modules.inference.chunking`, ``GASSSeparator.separate_long``).

    Arguments
    ---------
    chunk_seconds : float
        Seconds per chunk.
    overlap : float
        Fraction of a chunk shared with the next one.

    Example
    -------
    >>> check_chunking(DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP)
    >>> check_chunking(10.0, 0.75)
    Traceback (most recent call last):
    ...
    ValueError: overlap is the fraction of a chunk shared with the next one and must be in ...
    """
    if not isinstance(chunk_seconds, (int, float)) or not math.isfinite(chunk_seconds) or (
        chunk_seconds <= 0
    ):
        raise ValueError(f"chunk_seconds must be a positive number of seconds, got "
                         f"{chunk_seconds!r}")
    if not isinstance(overlap, (int, float)) or not 0 < overlap <= 0.5:
        raise ValueError(f"overlap is the fraction of a chunk shared with the next one and must "
                         f"be in (0, 0.5], got {overlap!r}")


def describe_separator(separator: nn.Module) -> SeparatorDescription:
    """The description (class path, constructor arguments, rate, sources) of a trained separator.

    Arguments
    ---------
    separator : torch.nn.Module
        A separator, wrapped by DDP, DataParallel or ``torch.compile`` or not, with a
        ``describe()`` method (every :class:`~gass_modules.lobes.base.Separator` has one).

    Returns
    -------
    SeparatorDescription
        What :func:`save_model_folder` records.

    Example
    -------
    >>> model = ScaledCopies([0.5, 2.0], sample_rate=8000)  # tests/doubles.py: g_s * mix
    >>> describe_separator(torch.nn.DataParallel(model)).arguments
    {'gains': [0.5, 2.0], 'sample_rate': 8000}
    """
    module = unwrap_module(separator)
    check_separator(module, "describe_separator")
    describe = getattr(module, "describe", None)
    if not callable(describe):
        raise TypeError(f"{type(module).__qualname__} cannot describe itself (no describe() "
                        "method), so no model folder can be written from it; subclass "
                        "gass_modules.lobes.base.Separator, which records its constructor "
                        "arguments, or add a describe() returning a SeparatorDescription")
    description = describe()
    if not isinstance(description, SeparatorDescription):
        raise TypeError(f"{type(module).__qualname__}.describe() returned "
                        f"{type(description).__name__}, expected a SeparatorDescription")
    for name in ("num_sources", "sample_rate"):
        if getattr(description, name) != getattr(module, name):
            raise ValueError(f"{type(module).__qualname__}.describe() says {name}="
                             f"{getattr(description, name)!r} but the separator has "
                             f"{getattr(module, name)!r}")
    return description


class _Tagged:
    """A yaml node with a hyperpyyaml tag: ``!new:<class>`` with arguments, ``!ref``, ``!name:``."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


class _CardDumper(yaml.SafeDumper):
    """Plain yaml plus :class:`_Tagged` nodes; lists of scalars on one line."""


def _represent_tagged(dumper: yaml.SafeDumper, node: _Tagged) -> yaml.Node:
    if isinstance(node.value, Mapping):
        return dumper.represent_mapping(node.tag, node.value)
    return dumper.represent_scalar(node.tag, node.value)


def _represent_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
    flow = all(not isinstance(item, (list, Mapping, _Tagged)) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_CardDumper.add_representer(_Tagged, _represent_tagged)
_CardDumper.add_representer(list, _represent_list)
_CARD_HEADER = """\
# A gass model folder's card, written by gass_modules.model_folder.folder.save_model_folder
# from the trained separator: its class and constructor arguments, and how to run it. Loaded
# by GASSSeparator.from_hparams, which builds only registered separator classes (safe_hparams).
"""


@dataclass(frozen=True)
class ModelCard:
    """A model folder's ``hyperparams.yaml`` as data: the separator's description, how to run it.

    Arguments
    ---------
    separator : SeparatorDescription
        Class path, constructor arguments, ``sample_rate`` and ``num_sources``
        (:func:`describe_separator`).
    order : str
        Output order (:mod:`gass_modules.order`): ``"aligned"`` for unordered outputs (PIT
        training; chunks of long inputs are re-aligned), ``"fixed"`` for labelled stems (output
        ``k`` is always stem ``k``).
    chunk_seconds : float
        Default chunk length for long inputs.
    chunk_overlap : float
        Default fraction of a chunk shared with the next one, in (0, 0.5].

    Example
    -------
    >>> card = ModelCard(describe_separator(ScaledCopies([0.5, 2.0], 8000)), order="fixed")
    >>> print(card.to_yaml())  # ScaledCopies: tests/doubles.py
    # A gass model folder's card, written by gass_modules.model_folder.folder.save_model_folder
    # from the trained separator: its class and constructor arguments, and how to run it. Loaded
    # by GASSSeparator.from_hparams, which builds only registered separator classes (safe_hparams).
    sample_rate: 8000
    num_sources: 2
    separator: !new:tests.doubles.ScaledCopies
      gains: [0.5, 2.0]
      sample_rate: 8000
    chunk_seconds: 10.0
    chunk_overlap: 0.25
    order: fixed
    modules:
      separator: !ref '<separator>'
    pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
      loadables:
        separator: !ref '<separator>'
      custom_hooks:
        separator: !name:gass_modules.model_folder.folder.load_separator_checkpoint ''
    <BLANKLINE>
    """

    separator: SeparatorDescription
    order: str = "aligned"
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    chunk_overlap: float = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        check_chunking(self.chunk_seconds, self.chunk_overlap)
        check_order(self.order)

    def to_yaml(self) -> str:
        """The ``hyperparams.yaml`` text, dumped from the card (no text is edited).

        Returns
        -------
        str
            Card keys, the separator as ``!new:<class_path>`` with its arguments, and the
            SpeechBrain interface keys ``modules`` and ``pretrainer`` (whose load hook is
            :func:`load_separator_checkpoint`).

        Example
        -------
        >>> card = ModelCard(describe_separator(ScaledCopies([1.0], 8000)))
        >>> "!name:gass_modules.model_folder.folder.load_separator_checkpoint" in card.to_yaml()
        True
        """
        tree = {
            "sample_rate": self.separator.sample_rate,
            "num_sources": self.separator.num_sources,
            "separator": _Tagged(f"!new:{self.separator.class_path}", self.separator.arguments),
            "chunk_seconds": float(self.chunk_seconds),
            "chunk_overlap": float(self.chunk_overlap),
            "order": self.order,
            "modules": {"separator": _Tagged("!ref", "<separator>")},
            "pretrainer": _Tagged(f"!new:{PRETRAINER}", {
                "loadables": {"separator": _Tagged("!ref", "<separator>")},
                "custom_hooks": {"separator": _Tagged(f"!name:{LOAD_HOOK}", "")},
            }),
        }
        body = yaml.dump(tree, Dumper=_CardDumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, width=100, indent=2)
        return _CARD_HEADER + body


def _differences(built: nn.Module, module: nn.Module, what: str) -> list[str]:
    """How a separator built from a description or card differs from the trained one."""
    problems = []
    if type(built) is not type(module):
        problems.append(f"{what} builds {type(built).__qualname__}, the separator is "
                        f"{type(module).__qualname__}")
    for name in ("num_sources", "sample_rate"):
        if getattr(built, name, None) != getattr(module, name):
            problems.append(f"{name}: {what} {getattr(built, name, None)!r}, trained separator "
                            f"{getattr(module, name)!r}")
    mismatch = _state_mismatch(built.state_dict(), module.state_dict())
    if mismatch:
        problems.append(mismatch)
    return problems


def rebuild_separator(description: SeparatorDescription, module: nn.Module) -> nn.Module:
    """A new separator built from ``description`` as a model folder would build it.

    ``class_path(**arguments)``, with the class imported by its path, checked to be the class
    of ``module`` (so a folder saved from it loads); the global RNG is left as it was.

    Arguments
    ---------
    description : SeparatorDescription
        What :func:`describe_separator` recorded.
    module : torch.nn.Module
        The separator the description was taken from (unwrapped).

    Returns
    -------
    torch.nn.Module
        A freshly initialised separator of the same class and arguments.

    Example
    -------
    >>> from gass_modules.lobes.tdanet import TDANetWav
    >>> model = TDANetWav(num_sources=2, sample_rate=8000, enc_channels=32, enc_kernel_size=16,
    ...                   enc_stride=8, bottleneck_channels=16, hidden_channels=32, depth=2,
    ...                   num_blocks=2, num_heads=4)
    >>> twin = rebuild_separator(describe_separator(model), model)
    >>> type(twin) is TDANetWav, twin.describe() == model.describe()
    (True, True)
    """
    cls = type(module)
    try:
        found: Any = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as err:
        raise TypeError(f"the separator class {description.class_path} cannot be imported by "
                        f"that path ({err}); define it at module level in an importable module "
                        "so that the model folder can be loaded") from err
    if found is not cls or f"{cls.__module__}.{cls.__qualname__}" != description.class_path:
        raise TypeError(f"the description names {description.class_path}, but the separator is "
                        f"a {cls.__module__}.{cls.__qualname__}")
    with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the RNG
        try:
            return cls(**description.arguments)
        except Exception as err:
            raise ValueError(f"cannot build {description.class_path} from its recorded "
                             f"arguments {description.arguments}: {type(err).__name__}: "
                             f"{err}") from err


def _check_card(card: str | os.PathLike, overrides: Mapping | str | None,
                module: nn.Module) -> None:
    """Builds a recipe's model card (with its overrides) and compares it with the separator."""
    text, where = _read_card(card)
    reserved = sorted(set(_TOP_KEY.findall(text)) & set(_RESERVED_KEYS))
    if reserved:
        raise ValueError(f"model card {where} defines {reserved}, which save_model_folder writes "
                         "itself; pass the bare model card (sample_rate, num_sources, separator)")
    try:
        resolved = resolve_references(text, overrides, overrides_must_match=True).getvalue()
        with torch.random.fork_rng(devices=[]):
            hparams = load_hyperpyyaml(resolved)
    except Exception as err:
        raise ValueError(f"cannot build model card {where} with overrides {overrides!r}: "
                         f"{type(err).__name__}: {err}") from err
    built = hparams.get("separator")
    check_separator(built, f"model card {where}")
    problems = [f"{name}: card key {hparams.get(name)!r}, trained separator "
                f"{getattr(module, name)!r}"
                for name in ("num_sources", "sample_rate")
                if hparams.get(name) != getattr(module, name)]
    problems += _differences(built, module, "card separator")
    if problems:
        raise ValueError(f"model card {where} (overrides {overrides!r}) does not describe the "
                         f"trained separator: {'; '.join(problems)}")


def save_model_folder(
    separator: nn.Module,
    out_dir: str | os.PathLike,
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    overlap: float = DEFAULT_OVERLAP,
    order: str = "aligned",
    overwrite: bool = False,
    card: str | os.PathLike | None = None,
    overrides: Mapping | str | None = None,
) -> Path:
    """Writes a model folder that ``GASSSeparator.from_hparams`` loads, from the separator itself.

    Call it at the end of training with the trained separator (wrapped by DDP, DataParallel or
    ``torch.compile`` or not). The folder gets

    - ``hyperparams.yaml``: the :class:`ModelCard` of the separator (its class and the
      constructor arguments it recorded, ``sample_rate``, ``num_sources``, ``order`` and the
      chunking defaults), with the SpeechBrain interface keys ``modules`` and ``pretrainer``
      (whose load hook is :func:`load_separator_checkpoint`);
    - ``separator.ckpt``: ``separator.state_dict()`` on the CPU, loadable with
      ``torch.load(weights_only=True)``.

    Before writing, the separator is built again from its description and compared with the
    trained one (class, ``num_sources``, ``sample_rate``, parameter names and shapes), so a
    separator that cannot be rebuilt fails here and not when a user loads the folder. A recipe
    may also pass the model card it trained (``card``, with its ``overrides``): it is built and
    compared with the separator in the same way, so an export that does not match the recipe's
    card fails too.

    Arguments
    ---------
    separator : torch.nn.Module
        The trained separator (separator contract of docs/architecture.md) with a
        ``describe()`` method, as every ``gass_modules.lobes.base.Separator`` has.
    out_dir : str or os.PathLike
        The model folder to write (created if needed).
    chunk_seconds : float
        Default chunk length for long inputs, stored in the folder (``chunk_seconds``).
    overlap : float
        Default fraction of a chunk shared with the next one, in (0, 0.5] (``chunk_overlap``).
    order : str
        ``"aligned"`` (the default; outputs of a PIT-trained model: long inputs are stitched
        with the chunks' source order aligned) or ``"fixed"`` (labelled stems, output ``k`` is
        always stem ``k``, e.g. DnR or MUSDB18 trained without permutation: no re-alignment,
        stems keep their index); see :mod:`gass_modules.order`.
    overwrite : bool
        Replace an existing model folder's files; otherwise a ``FileExistsError`` is raised.
    card : str or os.PathLike, optional
        The model card the separator was trained from (``hparams/models/<name>.yaml`` or its
        yaml text), to check the separator against; it is not copied into the folder.
    overrides : dict or str, optional
        Overrides the recipe applied to ``card`` (as for ``load_hyperpyyaml``).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Example
    -------
    >>> from gass_modules.inference.separator import GASSSeparator
    >>> tmp = getfixture("tmp_path")
    >>> model = ScaledCopies([0.25, 0.75], sample_rate=8000)  # tests/doubles.py: g_s * mix
    >>> with torch.no_grad():
    ...     _ = model.gains.mul_(2)  # "training" changes the weights, not the architecture
    >>> folder = save_model_folder(model, tmp / "model")
    >>> sorted(p.name for p in folder.iterdir())
    ['hyperparams.yaml', 'separator.ckpt']
    >>> sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    >>> sep.mods.separator.gains.tolist()  # the trained values, not the constructor's
    [0.5, 1.5]
    """
    module = unwrap_module(separator)
    check_separator(module, "save_model_folder")
    description = describe_separator(module)
    model_card = ModelCard(description, order=order, chunk_seconds=chunk_seconds,
                           chunk_overlap=overlap)
    if card is not None:
        _check_card(card, overrides, module)
    elif overrides is not None:
        raise ValueError("overrides apply to a model card: pass card= too (the folder itself is "
                         "written from the separator, with its recorded arguments)")
    problems = _differences(rebuild_separator(description, module), module, "its description")
    if problems:
        raise ValueError(f"{description.class_path} built again from the arguments it recorded "
                         f"does not match the trained separator: {'; '.join(problems)}; a "
                         "separator whose architecture changes after construction must override "
                         "describe()")
    if description.class_path not in registered_separators():
        logger.warning(f"{description.class_path} is not a registered separator class: "
                       f"GASSSeparator.from_hparams will refuse the folder unless "
                       "gass_modules.model_folder.safe_hparams.register_separator runs first "
                       "(or with "
                       "trust_code=True)")
    out_dir = Path(out_dir)
    targets = (out_dir / HPARAMS_FILE, out_dir / CHECKPOINT_FILE)
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} already exist; pass overwrite=True to replace them")
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    targets[0].write_text(model_card.to_yaml(), encoding="utf-8")
    torch.save(state, targets[1])
    return out_dir


def folder_order(hparams: Mapping, where: str = HPARAMS_FILE) -> str:
    """The output order a model folder's hyperparameters record (``"aligned"`` when none).

    ``order: aligned|fixed`` is the current key; folders written before it say ``fixed_order:
    true|false``, which is read as ``order: fixed|aligned`` with a ``DeprecationWarning`` that
    says how to re-save the folder. This is one of the two compatibility paths kept in 2.0.0
    (the other: :data:`gass_modules.model_folder.safe_hparams.FORMER_PATHS`): a folder on disk
    cannot be
    rewritten by an upgrade of the code that reads it.

    Arguments
    ---------
    hparams : Mapping
        The folder's top-level keys (``hyperparams.yaml`` loaded).
    where : str
        The file, for messages.

    Returns
    -------
    str
        ``"aligned"`` or ``"fixed"``.

    Example
    -------
    >>> folder_order({"order": "fixed"}), folder_order({})
    ('fixed', 'aligned')
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     folder_order({"fixed_order": True}), caught[0].category.__name__
    ('fixed', 'DeprecationWarning')
    """
    order = hparams.get("order")
    former = hparams.get("fixed_order")
    if former is None:
        return resolve_order(order)
    mapped = order_from_former("fixed_order", former)
    if order is not None and check_order(order) != mapped:
        raise ValueError(f"{where} says order: {order} and fixed_order: {former} (order: "
                         f"{mapped}); keep order: alone")
    warnings.warn(f"{where} was written before gass 2.0.0 (fixed_order: "
                  f"{str(former).lower()}): read as order: {mapped}; to write the current "
                  "keys, load it and save it again with save_model_folder",
                  DeprecationWarning, stacklevel=2)
    return mapped


def _read_card(card: str | os.PathLike) -> tuple[str, str]:
    """Returns (yaml text, description) for a card given as a path or as yaml text."""
    if isinstance(card, os.PathLike) or (
        isinstance(card, str) and "\n" not in card and card.strip().endswith((".yaml", ".yml"))
    ):
        path = Path(card)
        if not path.is_file():
            raise FileNotFoundError(f"model card not found: {path}; pass the card's path "
                                    "(hparams/models/<name>.yaml) or its yaml text")
        return path.read_text(encoding="utf-8"), str(path)
    if not isinstance(card, str) or ":" not in card:
        raise ValueError(f"card must be a model card path or yaml text, got {card!r}")
    return card, "<yaml text>"


__all__ = ["CHECKPOINT_FILE", "DEFAULT_CHUNK_SECONDS", "DEFAULT_OVERLAP", "HPARAMS_FILE",
           "ModelCard", "check_chunking", "describe_separator", "folder_order",
           "load_separator_checkpoint", "rebuild_separator", "save_model_folder",
           "unwrap_module"]
