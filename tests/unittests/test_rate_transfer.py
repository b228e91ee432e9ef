"""Fine-tuning at the pre-trained model's rate or the benchmark's
(gass_modules.training.rate_conversion,
gass_modules.training.transfer.prepare_finetuning,
gass_modules.training.benchmark_runs.finetuning_settings).

* ``finetune_rate: model`` (the default) transfers 100 % of the values for every model card of
  ``hparams/models/`` (shrunk in width and depth, its STFT, kernels and band plans as they are),
  fine-tuned on a 2-stem benchmark at another rate;
* ``finetune_rate: benchmark`` converts lengths in samples to keep their ms, resamples learned
  kernels (checked against a closed form: the filter's response to a tone is kept) and names
  every re-initialised tensor with its reason.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from gass_modules.model_folder.folder import save_model_folder
from gass_modules.training.benchmark_runs import finetuning_settings
from gass_modules.training.rate_conversion import (
    convert_sample_lengths,
    finetuning_description,
    resample_kernel,
)
from gass_modules.training.transfer import prepare_finetuning

ROOT = Path(__file__).resolve().parents[2]
CARDS = sorted((ROOT / "hparams" / "models").glob("*.yaml"))
# width and depth only: the STFT, kernels and band plans (what the rate changes) stay the card's
SHRINK = {
    "TDANetWav": {"enc_channels": 16, "bottleneck_channels": 8, "hidden_channels": 16,
                  "depth": 2, "num_blocks": 1, "num_heads": 2},
    "TDANetSTFT": {"bottleneck_channels": 8, "hidden_channels": 16, "depth": 2,
                   "num_blocks": 1, "num_heads": 2},
    "BSRNN": {"feature_dim": 8, "hidden_dim": 8, "num_blocks": 1, "mask_hidden_dim": 16},
    "BSRoFormer": {"feature_dim": 8, "num_blocks": 1, "num_heads": 2, "mask_hidden_dim": 16},
    "TIGER": {"feature_dim": 8, "hidden_dim": 8, "depth": 2, "num_blocks": 1, "num_heads": 2,
              "key_channels": 2},
}


def build_card(path: Path, **top) -> torch.nn.Module:
    """The card with its shrink overrides (and top-level ones: sample_rate, num_sources)."""
    text = path.read_text()
    kind = text.split("!new:")[1].split()[0].rpartition(".")[2]
    return load_hyperpyyaml(text, {**top, "separator": SHRINK[kind]})["separator"]


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.stem)
def test_default_mode_transfers_every_value_for_every_card(card, tmp_path, one_torch_thread):
    """Pre-trained at the card's rate and outputs, fine-tuned on a 2-stem benchmark at another
    rate: the model is rebuilt at the pre-trained rate and outputs and every tensor loads."""
    torch.manual_seed(0)
    gass = build_card(card)
    save_model_folder(gass, tmp_path / "gass")
    other_rate = 8000 if gass.sample_rate != 8000 else 44100
    recipe = build_card(card, sample_rate=other_rate, num_sources=2)  # the benchmark's card
    model, report = prepare_finetuning(recipe, tmp_path / "gass", other_rate, 2)
    assert (model.sample_rate, model.num_sources) == (gass.sample_rate, gass.num_sources)
    assert report.fraction == 1.0 and report.reinitialised == {} and report.converted == {}
    assert report.mode == "model" and "sample_rate" in report.settings
    own, source = model.state_dict(), gass.state_dict()
    assert own.keys() == source.keys()
    assert all(torch.equal(own[k], source[k]) for k in own)
    assert report.to_dict()["transferred_fraction"] == 1.0


def test_default_mode_at_the_same_rate_keeps_the_recipe_separator(tmp_path):
    """Same rate and outputs: nothing is rebuilt, everything loads, no setting changes."""
    card = ROOT / "hparams" / "models" / "tdanet_stft.yaml"
    save_model_folder(build_card(card), tmp_path / "gass")
    recipe = build_card(card)
    model, report = prepare_finetuning(recipe, tmp_path / "gass", 16000, 4)
    assert model is recipe and report.settings == {} and report.fraction == 1.0


@pytest.mark.parametrize("name", ["tdanet_wav", "tdanet_stft", "bsrnn_small"])
def test_benchmark_mode_converts_and_reports_per_module(name, tmp_path):
    """At the benchmark's rate: lengths keep their ms; TDANet-Wav's kernels are converted (all
    values transfer); STFT models lose exactly the tensors sized by the bins, each with why."""
    card = ROOT / "hparams" / "models" / f"{name}.yaml"
    torch.manual_seed(0)
    gass = build_card(card)  # 16 kHz, 4 outputs
    save_model_folder(gass, tmp_path / "gass")
    recipe = build_card(card, sample_rate=44100, num_sources=3)
    model, report = prepare_finetuning(recipe, tmp_path / "gass", 44100, 3, mode="benchmark")
    assert (model.sample_rate, model.num_sources) == (44100, 4)
    args, old = model.describe().arguments, gass.describe().arguments
    for key in ("n_fft", "hop_length", "enc_kernel_size", "enc_stride"):
        if key in old:  # the same duration within a sample (n_fft even)
            assert abs(args[key] / 44100 - old[key] / 16000) <= 2 / 44100, key
            assert key in report.settings
    own, source = model.state_dict(), gass.state_dict()
    for k in report.loaded:
        assert torch.equal(own[k], source[k]), k
    for k in report.reinitialised:
        assert k not in source or own[k].shape != source[k].shape
        assert "STFT bins or bands" in report.reinitialised[k]
    if name == "tdanet_wav":
        assert report.fraction == 1.0 and report.converted  # encoder and decoder kernels
        assert all(own[k].shape[-1] == args["enc_kernel_size"] for k in report.converted)
    else:
        assert 0.0 < report.fraction < 1.0 and report.reinitialised
    text = report.format()
    assert "per module" in text and "finetune_rate: benchmark" in text
    modules = report.per_module()
    assert sum(len(v["reinitialised"]) for v in modules.values()) == len(report.reinitialised)


def test_resampled_kernel_keeps_its_response_to_a_tone():
    """A kernel learned at 16 kHz, resampled to 44.1 kHz, filters a 1-kHz tone (its pass band)
    as before (its frequency response at 1 kHz, a closed form, within 1 %)."""
    k0 = torch.hann_window(64, periodic=False) * torch.cos(2 * math.pi * 1000 * torch.arange(64)
                                                          / 16000)
    taps = round(64 * 44100 / 16000)
    k1 = resample_kernel(k0.reshape(1, 1, -1), taps).flatten()

    def response(kernel, rate, hz=1000.0):
        n = torch.arange(kernel.numel(), dtype=torch.float64)
        phase = 2 * math.pi * hz * n / rate
        return abs(complex(float((kernel.double() * torch.cos(phase)).sum()),
                           float((kernel.double() * torch.sin(phase)).sum())))

    assert response(k1, 44100) == pytest.approx(response(k0, 16000), rel=0.01)
    with pytest.raises(ValueError, match="expected a"):
        resample_kernel(k0, 10)


def test_conversion_keeps_the_separators_constraints():
    """Even n_fft, hop <= n_fft // 2, kernel - stride even and >= 0, at odd rate ratios."""
    for src, dst in ((16000, 44100), (44100, 8000), (8000, 22050), (16000, 11025)):
        args, _ = convert_sample_lengths({"n_fft": 640, "hop_length": 160, "enc_kernel_size": 16,
                                          "enc_stride": 8}, src, dst)
        assert args["n_fft"] % 2 == 0 and 1 <= args["hop_length"] <= args["n_fft"] // 2
        assert args["enc_kernel_size"] >= args["enc_stride"] >= 1
        assert (args["enc_kernel_size"] - args["enc_stride"]) % 2 == 0
    with pytest.raises(ValueError, match="positive ints"):
        convert_sample_lengths({"n_fft": 8}, 0, 8000)


def test_bad_mode_and_unknown_source_rate_are_refused(tmp_path):
    """An unknown finetune_rate, and a bare checkpoint that does not say its rate."""
    card = ROOT / "hparams" / "models" / "tdanet_stft.yaml"
    recipe = build_card(card)
    with pytest.raises(ValueError, match="finetune_rate must be one of"):
        finetuning_description(recipe.describe(), 16000, 4, 8000, 2, "native")
    torch.save(recipe.state_dict(), tmp_path / "separator.ckpt")
    with pytest.raises(ValueError, match="cannot tell the rate and outputs"):
        prepare_finetuning(recipe, tmp_path / "separator.ckpt", 8000, 2)


def test_finetuning_settings_replace_the_scratch_ones_only_when_given(caplog):
    """finetune_* keys take the place of opt_class, lr_scheduler and the update budget."""
    hparams = {"opt_class": "adam-1e-3", "lr_scheduler": "plateau", "finetune_updates": 500,
               "finetune_opt_class": "adam-5e-4", "finetune_lr_scheduler": "warmup-decay"}
    tuned = finetuning_settings(hparams)
    assert (tuned["opt_class"], tuned["lr_scheduler"], tuned["optimizer_step_limit"]) == \
        ("adam-5e-4", "warmup-decay", 500)
    assert hparams["opt_class"] == "adam-1e-3"  # the recipe's own dict is left alone
    old = finetuning_settings({"opt_class": "adam", "lr_scheduler": "plateau"})
    assert old["opt_class"] == "adam" and "fine-tuning with its scratch settings" in caplog.text


@pytest.mark.parametrize("recipe", sorted(p for b in ("LibriMix", "FUSS", "DnR", "MUSDB18")
                                          for p in (ROOT / "recipes" / b).rglob("*.yaml")),
                         ids=lambda p: f"{p.parts[-4]}-{p.stem}")
def test_recipes_define_the_finetuning_settings(recipe):
    """Every benchmark recipe has finetune_rate and a fine-tuning optimiser and schedule."""
    text = recipe.read_text()
    for key in ("finetune_rate: model", "finetune_lr:", "finetune_warmup_steps:",
                "finetune_updates:", "finetune_opt_class:", "finetune_lr_scheduler:"):
        assert f"\n{key}" in text, key
