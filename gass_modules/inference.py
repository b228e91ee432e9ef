"""Separation for users: ``GASSSeparator`` (a SpeechBrain ``Pretrained``) and model folders.

A *model folder* is what SpeechBrain's ``Pretrained.from_hparams`` loads: ``hyperparams.yaml`` (the
model card with the recipe's overrides resolved, plus the ``modules`` and ``pretrainer`` keys of a
SpeechBrain interface) and ``separator.ckpt`` (the separator's ``state_dict``).
:func:`save_model_folder` writes one at the end of training; ``GASSSeparator.from_hparams(source=
folder)`` loads it from the local disk, never from the network, and without running code from it
(:mod:`gass_modules.safe_hparams`; ``trust_code=True`` opts into full hyperpyyaml).

Files of any length, rate and channel count
-------------------------------------------
Let ``f_in`` be the file's rate and ``f_m`` the model's, ``g = gcd(f_in, f_m)``. The file is cut
into chunks of ``L`` input samples that overlap by ``O`` samples (hop ``H = L - O``), ``L`` and
``O`` multiples of ``f_in / g`` so every chunk starts on a sample of both rates. Each chunk is read
with a margin of ``M`` input samples on both sides, resampled to ``f_m`` (torchaudio's windowed
sinc), separated, resampled back to ``f_in`` and cropped to its core. ``M`` covers the support of
both resampling kernels, so for a separator that acts sample by sample the chunked result equals
the whole-file result: chunking only changes what a real model sees, never the resampling.

The separator's output order is arbitrary (it is trained with PIT), so each chunk's sources are
permuted to match the previous chunk on the ``O`` shared samples, by the PIT criterion of training
(``pairwise_log_mse`` + ``best_permutation``), before overlap-add with complementary Hann ramps
(``w_up[n] + w_down[n] = 1``), so a source stays on one output from the first chunk to the last.
When channels are separated one by one, each channel's sources are first matched to channel 0's
by absolute cosine similarity (a source's level differs between channels); an order must win by
1e-4 to replace the model's own.
Memory is bounded by one chunk: files are read in sequential blocks (soundfile) and the stems
written as they are produced.

Source activity: output ``s`` has energy ``E_s = 10 log10(sum(s^2) / sum(x^2))`` dB relative to
the mixture ``x``; outputs with ``E_s`` under ``threshold_db`` (default −20 dB, the level under
which the training loss's inactive-source term ``10 log10(|s|^2 + 10^-2 |x|^2)`` stops pushing)
are reported silent and, by default, not written.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from hyperpyyaml import load_hyperpyyaml, resolve_references
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig
from torch import nn
from tqdm.auto import tqdm

from gass_modules.lobes.base import Separator, check_mixture
from gass_modules.losses import best_permutation, pairwise_log_mse, permute
from gass_modules.safe_hparams import load_model_description

try:
    import fcntl
except ImportError:  # Windows: _OutputLock falls back to an exclusively created file
    fcntl = None

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
CHECKPOINT_FILE = "separator.ckpt"
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_OVERLAP = 0.25
DEFAULT_THRESHOLD_DB = -20.0
FRAME_SECONDS = 0.1  # activity frames, for the seconds each source is active
# Largest product of the gcd-reduced rates we resample between: torchaudio's sinc kernel has about
# 13 * f_in/g * f_m/g taps, so rates without a common divisor (44101 Hz) would need gigabytes.
_MAX_RATE_PRODUCT = 1 << 22
_TIE_MARGIN = 1e-4  # cosine similarity by which another channel order must win
_RESERVED_KEYS = ("modules", "pretrainer", "chunk_seconds", "chunk_overlap", "fixed_order")
_TOP_KEY = re.compile(r"^([A-Za-z_]\w*)\s*:", re.MULTILINE)
_INFERENCE_YAML = """
# ---- model folder keys, written by gass_modules.inference.save_model_folder ----
chunk_seconds: {chunk_seconds}
chunk_overlap: {overlap}
fixed_order: {fixed_order}
modules:
    separator: !ref <separator>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        separator: !ref <separator>
    custom_hooks:
        separator: !name:gass_modules.inference.load_separator_checkpoint
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
                             f"(DESIGN.md §2), {type(separator).__name__} has {value!r}")


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
    fixed_order: bool = False,
) -> Path:
    """Writes a model folder that ``GASSSeparator.from_hparams`` loads.

    Call it at the end of training with what a recipe has: the trained separator (wrapped by
    DDP, DataParallel or ``torch.compile`` or not) and its model card, as a path or as yaml text,
    with the overrides the recipe applied to it. The folder gets

    - ``hyperparams.yaml``: the card with the overrides and references resolved
      (``hyperpyyaml.resolve_references``), plus ``chunk_seconds``, ``chunk_overlap``,
      ``fixed_order``, ``modules`` and ``pretrainer`` (whose load hook is
      :func:`load_separator_checkpoint`);
    - ``separator.ckpt``: ``separator.state_dict()`` on the CPU, loadable with
      ``torch.load(weights_only=True)``.

    Before writing, the card is built and checked against ``separator`` (class, ``num_sources``,
    ``sample_rate``, parameter names and shapes), so a wrong card or override fails here and not
    when a user loads the folder.

    Arguments
    ---------
    separator : torch.nn.Module
        The trained separator (DESIGN.md §2 contract).
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
    fixed_order : bool
        The outputs are labelled stems (output ``k`` is always stem ``k``, e.g. DnR or MUSDB18
        trained without permutation): long inputs are then stitched without re-aligning the
        chunks' source order and stems keep their index (``fixed_order``).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Example
    -------
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
    module = unwrap_module(separator)
    _check_separator(module, "save_model_folder")
    _check_chunking(chunk_seconds, overlap)
    text, where = _read_card(card)
    reserved = sorted(set(_TOP_KEY.findall(text)) & set(_RESERVED_KEYS))
    if reserved:
        raise ValueError(f"model card {where} defines {reserved}, which save_model_folder writes "
                         "itself; pass the bare model card (sample_rate, num_sources, separator)")
    full = text.rstrip("\n") + "\n" + _INFERENCE_YAML.format(
        chunk_seconds=float(chunk_seconds), overlap=float(overlap),
        fixed_order=str(bool(fixed_order)).lower())
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


class ScaledCopies(Separator):
    """A minimal separator: output ``s`` is ``g_s * x`` (a fixed gain per source, learnable).

    It satisfies the separator contract (DESIGN.md §2: any length, no mixing across the batch,
    exports with a dynamic length) and exists to make the examples and smoke tests of model
    folders, export and the CLI runnable without a trained network; it does not separate anything.

    Arguments
    ---------
    gains : list of float
        ``g_s``, one per output source.
    sample_rate : int
        The rate the model declares.

    Example
    -------
    >>> model = ScaledCopies([0.25, 0.75], sample_rate=8000)
    >>> model(torch.ones(1, 3))[0].tolist()
    [[0.25, 0.75], [0.25, 0.75], [0.25, 0.75]]
    """

    def __init__(self, gains: list[float], sample_rate: int) -> None:
        if len(gains) < 1:
            raise ValueError("gains must hold one gain per source, got an empty list")
        super().__init__(num_sources=len(gains), sample_rate=sample_rate, stride=1)
        self.gains = nn.Parameter(torch.tensor([float(g) for g in gains]))  # [S]

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        """Returns ``g_s * mix`` for every source.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, L]`` mixture.

        Returns
        -------
        torch.Tensor
            ``[B, L, S]``.
        """
        return mix.unsqueeze(-1) * self.gains  # [B, L, S]


@dataclass
class Separation:
    """What ``GASSSeparator.separate_file`` returns: the kept stems and the activity report.

    Arguments
    ---------
    sample_rate : int
        The input file's rate; stems are at this rate.
    num_frames : int
        Input length in samples.
    channels : int
        Channels of each stem (1 when the input was downmixed).
    energy_db : list of float
        Per model output, energy relative to the mixture in dB (``-inf`` when silent).
    active : list of bool
        Per model output, ``energy_db >= threshold_db`` (all False for a silent mixture).
    active_seconds : list of float
        Per model output, seconds of 0.1 s frames whose power is over ``threshold_db`` relative
        to the mixture's mean power.
    kept : list of int
        Model output indices of the stems, in stem order (loudest first).
    sources : torch.Tensor, optional
        ``[C, T, K]`` kept stems, when no ``out_dir`` was given.
    files : list of pathlib.Path
        The written stems ``<name>_s1.wav ...`` (``kept[k]`` is in ``files[k]``).
    clipped : list of int
        Per model output, samples clipped to [-1, 1] when written in an integer encoding
        (PCM, u-law, A-law).
    warnings : list of str
        What the user should know about the input (e.g. a truncated file: how many frames were
        read); also logged.

    Example
    -------
    >>> r = Separation(8000, 16000, 1, [-3.0, -40.0], [True, False], [2.0, 0.0], [0])
    >>> r.num_active, r.duration
    (1, 2.0)
    """

    sample_rate: int
    num_frames: int
    channels: int
    energy_db: list[float]
    active: list[bool]
    active_seconds: list[float]
    kept: list[int]
    sources: torch.Tensor | None = None
    files: list[Path] = field(default_factory=list)
    clipped: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_active(self) -> int:
        """Number of outputs over the activity threshold."""
        return int(sum(self.active))

    @property
    def duration(self) -> float:
        """Input duration in seconds."""
        return self.num_frames / self.sample_rate


def source_activity(
    mix: torch.Tensor, sources: torch.Tensor, threshold_db: float = DEFAULT_THRESHOLD_DB
) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy of each estimate relative to its mixture, and whether it is over the threshold.

    Arguments
    ---------
    mix : torch.Tensor
        ``[B, T]`` mixtures.
    sources : torch.Tensor
        ``[B, T, S]`` estimates.
    threshold_db : float
        Outputs with ``10 log10(sum(s^2) / sum(x^2)) < threshold_db`` are silent.

    Returns
    -------
    energy_db : torch.Tensor
        ``[B, S]`` relative energies in dB (``-inf`` for all-zero outputs).
    active : torch.Tensor
        ``[B, S]`` bool; False everywhere for an all-zero mixture.

    Example
    -------
    >>> x = torch.ones(1, 100)
    >>> energy_db, active = source_activity(x, torch.stack([x, 0.01 * x], -1))
    >>> energy_db.round().tolist(), active.tolist()
    ([[0.0, -40.0]], [[True, False]])
    """
    check_mixture(mix)
    if sources.dim() != 3 or sources.shape[:2] != mix.shape:
        raise ValueError(f"expected sources [B, T, S] matching mix {tuple(mix.shape)}, got "
                         f"{tuple(sources.shape)}")
    mix_energy = mix.double().pow(2).sum(-1, keepdim=True)  # [B, 1]
    energy = sources.double().pow(2).sum(1)  # [B, S]
    energy_db = 10 * torch.log10(energy / mix_energy)  # [B, S]
    active = (energy_db >= threshold_db) & (mix_energy > 0)
    return energy_db.float(), active


class _ActivityMeter:
    """Streams the energies behind :class:`Separation`: totals and 0.1 s frame energies."""

    def __init__(self, num_sources: int, sample_rate: int) -> None:
        self.frame = max(1, round(FRAME_SECONDS * sample_rate))
        self.sample_rate = sample_rate
        self.mix_energy = 0.0
        self.energy = torch.zeros(num_sources, dtype=torch.float64)  # [S]
        self.frames = torch.zeros(64, num_sources, dtype=torch.float64)  # [F, S]
        self.offset = 0

    def update(self, mix: torch.Tensor, est: torch.Tensor) -> None:
        """Adds a block: ``mix [C, n]``, ``est [C, n, S]``."""
        n = mix.shape[-1]
        self.mix_energy += float(mix.double().pow(2).sum())
        per_sample = est.double().pow(2).sum(0)  # [n, S]
        self.energy += per_sample.sum(0)
        index = (self.offset + torch.arange(n)) // self.frame  # [n]
        needed = int(index[-1]) + 1
        if needed > self.frames.shape[0]:
            grown = torch.zeros(max(needed, 2 * self.frames.shape[0]), self.frames.shape[1],
                                dtype=torch.float64)
            grown[: self.frames.shape[0]] = self.frames
            self.frames = grown
        self.frames.index_add_(0, index, per_sample)
        self.offset += n

    def result(self, threshold_db: float) -> tuple[list[float], list[bool], list[float]]:
        """(energy_db, active, active_seconds) per output."""
        count = -(-self.offset // self.frame)
        lengths = torch.full((count,), float(self.frame), dtype=torch.float64)  # [F]
        lengths[-1] = self.offset - (count - 1) * self.frame
        if self.mix_energy <= 0:
            silent = [False] * self.energy.numel()
            return [-math.inf] * self.energy.numel(), silent, [0.0] * self.energy.numel()
        energy_db = (10 * torch.log10(self.energy / self.mix_energy)).tolist()
        active = [e >= threshold_db for e in energy_db]
        floor = 10 ** (threshold_db / 10) * self.mix_energy / self.offset  # power, per sample
        power = self.frames[:count] / lengths[:, None]  # [F, S]
        seconds = ((power >= floor) * lengths[:, None]).sum(0) / self.sample_rate  # [S]
        return energy_db, active, seconds.tolist()


class _ArrayReader:
    """Reads zero-padded ranges of an in-memory ``[C, N]`` signal."""

    def __init__(self, signal: torch.Tensor) -> None:
        self.signal = signal  # [C, N]

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` as ``[C, stop - start]``, zeros outside ``[0, N)``."""
        length = self.signal.shape[-1]
        lo, hi = max(start, 0), min(stop, length)
        return nn.functional.pad(self.signal[:, lo:hi], (lo - start, stop - hi))


class _FileReader:
    """Reads zero-padded ranges of an open ``soundfile.SoundFile`` sequentially, in blocks.

    Only the samples from the last requested start on are kept, so memory is one chunk whatever
    the file's length; every block is checked for NaN/Inf and for truncation.
    """

    def __init__(self, handle: sf.SoundFile, name: str) -> None:
        self.handle = handle
        self.name = name
        self.length = handle.frames
        self.buffer = np.zeros((0, handle.channels), dtype=np.float32)  # [n, C]
        self.start = 0  # file position of buffer[0]

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` as ``[C, stop - start]``, zeros outside ``[0, N)``."""
        lo, hi = max(start, 0), min(stop, self.length)
        with _decoding(self.name, lo):
            if lo > self.start + len(self.buffer):  # a jump forward: nothing kept is needed
                self.handle.seek(lo)
                self.buffer, self.start = self.buffer[:0], lo
            else:
                self.buffer, self.start = self.buffer[lo - self.start:], lo
        missing = hi - (self.start + len(self.buffer))
        if missing > 0:
            with _decoding(self.name, self.start + len(self.buffer)):
                block = self.handle.read(missing, dtype="float32", always_2d=True)  # [m, C]
            if len(block) < missing:
                stopped = self.start + len(self.buffer) + len(block)
                raise ValueError(f"{self.name} is truncated: its header announces {self.length} "
                                 f"samples but reading stopped at {stopped}; re-encode or "
                                 "repair the file")
            bad = ~np.isfinite(block)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                pos = self.start + len(self.buffer) + int(row)
                raise ValueError(_nonfinite_message(self.name, pos, int(col),
                                                    self.handle.samplerate))
            self.buffer = np.concatenate([self.buffer, block])
        out = np.zeros((stop - start, self.buffer.shape[1]), dtype=np.float32)
        out[lo - start: hi - start] = self.buffer[: hi - lo]
        return torch.from_numpy(out.T.copy())  # [C, n]


@contextlib.contextmanager
def _decoding(name: str, position: int) -> Iterator[None]:
    """Turns libsndfile's decoding errors into a ``ValueError`` naming the file and frame."""
    try:
        yield
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise ValueError(f"cannot decode {name} near frame {position} ({err}); the file is "
                         "corrupt or truncated: re-encode or repair it") from err


def _nonfinite_message(name: str, position: int, channel: int, rate: int) -> str:
    """The error for NaN/Inf input samples."""
    return (f"{name} contains NaN or Inf samples (first at sample {position}, "
            f"{position / rate:.3f} s, channel {channel}); expected finite audio: replace them "
            "(e.g. numpy.nan_to_num) and rerun")


def _open_audio(path: Path) -> sf.SoundFile:
    """Opens ``path`` for reading, with errors that say what is wrong with the file."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"expected an audio file, got a directory or special file: {path}")
    try:
        return sf.SoundFile(path)
    except sf.LibsndfileError as err:
        raise ValueError(f"{path} is not a readable audio file ({err.error_string}); expected "
                         "wav, flac or ogg audio") from err
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    except (TypeError, RuntimeError) as err:  # e.g. a .raw file: no header to say the rate
        raise ValueError(f"{path} cannot be opened as audio ({err}); expected a file with a "
                         "header (wav, flac, ogg, ...): convert headerless audio first") from err


# WAV encodings that keep the input's sample format with the input's length; block codecs
# (IMA/MS ADPCM, GSM 6.10, G.721, NMS ADPCM) pad the last block (a longer stem), so they become
# PCM_16, and codecs WAV cannot hold (MP3, Vorbis, Opus, ALAC, ...) become FLOAT.
_WAV_KEEP = ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW")
_BLOCK_CODECS = ("IMA_ADPCM", "MS_ADPCM", "GSM610", "G721_32", "G723_24", "G723_40",
                 "NMS_ADPCM_16", "NMS_ADPCM_24", "NMS_ADPCM_32", "VOX_ADPCM")


def _wav_subtype(subtype: str) -> str:
    """The WAV subtype of the stems for an input of ``subtype`` (module comment above)."""
    if subtype in _WAV_KEEP:
        return subtype
    if subtype == "PCM_S8":
        return "PCM_U8"
    return "PCM_16" if subtype in _BLOCK_CODECS else "FLOAT"


def _truncation_warning(handle: sf.SoundFile, name: str) -> str | None:
    """A warning when the header announces more audio than the file holds (None otherwise).

    libsndfile then reads the frames that are there and notes ``data : N (should be M)`` (bytes)
    in its log (``extra_info``).
    """
    found = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", handle.extra_info or "",
                      re.MULTILINE)
    if not found:
        return None
    announced, present = (int(v) for v in found.groups())
    if present >= announced or present <= 0:
        return None
    expected = round(handle.frames * announced / present)
    return (f"{name} is truncated: its header announces {announced} bytes of audio (about "
            f"{expected} frames) but the file holds {present}; separated the {handle.frames} "
            "frames that were read (re-encode or repair the file for the rest)")


class _OutputLock:
    """An exclusive, per-process-reentrant lock on the outputs ``<out_dir>/<stem>*``.

    Two runs writing the same stem name into one folder would otherwise interleave their files
    (a finished run could hold the other's stems). The lock is ``fcntl.flock`` on
    ``.<stem>.gass-lock`` (released by the OS if the process dies; removed on release), or an
    exclusively created file where ``fcntl`` does not exist.
    """

    _held: dict[Path, list] = {}  # path -> [fd, count], this process's locks

    def __init__(self, out_dir: Path, stem: str) -> None:
        self.path = Path(os.path.abspath(out_dir)) / f".{stem}.gass-lock"

    def __enter__(self) -> _OutputLock:
        held = self._held.get(self.path)
        if held is not None:
            held[1] += 1
            return self
        busy = FileExistsError(f"another process is writing the outputs of {self.path.parent}/"
                               f"{self.path.name[1:-len('.gass-lock')]}* (lock {self.path}); "
                               "wait for it to finish or choose another output folder")
        while True:
            fd = self._open()
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise busy from None
            try:  # the holder before us may have removed the file: lock the current one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._held[self.path] = [fd, 1]
        return self

    def _open(self) -> int:
        """Opens (without ``fcntl``: exclusively creates) the lock file."""
        flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if fcntl is None else 0)
        try:
            return os.open(self.path, flags, 0o644)
        except FileExistsError as err:  # only without fcntl
            raise FileExistsError(f"{self.path} exists: another process is writing these "
                                  "outputs, or one was killed (then delete the file)") from err
        except PermissionError as err:
            raise _permission_error(self.path.parent, err) from err

    def __exit__(self, *exc: object) -> None:
        held = self._held[self.path]
        held[1] -= 1
        if held[1] == 0:
            del self._held[self.path]
            self.path.unlink(missing_ok=True)  # while locked: no one else holds this inode
            os.close(held[0])


def _permission_error(folder: Path, err: OSError) -> PermissionError:
    """The error for an output folder that cannot be written."""
    return PermissionError(f"cannot write in {folder}: permission denied ({err.strerror}); make "
                           "it writable or choose another output folder")


def _make_folder(folder: Path) -> None:
    """``mkdir -p`` with a clear error when the folder cannot be created."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise _permission_error(folder, err) from err
    except FileExistsError as err:
        raise NotADirectoryError(f"output folder {folder} exists and is not a folder") from err


def _temporary_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new, uniquely named empty file in ``folder`` (for an atomic ``os.replace`` later)."""
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except PermissionError as err:
        raise _permission_error(folder, err) from err
    os.close(fd)
    return Path(name)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes a text file through a unique temporary file and an atomic rename.

    Readers (and concurrent writers) see either the old file or the complete new one.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write (its folder must exist).
    text : str
        The content (UTF-8).

    Returns
    -------
    pathlib.Path
        ``path``.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> write_text_atomic(tmp / "a.json", "{}").read_text(), sorted(p.name for p in tmp.iterdir())
    ('{}', ['a.json'])
    """
    path = Path(path)
    part = _temporary_file(path.parent, f".{path.stem}.", f".partial{path.suffix}")
    try:
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path


class _StemWriter:
    """Writes ``S`` stems incrementally to uniquely named hidden files, renamed on success.

    Integer encodings are clipped to [-1, 1] and the clipped samples counted (they would wrap
    around otherwise); files in ``protected`` (the inputs of a run) are never written over.
    """

    def __init__(self, out_dir: Path, stem: str, num_sources: int, sample_rate: int,
                 channels: int, subtype: str, num_frames: int, overwrite: bool,
                 protected: frozenset[Path] = frozenset()) -> None:
        self.finals = [out_dir / f"{stem}_s{s + 1}.wav" for s in range(num_sources)]
        inputs = [str(p) for p in self.finals if p.resolve() in protected]
        if inputs:
            raise ValueError(f"the stems would be written over the input(s) {inputs}; choose an "
                             "output folder outside the input folder (or rename the inputs)")
        existing = [str(p) for p in self.finals if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"outputs already exist: {existing}; pass --overwrite "
                                  "(overwrite=True) to replace them")
        _make_folder(out_dir)
        self.subtype = _wav_subtype(subtype)
        self.clip = self.subtype not in ("FLOAT", "DOUBLE")
        size = num_frames * channels * 8  # at most 8 bytes a sample
        fmt = "RF64" if size >= (1 << 32) - (1 << 20) else "WAV"
        self.parts: list[Path] = []
        self.handles: list[sf.SoundFile] = []
        try:
            for s in range(num_sources):
                self.parts.append(_temporary_file(out_dir, f".{stem}_o{s + 1}.", ".partial.wav"))
                self.handles.append(sf.SoundFile(self.parts[-1], "w", sample_rate, channels,
                                                 self.subtype, format=fmt))
        except BaseException:
            self.abort()
            raise
        self.clipped = [0] * num_sources

    def write(self, est: torch.Tensor) -> None:
        """Appends a block ``[C, n, S]``."""
        for s, handle in enumerate(self.handles):
            data = est[:, :, s].T.numpy()  # [n, C]
            if self.clip:
                over = np.abs(data) > 1.0
                if over.any():
                    self.clipped[s] += int(over.sum())
                    data = np.clip(data, -1.0, 1.0)
            handle.write(data)

    def finish(self, order: list[int], by_index: bool = False) -> list[Path]:
        """Closes the stems, renames output ``order[k]`` to ``<stem>_s{k+1}.wav`` (or output
        ``s`` to ``<stem>_s{s+1}.wav`` when ``by_index``)."""
        for handle in self.handles:
            handle.close()
        names = [self.finals[s] for s in order] if by_index else self.finals[: len(order)]
        for s, final in zip(order, names):
            os.replace(self.parts[s], final)
        for s in set(range(len(self.parts))) - set(order):
            self.parts[s].unlink(missing_ok=True)
        for stale in set(self.finals) - set(names):  # left by an earlier run (overwrite=True)
            stale.unlink(missing_ok=True)
        return names

    def abort(self) -> None:
        """Closes and removes the partial files."""
        for handle in self.handles:
            handle.close()
        for part in self.parts:
            part.unlink(missing_ok=True)


@dataclass
class _ChunkPlan:
    """Chunk geometry in input samples (see the module docstring)."""

    chunk: int  # L
    overlap: int  # O
    margin: int  # M
    count: int  # number of chunks
    last: int  # core length of the last chunk

    @property
    def hop(self) -> int:
        """H = L - O."""
        return self.chunk - self.overlap


class GASSSeparator(Pretrained):
    """Separates mixtures and audio files of any length, rate and channel count (GASS).

    Load a model folder with ``GASSSeparator.from_hparams(source=DIR)`` (written by
    :func:`save_model_folder`; local folders only, no network). ``separate_batch`` separates
    tensors, ``separate_file`` files (streamed: memory independent of the length). Long inputs are
    separated in overlapping chunks whose source order is aligned before overlap-add (module
    docstring).

    Arguments
    ---------
    modules : dict
        ``{"separator": module}``, a separator of the DESIGN.md §2 contract.
    hparams : dict
        At least ``sample_rate`` and ``num_sources`` (matching the separator); optionally
        ``chunk_seconds`` and ``chunk_overlap`` (defaults for long inputs) and ``fixed_order``
        (labelled stems: no chunk re-alignment, stems keep their index; default false).
    run_opts : dict, optional
        SpeechBrain run options, e.g. ``{"device": "cuda:0", "precision": "bf16"}``.
    freeze_params : bool
        Freeze parameters and call ``eval()`` (inference).

    Example
    -------
    >>> model = ScaledCopies([0.2, 0.8], sample_rate=8000)
    >>> sep = GASSSeparator(modules={"separator": model},
    ...                     hparams={"sample_rate": 8000, "num_sources": 2},
    ...                     run_opts={"device": "cpu"})
    >>> mix = torch.randn(2, 30000)
    >>> est = sep.separate_batch(mix, chunk_seconds=1.0)  # 4 overlapping chunks
    >>> est.shape
    torch.Size([2, 30000, 2])
    >>> torch.allclose(est, model(mix), atol=1e-6)
    True
    """

    MODULES_NEEDED = ["separator"]
    HPARAMS_NEEDED = ["sample_rate", "num_sources"]

    def __init__(self, modules: Mapping | None = None, hparams: Mapping | None = None,
                 run_opts: Mapping | None = None, freeze_params: bool = True) -> None:
        if not modules or "separator" not in modules:
            raise ValueError(f"GASSSeparator needs modules={{'separator': ...}}, got "
                             f"{sorted(modules or {})}")
        super().__init__(modules=modules, hparams=hparams, run_opts=run_opts,
                         freeze_params=freeze_params)
        model = unwrap_module(self.mods.separator)
        _check_separator(model, "GASSSeparator")
        for name in ("sample_rate", "num_sources"):
            if getattr(self.hparams, name) != getattr(model, name):
                raise ValueError(f"hparams {name}={getattr(self.hparams, name)!r} but the "
                                 f"separator has {name}={getattr(model, name)!r}; fix "
                                 f"{HPARAMS_FILE}")

    @classmethod
    def from_hparams(cls, source: str | os.PathLike, hparams_file: str = HPARAMS_FILE,
                     savedir: str | os.PathLike | None = None, trust_code: bool = False,
                     **kwargs) -> GASSSeparator:
        """Loads a model folder from the local disk, without running code from it by default.

        By default ``hyperparams.yaml`` is read by
        :func:`gass_modules.safe_hparams.load_model_description`: plain data and ``!new:`` of
        registered separator classes only (``!apply``, ``!name``, other classes, ... are
        refused with an error naming ``trust_code``), and the checkpoint is loaded with
        ``torch.load(weights_only=True)``. ``trust_code=True`` loads the folder as SpeechBrain's
        ``from_hparams`` does, with full hyperpyyaml, which runs any code the file names: only
        for folders whose source you trust.

        Arguments
        ---------
        source : str or os.PathLike
            The model folder (``hyperparams.yaml`` + ``separator.ckpt``).
        hparams_file : str
            Name of the hyperparameter file inside ``source``.
        savedir : str or os.PathLike, optional
            With ``trust_code=True``: where SpeechBrain links the collected files (default: load
            in place). The safe loader always loads in place.
        trust_code : bool
            Load with full hyperpyyaml (runs code from the folder; see above).
        **kwargs
            ``overrides`` (values replacing the file's), ``run_opts`` and ``freeze_params``;
            with ``trust_code=True`` anything ``pretrained_from_hparams`` takes. The network is
            never used.

        Returns
        -------
        GASSSeparator
            The loaded interface (eval mode, frozen).

        Example
        -------
        >>> GASSSeparator.from_hparams(source="no/such/folder")
        Traceback (most recent call last):
        ...
        FileNotFoundError: model folder not found: no/such/folder; ...
        """
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder not found: {source}; expected a local folder "
                                    f"with {HPARAMS_FILE} and {CHECKPOINT_FILE} (written by "
                                    "gass_modules.inference.save_model_folder)")
        if not (folder / hparams_file).is_file():
            raise FileNotFoundError(f"{folder / hparams_file} not found; a model folder holds "
                                    f"{HPARAMS_FILE} and {CHECKPOINT_FILE}")
        if not trust_code:
            return cls._from_description(folder, hparams_file, **kwargs)
        kwargs.setdefault("fetch_config", FetchConfig(allow_network=False))
        try:
            return super().from_hparams(source=str(folder.resolve()), hparams_file=hparams_file,
                                        savedir=savedir, **kwargs)
        except (FileNotFoundError, ValueError):
            raise
        except Exception as err:
            raise RuntimeError(f"cannot build the model from {folder / hparams_file}: "
                               f"{type(err).__name__}: {err}") from err

    @classmethod
    def _from_description(cls, folder: Path, hparams_file: str, overrides: Mapping | str | None
                          = None, run_opts: Mapping | None = None, freeze_params: bool = True,
                          **unexpected: object) -> GASSSeparator:
        """The safe path of :meth:`from_hparams` (no code from the folder runs)."""
        if unexpected:
            raise TypeError(f"from_hparams got {sorted(unexpected)}, which only the trusted "
                            "loader takes (trust_code=True); the safe loader takes overrides, "
                            "run_opts and freeze_params")
        path = folder / hparams_file
        hparams = load_model_description(path.read_text(encoding="utf-8"), overrides, str(path))
        separator = hparams.get("separator")
        _check_separator(separator, str(path))
        load_separator_checkpoint(separator, folder / CHECKPOINT_FILE)
        return cls(modules={"separator": separator}, hparams=hparams, run_opts=run_opts,
                   freeze_params=freeze_params)

    @property
    def sample_rate(self) -> int:
        """The model's sample rate in Hz."""
        return int(self.hparams.sample_rate)

    @property
    def num_sources(self) -> int:
        """Number of outputs ``S``."""
        return int(self.hparams.num_sources)

    @property
    def fixed_order(self) -> bool:
        """Whether output ``k`` is always stem ``k`` (the model folder's ``fixed_order``)."""
        return bool(getattr(self.hparams, "fixed_order", False))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`separate_batch` at the model's rate.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures.

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` estimated sources.
        """
        return self.separate_batch(mix)

    def separate_batch(self, mix: torch.Tensor, sample_rate: int | None = None,
                       chunk_seconds: float | None = None, overlap: float | None = None,
                       progress: bool = False, align: bool | None = None) -> torch.Tensor:
        """Separates a batch of mixtures of any length and rate.

        Items are independent (each has its own chunk alignment). All ``S`` outputs are returned,
        in the order of the first chunk (in the model's order without alignment); use
        :func:`source_activity` to find the silent ones.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures, any ``T >= 1``.
        sample_rate : int, optional
            Rate of ``mix`` in Hz (default: the model's); other rates are resampled in and out.
        chunk_seconds : float, optional
            Chunk length (default: the model folder's ``chunk_seconds``, else 10 s).
        overlap : float, optional
            Fraction of a chunk shared with the next, in (0, 0.5] (default 0.25).
        progress : bool
            Show a tqdm bar over chunks.
        align : bool, optional
            Permute each chunk's outputs to match the previous chunk's before overlap-add
            (default: true, false for ``fixed_order`` model folders, whose output ``k`` is stem
            ``k`` in every chunk).

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` estimated sources at ``sample_rate``, on ``mix``'s device.
        """
        check_mixture(mix)
        if not torch.isfinite(mix).all():
            b, t = (~torch.isfinite(mix)).nonzero()[0].tolist()
            raise ValueError(_nonfinite_message(f"mix[{b}]", t, 0, sample_rate or
                                                self.sample_rate).replace(", channel 0", ""))
        rate = self._check_rate(sample_rate)
        reader = _ArrayReader(mix.detach().float().cpu())
        blocks = [est for _, est in self._stream(reader, mix.shape[-1], rate, False, False,
                                                 chunk_seconds, overlap, progress, "batch",
                                                 align)]
        return torch.cat(blocks, dim=1).to(mix.device)  # [B, T, S]

    def separate_file(
        self,
        path: str | os.PathLike,
        out_dir: str | os.PathLike | None = None,
        channels: str = "mix",
        keep_silent: bool = False,
        chunk_seconds: float | None = None,
        overlap: float | None = None,
        threshold_db: float = DEFAULT_THRESHOLD_DB,
        overwrite: bool = False,
        on_block: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
        progress: bool = False,
        align: bool | None = None,
        protected: Iterable[str | os.PathLike] = (),
    ) -> Separation:
        """Separates an audio file (wav, flac, ogg, ...) of any length, rate and channel count.

        The file is streamed through soundfile in chunks; with ``out_dir`` the stems are written
        as they are computed (``<name>_s1.wav``, ... at the file's rate, in its sample format
        when WAV has it, FLOAT for lossy codecs), so memory does not grow with the length.
        Silent outputs (``energy_db < threshold_db``) are dropped unless ``keep_silent``; stems
        are ordered loudest first, except for ``fixed_order`` model folders, where output ``k``
        is always written as ``<name>_s{k+1}.wav`` (labelled stems keep their index).

        Arguments
        ---------
        path : str or os.PathLike
            The input file.
        out_dir : str or os.PathLike, optional
            Write the stems there; otherwise they are returned in ``Separation.sources``.
        channels : str
            ``"mix"``: downmix to mono and separate once; ``"each"``: separate every channel
            (stems keep the channel count; channel ``c``'s sources are matched to channel 0's).
        keep_silent : bool
            Keep all ``S`` outputs, silent ones included.
        chunk_seconds : float, optional
            Chunk length (default: the model folder's, else 10 s).
        overlap : float, optional
            Fraction of a chunk shared with the next, in (0, 0.5].
        threshold_db : float
            Activity threshold relative to the mixture energy (dB).
        overwrite : bool
            Replace existing ``<name>_s*.wav`` in ``out_dir``; otherwise ``FileExistsError``.
        on_block : callable, optional
            Called with every finished block ``(mix [C, n], sources [C, n, S])`` in model
            output order (e.g. to draw spectrograms without keeping the audio).
        progress : bool
            Show a tqdm bar over chunks.
        align : bool, optional
            Permute each chunk's outputs (and each channel's, with ``channels="each"``) to match
            before overlap-add (default: true, false for ``fixed_order`` model folders).
        protected : iterable of paths
            Files never written over, e.g. the other inputs of a batch (``gass-separate`` passes
            all its inputs); a stem named like one is an error. ``path`` itself always is.

        Returns
        -------
        Separation
            Stems (or their files) and the activity report.

        Notes
        -----
        Stems are written to uniquely named hidden files and renamed when complete, under a
        lock on ``<out_dir>/<name>*`` (a second process writing the same names fails with a
        ``FileExistsError`` instead of mixing its stems with these).

        Example
        -------
        >>> import soundfile
        >>> tmp = getfixture("tmp_path")
        >>> soundfile.write(tmp / "mix.wav", 0.5 * torch.randn(44100, 2).numpy(), 44100)
        >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.0], 8000)},
        ...                     hparams={"sample_rate": 8000, "num_sources": 2},
        ...                     run_opts={"device": "cpu"})
        >>> result = sep.separate_file(tmp / "mix.wav", out_dir=tmp / "out", channels="each")
        >>> result.num_active, [p.name for p in result.files]
        (1, ['mix_s1.wav'])
        >>> soundfile.info(result.files[0]).samplerate, soundfile.info(result.files[0]).channels
        (44100, 2)
        """
        if channels not in ("mix", "each"):
            raise ValueError(f"channels must be 'mix' (downmix) or 'each' (per channel), got "
                             f"{channels!r}")
        if not isinstance(threshold_db, (int, float)) or math.isnan(threshold_db):
            raise ValueError(f"threshold_db must be a number of dB, got {threshold_db!r}")
        path = Path(path)
        protected = frozenset(Path(p).resolve() for p in (path, *protected))
        with _open_audio(path) as handle, contextlib.ExitStack() as stack:
            length, rate, subtype = handle.frames, handle.samplerate, handle.subtype
            if length <= 0:
                raise ValueError(f"expected audio, got 0 samples in {path}")
            rate = self._check_rate(rate)
            notes = [w for w in [_truncation_warning(handle, str(path))] if w]
            for note in notes:
                logger.warning(note)
            if subtype in ("FLOAT", "DOUBLE"):
                _scan_finite(handle, str(path))
            out_channels = 1 if channels == "mix" else handle.channels
            writer = None
            if out_dir is not None:
                _make_folder(Path(out_dir))
                stack.enter_context(_OutputLock(Path(out_dir), path.stem))
                writer = _StemWriter(Path(out_dir), path.stem, self.num_sources, rate,
                                     out_channels, subtype, length, overwrite, protected)
            meter = _ActivityMeter(self.num_sources, rate)
            blocks = []
            try:
                stream = self._stream(_FileReader(handle, str(path)), length, rate,
                                      channels == "mix", True, chunk_seconds, overlap, progress,
                                      path.name, align)
                for mix_block, est in stream:
                    meter.update(mix_block, est)
                    if on_block is not None:
                        on_block(mix_block, est)
                    if writer is not None:
                        writer.write(est)
                    else:
                        blocks.append(est)
                energy_db, active, seconds = meter.result(threshold_db)
                if self.fixed_order:  # labelled stems keep their index
                    order = list(range(self.num_sources))
                else:
                    order = sorted(range(self.num_sources), key=lambda s: (not active[s],
                                                                           -energy_db[s]))
                if not keep_silent:
                    order = [s for s in order if active[s]]
                files = (writer.finish(order, by_index=self.fixed_order) if writer is not None
                         else [])
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
        sources = None if writer is not None else torch.cat(blocks, dim=1)[..., order]
        return Separation(sample_rate=rate, num_frames=length, channels=out_channels,
                          energy_db=energy_db, active=active, active_seconds=seconds, kept=order,
                          sources=sources, files=files,
                          clipped=writer.clipped if writer else [0] * self.num_sources,
                          warnings=notes)

    def chunking(self, chunk_seconds: float | None = None,
                 overlap: float | None = None) -> tuple[float, float]:
        """The chunk length and overlap used for the given arguments (None: the defaults).

        Defaults come from the model folder (``chunk_seconds``, ``chunk_overlap``), else 10 s
        and 0.25. The values are validated.

        Arguments
        ---------
        chunk_seconds : float, optional
            Requested chunk length in seconds.
        overlap : float, optional
            Requested fraction of a chunk shared with the next one, in (0, 0.5].

        Returns
        -------
        (float, float)
            ``(chunk_seconds, overlap)``; chunks are then rounded up to whole common ticks of
            the input and model rates.

        Example
        -------
        >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0], 8000)},
        ...                     hparams={"sample_rate": 8000, "num_sources": 1, "chunk_seconds": 4},
        ...                     run_opts={"device": "cpu"})
        >>> sep.chunking(), sep.chunking(2.5, 0.5)
        ((4.0, 0.25), (2.5, 0.5))
        """
        if chunk_seconds is None:
            chunk_seconds = float(getattr(self.hparams, "chunk_seconds", DEFAULT_CHUNK_SECONDS))
        if overlap is None:
            overlap = float(getattr(self.hparams, "chunk_overlap", DEFAULT_OVERLAP))
        _check_chunking(chunk_seconds, overlap)
        return float(chunk_seconds), float(overlap)

    def _check_rate(self, sample_rate: int | None) -> int:
        """Validates an input rate; rates whose resampling kernel would be huge are refused."""
        rate = self.sample_rate if sample_rate is None else sample_rate
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
            raise ValueError(f"sample_rate must be a positive int (Hz), got {rate!r}")
        g = math.gcd(rate, self.sample_rate)
        if (rate // g) * (self.sample_rate // g) > _MAX_RATE_PRODUCT:
            raise ValueError(f"cannot resample {rate} Hz to the model's {self.sample_rate} Hz "
                             f"exactly (gcd {g} Hz: the sinc kernel would have billions of taps); "
                             "convert the file to a standard rate (e.g. 44100 or 48000 Hz) first")
        return rate

    def _resampler(self, orig: int, new: int) -> torchaudio.transforms.Resample:
        """A torchaudio resampler on the interface's device (kernels cached per process)."""
        return _cached_resampler(orig, new, str(self.device))

    def _plan(self, length: int, rate: int, chunk_seconds: float | None,
              overlap: float | None) -> _ChunkPlan:
        """Chunk geometry for ``length`` samples at ``rate`` (module docstring)."""
        chunk_seconds, overlap = self.chunking(chunk_seconds, overlap)
        g = math.gcd(rate, self.sample_rate)
        unit, unit_model = rate // g, self.sample_rate // g  # one "common" tick, both rates

        def up(n: float) -> int:
            return max(unit, math.ceil(n / unit) * unit)

        chunk = up(min(chunk_seconds * rate, length))  # never longer than the input
        chunk = max(chunk, 2 * unit)
        ov = min(up(overlap * chunk), (chunk // 2) // unit * unit)
        margin = 0
        if rate != self.sample_rate:
            forward = self._resampler(rate, self.sample_rate)
            back = self._resampler(self.sample_rate, rate)
            # output at p depends on input within width + unit of p, in the kernel's own rate
            need = forward.width + unit + math.ceil((back.width + unit_model) * unit / unit_model)
            margin = up(need + 1)
        if length <= chunk:
            return _ChunkPlan(chunk, ov, margin, 1, up(length))
        hop = chunk - ov
        count = math.ceil((length - ov) / hop)
        return _ChunkPlan(chunk, ov, margin, count, up(length - (count - 1) * hop))

    def _separate_chunk(self, x: torch.Tensor, rate: int) -> torch.Tensor:
        """Resample ``[C, n]`` in, separate, resample out: ``[C, n, S]`` on the CPU."""
        x = x.to(self.device)
        with torch.no_grad():
            if rate != self.sample_rate:
                x = self._resampler(rate, self.sample_rate)(x)  # [C, n_m]
            with self.inference_ctx:
                est = self.mods.separator(x)  # [C, n_m, S]
            est = est.float()
            if not torch.isfinite(est).all():
                raise RuntimeError("the separator returned NaN or Inf (input was finite); try "
                                   "precision fp32 or check the checkpoint")
            if rate != self.sample_rate:
                est = self._resampler(self.sample_rate, rate)(est.transpose(1, 2).contiguous())
                est = est.transpose(1, 2)  # [C, n, S]
        return est.cpu()

    @staticmethod
    def _match(reference: torch.Tensor, est: torch.Tensor, mix: torch.Tensor,
               joint: bool) -> torch.Tensor:
        """The permutation ``[C, S]`` that best matches ``est`` to ``reference`` (``[C, n, S]``).

        The criterion is training's PIT log-MSE with the reference as target. ``joint``: one
        permutation for all rows (costs summed: channels of one recording), else one per row
        (independent batch items). Over silence every order scores the same and the first
        (identity) is kept: with no signal there is nothing to match.
        """
        cost = pairwise_log_mse(reference, est, mixtures=mix)  # [C, S, S]
        if joint:
            return best_permutation(cost.sum(0, keepdim=True)).expand(est.shape[0], -1)
        return best_permutation(cost)  # [C, S]

    @staticmethod
    def _match_channels(est: torch.Tensor) -> torch.Tensor:
        """The permutation ``[C, S]`` that matches each channel's sources to channel 0's.

        A source's image differs in level (panning) and polarity between channels, so the
        criterion is scale-invariant: the absolute cosine similarity of the estimates over the
        chunk, ``|<r_i, e_j>| / (|r_i| |e_j|)``, maximised over permutations.
        """
        unit = est / est.norm(dim=1, keepdim=True).clamp(min=1e-12)  # [C, n, S]
        similarity = torch.einsum("ni,cnj->cij", unit[0], unit).abs()  # [C, S, S]
        # keep the model's order unless another is better by a margin: channels whose estimates
        # are indistinguishable (e.g. scaled copies) would otherwise be permuted by float noise
        similarity = similarity + _TIE_MARGIN * torch.eye(est.shape[-1])
        return best_permutation(-similarity)

    def _stream(self, reader: _ArrayReader | _FileReader, length: int, rate: int,
                downmix: bool, joint: bool, chunk_seconds: float | None, overlap: float | None,
                progress: bool, name: str, align: bool | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields finished ``(mix [C, n], sources [C, n, S])`` blocks in time order (chunks and
        channels permuted to match unless ``align`` is false; None: unless ``fixed_order``)."""
        align = not self.fixed_order if align is None else bool(align)
        plan = self._plan(length, rate, chunk_seconds, overlap)
        ov, margin = plan.overlap, plan.margin
        ramp = torch.hann_window(2 * ov, periodic=True, dtype=torch.float64).float()
        w_up, w_down = ramp[:ov, None], ramp[ov:, None]  # [O, 1]: w_up + w_down = 1
        tail = reference = None
        for k in tqdm(range(plan.count), desc=name, unit="chunk", leave=False,
                      disable=not progress or plan.count == 1):
            start = k * plan.hop
            core = plan.chunk if k < plan.count - 1 else plan.last
            seg = reader.read(start - margin, start + core + margin)  # [C, n]
            x = seg.mean(0, keepdim=True) if downmix else seg  # [C', n]
            mix = x[:, margin: margin + core]  # [C', core]
            try:
                est = self._separate_chunk(x, rate)[:, margin: margin + core]  # [C', core, S]
            except RuntimeError as err:
                raise RuntimeError(f"{name}, chunk {k + 1}/{plan.count} at "
                                   f"{start / rate:.2f} s: {err}") from err
            if align and joint and est.shape[0] > 1:  # channels of one recording: match ch. 0
                est = permute(est, self._match_channels(est))
            if k > 0:  # keep each source on its output: match the previous chunk's tail
                if align:
                    est = permute(est, self._match(reference, est[:, :ov], mix[:, :ov], joint))
                est[:, :ov] = est[:, :ov] * w_up + tail
            if k < plan.count - 1:
                reference = est[:, core - ov:].clone()
                tail = reference * w_down
                emit = core - ov
            else:
                emit = length - start
            yield mix[:, :emit], est[:, :emit]


@functools.lru_cache(maxsize=16)
def _cached_resampler(orig: int, new: int, device: str) -> torchaudio.transforms.Resample:
    """torchaudio's windowed-sinc resampler; its kernel takes a while to build, so it is kept."""
    return torchaudio.transforms.Resample(orig, new).to(device)


def _scan_finite(handle: sf.SoundFile, name: str, block: int = 1 << 16) -> None:
    """Raises before any separation if a float file holds NaN/Inf (then rewinds)."""
    position = 0
    with _decoding(name, position):
        for data in handle.blocks(blocksize=block, dtype="float32", always_2d=True):
            bad = ~np.isfinite(data)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                raise ValueError(_nonfinite_message(name, position + int(row), int(col),
                                                    handle.samplerate))
            position += len(data)
        handle.seek(0)
