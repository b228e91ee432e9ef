"""The sync-free training step: a guarded optimiser update and a whole-step CUDA graph.

A GPU training step is fast only when the host never waits for the device: every read of a
tensor value on the host (``.item()``, ``bool(t)``, ``float(t)``) empties the launch queue, and
makes CUDA-graph capture impossible. Two pieces make the step of :class:`SeparationBrain
<gass_modules.training.brain.SeparationBrain>` free of such reads:

* :class:`GuardedUpdate` applies an optimiser step only where an on-device flag says the loss was
  finite, without reading the flag: fused optimisers (``Adam(fused=True)``, ``AdamW``, ``SGD``)
  take it as their ``found_inf`` (the mechanism ``torch.amp.GradScaler`` uses: the kernels skip
  the update and the step count), any other optimiser gets its parameters and state restored
  with ``torch.where`` after the step. A non-finite batch never changes the weights.
* :class:`GraphedTrainStep` captures forward, loss, backward, gradient clipping and the guarded
  update into one CUDA graph after a few warm-up steps (on a side stream, as
  ``torch.cuda.graphs`` requires), then replays it for every batch copied into static input
  buffers; ``cuda_graph_blocker`` says why a configuration cannot be captured, so callers fall
  back to the eager step with that reason.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import torch

logger = logging.getLogger(__name__)

CAPTURABLE_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)  # made fused + capturable in place


class GuardedUpdate:
    """``optimizer.step()`` applied only where ``ok`` (a 0-dim bool tensor), never read on host.

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        Any optimiser; fused ones skip the update inside their kernels (``found_inf``), others
        are restored from a copy taken before the step.

    Example
    -------
    >>> weight = torch.nn.Parameter(torch.ones(3))
    >>> update = GuardedUpdate(torch.optim.Adam([weight], lr=0.1))
    >>> weight.grad = torch.full((3,), float("nan"))
    >>> update.step(torch.tensor(False))  # a non-finite batch: nothing changes
    >>> weight.data
    tensor([1., 1., 1.])
    >>> weight.grad = torch.ones(3)
    >>> update.step(torch.tensor(True))
    >>> weight.data
    tensor([0.9000, 0.9000, 0.9000])
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"GuardedUpdate needs a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer

    @property
    def uses_found_inf(self) -> bool:
        """True when the optimiser skips updates itself (fused kernels with ``found_inf``)."""
        return bool(getattr(self.optimizer, "_step_supports_amp_scaling", False)) and all(
            group.get("fused") for group in self.optimizer.param_groups)

    def _tensors(self) -> dict[tuple, torch.Tensor]:
        """Parameters and optimiser state tensors, the things a step changes, by a stable key
        (group, parameter, state name): ``param.data`` is a new Python object at every call, so
        ``id()`` cannot name it across the step."""
        tensors = {}
        for g, group in enumerate(self.optimizer.param_groups):
            for i, param in enumerate(group["params"]):
                tensors[(g, i, "")] = param.data
                for name, value in self.optimizer.state.get(param, {}).items():
                    if isinstance(value, torch.Tensor):
                        tensors[(g, i, name)] = value
        return tensors

    def step(self, ok: torch.Tensor) -> None:
        """Steps the optimiser where ``ok``; leaves parameters and state untouched elsewhere.

        Arguments
        ---------
        ok : torch.Tensor
            0-dim bool tensor on the parameters' device (e.g. ``torch.isfinite(loss)``).
        """
        if self.uses_found_inf:
            self.optimizer.found_inf = (~ok).float()  # the fused kernels skip where it is 1
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.found_inf
            return
        before = {key: t.clone() for key, t in self._tensors().items()}
        self.optimizer.step()
        for key, tensor in self._tensors().items():
            if tensor.device != ok.device:  # e.g. a non-capturable Adam's host step counter
                continue
            old = before.get(key)
            if old is None:  # state created by this step: as if it had not been created
                old = torch.zeros_like(tensor)
            tensor.copy_(torch.where(ok, tensor, old))


def cuda_graph_blocker(device: str | torch.device, optimizer: torch.optim.Optimizer | None,
                       *, precision: str = "fp32", grad_accumulation: int = 1,
                       distributed: bool = False, optimizers: int = 1) -> str | None:
    """Why a training configuration cannot be captured in a CUDA graph (None: it can).

    Arguments
    ---------
    device : str or torch.device
        The training device.
    optimizer : torch.optim.Optimizer or None
        The optimiser.
    precision : str
        SpeechBrain's ``precision`` (``fp32``, ``bf16``, ``fp16``).
    grad_accumulation : int
        SpeechBrain's ``grad_accumulation_factor``.
    distributed : bool
        Whether the run is distributed (DDP).
    optimizers : int
        Number of optimisers.

    Returns
    -------
    str or None
        The reason, written for a log line.

    Example
    -------
    >>> cuda_graph_blocker("cpu", None)
    'CUDA graphs need a CUDA device (training runs on cpu)'
    """
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"CUDA graphs need a CUDA device (training runs on {device})"
    if optimizer is None or optimizers != 1:
        return f"the step needs exactly one optimiser (got {optimizers if optimizer else 0})"
    if precision == "fp16":
        return ("fp16's GradScaler reads its overflow flag on the host every step; use "
                "--precision=bf16 (no scaler) or fp32")
    if grad_accumulation != 1:
        return f"grad_accumulation_factor={grad_accumulation} (the graph is one update per batch)"
    if distributed:
        return "distributed (DDP) training is not captured; each rank runs the eager step"
    if not isinstance(optimizer, CAPTURABLE_OPTIMIZERS) and "capturable" not in optimizer.defaults:
        return (f"{type(optimizer).__name__} has no capturable mode; use torch.optim.Adam or "
                "AdamW")
    return None


def make_fused(optimizer: torch.optim.Optimizer) -> bool:
    """Switches Adam/AdamW to their fused kernels in place (which skip updates on device).

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        Any optimiser; only ``torch.optim.Adam`` and ``AdamW`` on floating-point parameters
        of one device type are changed.

    Returns
    -------
    bool
        Whether the optimiser is now fused.

    Example
    -------
    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(2))])
    >>> make_fused(opt), GuardedUpdate(opt).uses_found_inf
    (True, True)
    """
    if not isinstance(optimizer, CAPTURABLE_OPTIMIZERS):
        return False
    if any(group.get("differentiable") for group in optimizer.param_groups):
        return False
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = True, False
        for param in group["params"]:
            step = optimizer.state.get(param, {}).get("step")
            if isinstance(step, torch.Tensor) and step.device != param.device:
                optimizer.state[param]["step"] = step.to(param.device, torch.float32)
    optimizer._step_supports_amp_scaling = True  # as Adam(fused=True) sets it
    return True


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Switches an optimiser to its capturable (and, for Adam/AdamW, fused) form in place.

    Its state, if any, is moved to the parameters' devices as ``capturable`` requires
    (``step`` counters included).

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        An optimiser with a ``capturable`` option.

    Example
    -------
    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(2))])
    >>> make_capturable(opt)
    >>> opt.param_groups[0]["capturable"], opt.param_groups[0]["fused"]
    (True, True)
    """
    make_fused(optimizer)
    for group in optimizer.param_groups:
        group["capturable"] = True
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor):
                    optimizer.state[param][key] = value.to(param.device)


class GraphedTrainStep:
    """Forward, loss, backward, clipping and a guarded update, captured once, then replayed.

    ``body(inputs) -> (loss, ok)`` runs forward, loss and backward on the static ``inputs``
    (0-dim ``loss`` and bool ``ok``); this class adds gradient clipping and the guarded update
    (:class:`GuardedUpdate`: a non-finite loss changes nothing). The first ``warmup_steps`` calls
    run eagerly on a side stream (real updates, as any step), the next one captures the graph and
    replays it, every later call copies its batch into the static buffers and replays.

    Learning-rate changes made by a scheduler between calls (``param_group["lr"]`` set to a new
    float) are copied into the on-device learning rate the graph reads.

    Arguments
    ---------
    body : callable
        ``body(inputs: dict[str, Tensor]) -> (loss, ok)``; must not read tensors on the host.
    optimizer : torch.optim.Optimizer
        Made capturable in place (:func:`make_capturable`).
    max_grad_norm : float or None
        Gradient clipping (``clip_grad_norm_``, on device); None or <= 0: none.
    warmup_steps : int
        Eager steps before the capture (PyTorch recommends a few, for lazy initialisations).

    Example
    -------
    >>> weight = torch.nn.Parameter(torch.ones(2))
    >>> def body(inputs):  # forward, loss, backward; no host read
    ...     loss = ((weight * inputs["x"]) ** 2).mean()
    ...     loss.backward()
    ...     return loss.detach(), torch.isfinite(loss)
    >>> step = GraphedTrainStep(body, torch.optim.Adam([weight], lr=0.1), max_grad_norm=1.0)
    >>> step.optimizer.param_groups[0]["capturable"], step.optimizer.param_groups[0]["fused"]
    (True, True)
    >>> if torch.cuda.is_available():  # 3 warm-up steps, the capture, then replays
    ...     weight.data = weight.data.cuda()
    ...     for _ in range(5):
    ...         loss, ok = step({"x": torch.ones(2)})
    """

    def __init__(self, body: Callable[[Mapping[str, torch.Tensor]],
                                      tuple[torch.Tensor, torch.Tensor]],
                 optimizer: torch.optim.Optimizer, max_grad_norm: float | None = None,
                 warmup_steps: int = 3) -> None:
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1 (got {warmup_steps})")
        self.body = body
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm
        self.warmup_steps = warmup_steps
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict[str, torch.Tensor] | None = None
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.capture_seconds = 0.0
        self._update = GuardedUpdate(optimizer)
        self._lrs: list[tuple[torch.Tensor, float]] = []
        make_capturable(optimizer)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _run(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The step on the static inputs (eager or being captured)."""
        loss, ok = self.body(self.static)
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self._params(), self.max_grad_norm, foreach=True)
        self._update.step(ok)
        return loss, ok

    def _load(self, inputs: Mapping[str, torch.Tensor]) -> None:
        """Copies a batch into the static buffers (allocated by the first call)."""
        device = self._params()[0].device
        if self.static is None:
            self.static = {key: value.detach().to(device).clone()
                           for key, value in inputs.items()}
            return
        for key, value in inputs.items():
            static = self.static[key]
            if value.shape != static.shape:
                raise ValueError(f"batch {key!r} has shape {tuple(value.shape)}, the captured "
                                 f"step {tuple(static.shape)}: a CUDA graph replays one shape; "
                                 "train on fixed-length segments with drop_last")
            static.copy_(value, non_blocking=True)

    def _sync_learning_rates(self) -> None:
        """Copies scheduler changes of ``param_group["lr"]`` into the graph's lr tensors."""
        for group, (tensor, last) in zip(self.optimizer.param_groups, self._lrs):
            value = group["lr"]
            if isinstance(value, torch.Tensor):  # a scheduler that stores tensors
                tensor.copy_(value)
                group["lr"] = float(value)  # a scheduler's own tensor (a rare host read)
            elif value != last:
                tensor.fill_(value)
        self._lrs = [(tensor, float(group["lr"]))
                     for group, (tensor, _) in zip(self.optimizer.param_groups, self._lrs)]

    def _capture(self) -> None:
        """Captures :meth:`_run` in a CUDA graph (the learning rates become device tensors)."""
        import time
        start = time.monotonic()
        device = self._params()[0].device
        floats = [float(group["lr"]) for group in self.optimizer.param_groups]
        tensors = [torch.tensor(value, device=device) for value in floats]
        for group, tensor in zip(self.optimizer.param_groups, tensors):
            group["lr"] = tensor  # the graph reads the lr from this memory
        try:
            self.optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.outputs = self._run()
        finally:
            for group, value in zip(self.optimizer.param_groups, floats):
                group["lr"] = value  # schedulers and logs see floats again
        self._lrs = list(zip(tensors, floats))
        self.graph = graph
        self.capture_seconds = time.monotonic() - start

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Trains on one batch.

        Arguments
        ---------
        inputs : dict of str to torch.Tensor
            The batch's tensors, one fixed shape per key for the whole run.

        Returns
        -------
        tuple of torch.Tensor
            ``(loss, ok)`` on the device; replays return the same (static) tensors, so read or
            copy them before the next call.
        """
        self._load(inputs)
        self.calls += 1
        if self.calls <= self.warmup_steps:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            debug = torch.cuda.get_sync_debug_mode()
            try:
                with torch.cuda.stream(side):
                    if self.calls == 1:  # a host read in the step raises here, with its line
                        torch.cuda.set_sync_debug_mode("error")
                    loss, ok = self._run()
                    torch.cuda.set_sync_debug_mode(debug)
                    self.optimizer.zero_grad(set_to_none=True)
            finally:
                torch.cuda.set_sync_debug_mode(debug)
                torch.cuda.current_stream().wait_stream(side)
            return loss, ok
        if self.graph is None:
            self._capture()
        else:
            self._sync_learning_rates()
        self.graph.replay()
        return self.outputs


__all__ = ["GraphedTrainStep", "GuardedUpdate", "cuda_graph_blocker", "make_capturable",
           "make_fused"]
