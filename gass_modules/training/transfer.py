"""Starting a separator from a GASS checkpoint: weight transfer with a report.

GASS (Pons et al., ICASSP 2024) fine-tunes its pre-trained separators on each benchmark. The
benchmark recipes (through :func:`gass_modules.training.benchmark_runs.run_benchmark`) build their
model from
their own card and load the GASS weights with :func:`transfer_from_checkpoint`: SpeechBrain's
``Pretrainer`` with a custom load hook, :func:`load_matching_parameters`, that loads every tensor
whose name and shape match and leaves the others as initialised, and reports per module what was
loaded, converted and re-initialised, and why (:class:`TransferReport`).

Which model is fine-tuned is decided before the transfer (:func:`finetuning_description`):

* ``finetune_rate: model`` (the default): the pre-trained model's rate and number of outputs;
  the benchmark's audio is resampled in and the outputs out, as "no tuning" does. Every tensor
  of a model built from the same card transfers.
* ``finetune_rate: benchmark``: the benchmark's rate, with what is defined in samples converted
  to keep its duration (windows, hops, kernels and strides in ms: :func:`convert_sample_lengths`;
  bands are in Hz already); learned convolution kernels are resampled to their new length, and
  what depends on the number of STFT bins or bands at the new rate is re-initialised
  (:mod:`gass_modules.training.rate_conversion`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.parameter_transfer import Pretrainer

from gass_modules.model_folder.folder import CHECKPOINT_FILE, HPARAMS_FILE
from gass_modules.optional import fetch_options
from gass_modules.training.rate_conversion import (
    SAMPLE_LENGTH_ARGUMENTS,
    finetuning_description,
    resample_kernel,
)

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
        Values transferred (loaded or converted) and values in the model's state dict.
    source_sample_rate, source_num_sources : int, optional
        The checkpoint model's rate and outputs, when its model folder says so.
    converted : dict of str to str
        Entries loaded after a conversion (a kernel resampled to its length at the new rate),
        with what was done; they count as transferred.
    mode : str
        ``finetune_rate`` of the run (``model`` or ``benchmark``), or ``""`` when not known.
    settings : dict of str to str
        How the fine-tuned model differs from the pre-trained one (rate, outputs, converted
        constructor arguments), each with its reason.

    Example
    -------
    >>> report = TransferReport(Path("x.ckpt"), ["a"], {"b": "not in the checkpoint"}, [], 6, 8)
    >>> report.fraction
    0.75
    >>> print(report.format())
    loaded 1 of 2 tensors (75.0% of the values) from x.ckpt
    per module (tensors transferred / re-initialised):
      a: 1 / 0
      b: 0 / 1: b: not in the checkpoint
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
    converted: dict[str, str] = field(default_factory=dict)
    mode: str = ""
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """The share of the model's values transferred from the checkpoint (0 to 1)."""
        return self.loaded_numel / max(1, self.total_numel)

    def per_module(self, depth: int = 2) -> dict[str, dict[str, list[str]]]:
        """Entries grouped by module (the first ``depth`` parts of their names).

        Arguments
        ---------
        depth : int
            Name parts that name a module (``masker.blocks`` for ``masker.blocks.0.weight``).

        Returns
        -------
        dict
            Module name to ``{"loaded": [...], "converted": [...], "reinitialised": [...]}``.
        """
        groups: dict[str, dict[str, list[str]]] = {}
        for kind, names in (("loaded", self.loaded), ("converted", list(self.converted)),
                            ("reinitialised", list(self.reinitialised))):
            for name in names:
                parts = name.split(".")
                module = ".".join(parts[: min(depth, max(1, len(parts) - 1))])
                groups.setdefault(module, {"loaded": [], "converted": [],
                                           "reinitialised": []})[kind].append(name)
        return dict(sorted(groups.items()))

    def format(self) -> str:
        """A human-readable account (also written to ``<output_folder>/transfer.txt``).

        Returns
        -------
        str
            The report.
        """
        total = len(self.loaded) + len(self.converted) + len(self.reinitialised)
        what = "loaded" if not self.converted else "loaded or converted"
        lines = [f"{what} {len(self.loaded) + len(self.converted)} of {total} tensors "
                 f"({100.0 * self.fraction:.1f}% of the values) from {self.source}"]
        if self.mode:
            lines.append(f"finetune_rate: {self.mode}")
        if self.source_sample_rate or self.source_num_sources:
            lines.append(f"source model: {self.source_num_sources} sources at "
                         f"{self.source_sample_rate} Hz")
        lines += [f"setting {k}: {v}" for k, v in self.settings.items()]
        lines.append("per module (tensors transferred / re-initialised):")
        for module, kinds in self.per_module().items():
            moved = len(kinds["loaded"]) + len(kinds["converted"])
            why = sorted({f"{n}: {self.reinitialised[n]}" for n in kinds["reinitialised"]})
            how = sorted({self.converted[n] for n in kinds["converted"]})
            lines.append(f"  {module}: {moved} / {len(kinds['reinitialised'])}"
                         + (f" (converted: {'; '.join(how)})" if how else "")
                         + (f": {'; '.join(why)}" if why else ""))
        if self.reinitialised:
            lines.append("not loaded (left as initialised): " + "; ".join(
                f"{k}: {v}" for k, v in self.reinitialised.items()))
        if self.unused:
            lines.append(f"checkpoint entries not used: {', '.join(self.unused)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The report as json data (``<output_folder>/transfer.json``, the run's results).

        Returns
        -------
        dict
            ``transferred_fraction``, counts, the mode, the settings and the per-module account.
        """
        return {"source": str(self.source), "finetune_rate": self.mode,
                "transferred_fraction": self.fraction, "transferred_values": self.loaded_numel,
                "total_values": self.total_numel, "source_sample_rate": self.source_sample_rate,
                "source_num_sources": self.source_num_sources, "settings": self.settings,
                "modules": {m: {k: len(v) for k, v in kinds.items()}
                            for m, kinds in self.per_module().items()},
                "converted": self.converted, "reinitialised": self.reinitialised,
                "unused": self.unused}


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


def load_matching_parameters(module: torch.nn.Module, path: str | Path,
                             rate_ratio: float | None = None) -> TransferReport:
    """Loads every checkpoint tensor whose name and shape match ``module``'s; keeps the rest.

    Entries missing from the checkpoint or shaped differently (e.g. an output layer for another
    number of sources) stay as initialised and are logged with a warning. A ``module.`` prefix
    (a checkpoint of a DDP-wrapped model) is removed first. With ``rate_ratio`` (the new rate
    over the checkpoint's), a 1-D convolution kernel whose length alone differs (a kernel defined
    in ms, now counting other samples) is converted instead: :func:`resample_kernel`.

    Arguments
    ---------
    module : torch.nn.Module
        The freshly built separator.
    path : str or pathlib.Path
        A ``state_dict`` saved with ``torch.save`` (read with ``weights_only=True``).
    rate_ratio : float, optional
        Target rate / checkpoint rate, when the model runs at another rate than it was trained.

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
    loaded, skipped, converted, how = {}, {}, {}, {}
    for name, tensor in own.items():
        if name not in state:
            skipped[name] = "not in the checkpoint"
        elif state[name].shape == tensor.shape:
            loaded[name] = state[name]
        elif (rate_ratio is not None and tensor.dim() == 3 and tensor.is_floating_point()
              and state[name].shape[:2] == tensor.shape[:2]):
            converted[name] = resample_kernel(state[name], tensor.shape[-1]).to(tensor.dtype)
            how[name] = (f"kernel resampled from {state[name].shape[-1]} to {tensor.shape[-1]} "
                         "taps (same duration)")
        else:
            skipped[name] = (f"shape {tuple(state[name].shape)} in the checkpoint, "
                             f"{tuple(tensor.shape)} here")
    if not loaded and not converted:
        raise ValueError(f"no parameter of the {type(module).__name__} matches {path} by name "
                         f"and shape (model: {list(own)[:3]}..., checkpoint: "
                         f"{list(state)[:3]}...); build the recipe with the model card the "
                         "checkpoint was trained with (same separator class and sizes)")
    module.load_state_dict({**loaded, **converted}, strict=False)
    report = TransferReport(
        source=path, loaded=list(loaded), reinitialised=skipped,
        unused=[k for k in state if k not in own],
        loaded_numel=sum(v.numel() for v in (*loaded.values(), *converted.values())),
        total_numel=sum(v.numel() for v in own.values()),
        source_sample_rate=_card_value(path.parent, "sample_rate"),
        source_num_sources=_card_value(path.parent, "num_sources"), converted=how)
    if skipped or report.unused:
        logger.warning(report.format())
    else:
        logger.info(report.format())
    return report


class _RecordingHook:
    """A Pretrainer load hook that keeps the :class:`TransferReport`."""

    def __init__(self, rate_ratio: float | None = None) -> None:
        self.report: TransferReport | None = None
        self.rate_ratio = rate_ratio

    def __call__(self, module: torch.nn.Module, path: str | Path) -> None:
        self.report = load_matching_parameters(module, path, rate_ratio=self.rate_ratio)


def source_model_card(checkpoint: str | Path) -> tuple[int | None, int | None]:
    """The ``sample_rate`` and ``num_sources`` of the model a checkpoint file belongs to.

    Read from the ``hyperparams.yaml`` of its model folder, or of the run that saved it (two
    levels above a ``CKPT+`` folder); ``None`` where no such file says it.

    Arguments
    ---------
    checkpoint : str or pathlib.Path
        A ``separator.ckpt`` file (:func:`find_separator_checkpoint`).

    Returns
    -------
    tuple
        ``(sample_rate, num_sources)``.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> _ = (tmp / "hyperparams.yaml").write_text("sample_rate: 8000\\nnum_sources: 4\\n")
    >>> source_model_card(tmp / "separator.ckpt")
    (8000, 4)
    """
    folder = Path(checkpoint).parent
    return _card_value(folder, "sample_rate"), _card_value(folder, "num_sources")


def prepare_finetuning(separator: torch.nn.Module, source: str | Path, benchmark_rate: int,
                       benchmark_sources: int, mode: str = "model",
                       collect_in: str | Path | None = None
                       ) -> tuple[torch.nn.Module, TransferReport]:
    """Builds the separator to fine-tune and starts it from a GASS checkpoint.

    The recipe's separator (its card at the benchmark's rate and stems) is rebuilt as
    :func:`finetuning_description` says for ``mode`` when that changes it (the pre-trained
    rate and outputs by default), then loaded with :func:`transfer_from_checkpoint` (converting
    kernels when the rate changed). The report says per module what was transferred, converted
    and re-initialised, and why.

    Arguments
    ---------
    separator : torch.nn.Module
        The recipe's separator, a ``gass_modules.lobes.base.Separator`` (it describes itself).
    source : str or pathlib.Path
        The GASS checkpoint (see :func:`find_separator_checkpoint`).
    benchmark_rate, benchmark_sources : int
        The benchmark's rate and number of stems.
    mode : str
        ``model`` (default) or ``benchmark``: the ``finetune_rate`` of the recipe.
    collect_in : str or pathlib.Path, optional
        Where the Pretrainer links the file.

    Returns
    -------
    tuple
        ``(separator, report)``: the separator to train (``separator`` itself when nothing
        changed) and the :class:`TransferReport` (``mode`` and ``settings`` filled in).

    Raises
    ------
    ValueError
        When the source model's rate or outputs are unknown (a bare ``separator.ckpt``): pass a
        model folder or a run's checkpoint folder, whose ``hyperparams.yaml`` says them.

    Example
    -------
    >>> from gass_modules.model_folder.folder import save_model_folder
    >>> from gass_modules.lobes.tdanet import TDANetSTFT
    >>> tmp = getfixture("tmp_path")
    >>> card = dict(n_fft=64, hop_length=16, bottleneck_channels=8, hidden_channels=16,
    ...             depth=2, num_blocks=1, num_heads=2)
    >>> _ = save_model_folder(TDANetSTFT(num_sources=4, sample_rate=8000, **card), tmp / "gass")
    >>> recipe = TDANetSTFT(num_sources=2, sample_rate=16000, **card)  # Libri2Mix at 16 kHz
    >>> model, report = prepare_finetuning(recipe, tmp / "gass", 16000, 2)
    >>> model.sample_rate, model.num_sources, report.fraction
    (8000, 4, 1.0)
    >>> model, report = prepare_finetuning(recipe, tmp / "gass", 16000, 2, mode="benchmark")
    >>> model.sample_rate, model.describe().arguments["n_fft"], report.fraction < 1.0
    (16000, 128, True)
    """
    from gass_modules.model_folder.folder import (  # the one rebuild helper
        describe_separator,
        rebuild_separator,
    )

    path = find_separator_checkpoint(source)
    source_rate, source_sources = source_model_card(path)
    if source_rate is None or source_sources is None:
        raise ValueError(f"cannot tell the rate and outputs of the model in {path}: no "
                         f"{HPARAMS_FILE} with sample_rate and num_sources next to it; pass "
                         "its model folder (save_model_folder) or its run's save/ or CKPT+ "
                         "folder as pretrained_path")
    description = describe_separator(separator)
    wanted, settings = finetuning_description(description, source_rate, source_sources,
                                              int(benchmark_rate), int(benchmark_sources), mode)
    if wanted != description:
        separator = rebuild_separator(wanted, separator)
    ratio = wanted.sample_rate / source_rate if wanted.sample_rate != source_rate else None
    report = transfer_from_checkpoint(separator, path, collect_in=collect_in, rate_ratio=ratio)
    report.mode, report.settings = mode, settings
    if settings.keys() & set(SAMPLE_LENGTH_ARGUMENTS):
        changed = ", ".join(k for k in settings if k in SAMPLE_LENGTH_ARGUMENTS)
        for name, why in report.reinitialised.items():  # bins, bands and their groups
            report.reinitialised[name] = (f"{why}: sized by the STFT bins or bands, which "
                                          f"change with {changed} at {wanted.sample_rate} Hz")
    logger.info(report.format())
    return separator, report


def transfer_from_checkpoint(separator: torch.nn.Module, source: str | Path,
                             collect_in: str | Path | None = None,
                             rate_ratio: float | None = None) -> TransferReport:
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
    rate_ratio : float, optional
        The separator's rate over the checkpoint's, when they differ on purpose
        (``finetune_rate: benchmark``): kernels are converted (:func:`load_matching_parameters`).

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
    hook = _RecordingHook(rate_ratio)
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
    if report.source_sample_rate and rate and report.source_sample_rate != rate and not rate_ratio:
        logger.warning(f"fine-tuning a model trained at {report.source_sample_rate} Hz at "
                       f"{rate} Hz: filters keep their length in samples, so they span "
                       f"{report.source_sample_rate / rate:.2f}x the time they were learned for")
    return report


__all__ = ["TransferReport", "find_separator_checkpoint", "load_matching_parameters",
           "prepare_finetuning", "source_model_card", "transfer_from_checkpoint"]
