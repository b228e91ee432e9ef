"""``gass-separate --stream``: live separation of files or stdin with a causal model folder.

The command-line side of :mod:`gass_modules.inference.streaming` (its arguments and the loop over
the
inputs); :mod:`gass_modules.inference.cli` parses the command line and loads the model.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from gass_modules.inference.output_files import Skipped
from gass_modules.inference.separator import GASSSeparator


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``--stream`` options to ``gass-separate``'s parser.

    Arguments
    ---------
    parser : argparse.ArgumentParser
        The parser of :func:`gass_modules.inference.cli.build_parser`.

    Example
    -------
    >>> parser = argparse.ArgumentParser()
    >>> add_stream_arguments(parser)
    >>> parser.parse_args(["--stream"]).hop_ms
    20.0
    """
    live = parser.add_argument_group(
        "streaming (causal model folders only)",
        "--stream separates each IN as a live input with a causal model (a causal: true card, "
        "e.g. recipes/GASS/separation/hparams/gass_mini_causal.yaml), writing <name>_s1.wav, "
        "... (every output, float WAV) as it goes; IN '-' reads raw 16-bit mono PCM from "
        "stdin (e.g. arecord -f S16_LE -r 8000 | gass-separate - --stream --model M)")
    live.add_argument("--stream", action="store_true", help="separate as a live stream")
    live.add_argument("--hop-ms", type=float, default=20.0, metavar="MS",
                      help="separator hop in milliseconds (default 20)")
    live.add_argument("--realtime", action="store_true",
                      help="read files no faster than they play (a live source's pace)")
    live.add_argument("--stream-rate", type=int, default=None, metavar="HZ",
                      help="sample rate of raw PCM on stdin (default: the model's)")


#: The longest ``--hop-ms`` (a hop is computed at once: its samples are held in memory).
MAX_HOP_MS = 10_000.0


def stream_inputs(model: GASSSeparator, args: argparse.Namespace,
                  jobs: list[tuple[Path | str, Path]] | None = None,
                  errors: list[tuple[str, str]] | None = None) -> int:
    """``gass-separate --stream``: each input separated live by
    :func:`gass_modules.inference.streaming.stream_to_stems`.

    Arguments
    ---------
    model : GASSSeparator
        The loaded model folder (its separator must be causal).
    args : argparse.Namespace
        The parsed command line (``inputs``, ``out``, ``hop_ms``, ``realtime``, ``stream_rate``,
        ``overwrite``, ``model``).
    jobs : list of (pathlib.Path or "-", pathlib.Path), optional
        The inputs (``-``: stdin) and their output sub-folders, as
        :func:`gass_modules.inference.cli.collect_inputs` expands folders (default: ``inputs``
        as given, each into ``out``).
    errors : list of (str, str), optional
        Inputs already refused (input, reason), reported with the failures.

    Returns
    -------
    int
        The exit status: 0 when every input was streamed or skipped (a file that an earlier
        complete run separated into ``out``, as in the batch mode: ``--overwrite`` redoes it),
        1 when an input failed, 2 when the model is not causal or the hop is bad.

    Example
    -------
    >>> from gass_modules.inference.cli import build_parser
    >>> args = build_parser().parse_args(["a.wav", "--stream", "--hop-ms", "0"])
    >>> stream_inputs(None, args)
    2
    """
    if not (math.isfinite(args.hop_ms) and 0 < args.hop_ms <= MAX_HOP_MS):
        print(f"gass-separate: --hop-ms must be a number of milliseconds in (0, "
              f"{MAX_HOP_MS:g}], got {args.hop_ms}", file=sys.stderr)
        return 2
    if not getattr(model.mods.separator, "causal", False):
        label = getattr(args, "model_label", args.model)
        print(f"gass-separate: --stream needs a causal model folder (a causal: true card, e.g. "
              f"gass_mini_causal.yaml); {label} is not causal: separate files without --stream",
              file=sys.stderr)
        return 2
    # a stream runs many small ops per hop: one thread avoids waiting on a second one (5x the
    # wall time with two on a busy machine; benchmarks/RESULTS.md, bench_streaming)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if jobs is None:
            jobs = [(item if item == "-" else Path(item), Path(".")) for item in args.inputs]
        return _stream_each(model, args, jobs, list(errors or []))
    finally:
        torch.set_num_threads(threads)


def _stream_each(model: GASSSeparator, args: argparse.Namespace,
                 jobs: list[tuple[Path | str, Path]], errors: list[tuple[str, str]]) -> int:
    """Streams every input of ``--stream``; 1 when one failed (``errors`` included)."""
    from gass_modules.inference.streaming import stream_to_stems

    for item, reason in errors:
        print(f"gass-separate: FAILED {item}: {reason}", file=sys.stderr)
    inputs = frozenset(Path(item).resolve() for item, _ in jobs if item != "-")
    failed, seen = len(errors), set()
    for item, sub in jobs:
        if item == "-" and item in seen:
            continue  # stdin read once
        seen.add(item)
        source = sys.stdin.buffer if item == "-" else item
        name = "stdin" if item == "-" else Path(item).stem
        try:
            stems = stream_to_stems(model.mods.separator, source, Path(args.out) / sub,
                                    name=name, sample_rate=args.stream_rate,
                                    hop=args.hop_ms / 1000, realtime=args.realtime,
                                    overwrite=args.overwrite, protected=inputs)
        except Skipped as why:
            print(f"{item}: skipped: {why}")
            continue
        except (OSError, ValueError, RuntimeError) as err:  # this input's failure
            print(f"gass-separate: FAILED {item}: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{item}: streamed -> {', '.join(str(p) for p in stems)}")
    return 1 if failed else 0
