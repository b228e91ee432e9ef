"""The corpus builder's own logic on generated files: speech voices and their split groups,
bandwidth balancing across categories, per-split statistics."""

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from demo_corpus import common, speech  # noqa: E402


@pytest.fixture
def builder(tools):
    """``tools/build_demo_corpus.py`` as a module."""
    return tools("build_demo_corpus")


def _tone(path: Path, rate: int, seconds: float, freqs=(300.0,)) -> None:
    t = np.arange(int(rate * seconds)) / rate
    x = sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), rate)


def test_community_voices_are_grouped_by_language_across_packages(tmp_path, monkeypatch):
    """KLettres/KTuberling/Tux Paint voices of one language share a split group; skipped
    folders (da/alpha, sr@latin) are left out; regional variants fold."""
    for rel in ("klettres/fr/alpha/a.ogg", "klettres/fr/syllab/ba.ogg",
                "klettres/da/alpha/a.ogg", "klettres/da/syllab/ba.ogg",
                "klettres/en_GB/alpha/a.ogg", "ktuberling/fr/nez.ogg",
                "ktuberling/sr@latin/nos.ogg", "ktuberling/sr/nos.ogg",
                "ktuberling/nn/nase.wav", "tux/animals/cat_desc_fr.ogg",
                "tux/animals/cat_desc_pt_BR.ogg", "tux/animals/cat_desc.ogg",
                "tux/animals/cat.ogg"):
        _tone(tmp_path / rel, 8000, 0.1)
    monkeypatch.setattr(speech, "KLETTRES", str(tmp_path / "klettres"))
    monkeypatch.setattr(speech, "KTUBERLING", str(tmp_path / "ktuberling"))
    monkeypatch.setattr(speech, "TUXPAINT", str(tmp_path / "tux"))
    voices = {v.source: (v.group, len(v.files)) for v in speech.community_voices()}
    assert voices == {
        "klettres_da": ("speech/lang_da", 1), "klettres_en_gb": ("speech/lang_en", 1),
        "klettres_fr": ("speech/lang_fr", 2), "ktuberling_fr": ("speech/lang_fr", 1),
        "ktuberling_nn": ("speech/lang_no", 1), "ktuberling_sr": ("speech/lang_sr", 1),
        "tuxpaint_en": ("speech/lang_en", 1), "tuxpaint_fr": ("speech/lang_fr", 1),
        "tuxpaint_pt_br": ("speech/lang_pt", 1)}


def test_recorded_voice_keeps_its_main_band(tmp_path):
    """Passages of a voice hold only utterances at its most common native rate, and the clip
    says which band it holds."""
    files = []
    for k, rate in enumerate([22050, 22050, 22050, 8000]):
        files.append(tmp_path / f"u{k}.wav")
        _tone(files[-1], rate, 1.0, freqs=(300.0 + 100 * k,))
    voice = speech.Voice("fish", "speech/fish", [str(f) for f in files])
    clips = speech._recorded_voice(voice, None, clip_s=6.0, out=tmp_path / "out",
                                   sample_rate=32000, seed=0)
    assert len(clips) == 1 and clips[0].bandwidth == 11025.0
    # three 1-s utterances with two 0.3-s pauses; the 8 kHz one is left out
    assert clips[0].frames == 3 * 32000 + 2 * 9600
    assert (clips[0].group, clips[0].source, clips[0].synthetic) == ("speech/fish", "fish", False)


def test_balance_bandwidth_matches_shares_across_categories(tmp_path, builder):
    """Half the speech is telephone-band (4 kHz): after balancing, music and sfx have at least
    half their audio band-limited to 4 kHz too (the files really are: no energy above it), no
    clip is widened, and the choice is seeded."""
    rate = 16000
    clips = []
    for cat, bands in (("speech", [4000.0, 4000.0, 8000.0, 8000.0]),
                       ("music_bass", [8000.0] * 4), ("sfx", [8000.0] * 6)):
        for k, band in enumerate(bands):
            path = tmp_path / f"{cat}{k}.wav"
            _tone(path, rate, 1.0, freqs=(500.0, 6000.0) if band > 4000 else (500.0,))
            clips.append(common.Clip(f"{cat}{k}", cat, f"g{cat}{k}", str(path), rate,
                                     bandwidth=band))
    balanced = builder.balance_bandwidth(clips, rate, seed=0)
    for cat in ("speech", "music_bass", "sfx"):
        rows = [c for c in balanced if c.category == cat]
        narrow = [c for c in rows if c.bandwidth <= 4000]
        assert len(narrow) / len(rows) >= 0.5, cat
        assert len(narrow) <= len(rows) // 2 + 1  # no more than needed
        for c in rows:
            x, _ = sf.read(c.path)
            spec = np.abs(np.fft.rfft(x))  # 1 Hz bins
            high = spec[5500:6500].max() / spec[400:600].max()
            assert (high < 1e-2) if c.bandwidth <= 4000 else (high > 0.5), (c.id, high)
    assert [c.bandwidth for c in balanced[:4]] == [4000.0, 4000.0, 8000.0, 8000.0]
    again = builder.balance_bandwidth(clips, rate, seed=0)  # files already limited: same pick
    assert [c.bandwidth for c in again] == [c.bandwidth for c in balanced]


def test_full_band_clips_are_left_alone(tmp_path, builder):
    """At 8 kHz output a 4 kHz band is the full band: nothing is rewritten."""
    path = tmp_path / "a.wav"
    _tone(path, 8000, 0.5)
    before = path.read_bytes()
    clips = [common.Clip("a", "speech", "g", str(path), 4000, bandwidth=4000.0),
             common.Clip("b", "sfx", "h", str(path), 4000, bandwidth=4000.0)]
    out = builder.balance_bandwidth(clips, 8000, seed=0)
    assert [c.bandwidth for c in out] == [4000.0, 4000.0] and path.read_bytes() == before
