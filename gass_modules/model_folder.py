"""Model folders: what training writes and ``GASSSeparator.from_hparams`` loads.

A *model folder* is what SpeechBrain's ``Pretrained.from_hparams`` loads: ``hyperparams.yaml`` (the
model card with the recipe's overrides resolved, plus the ``modules`` and ``pretrainer`` keys of a
SpeechBrain interface) and ``separator.ckpt`` (the separator's ``state_dict``).
:func:`save_model_folder` writes one at the end of training; ``GASSSeparator.from_hparams(source=
folder)`` loads it from the local disk, never from the network, and without running code from it
(:mod:`gass_modules.safe_hparams`; ``trust_code=True`` opts into full hyperpyyaml).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references
from torch import nn

HPARAMS_FILE = "hyperparams.yaml"
CHECKPOINT_FILE = "separator.ckpt"
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_OVERLAP = 0.25
_RESERVED_KEYS = ("modules", "pretrainer", "chunk_seconds", "chunk_overlap", "order",
                  "fixed_order")
_TOP_KEY = re.compile(r"^([A-Za-z_]\w*)\s*:", re.MULTILINE)
_INFERENCE_YAML = """
# ---- model folder keys, written by gass_modules.model_folder.save_model_folder ----
chunk_seconds: {chunk_seconds}
chunk_overlap: {overlap}
order: {order}
modules:
    separator: !ref <separator>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        separator: !ref <separator>
    custom_hooks:
        separator: !name:gass_modules.model_folder.load_separator_checkpoint
"""


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


def _check_separator(separator: object, where: str) -> None:
    """Raises unless ``separator`` is an ``nn.Module`` with int ``num_sources``/``sample_rate``."""
    if not isinstance(separator, nn.Module):
        raise TypeError(f"{where}: expected a separator nn.Module, got {type(separator).__name__}")
    for name in ("num_sources", "sample_rate"):
        value = getattr(separator, name, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{where}: a separator must have a positive int attribute {name} "
                             f"(docs/architecture.md, 'Separator contract'), "
                             f"{type(separator).__name__} has {value!r}")


def _check_chunking(chunk_seconds: float, overlap: float) -> None:
    """Raises a ``ValueError`` unless ``chunk_seconds > 0`` and ``0 < overlap <= 0.5``."""
    if not isinstance(chunk_seconds, (int, float)) or not math.isfinite(chunk_seconds) or (
        chunk_seconds <= 0
    ):
        raise ValueError(f"chunk_seconds must be a positive number of seconds, got "
                         f"{chunk_seconds!r}")
    if not isinstance(overlap, (int, float)) or not 0 < overlap <= 0.5:
        raise ValueError(f"overlap is the fraction of a chunk shared with the next one and must "
                         f"be in (0, 0.5], got {overlap!r}")


def save_model_folder(
    separator: nn.Module,
    card: str | os.PathLike,
    out_dir: str | os.PathLike,
    overrides: Mapping | str | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    overlap: float = DEFAULT_OVERLAP,
    overwrite: bool = False,
    order: str | None = None,
    fixed_order: bool | None = None,
) -> Path:
    """Writes a model folder that ``GASSSeparator.from_hparams`` loads.

    Call it at the end of training with what a recipe has: the trained separator (wrapped by
    DDP, DataParallel or ``torch.compile`` or not) and its model card, as a path or as yaml text,
    with the overrides the recipe applied to it. The folder gets

    - ``hyperparams.yaml``: the card with the overrides and references resolved
      (``hyperpyyaml.resolve_references``), plus ``chunk_seconds``, ``chunk_overlap``,
      ``order``, ``modules`` and ``pretrainer`` (whose load hook is
      :func:`load_separator_checkpoint`);
    - ``separator.ckpt``: ``separator.state_dict()`` on the CPU, loadable with
      ``torch.load(weights_only=True)``.

    Before writing, the card is built and checked against ``separator`` (class, ``num_sources``,
    ``sample_rate``, parameter names and shapes), so a wrong card or override fails here and not
    when a user loads the folder.

    Arguments
    ---------
    separator : torch.nn.Module
        The trained separator (separator contract of docs/architecture.md).
    card : str or os.PathLike
        Path of the model card (``hparams/models/<name>.yaml``), or its yaml text.
    out_dir : str or os.PathLike
        The model folder to write (created if needed).
    overrides : dict or str, optional
        Overrides applied to the card (as for ``load_hyperpyyaml``), e.g. ``{"num_sources": 4}``.
    chunk_seconds : float
        Default chunk length for long inputs, stored in the folder (``chunk_seconds``).
    overlap : float
        Default fraction of a chunk shared with the next one, in (0, 0.5] (``chunk_overlap``).
    overwrite : bool
        Replace an existing model folder's files; otherwise a ``FileExistsError`` is raised.
    order : str, optional
        ``"aligned"`` (the default; outputs of a PIT-trained model: long inputs are stitched
        with the chunks' source order aligned) or ``"fixed"`` (labelled stems, output ``k`` is
        always stem ``k``, e.g. DnR or MUSDB18 trained without permutation: no re-alignment,
        stems keep their index); see ``gass_modules.chunking``.
    fixed_order : bool, optional
        Deprecated name of ``order`` (true: ``"fixed"``).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Example
    -------
    >>> from gass_modules.inference import GASSSeparator, ScaledCopies
    >>> tmp = getfixture("tmp_path")
    >>> card = '''
    ... sample_rate: 8000
    ... num_sources: 2
    ... separator: !new:gass_modules.inference.ScaledCopies
    ...     gains: [0.25, 0.75]
    ...     sample_rate: !ref <sample_rate>
    ... '''
    >>> model = ScaledCopies([0.5, 0.5], sample_rate=8000)
    >>> folder = save_model_folder(model, card, tmp / "model")
    >>> sorted(p.name for p in folder.iterdir())
    ['hyperparams.yaml', 'separator.ckpt']
    >>> sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    >>> sep.mods.separator.gains.tolist()  # the trained values, not the card's initial ones
    [0.5, 0.5]
    """
    from gass_modules.chunking import resolve_order  # chunking imports this module

    order = resolve_order(order, fixed_order=fixed_order)
    module = unwrap_module(separator)
    _check_separator(module, "save_model_folder")
    _check_chunking(chunk_seconds, overlap)
    text, where = _read_card(card)
    reserved = sorted(set(_TOP_KEY.findall(text)) & set(_RESERVED_KEYS))
    if reserved:
        raise ValueError(f"model card {where} defines {reserved}, which save_model_folder writes "
                         "itself; pass the bare model card (sample_rate, num_sources, separator)")
    full = text.rstrip("\n") + "\n" + _INFERENCE_YAML.format(
        chunk_seconds=float(chunk_seconds), overlap=float(overlap), order=order)
    try:
        resolved = resolve_references(full, overrides, overrides_must_match=True).getvalue()
        hparams = load_hyperpyyaml(resolved)
    except Exception as err:
        raise ValueError(f"cannot build model card {where} with overrides {overrides!r}: "
                         f"{type(err).__name__}: {err}") from err
    built = hparams.get("separator")
    _check_separator(built, f"model card {where}")
    problems = []
    if type(built) is not type(module):
        problems.append(f"card builds {type(built).__qualname__}, the separator is "
                        f"{type(module).__qualname__}")
    for name in ("num_sources", "sample_rate"):
        if hparams.get(name) != getattr(module, name) or getattr(built, name) != getattr(
            module, name
        ):
            problems.append(f"{name}: card key {hparams.get(name)!r}, card separator "
                            f"{getattr(built, name)!r}, trained separator "
                            f"{getattr(module, name)!r}")
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    mismatch = _state_mismatch(built.state_dict(), state)
    if mismatch:
        problems.append(mismatch)
    if problems:
        raise ValueError(f"model card {where} (overrides {overrides!r}) does not describe the "
                         f"trained separator: {'; '.join(problems)}")
    out_dir = Path(out_dir)
    targets = (out_dir / HPARAMS_FILE, out_dir / CHECKPOINT_FILE)
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} already exist; pass overwrite=True to replace them")
    out_dir.mkdir(parents=True, exist_ok=True)
    targets[0].write_text(resolved, encoding="utf-8")
    torch.save(state, targets[1])
    return out_dir


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
