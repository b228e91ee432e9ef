"""Benchmark: the separators side by side on one corpus, at one update budget (issue #18).

Every architecture of the package, at a demo size (8 kHz, 4 outputs, 0.4-1 M parameters), is
trained by the GASS recipe with the demo's training settings (``recipes/GASS/separation/hparams/
demo.yaml``: 1-s mixtures of 1-4 sources, batch 8, Adam at 2e-3 decaying linearly to zero, one
torch thread) for the same number of updates, on the GASS-mini corpus (``tools/
build_demo_corpus.py``, full tier), two seeds each, and evaluated on the same held-out test
mixtures (speakers, songs and files no run saw) beside the IRM oracle. Only the ``model:`` block
of demo.yaml changes between architectures (:func:`arch_recipe`).

Columns: parameters; CPU milliseconds per training step (forward, PIT loss, backward and Adam
step on a batch of 8 one-second mixtures, one torch thread, thread CPU time, the minimum of three
rounds, measured in this process before the runs); the run's CPU minutes; 2-source SI-SNRi per
seed and by pair type (mean of the seeds); and ratios against TDANet-STFT, the demo's model.
"Learns faster per CPU-second" reads off the SI-SNRi at equal updates together with the step
cost.

Each run is the GASS recipe in its own process (``benchmarks/recipe_runs.py``: a finished run
is not trained again, a killed one resumes). Usage::

    .venv/bin/python benchmarks/bench_architectures.py [--archs tdanet_stft bsrnn ...]
        [--seeds 1234 2024] [--updates 1000] [--test-mixtures 500] [--out DIR]

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import build_demo_corpus  # noqa: E402
from recipe_runs import fmt, run_recipe  # noqa: E402

from gass_modules.losses import pit_log_mse  # noqa: E402

RECIPE = ROOT / "recipes" / "GASS" / "separation"
DEMO = RECIPE / "hparams" / "demo.yaml"
REFERENCE = "tdanet_stft"
PAIRS = ("speech+speech", "music+music", "sfx+sfx", "music+speech", "sfx+speech", "music+sfx")

# name -> (model card in hparams/models, separator overrides giving the demo size at 8 kHz)
ARCHS: dict[str, tuple[str, dict]] = {
    # the demo's card itself (demo.yaml's model block)
    "tdanet_stft": ("tdanet_stft", {
        "n_fft": 256, "hop_length": 64, "features": "mag", "mask_type": "magnitude",
        "mask_activation": "sigmoid", "bottleneck_channels": 96, "hidden_channels": 192,
        "depth": 3, "num_blocks": 2, "num_heads": 4}),
    # learned encoder: 4-ms kernel, 2-ms hop (500 frames per second, 4x the STFT's)
    "tdanet_wav": ("tdanet_wav", {
        "enc_channels": 256, "enc_kernel_size": 32, "enc_stride": 16, "bottleneck_channels": 96,
        "hidden_channels": 192, "depth": 3, "num_blocks": 2, "num_heads": 4}),
    # bsrnn_small's width, the demo's STFT
    "bsrnn": ("bsrnn_small", {"n_fft": 256, "hop_length": 64}),
    # the GASS-size card (D 32, L 4, 2 heads) with the demo's STFT
    "bs_roformer": ("bs_roformer", {"n_fft": 256, "hop_length": 64}),
    # TIGER at half its GASS card's width, 3 scales, 2 applications of the shared block, on the
    # gass band plan (24 bands at 8 kHz): 0.21 M parameters, already ~20x the demo's step on CPU
    "tiger": ("tiger", {"n_fft": 256, "hop_length": 64, "band_plan": "gass", "feature_dim": 64,
                        "hidden_dim": 128, "depth": 3, "num_blocks": 2}),
}


def arch_recipe(name: str, folder: Path) -> Path:
    """demo.yaml with its ``model:`` block replaced by the architecture's card and size.

    Written outside the recipe folder, so every ``!include:`` is made absolute.

    Arguments
    ---------
    name : str
        A key of :data:`ARCHS`.
    folder : pathlib.Path
        Where to write ``<name>.yaml``.

    Returns
    -------
    pathlib.Path
        The recipe yaml.

    Example
    -------
    >>> path = arch_recipe("bsrnn", getfixture("tmp_path"))
    >>> text = path.read_text()
    >>> "hparams/models/bsrnn_small.yaml" in text, "include:../../../../hparams" in text
    (True, False)
    """
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; choose from {sorted(ARCHS)}")
    card, overrides = ARCHS[name]
    card_path = ROOT / "hparams" / "models" / f"{card}.yaml"
    if not card_path.is_file():
        raise FileNotFoundError(f"{name}: expected the model card {card_path}")
    text = DEMO.read_text(encoding="utf-8")
    block = re.compile(r"^model: !include:.*?^separator: !ref <model\[separator\]>\n",
                       re.MULTILINE | re.DOTALL)
    if len(block.findall(text)) != 1:
        raise ValueError(f"{DEMO} has no single 'model: !include ... separator: !ref' block")
    model = (f"model: !include:{card_path}\n"
             "    sample_rate: !ref <sample_rate>\n"
             "    num_sources: !ref <num_sources>\n"
             f"    separator: {json.dumps(overrides)}\n"
             "separator: !ref <model[separator]>\n")
    text = block.sub(lambda _: model, text)
    # the copy lives elsewhere: its other includes (the mixing scenario) by absolute path too
    text = re.sub(r"!include:(\S+)",
                  lambda m: f"!include:{(DEMO.parent / m.group(1)).resolve()}", text)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text.replace(
        "results/GASS/demo/", f"results/GASS/compare_{name}/"), encoding="utf-8")
    return path


def build_separator(name: str) -> torch.nn.Module:
    """The architecture at its demo size (8 kHz, 4 outputs), from its card.

    Arguments
    ---------
    name : str
        A key of :data:`ARCHS`.

    Returns
    -------
    torch.nn.Module
        The separator.

    Example
    -------
    >>> sep = build_separator("tdanet_stft")
    >>> sep.sample_rate, sep.num_sources, round(sum(p.numel() for p in sep.parameters()), -4)
    (8000, 4, 430000)
    """
    card, overrides = ARCHS[name]
    with open(ROOT / "hparams" / "models" / f"{card}.yaml", encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, {"sample_rate": 8000, "num_sources": 4,
                                      "separator": overrides})["separator"]


def step_ms(separator: torch.nn.Module, batch: int = 8, rounds: int = 3, steps: int = 3) -> float:
    """CPU milliseconds of one training step (thread CPU time, minimum over rounds).

    Forward, PIT log-MSE against random targets, backward and an Adam step on ``batch``
    one-second mixtures, with one torch thread.

    Arguments
    ---------
    separator : torch.nn.Module
        The model (trained in place: use a fresh one).
    batch : int
        Mixtures per step.
    rounds, steps : int
        Timed rounds of ``steps`` steps each (after one untimed step).

    Returns
    -------
    float
        Milliseconds per step.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        length = separator.sample_rate
        mix = torch.randn(batch, length, generator=gen)  # [B, T]
        targets = 0.3 * torch.randn(batch, length, separator.num_sources, generator=gen)
        opt = torch.optim.Adam(separator.parameters(), 1e-4)
        separator.train()

        def one() -> None:
            opt.zero_grad(set_to_none=True)
            pit_log_mse(targets, separator(mix), mix).mean().backward()
            opt.step()

        one()
        times = []
        for _ in range(rounds):
            start = time.thread_time()
            for _ in range(steps):
                one()
            times.append((time.thread_time() - start) / steps * 1e3)
        return min(times)
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    """Measures the steps, trains and evaluates every architecture, prints the table.

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
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 2024])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--test-mixtures", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "architectures")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: tabulate the runs already under --out")
    args = parser.parse_args(argv)
    corpus = build_demo_corpus.build("full", sample_rate=8000)
    data = Path(corpus.manifests["train"]).parent
    info = {}
    for name in args.archs:
        sep = build_separator(name)
        info[name] = {"params": sum(p.numel() for p in sep.parameters()),
                      "step_ms": step_ms(sep), "load": os.getloadavg()[0]}
        print(f"{name}: {info[name]['params'] / 1e6:.2f} M parameters, "
              f"{info[name]['step_ms']:.0f} ms per training step", flush=True)
    results = {}
    for name in args.archs:
        config = arch_recipe(name, args.out / "configs")
        for seed in args.seeds:
            out = args.out / "runs" / f"{name}-seed{seed}"
            cmd = [sys.executable, str(RECIPE / "train.py"), str(config),
                   f"--data_folder={data}", f"--output_folder={out}", f"--seed={seed}",
                   f"--number_of_updates={args.updates}",
                   f"--num_test_mixtures={args.test_mixtures}", "--noprogressbar"]
            headline = out / "eval" / "headline.json"
            if args.report_only and not (out / "costs.json").is_file():
                continue  # not run (a missing cell of the table)
            costs = run_recipe(cmd, out, headline, ROOT)
            results[name, seed] = {**json.loads(headline.read_text()), **costs}
            print(f"done: {name}, seed {seed}: "
                  f"{fmt(results[name, seed].get('model_si_snri_2src'))} dB", flush=True)
    print(f"\nGASS-mini corpus (full tier, 8 kHz), demo.yaml training settings, {args.updates} "
          f"updates per run, seeds {' / '.join(map(str, args.seeds))}; test split: "
          f"{args.test_mixtures} held-out mixtures of 1-4 sources. SI-SNRi in dB (2-source "
          f"mixtures; pair columns: mean of the seeds). Step: CPU ms of one training step "
          f"(batch 8, 1 s, 1 thread). Ratios against {REFERENCE}. {os.cpu_count()} cores.\n")
    head = ["model", "params", "step ms", "step / ref", "CPU min (runs)", "load",
            "2-src SI-SNRi (seeds)", "mean", "mean / ref", "% of IRM", *PAIRS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))

    def seeds_of(name: str) -> list[int]:
        return [s for s in args.seeds if (name, s) in results]

    def mean(name: str, key: str) -> float | None:
        values = [results[name, s].get(key) for s in seeds_of(name)]
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None

    ref_mean = mean(REFERENCE, "model_si_snri_2src") if REFERENCE in args.archs else None
    ref_ms = info[REFERENCE]["step_ms"] if REFERENCE in info else None
    irm = None
    for name in args.archs:
        if not seeds_of(name):
            continue
        per_seed = [fmt(results[name, s].get("model_si_snri_2src")) if (name, s) in results
                    else "not run" for s in args.seeds]
        m = mean(name, "model_si_snri_2src")
        irm = mean(name, "irm_si_snri_2src") or irm
        cpu = sum(results[name, s]["cpu_minutes"] for s in seeds_of(name))
        load = statistics.fmean(results[name, s]["load"] for s in seeds_of(name))
        cells = [name, f"{info[name]['params'] / 1e6:.2f} M", f"{info[name]['step_ms']:.0f}",
                 f"{info[name]['step_ms'] / ref_ms:.2f}x" if ref_ms else "",
                 fmt(cpu, 1), fmt(load, 1), " / ".join(per_seed), fmt(m),
                 f"{m / ref_mean:.2f}x" if m is not None and ref_mean else "",
                 fmt(100 * m / irm, 0) if m is not None and irm else ""]
        cells += [fmt(mean(name, f"model_si_snri_{p}")) for p in PAIRS]
        print("| " + " | ".join(cells) + " |")
    if irm is not None:
        last = next(name for name in reversed(args.archs) if seeds_of(name))
        print("| IRM oracle | | | | | | | " + fmt(irm) + " | | 100 | "
              + " | ".join(fmt(mean(last, f"irm_si_snri_{p}")) for p in PAIRS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
