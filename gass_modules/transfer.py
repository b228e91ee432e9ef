"""Starting a separator from a GASS checkpoint: weight transfer with a report.

GASS (Pons et al., ICASSP 2024) fine-tunes its pre-trained separators on each benchmark. The
benchmark recipes (through :func:`gass_modules.finetune.run_benchmark`) build their model from
their own card and load the GASS weights with :func:`transfer_from_checkpoint`: SpeechBrain's
``Pretrainer`` with a custom load hook, :func:`load_matching_parameters`, that loads every tensor
whose name and shape match and leaves the others as initialised (an output layer sized for 4
sources when the benchmark has 2, band-split layers of a BSRNN built for another sample rate,
...), and reports which parameters were not loaded (:class:`TransferReport`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.parameter_transfer import Pretrainer

from gass_modules.model_folder import CHECKPOINT_FILE, HPARAMS_FILE
from gass_modules.optional import fetch_options

logger = logging.getLogger(__name__)

_PARAM_FILE = CHECKPOINT_FILE  # what SpeechBrain's Checkpointer writes for a "separator"


@dataclass
class TransferReport:
    """What :func:`load_matching_parameters` did with a checkpoint.

    Arguments
    ---------
    source : pathlib.Path
        The checkpoint file.
    loaded : list of str
        State-dict entries copied from the checkpoint.
    reinitialised : dict of str to str
        Entries of the model left as initialised, with the reason.
    unused : list of str
        Checkpoint entries the model has no place for.
    loaded_numel, total_numel : int
        Values loaded and values in the model's state dict.
    source_sample_rate, source_num_sources : int, optional
        The checkpoint model's rate and outputs, when its model folder says so.

    Example
    -------
    >>> report = TransferReport(Path("x.ckpt"), ["a"], {"b": "not in the checkpoint"}, [], 6, 8)
    >>> print(report.format())
    loaded 1 of 2 tensors (75.0% of the values) from x.ckpt
    not loaded (left as initialised): b: not in the checkpoint
    """

    source: Path
    loaded: list[str]
    reinitialised: dict[str, str]
    unused: list[str]
    loaded_numel: int = 0
    total_numel: int = 0
    source_sample_rate: int | None = None
    source_num_sources: int | None = None

    def format(self) -> str:
        """A human-readable account (also written to ``<output_folder>/transfer.txt``).

        Returns
        -------
        str
            The report.
        """
        share = 100.0 * self.loaded_numel / max(1, self.total_numel)
        lines = [f"loaded {len(self.loaded)} of {len(self.loaded) + len(self.reinitialised)} "
                 f"tensors ({share:.1f}% of the values) from {self.source}"]
        if self.source_sample_rate or self.source_num_sources:
            lines.append(f"source model: {self.source_num_sources} sources at "
                         f"{self.source_sample_rate} Hz")
        if self.reinitialised:
            lines.append("not loaded (left as initialised): " + "; ".join(
                f"{k}: {v}" for k, v in self.reinitialised.items()))
        if self.unused:
            lines.append(f"checkpoint entries not used: {', '.join(self.unused)}")
        return "\n".join(lines)


def find_separator_checkpoint(source: str | Path) -> Path:
    """The separator parameter file of a GASS run or model folder.

    Accepts a ``separator.ckpt`` file, a model folder (``save_model_folder``) or a SpeechBrain
    checkpoint folder (``CKPT+...``) holding one, or a ``save`` folder of checkpoints (the one
    with the lowest ``loss`` meta is taken, else the most recent).

    Arguments
    ---------
    source : str or pathlib.Path
        Where the checkpoint is.

    Returns
    -------
    pathlib.Path
        The ``.ckpt`` file.

    Example
    -------
    >>> find_separator_checkpoint("no/such/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no GASS checkpoint at no/such/run: ...
    """
    path = Path(source)
    expected = (f"expected a {_PARAM_FILE} file, a model folder ({HPARAMS_FILE} + "
                f"{CHECKPOINT_FILE}, written by save_model_folder), a checkpoint folder "
                f"CKPT+<date>/ holding {_PARAM_FILE}, or a save/ folder of such checkpoints")
    if path.is_file():
        return path
    if path.is_dir():
        if (path / _PARAM_FILE).is_file():
            return path / _PARAM_FILE
        checkpointer = Checkpointer(path)
        candidates = [c for c in checkpointer.list_checkpoints()
                      if (c.path / _PARAM_FILE).is_file()]
        if candidates:
            with_loss = [c for c in candidates if "loss" in c.meta]
            best = (min(with_loss, key=lambda c: c.meta["loss"]) if with_loss
                    else max(candidates, key=lambda c: c.meta.get("unixtime", 0)))
            return best.path / _PARAM_FILE
        found = sorted(p.name for p in path.iterdir())[:8]
        raise FileNotFoundError(f"no GASS checkpoint in {path} (found {found}); {expected}")
    raise FileNotFoundError(f"no GASS checkpoint at {path}: {expected}")


def _card_value(folder: Path, key: str) -> int | None:
    """An integer top-level key of the hyperparams.yaml next to a checkpoint (None if unknown).

    Looks in the checkpoint's folder (a model folder), then two levels up (a ``CKPT+`` folder in
    ``<output_folder>/save``: SpeechBrain saves the run's resolved ``hyperparams.yaml`` in the
    output folder).
    """
    for candidate in (folder, folder.parent, folder.parent.parent):
        path = candidate / HPARAMS_FILE
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            match = re.search(rf"^{key}:\s*(\d+)\s*(#.*)?$", text, re.MULTILINE)
            return int(match.group(1)) if match else None
    return None


def load_matching_parameters(module: torch.nn.Module, path: str | Path) -> TransferReport:
    """Loads every checkpoint tensor whose name and shape match ``module``'s; keeps the rest.

    Entries missing from the checkpoint or shaped differently (e.g. an output layer for another
    number of sources) stay as initialised and are logged with a warning. A ``module.`` prefix
    (a checkpoint of a DDP-wrapped model) is removed first.

    Arguments
    ---------
    module : torch.nn.Module
        The freshly built separator.
    path : str or pathlib.Path
        A ``state_dict`` saved with ``torch.save`` (read with ``weights_only=True``).

    Returns
    -------
    TransferReport
        What was loaded and what was not.

    Raises
    ------
    ValueError
        When the file is not a readable state dict, or when no entry matches (another
        architecture: fine-tuning would silently start from scratch).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> source = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Linear(8, 4))
    >>> torch.save(source.state_dict(), tmp / "separator.ckpt")
    >>> target = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Linear(8, 2))
    >>> report = load_matching_parameters(target, tmp / "separator.ckpt")
    >>> report.loaded, sorted(report.reinitialised)
    (['0.weight', '0.bias'], ['1.bias', '1.weight'])
    >>> torch.equal(target[0].weight, source[0].weight)
    True
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        raise ValueError(f"cannot read the checkpoint {path} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); expected a "
                         "state_dict saved by torch.save") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state_dict of "
                         "tensors (a separator.ckpt of a GASS run or model folder)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    own = module.state_dict()
    loaded, skipped = {}, {}
    for name, tensor in own.items():
        if name not in state:
            skipped[name] = "not in the checkpoint"
        elif state[name].shape != tensor.shape:
            skipped[name] = (f"shape {tuple(state[name].shape)} in the checkpoint, "
                             f"{tuple(tensor.shape)} here")
        else:
            loaded[name] = state[name]
    if not loaded:
        raise ValueError(f"no parameter of the {type(module).__name__} matches {path} by name "
                         f"and shape (model: {list(own)[:3]}..., checkpoint: "
                         f"{list(state)[:3]}...); build the recipe with the model card the "
                         "checkpoint was trained with (same separator class and sizes)")
    module.load_state_dict(loaded, strict=False)
    report = TransferReport(
        source=path, loaded=list(loaded), reinitialised=skipped,
        unused=[k for k in state if k not in own],
        loaded_numel=sum(v.numel() for v in loaded.values()),
        total_numel=sum(v.numel() for v in own.values()),
        source_sample_rate=_card_value(path.parent, "sample_rate"),
        source_num_sources=_card_value(path.parent, "num_sources"))
    if skipped or report.unused:
        logger.warning(report.format())
    else:
        logger.info(report.format())
    return report


class _RecordingHook:
    """A Pretrainer load hook that keeps the :class:`TransferReport`."""

    def __init__(self) -> None:
        self.report: TransferReport | None = None

    def __call__(self, module: torch.nn.Module, path: str | Path) -> None:
        self.report = load_matching_parameters(module, path)


def transfer_from_checkpoint(separator: torch.nn.Module, source: str | Path,
                             collect_in: str | Path | None = None) -> TransferReport:
    """Starts ``separator`` from a GASS checkpoint through SpeechBrain's ``Pretrainer``.

    The checkpoint is located with :func:`find_separator_checkpoint`, collected by the
    ``Pretrainer`` (a symlink in ``collect_in``; never a download) and loaded with
    :func:`load_matching_parameters` as the custom hook: what matches is loaded, the rest (an
    output layer for another number of sources, layers that depend on the sample rate) stays as
    initialised and is logged. When the source model's rate is known (a model folder) and
    differs from the separator's, a warning says that the learned filters now run at another
    rate.

    Arguments
    ---------
    separator : torch.nn.Module
        The freshly built separator (the recipe's model card with the benchmark's
        ``num_sources`` and ``sample_rate``).
    source : str or pathlib.Path
        The GASS checkpoint: a model folder, a ``CKPT+`` folder, a ``save`` folder or a
        ``separator.ckpt`` file.
    collect_in : str or pathlib.Path, optional
        Where the Pretrainer links the file (SpeechBrain's ``collect_in``).

    Returns
    -------
    TransferReport
        What was loaded and what was not.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> gass = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 4))  # 4 outputs
    >>> torch.save(gass.state_dict(), tmp / "separator.ckpt")
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))  # 2 outputs
    >>> report = transfer_from_checkpoint(model, tmp, collect_in=tmp / "pretrained")
    >>> report.loaded, list(report.reinitialised)
    (['0.weight', '0.bias'], ['1.weight', '1.bias'])
    >>> (tmp / "pretrained" / "separator.ckpt").is_symlink()
    True
    """
    path = find_separator_checkpoint(source).resolve()
    hook = _RecordingHook()
    pretrainer = Pretrainer(collect_in=collect_in, loadables={"separator": separator},
                            paths={"separator": str(path)}, custom_hooks={"separator": hook})
    link = None if collect_in is None else Path(collect_in) / "separator.ckpt"  # <loadable>.ckpt
    if link is not None and link.is_symlink():  # an earlier call's link is replaced: SpeechBrain
        link.unlink()  # 1.0's collect_files has no overwrite (1.1's FetchConfig has)
    pretrainer.collect_files(**fetch_options(overwrite=True, allow_network=False))
    pretrainer.load_collected()
    report = hook.report
    if report is None:  # the hook always runs for a loadable; keep the contract explicit
        raise RuntimeError(f"the Pretrainer did not load {path}")
    report.source = path
    report.source_sample_rate = _card_value(path.parent, "sample_rate")
    report.source_num_sources = _card_value(path.parent, "num_sources")
    rate = getattr(separator, "sample_rate", None)
    if report.source_sample_rate and rate and report.source_sample_rate != rate:
        logger.warning(f"fine-tuning a model trained at {report.source_sample_rate} Hz at "
                       f"{rate} Hz: filters keep their length in samples, so they span "
                       f"{report.source_sample_rate / rate:.2f}x the time they were learned for")
    return report


__all__ = ["TransferReport", "find_separator_checkpoint", "load_matching_parameters",
           "transfer_from_checkpoint"]
