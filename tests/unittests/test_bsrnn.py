"""Tests of the BSRNN lobe: band plans in Hz -> STFT bins, band split / mask merge against numpy
float64 references, perfect reconstruction through identity masks, the exportable BLSTM, the
parameter count of the cards, and bad inputs. (The separator contract itself is checked for every
card by tests/unittests/test_separator_contract.py.)
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from torch.export import Dim

from gass_modules.lobes.blstm import ExportableBLSTM
from gass_modules.lobes.bsrnn import BSRNN
from gass_modules.lobes.parts.band_layers import BandGroups, BandSplit, MaskEstimator
from gass_modules.lobes.parts.bands import BAND_PLANS, band_bins, check_band_plan, uniform_bands

ROOT = Path(__file__).resolve().parents[2]
INF = math.inf


def widths(plan, sample_rate, n_fft):
    """Bins per band."""
    return [end - start for start, end in band_bins(plan, sample_rate, n_fft)]


# Hand-computed: band [lo, hi) starts at bin ceil(lo * n_fft / sample_rate); the last kept band
# ends after the Nyquist bin n_fft / 2. At 16 kHz / 512 and 8 kHz / 256 bins are 31.25 Hz apart,
# so 125 Hz = 4 bins, 250 Hz = 8, 500 Hz = 16; 100 Hz bands start at bins 0, 4, 7, 10, 13, 16
# (3.2 bins each) and 200 Hz bands from 2 kHz at 64, 71, 77, 84, 90, 96 (6.4 bins each).
SPEECH_100HZ = [4, 3, 3, 3, 3] * 4  # 0..2 kHz, period 500 Hz = 16 bins
EXPECTED_BINS = {
    ("gass", 16000, 512): [4] * 16 + [8] * 8 + [16] * 7 + [17],
    ("gass", 8000, 256): [4] * 16 + [8] * 7 + [9],  # 3750..4000 Hz = bins 120..128
    ("speech", 16000, 512): SPEECH_100HZ + [7, 6, 7, 6, 6] * 2 + [16] * 7 + [17],
    ("speech", 8000, 256): SPEECH_100HZ + [7, 6, 7, 6, 6] + [7, 6, 7, 6, 7],
    # 44.1 kHz / 2048 (the paper): bins 21.533 Hz apart; edges 100, 200, 300 Hz start at bins
    # ceil(4.64) = 5, ceil(9.29) = 10, ceil(13.93) = 14, ...; 20 kHz at ceil(928.8) = 929, so the
    # rest band holds bins 929..1024 = 96.
    ("music", 44100, 2048): [5, 5, 4, 5, 5, 4, 5, 5, 4, 5]
    + [12, 11, 12, 11, 12, 12, 11, 12, 11, 12, 12, 11]
    + [23, 24, 23, 23, 23, 24, 23, 23]
    + [46, 47, 46, 47, 46, 47, 46, 47]
    + [92, 93, 96],
    # 48 kHz / 2048: bins 23.4375 Hz apart; 20 kHz at ceil(853.3) = 854 -> 1025 - 854 = 171.
    ("music", 48000, 2048): [5, 4, 4, 5, 4, 4, 4, 5, 4, 4]
    + [11, 10, 11, 11, 10, 11, 11, 10, 11, 11, 10, 11]
    + [21, 22, 21, 21, 22, 21, 21, 22]
    + [42, 43, 43, 42, 43, 43, 42, 43]
    + [85, 86, 171],
    # 48 kHz / 1536 keeps the 31.25 Hz spacing: 1 kHz = 32 bins, 2 kHz = 64, 20..24 kHz = 129.
    ("gass", 48000, 1536): [4] * 16 + [8] * 8 + [16] * 8 + [32] * 8 + [64] * 2 + [129],
    # The music plan at 16 kHz is truncated at Nyquist: 30 bands, the last 7.5..8 kHz.
    ("music", 16000, 512): [4, 3, 3, 3, 3] * 2 + [8] * 12 + [16] * 7 + [17],
    # BS-RoFormer's plan (Lu et al. 2024, section 4.4) is given in bins at 44.1 kHz / 2048.
    ("roformer", 44100, 2048): [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129],
}


@pytest.mark.parametrize("key", list(EXPECTED_BINS), ids=lambda k: f"{k[0]}-{k[1]}-{k[2]}")
def test_bins_per_band_hand_computed(key):
    """Bins per band at 8, 16, 44.1 and 48 kHz match the hand-computed counts."""
    plan, sample_rate, n_fft = key
    got = widths(plan, sample_rate, n_fft)
    assert got == EXPECTED_BINS[key]
    assert sum(got) == n_fft // 2 + 1


@pytest.mark.parametrize("plan", sorted(BAND_PLANS))
@pytest.mark.parametrize("sample_rate,n_fft", [(8000, 256), (16000, 512), (16000, 1024),
                                               (22050, 1024), (44100, 2048), (48000, 2048)])
def test_bins_match_brute_force_assignment(plan, sample_rate, n_fft):
    """Every bin lands in the band whose [low, high) holds its frequency (float64 brute force);
    a plan with a band below Nyquist that holds no bin (TIGER's 25 Hz bands on 31.25 Hz bins)
    is refused, naming that band."""
    bands = BAND_PLANS[plan]
    nyquist = sample_rate / 2
    freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * sample_rate / n_fft
    owner = []
    for f in freqs:
        # below Nyquist: lo <= f < hi; the Nyquist bin joins the last band starting below it
        matches = [k for k, (lo, hi) in enumerate(bands)
                   if (lo <= f < hi if f < nyquist else lo < f <= hi)]
        assert len(matches) == 1
        owner.append(matches[0])
    empty = [k for k, (lo, _) in enumerate(bands) if lo < nyquist and k not in owner]
    if empty:
        lo, hi = bands[empty[0]]
        with pytest.raises(ValueError, match=rf"band \[{lo:g}, {hi:g}\) Hz holds no STFT bin"):
            band_bins(plan, sample_rate, n_fft)
        return
    expected = [(owner.index(k), len(owner) - owner[::-1].index(k)) for k in sorted(set(owner))]
    assert band_bins(plan, sample_rate, n_fft) == expected


def test_explicit_plan_and_truncation():
    """Plans given in Hz work; bands at or above Nyquist are dropped, the last is cut there."""
    plan = [(0, 1000), (1000, 3000), (3000, 6000), (6000, INF)]
    assert band_bins(plan, 8000, 16) == [(0, 2), (2, 6), (6, 9)]  # 500 Hz bins, Nyquist = bin 8
    assert band_bins(plan, 16000, 16) == [(0, 1), (1, 3), (3, 6), (6, 9)]
    assert uniform_bands(500, 1000, 2500) == [(1000.0, 1500.0), (1500.0, 2000.0),
                                               (2000.0, 2500.0)]
    assert check_band_plan([[0, 4000.0]], 4000) == [(0.0, 4000.0)]  # yaml lists are fine


@pytest.mark.parametrize("plan,match", [
    ([(0, 1000), (1200, INF)], "gap: band 0 ends at 1000 Hz but band 1 starts at 1200 Hz"),
    ([(0, 1000), (900, INF)], "overlap: band 0 ends at 1000 Hz but band 1 starts at 900 Hz"),
    ([(0, 1000), (1000, 1000), (1000, INF)], r"band 1 \[1000, 1000\) Hz is empty"),
    ([(0, 1000), (2000, INF), (1000, 2000)], "not sorted: band 2 starts at 1000 Hz"),
    ([(100, 1000), (1000, INF)], "must start at 0 Hz, its first band starts at 100 Hz"),
    ([(0, 1000), (1000, 3000)], "covers 0..3000 Hz but must reach the Nyquist frequency 4000"),
    ([(0, 1000), (3000, 1000)], "band 1 .* ends below where it starts"),
    ([], "non-empty sequence"),
    ([(0, 1000, 2000)], r"band 0 as a \(low_hz, high_hz\) pair"),
    ([(0, "1k")], "band 0 high edge as a number of Hz"),
    ([(0, float("nan"))], "band 0 high edge as a number of Hz"),
    ("opera", "unknown band plan 'opera'"),
])
def test_bad_plans_raise(plan, match):
    """Gaps, overlaps, empty bands, unsorted or short plans raise errors that say what to fix."""
    with pytest.raises(ValueError, match=match):
        band_bins(plan, 8000, 256)


def test_bands_without_bins_and_bad_sizes_raise():
    """A band narrower than the bin spacing, bad rates / FFT sizes and uneven segments raise."""
    with pytest.raises(ValueError, match=r"\[100, 110\) Hz holds no STFT bin .* 31.25 Hz apart"):
        band_bins([(0, 100), (100, 110), (110, INF)], 8000, 256)
    with pytest.raises(ValueError, match="n_fft as a positive int"):
        band_bins("gass", 16000, 0)
    with pytest.raises(ValueError, match="sample_rate as a positive int"):
        band_bins("gass", 16000.0, 512)
    with pytest.raises(ValueError, match="not a whole number of 300 Hz bands"):
        uniform_bands(300, 0, 1000)
    with pytest.raises(ValueError, match="width_hz > 0"):
        uniform_bands(0, 0, 1000)


MIXED_BINS = [(0, 2), (2, 5), (5, 7), (7, 8), (8, 11)]  # widths 2, 3, 2, 1, 3: groups interleave


def test_band_groups_gather_and_restore_are_inverse():
    """Gathering bins per width group and merging them back is the identity (split/merge)."""
    groups = BandGroups(MIXED_BINS)
    assert groups.widths == [1, 2, 3] and groups.members == [[3], [0, 2], [1, 4]]
    x = torch.randn(2, 4, 11, 2)
    per_group = [groups.gather_bins(x, g).flatten(2, 3) for g in range(3)]  # [B, T, n_g*G, 2]
    assert torch.equal(groups.bins_in_order(per_group, dim=2), x)
    bands = torch.randn(2, 4, 5, 3)
    assert torch.equal(groups.bands_in_order([groups.gather_bands(bands, g) for g in range(3)]),
                       bands)


def _randomise(module: torch.nn.Module) -> None:
    """Non-trivial values for every parameter (norm affines included)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def _layer_norm(x: np.ndarray, weight, bias, eps=1e-5) -> np.ndarray:
    return (x - x.mean()) / np.sqrt(x.var() + eps) * weight + bias


def _rms_norm(x: np.ndarray, weight, eps=1e-5) -> np.ndarray:
    return x / np.sqrt(np.mean(x**2) + eps) * weight


def _norm_and_rest(params: list[np.ndarray], norm: str):
    """The numpy reference of a band's norm, and the band's other parameters."""
    if norm == "layer":
        return (lambda x: _layer_norm(x, params[0], params[1])), params[2:]
    return (lambda x: _rms_norm(x, params[0])), params[1:]


@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_band_split_matches_numpy_per_band_reference(norm):
    """Each band: LayerNorm (BSRNN) or RMSNorm (BS-RoFormer) over its interleaved [Re, Im] bins,
    then its own linear map."""
    split = BandSplit(MIXED_BINS, feature_dim=6, norm=norm)
    _randomise(split)
    spec = torch.randn(2, 11, 5, dtype=torch.complex64)
    out = split(spec).detach().double().numpy()  # [B, T, K, N]
    spec64 = spec.numpy().astype(np.complex128)
    for k, (start, end) in enumerate(MIXED_BINS):
        band_norm, (weight, bias) = _norm_and_rest(
            [p.detach().double().numpy() for p in split.band_parameters(k)], norm)
        for b in range(2):
            for t in range(5):
                band = spec64[b, start:end, t]
                feats = np.stack([band.real, band.imag], axis=-1).reshape(-1)  # re0, im0, ...
                ref = weight @ band_norm(feats) + bias
                np.testing.assert_allclose(out[b, t, k], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_mask_estimator_matches_numpy_per_band_reference(norm):
    """Each band's MLP + GLU writes the masks of its own bins, for every source."""
    num_sources, feature_dim = 3, 4
    masks = MaskEstimator(MIXED_BINS, feature_dim, num_sources, hidden_dim=7, norm=norm)
    _randomise(masks)
    z = torch.randn(2, 3, len(MIXED_BINS), feature_dim)
    out = masks(z).detach().double().numpy()  # [B, S, F, T, 2]
    assert out.shape == (2, num_sources, 11, 3, 2)
    z64 = z.double().numpy()
    for k, (start, end) in enumerate(MIXED_BINS):
        band_norm, (w1, b1, w2, b2) = _norm_and_rest(
            [p.detach().double().numpy() for p in masks.band_parameters(k)], norm)
        for b in range(2):
            for t in range(3):
                hidden = np.tanh(w1 @ band_norm(z64[b, t, k]) + b1)
                o = w2 @ hidden + b2
                value, gate = np.split(o, 2)
                ref = (value / (1 + np.exp(-gate))).reshape(num_sources, end - start, 2)
                np.testing.assert_allclose(out[b, :, start:end, t], ref, rtol=1e-5, atol=1e-6)


def test_split_and_masks_are_per_frame():
    """Neither the band split nor the mask heads mix frames: extra frames change nothing."""
    split = BandSplit(MIXED_BINS, feature_dim=4)
    masks = MaskEstimator(MIXED_BINS, 4, num_sources=2, hidden_dim=8)
    spec = torch.randn(1, 11, 20, dtype=torch.complex64)
    short, full = split(spec[..., :7]), split(spec)
    torch.testing.assert_close(short, full[:, :7])
    torch.testing.assert_close(masks(short), masks(full)[..., :7, :])


@pytest.mark.parametrize("length", [32, 32 * 7, 32 * 101])
def test_identity_masks_reconstruct_the_input(length):
    """STFT -> band split/merge of unit masks -> iSTFT gives the mixture back (float tolerance)."""
    model = BSRNN(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32, band_plan="speech",
                  feature_dim=4, hidden_dim=4, num_blocks=1)
    mix = torch.randn(3, length)
    spec = model.encoder(mix)  # [B, F, T']
    ones = torch.zeros(3, 2, *spec.shape[1:], 2)
    ones[..., 0] = 1.0
    out = model.apply_masks(spec, ones)  # [B, L, S]
    assert out.shape == (3, length, 2)
    torch.testing.assert_close(out, mix.unsqueeze(-1).expand(-1, -1, 2), atol=1e-5, rtol=0)
    half = ones * 0.5  # 0.5 + 0j in every bin halves the waveform
    torch.testing.assert_close(model.apply_masks(spec, half)[..., 1], 0.5 * mix, atol=1e-5, rtol=0)


def test_exportable_blstm_matches_lstm_under_export_at_any_length():
    """The scan path taken by torch.export equals nn.LSTM, with a symbolic length down to 1."""
    blstm = ExportableBLSTM(4, 5).eval()
    program = torch.export.export(
        blstm, (torch.randn(2, 6, 4),),
        dynamic_shapes={"x": {0: Dim("batch", min=1, max=64), 1: Dim("steps", min=1, max=4096)}})
    for batch, steps in [(1, 1), (3, 2), (2, 37)]:
        x = torch.randn(batch, steps, 4)
        torch.testing.assert_close(program.module()(x), blstm.lstm(x)[0], atol=1e-6, rtol=1e-5)


def _expected_param_count(bins, num_sources, feature_dim, hidden_dim, num_blocks, mask_hidden):
    """Closed-form parameter count of BSRNN (paper layer sizes)."""
    n, h, m = feature_dim, hidden_dim, mask_hidden
    split = sum(2 * 2 * g + 2 * g * n + n for g in (e - s for s, e in bins))  # LN + linear
    lstm = 2 * (4 * h * n + 4 * h * h + 2 * 4 * h)  # two directions, two bias vectors
    blocks = num_blocks * 2 * (2 * n + lstm + 2 * h * n + n)  # LN, BLSTM, FC; time and band
    mask = sum(2 * n + n * m + m + m * 4 * num_sources * g + 4 * num_sources * g
               for g in (e - s for s, e in bins))
    return split + blocks + mask


@pytest.mark.parametrize("card,dims,expected", [
    ("bsrnn.yaml", (128, 256, 10, 512), 21_431_060),
    ("bsrnn_small.yaml", (32, 64, 2, 128), 903_636),
])
def test_card_parameter_counts(card, dims, expected):
    """The cards build 4-source 16 kHz models with the closed-form count; large = GASS ±15 %."""
    hparams = load_hyperpyyaml((ROOT / "hparams" / "models" / card).read_text())
    model = hparams["separator"]
    assert (model.sample_rate, model.num_sources, model.stride) == (16000, 4, 128)
    count = sum(p.numel() for p in model.parameters())
    assert count == _expected_param_count(model.bins, 4, *dims) == expected
    if card == "bsrnn.yaml":
        assert abs(count / 21.8e6 - 1) < 0.15


def test_silence_and_tiny_inputs_give_finite_outputs():
    """All-zero mixtures give exactly zero sources (no NaN from the norms); tiny ones are finite."""
    model = BSRNN(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16, feature_dim=4,
                  hidden_dim=4, num_blocks=1).eval()
    with torch.no_grad():
        assert torch.equal(model(torch.zeros(2, 50)), torch.zeros(2, 50, 2))
        assert torch.isfinite(model(1e-7 * torch.randn(2, 50))).all()


def test_bad_model_arguments_and_inputs_raise():
    """Clear errors for a hop too long for the window, bad sizes and wrong spectrogram shapes."""
    with pytest.raises(ValueError, match="hop_length must be <= n_fft // 2"):
        BSRNN(n_fft=512, hop_length=300)
    with pytest.raises(ValueError, match="num_sources must be a positive int"):
        BSRNN(num_sources=0)
    with pytest.raises(ValueError, match="feature_dim must be a positive int"):
        BSRNN(feature_dim=0)
    split = BandSplit(MIXED_BINS, 4)
    with pytest.raises(ValueError, match=r"expected a complex spectrogram \[B, 11, T\]"):
        split(torch.randn(2, 11, 5))
    with pytest.raises(ValueError, match=r"expected a complex spectrogram \[B, 11, T\]"):
        split(torch.randn(2, 12, 5, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"expected band features \[B, T, 5, 4\]"):
        MaskEstimator(MIXED_BINS, 4, 2, 8)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="contiguous non-empty bin ranges"):
        BandSplit([(0, 2), (3, 5)], 4)
