"""The random generators' states in a checkpoint, one file per rank, so that a resumed run
draws what an uninterrupted one would have drawn.

Training crops (``gass_modules.dataio.benchmark_sets``), dropout and the ``DataLoader``'s seeds
draw from torch's global generator (and numpy's and Python's, for code that uses them). A recipe
seeds them once, at start; SpeechBrain's ``Checkpointer`` saves the model, the optimiser, the
scheduler and the epoch counter, but not these states. A run resumed from a checkpoint then
draws other crops than the run it continues (measured: benchmarks/RESULTS.md, "Where the speech
cells' run-to-run differences came from"). :class:`RandomStates` is a recoverable that saves
and restores them, every rank its own (ranks draw different crops, so they must not share a
state). Nothing in SpeechBrain or torch provides one.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from gass_modules.dataio.shard_stream import reader_info  # rank from $RANK or torch.distributed

logger = logging.getLogger(__name__)

RECOVERABLE = "random_states"  # its name in a checkpointer (``<name>.ckpt`` in a checkpoint)


def capture() -> dict:
    """The states of torch's (CPU and CUDA), numpy's and Python's global generators, as tensors
    and plain values (loadable with ``torch.load(weights_only=True)``).

    Returns
    -------
    dict
        ``torch``, ``cuda`` (a list, empty without CUDA), ``numpy`` and ``python`` states.

    Example
    -------
    >>> state = capture()
    >>> a = torch.rand(3), np.random.rand(), random.random()
    >>> restore(state)
    >>> b = torch.rand(3), np.random.rand(), random.random()
    >>> torch.equal(a[0], b[0]) and a[1:] == b[1:]
    True
    """
    # numpy's legacy global generator is the one SpeechBrain's seed_everything seeds
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached_gaussian": cached},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def restore(state: dict) -> None:
    """Sets the global generators to a :func:`capture` (CUDA states only where they fit).

    Arguments
    ---------
    state : dict
        What :func:`capture` returned.

    Example
    -------
    >>> state = capture()
    >>> first = torch.randint(0, 1000, (3,))
    >>> restore(state)
    >>> torch.equal(torch.randint(0, 1000, (3,)), first)
    True
    """
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            logger.warning(f"the checkpoint holds {len(state['cuda'])} CUDA generator states "
                           f"and this process sees {torch.cuda.device_count()} devices: the "
                           "CUDA generators keep their seeds")
    n = state["numpy"]
    np.random.set_state((n["name"],  # noqa: NPY002
                         n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


class RandomStates:
    """A recoverable that saves the global random generators' states, one file per rank.

    Add it to a checkpointer with :func:`keep_random_states` (which leaves out checkpoints
    written without it, so that older run folders still resume).

    Example
    -------
    >>> import tempfile
    >>> from gass_modules.training.checkpointing import AtomicCheckpointer
    >>> ckpt = AtomicCheckpointer(tempfile.mkdtemp(), {RECOVERABLE: RandomStates()})
    >>> _ = ckpt.save_checkpoint()
    >>> expected = torch.rand(2)
    >>> _ = ckpt.recover_if_possible()
    >>> torch.equal(torch.rand(2), expected)
    True
    """

    @mark_as_saver
    def save(self, path: Path) -> None:
        """Writes this rank's states (``<path stem>.rank<r>.pt``; rank 0 also writes ``path``).

        Arguments
        ---------
        path : pathlib.Path
            The recoverable's file in the checkpoint.
        """
        rank = reader_info()[0]
        torch.save(capture(), Path(path).with_suffix(f".rank{rank}.pt"))
        if rank == 0:
            torch.save({"ranks_saved_as": "<name>.rank<r>.pt"}, path)

    @mark_as_loader
    def load(self, path: Path, end_of_epoch: bool) -> None:
        """Restores this rank's states; without a file for this rank (the run had fewer
        ranks) the generators keep their seeds, with a warning.

        Arguments
        ---------
        path : pathlib.Path
            The recoverable's file in the checkpoint.
        end_of_epoch : bool
            Unused (SpeechBrain's loader signature).
        """
        del end_of_epoch
        rank = reader_info()[0]
        own = Path(path).with_suffix(f".rank{rank}.pt")
        if not own.is_file():
            logger.warning(f"no random-generator states for rank {rank} in {own.parent}: "
                           "resumed with freshly seeded generators (not bit-identical)")
            return
        restore(torch.load(own, weights_only=True))


# SpeechBrain calls savers on the main process only unless told otherwise: every rank saves its own
register_checkpoint_hooks(RandomStates, save_on_main_only=False)


def keep_random_states(checkpointer, save_folder: str | Path | None = None) -> bool:
    """Adds :class:`RandomStates` to a checkpointer, unless a checkpoint already in its folder
    was written without it (SpeechBrain refuses to load a checkpoint that lacks a recoverable;
    such a run resumes as before, with a warning).

    Arguments
    ---------
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
        The recipe's checkpointer (left alone when ``None``).
    save_folder : str or pathlib.Path, optional
        Its folder; default: ``checkpointer.checkpoints_dir``.

    Returns
    -------
    bool
        Whether the states are kept.

    Example
    -------
    >>> import tempfile
    >>> from gass_modules.training.checkpointing import AtomicCheckpointer
    >>> ckpt = AtomicCheckpointer(tempfile.mkdtemp(), {})
    >>> keep_random_states(ckpt), RECOVERABLE in ckpt.recoverables
    (True, True)
    """
    if checkpointer is None or RECOVERABLE in checkpointer.recoverables:
        return checkpointer is not None
    folder = Path(save_folder or checkpointer.checkpoints_dir)
    older = [c for c in folder.glob("CKPT+*") if not (c / f"{RECOVERABLE}.ckpt").exists()]
    if older:
        logger.warning(f"{len(older)} checkpoint(s) in {folder} hold no random-generator states "
                       "(written before they were kept): a run resumed from them draws other "
                       "crops than the run it continues")
        return False
    checkpointer.add_recoverable(RECOVERABLE, RandomStates())
    return True
