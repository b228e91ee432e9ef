"""Benchmark: streaming separation with a causal card beside its non-causal twin (issue #28).

Two parts, one command:

* **Latency and real-time factor** (``--speed``): the causal BSRNN at the demo size (8 kHz,
  ``n_fft`` 256 / hop 64, BSRNN-small widths: ``bsrnn_causal`` in :data:`ARCHS`) and the
  causal TDANet-STFT at GASS-mini's size (``tdanet_stft_causal``, the demo's widths) run by
  :class:`gass_modules.inference.streaming.StreamingSeparator` at hops of 10, 20 and 40 ms on one
  torch
  thread: its algorithmic latency (what the wrapper reports: the window plus the wait for a
  hop's worth of input) and its real-time factor (thread CPU seconds per second of audio over a
  stream of ``--seconds`` seconds), beside the non-causal twin (``bsrnn``, same widths) and the
  demo's TDANet-STFT (GASS-mini's architecture), both run the way a non-causal model serves a
  live input: on a sliding window of ``--context`` seconds re-separated every hop (the latency
  is then the hop plus the window's look-ahead, and the cost grows with the context), and on
  the whole signal at once (its RTF, no latency bound).
* **Quality cost of causality** (``--quality``): each causal card and its twin (BSRNN; and
  TDANet-STFT, GASS-mini's architecture) trained by the GASS recipe
  with the demo's settings (``recipes/GASS/separation/hparams/demo.yaml``, model block swapped,
  :func:`bench_architectures.arch_recipe`) for the same ``--updates`` updates on the GASS-mini
  corpus (full tier, 8 kHz), evaluated on the same held-out test mixtures, IRM beside: 2-source
  SI-SNRi, speech+speech, and each causal/non-causal ratio (the issue's goal: >= 75 %).

Each training run is the recipe in its own process (``benchmarks/recipe_runs.py``: a finished
run is not trained again). Usage::

    .venv/bin/python benchmarks/bench_streaming.py [--speed] [--quality] [--seeds 1234 2024]
        [--updates 1000] [--test-mixtures 500] [--archs ...] [--out DIR]

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_architectures  # noqa: E402
from recipe_runs import fmt, run_recipe  # noqa: E402

# the causal card at the demo size, registered beside the architectures of bench_architectures
bench_architectures.ARCHS["bsrnn_causal"] = ("bsrnn_causal", {"n_fft": 256, "hop_length": 64})
# GASS-mini's widths (the card's) at the demo's 8-kHz STFT: the causal twin of "tdanet_stft"
bench_architectures.ARCHS["tdanet_stft_causal"] = ("tdanet_stft_causal",
                                                   {"n_fft": 256, "hop_length": 64})
ARCHS = bench_architectures.ARCHS
CAUSAL, TWIN, DEMO = "bsrnn_causal", "bsrnn", "tdanet_stft"
#: each causal card and its non-causal twin (same widths)
TWINS = {CAUSAL: TWIN, "tdanet_stft_causal": DEMO}
CORPUS = Path.home() / ".cache" / "gass" / "demo_corpus" / "full-8000"
HOPS_MS = (10, 20, 40)


def quality(seeds: list[int], updates: int, test_mixtures: int, out: Path,
            archs: tuple[str, ...] = (TWIN, CAUSAL, DEMO, "tdanet_stft_causal")) -> dict:
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


def _cpu_seconds(fn, repeats: int = 3) -> float:
    """Minimum thread CPU seconds of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return min(times)


def speed(seconds: float, context: float) -> list[dict]:
    """Latency and real-time factor of each model and hop, one torch thread.

    Arguments
    ---------
    seconds : float
        Length of the streamed test signal.
    context : float
        Window re-separated every hop by the non-causal models (seconds).

    Returns
    -------
    list of dict
        One row per (model, hop): ``model``, ``mode``, ``hop_ms``, ``latency_ms``, ``rtf``,
        ``params``, ``load``.
    """
    from gass_modules.inference.streaming import StreamingSeparator

    torch.set_num_threads(1)
    rows = []
    gen = torch.Generator().manual_seed(0)
    signal = 0.1 * torch.randn(1, int(seconds * 8000), generator=gen)  # [1, T] at 8 kHz
    for name in (*TWINS, TWIN, DEMO):
        torch.manual_seed(0)
        model = bench_architectures.build_separator(name).eval()
        params = sum(p.numel() for p in model.parameters())
        if name in TWINS:
            for hop_ms in HOPS_MS:
                live = StreamingSeparator(model, hop=hop_ms / 1000)
                cpu = _cpu_seconds(lambda live=live: live.separate(signal), repeats=2)
                rows.append({"model": name, "mode": "streamed (state carried)", "hop_ms": hop_ms,
                             "latency_ms": 1000 * live.latency, "rtf": cpu / seconds,
                             "params": params, "load": os.getloadavg()[0]})
            continue
        window = signal[:, :int(context * 8000)]
        with torch.no_grad():
            per_call = _cpu_seconds(lambda m=model, w=window: m(w))
            whole = _cpu_seconds(lambda m=model: m(signal), repeats=2)
        # the window's look-ahead: the newest samples are separated with no future context,
        # so the latency is the hop plus the STFT's look-ahead (n_fft - 2 samples)
        lookahead_ms = 1000 * (model.encoder.n_fft - 2) / 8000
        for hop_ms in HOPS_MS:
            rows.append({"model": name, "mode": f"{context:g}-s window every hop",
                         "hop_ms": hop_ms, "latency_ms": hop_ms + lookahead_ms,
                         "rtf": per_call / (hop_ms / 1000), "params": params,
                         "load": os.getloadavg()[0]})
        rows.append({"model": name, "mode": "whole signal (offline)", "hop_ms": None,
                     "latency_ms": None, "rtf": whole / seconds, "params": params,
                     "load": os.getloadavg()[0]})
    return rows


def quality_table(results: dict, seeds: list[int], updates: int, test_mixtures: int) -> str:
    """The quality table: SI-SNRi of both variants, the causal/non-causal ratio, IRM beside.

    Arguments
    ---------
    results : dict
        ``(arch, seed) -> headline`` from :func:`quality`.
    seeds : list of int
        The seeds asked for (runs not finished are marked).
    updates, test_mixtures : int
        For the caption.

    Returns
    -------
    str
        A markdown table with a caption.
    """
    def mean(name: str, key: str) -> float | None:
        values = [results[name, s].get(key) for s in seeds if (name, s) in results]
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None

    lines = [f"GASS-mini corpus (full tier, 8 kHz), demo.yaml training settings, {updates} "
             f"updates per run; test split: {test_mixtures} held-out mixtures. SI-SNRi in dB.", "",
             "| model | 2-src SI-SNRi (seeds) | mean | causal / non-causal | speech+speech | "
             "IRM 2-src | IRM speech+speech | CPU min (runs) | load |", "|---" * 9 + "|"]
    for name in (TWIN, CAUSAL, DEMO, "tdanet_stft_causal"):
        done = [s for s in seeds if (name, s) in results]
        if not done:
            continue
        per_seed = " / ".join(fmt(results[name, s].get("model_si_snri_2src")) if s in done
                              else "not run" for s in seeds)
        m = mean(name, "model_si_snri_2src")
        twin = mean(TWINS[name], "model_si_snri_2src") if name in TWINS else None
        ratio = f"{m / twin:.2f}" if m is not None and twin else ""
        lines.append(" | ".join([
            f"| {name}", per_seed, fmt(m), ratio, fmt(mean(name, "model_si_snri_speech+speech")),
            fmt(mean(name, "irm_si_snri_2src")), fmt(mean(name, "irm_si_snri_speech+speech")),
            fmt(sum(results[name, s]["cpu_minutes"] for s in done), 1),
            fmt(statistics.fmean(results[name, s]["load"] for s in done), 1)]) + " |")
    return "\n".join(lines)


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
    parser.add_argument("--speed", action="store_true", help="latency and real-time factor")
    parser.add_argument("--seconds", type=float, default=10.0, help="streamed signal length")
    parser.add_argument("--context", type=float, default=1.0,
                        help="window the non-causal models re-separate every hop (seconds)")
    parser.add_argument("--quality", action="store_true", help="train and evaluate")
    names = [TWIN, CAUSAL, DEMO, "tdanet_stft_causal"]
    parser.add_argument("--archs", nargs="+", default=names, choices=names)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 2024])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--test-mixtures", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "streaming")
    args = parser.parse_args(argv)
    if not (args.speed or args.quality):
        args.speed = args.quality = True
    if args.speed:
        rows = speed(args.seconds, args.context)
        print(f"\nLatency and real-time factor, 8 kHz, one torch thread (thread CPU time; RTF = "
              f"CPU seconds per second of audio, {args.seconds:g}-s signal), "
              f"{os.cpu_count()} cores.\n")
        print("| model | params | mode | hop ms | algorithmic latency ms | RTF | RTF / causal "
              "twin at the hop | load |")
        print("|---|---|---|---|---|---|---|---|")
        causal = {(r["model"], r["hop_ms"]): r["rtf"] for r in rows if r["model"] in TWINS}
        twin_of = {twin: name for name, twin in TWINS.items()}
        for r in rows:
            ref = causal.get((twin_of.get(r["model"], r["model"]), r["hop_ms"]))
            ratio = f"{r['rtf'] / ref:.1f}x" if ref else ""
            print(f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['mode']} | "
                  f"{r['hop_ms'] or ''} | {fmt(r['latency_ms'], 1)} | {r['rtf']:.3f} | "
                  f"{ratio} | {r['load']:.1f} |")
    if args.quality:
        seeds = args.seeds
        results = quality(seeds, args.updates, args.test_mixtures, args.out, tuple(args.archs))
        print()
        print(quality_table(results, seeds, args.updates, args.test_mixtures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
