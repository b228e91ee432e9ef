"""Benchmark: how often GASSFrontEnd picks the speech stream, on the demo corpus.

Mixtures come from the GASS mixer (``gass_modules.dataio.mixer``) on the demo corpus
(``tools/build_demo_corpus.py``): one speech source plus 1-3 music stems or sound events, 4 s at
the corpus rate; each interferer is then rescaled to -6..+6 dB relative to the speech (RMS), so
the speech is not always the loudest source. Streams are ranked by three criteria:

* ``intonation``: the front end's criterion (``IntonationScore``, activity threshold -20 dB);
* ``loudest``: the most energetic stream (what ``separate_file`` lists first);
* ``random``: a uniformly random active stream (its expected accuracy, computed exactly).

Two settings:

1. **oracle sources**: the mixer's own targets stand for a perfect separator (all splits of the
   corpus: the criterion is not trained on anything); a pick is right when it is the speech slot;
2. **separated** (with a model folder or a bundled model's name; default ``gass-mini``, the
   separator bundled with gass):
   mixtures of the *test* split (never seen by the separator) through ``GASSSeparator``; a pick
   is right when it is the output with the best SI-SNR against the speech.

It also times the scorer against the separator (CPU seconds per second of audio).

Usage::

    .venv/bin/python benchmarks/bench_asr_frontend.py [--corpus DIR] [--separator_folder DIR]
        [--mixtures 300] [--seed 0]

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from pathlib import Path

import torch

from gass_modules.asr.frontend import rank_streams
from gass_modules.asr.intonation import IntonationScore
from gass_modules.audio import DEFAULT_THRESHOLD_DB, source_activity
from gass_modules.dataio.manifest import load_manifest
from gass_modules.dataio.mixer import GASSMixer, mixture_rng
from gass_modules.inference.separator import GASSSeparator
from gass_modules.metrics import si_snr
from gass_modules.model_folder.pretrained import model_source

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("GASS_CACHE", Path.home() / ".cache" / "gass"))


def scenario(sample_rate: int) -> dict:
    """One speech source (foreground) and 1-3 non-speech backgrounds.

    Arguments
    ---------
    sample_rate : int
        The corpus rate.

    Returns
    -------
    dict
        Scenario keys for ``GASSMixer``.
    """
    return {"sample_rate": sample_rate, "duration": 4.0, "max_sources": 4,
            "num_sources_probs": [0.0, 1 / 3, 1 / 3, 1 / 3], "background_prob": 1.0,
            "foreground_categories": {"speech": 1.0},
            "background_categories": {"music_drums": 1 / 3, "music_bass": 1 / 3,
                                      "music_other": 1 / 3, "sfx": 1.0},
            "foreground_gain_db": [0.0, 0.0], "background_gain_db": [-10.0, 0.0]}


def draw_targets(mixer: GASSMixer, seed: int, setting: int, index: int) -> torch.Tensor:
    """One mixture's targets ``[T, 4]`` (speech in slot 0), interferers at -6..+6 dB re speech.

    Arguments
    ---------
    mixer : GASSMixer
        Draws the sources (:func:`scenario`).
    seed : int
        Benchmark seed.
    setting : int
        Stream key (0: oracle sources, 1: separated).
    index : int
        Mixture index.

    Returns
    -------
    torch.Tensor
        ``[T, 4]`` targets; empty slots are zero.
    """
    rng = mixture_rng(seed, setting, index)
    draw = mixer.draw(rng)
    targets = torch.from_numpy(draw.targets).double()  # [T, 4]
    speech_rms = targets[:, 0].pow(2).mean().sqrt()
    for slot in range(1, draw.num_sources):
        rms = targets[:, slot].pow(2).mean().sqrt().clamp_min(1e-12)
        targets[:, slot] *= speech_rms / rms * 10 ** (rng.uniform(-6.0, 6.0) / 20)
    return targets.float(), draw


def picks(streams: torch.Tensor, mix: torch.Tensor,
          score: IntonationScore) -> dict[str, torch.Tensor]:
    """The stream each criterion picks (``random`` is scored exactly from ``active``).

    Arguments
    ---------
    streams : torch.Tensor
        ``[B, T, S]`` candidate streams.
    mix : torch.Tensor
        ``[B, T]`` mixtures (for the activity threshold).
    score : IntonationScore
        The scorer.

    Returns
    -------
    dict
        ``intonation`` and ``loudest``: ``[B]`` indices; ``active``: ``[B, S]`` bool.
    """
    batch, length, sources = streams.shape
    energy_db, active = source_activity(mix, streams, DEFAULT_THRESHOLD_DB)
    flat = streams.transpose(1, 2).reshape(batch * sources, length)
    values = score(flat).reshape(batch, sources)
    intonation = rank_streams(values, energy_db, active)[:, 0]
    loudest = rank_streams(torch.zeros_like(values), energy_db, active)[:, 0]
    return {"intonation": intonation, "loudest": loudest, "active": active}


def oracle_setting(corpus: Path, count: int, seed: int, score: IntonationScore) -> tuple:
    """Picks on the mixer's targets; returns accuracies and the categories that beat speech."""
    manifest = load_manifest([corpus / f"{s}.csv" for s in ("train", "valid", "test")])
    rate = int(manifest.sample_rates[0])
    mixer = GASSMixer(manifest, scenario(rate))
    right = Counter()
    expected_random = 0.0
    by_sources: dict[int, Counter] = {}
    winners = Counter()
    for start in range(0, count, 25):
        pairs = [draw_targets(mixer, seed, 0, k) for k in range(start, min(count, start + 25))]
        targets = torch.stack([t for t, _ in pairs])  # [B, T, 4]
        draws = [d for _, d in pairs]
        mix = targets.sum(-1)
        out = picks(targets, mix, score)
        for b, d in enumerate(draws):
            n = d.num_sources
            tally = by_sources.setdefault(n, Counter())
            tally["n"] += 1
            for name in ("intonation", "loudest"):
                ok = int(out[name][b]) == 0
                right[name] += ok
                tally[name] += ok
            share = 1.0 / int(out["active"][b].sum()) if out["active"][b, 0] else 0.0
            expected_random += share
            tally["random"] += share
            if int(out["intonation"][b]) != 0:
                winners[d.categories[int(out["intonation"][b])]] += 1
    right["random"] = expected_random
    return right, by_sources, winners, rate


def separated_setting(corpus: Path, folder: Path, count: int, seed: int,
                      score: IntonationScore) -> tuple:
    """Picks on a GASS model's outputs for test-split mixtures."""
    manifest = load_manifest(corpus / "test.csv")
    rate = int(manifest.sample_rates[0])
    mixer = GASSMixer(manifest, scenario(rate))
    separator = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    right, snr_sum = Counter(), Counter()
    sep_seconds, audio_seconds = 0.0, 0.0
    for start in range(0, count, 10):
        targets = torch.stack([draw_targets(mixer, seed, 1, k)[0]
                               for k in range(start, min(count, start + 10))])  # [B, T, 4]
        mix = targets.sum(-1)
        t0 = time.process_time()
        est = separator.separate_batch(mix, sample_rate=rate)  # [B, T, S]
        sep_seconds += time.process_time() - t0
        audio_seconds += mix.numel() / rate
        speech = targets[..., :1].expand_as(est)
        match = si_snr(speech, est)  # [B, S]
        best = match.argmax(-1)
        out = picks(est, mix, score)
        for b in range(targets.shape[0]):
            for name in ("intonation", "loudest"):
                pick = int(out[name][b])
                right[name] += pick == int(best[b])
                snr_sum[name] += float(match[b, pick])
            active = out["active"][b].nonzero()[:, 0].tolist() or list(range(est.shape[-1]))
            right["random"] += (int(best[b]) in active) / len(active)
            snr_sum["random"] += float(match[b, active].mean())
            snr_sum["oracle pick"] += float(match[b, best[b]])
            snr_sum["mixture"] += float(si_snr(targets[b:b + 1, :, :1], mix[b:b + 1, :, None]))
    return right, snr_sum, sep_seconds / audio_seconds, separator


def main(argv: list[str] | None = None) -> None:
    """Runs both settings and prints the markdown tables.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CACHE / "demo_corpus" / "full-16000")
    parser.add_argument("--separator_folder", default="gass-mini",
                        help="model folder or bundled model name (default: gass-mini)")
    parser.add_argument("--mixtures", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.corpus / "test.csv").is_file():
        raise SystemExit(f"no demo corpus at {args.corpus}: build it with .venv/bin/python "
                         "tools/build_demo_corpus.py --subset full")
    torch.set_num_threads(1)
    print(f"bench_asr_frontend: 1 torch thread ({os.cpu_count()} CPUs, {platform.machine()}); "
          f"corpus {args.corpus}, {args.mixtures} mixtures of 4 s per setting\n")

    probe = load_manifest(args.corpus / "test.csv")
    score = IntonationScore(sample_rate=int(probe.sample_rates[0]))
    right, by_sources, winners, rate = oracle_setting(args.corpus, args.mixtures, args.seed,
                                                      score)
    n = args.mixtures
    print(f"1. Oracle sources (the mixer's targets, {rate} Hz): speech stream picked\n")
    print("| criterion | accuracy | vs random | 2 sources | 3 sources | 4 sources |")
    print("|---|---|---|---|---|---|")
    for name in ("intonation", "loudest", "random"):
        cells = [f"{100 * by_sources[k][name] / by_sources[k]['n']:.1f} %"
                 if k in by_sources else "-" for k in (2, 3, 4)]
        print(f"| {name} | {100 * right[name] / n:.1f} % | {right[name] / right['random']:.2f}× "
              f"| " + " | ".join(cells) + " |")
    print(f"\nWhen intonation misses, the stream it picks instead: {dict(winners)}\n")

    # cost of the scorer alone
    x = torch.randn(4, 10 * rate)
    t0 = time.process_time()
    score(x)
    score_cost = (time.process_time() - t0) / 40.0

    try:
        folder = Path(model_source(args.separator_folder))
    except FileNotFoundError:
        folder = Path(args.separator_folder)
    if folder.is_dir():
        folder = folder.resolve()
        right, snr_sum, sep_cost, separator = separated_setting(args.corpus, folder,
                                                                args.mixtures, args.seed, score)
        print(f"2. Separated by {folder} ({type(separator.mods.separator).__name__}, "
              f"{separator.sample_rate} Hz, {separator.num_sources} outputs), test split: "
              "right = the output with the best SI-SNR against the speech\n")
        print("| criterion | accuracy | vs random | SI-SNR of the picked stream (dB) |")
        print("|---|---|---|---|")
        for name in ("intonation", "loudest", "random"):
            print(f"| {name} | {100 * right[name] / n:.1f} % | "
                  f"{right[name] / right['random']:.2f}× | {snr_sum[name] / n:.1f} |")
        print(f"| (oracle pick) | 100 % | - | {snr_sum['oracle pick'] / n:.1f} |")
        print(f"| (mixture itself) | - | - | {snr_sum['mixture'] / n:.1f} |")
        print(f"\nCPU seconds per second of audio: intonation score {score_cost * 1000:.1f} ms "
              f"(per stream), separation {sep_cost * 1000:.1f} ms: scoring 4 streams costs "
              f"{400 * score_cost / sep_cost:.1f} % of the separation.")
    else:
        print(f"2. Separated: skipped (no model folder at {args.separator_folder}; run make demo "
              "or pass --separator_folder)")
        print(f"\nCPU seconds per second of audio: intonation score {score_cost * 1000:.1f} ms "
              "per stream.")


if __name__ == "__main__":
    main()
