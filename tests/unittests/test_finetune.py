"""Tests of gass_modules.training.benchmark_runs: checkpoint transfer, the fixed-order loss,
alignment and the
benchmark scoring protocols.

References are independent computations: float64 numpy closed forms written per signal, brute
force over permutations, the FUSS evaluation protocol re-implemented loop by loop from
google-research/sound-separation's ``evaluate_lib.py`` description, fast-bss-eval's numpy backend
and museval's own ``bss_eval`` on the same arrays.
"""

import itertools
import logging
import math

import numpy as np
import pytest
import torch
from fast_bss_eval.numpy import sdr as numpy_sdr

from gass_modules.evaluation.benchmark_metrics import (
    _museval_metrics,
    fuss_multi_source_si_snri,
    fuss_single_source_si_snr,
)
from gass_modules.evaluation.benchmarks import BenchmarkScorer
from gass_modules.losses import fixed_order_log_mse
from gass_modules.metrics import align_to_references
from gass_modules.training.checkpointing import AtomicCheckpointer
from gass_modules.training.transfer import (
    find_separator_checkpoint,
    load_matching_parameters,
    transfer_from_checkpoint,
)


# ----------------------------------------------------------------------------------------------
# numpy references
# ----------------------------------------------------------------------------------------------
def np_si_snr(s, e, zero_mean=True):
    """SI-SNR (dB) of one estimate; both non-silent."""
    if zero_mean:
        s, e = s - s.mean(), e - e.mean()
    proj = np.dot(e, s) / np.dot(s, s) * s
    with np.errstate(divide="ignore"):  # brute-force search may try exact matches
        return 10 * math.log10(np.sum(proj**2) / np.sum((e - proj) ** 2))


def np_snr(s, e):
    """10 log10(|s|^2 / |s - e|^2)."""
    return 10 * math.log10(np.sum(s**2) / np.sum((s - e) ** 2))


def np_best_perm(refs, ests, active):
    """Permutation maximising the summed SI-SNR (no mean removal) over active references."""
    best, best_score = None, -np.inf
    for perm in itertools.permutations(range(ests.shape[1])):
        score = sum(np_si_snr(refs[:, i], ests[:, perm[i]], False) for i in range(refs.shape[1])
                    if active[i])
        if score > best_score:
            best, best_score = perm, score
    return best


class Net(torch.nn.Module):
    """A stand-in separator: a shared trunk and a per-source head (sized by num_sources)."""

    def __init__(self, num_sources=4, sample_rate=16000):
        super().__init__()
        self.num_sources, self.sample_rate = num_sources, sample_rate
        self.trunk = torch.nn.Linear(8, 16)
        self.norm = torch.nn.BatchNorm1d(16)
        self.head = torch.nn.Linear(16, 8 * num_sources)


# ----------------------------------------------------------------------------------------------
# transfer
# ----------------------------------------------------------------------------------------------
def test_partial_transfer_loads_what_matches_and_keeps_the_rest(tmp_path, caplog):
    """Matching tensors equal the checkpoint's; mismatched ones keep their own initial values."""
    gass = Net(4)
    gass.norm.running_mean.fill_(0.5)  # buffers travel too
    torch.save(gass.state_dict(), tmp_path / "separator.ckpt")
    torch.manual_seed(1)
    target = Net(2)
    head_before = {k: v.clone() for k, v in target.head.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="gass_modules.training.transfer"):
        report = load_matching_parameters(target, tmp_path / "separator.ckpt")
    for name, value in target.state_dict().items():
        if name.startswith("head."):
            assert torch.equal(value, head_before[name[5:]])
        else:
            assert torch.equal(value, gass.state_dict()[name]), name
    assert sorted(report.reinitialised) == ["head.bias", "head.weight"]
    assert "shape (32, 16) in the checkpoint, (16, 16) here" in report.reinitialised["head.weight"]
    assert report.unused == []
    expected = sum(v.numel() for k, v in target.state_dict().items() if not k.startswith("head"))
    assert report.loaded_numel == expected
    assert "head.weight" in caplog.text and "not loaded" in caplog.text


def test_transfer_strips_ddp_prefix_and_lists_unused_entries(tmp_path):
    """A DDP checkpoint (``module.`` keys) loads; entries the model lacks are reported."""
    state = {f"module.{k}": v for k, v in Net(2).state_dict().items()}
    state["module.extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "separator.ckpt")
    report = load_matching_parameters(Net(2), tmp_path / "separator.ckpt")
    assert report.reinitialised == {} and report.unused == ["extra.weight"]


def test_transfer_refuses_unrelated_or_corrupt_checkpoints(tmp_path):
    """Nothing matching, a non-state-dict or garbage bytes: errors that say what is expected."""
    torch.save(torch.nn.Conv1d(2, 2, 3).state_dict(), tmp_path / "conv.ckpt")
    with pytest.raises(ValueError, match="no parameter of the Net matches"):
        load_matching_parameters(Net(), tmp_path / "conv.ckpt")
    torch.save([1, 2, 3], tmp_path / "list.ckpt")
    with pytest.raises(ValueError, match="expected a state_dict"):
        load_matching_parameters(Net(), tmp_path / "list.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read the checkpoint"):
        load_matching_parameters(Net(), tmp_path / "junk.ckpt")


def test_find_checkpoint_in_files_model_folders_and_save_folders(tmp_path):
    """A file, a folder holding separator.ckpt, and the lowest-loss CKPT+ of a save folder."""
    net = Net()
    saver = AtomicCheckpointer(tmp_path / "save", {"separator": net})
    for loss in (3.0, 1.0, 2.0):
        torch.nn.init.constant_(net.trunk.bias, loss)
        saver.save_checkpoint(meta={"loss": loss})
    best = find_separator_checkpoint(tmp_path / "save")
    assert torch.load(best, weights_only=True)["trunk.bias"][0] == 1.0
    assert find_separator_checkpoint(best.parent) == best
    assert find_separator_checkpoint(best) == best
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no GASS checkpoint in .*CKPT"):
        find_separator_checkpoint(tmp_path / "empty")


def test_transfer_through_pretrainer_follows_the_source_and_warns_on_rate(tmp_path, caplog):
    """The Pretrainer link follows a changed source; another rate than the source's is logged."""
    for name, fill in (("a", 1.0), ("b", 2.0)):
        folder = tmp_path / name
        folder.mkdir()
        net = Net(4, 16000)
        torch.nn.init.constant_(net.trunk.weight, fill)
        torch.save(net.state_dict(), folder / "separator.ckpt")
        (folder / "hyperparams.yaml").write_text("sample_rate: 16000\nnum_sources: 4\n")
    target = Net(3, 44100)
    with caplog.at_level(logging.WARNING, logger="gass_modules.training.transfer"):
        report = transfer_from_checkpoint(target, tmp_path / "a", collect_in=tmp_path / "pre")
    assert target.trunk.weight.eq(1.0).all()
    assert (report.source_sample_rate, report.source_num_sources) == (16000, 4)
    assert "trained at 16000 Hz at 44100 Hz" in caplog.text
    transfer_from_checkpoint(target, tmp_path / "b", collect_in=tmp_path / "pre")
    assert target.trunk.weight.eq(2.0).all()


# ----------------------------------------------------------------------------------------------
# loss and alignment
# ----------------------------------------------------------------------------------------------
def test_fixed_order_loss_is_the_diagonal_log_mse():
    """Per source: 10 log10(|s - e|^2 + tau |s|^2), or the mixture-referenced silent term."""
    gen = np.random.default_rng(0)
    s = gen.standard_normal((2, 300, 3))
    s[1, :, 2] = 0
    e = s + 0.3 * gen.standard_normal(s.shape)
    mix = s.sum(-1)
    got = fixed_order_log_mse(torch.from_numpy(s), torch.from_numpy(e), torch.from_numpy(mix))
    for b in range(2):
        terms = []
        for k in range(3):
            if np.any(s[b, :, k]):
                value = np.sum((s[b, :, k] - e[b, :, k]) ** 2) + 1e-3 * np.sum(s[b, :, k] ** 2)
            else:
                value = np.sum(e[b, :, k] ** 2) + 1e-2 * np.sum(mix[b] ** 2)
            terms.append(10 * math.log10(value))
        assert got[b].item() == pytest.approx(np.mean(terms), abs=1e-4)


@pytest.mark.parametrize("num_est", [2, 3, 4])
def test_aligned_order_matches_bruteforce(num_est):
    """Padding the references with silent slots, then the SI-SNR-maximising permutation."""
    gen = np.random.default_rng(num_est)
    refs = gen.standard_normal((1, 400, 2))
    ests = gen.standard_normal((1, 400, num_est))
    ests[0, :, num_est - 1] += 2 * refs[0, :, 0]
    ests[0, :, 0] += 2 * refs[0, :, 1]
    got = align_to_references(torch.from_numpy(refs), torch.from_numpy(ests)).numpy()
    slots = max(2, num_est)
    perm = np_best_perm(np.pad(refs[0], ((0, 0), (0, slots - 2))), ests[0],
                        [True, True] + [False] * (slots - 2))
    np.testing.assert_array_equal(got[0], ests[0][:, list(perm[:2])])


def test_alignment_is_joint_over_channels_and_pads_missing_outputs():
    """Stereo: one permutation for both channels; fewer outputs than references: zeros."""
    refs = torch.randn(2, 500, 2)
    est = refs[..., [1, 0]].clone()
    est[1] = refs[1]  # channel 1 alone would prefer the identity: the joint choice must win
    est[1] += 5 * torch.randn(500, 2)
    aligned = align_to_references(refs, est)
    assert torch.equal(aligned[0], refs[0])
    one = align_to_references(refs, est[..., :1], "fixed")
    assert one.shape == (2, 500, 2) and one[..., 1].abs().max() == 0
    with pytest.raises(ValueError, match="order must be one of"):
        align_to_references(refs, est, "best")
    with pytest.raises(ValueError, match=r"expected targets \[C, T, S\]"):
        align_to_references(refs[0], est)


# ----------------------------------------------------------------------------------------------
# scoring protocols
# ----------------------------------------------------------------------------------------------
def np_fuss(refs, ests, mix):
    """FUSS evaluation of one mixture: (counted SI-SNR values, SI-SNRi values, refs, seps)."""
    active = [bool(np.any(refs[:, i])) for i in range(refs.shape[1])]
    perm = np_best_perm(refs, ests, active)
    aligned = ests[:, list(perm)]
    p_ref = np.mean(refs**2, axis=0)
    p_est = np.mean(aligned**2, axis=0)
    floor = 0.01 * min(p_ref[i] for i in range(len(active)) if active[i])
    si, sii = [], []
    for i, on in enumerate(active):
        if on and p_est[i] > floor:
            value = np_si_snr(refs[:, i], aligned[:, i], False)
            si.append(value)
            sii.append(value - np_si_snr(refs[:, i], mix, False))
    return si, sii, sum(active), int(np.sum(p_est > floor))


def test_fuss_scoring_matches_the_fuss_protocol():
    """1S, MSi (pooled over counted pairs), per-count SI-SNRi and separation rates."""
    gen = np.random.default_rng(3)
    scorer = BenchmarkScorer("fuss", ["s1", "s2", "s3", "s4"])
    pooled = {n: ([], []) for n in (1, 2, 3, 4)}
    rates = []
    for m, count in enumerate([1, 2, 3, 4, 2, 1]):
        refs = np.zeros((800, 4))
        refs[:, :count] = gen.standard_normal((800, count)) * gen.uniform(0.2, 1, count)
        mix = refs.sum(1)
        ests = refs[:, gen.permutation(4)] + 0.2 * gen.standard_normal((800, 4))
        if m == 4:
            ests[:, :] = 0.0005 * gen.standard_normal((800, 4))  # too quiet to count
            ests[:, 0] += mix
        scorer.add(f"m{m}", torch.from_numpy(mix)[None], torch.from_numpy(refs)[None],
                   torch.from_numpy(ests)[None], 16000)
        si, sii, n_ref, n_sep = np_fuss(refs, ests, mix)
        pooled[n_ref][0].extend(si)
        pooled[n_ref][1].extend(sii)
        rates.append(np.sign(n_sep - n_ref))
    summary = scorer.summary()
    assert summary["1S SI-SNR"] == pytest.approx(np.mean(pooled[1][0]), abs=1e-6)
    msi = pooled[2][1] + pooled[3][1] + pooled[4][1]
    assert summary["MSi"] == pytest.approx(np.mean(msi), abs=1e-6)
    for n in (2, 3, 4):
        assert summary[f"SI-SNRi {n} sources"] == pytest.approx(np.mean(pooled[n][1]), abs=1e-6)
    assert summary["under-separation"] == pytest.approx(np.mean(np.array(rates) < 0))
    assert summary["over-separation"] == pytest.approx(np.mean(np.array(rates) > 0))


def test_fuss_scoring_agrees_with_the_metrics_module():
    """Without excluded pairs, per-mixture means equal metrics' FUSS MSi and 1S."""
    refs = torch.zeros(2, 1000, 4, dtype=torch.float64)
    refs[0, :, :3] = torch.randn(1000, 3, dtype=torch.float64)
    refs[1, :, 2] = torch.randn(1000, dtype=torch.float64)
    ests = refs[..., [3, 0, 2, 1]] + 0.1 * torch.randn(2, 1000, 4, dtype=torch.float64)
    ests[1] = 0
    ests[1, :, 0] = refs[1, :, 2] + 0.05 * torch.randn(1000, dtype=torch.float64)
    mix = refs.sum(-1)
    scorer = BenchmarkScorer("fuss", ["a", "b", "c", "d"])
    for b in range(2):
        scorer.add(str(b), mix[b : b + 1], refs[b : b + 1], ests[b : b + 1], 16000)
    assert scorer.summary()["MSi"] == pytest.approx(
        fuss_multi_source_si_snri(refs[:1], ests[:1], mix[:1]).item(), abs=1e-9)
    assert scorer.summary()["1S SI-SNR"] == pytest.approx(
        fuss_single_source_si_snr(refs[1:], ests[1:]).item(), abs=1e-9)


def test_fuss_skips_all_zero_references():
    """As FUSS's evaluation: a mixture without any active reference is skipped, not scored."""
    scorer = BenchmarkScorer("fuss", ["a", "b"])
    scorer.add("silent", torch.zeros(1, 100), torch.zeros(1, 100, 2), torch.randn(1, 100, 2), 16000)
    assert scorer.rows == [] and scorer.skipped == ["silent"]
    assert math.isnan(scorer.summary()["MSi"])


def test_librimix_scoring_matches_closed_forms_and_fast_bss_eval():
    """SI-SNRi (zero-mean) from numpy, SDRi from fast-bss-eval's numpy backend (512 taps)."""
    gen = np.random.default_rng(5)
    scorer = BenchmarkScorer("librimix", ["s1", "s2"])
    expected = {"SI-SNRi": [], "SDRi": []}
    for m in range(2):
        refs = gen.standard_normal((4000, 2))
        mix = refs.sum(1)
        ests = refs[:, ::-1] + 0.3 * gen.standard_normal((4000, 2))  # swapped outputs
        scorer.add(str(m), torch.from_numpy(mix)[None], torch.from_numpy(refs)[None],
                   torch.from_numpy(ests.copy())[None], 8000)
        aligned = ests[:, ::-1]
        expected["SI-SNRi"].append(np.mean([np_si_snr(refs[:, k], aligned[:, k]) -
                                            np_si_snr(refs[:, k], mix) for k in range(2)]))
        sdr_est = numpy_sdr(refs.T, aligned.T.copy(), filter_length=512)
        sdr_mix = numpy_sdr(refs.T, np.stack([mix, mix]), filter_length=512)
        expected["SDRi"].append(np.mean(sdr_est - sdr_mix))
    summary = scorer.summary()
    assert summary["SI-SNRi"] == pytest.approx(np.mean(expected["SI-SNRi"]), abs=1e-6)
    assert summary["SDRi"] == pytest.approx(np.mean(expected["SDRi"]), abs=1e-3)


def test_dnr_scoring_matches_closed_forms_in_stem_order():
    """SDR and SI-SDR per stem, means over tracks; fixed alignment keeps the stem order."""
    gen = np.random.default_rng(6)
    scorer = BenchmarkScorer("dnr", ["speech", "music", "sfx"], order="fixed")
    per = {k: [] for k in range(3)}
    for m in range(2):
        refs = gen.standard_normal((3000, 3))
        ests = refs + gen.uniform(0.1, 1.0, 3) * gen.standard_normal((3000, 3))
        scorer.add(str(m), torch.from_numpy(refs.sum(1))[None], torch.from_numpy(refs)[None],
                   torch.from_numpy(ests)[None], 44100)
        for k in range(3):
            per[k].append((np_snr(refs[:, k], ests[:, k]), np_si_snr(refs[:, k], ests[:, k])))
    summary = scorer.summary()
    for k, stem in enumerate(["speech", "music", "sfx"]):
        assert summary[f"SDR {stem}"] == pytest.approx(np.mean([v[0] for v in per[k]]), abs=1e-5)
        assert summary[f"SI-SDR {stem}"] == pytest.approx(np.mean([v[1] for v in per[k]]),
                                                          abs=1e-6)
    assert summary["SDR avg"] == pytest.approx(np.mean([summary[f"SDR {s}"] for s in
                                                        ["speech", "music", "sfx"]]))


def test_musdb_scoring_matches_museval_and_the_mdx_usdr():
    """cSDR: museval's v4 bss_eval on the same stereo arrays, median over frames then tracks.

    Two stems keep museval's filter solve small (its cost grows with (stems x channels x 512)^2,
    not with the length); the scorer is stem-count agnostic.
    """
    gen = np.random.default_rng(7)
    stems = ["bass", "vocals"]
    scorer = BenchmarkScorer("musdb", stems, order="fixed", csdr_window_seconds=0.25)
    museval = _museval_metrics()
    track_csdr, track_usdr = [], []
    for m in range(3):
        refs = gen.standard_normal((2, 4000, 2))  # [C, T, S]
        ests = refs + gen.uniform(0.2, 1.0, 2) * gen.standard_normal((2, 4000, 2))
        scorer.add(str(m), torch.from_numpy(refs.sum(-1)), torch.from_numpy(refs),
                   torch.from_numpy(ests), 8000)
        frames = museval.bss_eval(refs.transpose(2, 1, 0), ests.transpose(2, 1, 0), window=2000,
                                  hop=2000, compute_permutation=False, filters_len=512,
                                  framewise_filters=False, bsseval_sources_version=False)[0]
        track_csdr.append(np.nanmedian(frames, axis=1))
        track_usdr.append([10 * math.log10((np.sum(refs[..., k] ** 2) + 1e-7) /
                                           (np.sum((refs[..., k] - ests[..., k]) ** 2) + 1e-7))
                           for k in range(2)])
    summary = scorer.summary()
    for k, stem in enumerate(stems):
        assert summary[f"cSDR {stem}"] == pytest.approx(np.median([t[k] for t in track_csdr]),
                                                        abs=1e-6)
        assert summary[f"uSDR {stem}"] == pytest.approx(np.mean([t[k] for t in track_usdr]),
                                                        abs=1e-6)
    assert summary["cSDR avg"] == pytest.approx(np.mean([summary["cSDR bass"],
                                                         summary["cSDR vocals"]]))


def test_scorer_rejects_bad_inputs():
    """Unknown benchmark or order, wrong shapes, wrong slot count, NaN estimates."""
    with pytest.raises(ValueError, match="benchmark must be one of"):
        BenchmarkScorer("wsj0", ["s1"])
    with pytest.raises(ValueError, match="order must be one of"):
        BenchmarkScorer("dnr", ["s"], order="pit")
    scorer = BenchmarkScorer("librimix", ["s1", "s2"])
    with pytest.raises(ValueError, match=r"expected mix \[C, T\]"):
        scorer.add("x", torch.zeros(100), torch.zeros(1, 100, 2), torch.zeros(1, 100, 2), 8000)
    with pytest.raises(ValueError, match="expected 2 reference slots"):
        scorer.add("x", torch.zeros(1, 100), torch.zeros(1, 100, 3), torch.zeros(1, 100, 3), 8000)
    bad = torch.randn(1, 1000, 2)
    bad[0, 5, 1] = math.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        scorer.add("x", torch.randn(1, 1000), torch.randn(1, 1000, 2), bad, 8000)
    assert scorer.rows == []


def test_benchmark_recipes_take_a_bundled_model_name(tmp_path, monkeypatch):
    """Issue 27 item 18: --pretrained_path=gass-mini works as in gass-separate, for no_tuning
    (evaluation of the model as it is) and for fine-tuning (the transfer finds its checkpoint);
    it was a ValueError ("pass --pretrained_path=<model folder ...>")."""
    import gass_modules.training.benchmark_runs as finetune
    from gass_modules.model_folder.pretrained import bundled_model_folder

    class Reached(Exception):
        pass

    def stop(*args, **kwargs):
        raise Reached

    seen = {}
    monkeypatch.setattr(finetune, "build_benchmark_sets", stop)
    with pytest.raises(Reached):
        finetune.run_benchmark({"no_tuning": True, "pretrained_path": "gass-mini",
                                "output_folder": str(tmp_path)}, {}, "")
    monkeypatch.setattr(finetune, "build_benchmark_sets", lambda hparams: {})
    monkeypatch.setattr(finetune, "prepare_finetuning",
                        lambda separator, source, *args, **kwargs: seen.update(source=source)
                        or stop())
    with pytest.raises(Reached):
        finetune.run_benchmark({"pretrained_path": "gass-mini", "separator": None,
                                "sample_rate": 8000, "num_sources": 2,
                                "save_folder": str(tmp_path), "output_folder": str(tmp_path)},
                               {}, "")
    assert seen["source"] == str(bundled_model_folder("gass-mini"))
