"""Packs GASS source manifests into WebDataset tar shards per category, and verifies them.

``write`` turns one or more manifest csvs (``tools/make_manifest.py``) into
``<out>/<category>/<category>-NNNNNN.tar`` shards of at most ``--shard-mb`` MB, each clip as its
audio (original codec or FLAC) plus a json record, and ``<out>/index.json`` (shards, clips,
seconds, per-category totals). The output is deterministic, and a killed run started again with
the same arguments continues where it stopped. ``verify`` reads every clip back and compares it
with the manifest's file. See ``gass_modules.dataio.shards``.

Usage::

    .venv/bin/python tools/make_shards.py write train.csv --out shards/train --shard-mb 256
    .venv/bin/python tools/make_shards.py write train.csv --out shards/train --codec flac
    .venv/bin/python tools/make_shards.py verify train.csv --index shards/train

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gass_modules.dataio.shards import ShardError, verify_shards, write_shards


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 when done (``verify``: when every clip round-trips), 1 otherwise.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write shards and index.json")
    write.add_argument("manifests", nargs="+", type=Path, help="manifest csv(s)")
    write.add_argument("--out", type=Path, required=True, help="output folder")
    write.add_argument("--shard-mb", type=float, default=256.0, help="largest shard, MB")
    write.add_argument("--codec", choices=("original", "flac"), default="original")
    write.add_argument("--seed", type=int, default=0, help="seed of each category's order")
    verify = sub.add_parser("verify", help="round-trip every clip against the manifest")
    verify.add_argument("manifests", nargs="+", type=Path, help="manifest csv(s)")
    verify.add_argument("--index", required=True, help="index.json or its folder (or url)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        if args.command == "write":
            index = write_shards(args.manifests, args.out, int(args.shard_mb * 1e6),
                                 args.codec, args.seed)
            print(json.dumps(index.totals(), indent=1))
            print(f"{len(index.shards)} shards, {index.num_clips} clips in {args.out} "
                  f"({time.perf_counter() - start:.1f} s)")
            return 0
        report = verify_shards(args.index, args.manifests)
    except (ShardError, ValueError, OSError) as err:
        print(f"make_shards.py: {err}", file=sys.stderr)
        return 1
    for problem in report.problems[:50]:
        print(problem)
    if len(report.problems) > 50:
        print(f"... and {len(report.problems) - 50} more problems")
    print(f"{report.clips} clips verified, {len(report.problems)} problems "
          f"({time.perf_counter() - start:.1f} s)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
