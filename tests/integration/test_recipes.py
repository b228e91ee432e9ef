"""Recipe tests: every row of tests/recipes.csv trains and evaluates in debug mode on the small
demo corpus; the GASS recipe also runs under DDP (2 CPU processes, gloo) and resumes after a kill.

Each recipe runs as a subprocess, as a user runs it (``python train.py hparams/x.yaml ...``), with
the row's ``test_debug_flags`` (tiny model variants through overrides, a few steps). The DDP test
runs this file under ``torch.distributed.run`` (see ``ddp_worker`` at the bottom).
"""

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gass_modules.inference.separator import GASSSeparator
from gass_modules.training.checkpointing import AtomicCheckpointer

ROOT = Path(__file__).resolve().parents[2]
GASS = ROOT / "recipes" / "GASS" / "separation"
# The GASS rows run here on the small demo corpus; the benchmark recipes' rows (FUSS, Libri2Mix,
# DnR, MUSDB18) need their official-layout fixtures and run in test_benchmark_recipes.py.
ROWS = [row for row in csv.DictReader(open(ROOT / "tests" / "recipes.csv", newline=""))
        if row["Dataset"] == "GASS"]
# Tiny TDANet-STFT for the DDP and resume tests (the csv rows carry their own variants).
TINY_STFT = ["--model={separator: {n_fft: 64, hop_length: 16, bottleneck_channels: 8, "
             "hidden_channels: 16, depth: 2, num_blocks: 1, num_heads: 2}}",
             "--sample_rate=8000", "--segment_seconds=1.0", "--batch_size=2", "--num_workers=0",
             "--num_valid_mixtures=2", "--num_test_mixtures=2", "--scenario={max_retries: 40}",
             "--oracle={n_fft: 128, hop_length: 32}", "--noprogressbar"]


def env_one_thread() -> dict:
    """Subprocess environment: one intra-op thread each (the CI machine has 2 cores)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT)}


def recipe_command(row: dict, data_folder: Path, output_folder: Path) -> list[str]:
    """The command line of a csv row, as a user would type it (flags from the csv)."""
    return [sys.executable, str(ROOT / row["Script_file"]), str(ROOT / row["Hparam_file"]),
            f"--data_folder={data_folder}", f"--output_folder={output_folder}",
            *shlex.split(row["test_debug_flags"])]


def load_checkpoints(save_folder: Path) -> list:
    """Every checkpoint in ``save_folder``, each parameter file loaded (raises if corrupted)."""
    ckpts = AtomicCheckpointer(save_folder).list_checkpoints()
    for ckpt in ckpts:
        for path in ckpt.paramfiles.values():
            if path.name in ("brain.ckpt", "counter.ckpt") or "dataloader" in path.name:
                yaml.safe_load(path.read_text())  # yaml / text savers
            else:
                torch.load(path, weights_only=False)
    return ckpts


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[Path(r["Hparam_file"]).stem for r in ROWS])
def test_recipe_debug_run(row, demo_corpus_small, tmp_path):
    """The recipe trains, evaluates (model + IRM report, audio, figures) and exports a model
    folder holding the best checkpoint, which GASSSeparator loads and runs."""
    out = tmp_path / "exp"
    proc = subprocess.run(recipe_command(row, demo_corpus_small.root, out), cwd=ROOT / Path(
        row["Script_file"]).parent, env=env_one_thread(), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = (out / "eval" / "summary.md").read_text()
    assert "SI-SNRi model | SI-SNRi IRM" in summary
    rows = list(csv.DictReader(open(out / "eval" / "per_mixture.csv")))
    assert {r["system"] for r in rows} == {"model", "irm"} and len(rows) % 2 == 0
    irm = [float(r["si_snr_1"]) for r in rows if r["system"] == "irm"]
    assert all(v > 0 for v in irm)  # the oracle separates: a sanity check of the references
    assert list((out / "eval" / "figures").glob("*.png"))
    assert list((out / "eval" / "audio").glob("*/est_1.wav"))
    # The exported folder holds the weights of the best checkpoint (kept: debug_persistently).
    best = AtomicCheckpointer(out / "save").find_checkpoint(min_key="loss")
    exported = torch.load(out / "model" / "separator.ckpt", weights_only=True)
    saved = torch.load(best.paramfiles["separator"], weights_only=True)
    assert exported.keys() == saved.keys()
    assert all(torch.equal(exported[k], saved[k]) for k in saved)
    separator = GASSSeparator.from_hparams(source=out / "model", run_opts={"device": "cpu"})
    mix = torch.randn(1, separator.sample_rate // 2)
    est = separator.separate_batch(mix)
    assert est.shape == (1, mix.shape[1], separator.num_sources) and torch.isfinite(est).all()


@pytest.mark.slow
def test_ddp_two_processes_sync_and_draw_different_mixtures(demo_corpus_small, tmp_path):
    """torchrun, 2 CPU processes (gloo), 3 steps: the ranks end with identical parameters that
    differ from the initial ones, and drew different mixtures; then the recipe's evaluation and
    export run under DDP too."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           __file__, "ddp-worker", str(tmp_path), str(GASS / "hparams" / "tdanet_stft.yaml"),
           f"--data_folder={demo_corpus_small.root}", f"--output_folder={tmp_path / 'exp'}",
           "--distributed_backend=gloo", "--debug", "--debug_batches=3", "--debug_epochs=1",
           *TINY_STFT]
    proc = subprocess.run(cmd, cwd=GASS, env=env_one_thread(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    for name, value in ranks[0]["final"].items():
        assert torch.equal(value, ranks[1]["final"][name]), f"{name} differs across ranks"
    moved = [n for n, v in ranks[0]["final"].items() if not torch.equal(v, ranks[0]["init"][n])]
    assert len(moved) > len(ranks[0]["final"]) // 2, "most parameters should have been updated"
    mixes = [torch.cat(r["mixes"]) for r in ranks]  # [3 * batch, T] per rank
    assert mixes[0].shape[0] == 3 * 2
    distance = torch.cdist(mixes[0], mixes[1])  # no mixture of rank 0 is one of rank 1
    assert distance.min() > 1e-3
    assert not set(ranks[0]["ids"]) & set(ranks[1]["ids"])
    # evaluation and export under DDP: rank 0 writes the report and a model folder holding the
    # separator's own parameters (not its DDP wrapper's "module."-prefixed ones)
    exp = tmp_path / "exp"
    assert "SI-SNRi model" in (exp / "eval" / "summary.md").read_text()
    exported = torch.load(exp / "model" / "separator.ckpt", weights_only=True)
    assert exported.keys() == ranks[0]["final"].keys()
    for name, value in exported.items():
        assert torch.equal(value, ranks[0]["final"][name]), f"exported {name} differs"


@pytest.mark.slow
def test_resume_after_kill_mid_epoch(demo_corpus_small, tmp_path):
    """A run killed (SIGKILL) after an intra-epoch checkpoint resumes from it and finishes; no
    checkpoint is corrupted and the resumed epoch keeps its nominal length."""
    out = tmp_path / "exp"
    cmd = [sys.executable, str(GASS / "train.py"), str(GASS / "hparams" / "tdanet_stft.yaml"),
           f"--data_folder={demo_corpus_small.root}", f"--output_folder={out}",
           "--number_of_epochs=1", "--steps_per_epoch=60", "--ckpt_interval_steps=2",
           "--ckpt_interval_minutes=0", *TINY_STFT]
    first = subprocess.Popen(cmd, cwd=GASS, env=env_one_thread(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    intra, deadline = None, time.time() + 240
    while intra is None and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
        if (out / "save").is_dir():
            found = [c for c in AtomicCheckpointer(out / "save").list_checkpoints()
                     if "brain_intra_epoch_ckpt" in c.meta]
            intra = found[0] if found else None
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert intra is not None, "no intra-epoch checkpoint appeared before the run ended"
    assert first.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    survivors = load_checkpoints(out / "save")  # raises on a half-written checkpoint
    assert survivors and all("brain_intra_epoch_ckpt" in c.meta for c in survivors)
    steps_done = int((survivors[0].path / "dataloader-TRAIN.ckpt").read_text().split()[1])
    assert 2 <= steps_done < 60

    second = subprocess.run(cmd, cwd=GASS, env=env_one_thread(), capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-4000:]
    log = (out / "log.txt").read_text()
    assert f"Loading a checkpoint from {survivors[0].path}" in log
    final = [c for c in load_checkpoints(out / "save") if "brain_intra_epoch_ckpt" not in c.meta]
    assert [c.meta["epoch"] for c in final] == [1]
    loader_state = (final[0].path / "dataloader-TRAIN.ckpt").read_text().split()
    assert int(loader_state[1]) == 60  # steps_done before the kill + the rest, not 60 more
    assert (out / "eval" / "summary.md").is_file() and (out / "model" / "separator.ckpt").is_file()
    # the experiment folder keeps the script that ran, as SpeechBrain recipes do (issue 16)
    assert (out / "train.py").read_bytes() == (GASS / "train.py").read_bytes()
    assert not (out / "recipe.py").exists() and not (out / "brain.py").exists()
    assert not (out / "gass_recipe.py").exists()  # the library the script calls is not kept


@pytest.mark.slow
def test_demo_script_end_to_end_on_small_subset(demo_corpus_small, tmp_path):
    """``demo.sh`` (what ``make demo`` runs) end to end on the small corpus subset, a few seconds
    of training: it builds the 8-kHz corpus, trains with the arguments it passes on to train.py
    (a tiny card here), prints the summary and writes examples, figures and the model folder."""
    out = tmp_path / "demo"
    env = {**env_one_thread(), "GASS_DEMO_SUBSET": "small", "GASS_DEMO_UPDATES": "5",
           "GASS_DEMO_OUT": str(out), "GASS_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(GASS / "demo.sh"), "--steps_per_epoch=2", *TINY_STFT],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "| sources | mixtures | SI-SNRi model | SI-SNRi IRM" in proc.stdout  # printed summary
    log = (out / "log.txt").read_text()
    assert "update 4/5," in log and "ETA" in log  # progress with the time left, per epoch
    assert "max_train_minutes" not in log  # the update budget ended it, not the safety stop
    headline = json.loads((out / "eval" / "headline.json").read_text())
    assert headline["updates"] == 5 and "irm_si_snri_2src" in headline
    assert list((out / "eval" / "figures").glob("*.png"))
    assert list((out / "eval" / "audio").glob("*/est_1.wav"))
    card = (out / "model" / "hyperparams.yaml").read_text()
    assert re.search(r"^ +bottleneck_channels: 8\b", card, re.M)  # the passed-on override was used


def ddp_worker(out_dir: str, argv: list[str]) -> None:
    """One DDP rank of the recipe (run by ``torch.distributed.run``): trains a few steps,
    evaluates and exports through the recipe's own ``build``/``run``, and saves its initial and
    final parameters and the mixtures it drew to ``<out_dir>/rank<r>.pt``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gass_train", GASS / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    brain, hparams, datasets, card = train.build(argv)
    separator = hparams["separator"]
    init = {k: v.detach().clone() for k, v in separator.state_dict().items()}
    mixes, ids = [], []

    def record(batch, should_step):
        mixes.append(batch.mix.data.detach().clone())
        ids.extend(batch.id)

    brain.on_fit_batch_start = record
    train.run(brain, hparams, datasets, card)  # trains, evaluates, exports (rank 0)
    rank = torch.distributed.get_rank()
    torch.save({"init": init, "final": separator.state_dict(), "mixes": mixes, "ids": ids,
                "world_size": torch.distributed.get_world_size()},
               Path(out_dir) / f"rank{rank}.pt")


if __name__ == "__main__" and sys.argv[1:2] == ["ddp-worker"]:
    ddp_worker(sys.argv[2], sys.argv[3:])
