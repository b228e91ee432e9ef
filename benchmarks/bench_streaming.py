"""Benchmark: streaming separation with a causal card beside its non-causal twin (issue #28).

Two parts, one command:

* **Latency and real-time factor** (``--speed``): the causal BSRNN at the demo size (8 kHz,
  ``n_fft`` 256 / hop 64, BSRNN-small widths: ``bsrnn_causal`` in :data:`ARCHS`) run by
  :class:`gass_modules.streaming.StreamingSeparator` at hops of 10, 20 and 40 ms on one torch
  thread: its algorithmic latency (what the wrapper reports: the window plus the wait for a
  hop's worth of input) and its real-time factor (thread CPU seconds per second of audio over a
  stream of ``--seconds`` seconds), beside the non-causal twin (``bsrnn``, same widths) and the
  demo's TDANet-STFT (GASS-mini's architecture), both run the way a non-causal model serves a
  live input: on a sliding window of ``--context`` seconds re-separated every hop (the latency
  is then the hop plus the window's look-ahead, and the cost grows with the context), and on
  the whole signal at once (its RTF, no latency bound).
* **Quality cost of causality** (``--quality``): both BSRNN variants trained by the GASS recipe
  with the demo's settings (``recipes/GASS/separation/hparams/demo.yaml``, model block swapped,
  :func:`bench_architectures.arch_recipe`) for the same ``--updates`` updates on the GASS-mini
  corpus (full tier, 8 kHz), evaluated on the same held-out test mixtures, IRM beside: 2-source
  SI-SNRi, speech+speech, and the causal/non-causal ratio (the issue's goal: >= 75 %).

Each training run is the recipe in its own process (``benchmarks/recipe_runs.py``: a finished
run is not trained again). Usage::

    .venv/bin/python benchmarks/bench_streaming.py [--speed] [--quality] [--seeds 1234 2024]
        [--updates 1000] [--test-mixtures 500] [--out DIR]

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_architectures  # noqa: E402
from recipe_runs import fmt, run_recipe  # noqa: E402

# the causal card at the demo size, registered beside the architectures of bench_architectures
bench_architectures.ARCHS["bsrnn_causal"] = ("bsrnn_causal", {"n_fft": 256, "hop_length": 64})
ARCHS = bench_architectures.ARCHS
CAUSAL, TWIN, DEMO = "bsrnn_causal", "bsrnn", "tdanet_stft"
CORPUS = Path.home() / ".cache" / "gass" / "demo_corpus" / "full-8000"
HOPS_MS = (10, 20, 40)


def quality(seeds: list[int], updates: int, test_mixtures: int, out: Path,
            archs: tuple[str, ...] = (TWIN, CAUSAL)) -> dict:
    """Trains and evaluates each architecture and seed (finished runs are read back).

    Arguments
    ---------
    seeds : list of int
        Training seeds.
    updates : int
        Optimizer updates per run.
    test_mixtures : int
        Held-out test mixtures.
    out : pathlib.Path
        Where the runs go.
    archs : tuple of str
        Keys of :data:`ARCHS`.

    Returns
    -------
    dict
        ``(arch, seed) -> headline`` (the recipe's ``headline.json`` plus costs).
    """
    if not (CORPUS / "test.csv").is_file():
        raise FileNotFoundError(f"the GASS-mini corpus is not at {CORPUS} (tools/"
                                "build_demo_corpus.py builds it, full tier, 8 kHz)")
    results = {}
    for name in archs:
        config = bench_architectures.arch_recipe(name, out / "configs")
        for seed in seeds:
            run = out / "runs" / f"{name}-seed{seed}"
            cmd = [sys.executable, str(bench_architectures.RECIPE / "train.py"), str(config),
                   f"--data_folder={CORPUS}", f"--output_folder={run}", f"--seed={seed}",
                   f"--number_of_updates={updates}", f"--num_test_mixtures={test_mixtures}",
                   "--noprogressbar"]
            headline = run / "eval" / "headline.json"
            costs = run_recipe(cmd, run, headline, ROOT)
            results[name, seed] = {**json.loads(headline.read_text()), **costs}
            print(f"done: {name}, seed {seed}: "
                  f"{fmt(results[name, seed].get('model_si_snri_2src'))} dB", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Runs the parts asked for and prints their tables.

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
    parser.add_argument("--quality", action="store_true", help="train and evaluate")
    parser.add_argument("--archs", nargs="+", default=[TWIN, CAUSAL], choices=[TWIN, CAUSAL])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 2024])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--test-mixtures", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "streaming")
    args = parser.parse_args(argv)
    if args.quality:
        results = quality(args.seeds, args.updates, args.test_mixtures, args.out,
                          tuple(args.archs))
        print(json.dumps({f"{a}-{s}": {k: v for k, v in r.items() if "2src" in k
                                       or "speech+speech" in k or k in ("cpu_minutes", "load")}
                          for (a, s), r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
