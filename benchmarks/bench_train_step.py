"""Benchmark of the training step: eager against regional compilation and a whole-step CUDA graph.

For each card, the step that ``SeparationBrain`` runs (forward, PIT log-MSE, backward, gradient
clipping at 5, Adam) on random one-second mixtures at the card's rate, through the brain itself
(``fit_batch``), in three modes:

* ``eager``: the default step (on a GPU its sync-free form: no host read inside the step);
* ``compile``: ``compile_regions: true``, each repeated block compiled once
  (:mod:`gass_modules.training.compile_regions`);
* ``graph``: ``cuda_graphs: true``, forward to update captured in one CUDA graph (GPU only; bf16
  autocast and TF32 there, as the recipes recommend on a GPU; eager and compile run the same
  precision for a like-for-like ratio).

Cards: GASS-mini's (the bundled model), the 1.44 M TDANet-STFT that trained on a lent GPU
(RESULTS.md, "GASS-mini training on a lent GPU": GASS-mini's card with bottleneck 128, hidden
384, depth 4, 6 blocks), ``tdanet_stft``, ``tdanet_paper``, ``bsrnn_small``, ``bs_roformer`` from
``hparams/models``, and SpeechBrain's SepFormer (``bench_separators.build_baseline``, 2 sources at
8 kHz) as the baseline a SpeechBrain user would train.

Columns: mixtures per second (batch / step time), step ms (median of the timed steps; CUDA: wall
time with a device synchronisation around each; CPU: thread time of the one torch thread, robust
to other processes on a shared machine), launches per step (CUDA: kernel and graph launches the
host issued, from ``torch.profiler``; CPU: aten operators dispatched), GPU busy (the profiled
kernels' summed time over the step time), peak memory (CUDA: ``max_memory_allocated``), setup s
(compile: first step minus an eager step; graph: warm-up and capture) and the step time relative
to the eager step of the same card and batch. A total ``--budget-s`` bounds the run: rows are
measured in priority order (batch 64 first, eager and graph before compile) and the rest are
listed as skipped (a compile row needs a minute of budget left to start).

Run: ``.venv/bin/python benchmarks/bench_train_step.py [--device cuda] [--budget-s 180]
[--cards gass_mini sepformer] [--batches 16 64 256] [--modes eager compile graph]
[--out table.md]``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import speechbrain as sb  # noqa: E402
from bench_separators import build_baseline  # noqa: E402

from gass_modules.losses import pit_log_mse  # noqa: E402
from gass_modules.training.brain import SeparationBrain  # noqa: E402

GASS_MINI = ROOT / "gass_modules" / "model_folder" / "pretrained" / "gass_mini" / "hyperparams.yaml"
CARD_1P44M = {"bottleneck_channels": 128, "hidden_channels": 384, "depth": 4, "num_blocks": 6}
CARDS = ("gass_mini", "tdanet_1p44m", "tdanet_stft", "tdanet_paper", "bsrnn_small",
         "bs_roformer", "sepformer")
MODES = ("eager", "graph", "compile")
COMPILE_MIN_S = 60.0  # a compile row starts only with this much budget left


def build_card(name: str) -> torch.nn.Module:
    """A card's separator by name (see the module docstring), seeded.

    Arguments
    ---------
    name : str
        One of :data:`CARDS`.

    Returns
    -------
    torch.nn.Module
        The separator (``sample_rate`` and ``num_sources`` attributes).
    """
    torch.manual_seed(0)
    if name == "sepformer":
        return build_baseline("sepformer")
    if name in ("gass_mini", "tdanet_1p44m"):
        overrides = {"separator": CARD_1P44M} if name == "tdanet_1p44m" else {}
        return load_hyperpyyaml(GASS_MINI.read_text(), overrides=overrides)["separator"]
    if name not in CARDS:
        raise SystemExit(f"unknown card {name!r}; choose from {', '.join(CARDS)}")
    with open(ROOT / "hparams" / "models" / f"{name}.yaml") as f:
        return load_hyperpyyaml(f)["separator"]


def make_batch(separator: torch.nn.Module, batch: int) -> PaddedBatch:
    """``batch`` random one-second mixtures of the card's sources, as the mixer's pipeline."""
    rate, sources = int(separator.sample_rate), int(separator.num_sources)
    gen = torch.Generator().manual_seed(batch)
    targets = 0.3 * torch.randn(batch, rate, sources, generator=gen)
    return PaddedBatch([{"id": f"m{i}", "mix": targets[i].sum(-1), "targets": targets[i]}
                        for i in range(batch)])


def make_brain(separator: torch.nn.Module, device: str, mode: str, precision: str
               ) -> SeparationBrain:
    """A SeparationBrain ready to run ``fit_batch`` (optimiser, regions or graph set up)."""
    hparams = {"loss": pit_log_mse, "compile_regions": mode == "compile",
               "cuda_graphs": mode == "graph", "sync_interval": 1000}
    brain = SeparationBrain({"separator": separator}, lambda p: torch.optim.Adam(p, lr=1e-4),
                            hparams, run_opts={"device": device, "max_grad_norm": 5.0,
                                               "precision": precision, "noprogressbar": True})
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    brain.modules.train()
    brain.nonfinite_count = 0
    return brain


def _sync(device: str) -> None:
    """Waits for the GPU (CUDA), so that the host clock sees the step end."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _step(brain: SeparationBrain, batch: PaddedBatch) -> None:
    """One training step, as ``sb.Brain._fit_train`` runs it."""
    brain.step += 1
    brain.fit_batch(batch)


def profile_step(brain: SeparationBrain, batch: PaddedBatch, device: str) -> tuple[int, float]:
    """Launches (CUDA: kernel/graph launches; CPU: aten ops) and device-busy ms of one step."""
    from torch.profiler import ProfilerActivity, profile
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    _sync(device)
    with profile(activities=activities) as prof:
        _step(brain, batch)
        _sync(device)
    events = prof.events()
    if cuda:
        launches = sum(1 for e in events if e.name in (
            "cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
            "cudaGraphLaunch"))
        busy = sum(e.device_time for e in events
                   if e.device_type == torch.autograd.DeviceType.CUDA) / 1000.0
        return launches, busy
    top = [e for e in events if e.name.startswith("aten::")
           and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))]
    return len(top), math.nan


def measure(name: str, mode: str, batch: int, device: str, precision: str, steps: int,
            eager_ms: dict) -> dict:
    """One row: the card at one batch in one mode."""
    separator = build_card(name)
    data = make_batch(separator, batch)
    if device.startswith("cuda"):
        gc.collect()  # the previous row's brain, graph pool and optimiser state
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.monotonic()
    brain = make_brain(separator, device, mode, precision)
    if mode == "graph" and brain.graphed_step is None:
        return {"status": f"not captured: {brain._graph_fallback}"}
    warm = 4 if mode == "graph" else 2  # graph: 3 warm-up steps and the capture
    for _ in range(warm):
        _step(brain, data)
    _sync(device)
    setup = time.monotonic() - start
    if mode == "graph" and (brain.graphed_step is None or brain.graphed_step.graph is None):
        return {"status": f"not captured: {brain._graph_fallback}"}
    # CPU: thread time (one torch thread computes in this thread; robust to a shared machine)
    clock = time.perf_counter if device.startswith("cuda") else time.thread_time
    times = []
    for _ in range(steps):
        tick = clock()
        _step(brain, data)
        _sync(device)
        times.append(clock() - tick)
    ms = 1000 * statistics.median(times)
    launches, busy_ms = profile_step(brain, data, device)
    row = {"status": "ok", "ms": ms, "mix_s": batch / (ms / 1000), "launches": launches,
           "busy": busy_ms / ms if not math.isnan(busy_ms) else math.nan,
           "peak_mib": (torch.cuda.max_memory_allocated() / 2 ** 20
                        if device.startswith("cuda") else math.nan),
           "params": sum(p.numel() for p in separator.parameters())}
    reference = eager_ms.get((name, batch))
    if mode == "eager":
        eager_ms[(name, batch)] = ms
    # setup: building the brain and the first steps, beyond what as many steady steps take
    row["setup"] = setup - warm * ms / 1000 if mode != "eager" else math.nan
    row["ratio"] = reference / ms if reference else (1.0 if mode == "eager" else math.nan)
    return row


def plan(cards: list[str], batches: list[int], modes: list[str]) -> list[tuple]:
    """(card, mode, batch) in priority order: eager and graph rows at batch 64 (or the first
    batch), then at the other batches, then the compile rows (whose compilation is the longest).
    """
    first = 64 if 64 in batches else batches[0]
    order = [first] + [b for b in batches if b != first]
    fast = [(card, mode, batch) for batch in order for mode in ("eager", "graph")
            if mode in modes for card in cards]
    return fast + [(card, "compile", batch) for batch in order if "compile" in modes
                   for card in cards]


def fmt(value: float, digits: int = 1) -> str:
    """A table cell: thousands separators, ``n/a`` for NaN."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else \
        f"{value:,.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    """Runs the planned rows within the budget and prints (and writes) the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cards", nargs="+", default=list(CARDS), choices=CARDS)
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--budget-s", type=float, default=600.0,
                        help="total wall-clock budget; rows past it are listed as skipped")
    parser.add_argument("--precision", default=None,
                        help="fp32 or bf16 (default: bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda but no CUDA GPU is visible")
    precision = args.precision or ("bf16" if cuda else "fp32")
    modes = [m for m in args.modes if cuda or m != "graph"]
    start = time.monotonic()
    eager_ms: dict = {}
    rows = []
    if cuda:  # TF32 for every mode (the graphed step turns it on; like for like)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    for card, mode, batch in plan(args.cards, args.batches, modes):
        left = args.budget_s - (time.monotonic() - start)
        if left <= 0 or (mode == "compile" and left < COMPILE_MIN_S):
            rows.append((card, mode, batch, {"status": "skipped (budget)"}))
            continue
        load = os.getloadavg()[0]
        try:
            row = measure(card, mode, batch, args.device, precision, args.steps, eager_ms)
        except torch.cuda.OutOfMemoryError:
            row = {"status": "out of GPU memory"}
        except Exception as err:  # one failing row must not lose the table
            row = {"status": f"failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}"}
        row["load"] = load
        rows.append((card, mode, batch, row))
        print(f"{card} {mode} b{batch}: {row}", file=sys.stderr, flush=True)
    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()})"
    lines = [f"bench_train_step: {device_name}, torch {torch.__version__}, {precision}, "
             f"{args.threads} thread(s), 1-s mixtures at each card's rate, median of "
             f"{args.steps} steps, {time.monotonic() - start:.0f} s in all; launches: "
             f"{'kernel + graph launches' if cuda else 'aten ops dispatched'} per step",
             "",
             "| card | mode | batch | mixtures/s | step ms | vs eager | launches/step | "
             "GPU busy | peak MiB | setup s | load |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for card, mode, batch, row in rows:
        if row["status"] != "ok":
            lines.append(f"| {card} | {mode} | {batch} | {row['status']} |||||||"
                         f" {fmt(row.get('load'))} |")
            continue
        lines.append(f"| {card} | {mode} | {batch} | {fmt(row['mix_s'])} | {fmt(row['ms'])} | "
                     f"{fmt(row['ratio'], 2)}x | {row['launches']:,} | "
                     f"{fmt(100 * row['busy'], 0)}{'' if math.isnan(row['busy']) else ' %'} | "
                     f"{fmt(row['peak_mib'], 0)} | {fmt(row['setup'])} | {fmt(row['load'])} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
