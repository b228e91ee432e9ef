"""Tests of gass_modules.training.brain: the IRM oracle, scoring and reports, atomic checkpoints,
and the
SeparationBrain training/evaluation loop on a tiny stand-in separator and synthetic batches.

References are independent float64 numpy computations (frame-by-frame STFT, closed-form SI-SNR).
"""

import csv
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.core import INTRA_EPOCH_CKPT_FLAG
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.nnet.schedulers import LinearWarmupScheduler, ReduceLROnPlateau
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter

from gass_modules.evaluation.oracle import IRMOracle
from gass_modules.evaluation.report import SeparationReport
from gass_modules.evaluation.scoring import score_separation
from gass_modules.lobes.base import Separator
from gass_modules.lobes.tdanet import TDANetSTFT
from gass_modules.losses import pit_log_mse
from gass_modules.training.brain import SeparationBrain
from gass_modules.training.checkpointing import AtomicCheckpointer
from gass_modules.training.recipe import included_card
from gass_modules.training.schedulers import WallClockLinearDecay
from tests.doubles import ScaledCopies


# ----------------------------------------------------------------------------------------------
# numpy references
# ----------------------------------------------------------------------------------------------
def np_stft_frames(x, n_fft, hop):
    """Frame-by-frame rfft of a zero-padded (centred) signal with a periodic Hann window."""
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    count = 1 + (len(padded) - n_fft) // hop
    return np.stack([np.fft.rfft(win * padded[i * hop : i * hop + n_fft]) for i in range(count)])


def np_irm(mix, targets, n_fft, hop):
    """IRM oracle by explicit loops: magnitude-ratio masks, weighted overlap-add."""
    length, num = targets.shape
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    spec_mix = np_stft_frames(mix, n_fft, hop)
    mags = np.stack([np.abs(np_stft_frames(targets[:, s], n_fft, hop)) for s in range(num)])
    total = mags.sum(0)
    out = np.zeros((length, num))
    for s in range(num):
        masked = np.where(total > 0, mags[s] / np.where(total > 0, total, 1), 1 / num) * spec_mix
        signal = np.zeros(length + n_fft)
        norm = np.zeros(length + n_fft)
        for i, frame in enumerate(masked):
            signal[i * hop : i * hop + n_fft] += win * np.fft.irfft(frame, n_fft)
            norm[i * hop : i * hop + n_fft] += win**2
        out[:, s] = (signal / np.where(norm > 1e-11, norm, 1))[n_fft // 2 : n_fft // 2 + length]
    return out


def np_si_snr(ref, est):
    """Scale-invariant SNR (dB) of one estimate, zero-mean signals (Le Roux et al. 2019)."""
    ref = ref - ref.mean()
    est = est - est.mean()
    proj = (est @ ref) / (ref @ ref) * ref
    return 10 * np.log10((proj @ proj) / ((est - proj) @ (est - proj)))


# ----------------------------------------------------------------------------------------------
# IRM oracle
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_irm_matches_numpy_loops(power):
    """Oracle estimates equal a frame-by-frame float64 reference (power 1; power 2 via sums)."""
    gen = np.random.default_rng(0)
    targets = gen.standard_normal((1500, 3))
    targets[:, 2] *= np.linspace(0, 1, 1500)  # a source fading in: uneven masks
    mix = targets.sum(1)
    est = IRMOracle(n_fft=128, hop_length=32, power=power)(
        torch.from_numpy(mix)[None], torch.from_numpy(targets)[None])[0].numpy()
    if power == 1.0:
        np.testing.assert_allclose(est, np_irm(mix, targets, 128, 32), atol=1e-9)
    np.testing.assert_allclose(est.sum(1), mix, atol=1e-9)  # masks sum to one


def test_irm_single_source_and_silent_slots():
    """One active source: its slot gets the mixture exactly, silent slots stay exactly zero."""
    targets = torch.zeros(2, 999, 4)
    targets[0, :, 1] = torch.randn(999)
    targets[1, :, 3] = torch.randn(999)
    est = IRMOracle(n_fft=256, hop_length=64)(targets.sum(-1), targets)
    torch.testing.assert_close(est, targets, atol=1e-5, rtol=0)
    assert est[0, :, [0, 2, 3]].abs().max() == 0


def test_irm_separates_disjoint_tones_and_handles_edge_cases():
    """Spectrally disjoint tones are recovered (> 25 dB); silence and T=1 give finite output."""
    t = torch.arange(8000) / 8000
    targets = torch.stack([torch.sin(2 * np.pi * 300 * t), 0.5 * torch.sin(2 * np.pi * 2500 * t)],
                          -1)[None].double()
    est = IRMOracle(n_fft=512, hop_length=128)(targets.sum(-1), targets)
    for s in range(2):
        assert np_si_snr(targets[0, :, s].numpy(), est[0, :, s].numpy()) > 25
    silent = IRMOracle()(torch.zeros(1, 700), torch.zeros(1, 700, 4))
    assert torch.equal(silent, torch.zeros(1, 700, 4))
    one = IRMOracle()(torch.ones(3, 1), torch.ones(3, 1, 2) / 2)
    torch.testing.assert_close(one, torch.full((3, 1, 2), 0.5))


def test_irm_rejects_bad_shapes_and_settings():
    """Mismatched shapes and bad STFT settings raise errors that say what was expected."""
    with pytest.raises(ValueError, match=r"expected mix \[B, T\] and targets \[B, T, S\]"):
        IRMOracle()(torch.zeros(2, 100), torch.zeros(2, 99, 4))
    with pytest.raises(ValueError, match="hop_length"):
        IRMOracle(n_fft=256, hop_length=512)
    with pytest.raises(ValueError, match="n_fft"):
        IRMOracle(n_fft=1)


# ----------------------------------------------------------------------------------------------
# scores, report
# ----------------------------------------------------------------------------------------------
def test_score_values_against_numpy():
    """SI-SNR, SI-SNRi, energies and activity flags equal closed-form float64 values."""
    gen = np.random.default_rng(1)
    refs = gen.standard_normal((2, 1200, 3))
    refs[1, :, 2] = 0  # a 2-source mixture with one empty slot
    refs[1, :, 1] *= 0.05  # a quiet (-26 dB) but present source
    ests = refs + 0.02 * gen.standard_normal(refs.shape)
    ests[1, :, 2] = 0.3 * gen.standard_normal(1200)  # leakage into the silent slot
    mix = refs.sum(-1)
    got = score_separation(*(torch.from_numpy(a) for a in (mix, refs, ests)), activity_db=-20)
    for b in range(2):
        mix_power = np.mean(mix[b] ** 2)
        for s in range(3):
            energy = 10 * np.log10(np.mean(ests[b, :, s] ** 2) / mix_power)
            assert got["energy_db"][b, s].item() == pytest.approx(energy, abs=1e-4)
            if b == 1 and s == 2:
                assert torch.isnan(got["si_snr"][b, s]) and torch.isnan(got["si_snri"][b, s])
                continue
            snr = np_si_snr(refs[b, :, s], ests[b, :, s])
            assert got["si_snr"][b, s].item() == pytest.approx(snr, abs=1e-3)
            base = np_si_snr(refs[b, :, s], mix[b])
            assert got["si_snri"][b, s].item() == pytest.approx(snr - base, abs=1e-3)
    assert got["present"].tolist() == [[True] * 3, [True, True, False]]
    assert got["active_target"][1].tolist() == [True, False, False]  # -26 dB < -20 dB
    assert got["active_output"][1].tolist() == [True, False, True]
    assert got["finite"].tolist() == [True, True]


def test_score_flags_nonfinite_estimates_without_nan_in_summary():
    """A NaN estimate marks the mixture non-finite; the summary leaves it out and says so."""
    refs = torch.randn(2, 500, 2)
    ests = refs.clone()
    ests[1, 10, 0] = float("nan")
    scores = score_separation(refs.sum(-1), refs, ests)
    assert scores["finite"].tolist() == [True, False]
    report = SeparationReport(num_slots=2)
    report.add_scores("model", ["a", "b"], [2, 2], [["speech", "sfx"]] * 2, scores)
    means = report.means("model", num_sources=2)
    assert means["nonfinite"] == 1 and np.isfinite(means["si_snri"])
    assert means["si_snri"] == pytest.approx(float(scores["si_snri"][0].mean()), abs=1e-4)
    assert "non-finite" in report.summary_markdown()


def test_report_means_csv_and_summary_by_sources_and_category(tmp_path):
    """Means per number of sources and per category, counts, CSV and markdown, by hand."""
    report = SeparationReport(num_slots=2)
    fake = {  # two 2-source mixtures and one 1-source mixture, hand-made scores
        "si_snr": torch.tensor([[10.0, 4.0], [8.0, 2.0], [30.0, float("nan")]]),
        "si_snri": torch.tensor([[9.0, 7.0], [5.0, 1.0], [float("nan")] * 2]),
        "energy_db": torch.tensor([[-3.0, -3.0], [-1.0, -9.0], [0.0, -15.0]]),
        "present": torch.tensor([[True, True], [True, True], [True, False]]),
        "active_target": torch.tensor([[True, True], [True, True], [True, False]]),
        "active_output": torch.tensor([[True, True], [True, False], [True, True]]),
        "finite": torch.tensor([True, True, True]),
    }
    cats = [["speech", "music"], ["speech", "sfx"], ["music", ""]]
    report.add_scores("model", ["a", "b", "c"], [2, 2, 1], cats, fake)
    two = report.means("model", num_sources=2)
    assert two["si_snri"] == pytest.approx(5.5) and two["si_snr"] == pytest.approx(6.0)
    assert (two["over"], two["under"], two["mixtures"]) == (0, 1, 2)
    one = report.means("model", num_sources=1)
    assert one["over"] == 1 and one["silent_energy_db"] == pytest.approx(-15.0)
    assert report.means("model", category="speech")["si_snri"] == pytest.approx(7.0)
    assert report.means("model", category="music")["sources"] == 1  # 1-source mixes left out
    rows = list(csv.DictReader(open(report.write_csv(tmp_path / "r.csv"))))
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["under_separated"] == "1" and rows[2]["over_separated"] == "1"
    assert rows[2]["si_snr_2"] == "" and float(rows[0]["si_snri_2"]) == 7.0
    assert rows[2]["categories"] == "music"
    summary = report.summary_markdown()
    assert "| 2 | 2 | 5.50 | 6.00 | 0/2 | 1/2 |" in summary
    assert "| 1 | 1 | — | 30.00 | 1/1 | 0/1 | -15.0 |" in summary
    assert "| speech | 2 | 7.00 | 9.00 |" in summary



def test_report_pair_types_and_percent_of_irm():
    """2-source mixtures by pair type (music stems folded, sorted names), model beside the IRM
    with the ratio; 1- and 3-source mixtures and absent slots are left out."""
    report = SeparationReport(num_slots=3)
    fake = {
        "si_snr": torch.zeros(4, 3), "energy_db": torch.zeros(4, 3),
        "si_snri": torch.tensor([[2.0, 4.0, 0.0], [-1.0, -3.0, 0.0], [6.0, 8.0, 0.0],
                                 [9.0, 9.0, 9.0]]),
        "present": torch.tensor([[True, True, False]] * 3 + [[True, True, True]]),
        "active_target": torch.ones(4, 3, dtype=torch.bool),
        "active_output": torch.ones(4, 3, dtype=torch.bool),
        "finite": torch.tensor([True] * 4),
    }
    cats = [["speech", "speech", ""], ["speech", "speech", ""], ["sfx", "music_drums", ""],
            ["speech", "speech", "sfx"]]
    report.add_scores("model", list("abcd"), [2, 2, 2, 3], cats, fake)
    irm = dict(fake, si_snri=fake["si_snri"] + 10.0)
    report.add_scores("irm", list("abcd"), [2, 2, 2, 3], cats, irm)
    pairs = report.pair_means("model")
    assert pairs == {"music+sfx": {"si_snri": 7.0, "mixtures": 1},
                     "speech+speech": {"si_snri": 0.5, "mixtures": 2}}
    summary = report.summary_markdown()
    assert "| speech+speech | 2 | 0.50 | 10.50 | 5 |" in summary
    assert "| music+sfx | 1 | 7.00 | 17.00 | 41 |" in summary

def test_report_rejects_mismatched_rows():
    """Inconsistent batch bookkeeping is an error, not a silently misaligned report."""
    report = SeparationReport(num_slots=2)
    scores = score_separation(torch.randn(2, 100), torch.randn(2, 100, 2), torch.randn(2, 100, 2))
    with pytest.raises(ValueError, match="expected 3 ids"):
        report.add_scores("model", ["a", "b", "c"], [2, 2], [["x", "y"]] * 2, scores)


# ----------------------------------------------------------------------------------------------
# atomic checkpoints
# ----------------------------------------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from speechbrain.utils.checkpoints import (Checkpointer, mark_as_loader, mark_as_saver,
                                               register_checkpoint_hooks)
    from gass_modules.training.checkpointing import AtomicCheckpointer

    @register_checkpoint_hooks
    class Bomb:
        armed = False
        @mark_as_saver
        def save(self, path):
            with open(path, "wb") as f:
                f.write(b"half a chec")
                f.flush()
                if self.armed:
                    os._exit(9)  # killed in the middle of writing the checkpoint
        @mark_as_loader
        def load(self, path, end_of_epoch):
            assert open(path, "rb").read() == b"half a chec"

    kind, folder = sys.argv[1], sys.argv[2]
    cls = AtomicCheckpointer if kind == "atomic" else Checkpointer
    model = torch.nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ckpt = cls(folder, {"bomb": Bomb(), "model": model})  # saved in this order
    ckpt.save_checkpoint(meta={"n": 1})
    with torch.no_grad():
        model.weight.fill_(2.0)
    Bomb.armed = True
    ckpt.save_checkpoint(meta={"n": 2})
""")


@pytest.mark.parametrize("kind", ["plain", "atomic"])
def test_kill_during_save(tmp_path, kind):
    """SpeechBrain's Checkpointer leaves a broken checkpoint when killed mid-save; ours does not."""
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, kind, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    model = torch.nn.Linear(3, 3)
    fresh = AtomicCheckpointer(tmp_path, {"model": model})
    if kind == "plain":  # documents the SpeechBrain 1.1.2 behaviour this class exists for
        with pytest.raises((RuntimeError, KeyError), match="model"):  # CKPT.yaml, no model.ckpt
            fresh.recover_if_possible()
        return
    assert [c.meta["n"] for c in fresh.list_checkpoints()] == [1]
    fresh.recover_if_possible()
    assert torch.equal(model.weight, torch.ones(3, 3))
    fresh.save_checkpoint(meta={"n": 3})  # the next save cleans the staging leftover
    assert sorted(p.name[:5] for p in tmp_path.iterdir()) == ["CKPT+", "CKPT+"]


def test_atomic_delete_and_custom_name(tmp_path):
    """Deletion keeps the best and the newest; re-saving a custom name replaces it whole."""
    model = torch.nn.Linear(2, 2)
    ckpt = AtomicCheckpointer(tmp_path, {"model": model})
    for loss in (5.0, 1.0, 3.0, 4.0):
        ckpt.save_and_keep_only(meta={"loss": loss}, min_keys=["loss"])
    assert sorted(c.meta["loss"] for c in ckpt.list_checkpoints()) == [1.0, 4.0]
    first = ckpt.save_checkpoint(name="final", meta={"v": 1})
    second = ckpt.save_checkpoint(name="final", meta={"v": 2})
    assert first.path == second.path and second.meta["v"] == 2
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------
# SeparationBrain on a stand-in separator
# ----------------------------------------------------------------------------------------------
class GainSeparator(Separator):
    """Stand-in separator: output s = gain_s * mix (learnable gains), stride 1."""

    def __init__(self, num_sources: int = 2, init: float = 0.5) -> None:
        super().__init__(num_sources=num_sources, sample_rate=8000, stride=1)
        self.gain = torch.nn.Parameter(torch.linspace(init - 0.1, init + 0.1, num_sources))

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        return mix.unsqueeze(-1) * self.gain  # [B, L, S]


def make_items(count, gains=(0.25, 0.75), length=800, seed=0, one_source_every=0,
               independent=False):
    """Mixer-contract items: targets are gain-scaled copies of a noise mixture (learnable by
    GainSeparator) or, with ``independent``, independent noises (a realistic, hard task)."""
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i in range(count):
        mix = torch.randn(length, generator=gen)
        targets = mix.unsqueeze(-1) * torch.tensor(gains)
        if independent:
            targets = torch.randn(length, len(gains), generator=gen) * torch.tensor(gains)
            mix = targets.sum(-1)
        cats = ["speech", "music"]
        num = 2
        if one_source_every and i % one_source_every == 0:
            targets[:, 1] = 0
            mix = targets.sum(-1)
            cats, num = ["speech", ""], 1
        items.append({"id": f"mix{i}", "mix": mix, "targets": targets, "num_sources": num,
                      "categories": cats})
    return items


def loader(items, batch_size=4):
    """A DataLoader yielding PaddedBatch es, as the mixer's pipeline does."""
    return torch.utils.data.DataLoader(items, batch_size=batch_size, collate_fn=PaddedBatch)


def make_brain(tmp_path, separator=None, lr=0.05, run_opts=None, **hparams):
    """A SeparationBrain with an AtomicCheckpointer over the separator and an epoch counter."""
    separator = separator or GainSeparator()
    counter = EpochCounter(hparams.pop("epochs", 1))
    ckpt = AtomicCheckpointer(tmp_path / "save", {"separator": separator, "counter": counter})
    hp = {"loss": pit_log_mse, "output_folder": str(tmp_path), "epoch_counter": counter, **hparams}
    opts = {"device": "cpu", "noprogressbar": True, **(run_opts or {})}
    brain = SeparationBrain({"separator": separator}, lambda p: torch.optim.Adam(p, lr=lr), hp,
                            run_opts=opts, checkpointer=ckpt)
    return brain, counter


def test_training_learns_the_gains(tmp_path):
    """Training through self.modules finds the true gains (up to permutation)."""
    brain, counter = make_brain(tmp_path, epochs=6)
    brain.fit(counter, loader(make_items(32)))
    gains = sorted(brain.modules.separator.gain.detach().tolist())
    assert gains == pytest.approx([0.25, 0.75], abs=0.03)
    assert brain.skipped_nonfinite == 0


def test_nonfinite_loss_is_skipped_then_patience_raises(tmp_path):
    """A batch with a NaN loss changes no parameter and is counted; past the patience training
    stops. (A NaN *mixture* is refused by the separator itself: a NaN target makes the loss
    non-finite here.)"""
    items = make_items(8)
    items[4]["targets"] = items[4]["targets"].clone()
    items[4]["targets"][3, 0] = float("nan")
    brain, counter = make_brain(tmp_path, lr=0.1)
    seen = []
    brain.on_fit_batch_end = lambda batch, out, loss, step: seen.append(
        brain.modules.separator.gain.detach().clone())
    brain.fit(counter, loader(items, batch_size=4))
    assert brain.skipped_nonfinite == 1
    assert torch.equal(seen[0], seen[1])  # the NaN batch (second) did not move the gains
    assert torch.isfinite(brain.modules.separator.gain).all()
    brain, counter = make_brain(tmp_path / "b", run_opts={"nonfinite_patience": 0})
    with pytest.raises(ValueError, match="nonfinite_patience=0"):
        brain.fit(counter, loader(items, batch_size=4))


def test_gradient_clipping_bounds_the_update(tmp_path):
    """With SGD, lr 1 and max_grad_norm 1e-3, one update moves the parameters by <= 1e-3."""
    sep = GainSeparator()
    counter = EpochCounter(1)
    before = sep.gain.detach().clone()
    brain = SeparationBrain({"separator": sep}, lambda p: torch.optim.SGD(p, lr=1.0),
                            {"loss": pit_log_mse},
                            run_opts={"device": "cpu", "max_grad_norm": 1e-3,
                                      "noprogressbar": True})
    brain.fit(counter, loader(make_items(4)))
    assert 0 < torch.linalg.vector_norm(sep.gain.detach() - before) <= 1e-3 + 1e-7


def test_bf16_training_is_finite(tmp_path):
    """Training under bf16 autocast gives a finite loss (the loss itself runs in float32)."""
    brain, counter = make_brain(tmp_path, run_opts={"precision": "bf16"})
    brain.fit(counter, loader(make_items(8)))
    assert np.isfinite(brain.train_stats["loss"]) and brain.skipped_nonfinite == 0


def test_schedulers_and_optimizer_are_checkpointed_and_restored(tmp_path):
    """Epoch scheduler (plateau) and per-update scheduler states round-trip the checkpoint."""
    plateau = ReduceLROnPlateau(lr_min=1e-5, factor=0.5, patience=0, dont_halve_until_epoch=0)
    brain, counter = make_brain(tmp_path, epochs=3, lr_scheduler=plateau)
    brain.fit(counter, loader(make_items(8)), valid_set=loader(make_items(4, seed=9)))
    latest = brain.checkpointer.find_checkpoint()
    assert {"lr_scheduler", "optimizer", "separator", "counter", "brain"} <= set(latest.paramfiles)
    assert len(plateau.losses) == 3
    fresh = ReduceLROnPlateau()
    brain2, counter2 = make_brain(tmp_path, epochs=3, lr_scheduler=fresh)
    brain2.fit(counter2, loader(make_items(8)))  # recovers, nothing left to train
    assert fresh.losses == plateau.losses and counter2.current == 3

    warm = LinearWarmupScheduler(initial_value=0.05, num_warmup_steps=4, num_training_steps=20)
    brain, counter = make_brain(tmp_path / "w", lr_scheduler=warm)
    brain.fit(counter, loader(make_items(12)))  # 3 updates
    assert warm.current_step == 3
    assert brain.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 3 / 4)
    warm2 = LinearWarmupScheduler(initial_value=0.05, num_warmup_steps=4, num_training_steps=20)
    brain2, _ = make_brain(tmp_path / "w", lr_scheduler=warm2)
    brain2.checkpointer.add_recoverable("lr_scheduler", warm2)
    brain2.checkpointer.recover_if_possible()
    assert warm2.current_step == 3


def test_intra_epoch_checkpoints_follow_ckpt_interval_steps(tmp_path):
    """ckpt_interval_steps=2 over a 5-step epoch saves intra-epoch checkpoints after steps 2, 4."""
    brain, counter = make_brain(tmp_path, run_opts={"ckpt_interval_steps": 2})
    saved = []
    original = brain.checkpointer.save_checkpoint

    def spy(*args, **kwargs):
        ckpt = original(*args, **kwargs)
        saved.append((INTRA_EPOCH_CKPT_FLAG in ckpt.meta, brain.step))
        return ckpt

    brain.checkpointer.save_checkpoint = spy
    brain.fit(counter, loader(make_items(10), batch_size=2))
    assert saved == [(True, 2), (True, 4), (False, 5)]
    assert len(brain.checkpointer.list_checkpoints()) == 1  # intra-epoch ones cleaned up


def test_evaluate_writes_report_audio_and_figures(tmp_path):
    """Evaluation: CSV rows for model and IRM with the right values, summary, audio, figures."""
    sep = GainSeparator()
    with torch.no_grad():
        sep.gain.copy_(torch.tensor([0.7, 0.2]))  # swapped and off: alignment must fix the order
    brain, _ = make_brain(tmp_path, separator=sep, oracle=IRMOracle(n_fft=128, hop_length=32),
                          eval_save_audio=2, eval_figures=1, sample_rate=8000)
    items = make_items(6, one_source_every=3, independent=True)
    items[5]["mix"], items[5]["targets"] = items[5]["mix"][:500], items[5]["targets"][:500]
    brain.evaluate(loader(items, batch_size=3), progressbar=False)
    folder = tmp_path / "eval"
    rows = list(csv.DictReader(open(folder / "per_mixture.csv")))
    assert len(rows) == 12 and {r["system"] for r in rows} == {"model", "irm"}
    for item in items:  # model rows against numpy: est = gain * mix, matched to its target
        row = next(r for r in rows if r["id"] == item["id"] and r["system"] == "model")
        mix, refs = item["mix"].double().numpy(), item["targets"].double().numpy()
        if item["num_sources"] == 2:
            est = {0: 0.2 * mix, 1: 0.7 * mix}
            for s in range(2):  # est = gain * mix: SI-SNR of the mixture, SI-SNRi exactly 0
                want = np_si_snr(refs[:, s], est[s])
                assert float(row[f"si_snr_{s + 1}"]) == pytest.approx(want, abs=1e-2)
                assert float(row[f"si_snri_{s + 1}"]) == pytest.approx(0.0, abs=1e-2)
        else:
            assert row["si_snr_2"] == "" and float(row["si_snr_1"]) > 60
            assert float(row["silent_output_energy_db"]) == pytest.approx(
                10 * np.log10(0.2**2), abs=1e-2)
            assert row["over_separated"] == "1"  # -14 dB leak is above the -20 dB threshold
    summary = (folder / "summary.md").read_text()
    assert summary.startswith("Model: GainSeparator, 0.00 M parameters, 8000 Hz, 2 outputs.")
    assert "SI-SNRi model | SI-SNRi IRM" in summary and "### By source category" in summary
    assert sorted(p.name for p in (folder / "audio").iterdir()) == ["mix0", "mix1"]
    assert (folder / "audio" / "mix0" / "est_2.wav").is_file()
    assert [p.name for p in (folder / "figures").iterdir()] == ["mix0.png"]


def test_eval_crops_padding_of_shorter_items(tmp_path):
    """A short item batched with longer ones is scored on its own samples only."""
    sep = GainSeparator()
    brain, _ = make_brain(tmp_path, separator=sep, eval_save_audio=0, eval_figures=0)
    items = make_items(3)
    items[1]["mix"], items[1]["targets"] = items[1]["mix"][:300], items[1]["targets"][:300]
    brain.evaluate(loader(items, batch_size=3), progressbar=False)
    batched = [r for r in brain.scorer.rows if r["id"] == "mix1"][0]
    brain.evaluate(loader(items[1:2], batch_size=1), progressbar=False)
    alone = brain.scorer.rows[0]
    assert batched["si_snr"] == pytest.approx(alone["si_snr"], abs=1e-4)
    assert batched["energy_db"] == pytest.approx(alone["energy_db"], abs=1e-4)


def recordings(count=2, rate=16000, channels=2, seconds=1.3, seed=0):
    """Benchmark evaluation items: whole stereo recordings at their own rate (16 kHz, the model
    runs at 8 kHz), with no file behind them (``mix_wav`` is never read)."""
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i in range(count):
        refs = torch.randn(channels, int(seconds * rate), 2, generator=gen) * torch.tensor(
            [0.8, 0.3])
        items.append({"id": f"rec{i}", "mix": refs.sum(-1), "targets": refs, "num_sources": 2,
                      "categories": ["speech", "music"], "mix_wav": "/nonexistent.wav",
                      "sample_rate": rate})
    return items


def test_benchmark_scorer_in_separation_brain_scores_recordings_in_memory(tmp_path):
    """Issue 16: SeparationBrain with a BenchmarkScorer factory separates the recordings its
    dataset loaded (chunked, resampled, channels matched; no file is read) and writes what the
    scorer writes plus headline.json; the rows equal the scorer run on the chunked separation
    of each recording, and the test loss is the recipe loss on the aligned estimates."""
    import functools
    import json

    from gass_modules.evaluation.benchmarks import BenchmarkScorer
    from gass_modules.inference.chunking import separate_chunked
    from gass_modules.losses import fixed_order_log_mse

    sep = GainSeparator()
    factory = functools.partial(BenchmarkScorer, "dnr", ["speech", "music"], order="fixed")
    brain, _ = make_brain(tmp_path, separator=sep, scorer=factory, order="fixed",
                          loss=fixed_order_log_mse, chunk_seconds=0.5, chunk_overlap=0.25,
                          eval_title="dnr: toy")
    items = recordings()
    loss = brain.evaluate(loader(items, batch_size=1), progressbar=False)
    reference = BenchmarkScorer("dnr", ["speech", "music"], order="fixed")
    losses = []
    for item in items:
        est = separate_chunked(sep, item["mix"], sample_rate=16000, chunk_seconds=0.5,
                               rows="channels", order="fixed").detach()
        aligned = reference.add(item["id"], item["mix"], item["targets"], est, 16000)["model"]
        losses.append(fixed_order_log_mse(item["targets"], aligned.float(), item["mix"]).mean())
    assert [r["id"] for r in brain.scorer.rows] == ["rec0", "rec1"]
    for got, want in zip(brain.scorer.rows, reference.rows):
        assert {k: v for k, v in got.items() if k != "id"} == pytest.approx(
            {k: v for k, v in want.items() if k != "id"}, abs=1e-5)
    assert loss == pytest.approx(float(torch.stack(losses).mean()), abs=1e-4)
    folder = tmp_path / "eval"
    assert sorted(p.name for p in folder.iterdir()) == ["headline.json", "results.csv",
                                                         "summary.md"]
    assert (folder / "summary.md").read_text().startswith("### dnr: toy")
    headline = json.loads((folder / "headline.json").read_text())
    assert headline["SDR avg"] == pytest.approx(reference.summary()["SDR avg"])
    assert headline["loss"] == pytest.approx(loss)


def test_any_scorer_plugs_in_and_bad_ones_say_what_is_expected(tmp_path):
    """A scorer is anything with add / summary / write: it gets every item with its mixture,
    references, estimates (model order) and rate; something else is refused."""

    class Recorder:
        def __init__(self):
            self.seen = []

        def add(self, item_id, mix, targets, estimates, sample_rate, *, num_sources=None,
                categories=()):
            self.seen.append((item_id, tuple(mix.shape), tuple(estimates.shape), sample_rate,
                              num_sources, list(categories)))
            return {"model": estimates}

        def summary(self):
            return {"items": float(len(self.seen))}

        def write(self, folder, title=""):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "seen.txt").write_text(title)
            return [Path(folder) / "seen.txt"]

    brain, _ = make_brain(tmp_path, scorer=Recorder)
    brain.evaluate(loader(make_items(3), batch_size=2), progressbar=False)
    assert brain.scorer.seen == [(f"mix{i}", (1, 800), (1, 800, 2), 8000, 2,
                                  ["speech", "music"]) for i in range(3)]
    assert (tmp_path / "eval" / "seen.txt").read_text().startswith("Model: GainSeparator")
    brain, _ = make_brain(tmp_path / "bad", scorer=lambda: "not a scorer")
    with pytest.raises(TypeError, match="must make a scorer \\(add, summary, write"):
        brain.evaluate(loader(make_items(1)), progressbar=False)


def test_recipes_of_before_2_0_fail_saying_what_to_write(tmp_path):
    """A recipe key removed in 2.0.0 (``eval_alignment: fixed``, ``fixed_order: true``) stops the
    brain with the ``order:`` to write; a recipe with ``benchmark`` + ``stems`` but no ``scorer``
    gets the scorer line to add; ``BenchmarkBrain`` is gone (``SeparationBrain`` takes the
    scorer)."""
    import gass_modules.training.benchmark_runs as finetune

    with pytest.raises(ValueError, match="eval_alignment: fixed, a name removed in gass 2.0.0: "
                                         "write order: fixed instead"):
        make_brain(tmp_path, eval_alignment="fixed")
    with pytest.raises(ValueError, match="fixed_order: true, .*write order: fixed"):
        make_brain(tmp_path, fixed_order=True)
    with pytest.raises(KeyError, match="needs `scorer: !name:gass_modules.evaluation.benchmarks."
                                       "BenchmarkScorer`.*removed in gass 2.0.0"):
        finetune.benchmark_scorer({"benchmark": "librimix", "stems": ["s1", "s2"]})
    assert not hasattr(finetune, "BenchmarkBrain")
    brain, _ = make_brain(tmp_path, order="fixed")
    assert brain.order == "fixed"


def test_export_model_folder_is_the_one_export(tmp_path):
    """export_model_folder writes the recipe's chunking and order into a loadable folder."""
    from gass_modules.inference.separator import GASSSeparator

    card = tmp_path / "card.yaml"
    card.write_text("sample_rate: 8000\nnum_sources: 2\nseparator: !new:tests.doubles."
                    "ScaledCopies\n    gains: [1.0, 1.0]\n    sample_rate: 8000\n")
    brain, _ = make_brain(tmp_path, separator=ScaledCopies([0.1, 0.9], 8000), order="fixed",
                          chunk_seconds=4.0, chunk_overlap=0.5, model_folder=tmp_path / "model")
    folder = brain.export_model_folder(card)
    sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert (sep.order, sep.chunking()) == ("fixed", (4.0, 0.5))
    assert sep.mods.separator.gains.tolist() == pytest.approx([0.1, 0.9])
    brain, _ = make_brain(tmp_path / "none")
    with pytest.raises(ValueError, match="set model_folder"):
        brain.export_model_folder(card)


def test_brain_rejects_bad_configuration_and_batches(tmp_path):
    """Missing separator/loss and a model/mixer source-count mismatch raise clear errors."""
    with pytest.raises(ValueError, match=r"modules\['separator'\]"):
        SeparationBrain({"net": GainSeparator()}, None, {"loss": pit_log_mse})
    with pytest.raises(ValueError, match="callable hparams"):
        SeparationBrain({"separator": GainSeparator()}, None, {})
    brain, counter = make_brain(tmp_path, separator=GainSeparator(num_sources=3))
    with pytest.raises(ValueError, match="num_sources"):
        brain.fit(counter, loader(make_items(4)))



@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_num_threads_must_be_a_positive_int(tmp_path, threads):
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        make_brain(tmp_path, num_threads=threads)


def test_optimizer_step_limit_from_the_command_line_is_a_number(tmp_path):
    """``--optimizer_step_limit=N`` arrives as text from SpeechBrain 1.1.2's parser: it stops
    training after N updates instead of failing with a TypeError mid-run."""
    brain, counter = make_brain(tmp_path, epochs=5, run_opts={"optimizer_step_limit": "3"})
    assert brain.optimizer_step_limit == 3
    brain.fit(counter, loader(make_items(16)))
    assert brain.optimizer_step == 3
    with pytest.raises(ValueError, match="optimizer_step_limit must be a whole number"):
        make_brain(tmp_path, run_opts={"optimizer_step_limit": "many"})


def test_num_threads_sets_torch_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        make_brain(tmp_path, num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_update_budget_ends_training_and_logs_progress(tmp_path, caplog):
    """optimizer_step_limit (the demo's number_of_updates): training stops at the budget, the
    log gives updates done and an ETA after each epoch, and the safety stop stays silent."""
    brain, counter = make_brain(tmp_path, epochs=10, max_train_minutes=60,
                                run_opts={"optimizer_step_limit": 6})
    with caplog.at_level(logging.INFO, logger="gass_modules.training.brain"):
        brain.fit(counter, loader(make_items(8), batch_size=2))  # 4 updates per epoch
    assert brain.optimizer_step == 6 and counter.current == 2
    assert re.search(r"update 4/6, \d+\.\d{3} s/update, ETA \d+\.\d min", caplog.text)
    assert "max_train_minutes" not in caplog.text


def test_time_budget_safety_stop_says_it_cut_the_run(tmp_path, caplog):
    brain, counter = make_brain(tmp_path, epochs=5, max_train_minutes=0,
                                run_opts={"optimizer_step_limit": 100})
    with caplog.at_level(logging.INFO, logger="gass_modules.training.brain"):
        brain.fit(counter, loader(make_items(16)))
    assert brain.optimizer_step == 1
    assert "spent after 1 updates of the 100 budgeted: the run was cut short" in caplog.text

def test_time_budget_stops_after_the_current_update(tmp_path):
    """max_train_minutes=0: one update, then the epoch is validated, checkpointed, and fit ends."""
    brain, counter = make_brain(tmp_path, epochs=5, max_train_minutes=0)
    brain.fit(counter, loader(make_items(16)), valid_set=loader(make_items(4, seed=3)))
    assert brain.optimizer_step == 1 and counter.current == 1
    assert [c.meta["epoch"] for c in brain.checkpointer.list_checkpoints()] == [1]


def test_validation_reports_si_snri_of_multi_source_mixtures(tmp_path):
    """Validation SI-SNRi: estimates that are scaled mixtures improve nothing (exactly 0 dB)."""
    brain, counter = make_brain(tmp_path, lr=1e-9)
    valid = make_items(4, independent=True, seed=5, one_source_every=2)
    brain.fit(counter, loader(make_items(4)), valid_set=loader(valid, batch_size=2))
    assert brain.valid_stats["si_snri"] == pytest.approx(0.0, abs=1e-6)
    assert brain._valid_si_snri[1] == 4  # 2 sources x the 2 mixtures with 2 sources
    assert np.isfinite(brain.valid_stats["loss"])


# ------------------------------------------------------------------- wall-clock LR schedule


def test_wall_clock_linear_decay_values_and_checkpoint(tmp_path):
    """lr = lr0 * min(1, step / warmup) * max(0, 1 - elapsed / budget), closed form; the update
    count survives a Checkpointer round trip, the clock restarts with the run."""
    now = [100.0]
    sched = WallClockLinearDecay(2e-3, num_warmup_steps=4, minutes=2.0, clock=lambda: now[0])
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=2e-3)
    got = []
    for step in range(1, 11):
        now[0] = 100.0 + 12.0 * (step - 1)  # 12 s per update, budget 120 s
        got.append(sched(opt)[1])
        expected = 2e-3 * min(1.0, step / 4) * max(0.0, 1.0 - 12.0 * (step - 1) / 120.0)
        assert got[-1] == pytest.approx(expected, abs=1e-12)
        assert opt.param_groups[0]["lr"] == got[-1]
    now[0] = 1e6
    assert sched(opt)[1] == 0.0
    saver = Checkpointer(tmp_path, recoverables={"lr_scheduler": sched})
    saver.save_checkpoint()
    resumed = WallClockLinearDecay(1.0, num_warmup_steps=0, minutes=9.0, clock=lambda: now[0])
    Checkpointer(tmp_path, recoverables={"lr_scheduler": resumed}).recover_if_possible()
    assert (resumed.lr0, resumed.num_warmup_steps, resumed.minutes, resumed.current_step) == (
        2e-3, 4, 2.0, 11)
    assert resumed(opt)[1] == pytest.approx(2e-3)  # warm-up done, fresh budget


@pytest.mark.parametrize("kwargs, message", [
    ({"minutes": 0}, "minutes must be a positive finite number"),
    ({"minutes": float("inf")}, "minutes must be a positive finite number"),
    ({"minutes": None}, "minutes must be a positive finite number"),
    ({"minutes": 1.0, "num_warmup_steps": -1}, "num_warmup_steps must be an int >= 0"),
])
def test_wall_clock_linear_decay_rejects_bad_budgets(kwargs, message):
    """A missing or infinite budget (max_train_minutes null) is an error, not a constant rate."""
    with pytest.raises(ValueError, match=message):
        WallClockLinearDecay(1e-3, **{"num_warmup_steps": 10, **kwargs})


def test_included_card_resolves_overrides_and_drops_stale_comments():
    """The card exported for the demo recipe is its TDANet-STFT card as trained: the include
    overrides and command-line overrides applied, and none of the card's comments (which
    describe the full-size card's values, e.g. complex masks, and would contradict these)."""
    root = Path(__file__).resolve().parents[2]
    demo = root / "recipes" / "GASS" / "separation" / "hparams" / "demo.yaml"
    card = included_card(demo, {"data_folder": "unused", "model": {"separator": {"depth": 2}}})
    assert "#" not in card
    assert "mask_type: magnitude" in card and "features: mag" in card
    separator = load_hyperpyyaml(card)["separator"]
    assert (type(separator).__name__, separator.sample_rate, separator.num_sources) == (
        "TDANetSTFT", 8000, 4)
    direct = TDANetSTFT(num_sources=4, sample_rate=8000, n_fft=256, hop_length=64, features="mag",
                        mask_type="magnitude", mask_activation="sigmoid", bottleneck_channels=96,
                        hidden_channels=192, depth=2, num_blocks=2, num_heads=4)
    shapes = {k: v.shape for k, v in separator.state_dict().items()}
    assert shapes == {k: v.shape for k, v in direct.state_dict().items()}  # depth 2 applied
