"""Atomic checkpoints: a SpeechBrain ``Checkpointer`` whose saves and deletions cannot be torn.

SpeechBrain writes ``CKPT.yaml`` first and the parameter files after it, and deletes checkpoints
with ``shutil.rmtree``; a run killed in between leaves a half-written checkpoint that the next run
recovers from. :class:`AtomicCheckpointer` writes each checkpoint into a staging folder and
renames it into place, and retires old ones by renaming them out of the ``CKPT`` namespace first.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import speechbrain as sb
from speechbrain.utils.checkpoints import Checkpoint, Checkpointer
from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast, if_main_process

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"


class AtomicCheckpointer(Checkpointer):
    """A SpeechBrain ``Checkpointer`` whose saves and deletions are atomic.

    SpeechBrain 1.1.2 creates ``CKPT+<stamp>/CKPT.yaml`` before it writes the parameter files, and
    deletes checkpoints with ``shutil.rmtree``; a process killed in between leaves a folder that
    ``recover_if_possible`` picks up and fails to load. Here a checkpoint is written into a hidden
    staging folder (ignored by SpeechBrain's listing, which only considers ``CKPT*`` folders),
    flushed to disk, and renamed into place with one ``os.replace``; a deletion first renames the
    folder out of the ``CKPT*`` namespace and then removes it. Leftovers of killed runs (staging or
    trash folders) are cleaned at the next save. Same constructor and API as ``Checkpointer``.

    Arguments
    ---------
    checkpoints_dir : str or pathlib.Path
        Folder holding the ``CKPT+...`` checkpoints.
    recoverables : Mapping, optional
        Objects to save and recover, by name.
    *args, **kwargs
        Passed to ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> model = torch.nn.Linear(2, 2)
    >>> ckpt = AtomicCheckpointer(tmp, {"model": model})
    >>> saved = ckpt.save_checkpoint(meta={"loss": 1.0})
    >>> sorted(p.name for p in saved.path.iterdir())
    ['CKPT.yaml', 'model.ckpt']
    >>> [p.name.startswith("CKPT+") for p in Path(tmp).iterdir()]
    [True]
    """

    def __init__(self, checkpoints_dir, recoverables=None, *args, **kwargs) -> None:
        super().__init__(checkpoints_dir, recoverables, *args, **kwargs)
        self._staging_dir: Path | None = None

    def _custom_checkpoint_dirpath(self, name: str) -> Path:
        # While a save is in flight the parent class is handed the staging folder as "custom" path.
        if self._staging_dir is not None:
            return self._staging_dir
        return super()._custom_checkpoint_dirpath(name)

    def save_checkpoint(self, meta: Mapping | None = None, end_of_epoch: bool = True,
                        name: str | None = None, verbosity: int = logging.INFO
                        ) -> Checkpoint | None:
        """Saves a checkpoint atomically (staging folder, fsync, rename).

        Arguments
        ---------
        meta : Mapping, optional
            Added to the checkpoint's ``CKPT.yaml`` (e.g. ``{"loss": 1.2}``).
        end_of_epoch : bool
            Whether the checkpoint is taken at the end of an epoch.
        name : str, optional
            Custom name (the folder is ``CKPT+<name>``); a timestamp by default.
        verbosity : int
            Logging level of the "saved" message.

        Returns
        -------
        speechbrain.utils.checkpoints.Checkpoint or None
            The saved checkpoint on the main process, None elsewhere.
        """
        final = None
        if if_main_process():
            self._remove_leftovers()
            final = (self._new_checkpoint_dirpath() if name is None
                     else super()._custom_checkpoint_dirpath(name))
        final = ddp_broadcast(final, src=0)
        staging = final.with_name(STAGING_PREFIX + final.name)
        if if_main_process() and staging.exists():
            shutil.rmtree(staging)
        self._staging_dir = staging
        try:
            staged = super().save_checkpoint(meta=dict(meta or {}), end_of_epoch=end_of_epoch,
                                             name="staging", verbosity=logging.DEBUG)
        finally:
            self._staging_dir = None
        ddp_barrier()  # savers that run on every rank (per-rank stream states) have finished
        result = None
        if if_main_process():
            _fsync_tree(staging)
            if final.exists():  # a custom name saved again: retire the old one first
                _retire(final)
            os.replace(staging, final)
            _fsync_dir(final.parent)
            logger.log(verbosity, f"Saved a checkpoint in {final}")
            paramfiles = {key: final / Path(path).name for key, path in staged.paramfiles.items()}
            result = Checkpoint(final, staged.meta, paramfiles)
        ddp_barrier()
        return result

    def delete_checkpoints(self, *, num_to_keep: int = 1, min_keys: list[str] | None = None,
                           max_keys: list[str] | None = None,
                           importance_keys: list[Callable] | None = None,
                           ckpt_predicate: Callable | None = None,
                           verbosity: int = logging.INFO) -> None:
        """Deletes all but the most important checkpoints, each by an atomic rename first.

        Same selection rules as ``Checkpointer.delete_checkpoints`` (``num_to_keep`` per
        importance order); re-implemented only because SpeechBrain calls its static
        ``Checkpointer._delete_checkpoint`` (a plain ``rmtree``) by class name.

        Arguments
        ---------
        num_to_keep : int
            Checkpoints kept per importance order.
        min_keys, max_keys : list of str, optional
            Meta keys whose lowest / highest values are kept.
        importance_keys : list of callable, optional
            Sort keys (higher is more important); recency by default.
        ckpt_predicate : callable, optional
            Only checkpoints for which it is True may be deleted.
        verbosity : int
            Logging level of the "deleted" messages.

        Example
        -------
        >>> import tempfile
        >>> ckpt = AtomicCheckpointer(tempfile.mkdtemp(), {"model": torch.nn.Linear(1, 1)})
        >>> for loss in (3.0, 1.0, 2.0):
        ...     _ = ckpt.save_checkpoint(meta={"loss": loss})
        >>> ckpt.delete_checkpoints(num_to_keep=1, min_keys=["loss"])
        >>> sorted(c.meta["loss"] for c in ckpt.list_checkpoints())  # best and most recent
        [1.0, 2.0]
        """
        if num_to_keep < 0:
            raise ValueError(f"num_to_keep must be >= 0, got {num_to_keep}")
        if importance_keys is None:
            importance_keys = [sb.utils.checkpoints.ckpt_recency]
        orders = [{"min_key": k} for k in min_keys or []]
        orders += [{"max_key": k} for k in max_keys or []]
        orders += [{"importance_key": k} for k in importance_keys]
        candidates, protected = set(), set()
        for order in orders:
            candidates.update(self.find_checkpoints(ckpt_predicate=ckpt_predicate, **order))
            protected.update(self.find_checkpoints(ckpt_predicate=ckpt_predicate,
                                                   max_num_checkpoints=num_to_keep, **order))
        ddp_barrier()
        if if_main_process():
            for ckpt in candidates - protected:
                _retire(ckpt.path)
                logger.log(verbosity, f"Deleted checkpoint in {ckpt.path}")
        ddp_barrier()

    def _remove_leftovers(self) -> None:
        """Removes staging/trash folders left by a run killed while saving or deleting."""
        if not self.checkpoints_dir.is_dir():
            return
        for path in self.checkpoints_dir.iterdir():
            if path.name.startswith((STAGING_PREFIX, TRASH_PREFIX)) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flushes every file of ``folder`` and the folder itself to disk."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Flushes a directory entry (renames) to disk where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _retire(path: Path) -> None:
    """Deletes a checkpoint folder atomically: rename out of the CKPT namespace, then remove."""
    trash = path.with_name(TRASH_PREFIX + path.name)
    if trash.exists():
        shutil.rmtree(trash)
    os.replace(path, trash)
    shutil.rmtree(trash)


__all__ = ["AtomicCheckpointer"]
