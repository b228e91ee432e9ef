"""``gass-separate``: separate audio files with a GASS model folder from the command line.

::

    gass-separate IN... [--model DIR|NAME] [--out DIR] [--chunk-seconds S] [--overlap F]
                  [--device D] [--keep-silent] [--channels mix|each] [--threshold-db DB] [--plot]
                  [--overwrite] [--trust-model-code]

Every input (a file, or a directory searched recursively for ``.wav``, ``.flac`` and ``.ogg``)
gives ``<name>_s1.wav``, ``<name>_s2.wav``, ... (active sources, loudest first, at the input's rate
and in its sample format when WAV has it), ``<name>.json`` (activity report: energies and active
seconds per output, durations, settings) and, with ``--plot``, ``<name>.png`` (spectrograms of the
mixture and the stems). Files found in a directory keep their sub-folder under ``--out``.

Without ``--model`` the separator bundled with gass, GASS-mini (:mod:`gass_modules.pretrained`),
is used; without ``--out`` the outputs go to ``./separated``.

Inputs are streamed (memory does not grow with their length; see
:mod:`gass_modules.inference`). A bad input (missing, not audio, 0 samples, NaN/Inf samples,
unreadable, outputs that exist without ``--overwrite``, stems that would be written over another
input) is reported with its reason and skipped; the others are still separated and the exit
status is 1 at the end. Status 2: the command line or the model folder is wrong.

Outputs are written to uniquely named hidden files and renamed when complete, under a lock per
output name: two runs writing the same names into one folder never mix their files (the second
one fails for that input). Stems of earlier runs (the files their ``.json`` reports list) are not
taken as inputs when a directory is searched. SIGTERM, like Ctrl-C, removes the partial files;
the exit status is then 143 (SIGTERM) or 130 (Ctrl-C), 128 plus the signal's number.

The model folder is loaded safely (no code from ``hyperparams.yaml`` runs, see
:func:`gass_modules.safe_hparams.load_model_description`); ``--trust-model-code`` loads it with
full hyperpyyaml instead, for folders from a trusted source only.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
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

from gass_modules.audio import DEFAULT_THRESHOLD_DB, OutputLock, make_folder, write_text_atomic
from gass_modules.inference import GASSSeparator
from gass_modules.optional import import_optional
from gass_modules.pretrained import DEFAULT_MODEL, resolve_model_source
from gass_modules.stems import Separation

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
PLOT_COLUMNS = 800  # time columns of the spectrogram image, whatever the input's length


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
        description="Separate audio files (wav/flac/ogg, any length, rate and channel count) "
                    "into their sources with a GASS model folder.")
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="audio files or directories (searched recursively for "
                             f"{', '.join(AUDIO_SUFFIXES)})")
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="DIR",
                        help="model folder (hyperparams.yaml + separator.ckpt) or the name of a "
                             f"bundled model (default: {DEFAULT_MODEL}, the general separator "
                             "shipped with gass)")
    parser.add_argument("--out", default="separated", metavar="DIR",
                        help="output folder (default: ./separated, as demucs does)")
    parser.add_argument("--chunk-seconds", type=float, default=None, metavar="S",
                        help="chunk length for long inputs (default: the model folder's)")
    parser.add_argument("--overlap", type=float, default=None, metavar="F",
                        help="fraction of a chunk shared with the next one, in (0, 0.5] "
                             "(default: the model folder's)")
    parser.add_argument("--device", default=None,
                        help="torch device, e.g. cpu or cuda:0 (default: cuda when available)")
    parser.add_argument("--keep-silent", action="store_true",
                        help="also write outputs under the activity threshold")
    parser.add_argument("--channels", choices=("mix", "each"), default="mix",
                        help="mix: downmix to mono and separate once; each: separate every "
                             "channel (multi-channel stems)")
    parser.add_argument("--threshold-db", type=float, default=DEFAULT_THRESHOLD_DB, metavar="DB",
                        help="an output is active when its energy relative to the mixture is "
                             f"at least DB decibels (default {DEFAULT_THRESHOLD_DB})")
    parser.add_argument("--plot", action="store_true",
                        help="also write <name>.png with spectrograms of the mixture and stems")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (otherwise such inputs are skipped); "
                             "inputs are never written over")
    parser.add_argument("--trust-model-code", action="store_true",
                        help="load the model folder with full hyperpyyaml, which can run any "
                             "code written in its hyperparams.yaml (only for folders you trust; "
                             "default: a safe loader that builds known separator classes only)")
    return parser


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
        try:
            if report.stat().st_size > (1 << 20):
                continue
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list) or (
            "input" not in data or "model_sample_rate" not in data
        ):
            continue
        for source in data["sources"]:
            name = source.get("file") if isinstance(source, dict) else None
            if isinstance(name, str) and name and Path(name).name == name:
                found.add((report.parent / name).resolve())
    return found


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Expands files and directories into ``(input file, output sub-folder)`` pairs.

    A file given directly goes to the output folder itself; files found in a directory keep their
    path relative to it. Two inputs that would write the same outputs are an error for the second.
    Files found in a directory that earlier runs wrote (:func:`previous_outputs`) are skipped.

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
        key = (sub, path.stem)
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
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in AUDIO_SUFFIXES and p.resolve() not in stems)
            if not found:
                errors.append((item, f"directory holds no {'/'.join(AUDIO_SUFFIXES)} files"))
            for p in found:
                add(p, p.parent.relative_to(path))
        elif path.exists():
            add(path, Path("."))
        else:
            errors.append((item, "no such file or directory"))
    return jobs, errors


class _Spectrogram:
    """Power spectrogram of the mixture and every output, accumulated block by block.

    Columns average the STFT frames (32 ms Hann, half overlap) whose centre falls in them, so the
    image has at most ``PLOT_COLUMNS`` columns and memory does not grow with the input length.
    """

    def __init__(self, num_frames: int, sample_rate: int, num_sources: int) -> None:
        self.sample_rate = sample_rate
        self.n_fft = 2 ** max(6, round(math.log2(0.032 * sample_rate)))
        self.hop = self.n_fft // 2
        self.width = max(self.hop, math.ceil(num_frames / PLOT_COLUMNS))  # samples a column
        self.columns = max(1, math.ceil(num_frames / self.width))
        self.power = torch.zeros(num_sources + 1, self.n_fft // 2 + 1, self.columns)
        self.count = torch.zeros(self.columns)
        self.window = torch.hann_window(self.n_fft)
        self.offset = 0

    def update(self, mix: torch.Tensor, est: torch.Tensor) -> None:
        """Adds a block ``mix [C, n]``, ``est [C, n, S]``."""
        signals = torch.cat([mix.unsqueeze(-1), est], dim=-1)  # [C, n, S + 1]
        channels, length, count = signals.shape
        if length >= self.n_fft:
            flat = signals.permute(2, 0, 1).reshape(count * channels, length)
            spec = torch.stft(flat, self.n_fft, self.hop, window=self.window, center=False,
                              return_complex=True).abs().pow(2)  # [(S+1)C, F, N]
            spec = spec.view(count, channels, *spec.shape[1:]).mean(1)  # [S+1, F, N]
            centres = self.offset + self.n_fft // 2 + self.hop * torch.arange(spec.shape[-1])
            column = (centres // self.width).clamp(max=self.columns - 1)  # [N]
            self.power.index_add_(2, column, spec)
            self.count.index_add_(0, column, torch.ones(spec.shape[-1]))
        self.offset += length

    def save(self, path: Path, result: Separation, title: str) -> None:
        """Draws the mixture and the kept stems and writes a PNG."""
        # no pyplot: no global state, no display needed
        Figure = import_optional("matplotlib.figure", "plots", "--plot").Figure

        mean = self.power / self.count.clamp(min=1)  # [S+1, F, cols]
        db = 10 * torch.log10(mean + 1e-12)
        top = float(db.max())
        rows = [(0, "mixture")] + [
            (s + 1, f"s{k + 1}: output {s + 1}, {result.energy_db[s]:.1f} dB")
            for k, s in enumerate(result.kept)]
        fig = Figure(figsize=(10, 1.6 * len(rows) + 0.6))
        axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
        extent = (0.0, result.duration, 0.0, self.sample_rate / 2000)
        for ax, (index, label) in zip(axes, rows):
            image = ax.imshow(db[index].numpy(), origin="lower", aspect="auto", extent=extent,
                              vmin=top - 80, vmax=top, cmap="magma")
            ax.set_ylabel("kHz")
            ax.set_title(label, fontsize=9, loc="left")
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(title, fontsize=10)
        fig.colorbar(image, ax=list(axes), label="dB")
        fig.savefig(path, dpi=90)


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
        "model": str(resolve_model_source(args.model).resolve()),
        "model_sample_rate": model.sample_rate,
        **info,
        "duration_s": round(result.duration, 6),
        "channels_mode": args.channels,
        "output_channels": result.channels,
        "chunk_seconds": chunk_seconds,
        "overlap": overlap,
        "order": model.order,  # fixed: labelled stems, output k is stem k, no re-alignment
        "fixed_order": model.order == "fixed",  # the same, as reports before 'order' said it
        "threshold_db": args.threshold_db,
        "num_active": result.num_active,
        "sources": sources,
        "warnings": result.warnings,
    }


def _separate_one(model: GASSSeparator, path: Path, out_dir: Path,
                  args: argparse.Namespace, inputs: frozenset[Path] = frozenset()) -> Separation:
    """Separates one input and writes its stems, JSON and optional PNG (under the output lock,
    each file through a temporary file and a rename; ``inputs`` are never written over)."""
    report = out_dir / f"{path.stem}.json"
    image = out_dir / f"{path.stem}.png"
    make_folder(out_dir)
    with OutputLock(out_dir, path.stem):
        if not args.overwrite:
            existing = [str(p) for p in (report, image) if p.exists()]
            if existing:
                raise FileExistsError(f"outputs already exist: {existing}; pass --overwrite to "
                                      "replace them")
        try:
            info = sf.info(str(path))
        except Exception:  # separate_to_files says what is wrong with the file
            info = None
        spectrogram = None
        if args.plot and info is not None and info.frames > 0:
            spectrogram = _Spectrogram(info.frames, info.samplerate, model.num_sources)
        result = model.separate_to_files(
            path, out_dir=out_dir, channels=args.channels, keep_silent=args.keep_silent,
            chunk_seconds=args.chunk_seconds, overlap=args.overlap,
            threshold_db=args.threshold_db, overwrite=args.overwrite,
            on_block=spectrogram.update if spectrogram else None, progress=True,
            protected=inputs)
        described = {"sample_rate": info.samplerate, "channels": info.channels,
                     "format": info.format, "subtype": info.subtype,
                     "num_frames": result.num_frames}
        summary = _summary(path, result, described, args, model)
        write_text_atomic(report, json.dumps(summary, indent=2) + "\n")
        if spectrogram is not None:
            part = out_dir / f".{path.stem}.{os.getpid()}.partial.png"
            try:
                spectrogram.save(part, result, path.name)
                os.replace(part, image)
            finally:
                part.unlink(missing_ok=True)
        elif args.overwrite:
            image.unlink(missing_ok=True)  # a stale plot from an earlier run would mislead
    return result


class _Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler: unwinds like Ctrl-C (the partial files are removed) and
    makes ``main`` return ``128 + signum``, the shell's status for a process ended by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = int(signum)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM handler: unwinds like Ctrl-C, so the partial files are removed."""
    raise _Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    """Runs ``gass-separate`` (the console script).

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every input was separated, 1 when some failed (reported on stderr), 2 when the
        model folder cannot be loaded, 130 when interrupted by Ctrl-C (SIGINT) and 143 when
        terminated by SIGTERM (128 + the signal number, as a shell reports it).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> main([str(tmp / "a.wav"), "--model", str(tmp / "no_model"), "--out", str(tmp / "o")])
    2
    """
    args = build_parser().parse_args(argv)
    if args.chunk_seconds is not None and not (
        math.isfinite(args.chunk_seconds) and args.chunk_seconds > 0
    ):
        build_parser().error(f"--chunk-seconds must be a positive number, got "
                             f"{args.chunk_seconds}")
    if args.overlap is not None and not 0 < args.overlap <= 0.5:
        build_parser().error(f"--overlap must be in (0, 0.5], got {args.overlap}")
    if not math.isfinite(args.threshold_db):
        build_parser().error(f"--threshold-db must be a finite number, got {args.threshold_db}")
    if args.plot:
        try:  # before any file is separated: matplotlib is the optional extra [plots]
            import_optional("matplotlib.figure", "plots", "--plot")
        except ImportError as err:
            build_parser().error(str(err))
    run_opts = {}
    if args.device is not None:
        try:
            torch.device(args.device)
        except RuntimeError as err:
            build_parser().error(f"--device: {err}")
        run_opts["device"] = args.device
    try:
        model = GASSSeparator.from_hparams(source=args.model, run_opts=run_opts,
                                           trust_code=args.trust_model_code)
    except Exception as err:
        print(f"gass-separate: cannot load the model folder {args.model}: {err}", file=sys.stderr)
        return 2
    jobs, errors = collect_inputs(args.inputs)
    inputs = frozenset(path.resolve() for path, _ in jobs)
    out_root = Path(args.out)
    done = 0
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        for path, sub in tqdm(jobs, desc="files", unit="file", disable=len(jobs) < 2):
            try:
                result = _separate_one(model, path, out_root / sub, args, inputs)
            except Exception as err:  # any failure is this file's; the others still run
                message = f"{type(err).__name__}: {err}" if not isinstance(
                    err, (ValueError, FileNotFoundError, FileExistsError)) else str(err)
                errors.append((str(path), message))
                tqdm.write(f"gass-separate: FAILED {path}: {message}", file=sys.stderr)
                continue
            done += 1
            for note in result.warnings:
                tqdm.write(f"gass-separate: WARNING {note}", file=sys.stderr)
            tqdm.write(f"{path}: {result.num_active} active source(s) -> "
                       f"{', '.join(str(f) for f in result.files) or 'no stems'}")
    except KeyboardInterrupt as err:
        print(f"gass-separate: interrupted ({err or 'Ctrl-C'}); partial files removed, "
              f"{done} file(s) separated", file=sys.stderr)
        return 128 + int(getattr(err, "signum", signal.SIGINT))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if errors:
        print(f"gass-separate: {done} file(s) separated, {len(errors)} failed:", file=sys.stderr)
        for item, reason in errors:
            print(f"  {item}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
