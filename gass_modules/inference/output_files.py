"""Writing outputs safely: atomic files, per-name locks, stem files and the record of a run.

Every file gass writes for a user goes to a uniquely named hidden file in the destination folder
(``.<name>....partial[.ext]``, with the permissions the umask gives) and is renamed when complete,
so readers see the old file or the new one, never a part. :class:`OutputLock` keeps two processes
from writing the same names into one folder, and takes over (with a message) a lock and partial
files left by a killed run. :class:`StemWriter` writes the stems of a separation block by block.
The ``<name>.json`` report ``gass-separate`` writes is the record of what a run wrote
(:func:`reported_stems`): only recorded files are ever replaced or removed by a later run. A full
disk says so, naming the file.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gass_modules.audio import wav_subtype

try:
    import fcntl
except ImportError:  # Windows: OutputLock falls back to an exclusively created file
    fcntl = None

logger = logging.getLogger(__name__)

# The hidden names gass writes beside its outputs while it works: a lock per output name and
# partial files (``.<name>....partial[.ext]``). Scans skip them; a new run over a folder removes
# those a killed run left (see OutputLock).
_TEMPORARY_NAME = re.compile(r"^\..+(\.partial(\.\w+)?|\.gass-lock)$")


class Skipped(FileExistsError):
    """An input whose outputs an earlier run wrote completely (its report exists and names it):
    ``gass-separate`` (batch and ``--stream``) does not separate it again without
    ``--overwrite``, and does not count it as a failure (#27, item 13).

    Example
    -------
    >>> issubclass(Skipped, FileExistsError)  # a library caller sees "outputs exist"
    True
    """


def is_temporary_name(name: str) -> bool:
    """Whether a file name is one of the hidden working files gass writes (a ``.gass-lock`` or a
    ``.partial`` file); folder scans skip them.

    Arguments
    ---------
    name : str
        A file name (no folder).

    Returns
    -------
    bool
        True for gass's own temporary names.

    Example
    -------
    >>> [is_temporary_name(n) for n in (".a_o1.x8f2k.partial.wav", ".a.gass-lock", "a.wav",
    ...                                 ".hidden.wav")]
    [True, True, False, False]
    """
    return bool(_TEMPORARY_NAME.match(name))


def is_regular_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a regular file (following symlinks), checked without opening it: a
    FIFO would block its reader forever, a device (``/dev/zero``) never ends.

    Arguments
    ---------
    path : str or os.PathLike
        Any path.

    Returns
    -------
    bool
        False for folders, FIFOs, devices, sockets and missing paths.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> _ = (tmp / "a.wav").write_bytes(b"")
    >>> is_regular_file(tmp / "a.wav"), is_regular_file(tmp), is_regular_file("/dev/zero")
    (True, False, False)
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return False


class OutputLock:
    """An exclusive, per-process-reentrant lock on the outputs ``<out_dir>/<stem>*``.

    Two runs writing the same stem name into one folder would otherwise interleave their files
    (a finished run could hold the other's stems). The lock is ``fcntl.flock`` on
    ``.<stem>.gass-lock`` (released by the OS if the process dies; removed on release), or an
    exclusively created file where ``fcntl`` does not exist. The file holds the holder's pid: a
    lock left by a killed run (its pid gone, or with ``fcntl`` a file nobody locks) is taken over
    with a warning (also in ``notes``), and that run's partial files for this name are removed.
    ``GASSSeparator.separate_to_files`` and ``gass-separate`` hold it while they write; hold it
    around anything else you write beside the stems.

    Arguments
    ---------
    out_dir : str or os.PathLike
        The output folder (must exist).
    stem : str
        The outputs' common name (the input file's stem).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> with OutputLock(tmp, "song"):
    ...     (tmp / ".song.gass-lock").exists()
    True
    >>> (tmp / ".song.gass-lock").exists()  # removed on release
    False
    """

    _held: dict[Path, list] = {}  # path -> [fd, count], this process's locks

    def __init__(self, out_dir: str | os.PathLike, stem: str) -> None:
        self.path = Path(os.path.abspath(out_dir)) / f".{stem}.gass-lock"
        self.stem = stem
        self.notes: list[str] = []  # what taking the lock over from a killed run cleaned

    def __enter__(self) -> OutputLock:
        held = self._held.get(self.path)
        if held is not None:
            held[1] += 1
            return self
        busy = FileExistsError(f"another process is writing the outputs of {self.path.parent}/"
                               f"{self.path.name[1:-len('.gass-lock')]}* (lock {self.path}); "
                               "wait for it to finish or choose another output folder")
        while True:
            fd = self._open()
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise busy from None
            try:  # the holder before us may have removed the file: lock the current one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            self._take_over(fd)
        except BaseException:
            os.close(fd)
            raise
        self._held[self.path] = [fd, 1]
        return self

    def _take_over(self, fd: int) -> None:
        """With the lock held: notes a stale lock left by a killed run (its pid is in the file),
        removes that run's partial files for this name and writes our pid."""
        stale = os.read(fd, 64).decode("ascii", "replace").strip()
        if stale and stale != str(os.getpid()):
            removed = []
            pattern = re.compile(rf"^\.{re.escape(self.stem)}(_o\d+)?\.[^.]+\.partial(\.\w+)?$")
            for leftover in self.path.parent.iterdir():
                if pattern.match(leftover.name) and leftover.is_file():
                    leftover.unlink(missing_ok=True)
                    removed.append(leftover.name)
            note = (f"cleared the stale lock {self.path} of process {stale}, which ended without "
                    f"releasing it" + (f"; removed its partial files {sorted(removed)}"
                                       if removed else ""))
            logger.warning(note)
            self.notes.append(note)
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))

    def _open(self) -> int:
        """Opens (without ``fcntl``: exclusively creates) the lock file."""
        flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if fcntl is None else 0)
        try:
            return os.open(self.path, flags, 0o644)
        except FileExistsError as err:  # only without fcntl: is the holder alive?
            try:
                pid = int(self.path.read_text(encoding="ascii").strip() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid > 0 and not _process_alive(pid):
                self.path.unlink(missing_ok=True)  # its holder is gone: the lock is stale
                return os.open(self.path, flags, 0o644)
            raise FileExistsError(f"{self.path} exists: another process is writing these "
                                  "outputs, or one was killed (then delete the file)") from err
        except PermissionError as err:
            raise _permission_error(self.path.parent, err) from err

    def __exit__(self, *exc: object) -> None:
        held = self._held[self.path]
        held[1] -= 1
        if held[1] == 0:
            del self._held[self.path]
            self.path.unlink(missing_ok=True)  # while locked: no one else holds this inode
            os.close(held[0])


def _process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 probes without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _permission_error(folder: Path, err: OSError) -> PermissionError:
    """The error for an output folder that cannot be written."""
    return PermissionError(f"cannot write in {folder}: permission denied ({err.strerror}); make "
                           "it writable or choose another output folder")


def make_folder(folder: str | os.PathLike) -> None:
    """``mkdir -p`` with a clear error when the folder cannot be created.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder to create (with its parents); an existing folder is fine.

    Raises
    ------
    PermissionError
        When the folder cannot be written (the message says to choose another one).
    NotADirectoryError
        When a file of that name exists.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> make_folder(tmp / "a" / "b")
    >>> (tmp / "a" / "b").is_dir()
    True
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise _permission_error(folder, err) from err
    except FileExistsError as err:
        raise NotADirectoryError(f"output folder {folder} exists and is not a folder") from err


def _umask() -> int:
    """The process's umask (Linux: read from /proc, elsewhere set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new, uniquely named empty file in ``folder`` (for an atomic ``os.replace`` later), with
    the permissions of a file created the ordinary way (``0o666`` less the umask; ``mkstemp``
    alone makes it ``0o600``).

    Arguments
    ---------
    folder : pathlib.Path
        Where (an existing folder); errors say when it is not writable or the disk is full.
    prefix : str
        Start of the file name (a leading ``.`` hides it; see :func:`is_temporary_name`).
    suffix : str
        End of the file name.

    Returns
    -------
    pathlib.Path
        The new empty file.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> part = temporary_file(tmp, ".a.", ".partial.wav")
    >>> part.parent == tmp, part.name.startswith(".a."), part.stat().st_size
    (True, True, 0)
    >>> oct(part.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    True
    """
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except PermissionError as err:
        raise _permission_error(folder, err) from err
    except OSError as err:
        clear = _write_error(Path(folder) / f"{prefix}{suffix}", err)
        if clear is not err:
            raise clear from err
        raise
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(name)


def _write_error(path: Path, err: BaseException) -> BaseException:
    """A clear error for a failed write: disk full and quota say so; others pass unchanged."""
    if not isinstance(err, (OSError, RuntimeError, AssertionError)):  # libsndfile: RuntimeError
        return err
    code = getattr(err, "errno", None)
    text = str(err)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "quota" in text:
        return OSError(errno.ENOSPC, f"no space left on device writing {path}; free some space "
                                     "or choose another output folder (--out)")
    return err


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes a text file through a unique temporary file and an atomic rename.

    Readers (and concurrent writers) see either the old file or the complete new one.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write (its folder must exist).
    text : str
        The content (UTF-8).

    Returns
    -------
    pathlib.Path
        ``path``.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> write_text_atomic(tmp / "a.json", "{}").read_text(), sorted(p.name for p in tmp.iterdir())
    ('{}', ['a.json'])
    """
    path = Path(path)
    part = temporary_file(path.parent, f".{path.stem}.", f".partial{path.suffix}")
    try:
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    except BaseException as err:
        part.unlink(missing_ok=True)
        clear = _write_error(path, err)
        if clear is not err:
            raise clear from err
        raise
    return path


class StemWriter:
    """Writes ``S`` stems incrementally to uniquely named hidden files, renamed on success.

    Integer encodings are clipped to [-1, 1] and the clipped samples counted (they would wrap
    around otherwise); files in ``protected`` (the inputs of a run) are never written over. With
    ``overwrite``, stems that this run does not write are removed only when an earlier run
    recorded them as its own (listed in the ``<stem>.json`` report beside them,
    :func:`reported_stems`); anything else of that name is left alone.

    Arguments
    ---------
    out_dir : pathlib.Path
        The output folder (made if missing).
    stem : str
        The input's name without suffix: stems are ``<stem>_<label>.wav``.
    num_sources : int
        ``S``, the number of stems.
    sample_rate : int
        Their sample rate in Hz.
    channels : int
        Their channels ``C``.
    subtype : str
        The input's ``soundfile`` subtype (:func:`gass_modules.audio.wav_subtype` picks theirs).
    num_frames : int
        Their expected length (RF64 above 4 GiB).
    overwrite : bool
        Whether existing stems may be replaced.
    protected : frozenset of pathlib.Path
        Resolved paths never written over (the inputs).
    labels : list of str or None
        Stem labels; ``None``: ``s1``, ``s2``, ...

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> writer = StemWriter(tmp, "mix", 2, 8000, 1, "PCM_16", 160, overwrite=False)
    >>> writer.write(torch.full((1, 160, 2), 0.5) * torch.tensor([1.0, 3.0]))  # [C, n, S]
    >>> [p.name for p in writer.finish(order=[1, 0])], writer.clipped  # loudest first
    (['mix_s1.wav', 'mix_s2.wav'], [0, 160])
    >>> round(float(sf.read(tmp / "mix_s1.wav")[0].max()), 3), sorted(p.name for p in tmp.iterdir())
    (1.0, ['mix_s1.wav', 'mix_s2.wav'])
    """

    def __init__(self, out_dir: Path, stem: str, num_sources: int, sample_rate: int,
                 channels: int, subtype: str, num_frames: int, overwrite: bool,
                 protected: frozenset[Path] = frozenset(),
                 labels: list[str] | None = None) -> None:
        # <stem>_<label>.wav; by default the stems <stem>_s1.wav ... (their partial files are
        # named by model output, o1 ..., as outputs are renamed to stems loudest first)
        names = labels or [f"s{s + 1}" for s in range(num_sources)]
        self.finals = [out_dir / f"{stem}_{name}.wav" for name in names]
        part_names = labels or [f"o{s + 1}" for s in range(num_sources)]
        self.stem, self.protected, self.overwrite = stem, protected, overwrite
        if len(protected & {p.resolve() for p in self.finals}) == num_sources or (
            not overwrite and all(p.exists() for p in self.finals)
        ):
            self._check_names(self.finals)  # nothing could be written: fail before separating
        make_folder(out_dir)
        self.subtype = wav_subtype(subtype)
        self.clip = self.subtype not in ("FLOAT", "DOUBLE")
        size = num_frames * channels * 8  # at most 8 bytes a sample
        fmt = "RF64" if size >= (1 << 32) - (1 << 20) else "WAV"
        self.parts: list[Path] = []
        self.handles: list[sf.SoundFile] = []
        try:
            for s in range(num_sources):
                self.parts.append(temporary_file(out_dir, f".{stem}_{part_names[s]}.",
                                                  ".partial.wav"))
                self.handles.append(sf.SoundFile(self.parts[-1], "w", sample_rate, channels,
                                                 self.subtype, format=fmt))
        except BaseException:
            self.abort()
            raise
        self.clipped = [0] * num_sources

    def write(self, est: torch.Tensor) -> None:
        """Appends a block ``[C, n, S]``."""
        for s, handle in enumerate(self.handles):
            data = est[:, :, s].T.numpy()  # [n, C]
            if self.clip:
                over = np.abs(data) > 1.0
                if over.any():
                    self.clipped[s] += int(over.sum())
                    data = np.clip(data, -1.0, 1.0)
            try:
                handle.write(data)
            except Exception as err:  # libsndfile says "System error" or writes short
                clear = _write_error(self.finals[s], err)
                if clear is err and _disk_full(self.parts[s].parent):
                    clear = _write_error(self.finals[s], OSError(errno.ENOSPC, "disk full"))
                if clear is not err:
                    raise clear from err
                raise

    def finish(self, order: list[int], by_index: bool = False) -> list[Path]:
        """Closes the stems, renames output ``order[k]`` to ``<stem>_s{k+1}.wav`` (or output
        ``s`` to ``<stem>_s{s+1}.wav`` when ``by_index``)."""
        for handle in self.handles:
            handle.close()
        names = [self.finals[s] for s in order] if by_index else self.finals[: len(order)]
        self._check_names(names)
        for s, final in zip(order, names):
            os.replace(self.parts[s], final)
        for s in set(range(len(self.parts))) - set(order):
            self.parts[s].unlink(missing_ok=True)
        recorded = reported_stems(self.finals[0].parent / f"{self.stem}.json")
        for stale in set(self.finals) - set(names):  # left by an earlier run (overwrite=True)
            if stale.resolve() in recorded and stale.resolve() not in self.protected:
                stale.unlink(missing_ok=True)
        return names

    def _check_names(self, names: list[Path]) -> None:
        """Raises unless the stems ``names`` may be written: never over a protected file (an
        input, a file the caller does not own), and over an existing file only with
        ``overwrite``."""
        inputs = [str(p) for p in names if p.resolve() in self.protected]
        if inputs:
            raise ValueError(f"the stems would be written over the input(s) or protected files "
                             f"{inputs}; choose an output folder outside the input folder (or "
                             "rename or move those files)")
        existing = [str(p) for p in names if p.exists()]
        if existing and not self.overwrite:
            raise FileExistsError(f"outputs already exist: {existing}; pass --overwrite "
                                  "(overwrite=True) to replace them")

    def abort(self) -> None:
        """Closes and removes the partial files."""
        for handle in self.handles:
            handle.close()
        for part in self.parts:
            part.unlink(missing_ok=True)


def reported_stems(report: str | os.PathLike) -> set[Path]:
    """The stems a ``gass-separate`` report lists as written (``sources[*].file`` and
    ``residual_file``, beside it).

    The report is the record of what a run wrote: only these files may be replaced or removed by
    a later run. A file that is not such a report (other JSON, too large, unreadable) lists none.

    Arguments
    ---------
    report : str or os.PathLike
        A ``<name>.json`` file.

    Returns
    -------
    set of pathlib.Path
        Resolved paths of the stems it lists (existing or not).

    Example
    -------
    >>> import json
    >>> tmp = getfixture("tmp_path")
    >>> report = {"input": "a.wav", "model_sample_rate": 8000,
    ...           "sources": [{"output": 1, "file": "a_s1.wav"}, {"output": 2, "file": None}]}
    >>> _ = (tmp / "a.json").write_text(json.dumps(report))
    >>> _ = (tmp / "notes.json").write_text("[1, 2]")
    >>> [p.name for p in reported_stems(tmp / "a.json")], reported_stems(tmp / "notes.json")
    (['a_s1.wav'], set())
    """
    data = read_report(report)
    found: set[Path] = set()
    data = data or {}
    names = [source.get("file") if isinstance(source, dict) else None
             for source in data.get("sources", ())] + [data.get("residual_file")]
    for name in names:
        if isinstance(name, str) and name and Path(name).name == name:
            found.add((Path(report).parent / name).resolve())
    return found


def read_report(report: str | os.PathLike) -> dict | None:
    """A ``gass-separate`` JSON report as a dict, or None when the file is not one (missing, not
    JSON, over 1 MiB, or without the ``input``, ``model_sample_rate`` and ``sources`` keys).

    Arguments
    ---------
    report : str or os.PathLike
        The file.

    Returns
    -------
    dict or None
        The report.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> _ = (tmp / "take.json").write_text('{"takes": 3}')
    >>> read_report(tmp / "take.json") is None, read_report(tmp / "missing.json") is None
    (True, True)
    """
    path = Path(report)
    try:
        if not path.is_file() or path.stat().st_size > (1 << 20):
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list) or (
        "input" not in data or "model_sample_rate" not in data
    ):
        return None
    return data


def _disk_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has no block left for us."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except (OSError, AttributeError):
        return False


__all__ = ["OutputLock", "Skipped", "StemWriter", "is_regular_file", "is_temporary_name",
           "make_folder", "read_report", "reported_stems", "temporary_file", "write_text_atomic"]
