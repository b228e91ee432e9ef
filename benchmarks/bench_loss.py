"""Benchmark of the PIT thresholded log-MSE: forward + backward on CPU.

Setting of issue 2: B = 8 mixtures of 4 s at 16 kHz (T = 64000), S = 4 sources, float32, one
forward and backward pass per call (gradients reset as an optimizer's ``zero_grad`` does).
Compared with

* SpeechBrain's ``PitWrapper`` around ``nn.MSELoss(reduction="none")``: what a SpeechBrain user
  has today for PIT;
* a plain ``F.mse_loss`` without any permutation search: the floor, since PIT should cost
  almost nothing on top of it;
* the same thresholded log-MSE built from a ``[B, T, S, S]`` tensor of differences (the slow
  way), with the same permutation search, to show what the Gram cross terms save;
* gass's pairwise matrix read on its diagonal (identity permutation, no search), to show what
  the permutation search itself costs.

Rounds are interleaved (one timed call of each method per round), so that slow phases of a
shared machine hit every method alike, and each timed call follows an untimed call of the same
method, so that none pays for the caches and pages the previous method used (the
``[B, T, S, S]`` baseline frees tens of MB). Each call is timed twice: wall clock, and CPU time
of the calling thread. By default torch runs on one thread
here, so the thread's CPU time is all the work of the call and does not count the time the
scheduler gives to other processes: on a shared machine it is the stable measure, and the ratios
use its minimum over rounds (as ``timeit`` recommends). Pass ``--threads 2`` to time torch's
multi-threaded kernels by wall clock instead.

Run: ``.venv/bin/python benchmarks/bench_loss.py [--rounds 40] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from speechbrain.nnet.losses import PitWrapper

from gass_modules.losses import LOG_EPS, best_permutation, pairwise_log_mse, pit_log_mse

BATCH, LENGTH, SOURCES = 8, 4 * 16000, 4


def broadcast_pit_log_mse(targets: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """The thresholded PIT log-MSE from a ``[B, T, S, S]`` difference tensor (baseline).

    Arguments
    ---------
    targets : torch.Tensor
        ``[B, T, S]`` references.
    estimates : torch.Tensor
        ``[B, T, S]`` estimates.

    Returns
    -------
    torch.Tensor
        ``[B]`` loss, equal to ``pit_log_mse(targets, estimates)``.
    """
    error = (targets.unsqueeze(3) - estimates.unsqueeze(2)).square().sum(dim=1)  # [B, S, S]
    energy = targets.square().sum(dim=1)  # [B, S]
    mix_energy = targets.sum(dim=2).square().sum(dim=1, keepdim=True)  # [B, 1]
    threshold = torch.where(energy > 0, 1e-3 * energy, 1e-2 * mix_energy)  # [B, S]
    matrix = 10.0 * torch.log10(error + threshold.unsqueeze(2) + LOG_EPS)
    perm = best_permutation(matrix)
    return matrix.gather(2, perm.unsqueeze(2)).mean(dim=(1, 2))


def make_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """GASS-like batch: 1-4 active sources per mixture (silent slots all-zero).

    Arguments
    ---------
    seed : int
        Seed of the generator.

    Returns
    -------
    tuple
        ``targets [B, T, S]`` and ``estimates [B, T, S]`` (the latter requires grad).
    """
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randn(BATCH, LENGTH, SOURCES, generator=gen)
    counts = torch.randint(1, SOURCES + 1, (BATCH,), generator=gen)
    for b, count in enumerate(counts.tolist()):
        targets[b, :, count:] = 0.0
    estimates = torch.randn(BATCH, LENGTH, SOURCES, generator=gen).requires_grad_(True)
    return targets, estimates


def time_steps(steps: dict[str, Callable[[], None]], rounds: int, warmup: int = 3,
               sync: Callable[[], None] = lambda: None) -> dict[str, dict[str, list[float]]]:
    """Times each step once per round, interleaved, each right after an untimed call of itself.

    Arguments
    ---------
    steps : dict
        Name -> callable doing one forward and backward pass.
    rounds : int
        Timed calls per step.
    warmup : int
        Untimed calls per step before the first round.
    sync : callable
        Waits for queued device work (``torch.cuda.synchronize`` on a GPU) before each clock.

    Returns
    -------
    dict
        Name -> ``{"wall": [...], "cpu": [...]}``, ``rounds`` durations each, in milliseconds.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: {"wall": [], "cpu": []} for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            step()  # untimed: warm caches and pages for this method
            sync()
            wall, cpu = time.perf_counter(), time.thread_time()
            step()
            sync()
            times[name]["cpu"].append(1e3 * (time.thread_time() - cpu))
            times[name]["wall"].append(1e3 * (time.perf_counter() - wall))
    return times


def main() -> None:
    """Times the losses and prints a markdown table with ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="timed calls per method")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: thread CPU time is the whole cost of a call)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cuda: time on the GPU (wall time around synchronised calls)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch")

    targets, estimates = make_inputs()
    targets = targets.to(args.device)
    estimates = estimates.detach().to(args.device).requires_grad_(True)
    pit_wrapper = PitWrapper(torch.nn.MSELoss(reduction="none"))
    torch.testing.assert_close(broadcast_pit_log_mse(targets, estimates),
                               pit_log_mse(targets, estimates), atol=1e-3, rtol=0,
                               check_dtype=False)  # float64 where CUDA TF32 is on

    def step(loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            estimates.grad = None
            loss_fn().backward()
        return run

    steps = {
        "gass `pit_log_mse` (Gram cross terms, tensor search)":
            step(lambda: pit_log_mse(targets, estimates).mean()),
        "SpeechBrain `PitWrapper(MSELoss)`":
            step(lambda: pit_wrapper(estimates, targets)[0].mean()),
        "plain `F.mse_loss`, no permutation search":
            step(lambda: F.mse_loss(estimates, targets)),
        "log-MSE from a [B, T, S, S] tensor + same search":
            step(lambda: broadcast_pit_log_mse(targets, estimates).mean()),
        "gass `pairwise_log_mse` diagonal (no search)":
            step(lambda: pairwise_log_mse(targets, estimates).diagonal(dim1=1, dim2=2).mean()),
    }
    gpu = args.device == "cuda"
    times = time_steps(steps, args.rounds, sync=torch.cuda.synchronize if gpu else lambda: None)
    key = "cpu" if args.threads == 1 and not gpu else "wall"
    best = {name: min(values[key]) for name, values in times.items()}
    ours = next(iter(steps))

    where = (f"GPU ({torch.cuda.get_device_name()})" if gpu else
             f"CPU ({platform.processor() or platform.machine()}), {args.threads} torch thread(s)")
    print(f"forward+backward, B={BATCH}, S={SOURCES}, T={LENGTH} (4 s at 16 kHz), float32, "
          f"{where}, "
          f"torch {torch.__version__}, {args.rounds} interleaved rounds; ratios on the minimum "
          f"{'thread CPU time' if key == 'cpu' else 'wall time'}\n")
    print("| loss | wall median ms | wall min ms | CPU min ms | time / gass |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values['wall']):.2f} | {min(values['wall']):.2f} "
              f"| {min(values['cpu']):.2f} | {best[name] / best[ours]:.2f}x |")
    speedup = best["SpeechBrain `PitWrapper(MSELoss)`"] / best[ours]
    overhead = best[ours] / best["plain `F.mse_loss`, no permutation search"]
    print(f"\ngass vs PitWrapper: {speedup:.1f}x faster (target >= 3x: "
          f"{'met' if speedup >= 3 else 'NOT met'}); gass vs plain MSE: {overhead:.2f}x the time "
          f"(target <= 2x: {'met' if overhead <= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
