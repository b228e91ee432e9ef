"""Tests of the fast training step: regional compilation (gass_modules.training.compile_regions),
the
sync-free guarded update and the whole-step CUDA graph (gass_modules.training.training_step), and
their
use by SeparationBrain (switches, static shapes, non-finite batches, fall-back).

References: a plain optimiser step on copies of the same parameters; the eager step's loss
trajectory for the compiled and graphed steps. Tests marked ``cuda`` run only on a GPU.
"""

import logging
import math
import os

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.epoch_loop import EpochCounter

from gass_modules.lobes.bs_roformer import BSRoFormer
from gass_modules.lobes.bsrnn import BSRNN
from gass_modules.lobes.tdanet import TDANetSTFT
from gass_modules.lobes.tiger import TIGER
from gass_modules.losses import pit_log_mse
from gass_modules.training.brain import SeparationBrain
from gass_modules.training.compile_regions import compile_regions, find_regions
from gass_modules.training.training_step import (
    GraphedTrainStep,
    GuardedUpdate,
    cuda_graph_blocker,
    make_fused,
)
from tests.unittests.test_brain import GainSeparator, loader, make_brain, make_items

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def tiny_tdanet(num_blocks=3, dropout=0.0):
    return TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
                      bottleneck_channels=8, hidden_channels=16, depth=2, num_blocks=num_blocks,
                      num_heads=2, dropout=dropout)


# ----------------------------------------------------------------------------------------------
# region discovery
# ----------------------------------------------------------------------------------------------
def test_find_regions_of_the_lobes():
    """The repeated blocks of every lobe are found without naming them: the shared blocks
    called in a loop (TDANet, TIGER) and the ModuleList elements of one class (band layers,
    band-sequence blocks, RoFormer blocks)."""
    names = [n for n, _ in find_regions(tiny_tdanet())]
    assert names == ["masker.block", "masker.reinject"]
    bsrnn = BSRNN(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
                  band_plan=[(0, 1000), (1000, 2000), (2000, 4000)], feature_dim=8,
                  hidden_dim=8, num_blocks=2, mask_hidden_dim=8)
    names = [n for n, _ in find_regions(bsrnn)]
    assert "blocks.0" in names and "blocks.1" in names
    assert all(not n.startswith("blocks.0.") for n in names)  # only the outermost
    roformer = BSRoFormer(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
                          band_plan=[(0, 1000), (1000, 4000)], feature_dim=8, num_blocks=2,
                          num_heads=2, mask_hidden_dim=8)
    assert {"blocks.0", "blocks.1"} <= {n for n, _ in find_regions(roformer)}
    tiger = TIGER(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
                  band_plan=[(0, 1000), (1000, 4000)], feature_dim=8, hidden_dim=8, depth=1,
                  num_blocks=3, num_heads=2, key_channels=2)
    assert {"block", "reinject"} <= {n for n, _ in find_regions(tiger)}


def test_class_attribute_names_the_regions_and_bad_names_are_explained():
    class Named(GainSeparator):
        compile_regions = ("inner.*",)

        def __init__(self):
            super().__init__()
            self.inner = torch.nn.ModuleList([torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)])

    assert [n for n, _ in find_regions(Named())] == ["inner.0", "inner.1"]
    Named.compile_regions = ("missing",)
    with pytest.raises(ValueError, match="'missing', which is not a submodule"):
        find_regions(Named())
    with pytest.raises(TypeError, match="needs a torch.nn.Module"):
        find_regions(lambda x: x)


def test_compiled_regions_switch_off_and_on_and_keep_state_dict_names():
    model = tiny_tdanet()
    keys = list(model.state_dict())
    handle = compile_regions(model, backend="eager")
    assert list(model.state_dict()) == keys  # checkpoints load either way
    mix = torch.randn(2, 800)
    model.eval()
    compiled = model(mix)
    handle.disable()
    assert torch.allclose(model(mix), compiled, atol=1e-6)
    handle.enable()
    assert all(m._compiled_call_impl is not None for m in handle)


# ----------------------------------------------------------------------------------------------
# the guarded update
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.Adam(p, lr=0.1, fused=True),  # found_inf inside the fused kernel
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),  # restored from the copy
    lambda p: torch.optim.Adam(p, lr=0.1),  # restored (its host step counter excepted)
])
def test_guarded_update_skips_exactly_and_steps_like_the_optimizer(make_opt):
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(5))
    ref = torch.nn.Parameter(param.detach().clone())
    opt, ref_opt = make_opt([param]), make_opt([ref])
    update = GuardedUpdate(opt)
    for step, ok in enumerate([True, False, True, False, False, True]):
        grad = torch.randn(5)
        param.grad = grad.clone() if ok else torch.full((5,), math.nan)
        before = param.detach().clone()
        update.step(torch.tensor(ok))
        if ok:
            ref.grad = grad
            ref_opt.step()
            assert torch.allclose(param, ref, rtol=1e-6, atol=1e-7), step
        else:
            assert torch.equal(param.detach(), before)  # bit for bit
        assert torch.isfinite(param).all()
    for key, value in ref_opt.state[ref].items():  # the moments match too
        if key != "step":
            assert torch.allclose(opt.state[param][key], value, rtol=1e-6, atol=1e-7)


def test_guarded_update_first_step_skipped_leaves_fresh_state():
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    param.grad = torch.full((3,), math.nan)
    GuardedUpdate(opt).step(torch.tensor(False))
    assert torch.equal(param.detach(), torch.ones(3))
    assert torch.equal(opt.state[param]["momentum_buffer"], torch.zeros(3))


def test_make_fused_only_touches_adam_and_blockers_explain():
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    assert not make_fused(sgd) and not GuardedUpdate(sgd).uses_found_inf
    assert cuda_graph_blocker("cpu", sgd) == "CUDA graphs need a CUDA device (training runs on cpu)"
    with pytest.raises(ValueError, match="warmup_steps must be >= 1"):
        GraphedTrainStep(lambda inputs: None, torch.optim.Adam([torch.nn.Parameter(
            torch.ones(1))]), warmup_steps=0)
    with pytest.raises(TypeError, match="needs a torch.optim.Optimizer"):
        GuardedUpdate(object())


# ----------------------------------------------------------------------------------------------
# SeparationBrain switches
# ----------------------------------------------------------------------------------------------
def nan_target_items():
    items = make_items(12)
    items[4]["targets"] = items[4]["targets"].clone()
    items[4]["targets"][3, 0] = math.nan  # the second batch of 4
    items[9]["mix"] = items[9]["mix"].clone()
    items[9]["mix"][7] = math.inf  # the third: a NaN mixture is skipped too, not refused
    return items


def test_sync_free_step_skips_nonfinite_batches_on_the_device(tmp_path):
    """The GPU's sync-free step (forced on the CPU): the non-finite batches do not move the
    weights, are counted at the next read, and the trained gains match the eager step's."""
    brain, counter = make_brain(tmp_path, lr=0.1, sync_interval=2)
    brain.sync_free = True
    seen = []
    brain.on_fit_batch_end = lambda batch, out, loss, step: seen.append(
        brain.modules.separator.gain.detach().clone())
    brain.fit(counter, loader(nan_target_items(), batch_size=4))
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], seen[2])
    assert brain.skipped_nonfinite == 2 and brain.train_stats["skipped"] == 2
    assert math.isfinite(brain.train_stats["loss"])
    assert brain.optimizer.param_groups[0]["fused"]  # Adam skips inside its kernel

    eager, counter = make_brain(tmp_path / "eager", lr=0.1, epochs=3)
    fast, fast_counter = make_brain(tmp_path / "fast", lr=0.1, epochs=3)
    fast.sync_free = True
    eager.fit(counter, loader(make_items(16)))
    fast.fit(fast_counter, loader(make_items(16)))
    assert torch.allclose(fast.modules.separator.gain, eager.modules.separator.gain, rtol=1e-5)
    assert fast.train_stats["loss"] == pytest.approx(eager.train_stats["loss"], rel=0.05)


def test_sync_free_patience_still_stops_the_run(tmp_path):
    brain, counter = make_brain(tmp_path, run_opts={"nonfinite_patience": 0}, sync_interval=1)
    brain.sync_free = True
    with pytest.raises(ValueError, match="exceed nonfinite_patience=0"):
        brain.fit(counter, loader(nan_target_items(), batch_size=4))


def test_cuda_graphs_on_cpu_fall_back_with_one_log_line(tmp_path, caplog):
    brain, counter = make_brain(tmp_path, cuda_graphs=True)
    with caplog.at_level(logging.WARNING, logger="gass_modules.training.brain"):
        brain.fit(counter, loader(make_items(8)))
    lines = [r.getMessage() for r in caplog.records if "cuda_graphs" in r.getMessage()]
    assert lines == ["cuda_graphs: training with the eager step instead: CUDA graphs need a "
                     "CUDA device (training runs on cpu)"]
    assert brain.graphed_step is None and brain.optimizer_step == 2


def test_switches_hold_training_to_one_shape(tmp_path):
    """With compile_regions or cuda_graphs the train loader drops the last partial batch, and
    a batch of another shape (another segment length) is refused with the fix."""
    brain, counter = make_brain(tmp_path, compile_regions=True)
    brain.fit(counter, make_items(10), train_loader_kwargs={"batch_size": 4,
                                                            "collate_fn": PaddedBatch})
    assert brain.optimizer_step == 2  # 10 items, batches of 4: the last 2 dropped
    brain, counter = make_brain(tmp_path / "b", cuda_graphs=True)
    items = make_items(4) + make_items(4, length=900)
    with pytest.raises(ValueError, match="must have one shape"):
        brain.fit(counter, loader(items, batch_size=4))
    with pytest.raises(ValueError, match="compile_regions must be true or false"):
        make_brain(tmp_path / "c", compile_regions="yes")
    with pytest.raises(ValueError, match="sync_interval must be a positive int"):
        make_brain(tmp_path / "d", sync_interval=0)


def test_recipes_expose_the_switches_off_by_default():
    """Every GASS recipe has both keys, off (except gass_base.yaml, the GPU recipe, which
    captures its step: ``cuda_graphs: true``); ``--compile_regions=True`` on the command line
    (SpeechBrain's parser passes it as an override) switches them on."""
    import speechbrain as sb
    paths = sorted((ROOT / "recipes/GASS/separation/hparams").glob("*.yaml"))
    assert "gass_base.yaml" in [p.name for p in paths]
    for path in paths:
        text = path.read_text()
        graphs = "true" if path.name == "gass_base.yaml" else "false"
        assert "compile_regions: false" in text and f"cuda_graphs: {graphs}" in text, path.name
    _, _, overrides = sb.parse_arguments(["train.yaml", "--compile_regions=True",
                                          "--cuda_graphs=True"])
    assert load_hyperpyyaml("compile_regions: false\ncuda_graphs: false\n", overrides) == {
        "compile_regions": True, "cuda_graphs": True}


# ----------------------------------------------------------------------------------------------
# compiled training: no recompiles, same trajectory (slow: dynamo traces and inductor compiles)
# ----------------------------------------------------------------------------------------------
def _batches(count, batch=2, length=800, sources=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        targets = torch.randn(batch, length, sources, generator=gen) * 0.3
        out.append((targets.sum(-1), targets))
    return out


def _trajectory(model, batches, max_grad_norm=5.0):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for mix, targets in batches:
        loss = pit_log_mse(targets, model(mix), mix).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    return torch.tensor(losses, dtype=torch.float64)


@pytest.mark.slow
def test_compiled_regions_do_not_recompile_across_batches():
    """Tracing happens at the first step only: frames, graphs and recompiles stay constant over
    the next steps (dynamo's counters; the eager backend, so no code generation)."""
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = tiny_tdanet(dropout=0.1)
    compile_regions(model, backend="eager")
    batches = _batches(3)
    _trajectory(model, batches[:1])
    after_first = (dict(counters["frames"]), dict(counters["stats"]),
                   sum(counters["recompiles"].values()))
    _trajectory(model, batches[1:])
    assert (dict(counters["frames"]), dict(counters["stats"]),
            sum(counters["recompiles"].values())) == after_first
    assert counters["stats"]["unique_graphs"] >= 1


INDUCTOR = pytest.param("inductor", marks=pytest.mark.skipif(
    os.environ.get("GASS_TEST_INDUCTOR") != "1",
    reason="inductor's C++ build of the tiny card takes 2-11 min on 2 cores; set "
           "GASS_TEST_INDUCTOR=1 (measured: 6.8e-8 relative, benchmarks/RESULTS.md)"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", INDUCTOR])
def test_regional_compile_gives_the_eager_loss_trajectory(backend):
    """50 updates of a tiny TDANet-STFT, eager against compiled regions, from the same seed on
    the same batches. ``aot_eager`` runs the traced and functionalised forward and backward
    graphs (what inductor compiles) without generating code; ``inductor`` also checks the
    generated kernels.

    Tolerance from float32 rounding: compiled kernels reassociate sums, and a sum of n float32
    terms computed in another order differs by at most gamma_n = n u / (1 - n u) relative to the
    sum of magnitudes (Higham, Accuracy and Stability, eq. 3.4), u = 2^-24. The longest sums in
    a step are the loss's over B T S = 3,200 terms, so gamma_n ~ 1.9e-4 per step; Adam's
    normalised updates carry a relative perturbation forward without amplifying it by more than
    the number of steps, so 50 steps give a relative bound of 50 * 1.9e-4 ~ 1e-2 on the loss.
    """
    batches = _batches(50)
    torch.manual_seed(0)
    eager = _trajectory(tiny_tdanet(), batches)
    torch.manual_seed(0)
    model = tiny_tdanet()
    compile_regions(model, backend=backend)
    compiled = _trajectory(model, batches)
    n = 2 * 800 * 2
    gamma = n * 2.0 ** -24 / (1 - n * 2.0 ** -24)
    rel = ((compiled - eager).abs() / eager.abs()).max().item()
    assert rel <= 50 * gamma, rel
    assert eager[-10:].mean() < eager[:10].mean()  # it trains


# ----------------------------------------------------------------------------------------------
# on a GPU (skipped without one; tools/device script runs `pytest -m cuda`)
# ----------------------------------------------------------------------------------------------
def _gpu_brain(tmp_path, separator, precision="fp32", **hparams):
    counter = EpochCounter(1)
    hp = {"loss": pit_log_mse, "output_folder": str(tmp_path), "epoch_counter": counter,
          **hparams}
    brain = SeparationBrain({"separator": separator}, lambda p: torch.optim.Adam(p, lr=1e-3),
                            hp, run_opts={"device": "cuda:0", "noprogressbar": True,
                                          "max_grad_norm": 5.0, "precision": precision})
    return brain, counter


def _gpu_items(count, length=8000, sources=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i in range(count):
        targets = torch.randn(length, sources, generator=gen) * 0.3
        items.append({"id": f"m{i}", "mix": targets.sum(-1), "targets": targets,
                      "num_sources": sources, "categories": ["a"] * sources})
    return items


@pytest.mark.cuda
def test_graphed_step_gives_the_eager_trajectory_on_gpu(tmp_path):
    """Warm-up, capture and 47 replays give the eager sync-free step's losses (same seed, no
    dropout; the same float32 bound as on the CPU), and a NaN batch is skipped in the graph."""
    items = _gpu_items(100)
    items[60]["targets"] = items[60]["targets"].clone()
    items[60]["targets"][5, 0] = math.nan
    runs = {}
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True  # the graphed step turns it on: both runs alike
    for graphs in (False, True):
        torch.manual_seed(0)
        brain, counter = _gpu_brain(tmp_path / str(graphs), tiny_tdanet(), cuda_graphs=graphs)
        losses = []
        brain.on_fit_batch_end = lambda b, o, loss, s, seen=losses: seen.append(loss.clone())
        brain.fit(counter, loader(items, batch_size=2))
        assert (brain.graphed_step is not None) == graphs
        runs[graphs] = torch.stack(losses).double().cpu()
        assert brain.skipped_nonfinite == 1
    torch.backends.cuda.matmul.allow_tf32 = tf32
    eager, graphed = runs[False], runs[True]
    finite = torch.isfinite(eager)
    assert torch.equal(finite, torch.isfinite(graphed)) and (~finite).sum() == 1
    n = 2 * 8000 * 2
    rel = ((graphed - eager).abs() / eager.abs())[finite].max().item()
    assert rel <= 50 * n * 2.0 ** -24, rel


@pytest.mark.cuda
def test_bf16_training_tracks_fp32_on_gpu(tmp_path):
    """bf16 autocast (8 mantissa bits, u = 2^-8) trains as fp32 does: final losses within 10 %."""
    finals = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        brain, counter = _gpu_brain(tmp_path / precision, tiny_tdanet(), precision=precision)
        brain.fit(counter, loader(_gpu_items(64), batch_size=4))
        finals[precision] = brain.train_stats["loss"]
    assert math.isfinite(finals["bf16"])
    assert finals["bf16"] == pytest.approx(finals["fp32"], rel=0.1)


@pytest.mark.cuda
def test_loss_tf32_branch_matches_float64_reference():
    """With TF32 matmuls on, the loss's Gram products run in float64 (losses.py), so it equals
    the float64 loss on the CPU to float32 rounding."""
    gen = torch.Generator().manual_seed(0)
    targets = torch.randn(3, 4000, 4, generator=gen)
    est = targets + 0.1 * torch.randn(3, 4000, 4, generator=gen)
    mix = targets.sum(-1)
    ref = pit_log_mse(targets.double(), est.double(), mix.double())
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        got = pit_log_mse(targets.cuda(), est.cuda(), mix.cuda()).cpu().double()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.cuda
def test_chunked_inference_on_the_device_matches_the_cpu():
    from gass_modules.inference.chunking import separate_chunked
    torch.manual_seed(0)
    model = tiny_tdanet().eval()
    signal = torch.randn(1, 8000 * 3)
    with torch.no_grad():
        cpu = separate_chunked(model, signal, sample_rate=8000, chunk_seconds=1.0)
        gpu = separate_chunked(model.cuda(), signal, sample_rate=8000, chunk_seconds=1.0,
                               device="cuda")
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


@pytest.mark.cuda
def test_gass_mini_card_is_captured_on_gpu(tmp_path):
    """The GASS-mini card's step is captured (no host read inside it) and replayed."""
    card = load_hyperpyyaml((ROOT / "gass_modules/model_folder/pretrained/gass_mini"
                                 / "hyperparams.yaml")
                            .read_text(), overrides={})
    brain, counter = _gpu_brain(tmp_path, card["separator"], cuda_graphs=True)
    brain.fit(counter, loader(_gpu_items(24, sources=4), batch_size=4))
    assert brain.graphed_step is not None and brain.graphed_step.graph is not None
    assert math.isfinite(brain.train_stats["loss"])


@pytest.mark.slow
def test_brain_compiles_regions_for_training_only(tmp_path, monkeypatch):
    """compile_regions: the brain compiles the separator's blocks at fit start (here with the
    eager backend: tracing without code generation), trains through them, and evaluates
    eagerly; the checkpointed names are the separator's own."""
    import functools

    import gass_modules.training.brain_step as brain_step
    monkeypatch.setattr(brain_step, "compile_regions",
                        functools.partial(compile_regions, backend="eager"))
    items = _gpu_items(8, length=800)
    brain, counter = make_brain(tmp_path, separator=tiny_tdanet(), compile_regions=True)
    brain.fit(counter, loader(items, batch_size=4), loader(items[:4], batch_size=4))
    assert brain.regions.names == ["masker.block", "masker.reinject"]
    assert brain.optimizer_step == 2 and math.isfinite(brain.train_stats["loss"])
    assert not brain.regions.enabled  # validation ran last, eagerly
    assert set(brain.separator.state_dict()) == set(tiny_tdanet().state_dict())
