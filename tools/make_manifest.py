"""Scans audio folders into a GASS source manifest (SpeechBrain-style csv).

Header-only reads (``soundfile.info``, no decoding) in parallel threads; unreadable and empty
files are skipped and counted with their reason; totals per category are printed. The csv has
the columns ``ID, duration, wav, frames, sample_rate, channels, category, group`` (see
``gass_modules.dataio.manifest``) and loads with ``Manifest.from_csv`` or SpeechBrain's
``DynamicItemDataset.from_csv``.

Usage::

    .venv/bin/python tools/make_manifest.py LibriSpeech/train-clean-100 --category speech \\
        --group-depth 1 --out speech.csv
    .venv/bin/python tools/make_manifest.py speech/ music/ fx/ --category speech music sfx \\
        --out all.csv --data-root /data --split 0.8 0.1 0.1

``--group-depth N``: a file's group (speaker / song / recording) is its root folder's name plus
the first N folders under it; 0 makes each file its own group. ``--split`` also writes
``<out stem>_train.csv``, ``_valid.csv`` and ``_test.csv``, split by group without leakage.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gass_modules.dataio.scan import scan_audio


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (1 when no readable audio was found).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="folders to scan recursively")
    parser.add_argument("--category", nargs="+", required=True,
                        help="one category for all folders, or one per folder")
    parser.add_argument("--group-depth", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="output csv")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="write paths under this folder as $data_root/...")
    parser.add_argument("--workers", type=int, default=8, help="probing threads")
    parser.add_argument("--split", type=float, nargs=3, default=None,
                        metavar=("TRAIN", "VALID", "TEST"),
                        help="also write group-disjoint train/valid/test csvs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    args = parser.parse_args(argv)
    if len(args.category) not in (1, len(args.dirs)):
        parser.error(f"--category takes one name or one per folder ({len(args.dirs)}), "
                     f"got {len(args.category)}")
    categories = args.category[0] if len(args.category) == 1 else args.category
    outputs = [args.out] + ([args.out.with_name(f"{args.out.stem}_{name}.csv")
                             for name in ("train", "valid", "test")] if args.split else [])
    if args.out.is_dir() or args.out.suffix.lower() != ".csv":
        parser.error(f"--out must name a .csv file, got {args.out}")
    t0 = time.time()
    manifest, report = scan_audio(args.dirs, categories, args.group_depth, args.workers)
    scanned = {Path(path).resolve() for path in manifest.paths.tolist()}
    clash = [str(path) for path in outputs if path.resolve() in scanned]
    if clash:  # a scanned audio file named .csv: never written over
        print(f"make_manifest: {clash} are scanned audio files; choose another --out",
              file=sys.stderr)
        return 1
    print(report.format())
    print(f"scanned {len(manifest) + len(report.skipped)} files in {time.time() - t0:.1f} s")
    if len(manifest) == 0:
        print("make_manifest: no readable audio found; nothing written", file=sys.stderr)
        return 1
    manifest.to_csv(args.out, data_root=args.data_root)
    print(f"wrote {args.out} ({len(manifest)} clips)")
    if args.split:
        parts = manifest.split_by_group(args.split, seed=args.seed)
        for name, part in parts.items():
            path = args.out.with_name(f"{args.out.stem}_{name}.csv")
            part.to_csv(path, data_root=args.data_root)
            print(f"wrote {path} ({len(part)} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
