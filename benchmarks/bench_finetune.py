"""Benchmark: GASS pre-training against training from scratch, on tasks GASS-mini never saw.

GASS (Pons et al., ICASSP 2024) reports that its general separators, fine-tuned, beat the same
model trained from scratch on each downstream benchmark. This tests it at small scale with the
bundled GASS-mini model (``gass_modules/model_folder/pretrained``, trained on the GASS-mini corpus'
*train*
split) on three tasks built from the corpus' valid and test splits, i.e. from speakers, songs
and sound files GASS-mini never heard:

* **speech**: two-speaker separation (Libri2Mix-like: 3-s mixtures of two different voices at
  -2.5..2.5 dB), the Libri2Mix recipe (PIT, SI-SNRi);
* **music**: fixed-order stems drums / bass / other of a song (4-s excerpts, stems aligned in
  time, mixture = their sum), the DnR recipe with those stems (fixed-order loss, SDR per stem);
* **events**: universal separation of 1-4 sound events (FUSS-like 4-s mixtures, a background
  and foregrounds), the FUSS recipe (PIT, MSi and 1S).

The held-out groups of each kind are split once (seeded) into downstream train and test groups,
so a task's test mixtures come from speakers, songs and files its training did not use either.
For each task and seed: **scratch** (the recipe's model, GASS-mini's card with the task's outputs,
randomly initialised), **GASS-mini without tuning** (the model folder evaluated as it is) and
**GASS-mini fine-tuned** (``--pretrained_path``, weights transferred by
``gass_modules.training.transfer.prepare_finetuning`` at GASS-mini's rate and 4 outputs: the
recipes'
default ``finetune_rate: model``), all through the benchmark recipes
(``gass_modules.training.benchmark_runs.run_benchmark``), each trained for the same number of
updates: scratch
with the recipe's optimiser and learning rate, fine-tuning with the recipe's fine-tuning
settings (``finetune_lr``, warm-up, linear decay over ``finetune_updates`` = the budget). The
``transferred`` column is the share of the model's values loaded from GASS-mini
(``<run>/transfer.json``). ``--long-updates`` adds scratch and fine-tuned cells with a longer
budget for ``--long-tasks`` (music by default), to tell a budget effect from a transfer effect.

Cells run in priority order (fine-tuned, the longer budget, scratch, no tuning), ``--jobs`` at a
time (one thread each), are resumable (a finished cell is not run again), and the table of what
has finished so far is rewritten to ``<out>/table.md`` after every cell; a failed cell is
reported, not fatal.

Usage::

    .venv/bin/python benchmarks/bench_finetune.py [--tasks speech music events]
        [--seeds 1234 2024] [--updates 1000] [--long-updates 4000] [--long-tasks music]
        [--jobs 2] [--model gass-mini|gass-base] [--out results/finetune]
        [--ordered-start music] [--explain]

``--model gass-base`` runs the same tasks at 16 kHz with GASS-base (once it is bundled) and its
card.

``--ordered-start music`` adds ``finetuned_ordered`` cells: fine-tuned from the pre-trained
model with its outputs renumbered to where it puts each stem at the start (a control for
fixed-order tasks, whose loss wants output ``k`` = stem ``k`` while GASS models are trained with
PIT). ``--explain`` then writes ``<out>/explain.md`` (``finetune_explain.py``): the pre-trained
model's output order on the fixed-order tasks, the learning curves with the start at update 0,
and how far fine-tuning moved each module.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import build_demo_corpus  # noqa: E402
import finetune_explain  # noqa: E402
from recipe_runs import fmt, run_recipe  # noqa: E402

from gass_modules.dataio.benchmarks import BenchmarkExample, write_manifests  # noqa: E402
from gass_modules.dataio.manifest import Manifest  # noqa: E402
from gass_modules.dataio.mixer import GASSMixer  # noqa: E402
from gass_modules.dataio.mixture_sets import export_eval_set  # noqa: E402
from gass_modules.model_folder.pretrained import bundled_model_folder  # noqa: E402
from gass_modules.training.output_order import slot_order  # noqa: E402

# The pre-trained model (--model): its rate and its card (recipes/GASS/separation/hparams/
# gass_mini.yaml, gass_base.yaml), so every tensor but the output layer transfers; the recipes
# size the output layer for the task.
MODELS = {
    "gass-mini": (8000, "{separator: {n_fft: 256, hop_length: 64, features: mag, mask_type: "
                        "magnitude, mask_activation: sigmoid, bottleneck_channels: 96, "
                        "hidden_channels: 192, depth: 3, num_blocks: 2, num_heads: 4}}"),
    "gass-base": (16000, "{separator: {n_fft: 512, hop_length: 128, features: mag, mask_type: "
                         "magnitude, mask_activation: sigmoid, bottleneck_channels: 192, "
                         "hidden_channels: 640, depth: 4, num_blocks: 4, num_heads: 8, "
                         "dropout: 0.0}}"),
}
MODEL = "gass-mini"  # main() sets these three from --model
RATE, CARD = MODELS[MODEL]


@dataclass(frozen=True)
class Task:
    """A downstream task: which recipe runs it, its slots, and its headline metric."""

    recipe: str
    stems: tuple[str, ...]
    headline: str  # the summary.md metric of the table
    others: tuple[str, ...]  # further summary.md metrics shown
    overrides: tuple[str, ...]


TASKS = {
    "speech": Task("LibriMix", ("s1", "s2"), "SI-SNRi", ("SDRi",),
                   ("--data_sample_rate={rate}",)),
    "music": Task("DnR", ("drums", "bass", "other"), "SDR avg",
                  ("SDR drums", "SDR bass", "SDR other"),
                  ("--sample_rate={rate}", "--stems=[drums, bass, other]")),
    "events": Task("FUSS", ("s1", "s2", "s3", "s4"), "MSi", ("1S SI-SNR",),
                   ("--sample_rate={rate}",)),
}
SIZES = {"train": 400, "valid": 20, "test": 60}


def split_groups(manifest: Manifest, share: float = 0.6, seed: int = 0) -> tuple[set, set]:
    """Splits each kind's groups (``speech/...``, ``music/...``, ``sfx/...``) into two sets.

    Arguments
    ---------
    manifest : Manifest
        The held-out clips.
    share : float
        Share of each kind's groups in the first set (at least one group in each set).
    seed : int
        Seed of the split.

    Returns
    -------
    tuple of set
        Group names for downstream training and for downstream testing.

    Example
    -------
    >>> m = Manifest([f"c{i}" for i in range(6)], [f"{i}.wav" for i in range(6)], [1] * 6,
    ...              [8000] * 6, [1] * 6, ["speech"] * 3 + ["sfx"] * 3,
    ...              ["speech/a", "speech/b", "speech/c", "sfx/d", "sfx/e", "sfx/f"])
    >>> train, test = split_groups(m)
    >>> len(train), len(test), train & test
    (4, 2, set())
    """
    names = sorted(set(manifest.group_names.tolist()))
    train, test = set(), set()
    for kind in sorted({n.split("/")[0] for n in names}):
        groups = [n for n in names if n.split("/")[0] == kind]
        order = build_demo_corpus.rng_for(seed, f"downstream-{kind}").permutation(len(groups))
        cut = min(len(groups) - 1, max(1, round(share * len(groups)))) if len(groups) > 1 else 1
        train.update(groups[i] for i in order[:cut])
        test.update(groups[i] for i in order[cut:])
    return train, test


def _select(manifest: Manifest, groups: set, categories: Sequence[str]) -> Manifest:
    """The clips of ``groups`` whose category is in ``categories``."""
    group_ok = np.array([n in groups for n in manifest.group_names.tolist()], dtype=bool)
    cat_ok = np.array([c in categories for c in manifest.categories], dtype=bool)
    rows = np.flatnonzero(group_ok[manifest.group_codes] & cat_ok[manifest.category_codes])
    return manifest.select(rows)


def _mixed_examples(manifest: Manifest, scenario: dict, count: int, folder: Path, seed: int,
                    num_slots: int) -> list[BenchmarkExample]:
    """Mixtures drawn by the GASS mixer, frozen to files, as benchmark examples."""
    csv_path = export_eval_set(GASSMixer(manifest, scenario), count, folder, seed=seed,
                               id_prefix=folder.name)
    examples = []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            cats = row["source_categories"].split(";")
            cats += [""] * (num_slots - len(cats))
            sources = tuple(folder / row["ID"] / f"s{k + 1}.wav" if cats[k] else None
                            for k in range(num_slots))
            examples.append(BenchmarkExample(row["ID"], folder / row["ID"] / "mix.wav", sources,
                                             tuple(cats[:num_slots])))
    return examples


def _stem_examples(manifest: Manifest, count: int, folder: Path, seed: int,
                   seconds: float = 4.0) -> list[BenchmarkExample]:
    """Time-aligned excerpts of the drums, bass and other stems of the songs, and their sum."""
    names, cats = manifest.group_names, manifest.categories
    songs: dict[str, dict[str, int]] = {}
    for i in range(len(manifest)):
        cat = cats[manifest.category_codes[i]]
        if cat in ("music_drums", "music_bass", "music_other"):
            songs.setdefault(names[manifest.group_codes[i]], {})[cat] = i
    songs = {g: s for g, s in sorted(songs.items()) if len(s) == 3}
    if not songs:
        raise ValueError(f"no song with drums, bass and other stems for {folder}")
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    examples: list[BenchmarkExample] = []
    for k in range(count * 20):  # songs in turn; excerpts with a silent stem are skipped
        if len(examples) == count:
            break
        song = list(songs)[k % len(songs)]
        rows = [songs[song][c] for c in ("music_drums", "music_bass", "music_other")]
        frames = min(int(manifest.frames[r]) for r in rows)
        start = int(rng.integers(0, max(1, frames - n)))
        stems = [sf.read(manifest.paths[r], start=start, frames=n, dtype="float32",
                         always_2d=True)[0].mean(1) for r in rows]
        stems = [np.pad(s, (0, n - len(s))) for s in stems]
        if min(float(np.sqrt(np.mean(s ** 2))) for s in stems) < 10 ** (-50 / 20):
            continue  # as MUSDB18's evaluation needs: every stem present (RMS > -50 dBFS)
        k = len(examples)
        mix = np.sum(stems, axis=0)
        peak = max(1e-9, float(np.abs(mix).max()))
        scale = min(1.0, 0.9 / peak)
        item = folder / f"{folder.name}-{k:05d}"
        item.mkdir(parents=True, exist_ok=True)
        sf.write(item / "mix.wav", mix * scale, RATE, subtype="FLOAT")
        for name, s in zip(("drums", "bass", "other"), stems):
            sf.write(item / f"{name}.wav", s * scale, RATE, subtype="FLOAT")
        examples.append(BenchmarkExample(
            item.name, item / "mix.wav", tuple(item / f"{s}.wav" for s in ("drums", "bass",
                                                                            "other")),
            ("music_drums", "music_bass", "music_other")))
    if len(examples) < count:
        raise ValueError(f"only {len(examples)} of {count} excerpts of {folder.name} have all "
                         "three stems active")
    return examples


def build_task(name: str, held: Manifest, groups: dict[str, set], folder: Path) -> Path:
    """Renders a task's train / valid / test mixtures and writes its manifests.

    Arguments
    ---------
    name : str
        ``speech``, ``music`` or ``events``.
    held : Manifest
        The held-out clips (GASS-mini's valid and test splits).
    groups : dict
        ``train`` / ``test`` group names (valid mixtures come from the train groups).
    folder : pathlib.Path
        Where the task's audio and manifests go.

    Returns
    -------
    pathlib.Path
        The folder holding ``train.csv``, ``valid.csv`` and ``test.csv``.
    """
    manifests = folder / "manifests"
    if all((manifests / f"{s}.csv").is_file() for s in SIZES):
        return manifests
    examples = {}
    for split, count in SIZES.items():
        src = groups["test" if split == "test" else "train"]
        seed = {"train": 1, "valid": 2, "test": 3}[split]
        out = folder / "audio" / split
        if name == "speech":
            pool = _select(held, src, ["speech"])
            scenario = {"sample_rate": RATE, "duration": 3.0, "max_sources": 2,
                        "num_sources_probs": [0, 1], "background_prob": 0.0,
                        "foreground_categories": {"speech": 1.0},
                        "foreground_gain_db": [-2.5, 2.5]}
            examples[split] = _mixed_examples(pool, scenario, count, out, seed, 2)
        elif name == "music":
            examples[split] = _stem_examples(_select(held, src, ["music_drums", "music_bass",
                                                                 "music_other"]),
                                             count, out, seed)
        else:
            pool = _select(held, src, ["sfx"])
            scenario = {"sample_rate": RATE, "duration": 4.0, "max_sources": 4,
                        "num_sources_probs": [0.25, 0.25, 0.25, 0.25],
                        "foreground_categories": {"sfx": 1.0},
                        "background_categories": {"sfx": 1.0}}
            examples[split] = _mixed_examples(pool, scenario, count, out, seed, 4)
    write_manifests(f"downstream-{name}", examples, manifests, folder / "audio",
                    len(TASKS[name].stems), {"task": name, "sizes": SIZES},
                    ["audio/<split>/<id>/mix.wav"])
    return manifests


def _summary(path: Path) -> dict[str, float]:
    """The ``| metric | value |`` rows of a benchmark's ``summary.md``."""
    values = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] not in ("metric", "---"):
            try:
                values[cells[0]] = float(cells[1])
            except ValueError:
                values[cells[0]] = float("nan")
    return values


def run(task: str, mode: str, seed: int, manifests: Path, out: Path, updates: int,
        base_updates: int | None = None, source: Path | None = None) -> dict:
    """One cell: ``scratch``, ``no_tuning``, ``finetuned`` or ``finetuned_ordered`` on ``task``.

    Cells with another budget than ``base_updates`` get their own run folder
    (``<task>-<mode>-seed<seed>-<updates>u``). ``finetuned_ordered`` fine-tunes from
    ``source`` (the pre-trained folder with its outputs reordered, ``--ordered-start``).
    Returns the summary's metrics, the costs and, for fine-tuned cells, ``transferred`` (the
    share of values loaded from GASS-mini).
    """
    t = TASKS[task]
    recipe = ROOT / "recipes" / t.recipe / "separation"
    suffix = "" if base_updates in (None, updates) else f"-{updates}u"
    run_dir = out / "runs" / f"{task}-{mode}-seed{seed}{suffix}"
    (run_dir / "save").mkdir(parents=True, exist_ok=True)
    for split in SIZES:  # the recipe's own manifest location, preparation skipped
        (run_dir / "save" / f"{split}.csv").write_text((manifests / f"{split}.csv").read_text())
    cmd = [sys.executable, str(recipe / "train.py"), str(recipe / "hparams" / "tdanet_stft.yaml"),
           f"--data_folder={manifests.parent / 'audio'}", f"--output_folder={run_dir}",
           "--skip_prep=True", f"--seed={seed}", f"--model={CARD}", "--segment_seconds=2.0",
           "--valid_segment_seconds=null", "--batch_size=4", "--num_workers=1",
           "--number_of_epochs=10000", f"--optimizer_step_limit={updates}", "--noprogressbar",
           *(o.format(rate=RATE) for o in t.overrides)]
    model = source if mode == "finetuned_ordered" else bundled_model_folder(MODEL)
    if model is None:
        raise ValueError(f"{mode} needs the reordered model folder (source=)")
    if mode != "scratch":
        cmd.append(f"--pretrained_path={model}")
    if mode.startswith("finetuned"):  # the recipe's fine-tuning schedule, over this budget
        cmd.append(f"--finetune_updates={updates}")
    if mode == "no_tuning":
        cmd.append("--no_tuning=True")
    done = run_dir / ("eval_no_tuning" if mode == "no_tuning" else "eval") / "summary.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    costs = run_recipe(cmd, run_dir, done, recipe, env)
    transfer = run_dir / "transfer.json"
    moved = json.loads(transfer.read_text())["transferred_fraction"] if transfer.is_file() else None
    return {**_summary(done), **costs, "transferred": moved}


def ordered_start(task: str, manifests: Path, out: Path) -> Path:
    """The pre-trained model folder with output ``k`` = where it puts stem ``k`` at the start.

    Where the model puts each stem of the task's training mixtures before any training
    (``finetune_explain.output_slots``), each stem's most frequent output made its slot
    (``gass_modules.training.output_order.slot_order``): a fine-tuning start whose output
    order already suits a fixed-order task (``<out>/pretrained-ordered/<task>``;
    ``order.json`` records it).
    """
    dest = out / "pretrained-ordered" / task
    if (dest / "order.json").is_file():
        return dest
    source = bundled_model_folder(MODEL)
    slots = finetune_explain.output_slots(finetune_explain.load_separator(source),
                                          manifests / "train.csv", manifests.parent / "audio",
                                          len(TASKS[task].stems), RATE)
    order = slot_order(slots["slots"])
    finetune_explain.reorder_outputs(source, order, dest)
    (dest / "order.json").write_text(json.dumps({"order": order,
                                                 "slots": slots["slots"].tolist()}))
    return dest


Cell = tuple[str, str, int, int]  # task, mode, seed, updates
MODES = ("scratch", "no_tuning", "finetuned", "finetuned_ordered")  # table order


def cells_in_order(tasks: Sequence[str], seeds: Sequence[int], updates: int,
                   long_updates: int | None, long_tasks: Sequence[str]) -> list[Cell]:
    """The cells, most informative first: fine-tuned (each task's first seed, then the next
    seed), the longer budget, scratch, no tuning.

    Arguments
    ---------
    tasks : sequence of str
        Task names.
    seeds : sequence of int
        Seeds (no tuning: the first only, nothing is trained).
    updates : int
        The budget of every trained cell.
    long_updates : int, optional
        A longer budget for scratch and fine-tuned cells of ``long_tasks``.
    long_tasks : sequence of str
        Tasks that get the longer budget.

    Returns
    -------
    list of tuple
        ``(task, mode, seed, updates)`` cells.

    Example
    -------
    >>> cells_in_order(["music", "speech"], [1, 2], 10, 40, ["music"])[:3]
    [('music', 'finetuned', 1, 10), ('speech', 'finetuned', 1, 10), ('music', 'finetuned', 2, 10)]
    >>> len(cells_in_order(["music", "speech"], [1, 2], 10, 40, ["music"]))
    14
    """
    cells = [(t, "finetuned", s, updates) for s in seeds for t in tasks]
    if long_updates:
        cells += [(t, m, s, long_updates) for s in seeds for t in tasks if t in long_tasks
                  for m in ("finetuned", "scratch")]  # both starts of a seed, then the next
    cells += [(t, "scratch", s, updates) for t in tasks for s in seeds]
    return cells + [(t, "no_tuning", seeds[0], updates) for t in tasks]


def format_tables(results: dict[Cell, dict | str], tasks: Sequence[str]) -> str:
    """The markdown tables of the finished cells (a failed cell shows its error).

    Arguments
    ---------
    results : dict
        Cell to its result (``run``'s dict) or an error message.
    tasks : sequence of str
        Tasks, in table order.

    Returns
    -------
    str
        One table per task.

    Example
    -------
    >>> r = {("music", "finetuned", 1, 10): {"SDR avg": 2.5, "cpu_minutes": 1.0,
    ...      "wall_minutes": 1.5, "load": 2.0, "transferred": 1.0}}
    >>> print(format_tables(r, ["music"]).splitlines()[4])
    | finetuned | 1 | 10 | 100.0 | 2.50 |  |  |  | 1.0 | 1.5 | 2.0 |
    """
    lines = []
    for task in tasks:
        t = TASKS[task]
        head = ["mode", "seed", "updates", "transferred %", t.headline, *t.others, "CPU min",
                "wall min", "load"]
        lines += [f"#### {task} ({t.recipe} recipe)", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for (tk, mode, seed, updates), r in sorted(
                results.items(), key=lambda kv: (kv[0][3], MODES.index(kv[0][1]), kv[0][2])):
            if tk != task:
                continue
            if isinstance(r, str):
                lines.append(f"| {mode} | {seed} | {updates} | failed: {r} |")
                continue
            moved = r.get("transferred")
            row = [mode, str(seed), str(updates) if mode != "no_tuning" else "0",
                   fmt(100.0 * moved, 1) if moved is not None else "",
                   fmt(r.get(t.headline)), *[fmt(r.get(o)) for o in t.others],
                   fmt(r["cpu_minutes"], 1), fmt(r["wall_minutes"], 1), fmt(r["load"], 1)]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Builds the tasks, runs every cell, prints the table.

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
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 2024])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--long-updates", type=int, default=4000,
                        help="a longer budget for --long-tasks (0: none)")
    parser.add_argument("--long-tasks", nargs="*", default=["music"], choices=list(TASKS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--model", choices=sorted(MODELS), default="gass-mini",
                        help="the bundled model pre-trained by GASS (its rate and card are the "
                             "tasks' and the scratch runs')")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: results/finetune (gass-mini), results/finetune-<model>")
    parser.add_argument("--ordered-start", nargs="*", default=[], choices=list(TASKS),
                        help="also fine-tune these tasks from the model with its outputs "
                             "reordered to where it puts each stem at the start "
                             "(finetuned_ordered cells)")
    parser.add_argument("--explain", action="store_true",
                        help="then measure why the start helps or not (finetune_explain.py): "
                             "output order, learning curves, weight movement")
    args = parser.parse_args(argv)
    global MODEL, RATE, CARD  # the module's settings for run() and build_task()
    MODEL = args.model
    RATE, CARD = MODELS[MODEL]
    if args.out is None:
        args.out = ROOT / "results" / ("finetune" if MODEL == "gass-mini" else f"finetune-{MODEL}")
    args.out = args.out.resolve()  # the recipes run in their own folders (cwd)
    corpus = build_demo_corpus.build("full", sample_rate=RATE)
    held = Manifest.concat([Manifest.from_csv(corpus.manifests[s]) for s in ("valid", "test")])
    train_groups, test_groups = split_groups(held)
    groups = {"train": train_groups, "test": test_groups}
    manifests = {t: build_task(t, held, groups, args.out / "data" / t) for t in args.tasks}
    cells = cells_in_order(args.tasks, args.seeds, args.updates, args.long_updates,
                           args.long_tasks)
    ordered = {t: ordered_start(t, manifests[t], args.out) for t in args.ordered_start
               if t in args.tasks}
    cells += [(t, "finetuned_ordered", s, args.updates) for s in args.seeds for t in ordered]
    kinds = {k: sum(1 for g in groups[s] if g.startswith(k + "/"))
             for s in groups for k in ("speech", "music", "sfx")}
    heading = (f"Downstream tasks from the GASS-mini corpus' held-out groups ({RATE} Hz), "
               f"pre-trained model {MODEL}; "
               f"{SIZES['train']} training / {SIZES['test']} test mixtures per task, train and "
               f"test groups disjoint. Same card ({MODEL}'s); scratch with the recipe's "
               f"optimiser and learning rate, fine-tuned at {MODEL}'s rate and 4 outputs "
               "(finetune_rate: model) with the recipe's fine-tuning schedule over the cell's "
               f"updates; no_tuning evaluates {MODEL} as it is (4 outputs matched to the "
               f"references). {os.cpu_count()} cores, {args.jobs} runs at a time. Held-out "
               f"groups: {kinds}.\n")
    results: dict[Cell, dict | str] = {}
    table = args.out / "table.md"
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run, c[0], c[1], c[2], manifests[c[0]], args.out, c[3],
                               args.updates, ordered.get(c[0])): c for c in cells}
        for future in as_completed(futures):
            cell = futures[future]
            try:
                results[cell] = future.result()
            except Exception as err:  # one failed cell must not lose the others
                results[cell] = f"{type(err).__name__}: {err}"
            table.write_text(f"{heading}\n{len(results)} of {len(cells)} cells finished.\n\n"
                             + format_tables(results, args.tasks))
    print(heading)
    print(format_tables(results, args.tasks))
    if args.explain:
        report = finetune_explain.explain(
            args.out, {t: (len(TASKS[t].stems), t == "music") for t in args.tasks},
            bundled_model_folder(MODEL), RATE, SIZES["train"] // 4)  # batch 4 (run())
        (args.out / "explain.md").write_text(report)
        print(report)
    return 0 if all(isinstance(r, dict) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
