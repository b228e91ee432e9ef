"""Value tests of the shared separator blocks (``gass_modules.lobes.parts.blocks``).

Each block is compared with a brute-force numpy float64 reference written from its definition
(framing by explicit loops, the DFT as a sum, gLN from its formula), plus bad-input checks.
"""

import numpy as np
import pytest
import torch

from gass_modules.lobes.parts.blocks import (
    Conv1d,
    ConvDecoder,
    ConvEncoder,
    ConvNorm,
    ISTFTDecoder,
    STFTEncoder,
    channels_to_complex,
    complex_to_channels,
    conv1d_frames_last,
    global_layer_norm,
    group_norm_frames_last,
    pad_to_multiple,
)


def test_conv_encoder_matches_explicit_framing():
    """Frame f is sum_k w[n, k] * x[f * stride + k - pad], pad = (K - stride) / 2."""
    enc = ConvEncoder(out_channels=5, kernel_size=12, stride=4)
    x = torch.randn(2, 40, dtype=torch.float64)
    enc = enc.double()
    w = enc.conv.weight.detach().numpy()[:, 0]  # [N, K]
    pad = (12 - 4) // 2
    xp = np.pad(x.numpy(), ((0, 0), (pad, pad)))
    frames = 40 // 4
    ref = np.zeros((2, 5, frames))
    for b in range(2):
        for f in range(frames):
            ref[b, :, f] = w @ xp[b, f * 4:f * 4 + 12]
    out = enc(x).detach().numpy()
    assert out.shape == (2, 5, frames)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_conv_decoder_is_overlap_add_and_inverts_the_framing():
    """Decoder output is the overlap-add of w^T h[:, f] at f * stride - pad, cropped to L."""
    dec = ConvDecoder(in_channels=3, kernel_size=8, stride=4).double()
    h = torch.randn(2, 4, 3, 6, dtype=torch.float64)  # [B, S, N, F]
    w = dec.conv.weight.detach().numpy()[:, 0]  # [N, K]
    pad = (8 - 4) // 2
    full = np.zeros((2, 4, 4 * 5 + 8))
    for f in range(6):
        full[..., f * 4:f * 4 + 8] += np.einsum("bsn,nk->bsk", h[..., f].numpy(), w)
    ref = full[..., pad:pad + 4 * 6]
    out = dec(h).detach().numpy()
    assert out.shape == (2, 4, 24)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_conv_front_end_rejects_bad_sizes():
    """Odd kernel - stride, stride > kernel, wrong input ranks and channel counts raise."""
    with pytest.raises(ValueError, match="even kernel_size - stride"):
        ConvEncoder(8, kernel_size=7, stride=4)
    with pytest.raises(ValueError, match="stride <= kernel_size"):
        ConvDecoder(8, kernel_size=4, stride=8)
    with pytest.raises(ValueError, match="positive int"):
        ConvEncoder(0, kernel_size=8, stride=4)
    with pytest.raises(ValueError, match=r"waveform batch \[B, L\]"):
        ConvEncoder(8, 8, 4)(torch.zeros(3, 1, 100))
    with pytest.raises(ValueError, match="expected 8 feature channels"):
        ConvDecoder(8, 8, 4)(torch.zeros(2, 7, 10))


def test_stft_encoder_matches_the_dft_sum():
    """X[f, n] = sum_t hann[t] x[n * hop + t - n_fft / 2] e^{-2 pi i f t / n_fft} (zero pad)."""
    n_fft, hop, length = 16, 4, 32
    x = torch.randn(2, length)
    spec = STFTEncoder(n_fft, hop)(x).numpy()
    window = torch.hann_window(n_fft, dtype=torch.float64).numpy()
    xp = np.pad(x.double().numpy(), ((0, 0), (n_fft // 2, n_fft // 2)))
    frames = length // hop + 1
    t = np.arange(n_fft)
    basis = np.exp(-2j * np.pi * np.outer(np.arange(n_fft // 2 + 1), t) / n_fft)  # [F, n_fft]
    ref = np.stack([basis @ (window * xp[:, n * hop:n * hop + n_fft]).T for n in range(frames)],
                   axis=-1).transpose(1, 0, 2)  # [B, F, N]
    assert spec.shape == (2, n_fft // 2 + 1, frames)
    np.testing.assert_allclose(spec, ref, atol=1e-4)


@pytest.mark.parametrize("n_fft,hop", [(64, 16), (512, 128), (16, 8)])
def test_istft_inverts_stft_exactly_for_multiples_of_the_hop(n_fft, hop):
    """iSTFT(STFT(x)) == x, with output length hop * (N - 1) == L (no length argument)."""
    x = torch.randn(3, hop * 10)
    y = ISTFTDecoder(n_fft, hop)(STFTEncoder(n_fft, hop)(x))
    assert y.shape == x.shape
    assert torch.allclose(y, x, atol=1e-5)


def test_istft_is_linear_in_the_spectrum():
    """iSTFT(a X1 + b X2) = a x1 + b x2 (masks summing to one give back the mixture)."""
    x1, x2 = torch.randn(2, 256), torch.randn(2, 256)
    stft, istft = STFTEncoder(64, 16), ISTFTDecoder(64, 16)
    mask = torch.rand(2, 33, 17)
    parts = istft(mask * stft(x1 + x2)) + istft((1 - mask) * stft(x1 + x2))
    assert torch.allclose(parts, x1 + x2, atol=1e-5)
    assert torch.allclose(istft(0.25 * stft(x1) - 2 * stft(x2)), 0.25 * x1 - 2 * x2, atol=1e-5)


def test_stft_rejects_bad_sizes_and_inputs():
    """hop > n_fft / 2 would leave the Hann overlap-add with gaps; inputs are checked."""
    with pytest.raises(ValueError, match="hop_length must be <= n_fft // 2"):
        STFTEncoder(64, 48)
    with pytest.raises(ValueError, match="hop_length must be <= n_fft // 2"):
        ISTFTDecoder(64, 48)
    with pytest.raises(ValueError, match="waveform batch"):
        STFTEncoder(64, 16)(torch.zeros(100))
    with pytest.raises(ValueError, match="complex spectra with 33 bins"):
        ISTFTDecoder(64, 16)(torch.zeros(2, 33, 5))
    with pytest.raises(ValueError, match="complex spectra with 33 bins"):
        ISTFTDecoder(64, 16)(torch.zeros(2, 32, 5, dtype=torch.complex64))


def test_real_imag_channels_round_trip_and_errors():
    """[Re; Im] stacking is exact both ways; bf16 features come back as complex64."""
    spec = torch.randn(2, 3, 5, 7, dtype=torch.complex64)
    feats = complex_to_channels(spec)
    assert feats.shape == (2, 3, 10, 7)
    assert torch.equal(feats[..., :5, :], spec.real) and torch.equal(feats[..., 5:, :], spec.imag)
    assert torch.equal(channels_to_complex(feats), spec)
    assert channels_to_complex(feats.bfloat16()).dtype == torch.complex64
    with pytest.raises(ValueError, match="complex spectra"):
        complex_to_channels(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="even channel count"):
        channels_to_complex(torch.zeros(2, 3, 4))


def test_global_layer_norm_formula():
    """gLN: (x - mean over C and T) / sqrt(var + eps) * gamma_c + beta_c, per item."""
    norm = global_layer_norm(4).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
        norm.bias.copy_(torch.tensor([0.0, 1.0, 0.0, -3.0]))
    x = torch.randn(3, 4, 11, dtype=torch.float64) * 5 + 2
    xn = x.numpy()
    mean = xn.mean(axis=(1, 2), keepdims=True)
    var = xn.var(axis=(1, 2), keepdims=True)
    ref = (xn - mean) / np.sqrt(var + 1e-8) * norm.weight.detach().numpy()[:, None] + (
        norm.bias.detach().numpy()[:, None])
    np.testing.assert_allclose(norm(x).detach().numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("bias", [True, False])
def test_one_tap_depthwise_conv_equals_the_convolution(bias):
    """The per-channel product path gives F.conv1d's result, gradients and state dict keys."""
    conv = Conv1d(6, 6, 1, groups=6, bias=bias)
    assert conv.channel_affine
    x = torch.randn(2, 6, 9, requires_grad=True)
    out = conv(x)
    ref = torch.nn.functional.conv1d(x, conv.weight, conv.bias, groups=6)
    assert torch.allclose(out, ref, atol=1e-6)
    grad_w = torch.autograd.grad(out.sum(), conv.weight)[0]
    ref_w = torch.autograd.grad(ref.sum(), conv.weight)[0]
    assert torch.allclose(grad_w, ref_w, atol=1e-5)
    assert list(conv.state_dict()) == list(torch.nn.Conv1d(6, 6, 1, groups=6,
                                                           bias=bias).state_dict())


def test_other_convolutions_are_plain_conv1d():
    """Any other configuration (taps, groups, stride) takes nn.Conv1d's path."""
    for args, kwargs in (((6, 6, 3), {"groups": 6, "padding": 1}), ((6, 4, 1), {}),
                         ((6, 6, 1), {"groups": 6, "stride": 2})):
        conv = Conv1d(*args, **kwargs)
        assert not conv.channel_affine
        x = torch.randn(2, 6, 10)
        assert torch.equal(conv(x), torch.nn.Conv1d.forward(conv, x))


@pytest.mark.parametrize("args,kwargs", [
    ((6, 6, 5), {"groups": 6, "padding": 2}),  # depthwise: channels-last conv2d
    ((6, 6, 5), {"groups": 6, "padding": 2, "stride": 2, "bias": False}),
    ((6, 4, 3), {"padding": 1}),  # dense
    ((6, 4, 1), {}),  # pointwise: matrix product
    ((6, 6, 1), {"groups": 6}),  # 1-tap depthwise: per-channel product
])
def test_frames_last_conv_equals_channels_first(args, kwargs):
    """conv1d_frames_last(conv, x) == conv(x^T)^T in values and gradients."""
    conv = torch.nn.Conv1d(*args, **kwargs).double()
    x = torch.randn(2, 13, 6, dtype=torch.float64, requires_grad=True)  # [B, T, C]
    out = conv1d_frames_last(conv, x)
    ref = conv(x.transpose(1, 2)).transpose(1, 2)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-12)
    weights = torch.randn_like(ref)
    grads = torch.autograd.grad((out * weights).sum(), [x, conv.weight])
    ref_grads = torch.autograd.grad((ref * weights).sum(), [x, conv.weight])
    for grad, ref_grad in zip(grads, ref_grads):
        assert torch.allclose(grad, ref_grad, atol=1e-10)


def test_frames_last_norm_and_conv_norm_equal_channels_first():
    """gLN and ConvNorm give the same values in both layouts with the same parameters."""
    norm = global_layer_norm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 13, 6)
    assert torch.allclose(group_norm_frames_last(norm, x), norm(x.transpose(1, 2)).transpose(1, 2),
                          atol=1e-5)
    for kwargs in ({"kernel_size": 5, "groups": 6}, {"kernel_size": 5, "stride": 2, "groups": 6},
                   {"kernel_size": 1, "activation": True}):
        first = ConvNorm(6, 6, **kwargs)
        last = ConvNorm(6, 6, frames_last=True, **kwargs)
        last.load_state_dict(first.state_dict())
        assert torch.allclose(last(x), first(x.transpose(1, 2)).transpose(1, 2), atol=1e-5)


def test_frames_last_conv_rejects_what_it_does_not_support():
    """Dilation, non-zero padding modes and string padding raise; so does a wrong rank."""
    with pytest.raises(ValueError, match="no dilation"):
        conv1d_frames_last(torch.nn.Conv1d(4, 4, 3, dilation=2), torch.zeros(1, 9, 4))
    with pytest.raises(ValueError, match="padding_mode"):
        conv1d_frames_last(torch.nn.Conv1d(4, 4, 3, padding=1, padding_mode="reflect"),
                           torch.zeros(1, 9, 4))
    with pytest.raises(ValueError, match=r"frames-last features \[B, T, C\]"):
        conv1d_frames_last(torch.nn.Conv1d(4, 4, 3), torch.zeros(9, 4))


def test_conv_norm_same_padding_and_activation():
    """Odd kernels keep T at stride 1 and give ceil(T / 2) at stride 2; PReLU is optional."""
    layer = ConvNorm(3, 3, 5, groups=3, activation=True)
    assert layer(torch.randn(2, 3, 13)).shape == (2, 3, 13)
    assert ConvNorm(3, 3, 5, stride=2, groups=3)(torch.randn(2, 3, 13)).shape == (2, 3, 7)
    assert isinstance(layer.act, torch.nn.PReLU)
    with pytest.raises(ValueError, match="odd kernel_size"):
        ConvNorm(3, 3, 4)


def test_pad_to_multiple_values():
    """Zero-padding at the end of a dimension to the next multiple; a multiple: unchanged."""
    x = torch.arange(1.0, 6.0).view(1, 5)
    assert torch.equal(pad_to_multiple(x, 4), torch.tensor([[1.0, 2, 3, 4, 5, 0, 0, 0]]))
    assert torch.equal(pad_to_multiple(x, 5), x)
    assert torch.equal(pad_to_multiple(x, 1), x)
    y = torch.ones(2, 3, 4)
    padded = pad_to_multiple(y, 4, dim=1)
    assert padded.shape == (2, 4, 4)
    assert torch.equal(padded[:, :3], y) and not padded[:, 3].any()
    with pytest.raises(ValueError, match="positive int"):
        pad_to_multiple(x, 0)
