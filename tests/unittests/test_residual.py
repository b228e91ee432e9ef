"""Issue 24, item 3: bandwidth honesty. A model whose rate is below the input's says so (once a
run in the CLI), and the residual stem (input minus the sum of the stems) gives back what the
stems do not hold: values against a brute-force resampling, at 44.1 kHz with an 8-kHz model."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from gass_modules.audio import cached_resampler
from gass_modules.inference.cli import main
from gass_modules.inference.separator import GASSSeparator
from gass_modules.model_folder.folder import save_model_folder
from tests.doubles import ScaledCopies

RATE, MODEL_RATE = 44100, 8000
GAINS = [0.6, 0.3, 0.05, 0.0]  # -4.4, -10.5, -26 dB (silent at -20: dropped), -inf
NOTE = "the model separates up to 4 kHz"


def broadband(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """``[T, 2]`` stereo: a 440 Hz tone (in the model's band), a 9 kHz tone and noise (above)."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    low = 0.3 * np.sin(2 * np.pi * 440 * t)
    high = 0.2 * np.sin(2 * np.pi * 9000 * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([low + high, low + 0.5 * high], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> GASSSeparator:
    return GASSSeparator(modules={"separator": ScaledCopies(GAINS, MODEL_RATE)},
                         hparams={"sample_rate": MODEL_RATE, "num_sources": len(GAINS)},
                         run_opts={"device": "cpu"})


def expected_stems(mono: torch.Tensor) -> torch.Tensor:
    """Brute force: the whole signal down to 8 kHz and back, times each gain: ``[T, S]``."""
    down = cached_resampler(RATE, MODEL_RATE)(mono[None])  # [1, T']
    band = cached_resampler(MODEL_RATE, RATE)(down)[0, : mono.numel()]  # [T]
    return band[:, None] * torch.tensor(GAINS)  # [T, S]


def high_band_energy(x: np.ndarray) -> float:
    """Energy above 4.5 kHz (FFT)."""
    spec = np.abs(np.fft.rfft(x)) ** 2
    return float(spec[np.fft.rfftfreq(x.size, 1 / RATE) > 4500].sum())


def test_stems_plus_residual_give_the_input_back(model, tmp_path):
    audio = broadband()
    sf.write(tmp_path / "mix.wav", audio, RATE, subtype="FLOAT")
    mono = torch.from_numpy(audio.mean(1))
    result = model.separate_to_files(tmp_path / "mix.wav", out_dir=tmp_path / "out",
                                     chunk_seconds=0.5, residual=True)
    assert result.kept == [0, 1]  # 0.05 (-26 dB) and 0 are dropped as silent
    stems = np.stack([sf.read(f, dtype="float32")[0] for f in result.files], axis=1)  # [T, 2]
    residual, rate = sf.read(result.residual_file, dtype="float32")
    assert rate == RATE and result.residual_file.name == "mix_residual.wav"
    np.testing.assert_allclose(stems.sum(1) + residual, mono.numpy(), atol=2e-6)
    # the stems are the band-limited gains (brute force: the resampling of the whole signal;
    # the first and last 10 ms differ by the resamplers' zero padding), the residual the rest
    expected = expected_stems(mono)
    inner = slice(RATE // 100, mono.numel() - RATE // 100)
    np.testing.assert_allclose(stems[inner], expected[inner, :2].numpy(), atol=2e-4)
    np.testing.assert_allclose(residual[inner], (mono - expected[:, :2].sum(1))[inner].numpy(),
                               atol=2e-4)
    # everything above the model's band is in the residual, none of it in the stems
    total = high_band_energy(mono.numpy())
    assert high_band_energy(residual) == pytest.approx(total, rel=0.02)
    assert high_band_energy(stems.sum(1)) < 1e-3 * total
    assert any(note.startswith(NOTE) and "mix_residual.wav" not in note
               for note in result.warnings)
    assert not list((tmp_path / "out").glob(".*partial*"))  # no temporary file left


def test_residual_in_memory_adds_back_the_dropped_outputs(model, tmp_path):
    audio = broadband(0.7, seed=1)
    sf.write(tmp_path / "mix.wav", audio, RATE, subtype="FLOAT")
    result = model.separate_to_files(tmp_path / "mix.wav", chunk_seconds=0.5, residual=True)
    mono = audio.mean(1)
    assert result.residual.shape == (1, mono.size)
    rebuilt = result.sources[0].sum(-1) + result.residual[0]
    np.testing.assert_allclose(rebuilt.numpy(), mono, atol=1e-6)
    without = model.separate_to_files(tmp_path / "mix.wav", chunk_seconds=0.5)
    assert without.residual is None and without.residual_file is None


def test_no_note_when_the_model_covers_the_band(model, tmp_path):
    sf.write(tmp_path / "low.wav", broadband(0.3)[:, 0][::6], MODEL_RATE, subtype="FLOAT")
    result = model.separate_to_files(tmp_path / "low.wav", residual=True)
    assert not any(NOTE in note for note in result.warnings)


def test_cli_says_it_once_and_writes_the_residual(tmp_path, capsys):
    folder = save_model_folder(ScaledCopies(GAINS, MODEL_RATE), tmp_path / "model")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        sf.write(inputs / f"{name}.wav", broadband(0.5), RATE, subtype="PCM_16")
    out = tmp_path / "out"
    assert main([str(inputs), "--model", str(folder), "--out", str(out), "--residual"]) == 0
    err = capsys.readouterr().err
    assert err.count(NOTE) == 1, err
    for name in ("a", "b"):
        report = json.loads((out / f"{name}.json").read_text())
        assert report["residual_file"] == f"{name}_residual.wav"
        assert any(NOTE in w for w in report["warnings"])
        stems = sum(sf.read(out / s["file"], dtype="float32")[0] for s in report["sources"]
                    if s["file"])
        residual = sf.read(out / f"{name}_residual.wav", dtype="float32")[0]
        mono = sf.read(inputs / f"{name}.wav", dtype="float32")[0].mean(1)
        # four 16-bit files (two stems, the dropped output read back, the residual): a few LSB
        np.testing.assert_allclose(stems + residual, mono, atol=6 * 2**-15)
    # a later run over the output folder does not take the residuals (or stems) as inputs
    assert main([str(out), "--model", str(folder), "--out", str(tmp_path / "o2")]) == 1
    assert "holds no" in capsys.readouterr().err
    # without --residual, --overwrite removes a residual that would no longer match
    assert main([str(inputs / "a.wav"), "--model", str(folder), "--out", str(out),
                 "--overwrite"]) == 0
    assert not (out / "a_residual.wav").exists() and (out / "b_residual.wav").exists()
    assert json.loads((out / "a.json").read_text())["residual_file"] is None
