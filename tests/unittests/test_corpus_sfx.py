"""Sound events of the demo corpus (``tools/demo_corpus/sfx.py``): groups, exclusions, selection
and the written clips, on small generated files."""

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from demo_corpus import sfx  # noqa: E402


def test_numbered_variants_share_a_group():
    assert sfx.group_of("minetest", "/a/default_dig_cracky.1.ogg") == \
        "sfx/minetest_default_dig_cracky"
    assert sfx.group_of("minetest", "/a/default_dig_cracky.3.ogg") == \
        "sfx/minetest_default_dig_cracky"
    assert sfx.group_of("lincity", "/a/Blacksmith2.wav") == "sfx/lincity_blacksmith"
    assert sfx.group_of("hedgewars", "/a/Droplet3.ogg") == "sfx/hedgewars_droplet"
    assert sfx.group_of("netpanzer", "/a/expl_6.wav") == "sfx/netpanzer_expl"
    assert sfx.group_of("fillets", "/a/sp-bubles_00.ogg") == "sfx/fillets_sp_bubles"
    assert sfx.group_of("sound_icons", "/a/cembalo-10.wav") == "sfx/sound_icons_cembalo"
    # another sound, a name that is only a number, files numbered without being variants
    assert sfx.group_of("minetest", "/a/default_dig_crumbly.ogg") == \
        "sfx/minetest_default_dig_crumbly"
    assert sfx.group_of("dink", "/a/106.ogg") == "sfx/dink_106"
    assert sfx.group_of("colobot", "/a/sound012.wav", variants=False) == "sfx/colobot_sound012"


def test_clip_ids_are_named_below_the_source_base():
    source = sfx.Source("wesnoth", "wesnoth-1.16-data", "/usr/share/games/wesnoth/1.16", ())
    path = "/usr/share/games/wesnoth/1.16/data/core/sounds/bat-hit-2.wav"
    assert sfx.clip_id(source, path) == "sfx-wesnoth-data_core_sounds_bat_hit_2_wav"
    unpacked = str(sfx.deb_root()) + path  # the same file unpacked instead of installed
    assert sfx.clip_id(source, unpacked) == sfx.clip_id(source, path)


def test_speech_and_music_folders_are_excluded():
    source = sfx.Source("hw", "hedgewars-data", "/d", ())
    assert sfx.is_excluded(source, "/d/voices/Default/Hello.ogg")
    assert sfx.is_excluded(source, "/d/Voice/x.ogg")
    assert sfx.is_excluded(source, "/d/music/main.ogg")
    assert sfx.is_excluded(source, "/d/speech/intro.ogg")
    assert sfx.is_excluded(source, "/d/a/loops/amen.wav")
    assert not sfx.is_excluded(source, "/d/explosion.ogg")
    assert not sfx.is_excluded(source, "/d/musicbox.ogg")  # a folder name, not a word in a file


@pytest.mark.parametrize(("name", "path", "excluded"), [
    ("hedgewars", "/usr/share/games/hedgewars/Data/Sounds/3E.ogg", True),  # piano note
    ("hedgewars", "/usr/share/games/hedgewars/Data/Sounds/ride_of_the_valkyries.ogg", True),
    ("hedgewars", "/usr/share/games/hedgewars/Data/Sounds/explosion.ogg", False),
    ("freedesktop", "/usr/share/sounds/freedesktop/stereo/audio-channel-front-left.oga", True),
    ("freedesktop", "/usr/share/sounds/freedesktop/stereo/bell.oga", False),
    ("megaglest", "/usr/share/games/megaglest/techs/megapack/factions/tech/units/swordman/"
                  "sounds/swordman_ack3.wav", True),
    ("megaglest", "/usr/share/games/megaglest/techs/megapack/factions/tech/units/swordman/"
                  "sounds/swordman_select1.wav", True),
    ("megaglest", "/usr/share/games/megaglest/techs/megapack/factions/tech/units/swordman/"
                  "sounds/swordman_attack12.wav", False),
    ("megaglest", "/usr/share/games/megaglest/techs/megapack/factions/tech/music/music_tech.ogg",
     True),
    ("sonicpi", "/usr/share/sonic-pi/samples/loop_amen.flac", True),
    ("sonicpi", "/usr/share/sonic-pi/samples/misc_crow.flac", False),
    ("qabcs", "/usr/share/qabcs/abcs/all/noises/violin.ogg", True),
    ("qabcs", "/usr/share/qabcs/abcs/all/noises/cow.ogg", False),
    ("lbreakout2", "/usr/share/games/lbreakout2/sounds/excellent.wav", True),
    ("netpanzer", "/usr/share/games/netpanzer/sound/move_yessir.wav", True),
    ("netpanzer", "/usr/share/games/netpanzer/sound/expl_1.wav", False),
    ("wesnoth", "/usr/share/games/wesnoth/1.16/data/core/sounds/fanfare-short.wav", True),
    ("wesnoth", "/usr/share/games/wesnoth/1.16/data/core/sounds/axe.ogg", False),
    ("tuxpaint_stamps", "/usr/share/tuxpaint/stamps/animals/birds/owl_desc_fr.ogg", True),
    ("tuxpaint_stamps", "/usr/share/tuxpaint/stamps/symbols/math/7_en_GB.ogg", True),
    ("tuxpaint_stamps", "/usr/share/tuxpaint/stamps/hobbies/music/string/cello.ogg", True),
    ("tuxpaint_stamps", "/usr/share/tuxpaint/stamps/animals/birds/owl.ogg", False),
])
def test_source_exclusions(name, path, excluded):
    assert sfx.is_excluded(sfx._source(name), path) is excluded


def test_requirements_and_tiers():
    packages = [p for p, _ in sfx.REQUIREMENTS]
    assert len(packages) == len(set(packages)) == len(sfx.SOURCES)
    assert all(probe.startswith("/") and "**" not in probe for _, probe in sfx.REQUIREMENTS)
    assert ("hedgewars-data", "/usr/share/games/hedgewars/Data/Sounds/*.ogg") in sfx.REQUIREMENTS
    assert set(sfx.TIERS) == {"small", "full", "large"}
    assert sfx.TIERS["small"]["files"] == 6
    assert sfx.TIERS["full"]["max_s"] == 10.0


def _write_tone(path: Path, rate: int, seconds: float, amplitude: float = 0.3,
                freq: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


@pytest.fixture
def fake_sources(tmp_path, monkeypatch):
    """Two sources in a tmp folder: 'boom' (5 listed files, 6 left out) and 'beep' (3, 1 copy)."""
    monkeypatch.setenv("GASS_CACHE", str(tmp_path / "cache"))  # no unpacked packages
    boom, beep = tmp_path / "boom", tmp_path / "beep"
    _write_tone(boom / "hit1.wav", 11025, 0.4)
    _write_tone(boom / "hit2.wav", 11025, 0.4, freq=550.0)
    _write_tone(boom / "crash.wav", 44100, 12.0)  # cut to the tier's length
    _write_tone(boom / "sub" / "creak.ogg", 32000, 0.3)
    _write_tone(boom / "quiet.wav", 22050, 0.5, amplitude=1e-4)  # skipped when written (-83 dB)
    _write_tone(boom / "click.wav", 22050, 0.05)  # too short
    _write_tone(boom / "tune.wav", 8000, 25.0)  # too long: a tune
    _write_tone(boom / "lofi.wav", 4000, 0.5)  # too narrow
    _write_tone(boom / "voices" / "hello.wav", 22050, 0.5)  # a speech folder
    _write_tone(boom / "Music" / "theme.ogg", 22050, 0.5)  # a music folder
    (boom / "broken.wav").write_bytes(b"not audio")
    _write_tone(beep / "beep.wav", 8000, 0.4)
    _write_tone(beep / "same_beep.wav", 8000, 0.4)  # the same bytes as beep.wav: dropped
    _write_tone(beep / "boop.wav", 8000, 0.4, freq=880.0)
    _write_tone(beep / "bip.wav", 8000, 0.4, freq=990.0)
    sources = (
        sfx.Source("boom", "boom-data", str(boom), (f"{boom}/**/*.wav", f"{boom}/**/*.ogg")),
        sfx.Source("beep", "beep-data", str(beep), (f"{beep}/*.wav",)),
    )
    monkeypatch.setattr(sfx, "SOURCES", sources)
    monkeypatch.setitem(sfx.TIERS, "small", {"files": 6, "max_s": 4.0})
    monkeypatch.setitem(sfx.TIERS, "every", {"files": None, "max_s": 4.0})
    return boom, beep


def test_list_files_is_deterministic_and_mixes_sources(fake_sources):
    boom, beep = fake_sources
    small = sfx.list_files("small", 0)
    assert small == sfx.list_files("small", 0)
    assert [name for name, _ in small] == ["boom", "beep", "boom", "beep", "boom", "beep"]
    everything = sfx.list_files("every", 0)
    assert sorted(p for _, p in everything) == sorted(
        [str(boom / n) for n in ("crash.wav", "hit1.wav", "hit2.wav", "quiet.wav")]
        + [str(boom / "sub" / "creak.ogg")]
        + [str(beep / n) for n in ("beep.wav", "bip.wav", "boop.wav")])
    assert set(small) < set(everything)
    assert [name for name, _ in everything][6:] == ["boom", "boom"]  # boom's last files
    orders = {tuple(sfx.list_files("every", seed)) for seed in range(8)}
    assert len(orders) > 1  # the seed picks the order


def test_job_writes_clips(fake_sources, tmp_path):
    boom, beep = fake_sources
    out = tmp_path / "corpus"
    jobs = sfx.jobs("every", out, 16000, 0)
    assert len(jobs) == 1  # 8 files: one batch
    clips = {Path(c.source).name: c for c in jobs[0]()}
    assert sorted(clips) == ["beep.wav", "bip.wav", "boop.wav", "crash.wav", "creak.ogg",
                             "hit1.wav", "hit2.wav"]  # quiet.wav: too quiet
    crash, hit, creak, beep_clip = (clips[n] for n in ("crash.wav", "hit1.wav", "creak.ogg",
                                                       "beep.wav"))
    assert crash.frames == 4 * 16000  # cut to the tier's 4 s
    assert hit.frames == 6400 and creak.frames == 4800 and beep_clip.frames == 6400
    assert hit.group == clips["hit2.wav"].group == "sfx/boom_hit"
    assert crash.group == "sfx/boom_crash" and beep_clip.group == "sfx/beep_beep"
    assert crash.id == "sfx-boom-crash_wav" and creak.id == "sfx-boom-sub_creak_ogg"
    assert hit.bandwidth == 5512.5  # half the native 11,025 Hz
    assert beep_clip.bandwidth == 4000.0
    assert crash.bandwidth == creak.bandwidth == 8000.0  # capped at half the output rate
    assert crash.category == "sfx" and crash.source == str(boom / "crash.wav")
    assert beep_clip.source == str(beep / "beep.wav")
    data, rate = sf.read(crash.path)
    assert rate == 16000 and len(data) == crash.frames
    assert np.abs(data).max() == pytest.approx(0.3, abs=0.01)
    for clip in clips.values():
        assert Path(clip.path).parent == out / "wav" / "sfx" and Path(clip.path).is_file()
    assert len({c.id for c in clips.values()}) == len(clips)
