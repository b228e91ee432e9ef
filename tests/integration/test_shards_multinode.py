"""Multi-node training from WebDataset shards, on loopback: 2 "nodes" x 2 ranks (gloo, CPU).

Each node is one ``torchrun --nnodes=2 --node_rank=k --rdzv_endpoint=127.0.0.1:PORT`` with two
ranks, each rank a :class:`ShardMixtureStream` read through a loader worker, a tiny model wrapped
in DDP and an ``AtomicCheckpointer`` holding the model, the optimizer and the stream. The test
checks that the ranks read distinct shards, that the gradients agree after the all-reduce, and
that a run whose second node is killed mid-epoch resumes from its checkpoint on every rank,
redoing the lost step with the same batches, mixtures and gradients, no clip read twice in the
epoch. (Bit-identity over whole resumed runs is tested in tests/unittests/test_shards.py.)

Authors
 * gass developers 2026
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = 5  # batches per epoch and rank (one epoch)
CHECKPOINT_AFTER = 2  # steps trained when the checkpoint is saved
SCENARIO = {"sample_rate": 8000, "duration": 0.125, "max_retries": 20,
            "foreground_categories": ["speech", "sfx"], "background_categories": ["sfx"],
            "num_sources_probs": [0.5, 0.5, 0, 0]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(shards: Path, save: Path, logs: Path, node: int, port: int,
           hang_at: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=2",
           f"--node_rank={node}", f"--rdzv_endpoint=127.0.0.1:{port}", "--max_restarts=0",
           __file__, "multinode-worker", str(shards), str(save), str(logs), str(hang_at)]
    log = open(logs / f"node{node}.log", "ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILLs a node: its torchrun agent and every rank and loader worker under it."""
    import psutil

    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def run_nodes(shards: Path, save: Path, logs: Path, hang_at: int = -1) -> list:
    """Runs both nodes. With ``hang_at`` >= 0 the ranks stall after logging that step, and once
    all four have, node 1 is killed (its torchrun and all its processes: a lost machine), then
    node 0, which a real cluster's torchrun stops when its next collective fails."""
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    nodes = [launch(shards, save, logs, k, port, hang_at) for k in (0, 1)]
    deadline = time.time() + 150
    try:
        if hang_at >= 0:
            while time.time() < deadline and len(
                    [k for k in records(logs) if k[1] == hang_at]) < 4:
                time.sleep(0.1)
            kill_tree(nodes[1])
            time.sleep(1.0)
            kill_tree(nodes[0])
            return [p.returncode for p in nodes]
        return [p.wait(timeout=max(1, deadline - time.time())) for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                kill_tree(p)


def records(logs: Path) -> dict:
    """``{(rank, step): record}`` of the steps the ranks logged."""
    found = {}
    for path in sorted(logs.glob("rank*.jsonl")):
        for line in path.read_text().splitlines():
            if line.endswith("}"):
                rec = json.loads(line)
                found[(rec["rank"], rec["step"])] = rec
    return found


@pytest.mark.slow
def test_multinode_shards_distinct_synced_and_resumed_after_node_kill(tmp_path):
    from gass_modules.dataio.shards import iter_shard, write_shards
    from tests.unittests.test_shards import make_corpus

    manifest = make_corpus(tmp_path / "wav", per_category=96)
    shards = tmp_path / "shards"
    index = write_shards(manifest, shards, max_bytes=20_480 * 2)
    shard_of = {rec["id"]: s.url for s in index.shards
                for rec, _, _ in iter_shard(str(shards / s.url))}
    save = tmp_path / "save"
    # first launch: checkpoint after CHECKPOINT_AFTER steps, node 1 killed one step later
    codes = run_nodes(shards, save, tmp_path / "first", hang_at=CHECKPOINT_AFTER)
    assert codes[1] != 0
    first = records(tmp_path / "first")
    assert sorted(first) == [(r, s) for r in range(4) for s in range(CHECKPOINT_AFTER + 1)]
    # second launch: every rank resumes at the checkpoint and finishes the epoch
    assert run_nodes(shards, save, tmp_path / "second") == [0, 0]
    starts = [json.loads(p.read_text()) for p in (tmp_path / "second").glob("start-*.json")]
    assert sorted(s["first_step"] for s in starts) == [CHECKPOINT_AFTER] * 4
    second = records(tmp_path / "second")
    assert sorted(second) == [(r, s) for r in range(4) for s in range(CHECKPOINT_AFTER, STEPS)]
    # the step trained twice (after the checkpoint, lost with node 1) is bit-identical
    for r in range(4):
        again, before = second[(r, CHECKPOINT_AFTER)], first[(r, CHECKPOINT_AFTER)]
        assert again["ids"] == before["ids"] and again["source_ids"] == before["source_ids"]
        assert again["mix_sum"] == before["mix_sum"] and again["grad"] == before["grad"]
    trained = {**{k: v for k, v in first.items() if k[1] < CHECKPOINT_AFTER}, **second}
    # the ranks read distinct shards, and no clip was read twice in the epoch
    used = {r: {shard_of[i] for s in range(STEPS) for i in trained[(r, s)]["source_ids"]}
            for r in range(4)}
    for a in range(4):
        for b in range(a + 1, 4):
            assert not used[a] & used[b], f"ranks {a} and {b} read the same shard"
    clips = [i for rec in trained.values() for i in rec["source_ids"]]
    assert len(clips) == len(set(clips)) > 4 * STEPS * 2
    # DDP: after the all-reduce every rank holds the same gradient, from different batches
    for s in range(STEPS):
        grads = [trained[(r, s)]["grad"] for r in range(4)]
        assert all(g == grads[0] for g in grads) and any(x != 0 for x in grads[0])
        assert len({trained[(r, s)]["mix_sum"] for r in range(4)}) == 4


def multinode_worker(shards: str, save: str, logs: str, hang_at: int) -> None:
    """One rank: DDP over a tiny model, a checkpoint after CHECKPOINT_AFTER steps; with
    ``hang_at`` >= 0 it stalls after logging that step (to be killed there)."""
    import torch
    import torch.distributed as dist

    from gass_modules.dataio.shard_source import ShardMixtureStream
    from gass_modules.training.checkpointing import AtomicCheckpointer

    torch.set_num_threads(1)
    from datetime import timedelta
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    rank = dist.get_rank()
    out = Path(logs)
    torch.manual_seed(0)
    model = torch.nn.Conv1d(1, 4, 9, padding=4)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stream = ShardMixtureStream(shards, SCENARIO, seed=11, batch_size=2,
                                batches_per_epoch=STEPS, buffer_size=6)
    ckpt = AtomicCheckpointer(Path(save), {"model": model, "optimizer": opt,
                                             "train_stream": stream})
    found = ckpt.recover_if_possible()
    first = int(found.meta["steps"]) if found is not None else 0
    (out / f"start-rank{rank}.json").write_text(json.dumps({"first_step": first}))
    log = open(out / f"rank{rank}.jsonl", "a")
    for step, batch in enumerate(stream.make_loader(num_workers=1), start=first):
        mix, targets = batch.mix.data, batch.targets.data  # [B, T], [B, T, S]
        est = ddp(mix.unsqueeze(1)).transpose(1, 2)  # [B, T, S]
        loss = ((est - targets) ** 2).mean()
        opt.zero_grad()
        loss.backward()  # DDP all-reduces the gradients here
        grad = torch.cat([p.grad.flatten() for p in model.parameters()])
        opt.step()
        log.write(json.dumps({"rank": rank, "step": step, "ids": batch.id,
                              "source_ids": [i for ids in batch.source_ids for i in ids],
                              "mix_sum": float(mix.double().sum()),
                              "grad": [round(float(g), 7) for g in grad]}) + "\n")
        log.flush()
        if step + 1 == CHECKPOINT_AFTER:
            ckpt.save_checkpoint(meta={"steps": step + 1}, end_of_epoch=False)
        if step == hang_at:
            time.sleep(120)  # mid-epoch, until the test kills the node
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__" and sys.argv[1:2] == ["multinode-worker"]:
    multinode_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
