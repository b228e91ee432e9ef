"""Benchmark: does training-data diversity make a separator general, at equal compute?

GASS (Pons et al., ICASSP 2024) claims that the diversity and scale of the training data make
one separator general. This benchmark tests it at small scale on the GASS-mini corpus
(``tools/build_demo_corpus.py``, ``full`` tier): the same model card, update budget and seeds
(``recipes/GASS/separation/hparams/demo.yaml``) trained on nested subsets of the *training
groups* (10 %, 30 %, 100 % of the speakers / language groups, songs and sound files, drawn per
kind in one seeded order, so each subset holds the smaller ones), each evaluated on the same
held-out test split (speakers, songs and files none of them saw) beside the IRM oracle, by
number of sources and by pair type.

Each run is the GASS recipe itself (``recipes/GASS/separation/train.py``) in its own process,
under ``--out`` (default ``results/data_scaling``); a finished run is not trained again, and a
killed one resumes from its checkpoint. Usage::

    .venv/bin/python benchmarks/bench_data_scaling.py [--fractions 0.1 0.3 1.0]
        [--seeds 1234 2024] [--updates 6000] [--test-mixtures 1000] [--out DIR]

Prints one markdown row per run (with its update count, CPU and wall time and the load average
at its start) and the IRM's row.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import build_demo_corpus  # noqa: E402
from recipe_runs import fmt as _fmt  # noqa: E402
from recipe_runs import run_recipe  # noqa: E402

from gass_modules.dataio.manifest import Manifest  # noqa: E402

PAIRS = ("speech+speech", "music+music", "sfx+sfx", "music+speech", "sfx+speech", "music+sfx")


def nested_subset(manifest: Manifest, fraction: float, seed: int = 0) -> Manifest:
    """The clips of the first ``fraction`` of each kind's groups, in one seeded order.

    Kinds are the group prefixes (``speech``, ``music``, ``sfx``); a song's stems share one
    group. The order does not depend on ``fraction``, so smaller subsets nest in larger ones.

    Arguments
    ---------
    manifest : Manifest
        The training manifest.
    fraction : float
        Share of groups kept per kind, in (0, 1]; at least one group of each kind is kept.
    seed : int
        Seed of the group order.

    Returns
    -------
    Manifest
        The subset.

    Example
    -------
    >>> m = Manifest([f"c{i}" for i in range(8)], [f"{i}.wav" for i in range(8)], [1] * 8,
    ...              [8000] * 8, [1] * 8, ["speech"] * 4 + ["sfx"] * 4,
    ...              ["speech/a", "speech/b", "speech/c", "speech/d", "sfx/e", "sfx/f",
    ...               "sfx/g", "sfx/h"])
    >>> small, half = nested_subset(m, 0.25), nested_subset(m, 0.5)
    >>> len(small), len(half), set(small.ids.tolist()) <= set(half.ids.tolist())
    (2, 4, True)
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    names = manifest.group_names.tolist()
    keep: set[int] = set()
    for kind in sorted({n.split("/")[0] for n in names}):
        codes = [k for k, n in enumerate(names) if n.split("/")[0] == kind]
        order = build_demo_corpus.rng_for(seed, f"subset-{kind}").permutation(len(codes))
        count = max(1, math.ceil(fraction * len(codes)))
        keep.update(codes[i] for i in order[:count])
    rows = np.flatnonzero(np.isin(manifest.group_codes, sorted(keep)))
    return manifest.select(rows)


def _describe(manifest: Manifest) -> dict:
    """Groups per kind and minutes of a training manifest."""
    names = manifest.group_names.tolist()
    used = {names[g] for g in np.unique(manifest.group_codes).tolist()}
    kinds = {k: sum(1 for n in used if n.startswith(k + "/")) for k in ("speech", "music", "sfx")}
    return {**kinds, "minutes": float(manifest.durations.sum()) / 60}


def _run(data: Path, out: Path, seed: int, updates: int, test_mixtures: int,
         extra: list[str]) -> dict:
    """One recipe run (skipped when its evaluation exists); its headline and costs."""
    cmd = [sys.executable, str(ROOT / "recipes/GASS/separation/train.py"),
           str(ROOT / "recipes/GASS/separation/hparams/demo.yaml"), f"--data_folder={data}",
           f"--output_folder={out}", f"--seed={seed}", f"--number_of_updates={updates}",
           f"--num_test_mixtures={test_mixtures}", "--noprogressbar", *extra]
    headline = out / "eval" / "headline.json"
    costs = run_recipe(cmd, out, headline, ROOT)
    return {**json.loads(headline.read_text()), **costs}


def main(argv: list[str] | None = None) -> int:
    """Builds the subsets, runs the recipe on each, prints the table.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 2024])
    parser.add_argument("--updates", type=int, default=6000)
    parser.add_argument("--test-mixtures", type=int, default=1000)
    parser.add_argument("--tier", default="full")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "data_scaling")
    parser.add_argument("extra", nargs="*", help="more recipe overrides, e.g. --batch_size=16")
    args = parser.parse_args(argv)
    corpus = build_demo_corpus.build(args.tier, sample_rate=8000)
    train = Manifest.from_csv(corpus.manifests["train"])
    rows = []
    for fraction in args.fractions:
        data = args.out / "data" / f"frac-{fraction:g}"
        data.mkdir(parents=True, exist_ok=True)
        subset = nested_subset(train, fraction)
        subset.to_csv(data / "train.csv")  # absolute paths into the corpus
        for split in ("valid", "test"):
            Manifest.from_csv(corpus.manifests[split]).to_csv(data / f"{split}.csv")
        for seed in args.seeds:
            out = args.out / "runs" / f"frac-{fraction:g}-seed{seed}"
            result = _run(data, out, seed, args.updates, args.test_mixtures, args.extra)
            rows.append((fraction, seed, _describe(subset), result))
            print(f"done: fraction {fraction:g}, seed {seed}: "
                  f"{_fmt(result.get('model_si_snri_2src'))} dB", flush=True)
    print(f"\nGASS-mini corpus ({args.tier} tier, 8 kHz), demo.yaml card, {args.updates} "
          f"updates per run; test split: {args.test_mixtures} held-out mixtures of 1-4 sources "
          "(speakers, songs and files no run saw). SI-SNRi in dB; pair columns are 2-source "
          f"mixtures. {os.cpu_count()} cores.\n")
    head = ["train groups (fraction)", "speech groups", "songs", "sfx groups",
            "train min", "seed", "updates", "CPU min", "wall min", "load", "2-src SI-SNRi",
            "% of IRM", *PAIRS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for fraction, seed, desc, r in rows:
        irm = r.get("irm_si_snri_2src")
        model = r.get("model_si_snri_2src")
        pct = 100 * model / irm if model is not None and irm else None
        cells = [f"{fraction:.0%}", str(desc["speech"]), str(desc["music"]), str(desc["sfx"]),
                 f"{desc['minutes']:.0f}", str(seed), str(r.get("updates")),
                 _fmt(r["cpu_minutes"], 1), _fmt(r["wall_minutes"], 1), _fmt(r["load"], 1),
                 _fmt(model), _fmt(pct, 0)]
        cells += [_fmt(r.get(f"model_si_snri_{p}")) for p in PAIRS]
        print("| " + " | ".join(cells) + " |")
    if rows:
        r = rows[-1][3]
        cells = ["IRM oracle", "", "", "", "", "", "", "", "", "", _fmt(r.get("irm_si_snri_2src")),
                 "100"] + [_fmt(r.get(f"irm_si_snri_{p}")) for p in PAIRS]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
