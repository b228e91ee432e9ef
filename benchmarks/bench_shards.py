"""Benchmark of the shard source (WebDataset shards) against the file mixer.

1. Mixtures per CPU-second of one thread (as a dataloader worker) drawn from shards
   (``ShardMixer``: tar streams, per-category buffers of crops decoded at insertion)
   and from files (``GASSMixer``: partial reads of one file per source), with the same scenario
   (4 sources, 6 s): 16-kHz sources at 16 kHz, 44.1-kHz sources at 44.1 kHz (no resampling)
   and 44.1-kHz sources resampled to 16 kHz. Pools of 10-s 16-bit clips written here. Shards
   also with two crops per clip read (``crops_per_clip=2``) and with one in-batch remix per
   batch of 8 (``remix_batch``, on the CPU here).
2. Shard read MB/s per CPU-second over local shards, page cache warm: WebDataset's stream
   reader (``webdataset.tarfile_to_samples``) and the shard source's (``shard_samples``:
   tarfile's random-access mode for seekable shards).
3. Memory of one loader worker (USS, pages not shared with the parent) with a 1,000-clip buffer,
   on the GASS-mini demo corpus (``full-8000``: 3,074 real clips, ≈5.8 s at 8 kHz) written as
   FLAC shards, and on synthetic 10-s 16-kHz clips.
4. Start-up of one rank on a simulated 15,000-hour index (2 M clips of 27 s in 5,000 shards,
   metadata only, no tar exists): a fresh process loads ``index.json``, builds the stream and
   plans its first pass as rank 3 of 8 ranks with 4 workers; wall time and memory.

Thread CPU time is used for rates (the machine is shared; best of three interleaved rounds);
the load average is printed.

Usage: ``.venv/bin/python benchmarks/bench_shards.py`` (about 3 minutes; ``--quick`` for a
smoke run). Prints markdown tables.

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
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gass_modules.dataio.manifest import Manifest, load_manifest  # noqa: E402
from gass_modules.dataio.mixer import GASSMixer, mixture_rng  # noqa: E402
from gass_modules.dataio.scenario import Scenario  # noqa: E402
from gass_modules.dataio.shard_index import ShardIndex, ShardInfo  # noqa: E402
from gass_modules.dataio.shard_loader import release_free_memory, remix_batch  # noqa: E402
from gass_modules.dataio.shard_source import ShardMixer, ShardMixtureStream  # noqa: E402
from gass_modules.dataio.shards import shard_samples, write_shards  # noqa: E402

CATEGORIES = ("speech", "music", "sfx")
DEMO = Path.home() / ".cache" / "gass" / "demo_corpus" / "full-8000" / "train.csv"


def write_pool(folder: Path, count: int, seconds: float, rate: int) -> Manifest:
    """``count`` 16-bit wav files of amplitude-modulated noise (as bench_mixer), listed."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        n = int(seconds * rate)
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * np.arange(n) / rate)
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, (rng.uniform(-0.3, 0.3, n) * envelope).astype(np.float32), rate,
                 subtype="PCM_16")
        rows.append((f"clip{i:04d}", str(path), n, rate, 1, CATEGORIES[i % 3], f"g{i}"))
    return Manifest(*map(list, zip(*rows)))


def rate_of(draw, count: int) -> float:
    """Draws per thread-CPU-second over ``count`` draws, after 3 warm-up draws."""
    for i in range(3):
        draw(mixture_rng(99, i))
    t0 = time.thread_time()
    for i in range(count):
        draw(mixture_rng(0, i))
    return count / (time.thread_time() - t0)


def remix_rate(mixer: ShardMixer, count: int, batch: int = 8) -> float:
    """Mixtures per thread-CPU-second when each batch of ``batch`` draws is followed by one
    in-batch remix (``shard_remix: 1``: twice the mixtures per byte read). Stacking the
    batch is collation, which both paths pay, and is not timed."""
    spent, done = 0.0, 0
    for b in range(max(1, count // batch)):
        t0 = time.thread_time()
        ms = [mixer.draw(mixture_rng(1, b, i)) for i in range(batch)]
        spent += time.thread_time() - t0
        targets = torch.from_numpy(np.stack([m.targets for m in ms]))  # [B, T, S]
        t0 = time.thread_time()
        remix_batch(targets, [m.categories for m in ms], torch.Generator().manual_seed(b))
        spent += time.thread_time() - t0
        done += 2 * batch
    return done / spent


def bench_throughput(tmp: Path, quick: bool) -> str:
    """Table 1: mixtures/s per core, shards vs files."""
    lines = ["| sources → output | files (GASSMixer) | shards (ShardMixer) | shards / files | "
             "shards, 2 crops per clip | / files | shards + remix 1 | / files |",
             "|---|---|---|---|---|---|---|---|"]
    cases = (("16 kHz → 16 kHz", 16000, 16000, 400), ("44.1 kHz → 44.1 kHz", 44100, 44100, 150),
             ("44.1 kHz → 16 kHz (resampled)", 44100, 16000, 40))
    for name, src, out, n in cases:
        n = max(10, n // 10) if quick else n
        folder = tmp / f"pool-{src}"
        manifest = write_pool(folder / "wav", 60, 10.0, src) if not (folder / "wav").exists() \
            else _pool(folder / "wav", src)
        if not (folder / "shards" / "index.json").exists():
            write_shards(manifest, folder / "shards", max_bytes=64_000_000)
        for p in manifest.paths.tolist():
            Path(p).read_bytes()  # warm page cache for both
        scenario = Scenario(sample_rate=out, duration=6.0, num_sources_probs=[0, 0, 0, 1])
        file_mixer = GASSMixer(manifest, scenario)
        shard_mixer = ShardMixer(ShardIndex.load(folder / "shards"), scenario, buffer_size=30)
        reuse_mixer = ShardMixer(ShardIndex.load(folder / "shards"), scenario, buffer_size=30,
                                 crops_per_clip=2)
        files = shards = reuse = remixed = 0.0
        for _ in range(3):  # best of three rounds, interleaved (a shared machine)
            files = max(files, rate_of(file_mixer.draw, n))
            shards = max(shards, rate_of(shard_mixer.draw, n))
            reuse = max(reuse, rate_of(reuse_mixer.draw, n))
            remixed = max(remixed, remix_rate(shard_mixer, n))
        lines.append(f"| {name} | {files:.0f}/s | {shards:.0f}/s | {shards / files:.2f}× | "
                     f"{reuse:.0f}/s | {reuse / files:.2f}× | {remixed:.0f}/s | "
                     f"{remixed / files:.2f}× |")
    return "\n".join(lines)


def _pool(folder: Path, rate: int) -> Manifest:
    paths = sorted(folder.glob("*.wav"))
    n = sf.info(paths[0]).frames
    return Manifest([p.stem for p in paths], [str(p) for p in paths], [n] * len(paths),
                    [rate] * len(paths), [1] * len(paths),
                    [CATEGORIES[i % 3] for i in range(len(paths))],
                    [f"g{i}" for i in range(len(paths))])


def bench_read(tmp: Path) -> str:
    """Table 2: shard read MB/s per core."""
    import webdataset as wds

    lines = ["| shards | MB read | WebDataset's reader, MB/s per core | shard_samples, MB/s per "
             "core | ratio |", "|---|---|---|---|---|"]
    readers = (lambda urls: wds.tarfile_to_samples()([{"url": u} for u in urls]),
               lambda urls: (s for u in urls for s in shard_samples(u)))
    for src in (16000, 44100):
        index = ShardIndex.load(tmp / f"pool-{src}" / "shards")
        urls = [str(tmp / f"pool-{src}" / "shards" / s.url) for s in index.shards]
        for u in urls:
            Path(u).read_bytes()
        rates = []
        for read in readers:
            best = 0.0
            for _ in range(3):  # best of three (a shared machine)
                total, t0 = 0, time.thread_time()
                for sample in read(urls):
                    total += sum(len(v) for k, v in sample.items() if isinstance(v, bytes))
                best = max(best, total / 1e6 / (time.thread_time() - t0))
            rates.append(best)
        lines.append(f"| {len(urls)} local tar ({src} Hz wav, 10-s clips) | {total / 1e6:.0f} | "
                     f"{rates[0]:.0f} | {rates[1]:.0f} | {rates[1] / rates[0]:.2f}× |")
    return "\n".join(lines)


def loader_worker_uss(loader, batches: int = 60) -> dict:
    """USS and RSS of a loader's one worker: after 5 batches, and the largest of samples taken
    every 5 batches up to ``batches`` (a forked worker's own pages grow as it runs: copies of
    the parent's pages it writes to, and its heap)."""
    it = iter(loader)
    out = {"uss5": 0, "uss": 0, "rss": 0}
    for done in range(1, batches + 1):
        next(it)
        if done % 5 == 0:
            worker = psutil.Process().children()[0]
            uss = worker.memory_full_info().uss
            out["uss5"] = out["uss5"] or uss
            out["uss"] = max(out["uss"], uss)
            out["rss"] = max(out["rss"], worker.memory_info().rss)
    del it
    return out


def worker_memory(index_path: Path, rate: int, buffer_size: int = 1000,
                  trim_every: int = 32) -> dict:
    """One shard loader worker's memory (:func:`loader_worker_uss`), what its buffer holds, and
    the wall time of the 60 batches of 4 (``trim_every``: mixtures between heap trims, 0: never)."""
    scenario = {"sample_rate": rate, "duration": 6.0}
    stream = ShardMixtureStream(index_path, scenario, batch_size=4, batches_per_epoch=10**6,
                                buffer_size=buffer_size, trim_every=trim_every)
    start = time.perf_counter()
    out = loader_worker_uss(stream.make_loader(num_workers=1))
    out["seconds"] = time.perf_counter() - start
    index = ShardIndex.load(index_path)
    mixer = ShardMixer(index, stream.scenario, buffer_size=buffer_size)  # the same buffers
    for i in range(20):
        mixer.draw(mixture_rng(0, i))
    held = sum(c.frames.nbytes for b in mixer.buffers.values() for c in b)
    return {**out, "held": held, "clip_bytes": sum(s.bytes for s in index.shards) / index.num_clips}


def file_worker_memory(manifest: Manifest, rate: int) -> dict:
    """The same measure for a file-mixer loader worker (``MixtureStream``, no buffer)."""
    from speechbrain.dataio.batch import PaddedBatch

    from gass_modules.dataio.mixture_sets import MixtureStream

    stream = MixtureStream(GASSMixer(manifest, {"sample_rate": rate, "duration": 6.0}),
                           epoch_size=10**6)
    return loader_worker_uss(torch.utils.data.DataLoader(stream, batch_size=4, num_workers=1,
                                                         collate_fn=PaddedBatch))


def bench_memory(tmp: Path, quick: bool) -> str:
    """Table 3: memory per loader worker with a 1,000-clip buffer."""
    lines = ["| corpus | heap trim | mean clip in shard | buffer holds (crops) | worker USS after "
             "5 batches | largest worker USS, 5-60 batches | largest worker RSS "
             "| 60 batches, wall |",
             "|---|---|---|---|---|---|---|---|"]
    cases = []
    if DEMO.is_file():
        demo = tmp / "demo-shards"
        if not (demo / "index.json").exists():
            write_shards(load_manifest(DEMO), demo, max_bytes=64_000_000, codec="flac")
        cases.append(("GASS-mini full-8000, FLAC shards (3,074 clips)", demo, 8000))
    pool = tmp / "pool16-1200"
    if not (pool / "shards" / "index.json").exists():
        manifest = write_pool(pool / "wav", 300 if quick else 1200, 10.0, 16000)
        write_shards(manifest, pool / "shards", max_bytes=64_000_000)
    count = len(list((pool / "wav").glob("*.wav")))
    cases.append((f"synthetic 10-s 16-kHz wav shards ({count} clips)", pool / "shards", 16000))
    for name, path, rate in cases:
        for trim in (0, 32):  # never, and the stream's default
            m = worker_memory(path, rate, trim_every=trim)
            lines.append(f"| {name} | {f'every {trim} mixtures' if trim else 'never'} |"
                         f" {m['clip_bytes'] / 1e3:.0f} kB | {m['held'] / 2**20:.0f} MiB |"
                         f" {m['uss5'] / 2**20:.0f} MiB | {m['uss'] / 2**20:.0f} MiB |"
                         f" {m['rss'] / 2**20:.0f} MiB | {m['seconds']:.1f} s |")
    m = file_worker_memory(_pool(pool / "wav", 16000), 16000)
    lines.append(f"| the same wav files, file mixer (no buffer) | never | – | – |"
                 f" {m['uss5'] / 2**20:.0f} MiB | {m['uss'] / 2**20:.0f} MiB |"
                 f" {m['rss'] / 2**20:.0f} MiB | – |")
    return "\n".join(lines)


def bench_trim_cost(tmp: Path, rounds: int = 2, batches: int = 200) -> str:
    """Table 3b: thread CPU per mixture of a 16-kHz shard mixer with the heap trimmed every
    0 (never), 32 and 64 mixtures (batches of 4), interleaved rounds, the best of each."""
    index = ShardIndex.load(tmp / "pool16-1200" / "shards")
    mixer = ShardMixer(index, Scenario.coerce({"sample_rate": 16000, "duration": 6.0}),
                       buffer_size=1000)
    for i in range(200):  # fill the buffers
        mixer.draw(mixture_rng(0, i))
    best: dict[int, tuple[float, float]] = {}
    for r in range(rounds):
        for every in (0, 32, 64):
            draw = trim = 0.0
            for b in range(batches):
                start = time.thread_time()
                for i in range(4):
                    mixer.draw(mixture_rng(1 + r, every, b, i))
                draw += time.thread_time() - start
                if every and (b + 1) % (every // 4) == 0:
                    start = time.thread_time()
                    release_free_memory()
                    trim += time.thread_time() - start
            n = 4 * batches
            if every not in best or draw + trim < sum(best[every]) * n:
                best[every] = (draw / n, trim / n)
    base = sum(best[0])
    lines = ["| heap trim | draw, µs per mixture | trim, µs per mixture | total | / never |",
             "|---|---|---|---|---|"]
    for every, (draw, trim) in best.items():
        lines.append(f"| {f'every {every} mixtures' if every else 'never'} | {1e6 * draw:.0f} |"
                     f" {1e6 * trim:.0f} | {1e6 * (draw + trim):.0f} |"
                     f" {(draw + trim) / base:.2f}× |")
    return "\n".join(lines)


def simulated_index(path: Path, clips: int = 2_000_000, shards: int = 5_000,
                    hours: float = 15_000.0) -> Path:
    """A 15,000-hour index: shards over speech / sfx / music (40/40/20 %), metadata only."""
    per = clips // shards
    seconds = hours * 3600 / shards
    rows, counts = [], {"speech": 2000, "sfx": 2000, "music": 1000}
    for category, n in counts.items():
        for k in range(n):
            rows.append(ShardInfo(f"{category}/{category}-{k:06d}.tar", category, per, seconds,
                                  256_000_000, k * per, "0" * 64))
    ShardIndex(rows, "flac", {"simulated": True}).save(path)
    return path


STARTUP_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import psutil
base = psutil.Process().memory_info().rss
os.environ.update(RANK="3", WORLD_SIZE="8")
from gass_modules.dataio.shard_source import CategoryStream, ShardMixtureStream
t_import = time.perf_counter()
after_import = psutil.Process().memory_info().rss
stream = ShardMixtureStream(sys.argv[1], None, batch_size=8, batches_per_epoch=1000)
plans = {c: CategoryStream(c, stream.index.urls_of(c)).shards_of_pass(0)
         for c in stream.index.categories}
t_end = time.perf_counter()
rss = psutil.Process().memory_info().rss
print(json.dumps({"import_s": t_import - t0, "build_s": t_end - t_import,
                  "total_s": t_end - t0, "rss": rss, "added": rss - after_import,
                  "clips": stream.index.num_clips, "shards": len(stream.index.shards),
                  "planned": {c: len(p) for c, p in plans.items()}}))
"""


def bench_startup(tmp: Path) -> str:
    """Table 4: one rank's start-up on the simulated 15,000-hour index."""
    index = simulated_index(tmp / "sim15k.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = json.loads(subprocess.run([sys.executable, "-c", STARTUP_CHILD, str(index)],
                                    capture_output=True, text=True, env=env,
                                    check=True).stdout.strip().splitlines()[-1])
    size = index.stat().st_size
    lines = ["| index | index.json | import (torch, speechbrain, webdataset) | index + stream + "
             "first-pass plan | added memory | process RSS |", "|---|---|---|---|---|---|",
             f"| {out['clips']:,} clips, {out['shards']:,} shards, 15,000 h | {size / 1e6:.1f} MB"
             f" | {out['import_s']:.1f} s | {out['build_s']:.2f} s | "
             f"{out['added'] / 2**20:.0f} MiB | {out['rss'] / 2**20:.0f} MiB |"]
    plan = ", ".join(f"{c} {n}" for c, n in out["planned"].items())
    return "\n".join(lines) + f"\n\nshards planned for rank 3 of 8 (whole pass): {plan}"


def main() -> None:
    """Runs the four benchmarks and prints their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (fewer draws, clips)")
    parser.add_argument("--tmp", type=Path, default=None, help="work folder (kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"bench_shards: 1 thread (CPU time of the thread), {os.cpu_count()} CPUs, "
          f"{platform.machine()}; load average at start {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.tmp or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        print("\nMixtures per thread-CPU-second (4 sources, 6 s; pools of 60 × 10 s):\n")
        print(bench_throughput(tmp, args.quick))
        print("\nShard read throughput:\n")
        print(bench_read(tmp))
        print("\nMemory of one loader worker, 1,000-clip buffer (USS: its own pages):\n")
        print(bench_memory(tmp, args.quick))
        print("\nCost of the heap trim (16 kHz, thread CPU, best of 2 interleaved rounds):\n")
        print(bench_trim_cost(tmp, rounds=1 if args.quick else 2,
                              batches=40 if args.quick else 200))
        print("\nStart-up of one rank on a simulated 15,000-hour index:\n")
        print(bench_startup(tmp))
    print(f"\nload average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
