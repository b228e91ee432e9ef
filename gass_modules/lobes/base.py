"""The separator contract (docs/architecture.md) as a base class, and export with a dynamic length.

Every separator, built-in or contributed, maps a mixture ``[B, T]`` to ``[B, T, S]`` for any
``T >= 1``. Models have a total stride (encoder hop times the downsampling of their maskers), so
this base class pads the input to a multiple of ``stride`` *outside* the model core, calls
``separate_padded`` on the padded mixture, and crops back. The core never branches on the
length, which is what lets ``torch.export`` trace it with a symbolic length ``stride * k``.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import torch
from torch import nn
from torch.export import Dim, ExportedProgram


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

    def __init__(self, num_sources: int, sample_rate: int, stride: int) -> None:
        super().__init__()
        check_positive_int(num_sources=num_sources, sample_rate=sample_rate, stride=stride)
        self.num_sources = num_sources
        self.sample_rate = sample_rate
        self.stride = stride

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
        mixture holding NaN or Inf is refused (outside ``torch.compile`` tracing).

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
        if not torch.compiler.is_compiling() and not bool(torch.isfinite(mix).all()):
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
