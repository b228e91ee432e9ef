"""Benchmark: the demo's training step on an idle machine and beside a CPU-bound process.

``make demo`` once budgeted its training by the wall clock; on a machine where another process
ran, a step went from 0.13 s to 2.4 s (18x, not the 2x a fair share of 2 cores would cost) and
the run made 481 updates instead of 7,480. This benchmark times the demo's real training step
(``recipes/GASS/separation/hparams/demo.yaml``: its model, loss, optimiser, batch size and a
``MixtureStream`` DataLoader with its worker count, on the small demo corpus) for several intra-op
thread counts and OpenMP wait policies, idle and with one competing CPU-bound process (a Python
busy loop, as a second training or a test run would be), each setting in a fresh process.

Prints the median step time per setting, the busy/idle ratio (target <= 2.5x) and the load
average before each run. Usage::

    .venv/bin/python benchmarks/bench_busy_machine.py [--steps 60] [--warmup 15]

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = (  # (label, intra-op threads, OMP_WAIT_POLICY)
    ("2 threads, OpenMP default wait", 2, None),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, "PASSIVE"),
    ("1 thread", 1, None),
)


def _child(threads: int, steps: int, warmup: int) -> None:
    """Times ``steps`` demo training steps after ``warmup`` ones; prints JSON step times."""
    import torch
    from hyperpyyaml import load_hyperpyyaml
    from torch.utils.data import DataLoader

    sys.path.insert(0, str(ROOT / "tools"))
    import build_demo_corpus
    from speechbrain.dataio.batch import PaddedBatch

    from gass_modules.dataio.mixture_sets import MixtureStream

    corpus = build_demo_corpus.build("small", sample_rate=8000, log=lambda m: None)
    torch.set_num_threads(threads)
    with open(ROOT / "recipes/GASS/separation/hparams/demo.yaml") as fin:
        hp = load_hyperpyyaml(fin, {"data_folder": str(corpus.root),
                                    "output_folder": "/tmp/gass_bench_busy"})
    model, loss_fn = hp["separator"], hp["loss"]
    opt = hp["opt_class"](model.parameters())
    loader = DataLoader(MixtureStream(hp["train_mixer"](), seed=0), batch_size=hp["batch_size"],
                        num_workers=hp["num_workers"], collate_fn=PaddedBatch)
    times = []
    it = iter(loader)
    for k in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(it)
        mix, targets = batch.mix.data, batch.targets.data  # [B, T], [B, T, S]
        est = model(mix)  # [B, T, S]
        loss = loss_fn(targets, est, mix).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps(times))


def _run(threads: int, policy: str | None, busy: bool, steps: int, warmup: int) -> dict:
    """One setting in a fresh process, optionally beside a busy loop; median step time."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    hog = None
    if busy:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
    load = os.getloadavg()[0]
    try:
        out = subprocess.run([sys.executable, __file__, "--child", str(threads), "--steps",
                              str(steps), "--warmup", str(warmup)], env=env, check=True,
                             capture_output=True, text=True, timeout=1800)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    times = sorted(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"median": times[len(times) // 2], "load": load}


def main(argv: list[str] | None = None) -> int:
    """Runs every setting idle and busy and prints the table.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit status (0).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.steps, args.warmup)
        return 0
    print(f"demo training step (demo.yaml, batch 8, 1 s at 8 kHz, 1 loader worker), "
          f"{os.cpu_count()} cores, {platform.machine()}; median of {args.steps} steps after "
          f"{args.warmup}; busy = one Python busy loop beside it\n")
    print("| setting | idle s/step | busy s/step | busy / idle | load before (idle, busy) |")
    print("|---|---:|---:|---:|---|")
    for label, threads, policy in SETTINGS:
        idle = _run(threads, policy, False, args.steps, args.warmup)
        busy = _run(threads, policy, True, args.steps, args.warmup)
        ratio = busy["median"] / idle["median"]
        print(f"| {label} | {idle['median']:.3f} | {busy['median']:.3f} | {ratio:.2f}x "
              f"| {idle['load']:.2f}, {busy['load']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
