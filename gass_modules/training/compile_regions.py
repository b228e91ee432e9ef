"""Regional compilation: ``torch.compile`` of a separator's repeated blocks, not of the whole model.

Compiling a whole separator (GASS-mini's TDANet-STFT: 558 s on a 2-core CPU) traces every
repeat of its blocks; compiling the repeated block itself traces it once, and its other calls
reuse the same code (with ``torch._dynamo.config.inline_inbuilt_nn_modules``, the default since
PyTorch 2.5, parameters are graph inputs, so instances of one class with the same shapes share one
compiled graph). This is PyTorch's "regional compilation" recipe
(https://pytorch.org/tutorials/recipes/regional_compilation.html) made generic over gass's
separators:

* :func:`find_regions` finds the repeated blocks: a separator may name them in a class attribute
  ``compile_regions`` (dotted submodule names, or ``"<list>.*"`` for every element of a
  ``ModuleList``); otherwise one short forward pass counts the calls of every submodule, and the
  outermost submodules with parameters that are either called more than once (TDANet's shared
  UConv block, TIGER's FFI block) or elements of a ``ModuleList`` holding several modules of their
  class (BSRNN's band-sequence blocks and band layers, BS-RoFormer's blocks) are the regions;
* :func:`compile_regions` compiles each region in place with ``nn.Module.compile`` (the module
  keeps its parameters and state-dict names, so checkpoints and model folders are unchanged) and
  returns a :class:`CompiledRegions` handle that can switch them off and on (the brain compiles
  training steps, whose shapes are static, and runs evaluation eagerly, whose lengths vary).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

REGIONS_ATTRIBUTE = "compile_regions"
PROBE_SECONDS = 0.25  # length of the discovery forward pass (counts calls, not values)


def _probe_length(separator: nn.Module) -> int:
    """A short input length that the separator accepts (a multiple of its stride)."""
    rate = int(getattr(separator, "sample_rate", 8000) or 8000)
    length = max(1, int(rate * PROBE_SECONDS))
    padded = getattr(separator, "padded_length", None)
    stride = int(getattr(separator, "stride", 1) or 1)
    length = max(length, 2 * stride)
    return int(padded(length)) if callable(padded) else length


def _named_regions(separator: nn.Module, names: Sequence[str]) -> list[tuple[str, nn.Module]]:
    """Resolves a separator's own ``compile_regions`` names (``"a.b"`` or ``"a.list.*"``)."""
    regions = []
    for name in names:
        star = name.endswith(".*")
        path = name[:-2] if star else name
        try:
            module = separator.get_submodule(path)
        except AttributeError as err:
            raise ValueError(f"{type(separator).__name__}.{REGIONS_ATTRIBUTE} names {name!r}, "
                             f"which is not a submodule ({err}); name submodules by their "
                             "dotted path, e.g. 'masker.block' or 'blocks.*'") from err
        if star:
            regions += [(f"{path}.{key}", child) for key, child in module.named_children()]
        else:
            regions.append((path, module))
    return regions


def _call_counts(separator: nn.Module, length: int) -> Counter:
    """Calls of every submodule during one forward pass on ``[1, length]`` random audio."""
    counts: Counter = Counter()
    handles = [module.register_forward_pre_hook(lambda mod, args: counts.update([id(mod)]))
               for module in separator.modules()]
    was_training = separator.training
    param = next(separator.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    generator = torch.Generator(device="cpu").manual_seed(0)
    try:
        separator.eval()
        with torch.no_grad():
            separator(0.1 * torch.randn(1, length, generator=generator).to(device))
    finally:
        separator.train(was_training)
        for handle in handles:
            handle.remove()
    return counts


def find_regions(separator: nn.Module) -> list[tuple[str, nn.Module]]:
    """The repeated blocks of a separator, outermost first, as ``(name, module)`` pairs.

    The separator's class attribute ``compile_regions`` wins when present (a sequence of dotted
    submodule names; ``"blocks.*"`` means every element of ``blocks``). Otherwise one forward
    pass on a short random mixture (``[1, T]``, eval mode, no gradient) counts the calls of every
    submodule, and a submodule with parameters is a region when it is called more than once, or
    when it is an element of a ``ModuleList`` with another element of its class; only the
    outermost such submodules are kept (a region's own repeated parts run inside its graph).

    Arguments
    ---------
    separator : torch.nn.Module
        A separator (``forward(mix [B, T]) -> [B, T, S]``).

    Returns
    -------
    list of (str, torch.nn.Module)
        The regions with their dotted names in ``separator``; empty when nothing repeats.

    Example
    -------
    >>> from gass_modules.lobes.tdanet import TDANetSTFT
    >>> model = TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
    ...                    bottleneck_channels=8, hidden_channels=16, depth=2, num_blocks=3,
    ...                    num_heads=2)
    >>> [name for name, _ in find_regions(model)]
    ['masker.block', 'masker.reinject']
    """
    if not isinstance(separator, nn.Module):
        raise TypeError(f"find_regions needs a torch.nn.Module, got {type(separator).__name__}")
    names = getattr(type(separator), REGIONS_ATTRIBUTE, None)
    if names is not None:
        if isinstance(names, str):
            names = (names,)
        return _named_regions(separator, names)
    counts = _call_counts(separator, _probe_length(separator))
    listed: set[int] = set()
    for module in separator.modules():
        if isinstance(module, nn.ModuleList):
            classes = Counter(type(child) for child in module)
            listed.update(id(child) for child in module if classes[type(child)] > 1)
    regions: list[tuple[str, nn.Module]] = []
    taken: list[str] = []
    for name, module in separator.named_modules():
        if not name or any(name.startswith(prefix + ".") for prefix in taken):
            continue
        if counts[id(module)] == 0 or next(module.parameters(), None) is None:
            continue
        if counts[id(module)] > 1 or id(module) in listed:
            regions.append((name, module))
            taken.append(name)
    return regions


class CompiledRegions:
    """The compiled regions of a separator, which can be switched off (eager) and on again.

    Returned by :func:`compile_regions`; ``len()`` is the number of regions and ``names`` their
    dotted names.

    Arguments
    ---------
    regions : sequence of (str, torch.nn.Module)
        Regions already compiled in place (``nn.Module.compile``).

    Example
    -------
    >>> block = torch.nn.Linear(2, 2)
    >>> block.compile()
    >>> handle = CompiledRegions([("block", block)])
    >>> handle.enabled, handle.names
    (True, ['block'])
    >>> handle.disable(); block._compiled_call_impl is None
    True
    >>> handle.enable(); block._compiled_call_impl is not None
    True
    """

    def __init__(self, regions: Sequence[tuple[str, nn.Module]]) -> None:
        self.names = [name for name, _ in regions]
        self._modules = [module for _, module in regions]
        self._compiled = [module._compiled_call_impl for module in self._modules]
        self.enabled = True

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules)

    def disable(self) -> None:
        """Runs the regions eagerly (their compiled code is kept for :meth:`enable`)."""
        for module in self._modules:
            module._compiled_call_impl = None
        self.enabled = False

    def enable(self) -> None:
        """Runs the regions through their compiled code again."""
        for module, compiled in zip(self._modules, self._compiled):
            module._compiled_call_impl = compiled
        self.enabled = True


def compile_regions(separator: nn.Module, *, dynamic: bool | None = False,
                    **compile_options) -> CompiledRegions:
    """Compiles each repeated block of ``separator`` in place (:func:`find_regions`).

    Each region gets ``nn.Module.compile`` (``torch.compile`` of its call; parameters and names
    unchanged). Shapes are static by default (``dynamic=False``): training runs one shape
    throughout, so each region compiles once per distinct input shape and never again.

    Arguments
    ---------
    separator : torch.nn.Module
        The separator to compile in place.
    dynamic : bool or None
        ``torch.compile``'s ``dynamic`` (False: specialise on shapes).
    **compile_options
        Further ``torch.compile`` options (``mode``, ``backend``, ``fullgraph``...).

    Returns
    -------
    CompiledRegions
        The regions (``names``), switchable off and on.

    Example
    -------
    >>> from gass_modules.lobes.tdanet import TDANetSTFT
    >>> model = TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
    ...                    bottleneck_channels=8, hidden_channels=16, depth=2, num_blocks=3,
    ...                    num_heads=2)
    >>> handle = compile_regions(model, backend="eager")  # "inductor" (the default) generates code
    >>> handle.names
    ['masker.block', 'masker.reinject']
    >>> model(torch.randn(2, 800)).shape
    torch.Size([2, 800, 2])
    """
    regions = find_regions(separator)
    if not regions:
        logger.warning(f"compile_regions: {type(separator).__name__} has no repeated block; "
                       "nothing compiled (name its blocks in a class attribute "
                       f"`{REGIONS_ATTRIBUTE}`)")
    for _, module in regions:
        module.compile(dynamic=dynamic, **compile_options)
    logger.info(f"compile_regions: {len(regions)} regions of {type(separator).__name__} "
                f"compiled: {', '.join(name for name, _ in regions)}")
    return CompiledRegions(regions)


__all__ = ["CompiledRegions", "compile_regions", "find_regions"]
