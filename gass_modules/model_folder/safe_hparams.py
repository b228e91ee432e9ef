"""Safe loading of model folders: ``hyperparams.yaml`` as data, separators from an allow-list.

A model folder's ``hyperparams.yaml`` is hyperpyyaml, which can run any code: ``!apply:os.system``
runs a command, ``!new:`` builds any class, ``!name:`` hands out any function. A model folder
downloaded from somewhere must not run code when it is loaded, so by default
``GASSSeparator.from_hparams`` (and ``gass-separate``, ``tools/export.py``, the benchmark
recipes' ``no_tuning`` evaluation and the ASR front-end recipe) read it with
:func:`load_model_description`, which accepts

* plain yaml data (numbers, strings, booleans, null, lists, mappings, anchors and aliases);
* ``!new:<class>`` with a mapping or list of arguments, where ``<class>`` is a registered
  separator class: the gass separators (:data:`BUILTIN_SEPARATORS`) and classes registered with
  :func:`register_separator`; a path of an earlier layout is read as its current one
  (:data:`FORMER_PATHS`, the one table of moves, also for ``!name:`` paths);
* ``!ref <key>`` to another key of the file (``<a.b>`` for a nested one), without arithmetic;
* ``modules`` and ``pretrainer`` exactly as
:func:`gass_modules.model_folder.folder.save_model_folder`
  writes them (the SpeechBrain interface keys; they are checked, never run: the separator's
  checkpoint is loaded with ``torch.load(weights_only=True)`` by the loader itself).

Anything else (``!apply``, ``!name``, ``!module``, ``!include``, ``!copy``, ``!new:`` of another
class, arithmetic in ``!ref``, Python-specific yaml tags) is refused with an
:class:`UntrustedCodeError` that names the opt-in: ``trust_code=True`` in Python,
``--trust-model-code`` on the command line (``trust_model_code: True`` in the recipes), which
load the folder with full hyperpyyaml. Use it only for folders whose source you trust.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import yaml
from torch import nn

BUILTIN_SEPARATORS = (
    "gass_modules.lobes.tdanet.TDANetWav",
    "gass_modules.lobes.tdanet.TDANetSTFT",
    "gass_modules.lobes.bsrnn.BSRNN",
    "gass_modules.lobes.bs_roformer.BSRoFormer",
    "gass_modules.lobes.tiger.TIGER",
)
TRUST_HINT = ("if you trust the folder's source, load it with trust_code=True (Python) or "
              "--trust-model-code (gass-separate, tools/export.py; trust_model_code: True in the "
              "recipes), which runs full hyperpyyaml and any code the file names; for your own "
              "separator class, register it with "
              "gass_modules.model_folder.safe_hparams.register_separator")
PRETRAINER = "speechbrain.utils.parameter_transfer.Pretrainer"
LOAD_HOOK = "gass_modules.model_folder.folder.load_separator_checkpoint"
# THE table of moves (one place): a class or function path that a model folder written by an
# earlier version names -> where it is now. Folders on disk cannot be rewritten, so the safe
# loader reads the old paths through this table (one of the two compatibility paths kept in
# 2.0.0; the other is model_folder.folder_order). When a module moves, add one row per separator
# class and per function a folder can name (old path -> new path); a row may point to an older
# row's key, chains are followed (current_path). Old paths are spelled from _OLD, so that a
# script rewriting the package's import paths (``gass_modules.X`` -> ``gass_modules.pkg.Y``)
# leaves these records of the past as they are; values are current paths.
_OLD = "gass_modules"
FORMER_PATHS: dict[str, str] = {
    # before #16 (model folders exported before the split of inference.py): the load hook
    f"{_OLD}.inference.load_separator_checkpoint": LOAD_HOOK,
    # 1.x (#16 to 2.0.0, model_folder.py a module; 2.0.0 made it a package): the load hook
    f"{_OLD}.model_folder.load_separator_checkpoint": LOAD_HOOK,
}
# Bounds on a model folder's yaml: a real card has a few hundred values and a few levels; aliases
# can make a 400-byte file stand for billions of values ("billion laughs"), so the file may stand
# for at most this many values (aliases expanded, counted in linear time) and levels.
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_MODEL_BYTES = 64 << 30  # parameters + buffers of one separator (GASS-mini: 4 MB)
_REF = re.compile(r"^\s*<([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)>\s*$")
_registered: dict[str, type] = {}


class UntrustedCodeError(ValueError):
    """A model folder asks for something the safe loader does not build (message: what, where,
    and the ``trust_code`` / ``--trust-model-code`` opt-in).

    Example
    -------
    >>> issubclass(UntrustedCodeError, ValueError)  # callers catching ValueError still do
    True
    """


def register_separator(cls: type) -> type:
    """Allows model folders loaded safely to build ``cls`` with ``!new:<module>.<class>``.

    Use it (also as a class decorator) for a separator of your own, in code that runs before
    the folder is loaded; arguments still have to be plain yaml data.

    Arguments
    ---------
    cls : type
        A ``torch.nn.Module`` subclass (a separator of the contract in docs/architecture.md).

    Returns
    -------
    type
        ``cls`` itself.

    Example
    -------
    >>> @register_separator
    ... class Mine(nn.Module):
    ...     def __init__(self, gain: float):
    ...         super().__init__()
    ...         self.gain = gain
    >>> f"{Mine.__module__}.Mine" in registered_separators()
    True
    """
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"register_separator expects a torch.nn.Module subclass, got {cls!r}")
    _registered[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


def registered_separators() -> list[str]:
    """The class paths a model folder loaded safely may build with ``!new:``.

    Returns
    -------
    list of str
        :data:`BUILTIN_SEPARATORS` and the classes given to :func:`register_separator`.

    Example
    -------
    >>> "gass_modules.lobes.bsrnn.BSRNN" in registered_separators()
    True
    """
    return list(BUILTIN_SEPARATORS) + sorted(set(_registered) - set(BUILTIN_SEPARATORS))


def current_path(path: str) -> str:
    """Where a class or function that a model folder names is now (:data:`FORMER_PATHS`).

    Arguments
    ---------
    path : str
        A dotted path as a folder's ``!new:`` or ``!name:`` tag writes it.

    Returns
    -------
    str
        The current path (``path`` itself when it never moved).

    Example
    -------
    >>> current_path(f"{_OLD}.inference.load_separator_checkpoint")  # a folder from before #16
    'gass_modules.model_folder.folder.load_separator_checkpoint'
    >>> current_path("gass_modules.lobes.bsrnn.BSRNN")
    'gass_modules.lobes.bsrnn.BSRNN'
    """
    seen = {path}
    while path in FORMER_PATHS:
        path = FORMER_PATHS[path]
        if path in seen:
            raise ValueError(f"FORMER_PATHS has a cycle through {path}")
        seen.add(path)
    return path


def _separator_class(path: str) -> type:
    """The registered class at ``path`` (built-in ones are imported from gass_modules)."""
    if path in _registered:
        return _registered[path]
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@dataclass(eq=False)
class _New:
    """``!new:<target>`` with its (unbuilt) arguments."""

    target: str
    args: Any
    line: int


@dataclass(eq=False)
class _Tagged:
    """``!ref`` or ``!name:``: kept as text until checked."""

    tag: str
    value: str
    line: int


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader plus inert ``!new:``, ``!name:`` and ``!ref`` nodes."""


def _refuse(loader: _Loader, suffix: Any, node: yaml.Node = None) -> None:
    """Constructor of every other tag: refuses it."""
    node = suffix if node is None else node
    raise UntrustedCodeError(f"line {node.start_mark.line + 1}: the tag {node.tag} is not "
                             "allowed in a model folder loaded safely (it could run code)")


def _construct_new(loader: _Loader, target: str, node: yaml.Node) -> _New:
    if isinstance(node, yaml.MappingNode):
        args = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        args = loader.construct_sequence(node, deep=True)
    elif loader.construct_scalar(node) == "":
        args = {}
    else:
        raise UntrustedCodeError(f"line {node.start_mark.line + 1}: !new:{target} needs a "
                                 "mapping (keyword arguments) or a list (positional arguments)")
    return _New(current_path(target), args, node.start_mark.line + 1)


def _construct_name(loader: _Loader, target: str, node: yaml.Node) -> _Tagged:
    return _Tagged("!name", current_path(target), node.start_mark.line + 1)


def _construct_ref(loader: _Loader, node: yaml.Node) -> _Tagged:
    return _Tagged("!ref", str(loader.construct_scalar(node)), node.start_mark.line + 1)


_Loader.add_constructor("!ref", _construct_ref)
_Loader.add_multi_constructor("!new:", _construct_new)
_Loader.add_multi_constructor("!name:", _construct_name)
_Loader.add_multi_constructor("!", _refuse)
_Loader.add_multi_constructor("tag:yaml.org,2002:python/", _refuse)
_Loader.add_constructor(None, _refuse)


def _parse(text: str, where: str) -> Any:
    """yaml text as plain data and inert tag nodes, checked by :func:`_check_shape`."""
    try:
        tree = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except UntrustedCodeError as err:
        raise UntrustedCodeError(f"{where}: {err}; {TRUST_HINT}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{where} is not valid yaml: {err}") from err
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply to be a model card (more than "
                         f"{MAX_DEPTH} levels)") from None
    except ValueError as err:  # e.g. an integer of 100,000 digits (Python's conversion limit)
        raise ValueError(f"{where} holds a value no model card has: {err}") from None
    _check_shape(tree, where)
    return tree


def _children(node: Any) -> list:
    """The values directly under a node (mapping values, list items, ``!new:`` arguments)."""
    if isinstance(node, _New):
        return [node.args]
    if isinstance(node, dict):
        return list(node.values())
    if isinstance(node, list):
        return list(node)
    return []


def _check_shape(tree: Any, where: str) -> None:
    """Refuses quickly (without recursion, each shared node visited once) a tree that refers to
    itself, stands for more than ``MAX_NODES`` values once its aliases are expanded, or is
    nested deeper than ``MAX_DEPTH``."""
    state: dict[int, int] = {}  # id -> 1 while on the current path, 2 when done
    size: dict[int, int] = {}  # id -> values under the node once aliases are expanded
    stack = [(tree, 0, False)]
    while stack:
        node, depth, leaving = stack.pop()
        if leaving:
            state[id(node)] = 2
            size[id(node)] = 1 + sum(size.get(id(child), 1) for child in _children(node))
            if size[id(node)] > MAX_NODES:
                raise ValueError(f"{where} expands to more than {MAX_NODES} values (aliases "
                                 "that multiply, as in a 'billion laughs' file); a model card "
                                 "has a few hundred: refused")
            continue
        if not isinstance(node, (dict, list, _New)):
            continue
        mark = state.get(id(node))
        if mark == 1:
            raise ValueError(f"{where} refers to itself (an alias used inside its own anchor's "
                             "value); a model card is a tree of plain values")
        if mark == 2:
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"{where} is nested too deeply to be a model card (more than "
                             f"{MAX_DEPTH} levels)")
        state[id(node)] = 1
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))


def _merge(tree: Any, overrides: Mapping, where: str, prefix: str = "") -> None:
    """Applies ``overrides`` to ``tree`` in place (keys must exist, as hyperpyyaml requires)."""
    target = tree.args if isinstance(tree, _New) else tree
    if not isinstance(target, dict):
        raise ValueError(f"override {prefix or '<top>'}: {where} has no mapping there")
    for key, value in overrides.items():
        if key not in target:
            raise KeyError(f"override {prefix + str(key)!r} not found in {where} (keys: "
                           f"{sorted(map(str, target))})")
        current = target[key]
        if isinstance(value, Mapping) and isinstance(current, (dict, _New)):
            _merge(current, value, where, f"{prefix}{key}.")
        else:
            target[key] = value


def _resolve(node: Any, root: dict, where: str, seen: dict, stack: tuple = ()) -> Any:
    """Replaces ``!ref`` nodes by the values they name (in place; aliases stay shared)."""
    if isinstance(node, _Tagged) and node.tag == "!ref":
        found = _REF.match(node.value)
        if not found:
            raise UntrustedCodeError(f"{where}: line {node.line}: !ref {node.value} is not a "
                                     "plain reference <key> (expressions are evaluated by "
                                     f"hyperpyyaml only); {TRUST_HINT}")
        name = found.group(1)
        if name in stack:
            raise ValueError(f"{where}: line {node.line}: circular reference <{name}>")
        value: Any = root
        for part in name.split("."):
            value = value.args if isinstance(value, _New) else value
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"{where}: line {node.line}: !ref <{name}> names no key")
            value = value[part]
        return _resolve(value, root, where, seen, stack + (name,))
    if id(node) in seen:
        return node
    if isinstance(node, (dict, list, _New)):
        seen[id(node)] = node
        container = node.args if isinstance(node, _New) else node
        keys = container.keys() if isinstance(container, dict) else range(len(container))
        for key in list(keys):
            container[key] = _resolve(container[key], root, where, seen, stack)
    return node


def _check(node: Any, where: str, path: str, allowed: set[str],
           seen: set[int] | None = None) -> None:
    """Raises unless every tag under ``node`` is a registered ``!new:`` (a node shared through
    aliases is checked once: ``seen``)."""
    seen = set() if seen is None else seen
    if isinstance(node, (dict, list, _New)):
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, _New):
        if node.target not in allowed:
            raise UntrustedCodeError(f"{where}: line {node.line}: {path}: !new:{node.target} is "
                                     "not a registered separator class (allowed: "
                                     f"{sorted(allowed)}); {TRUST_HINT}")
        _check(node.args, where, path, allowed, seen)
    elif isinstance(node, _Tagged):
        raise UntrustedCodeError(f"{where}: line {node.line}: {path}: {node.tag}:{node.value} "
                                 f"could run code and is not allowed; {TRUST_HINT}")
    elif isinstance(node, dict):
        for key, value in node.items():
            _check(value, where, f"{path}.{key}" if path else str(key), allowed, seen)
    elif isinstance(node, list):
        for k, value in enumerate(node):
            _check(value, where, f"{path}[{k}]", allowed, seen)


def _check_interface_keys(tree: dict, where: str) -> None:
    """``modules`` and ``pretrainer`` must be what save_model_folder writes; then dropped."""
    separator = tree.get("separator")
    if "modules" in tree and tree["modules"] != {"separator": separator}:
        raise UntrustedCodeError(f"{where}: modules must be {{separator: <the separator key>}} "
                                 f"as save_model_folder writes it; {TRUST_HINT}")
    pretrainer = tree.get("pretrainer")
    if pretrainer is not None:
        expected = isinstance(pretrainer, _New) and pretrainer.target == PRETRAINER and (
            isinstance(pretrainer.args, dict)
            and set(pretrainer.args) <= {"loadables", "custom_hooks"}
            and pretrainer.args.get("loadables") == {"separator": separator}
        )
        hooks = pretrainer.args.get("custom_hooks") if expected else None
        if hooks is not None:
            hook = hooks.get("separator") if isinstance(hooks, dict) else None
            expected = (isinstance(hooks, dict) and set(hooks) == {"separator"}
                        and isinstance(hook, _Tagged) and hook.tag == "!name"
                        and hook.value == LOAD_HOOK)
        if not expected:
            raise UntrustedCodeError(f"{where}: pretrainer is not the one save_model_folder "
                                     f"writes (a {PRETRAINER} loading the separator with "
                                     f"{LOAD_HOOK}); {TRUST_HINT}")
    tree.pop("modules", None)
    tree.pop("pretrainer", None)


def _build(node: Any, built: dict) -> Any:
    """Instantiates the checked ``!new:`` nodes (bottom-up; shared nodes built once)."""
    if id(node) in built:
        return built[id(node)]
    if isinstance(node, _New):
        args = _build(node.args, built)
        cls = _separator_class(node.target)
        _check_size(cls, args, node)
        try:
            value = cls(*args) if isinstance(args, list) else cls(**args)
        except TypeError as err:
            raise ValueError(f"cannot build {node.target} (line {node.line}): {err}") from err
    elif isinstance(node, dict):
        value = {key: _build(item, built) for key, item in node.items()}
    elif isinstance(node, list):
        value = [_build(item, built) for item in node]
    else:
        return node
    built[id(node)] = value
    return value


def _memory_bytes() -> int | None:
    """The machine's physical memory (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_size(cls: type, args: Any, node: _New) -> None:
    """Refuses a separator whose parameters and buffers would not fit in memory, from a build on
    PyTorch's ``meta`` device (shapes only, nothing allocated), before the real build asks the
    allocator for hundreds of GB. A class that cannot be built on ``meta`` is not estimated."""
    try:
        with torch.device("meta"):
            probe = cls(*args) if isinstance(args, list) else cls(**args)
        tensors = list(probe.parameters()) + list(probe.buffers())
        size = sum(t.numel() * t.element_size() for t in tensors)
    except RuntimeError as err:  # a size past int64 ("Storage size calculation overflowed")
        if "overflow" not in str(err):
            return
        size = 1 << 63
    except Exception:  # noqa: BLE001 (the real build reports what is wrong with the arguments)
        return
    memory = _memory_bytes()
    limit = min(memory // 2 if memory else MAX_MODEL_BYTES, MAX_MODEL_BYTES)
    if size > limit:
        need = f"{size / 2**30:.3g} GiB" if size < (1 << 63) else "more bytes than int64 counts"
        raise ValueError(f"!new:{node.target} (line {node.line}) would need {need} "
                         f"for its parameters alone (at most {limit / 2**30:.0f} GiB is "
                         "accepted: half this machine's memory, 64 GiB at most): check its "
                         "dimensions (hidden_channels, n_fft, ...) in the model folder")


def load_model_description(text: str, overrides: Mapping | str | None = None,
                           where: str = "hyperparams.yaml") -> dict:
    """Builds a model folder's ``hyperparams.yaml`` without running code from it.

    The rules are in the module docstring: plain data, ``!ref <key>``, ``!new:`` of registered
    separator classes, and the ``modules``/``pretrainer`` keys of :func:`save_model_folder`
    (checked, then left out: the caller loads the checkpoint).

    Arguments
    ---------
    text : str
        The yaml text.
    overrides : dict or str, optional
        Values replacing the file's (keys must exist; nested mappings update nested keys, also
        the arguments of a ``!new:``), as a mapping or as yaml text of plain data.
    where : str
        The file's name, for messages.

    Returns
    -------
    dict
        The top-level keys with the separator(s) built.

    Raises
    ------
    UntrustedCodeError
        For anything that could run code; the message names ``trust_code=True`` and
        ``--trust-model-code``.

    Example
    -------
    >>> card = '''
    ... sample_rate: 8000
    ... separator: !new:gass_modules.lobes.bsrnn.BSRNN
    ...     num_sources: 2
    ...     sample_rate: !ref <sample_rate>
    ...     n_fft: 64
    ...     hop_length: 16
    ...     band_plan: [[0, 1000], [1000, .inf]]
    ...     feature_dim: 4
    ...     hidden_dim: 4
    ...     num_blocks: 1
    ... '''
    >>> hparams = load_model_description(card)
    >>> type(hparams["separator"]).__name__, hparams["separator"].sample_rate
    ('BSRNN', 8000)
    >>> try:
    ...     load_model_description("pwned: !apply:os.system [echo hi]")
    ... except UntrustedCodeError as err:
    ...     print(str(err)[:66], "--trust-model-code" in str(err))
    hyperparams.yaml: line 1: the tag !apply:os.system is not allowed True
    """
    tree = _parse(text, where)
    if not isinstance(tree, dict):
        raise ValueError(f"{where} must be a mapping of keys (sample_rate, num_sources, "
                         f"separator, ...), got {type(tree).__name__}")
    if overrides:
        if isinstance(overrides, str):
            overrides = _parse(overrides, f"overrides of {where}")
        if not isinstance(overrides, Mapping):
            raise ValueError(f"overrides must be a mapping, got {type(overrides).__name__}")
        _check(dict(overrides), f"overrides of {where}", "", set())  # plain data only
        _merge(tree, overrides, where)
    tree = _resolve(tree, tree, where, {})
    _check_interface_keys(tree, where)
    _check(tree, where, "", set(registered_separators()))
    return _build(tree, {})


__all__ = ["BUILTIN_SEPARATORS", "FORMER_PATHS", "UntrustedCodeError", "current_path",
           "load_model_description", "register_separator", "registered_separators"]
