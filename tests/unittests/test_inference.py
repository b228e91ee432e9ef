"""Tests of gass_modules.inference.separator: chunk stitching, resampling, files, activity, model
folders.

Values are checked against references: the true sources (an oracle stand-in separator), the
closed form ``g_s * x`` of a gain separator, and torchaudio's whole-file resampling. The stand-ins
change their output order at every call, so stitching is only right if chunks are aligned.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from hyperpyyaml import load_hyperpyyaml

import gass_modules.inference.chunking as chunking
import gass_modules.inference.stems as stems
from gass_modules.audio import source_activity
from gass_modules.inference.separator import GASSSeparator
from gass_modules.lobes.base import Separator
from gass_modules.model_folder.folder import load_separator_checkpoint, save_model_folder
from tests.doubles import ScaledCopies

MODEL_RATE = 16000
GAINS = [0.4, 0.3, 0.2, 0.15]  # all over -20 dB: active


class FlipGains(Separator):
    """``g_s * x``, rotated along the source axis by ``calls`` (+ ``b`` for item ``b`` when
    ``per_item``) at every call."""

    def __init__(self, gains: list[float], sample_rate: int, per_item: bool = True) -> None:
        super().__init__(num_sources=len(gains), sample_rate=sample_rate, stride=1)
        self.gains = torch.nn.Parameter(torch.tensor(gains))
        self.per_item = per_item
        self.calls = 0

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        out = mix.unsqueeze(-1) * self.gains  # [B, L, S]
        shifted = [out[b].roll(self.calls + b * self.per_item, dims=-1)
                   for b in range(out.shape[0])]
        self.calls += 1
        return torch.stack(shifted)


class Oracle(Separator):
    """Returns the true sources of the chunk it is given, found by looking up its first samples.

    Its output order rotates at every call and differs between batch items, as a PIT-trained
    model's may.
    """

    def __init__(self, mixes: torch.Tensor, images: torch.Tensor, sample_rate: int) -> None:
        super().__init__(num_sources=images.shape[-1], sample_rate=sample_rate, stride=1)
        self.images = images  # [C, N, S]
        self.key = 8
        self.table = {}
        for c, row in enumerate(mixes.numpy()):
            for i in range(row.shape[0] - self.key + 1):
                self.table.setdefault(row[i: i + self.key].tobytes(), (c, i))
        self.calls = 0

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        out = []
        for b, row in enumerate(mix):
            c, i = self.table[row[: self.key].numpy().tobytes()]
            seg = self.images[c, i: i + row.shape[0]]  # [<=L, S]
            seg = torch.nn.functional.pad(seg, (0, 0, 0, row.shape[0] - seg.shape[0]))
            out.append(seg.roll(self.calls + b, dims=-1))
        self.calls += 1
        return torch.stack(out)  # [B, L, S]


def interface(model: torch.nn.Module, **hparams) -> GASSSeparator:
    """A CPU GASSSeparator around ``model``."""
    hp = {"sample_rate": model.sample_rate, "num_sources": model.num_sources, **hparams}
    return GASSSeparator(modules={"separator": model}, hparams=hp, run_opts={"device": "cpu"})


def roundtrip(x: torch.Tensor, rate: int) -> torch.Tensor:
    """Whole-file reference: resample ``[..., T]`` to the model rate and back."""
    if rate == MODEL_RATE:
        return x
    y = torchaudio.functional.resample(x.double(), rate, MODEL_RATE)
    return torchaudio.functional.resample(y, MODEL_RATE, rate)[..., : x.shape[-1]].float()


def crossing_sources(length: int, rate: int, seed: int) -> torch.Tensor:
    """``[T, 4]`` sources whose levels swap at 1.0 s and 2.0 s (inside chunks and overlaps)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / rate
    loud_first = torch.where((t < 1.0) | (t >= 2.0), 1.0, 0.05)
    noise = torch.randn(2, length, generator=g)
    return torch.stack([
        noise[0] * loud_first,
        noise[1] * (1.05 - loud_first),
        0.3 * torch.sin(2 * math.pi * 440.0 * t + seed),
        (t / t[-1]) * torch.sin(2 * math.pi * (200.0 + 300.0 * t) * t),
    ], dim=-1)  # [T, 4]


# ----------------------------------------------------------------------------- stitching


def test_stitched_chunks_equal_the_true_sources():
    """Oracle chunks in shuffled orders stitch back to the true sources, no swap anywhere."""
    rate, length = 8000, 8000 * 3
    images = torch.stack([crossing_sources(length, rate, seed) for seed in (1, 2)])  # [2, T, 4]
    mixes = images.sum(-1)  # [2, T]
    model = Oracle(mixes, images, rate)
    est = interface(model).separate_batch(mixes, chunk_seconds=0.5, overlap=0.25)
    assert model.calls == 8  # ceil((3 - 0.125) / 0.375) chunks
    for b in range(2):  # item b keeps the order of its first chunk: rotated by b
        expected = images[b].roll(b, dims=-1)
        torch.testing.assert_close(est[b], expected, atol=2e-6, rtol=0)
        # per hop-long region, each output is most correlated with the same true source
        for start in range(0, length - 3000, 3000):
            seg_e, seg_t = est[b, start: start + 3000], expected[start: start + 3000]
            corr = torch.einsum("ti,tj->ij", seg_e, seg_t) / (
                seg_e.norm(dim=0)[:, None] * seg_t.norm(dim=0)[None, :])
            assert corr.argmax(1).tolist() == [0, 1, 2, 3]


def test_device_follows_the_parameters_and_batches_stay_on_it(monkeypatch):
    """Issue 16: ``device`` is read off the parameters (``.to()`` moves it, nothing is left
    behind), and ``separate_batch`` keeps chunks on the model's device (no CPU round trip)."""
    sep = interface(FlipGains(GAINS, MODEL_RATE, per_item=False))
    assert sep.device == "cpu"
    seen = []
    separate_chunk = chunking._separate_chunk

    def spy(separator, x, rate, model_rate):
        out = separate_chunk(separator, x, rate, model_rate)
        seen.append(str(x.device) == sep.device and str(out.device) == sep.device)
        return out

    monkeypatch.setattr(chunking, "_separate_chunk", spy)
    mix = torch.randn(2, 4000)
    est = sep.separate_batch(mix, chunk_seconds=0.1)
    assert len(seen) > 1 and all(seen)
    torch.testing.assert_close(est, mix[..., None] * torch.tensor(GAINS))  # first chunk's order
    moved = sep.to("meta")
    assert moved.device == "meta"
    assert all(t.device.type == "meta" for t in [*moved.parameters(), *moved.buffers()])


def test_without_alignment_sources_swap(monkeypatch):
    """The same run with the alignment disabled is wrong: the test above can fail."""
    rate, length = 8000, 8000 * 3
    images = crossing_sources(length, rate, 1)[None]  # [1, T, 4]
    model = Oracle(images.sum(-1), images, rate)
    identity = lambda m: torch.arange(m.shape[-1]).expand(m.shape[0], -1)  # noqa: E731
    monkeypatch.setattr(chunking, "best_permutation", identity)
    est = interface(model).separate_batch(images.sum(-1), chunk_seconds=0.5)
    assert (est[0] - images[0]).abs().max() > 0.5


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
def test_chunked_resampled_equals_whole_file(rate):
    """Any input rate: chunks (in flipping orders) equal one whole-file pass and the reference."""
    g = torch.Generator().manual_seed(rate)
    mix = torch.randn(2, int(0.9 * rate), generator=g)  # [2, T]
    chunked = interface(FlipGains(GAINS, MODEL_RATE)).separate_batch(
        mix, sample_rate=rate, chunk_seconds=0.2, overlap=0.25)
    whole = interface(FlipGains(GAINS, MODEL_RATE)).separate_batch(
        mix, sample_rate=rate, chunk_seconds=10.0)
    torch.testing.assert_close(chunked, whole, atol=2e-5, rtol=0)
    reference = torch.stack([roundtrip(mix, rate)[b, :, None] * torch.tensor(GAINS).roll(b)
                             for b in range(2)])  # [2, T, 4]: item b's first call is rolled by b
    inner = slice(256, -256)  # the reference resamples without the margins' context at the ends
    torch.testing.assert_close(whole[:, inner], reference[:, inner], atol=5e-5, rtol=0)
    if rate == MODEL_RATE:
        torch.testing.assert_close(whole, reference, atol=1e-6, rtol=0)


def test_separate_batch_rejects_bad_input():
    """NaN, wrong shapes and impossible rates fail with what was expected."""
    sep = interface(ScaledCopies(GAINS, MODEL_RATE))
    bad = torch.zeros(1, 100)
    bad[0, 37] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf samples.*sample 37"):
        sep.separate_batch(bad)
    with pytest.raises(ValueError, match="mix.unsqueeze"):
        sep.separate_batch(torch.zeros(100))
    with pytest.raises(ValueError, match="cannot resample 44101 Hz"):
        sep.separate_batch(torch.zeros(1, 100), sample_rate=44101)
    with pytest.raises(ValueError, match="overlap"):
        sep.separate_batch(torch.zeros(1, 100), overlap=0.7)
    with pytest.raises(ValueError, match="chunk_seconds"):
        sep.separate_batch(torch.zeros(1, 100), chunk_seconds=0)


# ----------------------------------------------------------------------------- files


FILE_CASES = [  # (format, subtype, expected output subtype, rate, channels, mode)
    ("WAV", "PCM_16", "PCM_16", 8000, 1, "mix"),
    ("WAV", "PCM_24", "PCM_24", 44100, 2, "each"),
    ("WAV", "FLOAT", "FLOAT", 48000, 6, "each"),
    ("WAV", "PCM_16", "PCM_16", 22050, 6, "mix"),
    ("FLAC", "PCM_24", "PCM_24", 11025, 2, "mix"),
    ("OGG", "VORBIS", "FLOAT", 48000, 2, "each"),
]


@pytest.mark.parametrize("fmt,subtype,out_subtype,rate,channels,mode", FILE_CASES)
def test_separate_file_formats(tmp_path, fmt, subtype, out_subtype, rate, channels, mode):
    """Stems at the input's rate and sample format, equal to the whole-file reference."""
    g = torch.Generator().manual_seed(rate + channels)
    length = int(0.8 * rate)
    t = torch.arange(length) / rate
    base = 0.3 * torch.sin(2 * math.pi * 330 * t) + 0.1 * torch.randn(length, generator=g)
    audio = torch.stack([(0.5 + 0.1 * c) * base + 0.05 * torch.randn(length, generator=g)
                         for c in range(channels)], dim=-1)  # [T, C], correlated channels
    path = tmp_path / f"in.{fmt.lower()}"
    sf.write(path, audio.numpy(), rate, subtype=subtype, format=fmt)
    decoded = torch.from_numpy(sf.read(path, dtype="float32", always_2d=True)[0]).T  # [C, T]
    # channels are scaled copies here, so they all match each other: one order per call
    model = FlipGains(GAINS, MODEL_RATE, per_item=False)
    result = interface(model).separate_to_files(path, out_dir=tmp_path / "out", channels=mode,
                                            chunk_seconds=0.3)
    assert result.kept == [0, 1, 2, 3] and result.num_active == 4
    source = decoded.mean(0, keepdim=True) if mode == "mix" else decoded
    reference = roundtrip(source, rate)  # [C', T]
    step = 2.0 ** -15 if out_subtype == "PCM_16" else 2.0 ** -23
    for k, file in enumerate(result.files):
        assert file.name == f"in_s{k + 1}.wav"
        info = sf.info(file)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (
            rate, source.shape[0], out_subtype, decoded.shape[1])
        stem = torch.from_numpy(sf.read(file, dtype="float32", always_2d=True)[0]).T
        expected = GAINS[k] * reference
        torch.testing.assert_close(stem[:, 256:-256], expected[:, 256:-256],
                                   atol=5e-5 + step, rtol=0)
    assert not list((tmp_path / "out").glob(".*partial*"))


def test_one_sample_file(tmp_path):
    """A 1-sample file gives 1-sample stems, with the exact value at the model rate."""
    sf.write(tmp_path / "one.wav", np.array([0.5], dtype=np.float32), MODEL_RATE,
             subtype="FLOAT")
    result = interface(ScaledCopies(GAINS, MODEL_RATE)).separate_to_files(tmp_path / "one.wav")
    assert result.sources.shape == (1, 1, 4)
    torch.testing.assert_close(result.sources[0, 0], 0.5 * torch.tensor(GAINS))
    sf.write(tmp_path / "one44.wav", np.array([0.5], dtype=np.float32), 44100, subtype="FLOAT")
    result = interface(ScaledCopies(GAINS, MODEL_RATE)).separate_to_files(tmp_path / "one44.wav",
                                                                      keep_silent=True)
    assert result.sources.shape == (1, 1, 4)
    # reference: the round trip of the zero-extended file (a band-limited impulse), at sample 0
    impulse = torch.nn.functional.pad(torch.tensor([[0.5]]), (4410, 4410))
    expected = roundtrip(impulse, 44100)[0, 4410] * torch.tensor(GAINS)
    torch.testing.assert_close(result.sources[0, 0, np.argsort(result.kept)], expected)


@pytest.mark.parametrize("content,message", [
    ("empty", "got 0 samples"),
    ("nan", r"NaN or Inf samples \(first at sample 1234"),
    ("inf", r"NaN or Inf samples \(first at sample 1234"),
    ("text", "not a readable audio file"),
    ("header", "not a readable audio file"),
    ("missing", "no such file"),
])
def test_bad_files_fail_clearly(tmp_path, content, message):
    """0 samples, NaN/Inf, non-audio, corrupt header, missing: a clear error, no output left."""
    path = tmp_path / "bad.wav"
    if content == "empty":
        sf.write(path, np.zeros((0, 1), dtype=np.float32), 8000)
    elif content in ("nan", "inf"):
        x = np.zeros(5000, dtype=np.float32)
        x[1234] = np.nan if content == "nan" else np.inf
        sf.write(path, x, 8000, subtype="FLOAT")
    elif content == "text":
        path.write_text("not audio")
    elif content == "header":
        sf.write(path, np.zeros(800, dtype=np.float32), 8000)
        path.write_bytes(path.read_bytes()[:30])
    sep = interface(ScaledCopies(GAINS, MODEL_RATE))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        sep.separate_to_files(path, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_nan_found_while_streaming_removes_partial_outputs(tmp_path, monkeypatch):
    """A NaN in a later block is caught by the streaming reader and the partial stems removed.

    Float files are scanned before separation; the scan is disabled here to reach the reader.
    """
    x = np.zeros(20000, dtype=np.float32)
    x[15000] = np.nan
    sf.write(tmp_path / "late.wav", x, MODEL_RATE, subtype="FLOAT")
    monkeypatch.setattr(stems, "scan_finite", lambda handle, name: None)
    sep = interface(ScaledCopies(GAINS, MODEL_RATE))
    with pytest.raises(ValueError, match="sample 15000"):
        sep.separate_to_files(tmp_path / "late.wav", out_dir=tmp_path / "out", chunk_seconds=0.2)
    assert list((tmp_path / "out").iterdir()) == []


def test_silent_file_has_no_active_source(tmp_path):
    """All-zero input: 0 active sources, no stems, energies -inf, nothing NaN."""
    sf.write(tmp_path / "silence.wav", np.zeros((8000, 2), dtype=np.int16), 8000)
    result = interface(ScaledCopies(GAINS, MODEL_RATE)).separate_to_files(
        tmp_path / "silence.wav", out_dir=tmp_path / "out")
    assert result.num_active == 0 and result.files == [] and result.kept == []
    assert result.energy_db == [-math.inf] * 4 and result.active_seconds == [0.0] * 4
    assert list((tmp_path / "out").iterdir()) == []


def test_clipped_input_is_clipped_and_counted(tmp_path):
    """A clipped input through a gain of 1.5 into PCM_16: clipped to [-1, 1] and counted."""
    t = np.arange(8000) / 8000
    x = np.clip(1.6 * np.sin(2 * np.pi * 50 * t), -1, 1).astype(np.float32)
    sf.write(tmp_path / "clip.wav", x, 8000, subtype="PCM_16")
    decoded = sf.read(tmp_path / "clip.wav", dtype="float32")[0]
    model = ScaledCopies([1.5, 0.5], 8000)
    result = interface(model).separate_to_files(tmp_path / "clip.wav", out_dir=tmp_path / "out",
                                            chunk_seconds=0.3)
    assert result.kept == [0, 1]
    assert result.clipped == [int((np.abs(1.5 * decoded) > 1).sum()), 0]
    loud = sf.read(result.files[0], dtype="float32")[0]
    np.testing.assert_allclose(loud, np.clip(1.5 * decoded, -1, 1), atol=2 ** -15)
    assert np.isfinite(loud).all()


def test_activity_values_and_keep_silent(tmp_path):
    """Energies are 20 log10(g); active seconds count the frames over the threshold."""
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(2 * MODEL_RATE)
    x[:MODEL_RATE] = 0.3 * torch.randn(MODEL_RATE, generator=g)  # 1 s of sound, 1 s of silence
    sf.write(tmp_path / "half.wav", x.numpy(), MODEL_RATE, subtype="FLOAT")
    sep = interface(ScaledCopies([1.0, 0.5, 0.01, 0.0], MODEL_RATE))
    result = sep.separate_to_files(tmp_path / "half.wav", chunk_seconds=0.7)
    np.testing.assert_allclose(result.energy_db[:3], [0.0, 20 * math.log10(0.5), -40.0],
                               atol=1e-4)
    assert result.energy_db[3] == -math.inf
    assert result.active == [True, True, False, False] and result.kept == [0, 1]
    assert result.active_seconds == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert result.sources.shape == (1, 2 * MODEL_RATE, 2)
    torch.testing.assert_close(result.sources[0, :, 1], 0.5 * x)
    kept_all = sep.separate_to_files(tmp_path / "half.wav", out_dir=tmp_path / "o",
                                     keep_silent=True)
    assert kept_all.kept == [0, 1, 2, 3] and len(kept_all.files) == 4
    energy, active = source_activity(x[None], result.sources)
    np.testing.assert_allclose(energy[0].tolist(), [0.0, 20 * math.log10(0.5)], atol=1e-4)
    assert active.tolist() == [[True, True]]


def test_outputs_are_not_overwritten(tmp_path):
    """Existing stems: FileExistsError unless overwrite, which also removes stale stems."""
    sf.write(tmp_path / "a.wav", 0.1 * np.ones(800, dtype=np.float32), 8000)
    sep = interface(ScaledCopies([1.0, 0.5, 0.01, 0.0], 8000))
    out = tmp_path / "out"
    assert len(sep.separate_to_files(tmp_path / "a.wav", out_dir=out, keep_silent=True).files) == 4
    before = (out / "a_s1.wav").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        sep.separate_to_files(tmp_path / "a.wav", out_dir=out)
    assert (out / "a_s1.wav").read_bytes() == before
    result = sep.separate_to_files(tmp_path / "a.wav", out_dir=out, overwrite=True)
    assert [p.name for p in result.files] == ["a_s1.wav", "a_s2.wav"]
    # stems this run did not write are removed only when a gass-separate report records them
    # (issue 27 item 1: a user's a_s3.wav is never deleted); no report here, so they stay
    assert sorted(p.name for p in out.iterdir()) == ["a_s1.wav", "a_s2.wav", "a_s3.wav",
                                                     "a_s4.wav"]
    report = {"input": "a.wav", "model_sample_rate": 8000,
              "sources": [{"file": f"a_s{k}.wav"} for k in (1, 2, 3)]}
    (out / "a.json").write_text(json.dumps(report))
    sep.separate_to_files(tmp_path / "a.wav", out_dir=out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a_s1.wav", "a_s2.wav",
                                                     "a_s4.wav"]


def test_channels_each_matches_channels_to_channel_zero(tmp_path):
    """Per-channel separation: channel c's sources follow channel 0's order (panned images)."""
    rate, length = 8000, 8000 * 2
    sources = crossing_sources(length, rate, 5)  # [T, 4]
    pan = torch.tensor([[1.0, 0.2, 0.7, 0.5], [0.3, 1.0, 0.6, 0.9], [0.8, 0.5, 0.1, 1.0]])
    images = sources[None] * pan[:, None, :]  # [3, T, 4]
    mixes = images.sum(-1)  # [3, T]
    path = tmp_path / "three.wav"
    sf.write(path, mixes.T.numpy(), rate, subtype="FLOAT")
    model = Oracle(mixes, images, rate)  # item b of the first call is rolled by b
    result = interface(model).separate_to_files(path, channels="each", keep_silent=True,
                                            chunk_seconds=0.5)
    est = result.sources[..., np.argsort(result.kept)]  # back to model output order
    torch.testing.assert_close(est, images, atol=2e-6, rtol=0)


# ----------------------------------------------------------------------------- model folders

CARD = """
sample_rate: 16000
num_sources: 4
separator: !new:tests.doubles.ScaledCopies
    gains: [0.1, 0.1, 0.1, 0.1]
    sample_rate: !ref <sample_rate>
"""


def test_model_folder_round_trip(tmp_path):
    """save_model_folder + from_hparams: trained weights, overrides and chunking survive."""
    trained = ScaledCopies([0.9, 0.5, 0.2, 0.0], 8000)
    wrapped = torch.nn.DataParallel(trained)  # what a recipe may hold
    folder = save_model_folder(wrapped, tmp_path / "m", card=CARD, overrides={"sample_rate": 8000},
                               chunk_seconds=4.0, overlap=0.5)
    text = (folder / "hyperparams.yaml").read_text()
    assert "sample_rate: 8000" in text and "load_separator_checkpoint" in text
    sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert torch.equal(sep.mods.separator.gains, trained.gains.detach())
    assert (sep.sample_rate, sep.num_sources, sep.chunking()) == (8000, 4, (4.0, 0.5))
    assert not sep.mods.separator.training
    x = torch.randn(1, 500)
    torch.testing.assert_close(sep.separate_batch(x), trained(x).detach())
    with pytest.raises(FileExistsError, match="overwrite"):
        save_model_folder(trained, folder, card=CARD, overrides={"sample_rate": 8000})
    card = tmp_path / "card.yaml"
    card.write_text(CARD)
    save_model_folder(trained, folder, card=card, overrides="sample_rate: 8000",
                      overwrite=True)


def test_save_model_folder_checks_the_card(tmp_path):
    """A card that does not describe the trained separator fails at save time."""
    with pytest.raises(ValueError, match="sample_rate: card key 16000"):
        save_model_folder(ScaledCopies(GAINS, 8000), tmp_path / "m", card=CARD)
    with pytest.raises(ValueError, match="shape mismatches.*gains"):
        save_model_folder(ScaledCopies([1.0, 1.0], 16000), tmp_path / "m",
                          card=CARD.replace("num_sources: 4", "num_sources: 2"))
    with pytest.raises(FileNotFoundError, match="model card not found"):
        save_model_folder(ScaledCopies(GAINS, 16000), tmp_path / "m", card="no/such/card.yaml")
    with pytest.raises(ValueError, match="defines \\['modules'\\]"):
        save_model_folder(ScaledCopies(GAINS, 16000), tmp_path / "m", card=CARD + "modules: {}\n")
    with pytest.raises(ValueError, match="cannot build model card"):
        save_model_folder(ScaledCopies(GAINS, 16000), tmp_path / "m", card=CARD,
                          overrides={"no_such_key": 1})
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("damage,message", [
    ("garbage", "cannot read separator checkpoint .*separator.ckpt"),
    ("truncated", "cannot read separator checkpoint .*separator.ckpt"),
    ("shape", "separator.ckpt does not match.*gains: expected \\(4,\\), found \\(3,\\)"),
    ("keys", "separator.ckpt does not match.*missing keys \\['gains'\\].*unexpected keys"),
    ("pickle", "cannot read separator checkpoint .*separator.ckpt.*Unpickl"),
    ("missing", "separator checkpoint not found: .*separator.ckpt"),
])
def test_bad_checkpoints_name_the_file(tmp_path, damage, message):
    """Corrupt or mismatched checkpoints: errors naming the file and what did not match."""
    folder = save_model_folder(ScaledCopies(GAINS, 16000), tmp_path / "m")
    ckpt = folder / "separator.ckpt"
    if damage == "garbage":
        ckpt.write_bytes(b"\x00\x01not a checkpoint" * 10)
    elif damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    elif damage == "shape":
        torch.save({"gains": torch.zeros(3)}, ckpt)
    elif damage == "keys":
        torch.save({"weights": torch.zeros(4)}, ckpt)
    elif damage == "pickle":  # weights_only=True refuses arbitrary objects
        torch.save({"gains": torch.zeros(4), "extra": argparse.Namespace(a=1)}, ckpt)
    elif damage == "missing":
        ckpt.unlink()
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})


def test_load_hook_is_strict(tmp_path):
    """load_separator_checkpoint loads the values exactly."""
    model = ScaledCopies(GAINS, 16000)
    torch.save({"gains": torch.tensor([1.0, 2.0, 3.0, 4.0])}, tmp_path / "s.ckpt")
    load_separator_checkpoint(model, tmp_path / "s.ckpt")
    assert model.gains.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_from_hparams_needs_a_local_folder(tmp_path):
    """A missing folder or hyperparams file is a FileNotFoundError; a hub id that is not in the
    cache, with the network off (SpeechBrain's FetchConfig), too (issue 27 item 18). On
    SpeechBrain 1.0 (no FetchConfig, ``make compat``) the option is refused with a message."""
    import speechbrain

    if speechbrain.__version__.startswith("1.0."):
        with pytest.raises(ValueError, match="fetch_config needs speechbrain>=1.1"):
            GASSSeparator.from_hparams(source="speechbrain/sepformer-wsj02mix",
                                       fetch_config=object())
    else:
        from speechbrain.utils.fetching import FetchConfig

        with pytest.raises(FileNotFoundError,
                           match="cannot fetch hyperparams.yaml from speechbrain"):
            GASSSeparator.from_hparams(source="speechbrain/sepformer-wsj02mix",
                                       fetch_config=FetchConfig(
                                           allow_network=False,
                                           huggingface_cache_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        GASSSeparator.from_hparams(source=tmp_path / "no" / "folder")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(FileNotFoundError, match="hyperparams.yaml not found"):
        GASSSeparator.from_hparams(source=tmp_path / "empty")


# ----------------------------------------------------------------------------- real cards

CARDS = sorted((Path(__file__).resolve().parents[2] / "hparams" / "models").glob("*.yaml"))


@pytest.fixture(scope="module")
def built_cards() -> dict:
    """Every model card, built once (seeded) in eval mode."""
    torch.manual_seed(0)
    return {card: load_hyperpyyaml(card.read_text())["separator"].eval() for card in CARDS}


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.stem)
def test_real_card_model_folder(tmp_path, built_cards, card):
    """Every model card: its folder reloads the exact weights (values of every tensor)."""
    model = built_cards[card]
    folder = save_model_folder(model, tmp_path / card.stem, card=card)
    sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    loaded = sep.mods.separator.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_real_card_separates_in_chunks(tmp_path, built_cards):
    """The smallest card, loaded from a folder: one chunk equals the module's own output, and
    chunked separation of a 44.1 kHz stereo file gives finite stems of the file's length."""
    assert CARDS, "hparams/models holds no model card (project files missing)"
    card, model = min(built_cards.items(),
                      key=lambda item: sum(p.numel() for p in item[1].parameters()))
    sep = GASSSeparator.from_hparams(source=save_model_folder(model, tmp_path / "m", card=card),
                                     run_opts={"device": "cpu"})
    x = torch.randn(1, model.sample_rate // 4)
    with torch.no_grad():
        torch.testing.assert_close(sep.separate_batch(x), model(x), atol=1e-5, rtol=1e-4)
    audio = 0.1 * np.random.default_rng(0).standard_normal((int(0.6 * 44100), 2))
    sf.write(tmp_path / "in.wav", audio.astype(np.float32), 44100)
    result = sep.separate_to_files(tmp_path / "in.wav", keep_silent=True, chunk_seconds=0.25)
    assert result.sources.shape == (1, audio.shape[0], model.num_sources)
    assert torch.isfinite(result.sources).all()


# ----------------------------------------------------------------------------- fixed order


class LoudFirst(Separator):
    """Labelled stems that depend on the chunk: stem 0 = the mix when the chunk is loud (RMS over
    0.3), else stem 1 = the mix. A fixed-order model's output is stem ``k`` in every chunk."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__(num_sources=2, sample_rate=sample_rate, stride=1)
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        loud = (mix.square().mean(-1, keepdim=True).sqrt() > 0.3).float()  # [B, 1]
        return torch.stack([mix * loud, mix * (1 - loud)], dim=-1)  # [B, L, 2]


@pytest.mark.parametrize("fixed_order", [False, True])
def test_fixed_order_keeps_stems_across_chunks(tmp_path, fixed_order):
    """Alignment keeps a source on one output; labelled stems (fixed order) must not be
    re-aligned: output 0 is stem 0 in every chunk, cross-faded in the overlaps."""
    rate = 8000
    x = torch.randn(1, 2 * rate, generator=torch.Generator().manual_seed(0))
    x[:, :rate] *= 0.05  # quiet first second, loud second one
    sep = interface(LoudFirst(rate), order="fixed" if fixed_order else "aligned")
    assert (sep.order == "fixed") is fixed_order
    # chunks [0, 1), [0.75, 1.75), [1.5, 2) s: the first is quiet, the others loud
    est = sep.separate_batch(x, chunk_seconds=1.0, overlap=0.25)[0]  # [T, 2]
    torch.testing.assert_close(est.sum(-1), x[0], atol=1e-6, rtol=0)
    first, later = slice(0, int(0.75 * rate)), slice(rate, 2 * rate)
    if fixed_order:  # stem 1 (quiet chunk) then stem 0 (loud chunks)
        assert est[first, 0].abs().max() == 0 and est[later, 1].abs().max() == 0
        torch.testing.assert_close(est[later, 0], x[0, later])
        ramp = torch.hann_window(2 * rate // 4, periodic=True, dtype=torch.float64).float()
        overlap = slice(int(0.75 * rate), rate)
        torch.testing.assert_close(est[overlap, 0], x[0, overlap] * ramp[: rate // 4],
                                   atol=1e-6, rtol=0)
    else:  # aligned: the mix stays on the output of the first chunk
        assert est[:, 0].abs().max() == 0
        torch.testing.assert_close(est[:, 1], x[0])
    # files: fixed-order stems keep their index, the others are sorted loudest first
    path = tmp_path / "mix.wav"
    sf.write(path, x[0].numpy(), rate, subtype="FLOAT")
    result = sep.separate_to_files(path, out_dir=tmp_path / "out", chunk_seconds=1.0,
                                   keep_silent=True)
    names = [p.name for p in result.files]
    assert names == ["mix_s1.wav", "mix_s2.wav"]
    stems = torch.stack([torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in result.files])
    if fixed_order:
        torch.testing.assert_close(stems.T, est, atol=1e-6, rtol=0)
    else:  # loudest first: the single active output
        torch.testing.assert_close(stems[0], x[0], atol=1e-6, rtol=0)


def test_fixed_order_model_folder(tmp_path):
    """save_model_folder(order="fixed") makes GASSSeparator skip the re-alignment."""
    card = ("sample_rate: 8000\nnum_sources: 2\nseparator: !new:tests.doubles."
            "ScaledCopies\n    gains: [0.5, 0.5]\n    sample_rate: !ref <sample_rate>\n")
    model = ScaledCopies([0.5, 0.5], 8000)
    for flag in (False, True):
        folder = save_model_folder(model, tmp_path / str(flag), card=card,
                                   order="fixed" if flag else "aligned")
        sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
        assert (sep.order == "fixed") is flag
    with pytest.raises(ValueError, match="fixed_order"):
        save_model_folder(model, tmp_path / "bad", card=card + "fixed_order: true\n")


# ----------------------------------------------------------------------------- issue 17

@pytest.mark.parametrize("subtype,stem_subtype", [("ULAW", "ULAW"), ("ALAW", "ALAW"),
                                                  ("MS_ADPCM", "PCM_16"),
                                                  ("IMA_ADPCM", "PCM_16")])
def test_integer_codecs_are_clipped_and_counted(tmp_path, subtype, stem_subtype):
    """Item 4: u-law/A-law/ADPCM stems no longer wrap around above 1.0 with 0 clipped samples;
    block codecs (ADPCM) become PCM_16 stems of the input's length."""
    t = np.arange(4000) / 8000
    sf.write(tmp_path / "in.wav", (0.9 * np.sin(2 * np.pi * 100 * t)).astype(np.float32), 8000,
             subtype=subtype)
    decoded = sf.read(tmp_path / "in.wav", dtype="float32")[0]
    result = interface(ScaledCopies([1.5, 0.5], 8000)).separate_to_files(
        tmp_path / "in.wav", out_dir=tmp_path / "out")
    expected_clipped = int((np.abs(1.5 * decoded) > 1).sum())
    assert expected_clipped > 100 and result.clipped == [expected_clipped, 0]
    info = sf.info(result.files[0])
    assert info.subtype == stem_subtype and info.frames == len(decoded)
    loud = sf.read(result.files[0], dtype="float32")[0]
    peaks = np.abs(1.5 * decoded) > 1
    assert np.all(np.abs(loud[peaks]) > 0.9)  # saturated, not wrapped to small values
    assert np.all(np.sign(loud[peaks]) == np.sign(decoded[peaks]))


def test_mp3_input_gives_float_wav_stems(tmp_path):
    """Item 6: MP3 input: the stems are FLOAT WAV (the writer used to pick MPEG and fail)."""
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "in.mp3", x, 16000, format="MP3", subtype="MPEG_LAYER_III")
    decoded = sf.read(tmp_path / "in.mp3", dtype="float32")[0]
    result = interface(ScaledCopies([0.5, 0.0], 16000)).separate_to_files(
        tmp_path / "in.mp3", out_dir=tmp_path / "out")
    assert [p.name for p in result.files] == ["in_s1.wav"]
    assert sf.info(result.files[0]).subtype == "FLOAT"
    stem = sf.read(result.files[0], dtype="float32")[0]
    np.testing.assert_allclose(stem, 0.5 * decoded, atol=1e-6)


def test_truncated_wav_is_separated_with_a_warning(tmp_path):
    """Item 8: a header claiming more frames than the file holds: warned, with the count read."""
    sf.write(tmp_path / "full.wav", 0.1 * np.ones(8000, np.float32), 8000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    frames = sf.info(tmp_path / "cut.wav").frames
    result = interface(ScaledCopies([1.0, 0.0], 8000)).separate_to_files(tmp_path / "cut.wav")
    assert result.num_frames == frames
    assert len(result.warnings) == 1
    assert "truncated" in result.warnings[0] and f"the {frames} frames" in result.warnings[0]
    assert "about 8000 frames" in result.warnings[0]
    full = interface(ScaledCopies([1.0, 0.0], 8000)).separate_to_files(tmp_path / "full.wav")
    assert full.warnings == []


def test_chunk_longer_than_the_input_is_clamped():
    """Item 8: --chunk-seconds far larger than the file no longer allocates the whole chunk."""
    model = ScaledCopies([0.5, 0.25], 8000)
    mix = torch.randn(1, 3000)
    est = interface(model).separate_batch(mix, chunk_seconds=1e9)
    torch.testing.assert_close(est, model(mix).detach())


def make_read_only(folder: Path) -> bool:
    """Makes ``folder`` unwritable (chmod; chattr +i for root); False when that is impossible."""
    import os
    import subprocess

    folder.chmod(0o555)
    probe = folder / ".probe"
    try:
        probe.touch()
    except PermissionError:
        return True
    probe.unlink()
    if os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(folder)],
                                            capture_output=True).returncode == 0:
        return True
    return False


def test_read_only_output_folder_says_permission_denied(tmp_path):
    """Item 8: a read-only output folder failed with libsndfile's "System error."."""
    import subprocess

    sf.write(tmp_path / "in.wav", 0.1 * np.ones(800, np.float32), 8000)
    out = tmp_path / "out"
    out.mkdir()
    if not make_read_only(out):
        pytest.skip("cannot make a folder read-only here")
    try:
        with pytest.raises(PermissionError, match=f"cannot write in {out}.*permission denied"):
            interface(ScaledCopies([1.0, 0.0], 8000)).separate_to_files(tmp_path / "in.wav",
                                                                    out_dir=out)
    finally:
        subprocess.run(["chattr", "-i", str(out)], capture_output=True)
        out.chmod(0o755)


def test_stems_never_overwrite_a_protected_input(tmp_path):
    """Item 2 (library side): a stem named like another input is refused, even with overwrite."""
    sf.write(tmp_path / "a.wav", 0.1 * np.ones(800, np.float32), 8000)
    sf.write(tmp_path / "a_s1.wav", 0.2 * np.ones(800, np.float32), 8000)
    before = (tmp_path / "a_s1.wav").read_bytes()
    with pytest.raises(ValueError, match="written over the input"):
        interface(ScaledCopies([1.0, 0.0], 8000)).separate_to_files(
            tmp_path / "a.wav", out_dir=tmp_path, overwrite=True,
            protected=[tmp_path / "a_s1.wav"])
    assert (tmp_path / "a_s1.wav").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "a_s1.wav"]
