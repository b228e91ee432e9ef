"""Benchmark of the GASS mixer and of columnar manifests.

1. Mixtures per second on one core (one process, one torch thread, as in a dataloader worker):
   4 sources, 6 s, 16 kHz, 16-bit wav files on disk (warm page cache), for ``GASSMixer``
   (partial reads) against the same mixer reading each file whole and then cropping (what
   ``soundfile.read(path)`` / SpeechBrain's ``read_audio(path)`` without start/stop does), on
   short (10 s) and long (5 min) source files; plus 44.1 kHz sources (resampling cost).
2. Manifest memory and draw cost at 10 k, 100 k and 2 M rows (synthetic paths, nothing read),
   against a list of dicts (``csv.DictReader`` rows) grouped by category, the O(1)-draw layout a
   user would write, and against filtering the list at each draw.

Usage: ``.venv/bin/python benchmarks/bench_mixer.py`` (about 3 minutes, ≈2 GB of memory at 2 M
rows for the list-of-dicts baseline; tracemalloc slows the builds). Prints markdown tables.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import gc
import io
import platform
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf
import torch

from gass_modules.dataio.manifest import Manifest
from gass_modules.dataio.mixer import GASSMixer, mixture_rng, resample

CATEGORIES = ("speech", "music", "sfx")


class FullDecodeMixer(GASSMixer):
    """The baseline: the same mixer, but every crop decodes the whole file first."""

    def read_crop(self, clip: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """Reads the whole file, downmixes and resamples it, then takes a random crop.

        Arguments
        ---------
        clip : int
            Manifest row.
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        tuple
            Crop, its start frame and its output offset (as ``GASSMixer.read_crop``).
        """
        sc = self.scenario
        data, rate = sf.read(self.manifest.paths[clip], dtype="float32", always_2d=True)
        x = data.mean(axis=1, dtype=np.float32)
        if rate != sc.sample_rate:
            x = resample(torch.from_numpy(x), rate, sc.sample_rate).numpy()
        n = sc.num_samples
        if len(x) <= n:
            return x, 0, int(rng.integers(n - len(x) + 1))
        start = int(rng.integers(len(x) - n + 1))
        return np.ascontiguousarray(x[start:start + n]), start, 0


def write_pool(folder: Path, count: int, seconds: float, rate: int) -> Manifest:
    """Writes ``count`` 16-bit wav files of amplitude-modulated noise and lists them."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        n = int(seconds * rate)
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * np.arange(n) / rate)
        x = (rng.uniform(-0.3, 0.3, n) * envelope).astype(np.float32)
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, x, rate, subtype="PCM_16")
        cat = CATEGORIES[i % 3]
        rows.append((f"clip{i:04d}", str(path), n, rate, 1, cat, f"g{i}"))
    return Manifest(*map(list, zip(*rows)))


def mixtures_per_second(mixer: GASSMixer, count: int) -> float:
    """Mixtures per CPU-second of this process over ``count`` draws (after a warm-up).

    CPU time (user + system, so file reads count) rather than wall time: per core, and not
    inflated by other processes competing for the cores.
    """
    for i in range(3):
        mixer.draw(mixture_rng(99, i))
    t0 = time.process_time()
    for i in range(count):
        mixer.draw(mixture_rng(0, i))
    return count / (time.process_time() - t0)


def bench_throughput() -> str:
    """Table 1: mixer vs full-decode-then-crop."""
    scenario = {"duration": 6.0, "num_sources_probs": [0, 0, 0, 1], "background_prob": 0.3}
    lines = ["| source files | GASSMixer (partial reads) | full decode, then crop | ratio |",
             "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        cases = (("60 × 10 s, 16 kHz", 60, 10.0, 16000, 600, 200),
                 ("12 × 5 min, 16 kHz", 12, 300.0, 16000, 600, 20),
                 ("24 × 30 s, 44.1 kHz (resampled)", 24, 30.0, 44100, 60, 12))
        for name, count, seconds, rate, n_mixer, n_full in cases:
            folder = Path(tmp) / f"{count}-{rate}"
            folder.mkdir()
            manifest = write_pool(folder, count, seconds, rate)
            for p in manifest.paths.tolist():  # warm the page cache for both readers
                Path(p).read_bytes()
            fast = mixtures_per_second(GASSMixer(manifest, scenario), n_mixer)
            slow = mixtures_per_second(FullDecodeMixer(manifest, scenario), n_full)
            lines.append(f"| {name} | {fast:.0f} mixtures/s | {slow:.1f} mixtures/s "
                         f"| {fast / slow:.1f}× |")
    return "\n".join(lines)


def synthetic_columns(n: int, seed: int = 0) -> dict[str, list]:
    """Columns of an ``n``-row manifest with realistic ids, paths and groups (20 clips/group)."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, n)
    cats = [CATEGORIES[k] for k in c]
    groups = [f"{cats[i]}/spk{i // 20:07d}" for i in range(n)]
    return {
        "ids": [f"{groups[i]}/utt{i:08d}" for i in range(n)],
        "paths": [f"/data/gass/{groups[i]}/utt{i:08d}.flac" for i in range(n)],
        "frames": rng.integers(16000, 16000 * 30, n).tolist(),
        "rates": rng.choice([16000, 44100, 48000], n).tolist(),
        "channels": rng.integers(1, 3, n).tolist(),
        "cats": cats, "groups": groups,
    }


def retained(build):
    """Runs ``build()`` and returns its result and the bytes it keeps allocated (tracemalloc
    counts Python objects and numpy buffers; RSS deltas are blurred by allocator reuse)."""
    gc.collect()
    tracemalloc.start()
    result = build()
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return result, kept


def draw_cost_columnar(manifest: Manifest, draws: int = 20000) -> float:
    """CPU µs for one mixture's clip draws (4 categories drawn, 4 clips drawn)."""
    rng = np.random.default_rng(0)
    t0 = time.process_time()
    for _ in range(draws):
        for _ in range(4):
            manifest.draw(int(rng.random() * 3), rng)
    return (time.process_time() - t0) / draws * 1e6


def as_csv_text(cols: dict[str, list]) -> io.StringIO:
    """The manifest csv a user would read with ``csv.DictReader`` (kept in memory)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["ID", "duration", "wav", "frames", "sample_rate", "channels", "category",
                     "group"])
    for i in range(len(cols["ids"])):
        writer.writerow([cols["ids"][i], f"{cols['frames'][i] / cols['rates'][i]:.6g}",
                         cols["paths"][i], cols["frames"][i], cols["rates"][i],
                         cols["channels"][i], cols["cats"][i], cols["groups"][i]])
    text.seek(0)
    return text


def bench_manifest() -> str:
    """Table 2: memory per clip and draw cost vs manifest size."""
    lines = ["| rows | Manifest bytes/clip (nbytes) | Manifest bytes/clip (tracemalloc) | list of "
             "dicts bytes/clip (tracemalloc) | memory ratio | Manifest draw µs/mixture | "
             "dict-of-lists draw µs/mixture | filter-per-draw µs/mixture |", "|---" * 8 + "|"]
    for n in (10_000, 100_000, 2_000_000):
        cols = synthetic_columns(n)

        def build_manifest(cols=cols):
            manifest = Manifest(cols["ids"], cols["paths"], cols["frames"], cols["rates"],
                                cols["channels"], cols["cats"], cols["groups"])
            manifest.indices_of(0)  # the per-category index is part of the footprint
            return manifest

        manifest, kept = retained(build_manifest)
        columnar_kept = kept / n
        columnar_cost = draw_cost_columnar(manifest)
        arrays = manifest.nbytes / n
        del manifest
        text = as_csv_text(cols)
        del cols

        def build_dicts(text=text):
            rows = list(csv.DictReader(text))
            return rows, {c: [r for r in rows if r["category"] == c] for c in CATEGORIES}

        (rows, by_cat), kept = retained(build_dicts)
        dict_kept = kept / n
        del text
        rnd = random.Random(0)
        t0 = time.process_time()
        for _ in range(20000):
            for _ in range(4):
                rnd.choice(by_cat[CATEGORIES[rnd.randrange(3)]])
        dict_cost = (time.process_time() - t0) / 20000 * 1e6
        reps = max(2, 200_000 // n)
        t0 = time.process_time()
        for _ in range(reps):
            for _ in range(4):
                c = CATEGORIES[rnd.randrange(3)]
                rnd.choice([r for r in rows if r["category"] == c])
        filter_cost = (time.process_time() - t0) / reps * 1e6
        del rows, by_cat
        lines.append(f"| {n:,} | {arrays:.0f} | {columnar_kept:.0f} | {dict_kept:.0f} | "
                     f"{dict_kept / columnar_kept:.1f}× smaller | {columnar_cost:.1f} | "
                     f"{dict_cost:.1f} | {filter_cost:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Runs both benchmarks and prints markdown tables."""
    torch.set_num_threads(1)
    cpu = platform.processor() or platform.machine()
    print(f"bench_mixer: 1 process, 1 torch thread ({psutil.cpu_count()} CPUs, {cpu}); "
          "times are CPU time of this process\n")
    print("Mixtures per CPU-second (4 sources, 6 s, 16 kHz output, wav on disk):\n")
    print(bench_throughput())
    print("\nManifest memory and draw cost (synthetic rows; bytes kept after building, by "
          "tracemalloc; the list of dicts is csv.DictReader's output, grouped by category):\n")
    print(bench_manifest())


if __name__ == "__main__":
    main()
