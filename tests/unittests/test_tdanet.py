"""Value tests of the TDANet lobes (``gass_modules.lobes.tdanet``).

References: SpeechBrain's ``PositionalEncoding`` and ``torch.nn.MultiheadAttention`` (same
parameters copied in), numpy float64 for pooling/up-sampling, ``torch.stft``/``torch.istft`` for
the STFT separator, and explicit unrolling of the shared block. Two tests pin the official code's
bugs as fixed: attention never mixes batch items, and the top-down path starts at the coarsest
level. The contract itself (lengths, export, bf16, checkpoints) is in
``test_separator_contract.py``.
"""

import numpy as np
import pytest
import torch
from speechbrain.lobes.models.transformer.Transformer import PositionalEncoding

from gass_modules.lobes.base import export_separator
from gass_modules.lobes.parts.attention import (
    GlobalAttention,
    LocalAttention,
    MultiHeadSelfAttention,
    SinusoidalPositions,
)
from gass_modules.lobes.parts.uconv import UConvBlock
from gass_modules.lobes.tdanet import TDANetMasker, TDANetSTFT, TDANetWav

SMALL = dict(bottleneck_channels=8, hidden_channels=16, depth=2, num_blocks=3, num_heads=4)


def test_positions_equal_speechbrain_positional_encoding():
    """Same sin/cos table as SpeechBrain's, for any length (no max_len)."""
    x = torch.zeros(2, 37, 16)
    ours = SinusoidalPositions(16)(x)
    assert torch.allclose(ours, PositionalEncoding(16)(x), atol=1e-5)
    assert SinusoidalPositions(16)(torch.zeros(1, 5000, 16)).shape == (1, 5000, 16)
    with pytest.raises(ValueError, match="even channel count"):
        SinusoidalPositions(15)


@pytest.mark.parametrize("length", [1, 9])
def test_self_attention_equals_torch_multihead_attention(length):
    """Same parameters, same output as nn.MultiheadAttention(batch_first=True)."""
    ours = MultiHeadSelfAttention(16, 4).eval()
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    x = torch.randn(3, length, 16)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x, x, x, need_weights=False)[0], atol=1e-5)


def test_global_attention_never_mixes_batch_items():
    """The official code's MHSA attends across the batch; here item 0 ignores items 1, 2."""
    ga = GlobalAttention(16, num_heads=4).eval()
    x = torch.randn(3, 6, 16)  # [B, T, C]
    y = x.clone()
    y[1:] = 100 * torch.randn(2, 6, 16)
    with torch.no_grad():
        assert torch.allclose(ga(x)[0], ga(y)[0], atol=1e-5)
        assert torch.allclose(ga(x)[0], ga(x[:1])[0], atol=1e-5)


def test_local_attention_formula():
    """LA(x, y) = W_l(x) * sigmoid(W_a(y)) repeated r times + W_g(y) repeated r times."""
    la = LocalAttention(6, kernel_size=3).eval()
    fine, coarse = torch.randn(2, 12, 6), torch.randn(2, 3, 6)  # [B, T, C], [B, T / 4, C]
    with torch.no_grad():
        out = la(fine, coarse, 4).double().numpy()
        local = la.local(fine).double().numpy()
        gate = 1 / (1 + np.exp(-la.gate(coarse).double().numpy()))
        shift = la.shift(coarse).double().numpy()
    ref = local * np.repeat(gate, 4, axis=1) + np.repeat(shift, 4, axis=1)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def _avg_pool(x: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping windows of ``factor`` frames of ``[B, T, C]`` (numpy)."""
    return np.stack([x[:, t:t + factor].mean(1) for t in range(0, x.shape[1], factor)], axis=1)


def test_uconv_block_against_an_explicit_reference():
    """Bottom-up scales, pooled sum, GA, injection and top-down LA from the coarsest level."""
    block = UConvBlock(channels=8, hidden_channels=16, depth=3, num_heads=4).eval()
    x = torch.randn(2, 24, 8)  # [B, T, C]
    with torch.no_grad():
        scales = [block.down[0](block.project(x))]
        for i in range(1, 4):
            scales.append(block.down[i](scales[-1]))
        assert [s.shape[1] for s in scales] == [24, 12, 6, 3]
        pooled = scales[3].double().numpy() + sum(
            _avg_pool(scales[i].double().numpy(), 2 ** (3 - i)) for i in range(3))
        glob = block.global_attention(torch.from_numpy(pooled).float())
        fused = [block.inject[i](s, glob, 2 ** (3 - i)) for i, s in enumerate(scales)]
        top = fused[3]
        for i in (2, 1, 0):
            top = block.top_down[i](fused[i], top, 2)
        reference = block.residual(top) + x
        assert torch.allclose(block(x), reference, atol=1e-5)


def test_top_down_path_starts_at_the_coarsest_level():
    """The first LA (level S-1) fuses the injected coarsest level S, not level S-2."""
    block = UConvBlock(channels=8, hidden_channels=16, depth=3, num_heads=4).eval()
    seen = {}
    block.top_down[2].register_forward_hook(lambda m, args, out: seen.update(first=args))
    block.inject[3].register_forward_hook(lambda m, args, out: seen.update(coarsest=out))
    with torch.no_grad():
        block(torch.randn(2, 24, 8))
    fine, coarse, factor = seen["first"]
    assert fine.shape[1] == 6 and coarse.shape[1] == 3 and factor == 2
    assert torch.equal(coarse, seen["coarsest"])


def unrolled_masks(masker: TDANetMasker, feats: torch.Tensor) -> torch.Tensor:
    """Reference masker (ReLU masks): x0 = Conv1x1(gLN(w)) zero-padded to a multiple of 2^depth,
    x1 = U(x0), x_{k+1} = U(PReLU(DW(x0 + x_k))), masks = ReLU(Conv(PReLU(x))) cropped back."""
    batch, channels, frames = feats.shape
    x0 = torch.nn.functional.conv1d(masker.norm(feats), masker.bottleneck.weight,
                                    masker.bottleneck.bias)  # [B, B_c, T']
    x0 = torch.nn.functional.pad(x0, (0, -frames % masker.multiple)).transpose(1, 2)
    x = masker.block(x0)  # [B, T'', B_c]
    for _ in range(masker.num_blocks - 1):
        x = masker.block(masker.reinject(x0 + x))
    x = torch.nn.functional.prelu(x.transpose(1, 2), masker.mask[0].weight)  # [B, B_c, T'']
    raw = torch.nn.functional.conv1d(x, masker.mask[1].weight, masker.mask[1].bias)
    return torch.relu(raw)[..., :frames].reshape(batch, masker.num_sources, channels,
                                                 frames).transpose(0, 1)


def test_masker_unrolls_one_shared_block():
    """x1 = U(x0), x_{k+1} = U(PReLU(DW(x0 + x_k))); masks = act(Conv(PReLU(x))) cropped."""
    masker = TDANetMasker(enc_channels=6, num_sources=2, **SMALL).eval()
    feats = torch.randn(2, 6, 10)  # 10 frames: padded to 12 inside (multiple of 2^2)
    with torch.no_grad():
        ref = unrolled_masks(masker, feats)
        out = masker(feats)
    assert out.shape == (2, 2, 6, 10)  # [S, B, N, T']
    assert torch.allclose(out, ref, atol=1e-6)
    assert bool((out >= 0).all())
    shared = sum(p.numel() for p in TDANetMasker(6, 2, **{**SMALL, "num_blocks": 2}).parameters())
    assert sum(p.numel() for p in masker.parameters()) == shared  # one block, reused
    single = TDANetMasker(6, 2, **{**SMALL, "num_blocks": 1})
    assert single.reinject is None


@pytest.mark.parametrize("frames", [1, 3, 4, 17])
def test_masker_takes_any_frame_count(frames):
    """Frame counts that are not multiples of 2^depth are padded and cropped back."""
    masker = TDANetMasker(enc_channels=6, num_sources=3, **SMALL).eval()
    feats = torch.randn(2, 6, frames)
    with torch.no_grad():
        out = masker(feats)
        ref = unrolled_masks(masker, feats)
    assert out.shape == (3, 2, 6, frames)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-6)


def test_wav_separator_is_masked_transposed_conv_decoding():
    """sources_s = ConvTranspose(w * m_s) with w = Conv(x): recomputed with F.conv* directly."""
    model = TDANetWav(num_sources=2, sample_rate=8000, enc_channels=6, enc_kernel_size=8,
                      enc_stride=4, **SMALL).eval()
    assert model.stride == 4 * 2 ** 3
    mix = torch.randn(2, 2 * model.stride)
    with torch.no_grad():
        w = torch.nn.functional.conv1d(mix.unsqueeze(1), model.encoder.conv.weight, stride=4,
                                       padding=2)  # [B, N, F]
        masks = model.masker(w)  # [S, B, N, F]
        sources = [torch.nn.functional.conv_transpose1d(w * m, model.decoder.conv.weight,
                                                        stride=4, padding=2)[:, 0]
                   for m in masks]
        ref = torch.stack(sources, dim=-1)  # [B, L, S]
        out = model.separate_padded(mix)
    assert out.shape == (2, 2 * model.stride, 2)
    assert torch.allclose(out, ref, atol=1e-5)


def test_stft_separator_applies_complex_masks():
    """sources_s = iSTFT((M_re + i M_im) * STFT(x)), recomputed with torch.stft/istft."""
    model = TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=32, hop_length=8, **SMALL).eval()
    assert model.stride == 8 * 2 ** 2
    mix = torch.randn(2, 3 * model.stride)
    window = torch.hann_window(32)
    with torch.no_grad():
        spec = torch.stft(mix, 32, 8, window=window, center=True, pad_mode="constant",
                          return_complex=True)  # [B, 17, N]
        raw = model.masker(torch.cat([spec.real, spec.imag], dim=1))  # [S, B, 34, N]
        masks = torch.complex(raw[:, :, :17], raw[:, :, 17:])
        ref = torch.stack([torch.istft(m * spec, 32, 8, window=window, center=True)
                           for m in masks], dim=-1)
        out = model.separate_padded(mix)
    assert out.shape == ref.shape == (2, 3 * model.stride, 2)
    assert torch.allclose(out, ref, atol=1e-4)


def test_stft_separator_magnitude_features_and_masks():
    """features="mag": the masker sees |X|^0.3; mask_type="magnitude": sources_s =
    iSTFT(M_s * X) with real masks (the mixture's phase), recomputed with torch.stft/istft."""
    model = TDANetSTFT(num_sources=3, sample_rate=8000, n_fft=32, hop_length=8, **SMALL,
                       features="mag", mask_type="magnitude", mask_activation="sigmoid").eval()
    assert model.masker.enc_channels == model.masker.mask_channels == 17
    mix = torch.randn(2, 3 * model.stride)
    window = torch.hann_window(32)
    with torch.no_grad():
        spec = torch.stft(mix, 32, 8, window=window, center=True, pad_mode="constant",
                          return_complex=True)  # [B, 17, N]
        masks = model.masker(spec.abs() ** 0.3)  # [S, B, 17, N], in (0, 1)
        assert masks.min() > 0 and masks.max() < 1
        ref = torch.stack([torch.istft(m * spec, 32, 8, window=window, center=True)
                           for m in masks], dim=-1)
        out = model.separate_padded(mix)
        # gLN makes both feature kinds gain invariant: the masks, hence out(g x) = g out(x)
        scaled = model.separate_padded(1e-3 * mix)
    assert torch.allclose(out, ref, atol=1e-4)
    assert torch.allclose(scaled, 1e-3 * out, atol=1e-6)
    # all-pass masks (sigmoid of a large bias) give the mixture back on every output
    with torch.no_grad():
        last = model.masker.mask[-1]
        last.weight.zero_()
        last.bias.fill_(30.0)
        torch.testing.assert_close(model.separate_padded(mix), mix[..., None].expand(-1, -1, 3),
                                   atol=1e-5, rtol=0)
    # real+imag features with magnitude masks: 2F input channels, F mask channels
    mixed = TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=32, hop_length=8, **SMALL,
                       mask_type="magnitude")
    assert (mixed.masker.enc_channels, mixed.masker.mask_channels) == (34, 17)


def test_softmax_masks_are_ratio_masks_and_estimates_add_up_to_the_mixture():
    """mask_activation="softmax": the masks are softmax over sources of the linear masker's
    outputs (same weights), non-negative and summing to 1, so that the magnitude-masked
    TDANet-STFT estimates add up to the mixture (iSTFT is linear)."""
    torch.manual_seed(0)
    soft = TDANetMasker(10, 3, **SMALL, mask_activation="softmax").eval()
    linear = TDANetMasker(10, 3, **SMALL, mask_activation="linear").eval()
    linear.load_state_dict(soft.state_dict())
    feats = torch.randn(2, 10, 13)
    with torch.no_grad():
        masks = soft(feats)  # [S, B, N, T']
        torch.testing.assert_close(masks, torch.softmax(linear(feats), dim=0))
    assert masks.min() >= 0
    torch.testing.assert_close(masks.sum(0), torch.ones(2, 10, 13))
    model = TDANetSTFT(num_sources=4, sample_rate=8000, n_fft=32, hop_length=8, **SMALL,
                       features="mag", mask_type="magnitude", mask_activation="softmax").eval()
    mix = torch.randn(3, 1000)
    with torch.no_grad():
        est = model(mix)  # [B, T, S]
    torch.testing.assert_close(est.sum(-1), mix, atol=1e-5, rtol=0)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_magnitude_variant_exports_with_dynamic_length(activation):
    """The make-demo variant (magnitude features and masks) keeps the export contract: one
    program for any batch and multiple of the stride, equal to eager."""
    model = TDANetSTFT(num_sources=4, sample_rate=8000, n_fft=32, hop_length=8, **SMALL,
                       features="mag", mask_type="magnitude", mask_activation=activation).eval()
    program = export_separator(model, max_multiple=64).module()
    for batch, multiple in [(1, 1), (3, 5)]:
        mix = torch.randn(batch, multiple * model.stride)
        with torch.no_grad():
            torch.testing.assert_close(program(mix), model.separate_padded(mix), atol=1e-5,
                                       rtol=1e-4)


def test_bad_configurations_and_inputs_raise():
    """Errors say what was expected and what was found."""
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadSelfAttention(10, 4)
    with pytest.raises(ValueError, match="mask_activation must be one of"):
        TDANetMasker(6, 2, mask_activation="gelu")
    with pytest.raises(ValueError, match="mask_type='magnitude'"):
        TDANetSTFT(mask_activation="softmax", mask_type="complex")
    with pytest.raises(ValueError, match=r"expected encoder features \[B, 6, T'\]"):
        TDANetMasker(6, 2, **SMALL)(torch.zeros(2, 5, 8))
    with pytest.raises(ValueError, match="even kernel_size - stride"):
        TDANetWav(enc_kernel_size=7, enc_stride=4)
    with pytest.raises(ValueError, match="num_blocks must be a positive int"):
        TDANetSTFT(num_blocks=0)
    with pytest.raises(ValueError, match="features must be one of"):
        TDANetSTFT(features="logmag")
    with pytest.raises(ValueError, match="mask_type must be one of"):
        TDANetSTFT(mask_type="ratio")
    model = TDANetWav(2, 8000, enc_channels=6, enc_kernel_size=8, enc_stride=4, **SMALL)
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(1, 64, dtype=torch.int16))
