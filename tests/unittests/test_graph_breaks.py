"""A training forward + PIT loss traces as one graph and reads nothing on the host (#23 part A).

``torch._dynamo.explain`` (tracing, then the traced graph run eagerly: no compiler) over
``separator.train()(mix)`` followed by ``pit_log_mse`` must find **0 graph breaks** for every card
in ``hparams/models/`` and the bundled GASS-mini: a break is a host sync or Python control flow on
a tensor value, and each one rules out CUDA-graph capture. Deep cards are traced with the
conformance suite's ``SMALL_OVERRIDES`` (fewer applications of the same block: the same code).

The eager counterpart: inside ``gass_modules.sync_free.sync_free()`` the same step, backward
included, calls no host-reading tensor method (``.item()``, ``bool(t)``, ``.tolist()``,
``nonzero``, boolean-mask indexing...), seen by a ``TorchFunctionMode`` that records them; the
same recorder sees the checks of checked mode, so it is not blind.

GASS-mini's card is also compiled twice on batches of one shape (dynamo's ``CompileCounter``
backend, tracing only, ``fullgraph=True``): one graph, no recompile.
"""

import traceback
from pathlib import Path

import pytest
import torch
import torch._dynamo
import torch._dynamo.testing
from hyperpyyaml import load_hyperpyyaml
from torch.overrides import TorchFunctionMode

from gass_modules.losses import pit_log_mse
from gass_modules.model_folder.pretrained import bundled_model_folder
from gass_modules.sync_free import is_sync_free, sync_free
from tests.unittests.test_separator_contract import CARDS, SMALL_OVERRIDES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUNDLED_CARD = bundled_model_folder("gass-mini") / "hyperparams.yaml"
ALL_CARDS = [BUNDLED_CARD, *CARDS]


def card_id(card: Path) -> str:
    """``gass_mini`` for the bundled model's card, the file stem for the others."""
    return card.parent.name if card == BUNDLED_CARD else card.stem


def training_model(card: Path) -> torch.nn.Module:
    """The card's separator (small configuration for deep cards) in train mode."""
    torch.manual_seed(0)
    with open(card) as f:
        hparams = load_hyperpyyaml(f, overrides=SMALL_OVERRIDES.get(card_id(card), {}))
    return hparams["separator"].train()


def batch(model: torch.nn.Module, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of 2 mixtures of two strides and targets ``[2, T, S]`` (one silent slot)."""
    generator = torch.Generator().manual_seed(seed)
    length = 2 * model.stride
    targets = torch.randn(2, length, model.num_sources, generator=generator)
    targets[1, :, -1] = 0.0  # a silent target takes the loss's other branch
    return targets.sum(-1), targets


def training_step(model: torch.nn.Module, mix: torch.Tensor,
                  targets: torch.Tensor) -> torch.Tensor:
    """Forward + PIT loss, as the training loop runs them."""
    return pit_log_mse(targets, model(mix), mix).mean()


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test traces from scratch, with LSTMs traceable (``allow_rnn``)."""
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True):
        yield
    torch._dynamo.reset()


@pytest.mark.parametrize("card", [
    pytest.param(card, marks=pytest.mark.slow) if card_id(card) == "bs_roformer_music" else card
    for card in ALL_CARDS], ids=card_id)
def test_training_forward_and_loss_trace_without_graph_breaks(card):
    model = training_model(card)
    mix, targets = batch(model)
    explained = torch._dynamo.explain(training_step)(model, mix, targets)
    reasons = "\n\n".join(
        f"{r.reason}\n" + "".join(traceback.format_list(r.user_stack[-4:]))
        for r in explained.break_reasons)
    assert explained.graph_break_count == 0, f"{card_id(card)}:\n{reasons}"
    assert explained.graph_count == 1


class HostReads(TorchFunctionMode):
    """Records every tensor method call that copies a value to the host (or a data-dependent
    shape), with the caller's stack."""

    NAMES = frozenset({"item", "tolist", "numpy", "__array__", "__bool__", "__int__",
                       "__float__", "__complex__", "__index__", "nonzero", "argwhere",
                       "masked_select", "unique", "unique_consecutive"})

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        mask_index = name == "__getitem__" and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool
            for i in (args[1] if isinstance(args[1], tuple) else (args[1],)))
        if name in self.NAMES or mask_index:
            self.calls.append(f"{name}\n" + "".join(traceback.format_stack(limit=5)[:-1]))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("card", [BUNDLED_CARD, *(c for c in CARDS if c.stem in (
    "bsrnn_small", "bs_roformer", "tdanet_paper", "tiger_small"))], ids=card_id)
def test_sync_free_training_step_reads_nothing_on_the_host(card):
    model = training_model(card)
    mix, targets = batch(model)
    with sync_free(), HostReads() as recorder:
        assert is_sync_free()
        training_step(model, mix, targets).backward()
    assert recorder.calls == [], "\n".join(recorder.calls)
    assert not is_sync_free()
    with HostReads() as recorder:  # checked mode: the recorder sees its host checks
        training_step(model, mix, targets)
    assert any(call.startswith("__bool__") for call in recorder.calls)


def test_gass_mini_compiles_once_for_batches_of_one_shape():
    model = training_model(BUNDLED_CARD)
    counter = torch._dynamo.testing.CompileCounter()
    step = torch.compile(training_step, backend=counter, fullgraph=True)
    for seed in (0, 1):  # two batches of one shape, the same dropout draws in both runs
        mix, targets = batch(model, seed)
        torch.manual_seed(seed)
        traced = step(model, mix, targets)
        torch.manual_seed(seed)
        torch.testing.assert_close(traced, training_step(model, mix, targets))
    assert counter.frame_count == 1, f"{counter.frame_count} compilations for one shape"
