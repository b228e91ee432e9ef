"""Benchmark of file separation: peak memory against file length, and real-time factor on CPU.

Compared with what a SpeechBrain user does today (``SepformerSeparation.separate_file``): read the
whole file, resample it, run the separator on all of it, resample the outputs back and write them
("whole file" below). gass streams the file in chunks (``GASSSeparator.separate_to_files`` with an
output folder: 10 s chunks, 25 % overlap, aligned and overlap-added).

1. Peak RSS of a 1-minute and a 10-minute file (44.1 kHz stereo PCM_16, downmixed): target
   10 min / 1 min ≤ 1.2×. The separator here is a stand-in (``ScaledCopies`` of
   ``tests/doubles.py``: a gain per output, no network), so that the 10-minute runs take
   seconds; a real model adds the same per-chunk activation memory to every streamed run,
   independent of the length. The same comparison with
   the first card of ``--cards`` follows unless ``--quick`` (its whole-file run on 10 minutes is
   not attempted: a network on 10 minutes at once needs more memory than a shared machine has).
2. Real-time factor of real model cards (random weights: speed does not depend on them) on a
   30-second 44.1 kHz stereo file, streamed vs whole file.

Every measurement runs in a fresh child process (so ``ru_maxrss`` is that run's peak) with one
torch thread; times are the child's CPU time (user + system) from loading the audio to the last
write, so load from other processes on a shared machine does not inflate them; RTF = CPU seconds
per second of audio (below 1: faster than real time on one core).

Run: ``.venv/bin/python benchmarks/bench_inference.py [--quick] [--cards tdanet_stft ...]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
FILE_RATE = 44100
STANDIN_GAINS = [0.6, 0.3, 0.1, 0.0]  # the stand-in separator's outputs: g_s * mix, at 16 kHz


def register_standin() -> type:
    """Imports the stand-in separator (``tests/doubles.py``), which registers it for loading.

    Returns
    -------
    type
        ``ScaledCopies``.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.doubles import ScaledCopies

    return ScaledCopies


def write_test_file(path: Path, seconds: float, seed: int = 0) -> None:
    """Writes ``seconds`` of 44.1 kHz stereo PCM_16 (tones + noise) block by block.

    Arguments
    ---------
    path : pathlib.Path
        Output wav.
    seconds : float
        Duration.
    seed : int
        Noise seed.
    """
    rng = np.random.default_rng(seed)
    block = FILE_RATE * 10
    total = int(seconds * FILE_RATE)
    with sf.SoundFile(path, "w", FILE_RATE, 2, "PCM_16") as f:
        for start in range(0, total, block):
            t = (start + np.arange(min(block, total - start))) / FILE_RATE
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.1 * t)) / 2
            noise = 0.05 * rng.standard_normal((t.size, 2))
            f.write(tone[:, None] + noise)


def child(spec: dict) -> dict:
    """Runs one measurement in this (fresh) process and returns its figures.

    Arguments
    ---------
    spec : dict
        ``method`` ("gass" or "whole"), ``model`` (model folder), ``input``, ``out``.

    Returns
    -------
    dict
        ``cpu_s``, ``wall_s``, ``peak_rss_mb``, ``loaded_rss_mb`` (after imports and model load).
    """
    import psutil
    import torch
    import torchaudio

    from gass_modules.inference.separator import GASSSeparator

    register_standin()
    torch.set_num_threads(1)
    sep = GASSSeparator.from_hparams(source=spec["model"], run_opts={"device": "cpu"})
    sep.separate_batch(torch.zeros(1, 4096))  # warm-up: lazy inits out of the timing
    loaded = psutil.Process().memory_info().rss / 2**20
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if spec["method"] == "gass":
        sep.separate_to_files(spec["input"], out_dir=out, keep_silent=True, overwrite=True)
    else:  # what SepformerSeparation.separate_file does: everything in memory
        audio, rate = sf.read(spec["input"], dtype="float32")  # [T, C]
        mix = torch.from_numpy(audio).mean(1)[None]  # [1, T]
        mix = torchaudio.functional.resample(mix, rate, sep.sample_rate)
        with torch.no_grad():
            est = sep.mods.separator(mix)  # [1, T', S]
        est = torchaudio.functional.resample(est[0].T.contiguous(), sep.sample_rate, rate)
        for s, stem in enumerate(est[:, : audio.shape[0]]):
            sf.write(out / f"whole_s{s + 1}.wav", stem.numpy(), rate, subtype="PCM_16")
    return {
        "cpu_s": time.process_time() - cpu0,
        "wall_s": time.perf_counter() - wall0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loaded_rss_mb": loaded,
    }


def measure(method: str, model: Path, audio: Path, work: Path) -> dict:
    """Runs :func:`child` in a fresh interpreter.

    Arguments
    ---------
    method : str
        "gass" or "whole".
    model : pathlib.Path
        Model folder.
    audio : pathlib.Path
        Input file.
    work : pathlib.Path
        Scratch folder for the outputs.

    Returns
    -------
    dict
        The child's figures.
    """
    spec = {"method": method, "model": str(model), "input": str(audio),
            "out": str(work / f"out_{method}")}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_folder(card: str, work: Path) -> tuple[Path, int]:
    """A model folder for a card name (or the stand-in) and its parameter count.

    Arguments
    ---------
    card : str
        ``standin`` or a card name in hparams/models.
    work : pathlib.Path
        Where to write the folder.

    Returns
    -------
    (pathlib.Path, int)
        The folder and the number of parameters.
    """
    import torch
    from hyperpyyaml import load_hyperpyyaml

    from gass_modules.model_folder.folder import save_model_folder

    torch.manual_seed(0)
    if card == "standin":
        model = register_standin()(STANDIN_GAINS, sample_rate=16000)
    else:
        model = load_hyperpyyaml((ROOT / "hparams" / "models" / f"{card}.yaml").read_text())[
            "separator"]
    folder = save_model_folder(model, work / f"model_{card}", overwrite=True)
    return folder, sum(p.numel() for p in model.parameters())


def memory_rows(card: str, durations: tuple[float, float], work: Path,
                whole_long: bool = True) -> list[str]:
    """Markdown rows: peak RSS of gass and whole-file runs at two durations, with ratios.

    Arguments
    ---------
    card : str
        Model card name or ``standin``.
    durations : (float, float)
        Short and long durations in seconds.
    work : pathlib.Path
        Scratch folder.
    whole_long : bool
        Also run the whole-file method on the long file (a real network on 10 minutes at once
        needs more memory than a shared machine should give it).

    Returns
    -------
    list of str
        Table rows.
    """
    folder, _ = make_folder(card, work)
    files = {}
    for seconds in durations:
        files[seconds] = work / f"in_{seconds:g}s.wav"
        if not files[seconds].exists():
            write_test_file(files[seconds], seconds)
    rows = []
    for method, label in (("gass", "gass streamed"), ("whole", "whole file")):
        peaks, cells = [], []
        for seconds in durations:
            if method == "whole" and seconds == durations[1] and not whole_long:
                cells.append("not run")
                continue
            r = measure(method, folder, files[seconds], work)
            peaks.append(r["peak_rss_mb"])
            cells.append(f"{r['peak_rss_mb']:.0f} MB (+{r['peak_rss_mb'] - r['loaded_rss_mb']:.0f}"
                         f"), RTF {r['cpu_s'] / seconds:.3f}")
            print(f"  {card} {label} {seconds:g}s: {r}", file=sys.stderr)
        ratio = f"{peaks[1] / peaks[0]:.2f}×" if len(peaks) == 2 else "—"
        rows.append(f"| {card} | {label} | {cells[0]} | {cells[1]} | {ratio} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints markdown tables.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true",
                        help="stand-in memory table and the smallest card's RTF only")
    parser.add_argument("--cards", nargs="+",
                        default=["bsrnn_small", "tdanet_stft", "tdanet_wav"],
                        help="model cards for the real-time factor table")
    parser.add_argument("--rtf-seconds", type=float, default=30.0,
                        help="duration of the file for the RTF table")
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return
    import torch

    cards = args.cards[:1] if args.quick else args.cards
    print(f"bench_inference: {platform.machine()}, {torch.get_num_threads()} CPUs visible, "
          "1 torch thread per run; RTF = CPU seconds per second of audio; peak RSS of a fresh "
          "process (+ growth over the RSS after imports and model load)\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("Peak RSS, 44.1 kHz stereo PCM_16 file, downmixed, 16 kHz model, 4 outputs:\n")
        print("| separator | method | short file | long file | long / short |")
        print("|---|---|---|---|---|")
        for row in memory_rows("standin", (60.0, 600.0), work):
            print(row)
        if not args.quick:
            for row in memory_rows(args.cards[0], (60.0, 600.0), work, whole_long=False):
                print(row)
        print("\n(1-minute vs 10-minute file)\n")
        print(f"Real-time factor, {args.rtf_seconds:g} s 44.1 kHz stereo file (random weights):\n")
        print("| card | parameters | gass streamed RTF | whole file RTF | gass / whole | "
              "gass peak RSS | whole-file peak RSS |")
        print("|---|---|---|---|---|---|---|")
        audio = work / f"rtf_{args.rtf_seconds:g}s.wav"
        write_test_file(audio, args.rtf_seconds, seed=1)
        for card in cards:
            folder, params = make_folder(card, work)
            gass = measure("gass", folder, audio, work)
            whole = measure("whole", folder, audio, work)
            print(f"  {card}: gass {gass}, whole {whole}", file=sys.stderr)
            print(f"| {card} | {params / 1e6:.1f} M | {gass['cpu_s'] / args.rtf_seconds:.3f} | "
                  f"{whole['cpu_s'] / args.rtf_seconds:.3f} | "
                  f"{gass['cpu_s'] / whole['cpu_s']:.2f}× | {gass['peak_rss_mb']:.0f} MB | "
                  f"{whole['peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
