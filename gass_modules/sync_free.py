"""The sync-free switch: where separators and the loss trade host checks for on-device ones.

A check such as ``bool(torch.isfinite(x).all())`` copies a value from the device to the host:
on a GPU it waits for every queued kernel, it breaks a ``torch.compile`` graph, and it makes
CUDA-graph capture impossible. The separators (``gass_modules.lobes``) and the losses
(``gass_modules.losses``) therefore have two modes:

* **checked** (the default: eval, inference, eager use): every check runs on the host and raises
  a ``ValueError`` that says what is wrong (NaN/Inf mixtures, non-finite loss inputs, invalid
  permutations);
* **sync-free** (inside :func:`sync_free`, and always while ``torch.compile`` traces): nothing
  reads a tensor value on the host. Non-finite inputs propagate instead of raising: a NaN/Inf
  mixture gives non-finite estimates and a non-finite loss, which the training loop detects on
  the device (one flag per step) and skips; the loss rescales by an exact power of two on the
  device instead of recomputing overflowing float32 energies in float64; an invalid permutation
  passed to ``permute`` fails through ``torch._assert_async``.

The training loop turns the mode on around its step (``with sync_free(): ...``); code that wants
to know the mode calls :func:`is_sync_free`.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["is_sync_free", "sync_free"]

_ENABLED = False  # set by sync_free(); module-global so dynamo reads it as a constant


def is_sync_free() -> bool:
    """True inside :func:`sync_free` and while ``torch.compile`` / ``torch.export`` traces.

    Returns
    -------
    bool
        Whether checks must stay on the device (no ``.item()``, ``bool(tensor)``, ``.tolist()``).

    Example
    -------
    >>> is_sync_free()
    False
    >>> with sync_free():
    ...     is_sync_free()
    True
    """
    return torch.compiler.is_compiling() or _ENABLED


@contextlib.contextmanager
def sync_free(enabled: bool = True) -> Iterator[None]:
    """Runs the enclosed code in sync-free mode (see the module docstring); restores on exit.

    Nests, and works as a decorator. Not thread-local: one training loop per process.

    Arguments
    ---------
    enabled : bool
        ``False`` turns the mode off inside the block (e.g. a validation pass within training).

    Example
    -------
    >>> from gass_modules.losses import pit_log_mse
    >>> targets = torch.randn(2, 100, 4)
    >>> estimates = targets.clone()
    >>> estimates[1, 0, 0] = float("nan")        # a diverged separator
    >>> with sync_free():                         # training: no host sync, a NaN loss instead
    ...     loss = pit_log_mse(targets, estimates)
    >>> torch.isfinite(loss).tolist()
    [True, False]
    >>> pit_log_mse(targets, estimates)           # checked mode: a clear error
    Traceback (most recent call last):
    ...
    ValueError: log-MSE got NaN or Inf values in estimates (batch items [1]): ...
    """
    global _ENABLED
    if not isinstance(enabled, bool):
        raise TypeError(f"sync_free(enabled) takes a bool, got {type(enabled).__name__}")
    previous, _ENABLED = _ENABLED, enabled
    try:
        yield
    finally:
        _ENABLED = previous
