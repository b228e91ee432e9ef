"""Value tests of gass_modules.metrics against independent computations.

References: numpy float64 closed forms written per signal (with the module's documented silence
conventions), fast-bss-eval's numpy backend, museval's own BSS Eval (sources version) and a
numpy framewise SNR for the museval cSDR wrapper (BSS Eval v4 image SDR is a framewise SNR).
"""

import itertools
import math

import numpy as np
import pytest
import torch
from fast_bss_eval.numpy import sdr_loss as numpy_sdr_loss

from gass_modules.evaluation import benchmark_metrics
from gass_modules.evaluation.benchmark_metrics import (
    fuss_multi_source_si_snri,
    fuss_single_source_si_snr,
    musdb_csdr,
    musdb_usdr,
)
from gass_modules.metrics import (
    DB_LIMIT,
    active_mean,
    active_sources,
    align_estimates,
    sdr,
    sdri,
    si_snr,
    si_snri,
    snr,
    snri,
)


def np_db(num, den):
    """10·log10(num/den) with the documented limits: 0/0 -> 0, x/0 -> +100, 0/x -> -100."""
    if num == 0 and den == 0:
        return 0.0
    if den == 0:
        return DB_LIMIT
    if num == 0:
        return -DB_LIMIT
    return float(np.clip(10 * math.log10(num / den), -DB_LIMIT, DB_LIMIT))


def np_snr(s, e):
    """SNR of one estimate (1-D float64)."""
    return np_db(np.sum(s**2), np.sum((s - e) ** 2))


def np_si_snr(s, e, zero_mean):
    """SI-SNR of one estimate, with the silent-signal conventions of the module docstring."""
    if zero_mean:
        s, e = s - s.mean(), e - e.mean()
    ref_silent, est_silent = not np.any(s), not np.any(e)
    if ref_silent and est_silent:
        return 0.0
    if ref_silent or est_silent:
        return -DB_LIMIT
    proj = np.dot(e, s) / np.dot(s, s) * s
    return np_db(np.sum(proj**2), np.sum((e - proj) ** 2))


def per_source(fn, targets, estimates, *args):
    """[B, S] array of fn(s[b, :, i], e[b, :, i], *args)."""
    s, e = targets.double().numpy(), estimates.double().numpy()
    return np.array([[fn(s[b, :, i], e[b, :, i], *args) for i in range(s.shape[2])]
                     for b in range(s.shape[0])])


def make_batch(batch=3, length=600, sources=3, seed=0):
    """Random references with varied levels and noisy estimates (some slots silent)."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randn(batch, length, sources, generator=gen, dtype=torch.float64)
    targets *= torch.logspace(-3, 2, batch * sources, dtype=torch.float64).view(batch, 1, sources)
    estimates = targets + 0.2 * targets.std(1, keepdim=True) * torch.randn(
        batch, length, sources, generator=gen, dtype=torch.float64) + 0.01
    return targets, estimates


def with_silence(targets, estimates):
    """Silent reference (b0 s1), silent estimate (b1 s0), both silent (b2 s2)."""
    targets, estimates = targets.clone(), estimates.clone()
    targets[0, :, 1] = 0.0
    estimates[1, :, 0] = 0.0
    targets[2, :, 2] = 0.0
    estimates[2, :, 2] = 0.0
    return targets, estimates


@pytest.mark.parametrize("silence", [False, True])
def test_snr_and_si_snr_match_closed_forms(silence):
    """snr and si_snr (both mean conventions) equal the per-signal numpy formulas."""
    targets, estimates = make_batch()
    if silence:
        targets, estimates = with_silence(targets, estimates)
    np.testing.assert_allclose(snr(targets, estimates).numpy(),
                               per_source(np_snr, targets, estimates), atol=1e-9)
    for zero_mean in (True, False):
        np.testing.assert_allclose(si_snr(targets, estimates, zero_mean).numpy(),
                                   per_source(np_si_snr, targets, estimates, zero_mean),
                                   atol=1e-9)


def test_documented_conventions():
    """Silence and perfection give the values the module docstring states, never NaN."""
    s = torch.randn(1, 200, 1, dtype=torch.float64)
    zero = torch.zeros_like(s)
    noise = torch.randn(1, 200, 1, dtype=torch.float64)
    cases = {  # (targets, estimates): (snr, si_snr, sdr)
        "both_silent": (zero, zero, (0.0, 0.0, 0.0)),
        "silent_reference": (zero, noise, (-100.0, -100.0, -100.0)),
        "silent_estimate": (s, zero, (0.0, -100.0, -100.0)),
        "exact": (s, s, (100.0, 100.0, 100.0)),
    }
    for name, (t, e, expected) in cases.items():
        got = (snr(t, e).item(), si_snr(t, e).item(), sdr(t, e, filter_length=16).item())
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=name)
    alternating = torch.tensor([1.0, -1.0] * 50).view(1, 100, 1)
    halves = torch.tensor([1.0] * 50 + [-1.0] * 50).view(1, 100, 1)  # orthogonal, zero-mean
    assert si_snr(alternating, halves).item() == -100.0


def test_si_snr_ignores_the_estimate_gain_and_snr_does_not():
    """si_snr(s, g·ŝ) = si_snr(s, ŝ) for any g ≠ 0 (sign included); snr changes."""
    targets, estimates = make_batch()
    base = si_snr(targets, estimates)
    for gain in (1e-6, -3.0, 1e6):
        torch.testing.assert_close(si_snr(targets, gain * estimates), base)
    assert not torch.allclose(snr(targets, 2 * estimates), snr(targets, estimates))


def test_improvements_are_differences_with_the_mixture():
    """snri / si_snri / sdri equal metric(estimate) − metric(mixture) by independent paths."""
    targets, estimates = make_batch(length=800)
    mixture = targets.sum(-1) + 0.05 * torch.randn(3, 800, dtype=torch.float64)
    mix = mixture.unsqueeze(-1).expand_as(targets)
    np.testing.assert_allclose(
        snri(targets, estimates, mixture).numpy(),
        per_source(np_snr, targets, estimates) - per_source(np_snr, targets, mix), atol=1e-9)
    for zero_mean in (True, False):
        np.testing.assert_allclose(
            si_snri(targets, estimates, mixture, zero_mean).numpy(),
            per_source(np_si_snr, targets, estimates, zero_mean)
            - per_source(np_si_snr, targets, mix, zero_mean), atol=1e-9)
    expected = fbe_sdr(targets, estimates, 64) - fbe_sdr(targets, mix, 64)
    np.testing.assert_allclose(sdri(targets, estimates, mixture, 64).numpy(), expected, atol=1e-6)


def fbe_sdr(targets, estimates, filter_length):
    """[B, S] SDR from fast-bss-eval's numpy backend (pairwise, diagonal)."""
    ref = targets.double().numpy().transpose(0, 2, 1)
    est = estimates.double().numpy().transpose(0, 2, 1)
    neg = numpy_sdr_loss(est, ref, filter_length=filter_length, pairwise=True)
    return -np.diagonal(neg, axis1=-2, axis2=-1)


def test_sdr_matches_fast_bss_eval_numpy_backend():
    """The torch-path SDR equals fast-bss-eval's numpy implementation (512 taps)."""
    targets, estimates = make_batch(batch=2, length=2000)
    np.testing.assert_allclose(sdr(targets, estimates).numpy(), fbe_sdr(targets, estimates, 512),
                               atol=1e-6)


@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_sdr_ignores_the_signal_scale(scale):
    """Quiet and loud signals score the same (fast-bss-eval alone floors norms at 1e-6)."""
    targets, estimates = make_batch(batch=2, length=1000)
    torch.testing.assert_close(sdr(scale * targets, scale * estimates, 64),
                               sdr(targets, estimates, 64))


def test_sdr_matches_museval_bss_eval_sources():
    """An independent BSS Eval implementation (museval, sources version) agrees."""
    targets, estimates = make_batch(batch=1, length=2000, sources=2)
    ref = targets[0].numpy().T[:, :, None]  # [S, T, 1]
    est = estimates[0].numpy().T[:, :, None]
    expected = benchmark_metrics._museval_metrics().bss_eval(
        ref, est, window=np.inf, hop=np.inf, compute_permutation=False, filters_len=512,
        bsseval_sources_version=True)[0][:, 0]
    np.testing.assert_allclose(sdr(targets, estimates)[0].numpy(), expected, atol=1e-4)


def test_sdr_with_one_tap_is_si_snr_without_mean_removal():
    """A 1-tap distortion filter is a gain: SDR = SI-SNR (no mean removal)."""
    targets, estimates = make_batch()
    torch.testing.assert_close(sdr(targets, estimates, filter_length=1),
                               si_snr(targets, estimates, zero_mean=False))


def test_sdr_silent_slots_follow_the_convention_and_leave_others_alone():
    """Silent references/estimates get the documented values; other sources are unchanged."""
    targets, estimates = make_batch(length=1000)
    silent_t, silent_e = with_silence(targets, estimates)
    got = sdr(silent_t, silent_e, filter_length=32)
    clean = fbe_sdr(targets, estimates, 32)
    assert got[0, 1] == -100.0 and got[1, 0] == -100.0 and got[2, 2] == 0.0
    keep = torch.ones(3, 3, dtype=torch.bool)
    keep[0, 1] = keep[1, 0] = keep[2, 2] = False
    np.testing.assert_allclose(got[keep].numpy(), clean[keep.numpy()], atol=1e-6)


def np_align(targets, estimates):
    """Brute force: the permutation maximising Σ SI-SNR over active references (no mean)."""
    s, e = targets.double().numpy(), estimates.double().numpy()
    out = np.empty_like(e)
    for b in range(s.shape[0]):
        active = [i for i in range(s.shape[2]) if np.any(s[b, :, i])]
        best, best_p = -np.inf, None
        for p in itertools.permutations(range(s.shape[2])):
            total = sum(np_si_snr(s[b, :, i], e[b, :, p[i]], False) for i in active)
            if total > best:
                best, best_p = total, p
        out[b] = e[b][:, list(best_p)]
    return out


def fuss_batch(seed=1):
    """4-slot batch with 4, 3, 2, 1 and 0 active references, estimates shuffled and noisy."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randn(5, 400, 4, generator=gen, dtype=torch.float64)
    for b, silent in enumerate([[], [3], [0, 2], [0, 1, 3], [0, 1, 2, 3]]):
        targets[b, :, silent] = 0.0
    order = [torch.randperm(4, generator=gen) for _ in range(5)]
    estimates = torch.stack([targets[b][:, order[b]] for b in range(5)])
    estimates = estimates + 0.3 * torch.randn(5, 400, 4, generator=gen, dtype=torch.float64)
    mixture = targets.sum(-1)
    return targets, estimates, mixture


def test_align_estimates_matches_bruteforce():
    """align_estimates picks the brute-force permutation over active references."""
    targets, estimates, _ = fuss_batch()
    np.testing.assert_allclose(align_estimates(targets, estimates).numpy(),
                               np_align(targets, estimates), atol=0)


def test_fuss_multi_source_si_snri_matches_numpy():
    """Mean SI-SNRi over active references after brute-force alignment; 0 without any."""
    targets, estimates, mixture = fuss_batch()
    aligned = np_align(targets, estimates)
    s, x = targets.numpy(), mixture.numpy()
    expected = []
    for b in range(5):
        active = [i for i in range(4) if np.any(s[b, :, i])]
        gains = [np_si_snr(s[b, :, i], aligned[b, :, i], False)
                 - np_si_snr(s[b, :, i], x[b], False) for i in active]
        expected.append(np.mean(gains) if gains else 0.0)
    np.testing.assert_allclose(fuss_multi_source_si_snri(targets, estimates, mixture).numpy(),
                               expected, atol=1e-9)


def test_fuss_single_source_si_snr_matches_numpy():
    """max_j SI-SNR(Σ_i s_i, ŝ_j): for a single-source mixture, its matched output."""
    targets, estimates, _ = fuss_batch()
    s, e = targets.numpy(), estimates.numpy()
    expected = [max(np_si_snr(s[b].sum(-1), e[b, :, j], False) for j in range(4))
                for b in range(5)]
    got = fuss_single_source_si_snr(targets, estimates)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9)
    single = active_sources(targets).sum(-1) == 1
    assert single.tolist() == [False, False, False, True, False]
    assert got[3] > 5.0  # the one active source was put in one output (with 0.3 noise)


@pytest.mark.parametrize("stereo", [False, True])
def test_usdr_matches_mdx_formula(stereo):
    """uSDR = 10·log10((‖s‖² + δ)/(‖s − ŝ‖² + δ)) over time and channels."""
    gen = torch.Generator().manual_seed(2)
    shape = (2, 2, 500, 4) if stereo else (2, 500, 4)
    targets = torch.randn(shape, generator=gen, dtype=torch.float64)
    estimates = targets + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
    targets[1, ..., 3] = 0.0
    estimates[1, ..., 3] = 0.0  # both silent: 0 dB
    s, e = targets.numpy(), estimates.numpy()
    if not stereo:
        s, e = s[:, None], e[:, None]
    num = (s**2).sum(axis=(1, 2)) + 1e-7
    den = ((s - e) ** 2).sum(axis=(1, 2)) + 1e-7
    got = musdb_usdr(targets, estimates)
    np.testing.assert_allclose(got.numpy(), 10 * np.log10(num / den), atol=1e-9)
    assert got[1, 3] == 0.0


def np_csdr(targets, estimates, window, hop):
    """Median over museval-style frames of the framewise SNR; frames where any reference or
    estimate is silent (channel sum zero throughout the frame) are skipped."""
    s, e = targets.numpy(), estimates.numpy()  # [C, T, S]
    length = s.shape[1]
    nwin = (length - window + hop) // hop if window < length else 1
    values = []
    for k in range(nwin):
        frame = slice(k * hop, min(k * hop + window, length))
        fs, fe = s[:, frame], e[:, frame]
        silent = (fs.sum(0) == 0).all(0).any() or (fe.sum(0) == 0).all(0).any()
        values.append(np.full(s.shape[2], np.nan) if silent else np.array([
            np_db(np.sum(fs[..., j] ** 2), np.sum((fs[..., j] - fe[..., j]) ** 2))
            for j in range(s.shape[2])]))
    return np.nanmedian(np.array(values), axis=0)


def test_csdr_matches_framewise_snr_and_falls_back_on_silent_stems():
    """museval cSDR = nanmedian of framewise SNR; a stem silent throughout -> whole-track SNR."""
    gen = torch.Generator().manual_seed(4)
    targets = torch.randn(2, 2, 2000, 2, generator=gen, dtype=torch.float64)  # [B, C, T, S]
    level = torch.rand(1, 1, 2000, 1, generator=gen, dtype=torch.float64)  # SNR varies in time
    estimates = targets + level * torch.randn(2, 2, 2000, 2, generator=gen, dtype=torch.float64)
    targets[0, :, :500, 1] = 0.0  # reference 1 silent in frame 0: frame skipped for all
    estimates[1, :, :, 0] = 0.0  # item 1: estimate 0 silent throughout: museval refuses
    got = musdb_csdr(targets, estimates, window=500, hop=250)
    expected0 = np_csdr(targets[0], estimates[0], 500, 250)
    np.testing.assert_allclose(got[0].numpy(), expected0, atol=1e-6)
    whole = snr(targets[1].reshape(1, 4000, 2), estimates[1].reshape(1, 4000, 2))[0]
    np.testing.assert_allclose(got[1].numpy(), whole.numpy(), atol=1e-9)
    assert got[1, 0] == 0.0  # SNR of a silent estimate


BAD = {
    "two_dims": (lambda: snr(torch.zeros(2, 10), torch.zeros(2, 10)), "x.unsqueeze"),
    "shapes": (lambda: si_snr(torch.zeros(2, 10, 2), torch.zeros(2, 10, 3)), "same shape"),
    "nan": (lambda: si_snr(torch.zeros(2, 10, 2), torch.full((2, 10, 2), float("nan"))),
            "NaN or Inf values in estimates"),
    "mixture": (lambda: si_snri(torch.zeros(2, 10, 2), torch.zeros(2, 10, 2), torch.zeros(2, 9)),
                "mixtures of shape"),
    "short_for_sdr": (lambda: sdr(torch.ones(1, 100, 2), torch.ones(1, 100, 2)),
                      "smaller filter_length"),
    "filter_length": (lambda: sdr(torch.ones(1, 100, 2), torch.ones(1, 100, 2), 0),
                      "filter_length"),
    "musdb_dims": (lambda: musdb_usdr(torch.zeros(10, 2), torch.zeros(10, 2)), "C, T, S"),
    "musdb_shapes": (lambda: musdb_usdr(torch.zeros(1, 2, 10, 4), torch.zeros(1, 10, 4)),
                     "same shape"),
    "delta": (lambda: musdb_usdr(torch.zeros(1, 10, 4), torch.zeros(1, 10, 4), 0.0), "delta"),
    "window": (lambda: musdb_csdr(torch.ones(1, 10, 4), torch.ones(1, 10, 4), window=0),
               "window"),
    "musdb_int": (lambda: musdb_usdr(torch.zeros(1, 10, 4, dtype=torch.long),
                                     torch.zeros(1, 10, 4)), "floating-point"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inputs_raise_clear_errors(case):
    """Wrong shapes/dtypes, NaN and impossible settings raise ValueError saying what to do."""
    call, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_fuss_active_estimates_matches_a_loop():
    """The FUSS estimate-activity rule against a per-mixture loop, silent mixtures included."""
    g = torch.Generator().manual_seed(3)
    targets = torch.randn(6, 400, 4, generator=g) * torch.rand(6, 1, 4, generator=g)
    targets[0, :, 1:] = 0.0  # one active reference
    targets[1] = 0.0  # none
    estimates = torch.randn(6, 400, 4, generator=g) * (10.0 ** (-3 * torch.rand(6, 1, 4,
                                                                                generator=g)))
    got = benchmark_metrics.fuss_active_estimates(targets, estimates)
    for b in range(6):
        active = [k for k in range(4) if targets[b, :, k].abs().sum() > 0]
        for k in range(4):
            expected = bool(active) and float(estimates[b, :, k].double().square().mean()) > (
                0.01 * min(float(targets[b, :, j].double().square().mean()) for j in active))
            assert bool(got[b, k]) == expected
    with pytest.raises(ValueError, match="power_ratio must be positive"):
        benchmark_metrics.fuss_active_estimates(targets, estimates, power_ratio=0.0)


def test_improvements_of_silent_slots_are_zero_and_active_mean_skips_them():
    """Issue 17 item 5: a 2-source mixture in 4 slots, estimates = the mixture in the active
    slots and silence elsewhere (no separation): every improvement is 0 dB, not +100 dB in the
    empty slots, and the per-mixture mean over active sources is 0 dB (it was 50 dB)."""
    gen = torch.Generator().manual_seed(5)
    targets = torch.zeros(1, 400, 4, dtype=torch.float64)
    targets[0, :, :2] = torch.randn(400, 2, generator=gen, dtype=torch.float64)
    mixture = targets.sum(-1)
    estimates = torch.zeros_like(targets)
    estimates[0, :, 0] = estimates[0, :, 1] = mixture[0]
    for name, values in (("snri", snri(targets, estimates, mixture)),
                         ("si_snri", si_snri(targets, estimates, mixture)),
                         ("si_snri_fuss", si_snri(targets, estimates, mixture, zero_mean=False)),
                         ("sdri", sdri(targets, estimates, mixture, 32))):
        np.testing.assert_allclose(values[0, 2:].numpy(), [0.0, 0.0], err_msg=name)
        np.testing.assert_allclose(values[0, :2].numpy(), [0.0, 0.0], atol=1e-6, err_msg=name)
        assert active_mean(values, targets).item() == pytest.approx(0.0, abs=1e-6), name
    # a silent slot with a non-silent estimate is still penalised relative to the mixture
    estimates[0, :, 3] = 0.1 * mixture[0]
    assert si_snri(targets, estimates, mixture)[0, 3].item() == 0.0  # -100 - (-100)
    assert si_snri(targets, estimates, torch.zeros_like(mixture))[0, 3].item() == -100.0


def test_active_mean_averages_active_slots_and_checks_shapes():
    targets = torch.zeros(2, 5, 3)
    targets[0, 0, [0, 2]] = 1.0
    values = torch.tensor([[4.0, 100.0, 8.0], [1.0, 2.0, 3.0]])
    assert active_mean(values, targets).tolist() == [6.0, 0.0]
    with pytest.raises(ValueError, match=r"\[B, S\] = \(2, 3\)"):
        active_mean(values[:, :2], targets)


def test_usdr_of_a_silent_reference_is_minus_100_db():
    """Issue 17 item 5: a quiet estimate of a silent stem scored -78.9 dB (delta only)."""
    targets = torch.zeros(1, 1000, 2, dtype=torch.float64)
    targets[0, :, 0] = 1.0
    estimates = torch.zeros_like(targets)
    estimates[0, :, 1] = 1e-4
    estimates[0, :, 0] = 1.0
    got = musdb_usdr(targets, estimates)
    assert got[0, 1].item() == -100.0
    assert got[0, 0].item() == 100.0  # exact: limited to +100 dB like every metric
