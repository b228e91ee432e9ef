"""The demo corpus's music source (``tools/demo_corpus/music.py``) on generated data: the WAD
reader, the MIDI reader and stem split, instrument redraws, and fluidsynth renders."""

import hashlib
import io
import struct
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from demo_corpus import music  # noqa: E402

SR = 16000


def _midi(tracks: list[list[mido.Message]], ticks_per_beat: int = 480) -> bytes:
    """A type-1 MIDI file of the given tracks (message times in ticks)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _notes(channel: int, note: int, count: int, every: int = 240, velocity: int = 100):
    """``count`` notes of half the spacing's length, ``every`` ticks apart."""
    out = []
    for _ in range(count):
        out.append(mido.Message("note_on", channel=channel, note=note, velocity=velocity,
                                time=every // 2))
        out.append(mido.Message("note_off", channel=channel, note=note, time=every // 2))
    return out


def _wad(lumps: list[tuple[str, bytes]], ident: bytes = b"IWAD") -> bytes:
    """A WAD: header, lump data, then the directory."""
    body, entries, offset = b"", b"", 12
    for name, data in lumps:
        entries += struct.pack("<ii8s", offset, len(data), name.encode())
        body += data
        offset += len(data)
    return ident + struct.pack("<ii", len(lumps), 12 + len(body)) + body + entries


SONG_A = _midi([_notes(0, 60, 8)])
SONG_B = _midi([_notes(1, 64, 8)])
MUS = b"MUS\x1a" + bytes(20)


def test_wad_reader_lists_lumps_and_keeps_midi_music():
    wad = _wad([("PLAYPAL", bytes(768)), ("D_E1M1", SONG_A), ("D_E1M2", MUS),
                ("D_E1M3", SONG_B), ("MAP01", b"")], ident=b"PWAD")
    lumps = music.wad_lumps(wad)
    assert [name for name, _ in lumps] == ["PLAYPAL", "D_E1M1", "D_E1M2", "D_E1M3", "MAP01"]
    assert lumps[1][1] == SONG_A and lumps[3][1] == SONG_B and lumps[4][1] == b""
    midi, mus = music.wad_midi(wad)
    assert [name for name, _ in midi] == ["D_E1M1", "D_E1M3"]
    assert [data for _, data in midi] == [SONG_A, SONG_B]
    assert mus == 1
    with pytest.raises(ValueError, match="not a WAD"):
        music.wad_lumps(b"RIFF" + bytes(20))
    with pytest.raises(ValueError, match="out of bounds"):
        music.wad_lumps(b"IWAD" + struct.pack("<ii", 5, 12))


def test_song_files_deduplicate_identical_songs_across_wads_and_files(tmp_path, monkeypatch):
    song_c = _midi([_notes(2, 67, 8)])
    (tmp_path / "mids").mkdir()
    (tmp_path / "mids" / "intro.mid").write_bytes(SONG_A)
    (tmp_path / "freedoom1.wad").write_bytes(_wad([("D_E1M1", SONG_A), ("D_E1M2", SONG_B),
                                                   ("D_E1M5", MUS), ("D_E2M6", SONG_B)]))
    (tmp_path / "freedoom2.wad").write_bytes(_wad([("D_RUNNIN", SONG_B), ("D_STALKS", song_c),
                                                   ("DEMO1", b"\x01\x02")]))
    monkeypatch.setattr(music, "MIDI_GLOBS", {"game": str(tmp_path / "mids" / "*.mid")})
    monkeypatch.setattr(music, "WAD_GLOB", str(tmp_path / "freedoom*.wad"))
    songs, counts = music.song_files()
    assert [s.name for s in songs] == ["game/intro", "freedoom1/D_E1M2", "freedoom2/D_STALKS"]
    assert [hashlib.sha1(s.data).digest() for s in songs] == [
        hashlib.sha1(d).digest() for d in (SONG_A, SONG_B, song_c)]
    assert counts == {"game": 1, "freedoom1": 1, "freedoom2": 1, "duplicates": 3,
                      "mus_skipped": 1}


def _band_song() -> bytes:
    """Drums (ch 10), a bass (ch 2, program 33), a piano (ch 1, program 0 by default), a
    channel whose bass program comes after its first note (ch 4: other), a tempo change."""
    conductor = [mido.MetaMessage("set_tempo", tempo=500000, time=0),
                 mido.MetaMessage("key_signature", key="C", time=0),
                 mido.MetaMessage("set_tempo", tempo=250000, time=960)]  # 240 bpm from 1 s
    drums = [mido.Message("program_change", channel=9, program=25, time=0)] + _notes(9, 36, 16)
    bass = [mido.Message("program_change", channel=1, program=33, time=0)] + _notes(1, 40, 16)
    piano = _notes(0, 72, 16)
    late = _notes(3, 50, 2) + [mido.Message("program_change", channel=3, program=34, time=0)]
    late += _notes(3, 52, 14)
    return _midi([conductor, drums, bass, piano, late])


def test_midi_reader_matches_mido_and_splits_stems_by_channel():
    data = _band_song()
    events = music.parse_midi(data)
    reference = []
    t = 0.0
    for msg in mido.MidiFile(file=io.BytesIO(data)):
        t += msg.time
        if not msg.is_meta:
            reference.append((t, bytes(msg.bytes())))
    assert len(events.time) == len(reference)
    np.testing.assert_allclose(events.time, [r[0] for r in reference], atol=1e-9)
    assert [bytes([s, a, b][:len(r[1])]) for s, a, b, r in zip(
        events.status.tolist(), events.data1.tolist(), events.data2.tolist(), reference)] == [
        r[1] for r in reference]
    # 16 notes 240 ticks apart: the first 4 at 120 bpm (0.25 s), the rest at 240 bpm (0.125 s)
    on = events.onsets() & (events.channel == 9)
    np.testing.assert_allclose(events.time[on][:6], [0.125, 0.375, 0.625, 0.875, 1.0625,
                                                     1.1875])
    assert music.split_channels(events) == {"music_drums": [9], "music_bass": [1],
                                            "music_other": [0, 3]}
    windows = music.pick_windows(events, music.split_channels(events), 1.0, count=2)
    assert windows == [(0.0, 3), (1.0, 3)]


def test_midi_reader_survives_running_status_truncation_and_bad_meta():
    track = bytes([0, 0xFF, 0x59, 0x02, 0x01, 0xFF,  # key signature mido rejects (mode 255)
                   0, 0x91, 40, 90, 0x60, 40, 0,  # note on, then off by running status
                   0, 0xF0, 0x02, 0x7E, 0xF7,  # sysex
                   0, 0x91, 43])  # truncated: no velocity
    data = (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96)
            + b"MTrk" + struct.pack(">I", len(track)) + track)
    events = music.parse_midi(data)
    assert events.status.tolist() == [0x91, 0x91]
    assert events.data1.tolist() == [40, 40] and events.data2.tolist() == [90, 0]
    np.testing.assert_allclose(events.time, [0.0, 0.5])
    with pytest.raises(ValueError, match="MThd"):
        music.parse_midi(b"RIFF" + bytes(30))


def test_program_redraws_stay_within_their_family():
    timbre = music.draw_timbre(0, "test/song")
    timbre.vary = True
    for channel in range(16):
        for program in range(128):
            new = timbre.melodic_program(channel, program)
            assert new // 8 == program // 8
            if program // 8 in music.FIXED_FAMILIES:
                assert new == program
    assert {timbre.melodic_program(ch, 33) for ch in range(16)} <= set(range(32, 40))
    assert len({timbre.melodic_program(ch, 33) for ch in range(16)}) > 2  # they do vary
    assert timbre.drum_program(9, 0) == timbre.kit and timbre.kit in music.GM_KIT_PROGRAMS
    timbre.vary = False
    assert [timbre.melodic_program(1, p) for p in (0, 33, 127)] == [0, 33, 127]
    assert [timbre.drum_program(9, p) for p in (25, 3)] == [25, 0]
    # deterministic per (seed, song), different across songs
    again = music.draw_timbre(0, "test/song")
    assert again.banks == music.draw_timbre(0, "test/song").banks
    assert (again.offsets == music.draw_timbre(0, "test/song").offsets).all()
    draws = [music.draw_timbre(0, f"test/{k}") for k in range(40)]
    assert {d.banks["music_drums"] for d in draws} == set(music.DRUM_KITS)
    assert {d.banks["music_other"] for d in draws} == set(music.GM_BANKS)
    assert 5 < sum(d.vary for d in draws) < 35


def test_stem_midi_keeps_its_channels_in_the_excerpt_and_maps_programs():
    events = music.parse_midi(_band_song())
    timbre = music.draw_timbre(3, "test/band")
    timbre.vary = True
    part = music.parse_midi(music.stem_midi(events, [0, 3], 1.0, 1.0, timbre.melodic_program))
    assert set(part.channel.tolist()) == {0, 3}
    programs = part.status & 0xF0 == music.PROGRAM
    # ch 3 switched to program 34 before the excerpt: it starts there (redrawn in the family)
    assert part.channel[programs].tolist() == [0, 3]
    assert part.data1[programs].tolist() == [timbre.melodic_program(0, 0),
                                             timbre.melodic_program(3, 34)]
    assert 32 <= part.data1[programs][1] < 40
    on = part.onsets()
    src = events.onsets() & np.isin(events.channel, [0, 3]) & (events.time >= 1.0) & (
        events.time < 2.0)
    np.testing.assert_allclose(part.time[on], events.time[src] - 1.0, atol=1e-3)
    assert part.time.max() == pytest.approx(1.0)  # all notes off at the excerpt's end
    # AVL kits: the drums move to channel 1 (program 0), kick 35 -> 36, high notes dropped
    drums = music.parse_midi(_midi([_notes(9, 35, 4) + _notes(9, 64, 4) + _notes(9, 42, 4)]))
    kit = music.parse_midi(music.stem_midi(music.acoustic_kit_events(drums), [9], 0.0, 3.0,
                                           lambda ch, p: 0, {music.DRUM_CHANNEL: 0}))
    assert set(kit.channel.tolist()) == {0}
    assert kit.data1[kit.onsets()].tolist() == [36] * 4 + [42] * 4
    assert music.fits_acoustic_kit(drums, [9], 0.0, 10.0) is False  # 8 of 12 notes fit
    assert music.fits_acoustic_kit(drums, [9], 2.0, 10.0) is True  # 4 of 4 from 2 s on


def test_render_midi_gives_the_requested_length_and_sound():
    data = _midi([[mido.Message("program_change", channel=0, program=0, time=0)]
                  + _notes(0, 69, 2, every=480)])  # two 0.25 s A4 notes, 0.5 s apart
    x = music.render_midi(data, music.find(music.TIMGM6MB)[0], 1.5, SR)
    assert x.dtype == np.float32 and x.shape == (int(1.5 * SR),)
    assert music.rms_db(x[: SR // 4 - 80]) < -80.0  # silent until the first note (0.25 s)
    playing = x[SR // 4: SR]  # [12000] both notes
    assert music.rms_db(playing) > -40.0
    peak_hz = np.argmax(np.abs(np.fft.rfft(playing))) * SR / len(playing)
    assert abs(peak_hz - 440.0) < 4.0  # the note's pitch
    assert music.rms_db(x[int(1.3 * SR):]) < music.rms_db(playing) - 20.0  # released


def test_render_song_writes_one_group_with_a_stem_per_category(tmp_path):
    events = music.parse_midi(_band_song())
    channels = music.split_channels(events)
    song = music.Song("test/band", events, channels, [(0.0, 3), (1.0, 3)])
    clips = music.render_song(song, 1.0, tmp_path, SR, seed=0)
    assert sorted(c.id for c in clips) == sorted(
        [f"{stem}-test_band" for stem in music.STEMS]
        + [f"{stem}-test_band-1" for stem in music.STEMS])
    assert {c.group for c in clips} == {"music/test_band"}
    assert {c.source for c in clips} == {"test/band"}
    for clip in clips:
        assert clip.category == clip.id.split("-")[0] and clip.frames == SR
        x, rate = sf.read(clip.path)
        assert rate == SR and len(x) == SR and music.rms_db(x) > music.SILENCE_DB


def test_every_drum_kit_plays_a_gm_drum_part():
    drums = music.parse_midi(_midi([_notes(9, 35, 4) + _notes(9, 38, 4) + _notes(9, 42, 4)]))
    for name, bank in music.DRUM_KITS.items():
        if name in music.MELODIC_KITS:
            midi = music.stem_midi(music.acoustic_kit_events(drums), [9], 0.0, 3.0,
                                   lambda ch, p: 0, {music.DRUM_CHANNEL: 0})
        else:
            midi = music.stem_midi(drums, [9], 0.0, 3.0)
        x = music.render_midi(midi, music.find(bank)[0], 3.0, SR)  # [48000]
        # kick (35, played as 36 by the AVL kits), snare, hi-hat: each half second is heard
        levels = [music.rms_db(part) for part in np.split(x, 6)]
        assert min(levels) > -55.0, (name, levels)


def test_tiers_and_requirements():
    assert set(music.TIERS) == {"small", "full", "large"}
    assert music.TIERS["small"]["songs"] == 3 and music.TIERS["full"]["songs"] >= 100
    assert music.TIERS["large"]["songs"] is None and music.TIERS["large"]["excerpts"] == 2
    packages = [package for package, _ in music.REQUIREMENTS]
    assert {"fluidsynth", "timgm6mb-soundfont", "fluid-soundfont-gm", "avldrums.lv2-soundfont",
            "openttd-openmsx", "simutrans-data", "planetblupi-music-midi",
            "freedoom"} == set(packages)
