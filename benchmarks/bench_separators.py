"""Benchmark of the separators: size, MACs, CPU time and peak memory on 4 s mixtures.

Every model card in ``hparams/models/`` (so new cards are picked up) against the alternatives a
SpeechBrain user would pick, SpeechBrain's own lobes at their recipe sizes:

* SepFormer: ``speechbrain.lobes.models.dual_path`` Encoder (256 filters, kernel 16, stride 8),
  ``Dual_Path_Model`` (2 layers of 8-layer intra/inter ``SBTransformerBlock``, d_model 256,
  8 heads, d_ffn 1024, chunks of 250, layer norm, skip around intra), Decoder; 2 sources, 8 kHz
  (``recipes/LibriMix/separation/hparams/sepformer-libri2mix.yaml``);
* Conv-TasNet: the same encoder/decoder and ``conv_tasnet.MaskNet`` (N 256, B 256, H 512, P 3,
  X 6, R 4, gLN, causal, ReLU masks); 2 sources, 8 kHz. SpeechBrain's LibriMix folder has no
  Conv-TasNet recipe, so these are the sizes of ``recipes/WSJ0Mix/separation/hparams/
  convtasnet.yaml`` (also 2-speaker, 8 kHz).

The cards bring their own rows, among them TIGER (Xu et al., ICLR 2025): ``tiger_small`` (the
paper's 2-speaker model at 16 kHz, 0.82 M parameters) and ``tiger`` (the same network with
GASS's 4 outputs). TIGER's parameters are few because one block is shared by its repeats; its
compute is not: MSA runs over every band of every frame, so read its MACs and CPU time, not its
size, against the others (its CPU time is dominated by memory-bound element-wise ops and
normalisations, which the MACs column does not count).

Each model separates a 4 s mixture at its own sample rate (batch 1, eval, no grad). Columns:

* parameters;
* MACs per second of input: ``torch.utils.flop_counter.FlopCounterMode`` on the 4 s forward,
  FLOPs / 2 / 4. FlopCounterMode counts matrix products, convolutions and attention, not
  element-wise ops; its registry misses three CPU kernels these models run, so formulas are
  added for them: the fused LSTM layer (``mkldnn_rnn_layer``, one MAC per weight per step), the
  CPU flash attention kernel and ``_native_multi_head_attention`` (PyTorch's own attention
  formula ``sdpa_flop_count``, plus the projections);
* CPU time: one torch thread, thread CPU time of a forward, minimum over interleaved rounds (the
  machine is shared; CPU time and the minimum are robust to other processes, wall time is not);
* peak memory: in a fresh child process, after a forward on 0.25 s (kernels and thread pools
  initialised), the peak resident size during the 4 s forward (Linux ``VmHWM``, reset just
  before it) minus the resident size before it, i.e. what the forward itself adds.

Ratios are against SepFormer. Target (the TDANet paper reports ≈5 % of SepFormer's MACs and ≈10 %
of its CPU time): the ``tdanet_paper`` card (8 kHz, the same input as SepFormer) at ≤ 0.15× the
CPU time of SepFormer.

Run: ``.venv/bin/python benchmarks/bench_separators.py [--rounds 3] [--seconds 4]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch
from hyperpyyaml import load_hyperpyyaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "hparams" / "models").glob("*.yaml"))
BASELINES = ("sepformer", "convtasnet")
REFERENCE = "sepformer"
TARGET_CARD, TARGET_RATIO = "tdanet_paper", 0.15


class SpeechBrainMasking(nn.Module):
    """Encoder -> masker -> decoder as SpeechBrain's separation recipes run them.

    Arguments
    ---------
    encoder : nn.Module
        ``dual_path.Encoder``: ``[B, T] -> [B, N, L]``.
    masknet : nn.Module
        A SpeechBrain masker: ``[B, N, L] -> [S, B, N, L]``.
    decoder : nn.Module
        ``dual_path.Decoder``: ``[B, N, L] -> [B, T']``.
    num_sources : int
        ``S``.
    sample_rate : int
        Sample rate in Hz.
    """

    def __init__(self, encoder: nn.Module, masknet: nn.Module, decoder: nn.Module,
                 num_sources: int, sample_rate: int) -> None:
        super().__init__()
        self.encoder, self.masknet, self.decoder = encoder, masknet, decoder
        self.num_sources, self.sample_rate = num_sources, sample_rate

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates ``mix`` ``[B, T]`` into ``[B, T, S]`` (decoder output cropped or padded)."""
        feats = self.encoder(mix)  # [B, N, L]
        masks = self.masknet(feats)  # [S, B, N, L]
        est = torch.stack([self.decoder(feats * m) for m in masks], dim=-1)  # [B, T', S]
        length = mix.shape[-1]
        est = nn.functional.pad(est, (0, 0, 0, max(0, length - est.shape[1])))
        return est[:, :length]


def build_baseline(name: str) -> nn.Module:
    """SpeechBrain's SepFormer or Conv-TasNet at its recipe size (see the module docstring).

    Arguments
    ---------
    name : str
        ``"sepformer"`` or ``"convtasnet"``.

    Returns
    -------
    torch.nn.Module
        The model, ``[B, T] -> [B, T, 2]`` at 8 kHz.
    """
    from speechbrain.lobes.models import conv_tasnet, dual_path

    encoder = dual_path.Encoder(kernel_size=16, out_channels=256)
    decoder = dual_path.Decoder(in_channels=256, out_channels=1, kernel_size=16, stride=8,
                                bias=False)
    if name == "sepformer":
        def block():
            return dual_path.SBTransformerBlock(num_layers=8, d_model=256, nhead=8, d_ffn=1024,
                                                dropout=0, use_positional_encoding=True,
                                                norm_before=True)
        masknet = dual_path.Dual_Path_Model(
            in_channels=256, out_channels=256, intra_model=block(), inter_model=block(),
            num_layers=2, norm="ln", K=250, num_spks=2, skip_around_intra=True,
            linear_layer_after_inter_intra=False)
    elif name == "convtasnet":
        masknet = conv_tasnet.MaskNet(N=256, B=256, H=512, P=3, X=6, R=4, C=2, norm_type="gLN",
                                      causal=True, mask_nonlinear="relu")
    else:
        raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
    return SpeechBrainMasking(encoder, masknet, decoder, num_sources=2, sample_rate=8000)


def build(name: str) -> nn.Module:
    """A model by name: a card stem from hparams/models or a baseline, in eval mode.

    Arguments
    ---------
    name : str
        Card stem (``tdanet_wav``) or ``sepformer`` / ``convtasnet``.

    Returns
    -------
    torch.nn.Module
        The model with ``sample_rate`` and ``num_sources`` attributes.
    """
    torch.manual_seed(0)
    if name in BASELINES:
        return build_baseline(name).eval()
    with open(ROOT / "hparams" / "models" / f"{name}.yaml") as f:
        return load_hyperpyyaml(f)["separator"].eval()


def _rnn_layer_flops(inp, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``aten.mkldnn_rnn_layer``: each step multiplies the input and hidden state by
    the gate weights, ``2 * steps * batch * (numel(W_ih) + numel(W_hh))``."""
    steps_times_batch = 1
    for size in inp[:-1]:
        steps_times_batch *= size
    w_ih_n = w_ih[0] * w_ih[1]
    w_hh_n = w_hh[0] * w_hh[1]
    return 2 * steps_times_batch * (w_ih_n + w_hh_n)


def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash attention kernel, by PyTorch's own SDPA formula."""
    return sdpa_flop_count(query, key, value)


def _native_mha_flops(query, key, value, embed_dim, num_head, *args, out_shape=None,
                      **kwargs) -> int:
    """FLOPs of ``aten._native_multi_head_attention`` (batch first): Q, K, V and output
    projections plus attention."""
    batch, len_q, _ = query
    len_k = key[1]
    projections = 2 * batch * embed_dim * embed_dim * (2 * len_q + 2 * len_k)
    head = embed_dim // num_head
    attention = sdpa_flop_count((batch, num_head, len_q, head), (batch, num_head, len_k, head),
                                (batch, num_head, len_k, head))
    return projections + attention


FLOP_FORMULAS = {
    torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
    torch.ops.aten._native_multi_head_attention: _native_mha_flops,
}


def count_macs(model: nn.Module, mix: torch.Tensor) -> float:
    """MACs of one forward (FLOPs / 2) by ``FlopCounterMode`` with :data:`FLOP_FORMULAS`.

    Arguments
    ---------
    model : torch.nn.Module
        The separator.
    mix : torch.Tensor
        ``[1, T]`` input.

    Returns
    -------
    float
        Multiply-accumulates.
    """
    counter = FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS)
    with torch.no_grad(), counter:
        model(mix)
    return counter.get_total_flops() / 2


def cpu_seconds(model: nn.Module, mix: torch.Tensor) -> float:
    """Thread CPU time of one forward (no grad).

    Arguments
    ---------
    model : torch.nn.Module
        The separator.
    mix : torch.Tensor
        Input.

    Returns
    -------
    float
        Seconds.
    """
    with torch.no_grad():
        start = time.thread_time()
        model(mix)
        return time.thread_time() - start


def child_peak_memory(name: str, seconds: float) -> None:
    """Child process: prints the peak RSS one forward adds over the loaded model (MiB).

    Arguments
    ---------
    name : str
        Model name.
    seconds : float
        Mixture duration.
    """
    torch.set_num_threads(1)
    model = build(name)
    with torch.no_grad():  # initialise kernels and thread pools on a short input first
        model(torch.randn(1, model.sample_rate // 4))
    mix = torch.randn(1, int(seconds * model.sample_rate))
    loaded = psutil.Process().memory_info().rss
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: reset the peak resident size (VmHWM) to the current one
    with torch.no_grad():
        model(mix)
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) * 1024
    print(json.dumps({"peak_mib": (peak - loaded) / 2**20}))


def peak_memory_mib(name: str, seconds: float) -> float:
    """Runs :func:`child_peak_memory` in a fresh process and returns its figure.

    Arguments
    ---------
    name : str
        Model name.
    seconds : float
        Mixture duration.

    Returns
    -------
    float
        MiB added by the forward.
    """
    out = subprocess.run([sys.executable, __file__, "--child-memory", name, "--seconds",
                          str(seconds)], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def run_step(model: nn.Module, mix: torch.Tensor, train: bool) -> None:
    """One no-grad forward (eval mode), or one forward + backward of the summed outputs'
    squares (train mode, gradients dropped after); the model is left in eval mode.

    Arguments
    ---------
    model : torch.nn.Module
        The separator.
    mix : torch.Tensor
        Input.
    train : bool
        Forward + backward instead of an inference forward.
    """
    model.train(train)
    if train:
        model(mix).square().mean().backward()
        model.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            model(mix)
    model.eval()


def gpu_milliseconds(model: nn.Module, mix: torch.Tensor, train: bool, repeats: int) -> float:
    """Median GPU time of a forward (``train=False``, no grad) or forward+backward, in ms.

    Arguments
    ---------
    model : torch.nn.Module
        The separator, on the GPU.
    mix : torch.Tensor
        Input on the GPU.
    train : bool
        Time forward + backward of the summed outputs' squares (train mode) instead.
    repeats : int
        Timed repetitions (after 3 untimed ones).

    Returns
    -------
    float
        Milliseconds (CUDA events around each repetition, median).
    """
    times = []
    for i in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run_step(model, mix, train)
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end))
    return statistics.median_high(times)  # the middle sample of an even count: the upper one


def gpu_peak_mib(model: nn.Module, mix: torch.Tensor, train: bool) -> float:
    """GPU memory one forward (or forward+backward) adds over the loaded model and input (MiB).

    Arguments
    ---------
    model : torch.nn.Module
        The separator, on the GPU.
    mix : torch.Tensor
        Input on the GPU.
    train : bool
        Forward + backward (activations kept for the backward) instead of a no-grad forward.

    Returns
    -------
    float
        ``max_memory_allocated`` during the call minus the allocated memory before it.
    """
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run_step(model, mix, train)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def gpu_main(names: list[str], seconds: float, repeats: int) -> None:
    """GPU table: inference (batch 1) and training-step (batch 4) time and memory.

    Arguments
    ---------
    names : list of str
        Models to measure (SepFormer first).
    seconds : float
        Mixture duration.
    repeats : int
        Timed repetitions per measurement.
    """
    torch.backends.cudnn.benchmark = True
    rows = {}
    for name in names:
        model = build(name).cuda().eval()
        one = torch.randn(1, int(seconds * model.sample_rate), device="cuda")
        four = torch.randn(4, one.shape[1], device="cuda")
        rows[name] = {
            "rate": model.sample_rate, "sources": model.num_sources,
            "params": sum(p.numel() for p in model.parameters()),
            "infer_ms": gpu_milliseconds(model, one, False, repeats),
            "infer_mib": gpu_peak_mib(model, one, False),
            "train_ms": gpu_milliseconds(model, four, True, repeats),
            "train_mib": gpu_peak_mib(model, four, True),
        }
        del model
        torch.cuda.empty_cache()
    ref = rows[REFERENCE]
    print(f"bench_separators --device cuda: {torch.cuda.get_device_name()}, torch "
          f"{torch.__version__}, float32, {seconds:g} s mixtures; inference = batch 1, eval, no "
          f"grad; train step = batch 4, forward + backward (dropout on); median of {repeats} "
          f"(CUDA events); memory = peak allocated over the loaded model; ratios vs SepFormer\n")
    print("| model | rate | S | params | infer ms | infer MiB | train-step ms | train MiB | "
          "infer / SepFormer | train / SepFormer | train MiB / SepFormer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['rate'] // 1000} kHz | {r['sources']} | {r['params'] / 1e6:.2f} M "
              f"| {r['infer_ms']:.1f} | {r['infer_mib']:.0f} | {r['train_ms']:.1f} | "
              f"{r['train_mib']:.0f} | {r['infer_ms'] / ref['infer_ms']:.2f}x | "
              f"{r['train_ms'] / ref['train_ms']:.2f}x | "
              f"{r['train_mib'] / ref['train_mib']:.2f}x |")


def main() -> None:
    """Measures every card and baseline and prints the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--seconds", type=float, default=4.0, help="mixture duration")
    parser.add_argument("--models", nargs="+", help="only these (card stems or baselines; "
                        "sepformer is always included as the reference)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cuda: GPU inference and training-step times and memory instead")
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        child_peak_memory(args.child_memory, args.seconds)
        return

    torch.set_num_threads(1)
    names = list(BASELINES) + [card.stem for card in CARDS]
    if args.models:
        unknown = sorted(set(args.models) - set(names))
        if unknown:
            parser.error(f"unknown models {unknown}; choose from {names}")
        names = [n for n in names if n in args.models or n == REFERENCE]
    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is visible to torch")
        gpu_main(names, args.seconds, max(args.rounds, 10))
        return
    models = {name: build(name) for name in names}
    mixes = {name: torch.randn(1, int(args.seconds * m.sample_rate))
             for name, m in models.items()}
    rows = {}
    for name, model in models.items():
        rows[name] = {
            "rate": model.sample_rate,
            "sources": model.num_sources,
            "params": sum(p.numel() for p in model.parameters()),
            "macs_per_s": count_macs(model, mixes[name]) / args.seconds,
            "peak_mib": peak_memory_mib(name, args.seconds),
            "cpu": [],
        }
    for name, model in models.items():  # warm-up (allocator, oneDNN primitives)
        cpu_seconds(model, mixes[name])
    for _ in range(args.rounds):
        for name, model in models.items():
            rows[name]["cpu"].append(cpu_seconds(model, mixes[name]))

    ref = rows[REFERENCE]
    ref_time = min(ref["cpu"])
    print(f"bench_separators: {args.seconds:g} s mixtures, batch 1, eval, no grad; 1 torch "
          f"thread ({psutil.cpu_count()} CPUs, {platform.machine()}), torch {torch.__version__}; "
          f"CPU time = min thread time over {args.rounds} interleaved rounds; ratios vs "
          f"SepFormer (8 kHz)\n")
    print(f"| model | rate | S | params | GMACs / s of input | CPU s ({args.seconds:g} s mix) | "
          "RTF (1 core) | peak MiB | params / SepFormer | MACs / SepFormer | CPU / SepFormer | "
          "memory / SepFormer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        cpu = min(row["cpu"])
        print(f"| {name} | {row['rate'] // 1000} kHz | {row['sources']} | "
              f"{row['params'] / 1e6:.2f} M | {row['macs_per_s'] / 1e9:.2f} | {cpu:.2f} | "
              f"{cpu / args.seconds:.2f} | {row['peak_mib']:.0f} | "
              f"{row['params'] / ref['params']:.2f}x | "
              f"{row['macs_per_s'] / ref['macs_per_s']:.3f}x | {cpu / ref_time:.3f}x | "
              f"{row['peak_mib'] / ref['peak_mib']:.2f}x |")
    if TARGET_CARD in rows:
        ratio = min(rows[TARGET_CARD]["cpu"]) / ref_time
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(f"\n{TARGET_CARD} CPU time = {ratio:.3f}x SepFormer's on the same 8 kHz input "
              f"(target <= {TARGET_RATIO}x: {verdict}); MACs "
              f"{rows[TARGET_CARD]['macs_per_s'] / ref['macs_per_s']:.3f}x")


if __name__ == "__main__":
    main()
