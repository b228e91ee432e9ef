"""Value tests of the PIT thresholded log-MSE against a brute-force numpy float64 reference.

The reference computes every pairwise loss from ``‖s − ŝ‖²`` directly (no Gram expansion) and
loops over all permutations; the module under test uses the Gram expansion and a tensor search or
the Hungarian solver.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from gass_modules import losses
from gass_modules.losses import (
    LOG_EPS,
    best_permutation,
    mixture_consistency,
    pairwise_log_mse,
    permute,
    pit_log_mse,
)
from gass_modules.sync_free import sync_free


def ref_matrix(targets, estimates, mixtures=None, snr_max=30.0, zero_snr_max=20.0):
    """[B, S, S] pairwise thresholded log-MSE by loops in float64 (entry [b, i, j])."""
    s = np.asarray(targets, dtype=np.float64)
    est = np.asarray(estimates, dtype=np.float64)
    x = s.sum(axis=2) if mixtures is None else np.asarray(mixtures, dtype=np.float64)
    tau, tau0 = 10.0 ** (-snr_max / 10.0), 10.0 ** (-zero_snr_max / 10.0)
    batch, _, sources = s.shape
    out = np.empty((batch, sources, sources))
    for b in range(batch):
        for i in range(sources):
            for j in range(sources):
                if np.any(s[b, :, i] != 0):
                    err = np.sum((s[b, :, i] - est[b, :, j]) ** 2)
                    thr = tau * np.sum(s[b, :, i] ** 2)
                else:
                    err = np.sum(est[b, :, j] ** 2)
                    thr = tau0 * np.sum(x[b] ** 2)
                out[b, i, j] = 10.0 * math.log10(err + thr + LOG_EPS)
    return out


def ref_pit(matrix):
    """([B] min over all permutations of the mean matched loss, [B, S] argmin) by brute force."""
    batch, sources, _ = matrix.shape
    best = np.full(batch, np.inf)
    perms = np.zeros((batch, sources), dtype=np.int64)
    for b in range(batch):
        for p in itertools.permutations(range(sources)):
            value = np.mean([matrix[b, i, p[i]] for i in range(sources)])
            if value < best[b]:
                best[b], perms[b] = value, p
    return best, perms


def make_batch(batch=3, length=1000, sources=4, silent=(), seed=0):
    """Random targets (with the listed (b, i) slots silent), noisy shuffled estimates."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randn(batch, length, sources, generator=gen)
    for b, i in silent:
        targets[b, :, i] = 0.0
    order = torch.randperm(sources, generator=gen)
    estimates = targets[:, :, order] + 0.3 * torch.randn(batch, length, sources, generator=gen)
    return targets, estimates


SCENARIOS = {
    "all_active": [],
    "some_silent": [(0, 3), (1, 1), (1, 2), (2, 0)],
    "all_silent_targets": [(b, i) for b in range(3) for i in range(4)],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("with_mixture", [False, True])
def test_pairwise_and_pit_match_bruteforce(scenario, with_mixture):
    """Pairwise matrix and PIT loss equal the float64 loop reference in every scenario."""
    targets, estimates = make_batch(silent=SCENARIOS[scenario])
    mixtures = None
    if with_mixture:  # a mixture with extra noise: the silent-slot threshold must use it
        mixtures = targets.sum(-1) + 0.5 * torch.randn(targets.shape[:2])
    ref = ref_matrix(targets, estimates, mixtures)
    matrix = pairwise_log_mse(targets, estimates, mixtures)
    assert matrix.dtype == torch.float32 and matrix.shape == (3, 4, 4)
    np.testing.assert_allclose(matrix.numpy(), ref, atol=5e-4)
    best, _ = ref_pit(ref)
    np.testing.assert_allclose(pit_log_mse(targets, estimates, mixtures).numpy(), best, atol=5e-4)


@pytest.mark.parametrize("sources", [1, 2, 3, 5, 6])
def test_pit_any_number_of_sources(sources):
    """S = 1..6 (exhaustive up to 4, Hungarian above) equals the brute-force minimum."""
    targets, estimates = make_batch(batch=2, length=400, sources=sources, silent=[(1, 0)])
    best, perms = ref_pit(ref_matrix(targets, estimates))
    np.testing.assert_allclose(pit_log_mse(targets, estimates).numpy(), best, atol=2e-3)
    assert best_permutation(pairwise_log_mse(targets, estimates)).tolist() == perms.tolist()


def test_thresholds_change_the_floor():
    """snr_max / zero_snr_max reach the formula (compared with the reference at other values)."""
    targets, estimates = make_batch(silent=SCENARIOS["some_silent"])
    ref = ref_matrix(targets, estimates, snr_max=10.0, zero_snr_max=5.0)
    got = pairwise_log_mse(targets, estimates, snr_max=10.0, zero_snr_max=5.0)
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-3)


def test_estimate_equal_to_target_sits_at_the_floor():
    """ŝ = s: each active source scores 10·log10(τ‖s‖²), each silent one 10·log10(τ0‖x‖²)."""
    targets, _ = make_batch(silent=[(0, 2), (2, 0), (2, 1)])
    loss = pit_log_mse(targets, targets.clone())
    s = targets.double()
    energy = s.square().sum(1)  # [B, S]
    mix_energy = s.sum(-1).square().sum(1, keepdim=True).expand_as(energy)
    floor = torch.where(energy > 0, 1e-3 * energy, 1e-2 * mix_energy)
    expected = (10 * torch.log10(floor + LOG_EPS)).mean(1)
    assert torch.isfinite(loss).all()
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), atol=5e-3)


def test_all_zero_mixture_and_estimates_stay_finite():
    """Silent mixture, silent estimates: 10·log10(LOG_EPS) = −300 dB, zero gradient."""
    targets = torch.zeros(2, 500, 4)
    estimates = torch.zeros(2, 500, 4, requires_grad=True)
    loss = pit_log_mse(targets, estimates)
    np.testing.assert_allclose(loss.detach().numpy(), [-300.0, -300.0], atol=1e-3)
    loss.sum().backward()
    assert torch.equal(estimates.grad, torch.zeros_like(estimates))


@pytest.mark.parametrize("scale", [1e-10, 1e-5, 1e5, 1e10, 1e20, 1e30])
def test_huge_and_tiny_amplitudes(scale):
    """loss(a·s, a·ŝ) = loss(s, ŝ) + 20·log10(a); huge ones go through the float64 path."""
    targets, estimates = make_batch(silent=SCENARIOS["some_silent"])
    base = pit_log_mse(targets, estimates)
    scaled = pit_log_mse(targets * scale, estimates * scale)
    assert torch.isfinite(scaled).all() and scaled.dtype == torch.float32
    np.testing.assert_allclose(scaled.numpy(), base.numpy() + 20 * math.log10(scale), atol=2e-3)


def test_float32_overflow_matches_float64_reference():
    """Energies beyond float32 (amplitude 1e25) give the float64 reference values."""
    targets, estimates = make_batch(silent=SCENARIOS["some_silent"])
    targets, estimates = targets * 1e25, estimates * 1e25
    assert not torch.isfinite(targets.square().sum()).item()  # float32 would overflow
    ref = ref_matrix(targets.double(), estimates.double())
    np.testing.assert_allclose(pairwise_log_mse(targets, estimates).numpy(), ref, atol=2e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_are_upcast(dtype):
    """bf16/half inputs: float32 result equal to the reference on the rounded inputs."""
    targets, estimates = make_batch(silent=SCENARIOS["some_silent"])
    targets, estimates = targets.to(dtype), estimates.to(dtype)
    ref = ref_matrix(targets.double(), estimates.double())
    matrix = pairwise_log_mse(targets, estimates)
    assert matrix.dtype == torch.float32
    np.testing.assert_allclose(matrix.numpy(), ref, atol=2e-3)
    mixed = pit_log_mse(targets.float(), estimates)  # float32 targets, low-precision estimates
    np.testing.assert_allclose(mixed.numpy(), ref_pit(ref)[0], atol=2e-3)


def test_float64_inputs_stay_float64():
    """float64 in, float64 out, at float64 accuracy."""
    targets, estimates = make_batch(silent=SCENARIOS["some_silent"])
    targets, estimates = targets.double(), estimates.double()
    loss = pit_log_mse(targets, estimates)
    assert loss.dtype == torch.float64
    np.testing.assert_allclose(loss.numpy(), ref_pit(ref_matrix(targets, estimates))[0],
                               rtol=0, atol=1e-9)


def test_autocast_does_not_lower_precision():
    """Under CPU autocast (bf16) the loss is computed exactly as without it."""
    targets, estimates = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = pit_log_mse(targets, estimates)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, pit_log_mse(targets, estimates))


def test_gradcheck_against_finite_differences():
    """The fused backward (estimates and targets) matches finite differences in float64."""
    gen = torch.Generator().manual_seed(3)
    targets = torch.randn(2, 12, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    estimates = torch.randn(2, 12, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    mixtures = torch.randn(2, 12, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(pit_log_mse, (targets, estimates))
    assert torch.autograd.gradcheck(lambda t, e, x: pairwise_log_mse(t, e, x),
                                    (targets, estimates, mixtures))
    # A silent target is a branch point (active/inactive) for its own gradient: check the others.
    silent = targets.detach().clone()
    silent[1, :, 2] = 0.0
    assert torch.autograd.gradcheck(lambda e, x: pairwise_log_mse(silent, e, x),
                                    (estimates, mixtures))


@pytest.mark.parametrize("case", ["equal", "zero_estimates", "tiny_estimates", "silent_slots"])
def test_gradients_are_finite(case):
    """Finite gradients at ŝ = s (where it is 0), at all-zero and at tiny estimates."""
    targets, estimates = make_batch(silent=[(0, 1), (2, 3)])
    if case == "equal":
        estimates = targets.clone()
    elif case == "zero_estimates":
        estimates = torch.zeros_like(targets)
    elif case == "tiny_estimates":
        estimates = 1e-20 * estimates
    else:  # silent targets with silent estimates next to active ones
        targets[:, :, 2:] = 0.0
        estimates = targets.clone()
    estimates.requires_grad_(True)
    pit_log_mse(targets, estimates).sum().backward()
    assert torch.isfinite(estimates.grad).all()
    if case in ("equal", "silent_slots"):  # the minimum: the gradient vanishes
        assert estimates.grad.abs().max().item() < 1e-5


def test_gradient_matches_float64_direct_formula():
    """Gradient of the Gram-based float32 loss equals autograd through ‖s − ŝ‖² in float64."""
    targets, estimates = make_batch(silent=[(1, 2)])
    estimates.requires_grad_(True)
    pit_log_mse(targets, estimates).sum().backward()
    perm = best_permutation(pairwise_log_mse(targets, estimates))
    est64 = estimates.detach().double().requires_grad_(True)
    s = targets.double()
    aligned = permute(est64, perm)
    err = (s - aligned).square().sum(1)
    energy = s.square().sum(1)
    thr = torch.where(energy > 0, 1e-3 * energy, 1e-2 * s.sum(-1).square().sum(1, keepdim=True))
    (10 * torch.log10(err + thr)).mean(1).sum().backward()
    torch.testing.assert_close(estimates.grad.double(), est64.grad, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("length", [999, 1024])
def test_gradient_is_the_same_for_any_layout_and_length(length):
    """Odd lengths and non-contiguous estimates ([B, S, T] outputs transposed) give the same
    gradient as the contiguous float64 autograd reference."""
    targets, estimates = make_batch(length=length, silent=[(0, 2)])
    source_major = estimates.transpose(1, 2).contiguous().requires_grad_(True)  # [B, S, T]
    pit_log_mse(targets, source_major.transpose(1, 2)).sum().backward()
    contiguous = estimates.clone().requires_grad_(True)
    pit_log_mse(targets, contiguous).sum().backward()
    est64 = estimates.double().requires_grad_(True)
    pit_log_mse(targets.double(), est64).sum().backward()
    torch.testing.assert_close(source_major.grad.transpose(1, 2), contiguous.grad)
    torch.testing.assert_close(contiguous.grad.double(), est64.grad, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("sources", [2, 3, 4, 5, 6, 7])
def test_hungarian_equals_exhaustive(sources):
    """Both searches pick the same permutation and cost on random matrices."""
    gen = torch.Generator().manual_seed(sources)
    matrix = torch.randn(64 if sources <= 5 else 8, sources, sources, generator=gen)
    exhaustive = best_permutation(matrix, method="exhaustive")
    hungarian = best_permutation(matrix, method="hungarian")
    assert torch.equal(exhaustive, hungarian)
    cost = matrix.gather(2, exhaustive.unsqueeze(2)).sum((1, 2))
    np.testing.assert_allclose(cost.numpy(), ref_pit(matrix.numpy())[0] * sources, rtol=1e-5)


def test_auto_uses_tensor_search_up_to_4_and_hungarian_above(monkeypatch):
    """S <= 4 never calls scipy; S = 5 calls it once per item."""
    calls = []
    real = losses.linear_sum_assignment

    def spy(cost):
        calls.append(cost.shape)
        return real(cost)

    monkeypatch.setattr(losses, "linear_sum_assignment", spy)
    best_permutation(torch.randn(8, 4, 4))
    assert calls == []
    best_permutation(torch.randn(8, 5, 5))
    assert calls == [(5, 5)] * 8


def test_shuffled_perfect_estimates_are_recovered():
    """best_permutation undoes a shuffle and permute aligns the estimates."""
    targets, _ = make_batch(batch=2, sources=4)
    order = torch.tensor([[2, 0, 3, 1], [1, 3, 0, 2]])
    shuffled = torch.stack([targets[b][:, order[b]] for b in range(2)])
    perm = best_permutation(pairwise_log_mse(targets, shuffled))
    torch.testing.assert_close(permute(shuffled, perm), targets)
    composed = pairwise_log_mse(targets, shuffled).gather(2, perm.unsqueeze(2)).mean((1, 2))
    torch.testing.assert_close(composed, pit_log_mse(targets, shuffled))


def test_usable_from_hyperpyyaml():
    """`!name:` gives a partial with the yaml's keyword arguments."""
    hparams = load_hyperpyyaml("loss: !name:gass_modules.losses.pit_log_mse\n  snr_max: 20.0\n")
    targets, estimates = make_batch()
    torch.testing.assert_close(hparams["loss"](targets, estimates),
                               pit_log_mse(targets, estimates, snr_max=20.0))


BAD_INPUTS = {
    "two_dims": (torch.zeros(2, 100), torch.zeros(2, 100), None, "x.unsqueeze(-1)"),
    "shapes_differ": (torch.zeros(2, 100, 4), torch.zeros(2, 100, 3), None, "same shape"),
    "no_sources": (torch.zeros(2, 100, 0), torch.zeros(2, 100, 0), None, "at least 1"),
    "no_samples": (torch.zeros(2, 0, 4), torch.zeros(2, 0, 4), None, "at least 1"),
    "empty_batch": (torch.zeros(0, 10, 4), torch.zeros(0, 10, 4), None, "at least 1"),
    "integer": (torch.zeros(2, 10, 4, dtype=torch.int16), torch.zeros(2, 10, 4), None,
                "floating-point targets"),
    "mixture_shape": (torch.zeros(2, 10, 4), torch.zeros(2, 10, 4), torch.zeros(2, 11),
                      "mixtures of shape"),
    "nan_estimates": (torch.zeros(2, 10, 4), torch.zeros(2, 10, 4).index_fill(0, torch.tensor(
        [1]), float("nan")), None, "estimates (batch items [1])"),
    "inf_targets": (torch.full((2, 10, 4), float("inf")), torch.zeros(2, 10, 4), None,
                    "targets (batch items [0, 1])"),
    "inf_mixture": (torch.zeros(2, 10, 4), torch.zeros(2, 10, 4),
                    torch.zeros(2, 10).index_fill(0, torch.tensor([0]), float("inf")),
                    "mixtures (batch items [0])"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_clear_errors(case):
    """Wrong shapes, dtypes and non-finite values raise a ValueError saying what is wrong."""
    targets, estimates, mixtures, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        pit_log_mse(targets, estimates, mixtures)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "30", None])
def test_bad_thresholds_raise(value):
    """snr_max and zero_snr_max must be finite numbers."""
    targets, estimates = make_batch()
    with pytest.raises(ValueError, match="snr_max"):
        pit_log_mse(targets, estimates, snr_max=value)
    with pytest.raises(ValueError, match="zero_snr_max"):
        pit_log_mse(targets, estimates, zero_snr_max=value)


def test_bad_permutation_inputs_raise():
    """best_permutation and permute validate their inputs."""
    with pytest.raises(ValueError, match="square"):
        best_permutation(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="NaN"):
        best_permutation(torch.full((1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="method"):
        best_permutation(torch.zeros(1, 2, 2), method="greedy")
    with pytest.raises(ValueError, match="hungarian"):
        best_permutation(torch.zeros(1, 9, 9), method="exhaustive")
    with pytest.raises(ValueError, match="permutation of 0..2"):
        permute(torch.zeros(1, 5, 3), torch.tensor([[0, 0, 1]]))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        permute(torch.zeros(1, 5, 3), torch.tensor([[0.0, 1.0, 2.0]]))


@pytest.mark.parametrize("with_mixture", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sync_free_mode_is_bit_identical_for_audio_amplitudes(with_mixture, dtype):
    """Sync-free (training) mode gives the same losses and gradients, bit for bit."""
    targets, estimates = (x.to(dtype) for x in make_batch(silent=SCENARIOS["some_silent"]))
    mixtures = targets.sum(-1) + 0.01 if with_mixture else None
    results = []
    for mode in (False, True):
        est = estimates.clone().requires_grad_()
        with sync_free(mode):
            loss = pit_log_mse(targets, est, mixtures)
        loss.sum().backward()
        results.append((loss.detach(), est.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("scale", [1e12, 1e25, 1e35])
def test_sync_free_mode_rescales_instead_of_the_float64_retry(scale):
    """Amplitudes whose energies overflow float32 (one item only): the float64 reference
    values for every item, by exact power-of-two scaling on the device."""
    targets, estimates = make_batch(silent=SCENARIOS["some_silent"])
    targets[1], estimates[1] = targets[1] * scale, estimates[1] * scale
    ref = ref_matrix(targets.double(), estimates.double())
    with sync_free():
        matrix = pairwise_log_mse(targets, estimates)
        loss = pit_log_mse(targets, estimates)
    np.testing.assert_allclose(matrix.numpy(), ref, atol=2e-3)
    np.testing.assert_allclose(loss.numpy(), ref_pit(ref)[0], atol=2e-3)


def test_sync_free_mode_turns_bad_values_into_nan_losses_not_errors():
    """Non-finite inputs: a non-finite loss for those items only (the training loop skips the
    step on the device); an invalid permutation still fails, through torch._assert_async."""
    targets, estimates = make_batch(silent=SCENARIOS["some_silent"])
    reference = pit_log_mse(targets, estimates)
    estimates[1, 7, 2] = float("nan")
    targets[2, 0, 0] = float("inf")
    with sync_free():
        loss = pit_log_mse(targets, estimates)
        assert best_permutation(torch.full((1, 2, 2), float("nan"))).shape == (1, 2)
        with pytest.raises(RuntimeError, match="permutation of 0..S-1"):
            permute(torch.zeros(1, 5, 3), torch.tensor([[0, 0, 1]]))
    assert torch.isfinite(loss).tolist() == [True, False, False]
    assert loss[0] == reference[0]
    with pytest.raises(ValueError, match=r"estimates \(batch items \[1\]\)"):
        pit_log_mse(targets, estimates)  # checked mode again, outside the block


def ref_consistency(estimates, mixture, weights):
    """argmin Σ_i (y_i − ŝ_i)²/w_i s.t. Σ_i y_i = x, solved per sample as a KKT linear system."""
    est = estimates.double().numpy()
    x = mixture.double().numpy()
    w = np.broadcast_to(weights.double().numpy(), est.shape)
    out = np.empty_like(est)
    sources = est.shape[2]
    for b in range(est.shape[0]):
        for t in range(est.shape[1]):
            kkt = np.zeros((sources + 1, sources + 1))
            kkt[:sources, :sources] = np.diag(2.0 / w[b, t])
            kkt[:sources, sources] = 1.0
            kkt[sources, :sources] = 1.0
            rhs = np.concatenate([2.0 / w[b, t] * est[b, t], [x[b, t]]])
            out[b, t] = np.linalg.solve(kkt, rhs)[:sources]
    return out


@pytest.mark.parametrize("kind", ["uniform", "energy", "tensor_bs", "tensor_bts"])
def test_mixture_consistency_is_the_weighted_projection(kind):
    """Outputs sum to the mixture and equal the constrained least-squares solution."""
    gen = torch.Generator().manual_seed(5)
    estimates = torch.randn(2, 50, 3, generator=gen)
    mixture = torch.randn(2, 50, generator=gen)
    if kind == "uniform":
        weights, w = "uniform", torch.full((2, 1, 3), 1 / 3)
    elif kind == "energy":
        energy = estimates.square().sum(1, keepdim=True)
        weights, w = "energy", energy / energy.sum(2, keepdim=True)
    elif kind == "tensor_bs":
        w = torch.softmax(torch.randn(2, 3, generator=gen), dim=1)
        weights, w = w, w.unsqueeze(1)
    else:
        weights = w = torch.softmax(torch.randn(2, 50, 3, generator=gen), dim=2)
    out = mixture_consistency(estimates, mixture, weights)
    torch.testing.assert_close(out.sum(-1), mixture, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.numpy(), ref_consistency(estimates, mixture, w), atol=1e-5)


def test_mixture_consistency_edge_cases():
    """All-zero estimates with energy weights fall back to uniform; bad inputs raise."""
    out = mixture_consistency(torch.zeros(1, 4, 2), torch.ones(1, 4), "energy")
    torch.testing.assert_close(out, torch.full((1, 4, 2), 0.5))
    with pytest.raises(ValueError, match="weights"):
        mixture_consistency(torch.zeros(1, 4, 2), torch.ones(1, 4), "magnitude")
    with pytest.raises(ValueError, match="weights of shape"):
        mixture_consistency(torch.zeros(1, 4, 2), torch.ones(1, 4), torch.ones(1, 3))
    with pytest.raises(ValueError, match="mixture of shape"):
        mixture_consistency(torch.zeros(1, 4, 2), torch.ones(1, 5))
