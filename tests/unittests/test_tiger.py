"""Tests of the TIGER lobe: its band plan against hand counts and a brute-force bin assignment,
the band split's per-band normalisation and the F³A attention against float64 references, the
parameter count against its closed form (shared across repeats), masks that give the mixture
back, the source grouping of the masks, the stride rule, and bad inputs. (The separator contract
itself is checked for every card by tests/unittests/test_separator_contract.py.)
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from gass_modules.lobes.parts.attention import GlobalAttention
from gass_modules.lobes.parts.band_layers import BandSplit
from gass_modules.lobes.parts.bands import TIGER_PLAN, band_bins
from gass_modules.lobes.parts.blocks import ISTFTDecoder, STFTEncoder, apply_complex_masks
from gass_modules.lobes.tiger import (
    TIGER,
    BandMaskHead,
    FrequencyFrameBlock,
    FullBandFrameAttention,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**overrides) -> TIGER:
    """A small TIGER at 8 kHz (speech band plan, 30 bands) for fast value tests."""
    args = dict(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32, band_plan="speech",
                feature_dim=8, hidden_dim=16, depth=2, num_blocks=2, num_heads=2,
                key_channels=2)
    args.update(overrides)
    torch.manual_seed(0)
    return TIGER(**args).eval()


# ----------------------------------------------------------------------------------------------
# band plan and band split
# ----------------------------------------------------------------------------------------------
def test_tiger_plan_bins_by_hand():
    """16 kHz / 640 (25 Hz bins): 40 one-bin bands to 1 kHz, 10 of 4 bins to 2 kHz, 8 of 10 to
    4 kHz, 8 of 20 to 8 kHz, the last with the Nyquist bin (21); at 8 kHz / 640 (12.5 Hz bins)
    twice as many bins per band up to 4 kHz, the last again with Nyquist."""
    widths = [end - start for start, end in band_bins("tiger", 16000, 640)]
    assert widths == [1] * 40 + [4] * 10 + [10] * 8 + [20] * 7 + [21]
    widths = [end - start for start, end in band_bins("tiger", 8000, 640)]
    assert widths == [2] * 40 + [8] * 10 + [20] * 7 + [21]
    dnr = [end - start for start, end in band_bins("tiger_dnr", 44100, 2048)]
    assert len(dnr) == 57 and sum(dnr) == 1025


def test_band_split_covers_every_bin_once_brute_force():
    """Each bin f_j = 25 j Hz belongs to the one band with low <= f_j < high (Nyquist to the
    last), and the band split's gather indices take every bin exactly once."""
    bins = band_bins("tiger", 16000, 640)
    owner = []
    for j in range(321):
        f = 25.0 * j
        matches = [k for k, (lo, hi) in enumerate(TIGER_PLAN[:-1])  # the rest band: none below
                   if (lo <= f < hi if f < 8000 else lo < f <= hi)]
        assert len(matches) == 1, (j, matches)
        owner.append(matches[0])
    assert [(owner.index(k), 321 - owner[::-1].index(k)) for k in range(len(bins))] == bins
    split = BandSplit(bins, feature_dim=4, norm="band")
    gathered = torch.cat(split.groups.bin_index)
    assert torch.equal(gathered.sort().values, torch.arange(321))


def test_band_norm_matches_group_norm_over_features_and_frames():
    """norm="band": each item and band normalised over its 2G features and all frames (GroupNorm
    with one group over [2G, T]), then the band's affine and linear map; float64 reference."""
    bins = [(0, 1), (1, 3), (3, 5), (5, 9)]
    torch.manual_seed(0)
    split = BandSplit(bins, feature_dim=6, norm="band").double()
    with torch.no_grad():
        for p in split.parameters():
            p.normal_()
    spec = torch.randn(2, 9, 7, dtype=torch.complex128)
    out = split(spec).detach().numpy()  # [B, T, K, N]
    parts = torch.view_as_real(spec).numpy()  # [B, F, T, 2]
    for b in range(2):
        for k, (start, end) in enumerate(bins):
            x = parts[b, start:end].transpose(1, 0, 2).reshape(7, -1)  # [T, 2G], re/im per bin
            x = (x - x.mean()) / np.sqrt(x.var() + split.eps)
            gain, bias, weight, lin_bias = (p.detach().numpy() for p in split.band_parameters(k))
            expected = (x * gain + bias) @ weight.T + lin_bias
            np.testing.assert_allclose(out[b, :, k], expected, rtol=1e-9, atol=1e-9)


def test_band_norm_keeps_the_level_of_one_bin_bands():
    """A one-bin band normalised per frame keeps only the sign of Re - Im (two features), so
    frames of different levels look alike; normalised per band over frames they do not. Both
    norms are invariant to the gain of the whole input."""
    spec = torch.complex(torch.tensor([[[1.0, 10.0]]]), torch.tensor([[[0.0, 0.0]]]))  # [1,1,2]
    torch.manual_seed(0)
    per_frame = BandSplit([(0, 1)], feature_dim=3, norm="layer")
    per_band = BandSplit([(0, 1)], feature_dim=3, norm="band")
    with torch.no_grad():
        frame_out, band_out = per_frame(spec)[0, :, 0], per_band(spec)[0, :, 0]  # [T=2, N]
        assert torch.allclose(frame_out[0], frame_out[1], atol=1e-5)
        assert not torch.allclose(band_out[0], band_out[1], atol=1e-2)
        assert torch.allclose(per_band(7 * spec)[0, :, 0], band_out, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# F³A and MSA
# ----------------------------------------------------------------------------------------------
def reference_f3a(f3a: FullBandFrameAttention, x: np.ndarray) -> np.ndarray:
    """Float64 loops: per head, queries/keys/values from 1x1 + PReLU + LayerNorm, flattened over
    the other axis, softmax attention along the first axis, merged heads projected, residual."""

    def project(proj, v):  # v [..., C] -> [..., H, D]
        weight = proj.linear.weight.detach().double().numpy()
        bias = proj.linear.bias.detach().double().numpy()
        y = (v @ weight.T + bias).reshape(*v.shape[:-1], proj.num_heads, proj.head_channels)
        slope = proj.slope.detach().double().numpy()  # [H, 1]
        y = np.where(y >= 0, y, slope * y)
        y = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-5)
        return y * proj.norm_weight.detach().double().numpy() + \
            proj.norm_bias.detach().double().numpy()

    batch, length, other, channels = x.shape
    heads = f3a.num_heads
    q, k, v = project(f3a.query, x), project(f3a.key, x), project(f3a.value, x)
    merged = np.zeros_like(x)
    for b in range(batch):
        for h in range(heads):
            qh = q[b, :, :, h].reshape(length, -1)  # [A, O*E]
            kh = k[b, :, :, h].reshape(length, -1)
            vh = v[b, :, :, h].reshape(length, -1)  # [A, O*C/H]
            scores = qh @ kh.T / np.sqrt(qh.shape[1])
            weights = np.exp(scores - scores.max(1, keepdims=True))
            weights /= weights.sum(1, keepdims=True)
            per = channels // heads
            merged[b, :, :, h * per:(h + 1) * per] = (weights @ vh).reshape(length, other, per)
    return x + project(f3a.out, merged)[..., 0, :]


def test_f3a_matches_float64_reference():
    torch.manual_seed(0)
    f3a = FullBandFrameAttention(channels=8, num_heads=2, key_channels=3).double()
    with torch.no_grad():
        for name, p in f3a.named_parameters():
            if "slope" in name:
                p.fill_(0.3)
            elif "norm" in name:
                p.normal_()
    x = torch.randn(2, 5, 4, 8, dtype=torch.float64)
    with torch.no_grad():
        out = f3a(x).numpy()
    np.testing.assert_allclose(out, reference_f3a(f3a, x.numpy()), rtol=1e-9, atol=1e-9)


def test_f3a_is_equivariant_to_permutations_of_both_axes():
    """No positions: permuting the attended axis or the describing axis permutes the output."""
    torch.manual_seed(0)
    f3a = FullBandFrameAttention(channels=8, num_heads=2, key_channels=2).eval()
    x = torch.randn(1, 6, 5, 8)
    along, other = torch.randperm(6), torch.randperm(5)
    with torch.no_grad():
        out = f3a(x)
        assert torch.allclose(f3a(x[:, along]), out[:, along], atol=1e-5)
        assert torch.allclose(f3a(x[:, :, other]), out[:, :, other], atol=1e-5)


def test_msa_global_stage_is_the_ffn_alone():
    """TIGER's MSA is TDANet's block with a global stage without self-attention: x + FFN(x)."""
    torch.manual_seed(0)
    stage = GlobalAttention(channels=8, num_heads=0, ffn_factor=1).eval()
    x = torch.randn(2, 4, 8)
    with torch.no_grad():
        assert torch.equal(stage(x), x + stage.ffn(x))
    names = {n.split(".")[0] for n, _ in stage.named_parameters()}
    assert names == {"ffn"}
    block = FrequencyFrameBlock(channels=8, hidden_channels=16, depth=2, num_heads=2,
                                key_channels=2)
    assert block.freq_msa.global_attention.num_heads == 0
    with pytest.raises(ValueError, match="num_heads must be an int >= 0"):
        GlobalAttention(channels=8, num_heads=-1)


def test_frame_path_coarsest_scale_holds_two_frames_for_the_shortest_input():
    """The stride (hop * 2^depth) leaves two frames at the coarsest MSA scale of the frame path
    for a one-stride input (the contract's rule for torch.export)."""
    model = tiny(depth=3)
    assert model.stride == 32 * 8
    seen = []
    hook = model.block.frame_msa.down[-1].register_forward_hook(
        lambda module, args, out: seen.append(out.shape[1]))
    with torch.no_grad():
        model(torch.randn(1, model.stride))
    hook.remove()
    assert seen == [2, 2]  # one per application of the shared block


# ----------------------------------------------------------------------------------------------
# parameters shared across repeats, closed form
# ----------------------------------------------------------------------------------------------
def closed_form_parameters(bins, n, h, depth, kernel, heads, key, sources, blocks) -> int:
    """Parameters of TIGER by hand: band split, the shared FFI block, re-injection, masks."""
    freq_bins, bands = bins[-1][1], len(bins)
    band_split = 4 * freq_bins + 2 * freq_bins * n + bands * n  # LN(2G) + Linear(2G, N)
    msa = ((n * h + h + 2 * h + 1)  # 1x1 conv, gLN, PReLU
           + (depth + 1) * (h * kernel + h + 2 * h)  # depthwise convs (bias) + gLN
           + (h * h + 2 * h) + (h * kernel + h) + (h * h + 2 * h)  # global FFN
           + (depth + 1) * 3 * (h + 2 * h)  # injection: three 1-tap depthwise + gLN
           + depth * 3 * (h * kernel + 2 * h)  # top-down fusion
           + h * n + n)  # back to N
    f3a = (2 * (n * heads * key + heads * key + heads + 2 * heads * key)  # Q, K
           + (n * n + n + heads + 2 * n)  # V
           + (n * n + n + 1 + 2 * n))  # output projection
    block = 2 * (msa + f3a + 2 * n)  # frequency and frame paths, each with a LayerNorm
    reinject = 2 * n + 1 if blocks > 1 else 0
    masks = bands + 4 * freq_bins * n + 4 * sources * freq_bins  # PReLU, W, b per band
    return band_split + block + reinject + masks


@pytest.mark.parametrize("blocks", [1, 2, 8])
def test_parameters_equal_the_closed_form_and_do_not_grow_with_repeats(blocks):
    model = tiny(num_blocks=blocks)
    count = sum(p.numel() for p in model.parameters())
    assert count == closed_form_parameters(model.bins, 8, 16, 2, 5, 2, 2, 2, blocks)
    # one copy of the block's tensors, whatever the number of repeats
    assert sum(1 for name in model.state_dict() if name.startswith("block.")) == \
        sum(1 for _ in model.block.state_dict())


@pytest.mark.parametrize("card,sources", [("tiger_small", 2), ("tiger", 4)])
def test_cards_match_the_closed_form_and_the_paper(card, sources):
    """The cards: the paper's 0.82 M (0.8218 M with 2 outputs, 0.8244 M with 4)."""
    with open(ROOT / "hparams" / "models" / f"{card}.yaml") as f:
        model = load_hyperpyyaml(f)["separator"]
    count = sum(p.numel() for p in model.parameters())
    assert count == closed_form_parameters(model.bins, 128, 256, 4, 5, 4, 4, sources, 4)
    assert model.num_bands == 66 and model.stride == 2560
    assert abs(count - 0.82e6) < 0.01e6


def test_the_block_is_applied_num_blocks_times_with_reinjection():
    """separate_padded equals the unrolled recurrence Z_1 = FFI(Z_0),
    Z_{b+1} = FFI(PReLU(DW(Z_0 + Z_b))) with the one shared block."""
    model = tiny(num_blocks=3)
    mix = torch.randn(2, model.stride * 2)
    with torch.no_grad():
        spec = model.encoder(mix)
        z0 = model.band_split(spec)
        z = model.block(z0)
        for _ in range(2):
            w = model.reinject[0].weight[:, 0, 0]
            z = model.block(model.reinject[1](w * (z0 + z) + model.reinject[0].bias))
        expected = apply_complex_masks(model.decoder, spec, model.mask_head(z))
        assert torch.allclose(model.separate_padded(mix), expected, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# masks and reconstruction
# ----------------------------------------------------------------------------------------------
def test_identity_masks_give_the_mixture_back():
    stft, istft = STFTEncoder(640, 160), ISTFTDecoder(640, 160)
    mix = torch.randn(2, 2560 * 2)
    spec = stft(mix)
    ones = torch.stack([torch.ones(spec.shape), torch.zeros(spec.shape)], -1).unsqueeze(1)
    assert torch.allclose(apply_complex_masks(istft, spec, ones)[..., 0], mix, atol=1e-5)


def test_estimates_add_up_to_the_mixture_only_with_sum_to_one():
    mix = torch.randn(2, 1001)
    with torch.no_grad():
        est = tiny(num_sources=4)(mix)
        free = tiny(num_sources=4, sum_to_one=False)(mix)
    assert torch.allclose(est.sum(-1), mix, atol=1e-4)
    assert not torch.allclose(free.sum(-1), mix, atol=1e-2)


def test_each_source_masks_come_from_its_own_features():
    """Source grouping: changing the features of source 1's group leaves source 0's masks."""
    torch.manual_seed(0)
    head = BandMaskHead([(0, 1), (1, 4), (4, 6)], feature_dim=6, num_sources=3,
                        sum_to_one=False)
    z = torch.randn(2, 5, 3, 6)
    changed = z.clone()
    changed[..., 2:4] += 1.0  # features of source 1
    with torch.no_grad():
        before, after = head(z), head(changed)
    assert torch.equal(before[:, 0], after[:, 0]) and torch.equal(before[:, 2], after[:, 2])
    assert not torch.allclose(before[:, 1], after[:, 1])


def test_mask_head_glu_layout_against_a_hand_computation():
    """One band of two bins, one source: outputs (value, gate) -> mask = value * sigmoid(gate),
    value feature 2j + c for bin j, real (c = 0) or imaginary (c = 1)."""
    head = BandMaskHead([(0, 2)], feature_dim=2, num_sources=1, sum_to_one=False)
    with torch.no_grad():
        head.slopes[0].fill_(0.5)
        head.weights[0].zero_()
        head.biases[0].copy_(torch.tensor([1.0, 2, 3, 4, 0, 0, 0, 100]).view(1, 1, 8))
        masks = head(-torch.ones(1, 1, 1, 2))  # [B, S, F, T, 2]
    expected = torch.tensor([[0.5, 1.0], [1.5, 4.0]])  # sigmoid(0) = 0.5, sigmoid(100) = 1
    assert torch.allclose(masks[0, 0, :, 0], expected)


# ----------------------------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------------------------
def test_bad_configurations_say_what_to_change():
    with pytest.raises(ValueError, match=r"feature_dim \(8\) must be a multiple of num_sources "
                                         r"\(3\).*feature_dim=9"):
        tiny(num_sources=3)
    with pytest.raises(ValueError, match=r"channels \(8\) must be divisible by num_heads \(3\)"):
        tiny(num_heads=3)
    with pytest.raises(ValueError, match=r"band \[100, 125\) Hz holds no STFT bin"):
        TIGER(sample_rate=16000, n_fft=512, hop_length=128)  # 31.25 Hz bins, 25 Hz bands
    with pytest.raises(ValueError, match="hop_length must be <= n_fft // 2"):
        tiny(hop_length=100)
    with pytest.raises(ValueError, match="depth must be a positive int"):
        tiny(depth=0)


def test_bad_tensors_raise_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"use mix.unsqueeze\(0\) for one mix"):
        model(torch.randn(100))
    with pytest.raises(ValueError, match=r"expected band features \[B, T, K, 8\]"):
        model.block(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"expected features \[B, A, O, 8\]"):
        model.block.freq_attention(torch.randn(2, 5, 3, 4))
    with pytest.raises(ValueError, match=r"expected band features \[B, T, 30, 8\]"):
        model.mask_head(torch.randn(2, 5, 29, 8))
    with pytest.raises(ValueError, match=r"expected masks \[B, S, F, N, 2\]"):
        apply_complex_masks(model.decoder, torch.randn(1, 65, 4, dtype=torch.complex64),
                            torch.randn(1, 2, 65, 5, 2))
