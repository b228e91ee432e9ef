"""The random generators' states in checkpoints (``gass_modules.training.random_states``)."""

import random

import numpy as np
import pytest
import torch

from gass_modules.training.checkpointing import AtomicCheckpointer
from gass_modules.training.random_states import (
    RECOVERABLE,
    RandomStates,
    keep_random_states,
)


def draws():
    """One draw from each global generator."""
    return torch.rand(4).tolist(), float(np.random.rand())  # noqa: NPY002 (the legacy global one), random.random()


def test_a_checkpoint_restores_every_generator_per_rank(tmp_path, monkeypatch):
    """Each rank saves and restores its own states: after recovery every generator draws what
    it drew right after the save, and a rank without a file keeps its generators (warned)."""
    checkpointer = AtomicCheckpointer(tmp_path, {RECOVERABLE: RandomStates()})
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun sets both RANK and WORLD_SIZE
    states = {}
    for rank in (1, 0):  # rank 0 last: its save completes the checkpoint folder
        monkeypatch.setenv("RANK", str(rank))
        torch.manual_seed(rank), np.random.seed(rank), random.seed(rank)  # noqa: NPY002
        checkpointer.save_checkpoint(name=f"r{rank}")
        states[rank] = draws()
    saved = tmp_path / "CKPT+r0"
    for rank in (0,):
        monkeypatch.setenv("RANK", str(rank))
        draws()  # move the generators on
        checkpointer.recover_if_possible()
        assert draws() == states[rank]
    # the rank-1 file lives in the other checkpoint: here rank 1 finds none and keeps its state
    monkeypatch.setenv("RANK", "1")
    before = torch.get_rng_state()
    RandomStates().load(saved / f"{RECOVERABLE}.ckpt", end_of_epoch=True)
    assert torch.equal(torch.get_rng_state(), before)


def test_older_checkpoints_without_states_still_resume(tmp_path, caplog):
    """A folder holding a checkpoint written before the states were kept: the states are left
    out (SpeechBrain would refuse the checkpoint), with a warning, and it still recovers."""
    model = torch.nn.Linear(2, 2)
    AtomicCheckpointer(tmp_path, {"model": model}).save_checkpoint()
    checkpointer = AtomicCheckpointer(tmp_path, {"model": model})
    assert keep_random_states(checkpointer) is False
    assert RECOVERABLE not in checkpointer.recoverables
    assert "hold no random-generator states" in caplog.text
    assert checkpointer.recover_if_possible() is not None
    assert keep_random_states(None) is False


@pytest.mark.parametrize("steps", [0, 3])
def test_states_round_trip_through_weights_only_loading(steps, tmp_path):
    """The saved file loads with ``torch.load(weights_only=True)`` (no pickled code)."""
    for _ in range(steps):
        draws()
    RandomStates().save(tmp_path / "s.ckpt")
    expected = draws()
    draws()
    RandomStates().load(tmp_path / "s.ckpt", end_of_epoch=False)
    assert draws() == expected
    assert torch.load(tmp_path / "s.rank0.pt", weights_only=True)["torch"].dtype == torch.uint8
