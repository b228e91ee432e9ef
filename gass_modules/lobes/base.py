"""The separator contract (docs/architecture.md) as a base class, and export with a dynamic length.

Every separator, built-in or contributed, maps a mixture ``[B, T]`` to ``[B, T, S]`` for any
``T >= 1``. Models have a total stride (encoder hop times the downsampling of their maskers), so
this base class pads the input to a multiple of ``stride`` *outside* the model core, calls
``separate_padded`` on the padded mixture, and crops back. The core never branches on the
length, which is what lets ``torch.export`` trace it with a symbolic length ``stride * k``.

A separator also describes itself: every subclass of :class:`Separator` records the arguments
its constructor was called with, and :meth:`Separator.describe` returns them with the class path
as a :class:`SeparatorDescription` (plain data). A model folder is written from that description
(``gass_modules.model_folder.folder``), so the folder builds the same architecture again.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from gass_modules.sync_free import is_sync_free

_ARGUMENTS = "_gass_constructor_arguments"  # where a separator keeps its recorded arguments


@dataclass(frozen=True)
class SeparatorDescription:
    """What builds a separator again: its class path and constructor arguments, as plain data.

    :meth:`Separator.describe` returns it; a model folder records it
    (``gass_modules.model_folder.folder.save_model_folder``) and loading builds
    ``class_path(**arguments)`` again, for registered classes only
    (``gass_modules.model_folder.safe_hparams``).

    Arguments
    ---------
    class_path : str
        ``<module>.<class>``, e.g. ``"gass_modules.lobes.bsrnn.BSRNN"``.
    arguments : dict
        Constructor keyword arguments (defaults included), plain yaml data only: ``None``,
        bools, numbers, strings, and lists and string-keyed mappings of them.
    sample_rate : int
        The rate the separator was built for (Hz).
    num_sources : int
        Its number of outputs ``S``.

    Example
    -------
    >>> d = SeparatorDescription("gass_modules.lobes.bsrnn.BSRNN", {"num_sources": 2}, 8000, 2)
    >>> d.class_path.rpartition(".")[2], d.arguments
    ('BSRNN', {'num_sources': 2})
    """

    class_path: str
    arguments: dict[str, Any]
    sample_rate: int
    num_sources: int


class _NotData:
    """Stands for a recorded argument that is not plain yaml data (its type, for the message)."""

    def __init__(self, value: object) -> None:
        self.type_name = type(value).__name__


def _plain(value: object) -> object:
    """A plain-data copy of ``value`` (tuples become lists), or ``_NotData`` when it is not."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)  # yaml loaders may give str subclasses (ruamel's quoted scalars)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / torch scalars
        return _plain(value.item()) if not isinstance(value, torch.Tensor) else _NotData(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _NotData(value) if any(isinstance(v, _NotData) for v in items) else items
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return _NotData(value)
        items = {k: _plain(v) for k, v in value.items()}
        bad = any(isinstance(v, _NotData) for v in items.values())
        return _NotData(value) if bad else items
    return _NotData(value)


def _recording(init: Callable) -> Callable:
    """Wraps a subclass's ``__init__`` so the outermost call records its bound arguments."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs) -> None:
        if _ARGUMENTS not in self.__dict__:  # the class being built, not a super().__init__
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:  # wrong arguments: let the constructor say so, as usual
                return init(self, *args, **kwargs)
            bound.apply_defaults()
            arguments: dict[str, object] = {}
            for name, param in list(signature.parameters.items())[1:]:
                value = bound.arguments.get(name)
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update({k: _plain(v) for k, v in (value or {}).items()})
                elif param.kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        arguments[f"*{name}"] = _NotData(value)
                else:
                    arguments[name] = _plain(value)
            self.__dict__[_ARGUMENTS] = arguments
        init(self, *args, **kwargs)

    __init__._records_arguments = True
    return __init__


class Separator(nn.Module):
    """Base class of every GASS separator.

    Subclasses set ``num_sources``, ``sample_rate`` and ``stride`` and implement
    :meth:`separate_padded`. ``forward`` validates the input, right-pads it with zeros to a
    multiple of ``stride``, runs the core and crops the output back to the input length.

    Arguments
    ---------
    num_sources : int
        Number of output sources ``S`` (GASS always predicts 4; silent ones should be ~0).
    sample_rate : int
        Sample rate in Hz the model was built for.
    stride : int
        The padded length ``L`` handed to :meth:`separate_padded` is a positive multiple of it.

    Example
    -------
    >>> class Halves(Separator):
    ...     def separate_padded(self, mix):  # [B, L] -> [B, L, S]
    ...         return mix.unsqueeze(-1).expand(-1, -1, self.num_sources) / self.num_sources
    >>> model = Halves(num_sources=2, sample_rate=8000, stride=16)
    >>> model(torch.ones(3, 21)).shape
    torch.Size([3, 21, 2])
    """

    #: Whether output sample ``n`` depends on input samples ``<= n + lookahead`` only (causal
    #: cards stream: :meth:`init_state`, :meth:`forward_streaming`).
    causal: bool = False
    #: Samples a causal separator looks ahead (its analysis window); ``None`` when not causal.
    lookahead: int | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        """Makes every subclass record the arguments its constructor is called with."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_arguments", False):
            cls.__init__ = _recording(init)

    def __init__(self, num_sources: int, sample_rate: int, stride: int) -> None:
        super().__init__()
        check_positive_int(num_sources=num_sources, sample_rate=sample_rate, stride=stride)
        self.num_sources = num_sources
        self.sample_rate = sample_rate
        self.stride = stride

    def describe(self) -> SeparatorDescription:
        """The class path and constructor arguments that build this separator again.

        Recorded when the separator was constructed (every subclass records its own
        constructor's arguments, defaults included), so a model folder can be written from the
        built object. A separator whose architecture changes after construction, or whose
        constructor takes something other than plain yaml data, must override this method.

        Returns
        -------
        SeparatorDescription
            Class path, arguments (plain data), ``sample_rate`` and ``num_sources``.

        Raises
        ------
        TypeError
            When the class cannot be named by a model folder (defined inside a function) or was
            not built through a subclass constructor.
        ValueError
            When a constructor argument is not plain yaml data (the message names it).

        Example
        -------
        >>> class Gains(Separator):
        ...     def __init__(self, gains: tuple, sample_rate: int = 8000):
        ...         super().__init__(len(gains), sample_rate, stride=1)
        ...         self.gains = torch.nn.Parameter(torch.tensor(gains))
        >>> Gains((0.5, 2.0)).describe().arguments
        {'gains': [0.5, 2.0], 'sample_rate': 8000}
        """
        cls = type(self)
        if _ARGUMENTS not in self.__dict__:
            raise TypeError(f"{cls.__qualname__} holds no recorded constructor arguments: only "
                            "instances of Separator subclasses built by calling the class can "
                            "describe themselves; override describe() otherwise")
        if "<locals>" in cls.__qualname__:
            raise TypeError(f"{cls.__qualname__} is defined inside a function, so a model "
                            "folder cannot name it; define the class at module level")
        arguments = self.__dict__[_ARGUMENTS]
        bad = {name: value.type_name for name, value in arguments.items()
               if isinstance(value, _NotData)}
        if bad:
            raise ValueError(f"{cls.__qualname__}'s constructor arguments {bad} are not plain "
                             "yaml data (None, bools, numbers, strings, lists and string-keyed "
                             "mappings of them), so a model folder cannot record them; pass "
                             "plain values, or override describe()")
        return SeparatorDescription(f"{cls.__module__}.{cls.__qualname__}",
                                    _plain(arguments), self.sample_rate, self.num_sources)

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates a mixture whose length is a positive multiple of ``stride``.

        Must not branch on the length in Python (no guard may pin it under ``torch.export``).

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, L]`` mixture, ``L % stride == 0``.

        Returns
        -------
        torch.Tensor
            ``[B, L, S]`` estimated sources.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement separate_padded")

    def padded_length(self, length: int) -> int:
        """Smallest positive multiple of ``stride`` that holds ``length`` samples.

        Arguments
        ---------
        length : int
            Input length in samples.

        Returns
        -------
        int
            The length the core is run on.

        Example
        -------
        >>> Separator(num_sources=4, sample_rate=16000, stride=32).padded_length(33)
        64
        """
        return max(1, -(-length // self.stride)) * self.stride

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates ``mix`` into ``num_sources`` sources of the same length.

        Every separator behaves the same way on its input: a floating-point mixture of another
        dtype than the model's parameters (e.g. float64 audio) is converted to theirs, and a
        mixture holding NaN or Inf is refused, except in sync-free mode
        (``gass_modules.sync_free``: training, ``torch.compile`` tracing), where it gives
        non-finite outputs instead of a host sync.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` floating-point mixture, any ``T >= 1``, finite.

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` estimated sources, in the parameters' dtype.

        Example
        -------
        >>> class Copy(Separator):
        ...     def __init__(self):
        ...         super().__init__(num_sources=1, sample_rate=8000, stride=4)
        ...         self.gain = torch.nn.Parameter(torch.ones(1))
        ...     def separate_padded(self, mix):
        ...         return mix.unsqueeze(-1) * self.gain
        >>> Copy()(torch.ones(1, 3, dtype=torch.float64)).dtype
        torch.float32
        >>> Copy()(torch.tensor([[0.0, float("nan")]]))
        Traceback (most recent call last):
        ...
        ValueError: the mixture contains NaN or Inf samples (first at batch item 0, sample 1); ...
        """
        check_mixture(mix)
        # Sync-free mode (training, tracing) reads no value on the host: a NaN/Inf mixture then
        # gives non-finite outputs, which the loss and the training loop flag on the device.
        if not is_sync_free() and not bool(torch.isfinite(mix).all()):
            b, t = (~torch.isfinite(mix)).nonzero()[0].tolist()
            raise ValueError(f"the mixture contains NaN or Inf samples (first at batch item {b}, "
                             f"sample {t}); expected finite audio: replace them (e.g. "
                             "torch.nan_to_num) before separating")
        dtype = next((p.dtype for p in self.parameters() if p.is_floating_point()), None)
        if dtype is not None and mix.dtype != dtype:
            mix = mix.to(dtype)
        length = mix.shape[-1]
        padded = nn.functional.pad(mix, (0, self.padded_length(length) - length))  # [B, L]
        return self.separate_padded(padded)[:, :length]  # [B, T, S]


    def permute_outputs(self, order: Sequence[int]) -> None:
        """Renumbers the outputs in place: output ``k`` becomes what output ``order[k]`` was.

        Only the output layer's parameters move, so the separator computes exactly what it did,
        its outputs permuted. Fine-tuning a PIT-trained model on a fixed-order benchmark (output
        ``k`` is stem ``k``) starts from the outputs matched to the stems this way
        (``gass_modules.training.output_order``). A separator whose outputs cannot be renumbered
        by its parameters alone (e.g. TIGER, whose sources read separate feature slices) keeps
        this default, which raises.

        Arguments
        ---------
        order : sequence of int
            A permutation of ``0 .. num_sources - 1``.

        Raises
        ------
        NotImplementedError
            When the subclass does not implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot renumber its outputs: implement "
                                  "permute_outputs (permute the output layer's rows per source)")

    def check_streaming(self, batch: int) -> None:
        """Raises unless this separator streams (``causal``) and ``batch`` is a positive int.

        Arguments
        ---------
        batch : int
            Number of streams.
        """
        if not self.causal:
            raise TypeError(f"{type(self).__name__} is not causal (its output looks at the "
                            "whole input), so it cannot stream; use a causal card (causal: true "
                            "in hparams/models, e.g. bsrnn_causal.yaml) or separate whole "
                            "chunks with gass_modules.inference.chunking.stream_separation")
        check_positive_int(batch=batch)

    def init_state(self, batch: int) -> dict:
        """The state of ``batch`` new streams, for :meth:`forward_streaming` (causal cards).

        Arguments
        ---------
        batch : int
            Number of streams separated together.

        Returns
        -------
        dict
            The separator's streaming state (opaque to callers).
        """
        self.check_streaming(batch)
        raise NotImplementedError(f"{type(self).__name__} is causal but implements no "
                                  "init_state / stream_chunk")

    def stream_chunk(self, chunk: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Core of :meth:`forward_streaming` (causal subclasses implement it).

        Arguments
        ---------
        chunk : torch.Tensor
            ``[B, n]`` validated samples in the parameters' dtype.
        state : dict
            The streams' state.

        Returns
        -------
        tuple
            ``[B, m, S]`` the output samples finished, and the state.
        """
        raise NotImplementedError(f"{type(self).__name__} implements no stream_chunk")

    def forward_streaming(self, chunk: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Separates the next samples of ``B`` streams, carrying ``state`` between calls.

        Returns the output samples this chunk finishes, in order: after ``m`` input samples in
        all, at least the first ``m - lookahead - 1`` outputs are out, and they equal ``forward`` on
        those ``m`` samples (the model is causal and its state carries what came before). How
        many come out per call varies with the chunk's alignment to the model's hop;
        :class:`gass_modules.inference.streaming.StreamingSeparator` turns that into a fixed delay.

        Arguments
        ---------
        chunk : torch.Tensor
            ``[B, n]`` floating-point samples (``n >= 1``), finite.
        state : dict
            From :meth:`init_state` (same ``B``) or the previous call.

        Returns
        -------
        tuple
            ``[B, m, S]`` output samples (``m >= 0``) and the updated state.
        """
        self.check_streaming(1)  # raises unless causal
        check_mixture(chunk)
        if not isinstance(state, dict) or state.get("batch") != chunk.shape[0]:
            raise ValueError(f"the state does not belong to a batch of {chunk.shape[0]} "
                             "streams; start each stream with init_state(batch) and pass the "
                             "state each call returns")
        if not bool(torch.isfinite(chunk).all()):
            raise ValueError("the chunk contains NaN or Inf samples; replace them (e.g. "
                             "torch.nan_to_num) before separating")
        dtype = next((p.dtype for p in self.parameters() if p.is_floating_point()), None)
        if dtype is not None and chunk.dtype != dtype:
            chunk = chunk.to(dtype)
        return self.stream_chunk(chunk, state)


def check_positive_int(**values: int) -> None:
    """Raises a ``ValueError`` naming the argument unless every value is a positive ``int``.

    Arguments
    ---------
    **values : int
        Argument names and values to check (``bool`` is rejected although it subclasses
        ``int``).

    Example
    -------
    >>> check_positive_int(num_sources=4, stride=32)
    >>> check_positive_int(stride=0)
    Traceback (most recent call last):
    ...
    ValueError: stride must be a positive int, got 0
    """
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_separator(separator: object, where: str = "") -> None:
    """Raises unless ``separator`` is an ``nn.Module`` with positive int ``num_sources`` and
    ``sample_rate`` (the attributes every user of a separator reads; docs/architecture.md,
    "Separator contract").

    Arguments
    ---------
    separator : object
        The candidate separator (a gass lobe, a ``GASSSeparator``, any module of the contract).
    where : str
        What is being checked, to start the message (a file, a function); empty for none.

    Example
    -------
    >>> check_separator(Separator(num_sources=2, sample_rate=8000, stride=1))
    >>> check_separator(torch.nn.Linear(2, 2), "card.yaml")
    Traceback (most recent call last):
    ...
    ValueError: card.yaml: a separator needs a positive int attribute num_sources ... has None
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(separator, nn.Module):
        raise TypeError(f"{prefix}expected a separator nn.Module (a gass lobe or a "
                        f"GASSSeparator), got {type(separator).__name__}")
    for name in ("num_sources", "sample_rate"):
        value = getattr(separator, name, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{prefix}a separator needs a positive int attribute {name} "
                             f"(docs/architecture.md, 'Separator contract'); "
                             f"{type(separator).__name__} has {value!r}")


def check_mixture(mix: torch.Tensor) -> None:
    """Raises a ``ValueError`` that says what to do unless ``mix`` is a ``[B, T]`` float batch.

    Arguments
    ---------
    mix : torch.Tensor
        The candidate mixture batch.

    Example
    -------
    >>> check_mixture(torch.zeros(2, 100))
    >>> check_mixture(torch.zeros(100))
    Traceback (most recent call last):
    ...
    ValueError: expected a mixture batch [B, T], got shape (100,); use mix.unsqueeze(0) for one mix
    """
    if not isinstance(mix, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor mixture [B, T], got {type(mix).__name__}")
    if mix.dim() != 2:
        hint = "; use mix.unsqueeze(0) for one mix" if mix.dim() == 1 else (
            "; downmix channels first (mix.mean(1)) or fold them into the batch")
        raise ValueError(f"expected a mixture batch [B, T], got shape {tuple(mix.shape)}{hint}")
    if mix.shape[0] < 1 or mix.shape[1] < 1:
        raise ValueError(f"expected at least one mixture of at least 1 sample, got shape "
                         f"{tuple(mix.shape)}")
    if not mix.is_floating_point():
        raise ValueError(f"expected a floating-point mixture, got {mix.dtype}; convert with "
                         "mix.float() (scale int16 PCM by 1/32768)")


class _PaddedCore(nn.Module):
    """Wraps ``separator.separate_padded`` as ``forward`` so ``torch.export`` traces the core."""

    def __init__(self, separator: Separator) -> None:
        super().__init__()
        self.separator = separator

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.separator.separate_padded(mix)


# torch.export of the lobes is tested from this torch on (torch 2.6, the declared floor, fails
# inside torchaudio's Spectrogram and lacks torch.compiler.is_exporting); compared as TorchVersion
EXPORT_MIN_TORCH = "2.11"


def export_separator(separator: Separator, max_multiple: int = 1 << 16) -> ExportedProgram:
    """Exports a separator's core with ``torch.export`` and a dynamic batch and length.

    The exported program takes ``[B, stride * k]`` mixtures (any ``B >= 1``, ``1 <= k <=
    max_multiple``); pad to that multiple first (as :meth:`Separator.forward` does).

    Arguments
    ---------
    separator : Separator
        The model (put it in eval mode first for inference).
    max_multiple : int
        Largest ``k`` the program accepts.

    Returns
    -------
    torch.export.ExportedProgram
        Call ``program.module()(padded_mix)`` to run it.

    Example
    -------
    >>> class Gain(Separator):
    ...     def __init__(self):
    ...         super().__init__(num_sources=2, sample_rate=8000, stride=8)
    ...         self.gain = torch.nn.Parameter(torch.tensor([0.25, 0.75]))
    ...     def separate_padded(self, mix):
    ...         return mix.unsqueeze(-1) * self.gain
    >>> program = export_separator(Gain().eval())
    >>> x = torch.randn(3, 40)
    >>> torch.allclose(program.module()(x), Gain()(x))
    True
    """
    if not isinstance(separator, Separator):
        raise TypeError(f"export_separator needs a gass Separator, got {type(separator).__name__}")
    if torch.__version__ < EXPORT_MIN_TORCH:
        raise RuntimeError(f"export_separator needs torch>={EXPORT_MIN_TORCH}, the oldest torch "
                           f"gass tests torch.export with (torch 2.6 cannot trace the STFT "
                           f"encoders or the BLSTM with a symbolic length); torch "
                           f"{torch.__version__} is installed: pip install "
                           f"'torch>={EXPORT_MIN_TORCH}' (eager separation works on it)")
    stride = separator.stride
    example = torch.zeros(2, stride * 2)
    param = next(separator.parameters(), None)
    if param is not None:
        example = example.to(param.device)
    length = stride * Dim("k", min=1, max=max_multiple)
    batch = Dim("batch", min=1, max=4096)
    return torch.export.export(
        _PaddedCore(separator), (example,), dynamic_shapes={"mix": {0: batch, 1: length}}
    )
