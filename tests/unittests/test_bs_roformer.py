"""Tests of the BS-RoFormer lobe against values: RoPE against a brute-force rotation of pairs and
its relative-position property, attention against a naive float64 softmax reference, the blocks'
time-then-bands order, the paper's band plan and parameter counts, dropout, bf16 norms and bad
inputs. (The separator contract itself is checked for every card by
tests/unittests/test_separator_contract.py; the band split and mask MLPs with RMSNorm by
tests/unittests/test_bsrnn.py.)
"""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from gass_modules.lobes.bs_roformer import (
    BSRoFormer,
    RMSNorm,
    RoFormerBlock,
    RoPEAttention,
    RoPETransformerLayer,
    RotaryEmbedding,
)
from gass_modules.lobes.parts.band_layers import BandGroups
from gass_modules.lobes.parts.bands import band_bins, bin_width_bands

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def brute_force_rope(x: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """RoPE by its definition: at position ``p``, the block-diagonal matrix of 2x2 rotations by
    ``p * base^(-2i/d)`` times each feature vector (float64, ``x`` is ``[..., L, d]``)."""
    length, dim = x.shape[-2:]
    out = np.empty_like(x, dtype=np.float64)
    for p in range(length):
        rotation = np.zeros((dim, dim))
        for i in range(dim // 2):
            theta = p * base ** (-2 * i / dim)
            c, s = math.cos(theta), math.sin(theta)
            rotation[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, -s], [s, c]]
        out[..., p, :] = x[..., p, :] @ rotation.T
    return out


@pytest.mark.parametrize("dim,base", [(2, 10000.0), (8, 10000.0), (16, 100.0)])
def test_rope_matches_brute_force_rotation_of_pairs(dim, base):
    """Each pair (x_2i, x_2i+1) at position p is rotated by p * base^(-2i/d)."""
    x = torch.randn(3, 17, dim)
    got = RotaryEmbedding(dim, base)(x).double().numpy()
    np.testing.assert_allclose(got, brute_force_rope(x.double().numpy(), base), atol=1e-5)


def test_rope_positions_on_another_axis():
    """``seq_dim=-3`` (queries [M, L, heads, d]) rotates as the [M, heads, L, d] layout does."""
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 11, 3, 8)  # [M, L, h, d]
    torch.testing.assert_close(rope(x, seq_dim=-3),
                               rope(x.transpose(1, 2)).transpose(1, 2))


def test_rope_scores_depend_only_on_the_offset():
    """q(p) . k(p') after RoPE is a function of p - p' only (the relative-position property)."""
    rope = RotaryEmbedding(16)
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    rope.inv_freq = rope.inv_freq.double()
    rope.pair_sign = rope.pair_sign.double()
    length = 40
    rq = rope(q.expand(length, 16))  # the same query at every position
    rk = rope(k.expand(length, 16))
    scores = rq @ rk.T  # [p, p']
    for offset in (-7, 0, 3, 25):
        diagonal = torch.diagonal(scores, offset=-offset)  # entries with p - p' = offset
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), rtol=0,
                                   atol=1e-9)
    assert not torch.allclose(torch.diagonal(scores, 0)[:1], torch.diagonal(scores, -3)[:1])
    # norms are kept: RoPE is a rotation
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(length))


def test_rope_angles_come_from_the_runtime_length():
    """Any length works, with no cache: the first positions' angles never change."""
    rope = RotaryEmbedding(4, base=100.0)
    short, long = rope.angles(3), rope.angles(500)
    torch.testing.assert_close(long[:3], short)
    torch.testing.assert_close(long[499], torch.tensor([499.0, 49.9]))


def naive_attention(layer: RoPEAttention, x: torch.Tensor) -> torch.Tensor:
    """RoPEAttention written out in float64: RMSNorm, Q K V, per-head brute-force RoPE,
    softmax(Q K^T / sqrt(d)) V with explicit loops over heads, output layer."""
    x64 = x.double().numpy()
    gain = layer.norm.weight.detach().double().numpy()
    normed = x64 / np.sqrt(np.mean(x64**2, axis=-1, keepdims=True) + 1e-5) * gain
    w = layer.qkv.weight.detach().double().numpy()  # [3Z, D]
    z = w.shape[0] // 3
    q, k, v = (normed @ w[i * z:(i + 1) * z].T for i in range(3))  # [M, L, Z]
    heads = layer.num_heads
    d = z // heads
    out = np.zeros_like(q)
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        qh, kh = brute_force_rope(q[..., cols]), brute_force_rope(k[..., cols])
        logits = qh @ kh.transpose(0, 2, 1) / math.sqrt(d)  # [M, L, L]
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        out[..., cols] = weights @ v[..., cols]
    w_out = layer.out.weight.detach().double().numpy()
    b_out = layer.out.bias.detach().double().numpy()
    return torch.from_numpy(out @ w_out.T + b_out)


@pytest.mark.parametrize("heads,attention_dim", [(1, None), (2, None), (4, 32)])
def test_attention_matches_naive_softmax_reference(heads, attention_dim):
    """scaled_dot_product_attention with RoPE equals the float64 loop-over-heads reference."""
    torch.manual_seed(0)
    layer = RoPEAttention(dim=16, num_heads=heads, attention_dim=attention_dim).eval()
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 9, 16)
    with torch.no_grad():
        got = layer(x)
    torch.testing.assert_close(got.double(), naive_attention(layer, x), atol=2e-5, rtol=1e-4)


def test_transformer_layer_is_two_residual_modules():
    """layer(x) = y + FFN(y) with y = x + Attention(x); the FFN is RMSNorm, 4D GELU MLP."""
    torch.manual_seed(0)
    layer = RoPETransformerLayer(dim=8, num_heads=2).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        y = x + layer.attention(x)
        norm, first, _, _, second, _ = layer.feedforward
        expected = y + second(torch.nn.functional.gelu(first(norm(y))))
        torch.testing.assert_close(layer(x), expected)
    assert first.out_features == 32  # 4D


def test_block_attends_across_time_then_across_bands():
    """Changing one (frame, band) cell changes, after the time layer, only that band; after the
    band layer, every band of the frames that band reached: the block is time then bands."""
    torch.manual_seed(0)
    block = RoFormerBlock(dim=8, num_heads=2).eval()
    z = torch.randn(1, 6, 4, 8)  # [B, T, K, D]
    z2 = z.clone()
    z2[0, 2, 1] += 1.0  # frame 2, band 1
    with torch.no_grad():
        def time_only(x):
            b, t, k, d = x.shape
            seq = x.transpose(1, 2).flatten(0, 1)
            return block.time_transformer(seq).unflatten(0, (b, k)).transpose(1, 2)
        changed = (time_only(z2) - time_only(z)).abs().amax(-1)[0] > 1e-6  # [T, K]
        assert changed[:, 1].all() and not changed[:, [0, 2, 3]].any()
        changed = (block(z2) - block(z)).abs().amax(-1)[0] > 1e-6
        assert changed.all()  # band 1 reached every frame, then every band of each frame


def test_roformer_plan_covers_every_bin_once():
    """The paper's plan at 44.1 kHz / 2048: 62 bands of 2, 4, 12, 24, 48 bins and the rest in
    two; every bin 0..1024 in exactly one band, also through BandGroups' gather indices."""
    bins = band_bins("roformer", 44100, 2048)
    widths = [end - start for start, end in bins]
    assert widths == [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]
    assert len(bins) == 62
    covered = [j for start, end in bins for j in range(start, end)]
    assert covered == list(range(1025))
    groups = BandGroups(bins)
    gathered = torch.cat(groups.bin_index).sort().values
    assert torch.equal(gathered, torch.arange(1025))
    # each segment ends at the first whole band reaching the paper's limit (1 ... 16 kHz)
    spacing = 44100 / 2048
    starts = [start for start, _ in bins]
    for edge_bin, width, limit in ((48, 2, 1000), (96, 4, 2000), (192, 12, 4000),
                                   (384, 24, 8000), (768, 48, 16000)):
        assert edge_bin in starts
        assert edge_bin * spacing >= limit > (edge_bin - width) * spacing


@pytest.mark.parametrize("sample_rate,n_fft", [(16000, 512), (8000, 512), (48000, 2048)])
def test_gass_card_and_other_rates_cover_every_bin_once(sample_rate, n_fft):
    """The band split's groups gather each bin exactly once for the cards' other settings."""
    for plan in ("gass", "roformer"):
        groups = BandGroups(band_bins(plan, sample_rate, n_fft))
        assert torch.equal(torch.cat(groups.bin_index).sort().values,
                           torch.arange(n_fft // 2 + 1))


def test_bin_width_bands_round_trip_and_errors():
    """Widths in bins give back those widths at their rate; bad segments say what is wrong."""
    plan = bin_width_bands([(3, 2), (5, 3)], sample_rate=22050, n_fft=1024)
    assert [e - s for s, e in band_bins(plan, 22050, 1024)] == [3, 3, 5, 5, 5, 513 - 21]
    with pytest.raises(ValueError, match="more than the 17"):
        bin_width_bands([(4, 5)], sample_rate=8000, n_fft=32)
    with pytest.raises(ValueError, match=r"\(bins_per_band, num_bands\) pairs"):
        bin_width_bands([4, 5], sample_rate=8000, n_fft=32)
    with pytest.raises(ValueError, match="bins_per_band must be a positive int"):
        bin_width_bands([(0, 5)], sample_rate=8000, n_fft=32)


def _count(**kwargs) -> dict:
    """Parameter counts of a BSRoFormer built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = BSRoFormer(**kwargs)
    parts = {name: sum(p.numel() for p in getattr(model, name).parameters())
             for name in ("band_split", "blocks", "mask_estimator")}
    return {"total": sum(p.numel() for p in model.parameters()), **parts}


PAPER = dict(sample_rate=44100, n_fft=2048, hop_length=441, band_plan="roformer",
             feature_dim=384, num_heads=8)


@pytest.mark.parametrize("num_blocks,reported", [(6, 72.2e6), (12, 93.4e6)])
def test_paper_parameter_counts_are_reproduced(num_blocks, reported):
    """The paper's models (one stem, stereo input) have 72.2 M (L = 6) and 93.4 M (L = 12).

    Its stereo one-stem model has our tensors for 2 mono outputs (each band's mask output layer
    gives 2 x 2 x 2 G_k values either way), except that its band split reads both channels:
    4 G_k inputs per band instead of 2 G_k, i.e. 2 * 1025 more columns of D weights and 2 * 1025
    more RMSNorm gains."""
    stereo_band_split = 2 * 1025 * 384 + 2 * 1025
    counts = _count(num_sources=2, num_blocks=num_blocks, **PAPER)
    assert abs(counts["total"] + stereo_band_split - reported) < 0.05e6
    # six blocks are the difference between the two reported sizes (93.4 - 72.2 = 21.2 M):
    # Z = D and a 4D feed-forward (other choices, e.g. 8 heads of 64, give 23.6 M)
    assert abs(_count(num_sources=2, num_blocks=6, **PAPER)["blocks"] - 21.2e6) < 0.1e6


def test_music_card_is_the_paper_configuration_with_four_mono_stems():
    """The music card: the paper's D, L, heads, plan and STFT; 105.25 M parameters."""
    with open(ROOT / "hparams" / "models" / "bs_roformer_music.yaml") as f:
        text = f.read()
    with torch.device("meta"):
        model = load_hyperpyyaml(text)["separator"]
    assert model.num_bands == 62 and model.n_fft == 2048 and model.hop_length == 441
    assert len(model.blocks) == 12 and model.sample_rate == 44100 and model.num_sources == 4
    attention = model.blocks[0].time_transformer.attention
    assert attention.num_heads == 8 and attention.rope.head_dim == 48
    total = sum(p.numel() for p in model.parameters())
    assert total == _count(num_sources=4, num_blocks=12, **PAPER)["total"]
    assert abs(total - 105.25e6) < 0.01e6


def test_dropout_only_in_training():
    """With dropout, two training-mode outputs differ; eval mode and dropout 0 are repeatable."""
    torch.manual_seed(0)
    kwargs = dict(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32, band_plan="speech",
                  feature_dim=8, num_blocks=1, num_heads=2)
    mix = torch.randn(1, 320)
    model = BSRoFormer(dropout=0.3, **kwargs).train()
    with torch.no_grad():
        assert not torch.equal(model(mix), model(mix))
        model.eval()
        assert torch.equal(model(mix), model(mix))
        plain = BSRoFormer(dropout=0.0, **kwargs).train()
        assert torch.equal(plain(mix), plain(mix))


def test_rms_norm_in_bf16_is_computed_in_float32_without_warnings():
    """bf16 activations keep their dtype; the norm matches the float32 one on the same input."""
    norm = RMSNorm(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 8).bfloat16()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = norm(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, norm(x.float()).bfloat16(), rtol=0, atol=0)


def test_silent_mixture_gives_exact_zeros():
    """Zero input: every RMSNorm sees zeros (eps keeps them finite) and the masks multiply 0."""
    model = BSRoFormer(num_sources=3, sample_rate=8000, n_fft=128, hop_length=32,
                       band_plan="speech", feature_dim=8, num_blocks=1, num_heads=2).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 100))
    assert torch.equal(out, torch.zeros(2, 100, 3))


@pytest.mark.parametrize("kwargs,match", [
    (dict(feature_dim=16, num_heads=3), "must split into num_heads=3 equal heads"),
    (dict(feature_dim=12, num_heads=4), "head size .* = 3 must be even"),
    (dict(feature_dim=16, num_heads=2, attention_dim=0), "attention_dim must be a positive int"),
    (dict(dropout=1.0), r"dropout as a probability in \[0, 1\)"),
    (dict(dropout=True), r"dropout as a probability in \[0, 1\)"),
    (dict(num_blocks=0), "num_blocks must be a positive int"),
    (dict(rope_base=1.0), "RoPE base > 1"),
    (dict(band_plan="roformer", n_fft=128), "holds no STFT bin"),
    (dict(band_plan="nope"), "unknown band plan 'nope'"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    """Bad sizes name the argument and what to change."""
    with pytest.raises(ValueError, match=match):
        BSRoFormer(**kwargs)


def test_bad_inputs_to_the_blocks_raise_clear_errors():
    """Wrong feature sizes and ranks say what shape was expected."""
    with pytest.raises(ValueError, match=r"expected sequences \[M, L, 16\], got shape"):
        RoPEAttention(dim=16, num_heads=2)(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"expected queries or keys \[\.\.\., L, \.\.\., 4\]"):
        RotaryEmbedding(4)(torch.randn(5, 6))
    with pytest.raises(ValueError, match=r"with the positions on axis -4"):
        RotaryEmbedding(4)(torch.randn(5, 4), seq_dim=-4)
    with pytest.raises(ValueError, match="head_dim must be even"):
        RotaryEmbedding(5)
    model = BSRoFormer(feature_dim=16, num_blocks=1, num_heads=2)
    with pytest.raises(ValueError, match="use mix.unsqueeze"):
        model(torch.randn(300))
