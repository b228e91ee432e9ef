"""Tests of gass_modules.asr.frontend: the intonation score against a float64 brute-force
reference, the stream selection on synthetic and real (demo corpus) sources, the front end's
lengths, rates and freezing, SeparateThenTranscribe with stand-in ASRs, the README's yaml lines,
and errors on bad input."""

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from hyperpyyaml import load_hyperpyyaml
from torch import nn

from gass_modules.asr.frontend import GASSFrontEnd, rank_streams, separate_at
from gass_modules.asr.intonation import IntonationScore
from gass_modules.asr.transcribe import SeparateThenTranscribe
from gass_modules.inference.separator import GASSSeparator
from gass_modules.lengths import absolute_lengths
from gass_modules.model_folder.folder import save_model_folder
from tests.doubles import ScaledCopies

ROOT = Path(__file__).resolve().parents[2]
RATE = 16000


# ------------------------------------------------------------------------------ signals
def voice(seconds: float = 2.0, rate: int = RATE, seed: int = 0) -> torch.Tensor:
    """A speech-like signal: 5 harmonics, F0 gliding 100-180 Hz, 4 Hz syllables with pauses."""
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    f0 = 140 + 40 * torch.sin(2 * math.pi * 1.3 * t + seed)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    wave = sum(torch.sin(h * phase) / h for h in range(1, 6))
    syllables = torch.clamp(torch.sin(2 * math.pi * 4 * t), min=0) ** 0.5  # pauses between
    return (0.3 * wave * syllables).float()


def notes(seconds: float = 2.0, rate: int = RATE) -> torch.Tensor:
    """Held notes (steady pitch for 0.5 s each, harmonic): music-like."""
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    pitch = torch.tensor([220.0, 330.0, 262.0, 392.0], dtype=torch.float64)
    f0 = pitch[(t / 0.5).long() % 4]
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    return (0.2 * sum(torch.sin(h * phase) / h for h in range(1, 6))).float()


def noise(seconds: float = 2.0, rate: int = RATE, seed: int = 0) -> torch.Tensor:
    """White noise."""
    return 0.1 * torch.randn(int(seconds * rate), generator=torch.Generator().manual_seed(seed))


class FixedSources(nn.Module):
    """A stand-in separator that returns given sources (a perfect separator for one batch)."""

    def __init__(self, sources: torch.Tensor, sample_rate: int = RATE) -> None:
        super().__init__()
        self.register_buffer("sources", sources)  # [B, T, S]
        self.num_sources = sources.shape[-1]
        self.sample_rate = sample_rate

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.sources[: mix.shape[0], : mix.shape[1]]


class RecordingASR:
    """A stand-in ASR: "transcribes" each stream as its index in the call and its length."""

    def __init__(self) -> None:
        self.calls = []

    def transcribe_batch(self, wavs, wav_lens):
        lengths = (wav_lens * wavs.shape[1]).round().long().tolist()
        self.calls.append((wavs.clone(), lengths))
        return [f"stream of {n} samples" for n in lengths], None


# ------------------------------------------------------------------------------ reference
def reference_score(x: np.ndarray, rate: int, score: IntonationScore) -> tuple:
    """Float64 loops over frames and lags: NCCF peak, F0 and the intonation score."""
    if rate != score.analysis_rate:
        x = torchaudio.functional.resample(torch.from_numpy(x), rate,
                                           score.analysis_rate).numpy()
    x = x.astype(np.float64)
    win, hop = score.win, score.hop
    frames = max(1, (len(x) - win) // hop + 1)
    peaks, log_f0, energy = np.zeros(frames), np.zeros(frames), np.zeros(frames)
    lags = range(score.lag_min, score.lag_max + 1)
    for n in range(frames):
        fr = x[n * hop: n * hop + win]
        fr = fr - fr.mean()
        energy[n] = 10 * np.log10(max((fr ** 2).sum(), 1e-10))

        values = {}
        for k in range(score.lag_min - 1, score.lag_max + 2):
            den = math.sqrt((fr[: win - k] ** 2).sum() * (fr[k:] ** 2).sum())
            values[k] = float((fr[: win - k] * fr[k:]).sum() / max(den, 1e-12))
        best = max(lags, key=lambda k: values[k] * (1 - 0.1 * k / score.lag_max))
        a, b, c = values[best - 1], values[best], values[best + 1]
        curve = a - 2 * b + c
        delta = min(0.5, max(-0.5, 0.5 * (a - c) / curve)) if curve < 0 else 0.0
        peaks[n] = b
        log_f0[n] = math.log2(score.analysis_rate / (best + delta))
    active = (energy > energy.max() - score.floor_db) & (energy > -100)
    voiced = active & (peaks >= score.voicing_threshold)
    glides = sum(
        1 for n in range(1, frames)
        if voiced[n] and voiced[n - 1]
        and score.glide_min <= abs(log_f0[n] - log_f0[n - 1]) <= score.glide_max
    )
    return peaks, log_f0, glides / max(1, active[1:].sum())


def test_frame_features_and_score_match_the_float64_reference():
    """NCCF peaks, F0 and the score equal a loop-per-frame, loop-per-lag float64 reference."""
    score = IntonationScore(sample_rate=RATE)
    for x in (voice(1.0), notes(1.0), noise(1.0), voice(1.0) + 0.3 * noise(1.0, seed=3)):
        peak, log_f0, _ = score.frame_features(x[None])
        ref_peak, ref_f0, ref_score = reference_score(x.numpy(), RATE, score)
        np.testing.assert_allclose(peak[0].numpy(), ref_peak, atol=2e-4)
        confident = ref_peak > 0.3  # F0 of unvoiced frames is arbitrary (near-ties of lags)
        np.testing.assert_allclose(log_f0[0].numpy()[confident], ref_f0[confident], atol=1e-3)
        assert score(x[None]).item() == pytest.approx(ref_score, abs=0.02)


def test_score_separates_voice_from_notes_noise_and_silence():
    """Closed-form cases: gliding voiced speech is mostly gliding; held notes glide only in the
    frame that straddles a note change (3 changes in 197 frames); noise and silence never."""
    score = IntonationScore(sample_rate=RATE)
    values = score(torch.stack([voice(), notes(), noise(), torch.zeros(2 * RATE)]))
    assert values[0] > 0.6
    assert values[1] <= 3 / 196 + 1e-6
    assert values[2:].tolist() == [0.0, 0.0]
    assert torch.isfinite(values).all()


def test_score_ignores_gain_padding_and_handles_short_inputs():
    """Scale invariant; padded items score as unpadded; shorter than a frame gives 0."""
    score = IntonationScore(sample_rate=RATE)
    x = voice(1.5)
    alone = score(x[None])
    assert score(100 * x[None]).item() == pytest.approx(alone.item(), abs=1e-6)
    padded = torch.cat([x, torch.randn(RATE)])  # the padding is loud noise: must be ignored
    rel = torch.tensor([len(x) / len(padded), 1.0])
    both = score(torch.stack([padded, padded]), rel)
    assert both[0].item() == pytest.approx(alone.item(), abs=1e-6)
    assert both[1] < both[0]
    assert score(torch.randn(1, 100)).item() == 0.0
    assert score(torch.zeros(3, 1)).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_rate": 0}, "sample_rate must be a positive int"),
    ({"f0_min": 500.0}, "0 < f0_min < f0_max"),
    ({"glide_min": 5.0, "glide_max": 1.0}, "glide_min < glide_max"),
    ({"frame_ms": 20.0}, "two periods of f0_min"),
    ({"voicing_threshold": 1.5}, "voicing_threshold in"),
])
def test_score_rejects_bad_settings(kwargs, match):
    """Settings that cannot work fail at construction, saying what was expected."""
    with pytest.raises(ValueError, match=match):
        IntonationScore(**kwargs)


def test_score_rejects_bad_inputs():
    """NaN, 1-D and empty inputs raise clear errors instead of scoring."""
    score = IntonationScore()
    with pytest.raises(ValueError, match="finite"):
        score(torch.tensor([[0.0, float("nan")] * 400]))
    with pytest.raises(ValueError, match=r"\[N, T\]"):
        score(torch.zeros(1000))
    with pytest.raises(ValueError, match=r"T >= 1"):
        score(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="relative lengths"):
        score(torch.zeros(2, 1000), torch.tensor([0.5, 2.0]))


# ------------------------------------------------------------------------------ ranking
def test_rank_streams_matches_a_sorted_reference():
    """Active first (by score, then energy), then inactive (by energy): against Python's sort
    on the key tuple."""
    gen = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 3, (50, 4), generator=gen).float() / 2  # ties on purpose
    energy = torch.randn(50, 4, generator=gen) * 10
    energy[0, 1] = -math.inf
    active = torch.rand(50, 4, generator=gen) > 0.3
    order = rank_streams(scores, energy, active)
    for b in range(50):
        expected = sorted(range(4), key=lambda s: (
            not active[b, s], -scores[b, s].item() if active[b, s] else 0.0,
            -energy[b, s].item(), s))
        assert order[b].tolist() == expected
    with pytest.raises(ValueError, match="one shape"):
        rank_streams(scores, energy[:, :3], active)


def test_absolute_lengths():
    """Relative lengths map to rounded sample counts; bad shapes and ranges are refused."""
    assert absolute_lengths(torch.tensor([1.0, 0.25, 0.0]), 3, 8).tolist() == [8, 2, 0]
    assert absolute_lengths(None, 2, 5).tolist() == [5, 5]
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        absolute_lengths(torch.ones(3), 2, 8)


# ------------------------------------------------------------------------------ front end
def synthetic_batch():
    """Two mixtures whose sources (in a different order each) are voice, notes, noise, silence."""
    v, m, n, z = voice(), notes(), noise(), torch.zeros(2 * RATE)
    sources = torch.stack([torch.stack([m, v, n, z], -1), torch.stack([z, n, m, voice(seed=2)],
                                                                      -1)])  # [2, T, 4]
    return sources.sum(-1), sources


def test_front_end_picks_the_speech_stream():
    """On voice + music + noise (+ a silent slot) the voice comes out, sample for sample."""
    mix, sources = synthetic_batch()
    front = GASSFrontEnd(FixedSources(sources))
    sel = front.select(mix)
    assert sel.indices[:, 0].tolist() == [1, 3]
    assert torch.equal(front(mix), torch.stack([sources[0, :, 1], sources[1, :, 3]]))
    assert sel.active.tolist() == [[True, True, True, False], [False, True, True, True]]
    two = GASSFrontEnd(FixedSources(sources), num_streams=2)(mix)  # [B, T, 2]
    assert two.shape == (2, mix.shape[1], 2) and torch.equal(two[..., 0], front(mix))


def test_front_end_respects_wav_lens():
    """Past each item's length the output is zero and the padding does not sway the choice."""
    mix, sources = synthetic_batch()
    sources[1, RATE:] = 0
    sources[1, RATE:, 1] = 0.3 * torch.sin(2 * math.pi * 150 * torch.arange(RATE) / RATE)
    front = GASSFrontEnd(FixedSources(sources))
    out = front(mix, torch.tensor([1.0, 0.5]))
    assert out[1, RATE:].abs().max() == 0
    assert front.select(mix, torch.tensor([1.0, 0.5])).indices[:, 0].tolist() == [1, 3]


def test_front_end_resamples_for_a_separator_at_another_rate():
    """A separator at 8 kHz behind a 16 kHz ASR: torchaudio round trip, input length kept."""
    mix = noise(0.5)[None]
    out = GASSFrontEnd(ScaledCopies([0.5, 0.0], sample_rate=8000), sample_rate=RATE)(mix)
    down = torchaudio.functional.resample(mix, RATE, 8000)
    expected = torchaudio.functional.resample(0.5 * down, 8000, RATE)[:, : mix.shape[1]]
    assert out.shape == mix.shape
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_front_end_with_a_gass_separator_equals_the_bare_lobe():
    """A GASSSeparator (chunked, resampling separate_batch) gives the bare lobe's result, away
    from the first and last samples, where the two resampling paths pad differently."""
    lobe = ScaledCopies([0.2, 0.7, 0.1], sample_rate=8000)
    sep = GASSSeparator(modules={"separator": ScaledCopies([0.2, 0.7, 0.1], 8000)},
                        hparams={"sample_rate": 8000, "num_sources": 3},
                        run_opts={"device": "cpu"})
    mix = noise(1.0)[None]
    via_interface, via_lobe = separate_at(sep, mix, RATE), separate_at(lobe, mix, RATE)
    assert via_interface.shape == via_lobe.shape == (1, RATE, 3)
    torch.testing.assert_close(via_interface[:, 64:-64], via_lobe[:, 64:-64], atol=1e-5, rtol=0)


def test_frozen_separator_stays_in_eval_mode_without_gradients():
    """Brain.train() on the ASR modules must not switch the frozen separator to training."""
    lobe = ScaledCopies([1.0, 0.5], sample_rate=RATE)
    front = GASSFrontEnd(lobe).train()
    assert not front.separator.training and front.training
    assert not any(p.requires_grad for p in front.separator.parameters())
    out = front(noise(0.1)[None].requires_grad_(True))
    assert not out.requires_grad
    trainable = GASSFrontEnd(ScaledCopies([1.0, 0.5], sample_rate=RATE), freeze=False).train()
    assert trainable.separator.training
    trainable(noise(0.1)[None]).sum().backward()
    assert trainable.separator.gains.grad is not None


def test_front_end_rejects_bad_arguments():
    """Errors name what was expected."""
    with pytest.raises(TypeError, match="separator nn.Module"):
        GASSFrontEnd(object())
    with pytest.raises(ValueError, match=r"num_streams must be an int in \[1, 2\]"):
        GASSFrontEnd(ScaledCopies([1.0, 0.5], RATE), num_streams=3)
    with pytest.raises(ValueError, match="positive int attribute num_sources"):
        GASSFrontEnd(nn.Linear(2, 2))
    front = GASSFrontEnd(ScaledCopies([1.0, 0.5], RATE))
    with pytest.raises(ValueError, match="finite"):
        front(torch.full((1, 100), float("nan")))
    with pytest.raises(ValueError, match=r"mixture batch \[B, T\]"):
        front(torch.zeros(100))


def test_silent_input_gives_silence_not_nan():
    """An all-zero batch: no stream is active, the output is zeros."""
    out = GASSFrontEnd(ScaledCopies([1.0, 0.5], RATE))(torch.zeros(2, 4000))
    assert torch.equal(out, torch.zeros(2, 4000))


def test_selection_accuracy_on_the_demo_corpus_sources(demo_corpus_small):
    """Real recordings (all splits of the small demo corpus, 4 s crops, oracle sources): in at
    least 90 % of the pairs of a speech clip and a music stem or sound event the speech clip
    scores higher (95.6 % measured; the misses are drum stems, whose toms glide down in pitch,
    and a melodic stem with pitch bends: see benchmarks/bench_asr_frontend.py)."""
    import csv

    clips = {"speech": [], "other": []}
    for split_csv in demo_corpus_small.manifests.values():
        for row in csv.DictReader(open(split_csv)):
            path = row["wav"].replace("$data_root", str(demo_corpus_small.root))
            x, rate = sf.read(path, dtype="float32", frames=4 * RATE)
            assert rate == RATE
            clips["speech" if row["category"] == "speech" else "other"].append(torch.from_numpy(x))
    score = IntonationScore(sample_rate=RATE)

    def scores(xs):
        batch = nn.utils.rnn.pad_sequence(xs, batch_first=True)
        return score(batch, torch.tensor([len(x) / batch.shape[1] for x in xs]))

    speech, other = scores(clips["speech"]), scores(clips["other"])
    assert len(speech) >= 5 and len(other) >= 10
    wins = (speech[:, None] > other[None, :]).float().mean().item()
    assert wins >= 0.9, (speech.tolist(), other.tolist())
    assert speech.min() > other.median()


# ---------------------------------------------------------------------- SeparateThenTranscribe
def stt_separator(sources: torch.Tensor) -> GASSSeparator:
    """A GASSSeparator around :class:`FixedSources`."""
    return GASSSeparator(modules={"separator": FixedSources(sources)},
                         hparams={"sample_rate": RATE, "num_sources": sources.shape[-1]},
                         run_opts={"device": "cpu"})


def test_separate_then_transcribe_returns_one_transcript_per_active_stream():
    """Voice, notes, noise and a silent slot: three transcripts, the voice first and the only
    one marked as speech; the silent output is never sent to the ASR."""
    mix, sources = synthetic_batch()
    asr = RecordingASR()
    stt = SeparateThenTranscribe(stt_separator(sources), asr, asr_sample_rate=RATE)
    out = stt.transcribe_batch(mix)
    assert [[s.index for s in item] for item in out] == [[1, 0, 2], [3, 2, 1]]
    assert [[s.is_speech for s in item] for item in out] == [[True, False, False]] * 2
    assert out[0][0].text == f"stream of {mix.shape[1]} samples"
    sent = torch.cat([wavs for wavs, _ in asr.calls])
    assert sent.shape[0] == 6  # 3 active streams per mixture
    expected = {tuple(sources[b, :, s][:5].tolist()) for b, s in
                [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]}
    assert {tuple(w[:5].tolist()) for w in sent} == expected
    only = SeparateThenTranscribe(stt_separator(sources), RecordingASR(), asr_sample_rate=RATE,
                                  speech_only=True).transcribe_batch(mix)
    assert [[s.index for s in item] for item in only] == [[1], [3]]


def test_separate_then_transcribe_lengths_and_rates():
    """Padded items are transcribed at their own length; input at 8 kHz is resampled for a
    16 kHz ASR (twice the samples)."""
    sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.0], 8000)},
                        hparams={"sample_rate": 8000, "num_sources": 2},
                        run_opts={"device": "cpu"})
    asr = RecordingASR()
    stt = SeparateThenTranscribe(sep, asr, asr_sample_rate=RATE)
    out = stt.transcribe_batch(noise(0.5, rate=8000).repeat(2, 1), torch.tensor([1.0, 0.5]),
                               sample_rate=8000)
    assert [[s.text for s in item] for item in out] == [["stream of 8000 samples"],
                                                         ["stream of 4000 samples"]]


def test_separate_then_transcribe_file(tmp_path):
    """A stereo 22.05 kHz file (tones under 8 kHz, so resampling keeps their energy):
    downmixed, separated, active streams transcribed at 16 kHz, energies relative to the mix."""
    path = tmp_path / "mix.wav"
    t = np.arange(22050) / 22050
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1000 * t)], 1)
    sf.write(path, stereo, 22050, subtype="FLOAT")
    sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.0, 0.5], RATE)},
                        hparams={"sample_rate": RATE, "num_sources": 3},
                        run_opts={"device": "cpu"})
    out = SeparateThenTranscribe(sep, RecordingASR(), asr_sample_rate=RATE).transcribe_file(path)
    assert [s.index for s in out] == [0, 2]
    assert out[0].text == f"stream of {RATE} samples"
    assert out[1].energy_db == pytest.approx(20 * math.log10(0.5), abs=0.01)


def test_separate_then_transcribe_rejects_wrong_parts():
    """A bare lobe or an object without transcribe_batch is refused with what to do."""
    with pytest.raises(TypeError, match="expected a GASSSeparator"):
        SeparateThenTranscribe(ScaledCopies([1.0], RATE), RecordingASR())
    sep = stt_separator(torch.zeros(1, 10, 2))
    with pytest.raises(TypeError, match="transcribe_batch"):
        SeparateThenTranscribe(sep, object())


# ------------------------------------------------------------------------------ README yaml
def test_readme_yaml_lines_build_a_working_front_end(tmp_path):
    """The yaml block of README's "GASS ahead of ASR" section loads (with a model folder) and the
    front end it builds runs on a batch."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### GASS ahead of ASR"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    folder = save_model_folder(ScaledCopies([1.0, 0.5], RATE), tmp_path / "model")
    hparams = load_hyperpyyaml("sample_rate: 16000\n" + block,
                               {"separator_folder": str(folder)})
    front = hparams["gass_frontend"]
    assert isinstance(front, GASSFrontEnd)
    out = front(noise(0.5)[None], torch.tensor([1.0]))
    torch.testing.assert_close(out, noise(0.5)[None])


def test_voice_is_picked_whatever_the_output_order():
    """Whatever the output order of a (perfect) separator, the voice is picked."""
    v, m, n = voice(1.0), notes(1.0), noise(1.0)
    for perm in itertools.permutations([v, m, n]):
        sources = torch.stack(perm, -1)[None]
        sel = GASSFrontEnd(FixedSources(sources)).select(sources.sum(-1))
        assert torch.equal(sel.streams[0, :, 0], v)
