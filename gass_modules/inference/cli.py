"""``gass-separate``: separate audio files with a GASS model folder from the command line.

::

    gass-separate IN... [-m/--model DIR|NAME|URL|HUB-ID] [-o/--out DIR] [--chunk-seconds S]
                  [--overlap F] [--device D] [--keep-silent] [--channels mix|each]
                  [--threshold-db DB] [--plot] [--residual] [--overwrite] [--trust-model-code]
                  [--version]

Every input (a file, or a directory searched recursively for the formats soundfile reads: wav,
flac, ogg, mp3, aiff, ...) gives ``<name>_s1.wav``, ``<name>_s2.wav``, ... (active sources,
loudest first, at the input's rate and in its sample format when WAV has it), ``<name>.json``
(activity report: energies and active seconds per output, durations, settings, the files
written) with ``--plot``, ``<name>.png`` (spectrograms of the mixture and the stems) and, with
``--residual``, ``<name>_residual.wav`` (the input minus the sum of the stems). When the model's
rate is below the input's, the run says once that the stems stop at the model's band and the rest
goes to the residual. Files found in a directory keep their sub-folder under ``--out``.

Without ``--model`` the best separator bundled with gass
(:mod:`gass_modules.model_folder.pretrained`; with ``--stream`` the best causal one) is used,
whatever folders the working directory holds; a ``--model`` name that is both a local
folder and a bundled model loads the local folder (as SpeechBrain does) and says so. Without
``--out`` the outputs go to ``./separated``.

Inputs are streamed (memory does not grow with their length; see
:mod:`gass_modules.inference.separator`); a long file shows one progress line (chunks, ETA) on a
terminal,
and a plain line every ``gass_modules.inference.stems.PROGRESS_SECONDS`` otherwise (logs, CI). An
input
whose report exists
(separated by an earlier run) is skipped with a "skipped" line and does not change the exit status
(``--overwrite`` separates it again), so pipelines can rerun the command. A bad input (missing, not
a regular file, not audio, 0 samples, NaN/Inf or absurdly loud samples, unreadable, outputs that
would be written over an input or over files gass-separate did not write) is reported with its
reason and skipped; the others are still separated and the exit status is 1 at the end. Status 2:
the command line or the model folder is wrong.

Outputs are written to uniquely named hidden files and renamed when complete (with the
permissions the umask gives), under a lock per output name: two runs writing the same names into
one folder never mix their files (the second one fails for that input); a lock and partial files
left by a killed run are cleared by the next run, with a message. Only files that gass-separate
wrote (those its ``.json`` reports list) are replaced or removed by ``--overwrite``. Stems of
earlier runs and gass's hidden working files are not taken as inputs when a directory is
searched. SIGTERM, like Ctrl-C, removes the partial files (a second signal during that cleanup
is ignored); the exit status is then 143 (SIGTERM) or 130 (Ctrl-C), 128 plus the signal's
number.

The model folder is loaded safely (no code from ``hyperparams.yaml`` runs, see
:func:`gass_modules.model_folder.safe_hparams.load_model_description`); ``--trust-model-code`` loads
it with
full hyperpyyaml instead, for folders from a trusted source only (a warning names the folder).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

import soundfile as sf
import torch
from tqdm.auto import tqdm

from gass_modules.audio import DEFAULT_THRESHOLD_DB, READABLE_SUFFIXES
from gass_modules.inference.chunking import plan_chunks
from gass_modules.inference.cli_stream import add_stream_arguments, stream_inputs
from gass_modules.inference.output_files import (
    OutputLock,
    Skipped,
    is_regular_file,
    is_temporary_name,
    make_folder,
    read_report,
    reported_stems,
    write_text_atomic,
)
from gass_modules.inference.separator import GASSSeparator
from gass_modules.inference.stems import FileProgress, Separation, Spectrogram
from gass_modules.model_folder.folder import MIN_CHUNK_SECONDS
from gass_modules.model_folder.pretrained import choose_model, download_folder
from gass_modules.optional import import_optional

AUDIO_SUFFIXES = tuple(sorted(READABLE_SUFFIXES))  # every format soundfile reads
DEVICE_TYPES = ("cpu", "cuda")


def build_parser() -> argparse.ArgumentParser:
    """The ``gass-separate`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser (``main`` uses it).

    Example
    -------
    >>> args = build_parser().parse_args(["a.wav", "--model", "m", "--out", "o", "--plot"])
    >>> args.inputs, args.channels, args.plot, args.overwrite
    (['a.wav'], 'mix', True, False)
    """
    parser = argparse.ArgumentParser(
        prog="gass-separate",
        description="Separate audio files (wav, flac, ogg, mp3, ...: any format soundfile reads; "
                    "any length, rate and channel count) into their sources with a GASS model "
                    "folder.")
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="audio files or directories (searched recursively for the formats "
                             "soundfile reads)")
    parser.add_argument("-m", "--model", default=None, metavar="DIR",
                        help="model folder (hyperparams.yaml + separator.ckpt), the name of a "
                             "bundled model, a URL or a hub id, as SpeechBrain's from_hparams "
                             "takes (default: the best model bundled with gass; with --stream "
                             "the best causal one, gass-mini-causal)")
    parser.add_argument("-o", "--out", default="separated", metavar="DIR",
                        help="output folder (default: ./separated, as demucs does)")
    parser.add_argument("--chunk-seconds", type=float, default=None, metavar="S",
                        help="chunk length for long inputs (default: the model folder's)")
    parser.add_argument("--overlap", type=float, default=None, metavar="F",
                        help="fraction of a chunk shared with the next one, in (0, 0.5] "
                             "(default: the model folder's)")
    parser.add_argument("--device", default=None,
                        help="torch device: cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--keep-silent", action="store_true",
                        help="also write outputs under the activity threshold")
    parser.add_argument("--channels", choices=("mix", "each"), default="mix",
                        help="mix: downmix to mono and separate once; each: separate every "
                             "channel (multi-channel stems)")
    parser.add_argument("--threshold-db", type=float, default=DEFAULT_THRESHOLD_DB, metavar="DB",
                        help="an output is active when its energy relative to the mixture is "
                             f"at least DB decibels (default {DEFAULT_THRESHOLD_DB})")
    parser.add_argument("--residual", action="store_true",
                        help="also write <name>_residual.wav, the input minus the sum of the "
                             "stems (what the model put in no stem, e.g. content above its band "
                             "when its rate is below the input's)")
    parser.add_argument("--plot", action="store_true",
                        help="also write <name>.png with spectrograms of the mixture and stems")
    parser.add_argument("--overwrite", action="store_true",
                        help="separate again inputs whose outputs exist, replacing the files an "
                             "earlier run wrote (otherwise such inputs are skipped); inputs and "
                             "files gass-separate did not write are never written over")
    parser.add_argument("--trust-model-code", action="store_true",
                        help="load the model folder with full hyperpyyaml, which can run any "
                             "code written in its hyperparams.yaml (only for folders you trust; "
                             "default: a safe loader that builds known separator classes only)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_stream_arguments(parser)
    return parser


def _version() -> str:
    """The installed gass version (``unknown`` when running from a tree that is not installed)."""
    for name in ("gass", "gass_modules", "gass-modules"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def previous_outputs(folder: Path) -> set[Path]:
    """The stems that earlier ``gass-separate`` runs wrote under ``folder``.

    They are the files listed in the ``.json`` reports (``sources[*].file``, beside the report);
    a JSON file that is not such a report is ignored.

    Arguments
    ---------
    folder : pathlib.Path
        A folder searched recursively.

    Returns
    -------
    set of pathlib.Path
        Resolved paths of the stems.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> report = {"input": "a.wav", "model_sample_rate": 8000,
    ...           "sources": [{"output": 1, "file": "a_s1.wav"}, {"output": 2, "file": None}]}
    >>> _ = (tmp / "a.json").write_text(json.dumps(report))
    >>> _ = (tmp / "notes.json").write_text("[1, 2]")
    >>> [p.name for p in previous_outputs(tmp)]
    ['a_s1.wav']
    """
    found: set[Path] = set()
    for report in folder.rglob("*.json"):
        found |= reported_stems(report)
    return found


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Expands files and directories into ``(input file, output sub-folder)`` pairs.

    A file given directly goes to the output folder itself; files found in a directory keep their
    path relative to it. Two inputs that would write the same outputs are an error for the second.
    Files found in a directory that earlier runs wrote (:func:`previous_outputs`), gass's hidden
    working files (locks, partial files) and anything that is not a regular file (a FIFO would
    block the reader forever) are skipped; such a file named directly is an error.

    Arguments
    ---------
    inputs : list of str
        Paths from the command line.

    Returns
    -------
    jobs : list of (pathlib.Path, pathlib.Path)
        Input file and output sub-folder (relative), in command-line then sorted order.
    errors : list of (str, str)
        Input and reason, for inputs that cannot be processed.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> (tmp / "d" / "e").mkdir(parents=True)
    >>> for name in ("d/a.wav", "d/e/b.flac", "d/notes.txt"):
    ...     _ = (tmp / name).write_bytes(b"")
    >>> jobs, errors = collect_inputs([str(tmp / "d"), str(tmp / "missing.wav")])
    >>> [(p.name, str(sub)) for p, sub in jobs]
    [('a.wav', '.'), ('b.flac', 'e')]
    >>> errors[0][1]
    'no such file or directory'
    """
    jobs: list[tuple[Path, Path]] = []
    errors: list[tuple[str, str]] = []
    owners: dict[tuple[Path, str], Path] = {}

    def add(path: Path, sub: Path) -> None:
        key = (sub, path.stem.casefold())  # A.wav and a.wav clash on macOS, Windows
        if key in owners and owners[key].resolve() == path.resolve():
            return  # the same file named twice (a shell glob and a folder): separated once
        if key in owners:
            errors.append((str(path), f"its outputs ({sub / path.stem}_s*.wav) would overwrite "
                                      f"those of {owners[key]}; rename one of them or separate "
                                      "it in another run"))
            return
        owners[key] = path
        jobs.append((path, sub))

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            stems = previous_outputs(path)
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                           and not is_temporary_name(p.name) and is_regular_file(p)
                           and p.resolve() not in stems)
            if not found:
                errors.append((item, "directory holds no audio files (formats soundfile reads: "
                                     f"{', '.join(AUDIO_SUFFIXES)})"))
            for p in found:
                add(p, p.parent.relative_to(path))
        elif not path.exists():
            errors.append((item, "no such file or directory"))
        elif not is_regular_file(path):
            errors.append((item, "not a regular file (a FIFO, device or socket); expected an "
                                 "audio file: save the stream to a file first"))
        else:
            add(path, Path("."))
    return jobs, errors


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` allows."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _summary(path: Path, result: Separation, info: dict, args: argparse.Namespace,
             model: GASSSeparator) -> dict:
    """The JSON report of one input (non-finite energies become null)."""
    files = {s: result.files[k].name for k, s in enumerate(result.kept)} if result.files else {}
    order = result.kept + [s for s in range(len(result.active)) if s not in result.kept]
    sources = []
    for s in order:
        energy = result.energy_db[s]
        sources.append({
            "output": s + 1,
            "file": files.get(s),
            "active": bool(result.active[s]),
            "energy_db": round(energy, 3) if math.isfinite(energy) else None,
            "active_seconds": round(result.active_seconds[s], 3),
            "clipped_samples": result.clipped[s],
        })
    chunk_seconds, overlap = model.chunking(args.chunk_seconds, args.overlap)
    return {
        "input": str(path.resolve()),
        "model": args.model_label,
        "model_sample_rate": model.sample_rate,
        **info,
        "duration_s": round(result.duration, 6),
        "channels_mode": args.channels,
        "output_channels": result.channels,
        "chunk_seconds": chunk_seconds,
        "overlap": overlap,
        "order": model.order,  # fixed: labelled stems, output k is stem k, no re-alignment
        "threshold_db": args.threshold_db,
        "num_active": result.num_active,
        "sources": sources,
        "plot": f"{path.stem}.png" if args.plot else None,  # the record of what this run wrote
        "residual_file": result.residual_file.name if result.residual_file else None,
        "warnings": result.warnings,
    }


def _check_outputs(path: Path, out_dir: Path, args: argparse.Namespace, num_sources: int,
                   inputs: frozenset[Path]) -> dict | None:
    """Decides, under the output lock, whether ``path``'s outputs may be written.

    Returns the earlier run's report (None when there is none); raises :class:`Skipped` for a
    done input without ``--overwrite``, and ``ValueError`` / ``FileExistsError`` when an output
    name is an input, or the report or plot name a file that gass-separate did not write (stems
    are checked when written: :func:`_foreign_stems`)."""
    report, image = out_dir / f"{path.stem}.json", out_dir / f"{path.stem}.png"
    named = [report, image] + [out_dir / f"{path.stem}_s{k + 1}.wav" for k in range(num_sources)]
    clash = [str(p) for p in named if p.resolve() in inputs | {path.resolve()}]
    if clash:
        raise ValueError(f"its outputs would be written over the input(s) {clash}; choose an "
                         "output folder outside the input folder (or rename the inputs)")
    previous = read_report(report)
    if report.exists() and previous is None:
        raise FileExistsError(f"{report} exists and is not a gass-separate report; move it or "
                              "choose another output folder (--out)")
    if previous is not None and not args.overwrite:
        if previous.get("input") != str(path.resolve()):
            raise FileExistsError(f"outputs already exist ({report}) for another input, "
                                  f"{previous.get('input')}; choose another output folder "
                                  "(--out), or pass --overwrite to replace them")
        if not args.plot or image.exists():
            raise Skipped(f"outputs exist ({report}); --overwrite separates it again")
        raise FileExistsError(f"outputs already exist ({report}) but not the plot {image}; "
                              "pass --overwrite to separate it again with the plot")
    if args.plot and image.exists() and not (
        previous is not None and previous.get("plot", image.name) == image.name
    ):
        raise FileExistsError(f"{image} exists and no gass-separate report records it as its "
                              "plot; move it or choose another output folder (--out)")
    return previous


def _foreign_stems(path: Path, out_dir: Path, num_sources: int) -> set[Path]:
    """Existing files named like ``path``'s stems or residual that no gass-separate report
    records (a user's ``a_s3.wav``): never replaced nor removed."""
    written = reported_stems(out_dir / f"{path.stem}.json")
    names = [out_dir / f"{path.stem}_{label}.wav"
             for label in [f"s{k + 1}" for k in range(num_sources)] + ["residual"]]
    return {p.resolve() for p in names if p.exists() and p.resolve() not in written}


def _separate_one(model: GASSSeparator, path: Path, out_dir: Path,
                  args: argparse.Namespace, inputs: frozenset[Path] = frozenset()) -> Separation:
    """Separates one input and writes its stems, JSON and optional PNG (under the output lock,
    each file through a temporary file and a rename; ``inputs`` and files that no gass-separate
    report records are never written over)."""
    report = out_dir / f"{path.stem}.json"
    image = out_dir / f"{path.stem}.png"
    make_folder(out_dir)
    longest = f".{path.stem}_o{model.num_sources}.12345678.partial.wav"  # the longest name
    if len(os.fsencode(longest)) > _name_max(out_dir):
        raise ValueError(f"the name {path.name!r} is too long for its outputs (the file system "
                         f"allows {_name_max(out_dir)} bytes a name; gass-separate adds up to "
                         f"{len(longest) - len(path.stem)}): rename the input")
    with OutputLock(out_dir, path.stem) as lock:
        for note in lock.notes:
            tqdm.write(f"gass-separate: {note}", file=sys.stderr)
        previous = _check_outputs(path, out_dir, args, model.num_sources, inputs)
        try:
            info = sf.info(str(path))
        except Exception:  # separate_to_files says what is wrong with the file
            info = None
        spectrogram = progress = None
        if info is not None and info.frames > 0:
            try:
                chunks = plan_chunks(info.frames, info.samplerate, model.sample_rate,
                                     *model.chunking(args.chunk_seconds, args.overlap)).count
            except ValueError:  # an unusable rate: separate_to_files says so
                chunks = 0
            if args.plot and chunks:  # (a rate of 2**31 Hz would make a 1-GB spectrogram)
                spectrogram = Spectrogram(info.frames, info.samplerate, model.num_sources)
            progress = FileProgress(path.name, info.frames, info.samplerate, chunks)

        def on_block(mix: torch.Tensor, est: torch.Tensor) -> None:
            if spectrogram is not None:
                spectrogram.update(mix, est)
            if progress is not None:
                progress.update(mix, est)

        try:
            result = model.separate_to_files(
                path, out_dir=out_dir, channels=args.channels, keep_silent=args.keep_silent,
                chunk_seconds=args.chunk_seconds, overlap=args.overlap,
                threshold_db=args.threshold_db, overwrite=args.overwrite, on_block=on_block,
                progress=False,
                protected=inputs | _foreign_stems(path, out_dir, model.num_sources),
                residual=args.residual)
        finally:
            if progress is not None:
                progress.close()
        described = {"sample_rate": info.samplerate, "channels": info.channels,
                     "format": info.format, "subtype": info.subtype,
                     "num_frames": result.num_frames}
        summary = _summary(path, result, described, args, model)
        try:
            write_text_atomic(report, json.dumps(summary, indent=2) + "\n")
        except BaseException:  # unrecorded stems could never be replaced: take them back
            for stem in result.files:
                stem.unlink(missing_ok=True)
            raise
        if spectrogram is not None:
            part = out_dir / f".{path.stem}.{os.getpid()}.partial.png"
            try:
                spectrogram.save(part, result, path.name)
                os.replace(part, image)
            finally:
                part.unlink(missing_ok=True)
        elif previous is not None and previous.get("plot") == image.name:
            image.unlink(missing_ok=True)  # the earlier run's plot would mislead
    return result


class _Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM/SIGINT handler: unwinds like Ctrl-C (the partial files are removed)
    and makes ``main`` return ``128 + signum``, the shell's status for a process ended by a
    signal."""

    def __init__(self, signum: int) -> None:
        super().__init__("Ctrl-C" if signum == signal.SIGINT else f"terminated by signal {signum}")
        self.signum = int(signum)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT handler: unwinds like Ctrl-C, so the partial files are removed; further
    signals are ignored from then on, so a second Ctrl-C cannot break the cleanup."""
    for name in (signal.SIGINT, signal.SIGTERM):
        signal.signal(name, signal.SIG_IGN)
    raise _Terminated(signum)


def _check_device(name: str) -> str | None:
    """Why ``--device name`` cannot run gass-separate (None when it can)."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        return f"--device {name}: {err}"
    if device.type not in DEVICE_TYPES:
        return (f"--device {name}: the {device.type} device is not supported by gass-separate; "
                f"use one of {', '.join(DEVICE_TYPES)} (cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"--device {name}: no CUDA device (torch.cuda.is_available() is False); use " \
                   "--device cpu"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return (f"--device {name}: no CUDA device {device.index}; "
                    f"{torch.cuda.device_count()} visible (cuda:0 to "
                    f"cuda:{torch.cuda.device_count() - 1})")
    return None


def main(argv: list[str] | None = None) -> int:
    """Runs ``gass-separate`` (the console script).

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every input was separated or skipped (done by an earlier run), 1 when some failed
        (reported on stderr), 2 when the command line or the model folder is wrong, 130 when
        interrupted by Ctrl-C (SIGINT) and 143 when terminated by SIGTERM (128 + the signal
        number, as a shell reports it).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> main([str(tmp / "a.wav"), "--model", str(tmp / "no_model"), "--out", str(tmp / "o")])
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.chunk_seconds is not None and not (
        math.isfinite(args.chunk_seconds) and args.chunk_seconds >= MIN_CHUNK_SECONDS
    ):
        parser.error(f"--chunk-seconds must be a number of seconds >= {MIN_CHUNK_SECONDS}, got "
                     f"{args.chunk_seconds}")
    if args.overlap is not None and not 0 < args.overlap <= 0.5:
        parser.error(f"--overlap must be in (0, 0.5], got {args.overlap}")
    if not math.isfinite(args.threshold_db):
        parser.error(f"--threshold-db must be a finite number, got {args.threshold_db}")
    ignored = [flag for flag, given in (
        ("--plot", args.plot), ("--residual", args.residual), ("--keep-silent", args.keep_silent),
        ("--channels each", args.channels == "each"), ("--overlap", args.overlap is not None),
        ("--chunk-seconds", args.chunk_seconds is not None)) if given and args.stream]
    if ignored:  # a stream writes every output, mono, hop by hop: these would do nothing
        parser.error(f"{', '.join(ignored)}: not available with --stream (it writes every "
                     "output, mono, hop by hop); separate the files without --stream")
    try:  # --plot: matplotlib (the extra [plots]) is checked before any file is separated
        args.plot and import_optional("matplotlib.figure", "plots", "--plot")
    except ImportError as err:
        parser.error(str(err))
    run_opts = {}
    if args.device is not None:
        problem = _check_device(args.device)
        if problem:
            parser.error(problem)
        run_opts["device"] = args.device
    previous = {}
    shown: set[str] = set()
    if threading.current_thread() is threading.main_thread():
        previous = {name: signal.signal(name, _terminate)
                    for name in (signal.SIGTERM, signal.SIGINT)}
    done = skipped = 0
    try:
        try:
            source, note = choose_model(args.model, causal=args.stream)
        except FileNotFoundError as err:  # the default model is not in this install
            print(f"gass-separate: {err}", file=sys.stderr)
            return 2
        args.model_label = str(source)
        if note:
            print(f"gass-separate: {note}", file=sys.stderr)
        if args.trust_model_code:
            print(f"gass-separate: WARNING --trust-model-code: loading {source} with full "
                  "hyperpyyaml; code written in its hyperparams.yaml may run (use it only for "
                  "folders from a source you trust)", file=sys.stderr)
        try:
            model = GASSSeparator.from_hparams(source=source, run_opts=run_opts,
                                               savedir=download_folder(source),
                                               trust_code=args.trust_model_code)
        except Exception as err:
            print(f"gass-separate: cannot load the model folder {source}: {err}",
                  file=sys.stderr)
            return 2
        if args.stream:  # files and folders as in the batch mode; "-" is stdin
            jobs, errors = collect_inputs([item for item in args.inputs if item != "-"])
            stdin = [("-", Path("."))] if "-" in args.inputs else []
            return stream_inputs(model, args, stdin + jobs, errors)
        jobs, errors = collect_inputs(args.inputs)
        named = [Path(item) for item in args.inputs if is_regular_file(Path(item))]
        inputs = frozenset(path.resolve() for path in [p for p, _ in jobs] + named)
        out_root = Path(args.out)
        for path, sub in tqdm(jobs, desc="files", unit="file",
                              disable=len(jobs) < 2 or not sys.stderr.isatty()):
            try:
                result = _separate_one(model, path, out_root / sub, args, inputs)
            except Skipped as why:
                skipped += 1
                tqdm.write(f"{path}: skipped: {why}")
                continue
            except Exception as err:  # any failure is this file's; the others still run
                message = f"{type(err).__name__}: {err}" if not isinstance(
                    err, (ValueError, OSError)) else str(err)
                errors.append((str(path), message))
                tqdm.write(f"gass-separate: FAILED {path}: {message}", file=sys.stderr)
                continue
            done += 1
            for note in result.warnings:
                if note not in shown:  # the same note (e.g. the model's band) once a run
                    shown.add(note)
                    tqdm.write(f"gass-separate: WARNING {note}", file=sys.stderr)
            tqdm.write(f"{path}: {result.num_active} active source(s) -> "
                       f"{', '.join(str(f) for f in result.files) or 'no stems'}")
    except KeyboardInterrupt as err:
        for name in (signal.SIGINT, signal.SIGTERM):  # the cleanup is done: no more unwinding
            signal.signal(name, signal.SIG_IGN)
        kept = ("the stems streamed so far are kept (their report says complete: false; a "
                "rerun redoes them)" if args.stream else
                f"partial files removed, {done} file(s) separated")
        print(f"gass-separate: interrupted ({err or 'Ctrl-C'}); {kept}", file=sys.stderr)
        return 128 + int(getattr(err, "signum", signal.SIGINT))
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)
    if errors:
        also = f"{skipped} skipped, " if skipped else ""
        print(f"gass-separate: {done} file(s) separated, {also}{len(errors)} failed:",
              file=sys.stderr)
        for item, reason in errors:
            print(f"  {item}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
