"""Builds the real-audio demo corpus from Debian packages, offline and reproducibly.

No public separation dataset can be downloaded here, but Debian packages carry real recordings.
This tool turns them into a small multi-domain corpus for the GASS mixer:

* **speech** (one group per speaker): the two fish of Fish Fillets NG in Czech and in Dutch
  (``fillets-ng-data-cs``/``-nl``, utterances concatenated into passages), the Asterisk prompts
  voice (``asterisk-core-sounds-en-wav``), four ``flite`` voices and six ``espeak-ng`` voices
  reading the sentences below;
* **music stems** (one group per song): MIDI files of ``openttd-openmsx`` and ``simutrans-data``
  split by channel with ``mido`` and rendered with ``fluidsynth`` and the ``timgm6mb-soundfont``
  General MIDI bank: ``music_drums`` (channel 10), ``music_bass`` (channels whose program is a GM
  bass, 33-40) and ``music_other`` (the rest), excerpts of the same window of the song;
* **sound events** (``sfx``, one group per file, numbered variants of one sound together):
  ``qabcs-data`` noises, ``minetest-data``, ``sonic-pi-samples``, ``sound-theme-freedesktop``.

Every clip is downmixed, resampled to one rate with torchaudio (16 kHz by default) and written as
16-bit wav; the clips are split train/valid/test by group (no speaker, song or file in two
splits) and listed in one SpeechBrain-style manifest per split (``train.csv``, ``valid.csv``,
``test.csv``; see ``gass_modules.dataio.manifest``). The output lives under
``${GASS_CACHE:-~/.cache/gass}/demo_corpus/<subset>-<rate>`` (or ``--out``) with a ``corpus.json``
holding a content key (this tool's source, the options, the sizes and dates of every input file
and program): a second run with the same key returns at once.

``--subset full`` (default) gives ≈ 60 minutes of source audio in 1-2 minutes on 2 cores;
``--subset small`` ≈ 2 minutes (every category in every split) in a few seconds, for tests.

Usage::

    .venv/bin/python tools/build_demo_corpus.py [--subset small|full] [--out DIR]
        [--sample-rate 16000] [--seed 0] [--workers N] [--force]

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gass_modules.dataio.manifest import Manifest
from gass_modules.dataio.mixer import resample, rms_db

SPLITS = ("train", "valid", "test")
FRACTIONS = (0.7, 0.15, 0.15)
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FILLETS = "/usr/share/games/fillets-ng/sound"
ASTERISK = "/usr/share/asterisk/sounds/en_US_f_Allison"
MIDI_DIRS = ("/usr/share/games/openttd/baseset/openmsx", "/usr/share/games/simutrans/music")
SFX_GLOBS = {
    "qabcs": "/usr/share/qabcs/abcs/all/noises/*.ogg",
    "minetest": "/usr/share/games/minetest/games/*/mods/*/sounds/*.ogg",
    "sonicpi": "/usr/share/sonic-pi/samples/*.flac",
    "freedesktop": "/usr/share/sounds/freedesktop/stereo/*.oga",
}
# What each input needs: (Debian package, a glob or program that it installs).
REQUIREMENTS = (
    ("fillets-ng-data-cs", f"{FILLETS}/*/cs/*.ogg"),
    ("fillets-ng-data-nl", f"{FILLETS}/*/nl/*.ogg"),
    ("asterisk-core-sounds-en-wav", f"{ASTERISK}/*.wav"),
    ("flite", "bin:flite"),
    ("espeak-ng", "bin:espeak-ng"),
    ("fluidsynth", "bin:fluidsynth"),
    ("timgm6mb-soundfont", SOUNDFONT),
    ("openttd-openmsx", f"{MIDI_DIRS[0]}/*.mid"),
    ("simutrans-data", f"{MIDI_DIRS[1]}/*.mid"),
    ("qabcs-data", SFX_GLOBS["qabcs"]),
    ("minetest-data", SFX_GLOBS["minetest"]),
    ("sonic-pi-samples", SFX_GLOBS["sonicpi"]),
    ("sound-theme-freedesktop", SFX_GLOBS["freedesktop"]),
)
FLITE_VOICES = ("slt", "awb", "rms", "kal16")
ESPEAK_VOICES = ("en-us", "en-gb+f3", "en-gb-scotland", "en-029+f2", "en-gb-x-rp+m3",
                 "en-us+f4")
GM_BASS_PROGRAMS = range(32, 40)  # GM programs 33-40 (0-based 32-39): the bass family
DRUM_CHANNEL = 9  # MIDI channel 10
STEMS = ("music_drums", "music_bass", "music_other")

# What each subset takes (seconds of audio unless said otherwise).
SUBSETS = {
    "small": {"fillets_s": 7.0, "fillets_speakers": ("cs_m", "cs_v", "nl_m", "nl_v"),
              "asterisk_s": 0.0, "flite_voices": 1, "espeak_voices": 1, "tts_clips": 1,
              "songs": 3, "excerpt_s": 6.0, "sfx_files": 6, "sfx_max_s": 4.0, "clip_s": 7.0},
    "full": {"fillets_s": 120.0, "fillets_speakers": ("cs_m", "cs_v", "nl_m", "nl_v"),
             "asterisk_s": 90.0, "flite_voices": 4, "espeak_voices": 6, "tts_clips": 6,
             "songs": 30, "excerpt_s": 14.0, "sfx_files": None, "sfx_max_s": 10.0,
             "clip_s": 10.0},
}

# Sentences the synthetic voices read (each voice reads a different rotation of them).
SENTENCES = (
    "The ferry leaves the harbour at seven, so pack your bags tonight.",
    "Could you pass me the salt, and the pepper too, if it is not too far?",
    "Forty-two people signed up for the chess tournament this spring.",
    "Rain is expected in the north, while the south stays dry and warm.",
    "My grandmother kept bees behind the barn for nearly thirty years.",
    "Turn left at the bakery, then walk straight until you see the fountain.",
    "The committee will publish its report on Thursday afternoon.",
    "Nobody expected the old clock tower to chime again after the storm.",
    "Please remember to water the tomatoes while I am away.",
    "The library closes early on public holidays and on Sundays.",
    "She tuned the violin carefully before the rehearsal began.",
    "A small boat drifted slowly past the lighthouse at dawn.",
    "The recipe needs three eggs, a cup of flour and a pinch of cinnamon.",
    "Train number nine hundred is delayed by approximately fifteen minutes.",
    "He repaired the bicycle chain with a paperclip and a lot of patience.",
    "Frost covered the windows, and the whole street looked like a painting.",
    "The museum's new wing displays fossils found in the nearby hills.",
    "Would you rather climb a mountain or sail across a quiet lake?",
    "Our neighbour's dog barks whenever the postman rings the bell.",
    "The experiment failed twice before the students found the loose wire.",
    "Hot soup tastes better on a cold and windy evening.",
    "Let us meet at the corner café at half past ten.",
    "The pilot announced that we would land ahead of schedule.",
    "Every autumn the geese fly south in long, noisy lines.",
    "The marathon route passes the river, the castle and the old market.",
    "I left my umbrella on the bus, and of course it started to pour.",
    "Fresh bread from the oven filled the kitchen with a wonderful smell.",
    "The orchestra played the final movement faster than ever before.",
    "Please speak clearly after the tone and leave a short message.",
    "Seven brave mice crossed the kitchen floor in complete silence.",
    "The garden gate squeaks, so somebody should oil the hinges.",
    "Scientists measured the temperature of the lake every single hour.",
    "Tomorrow's lecture covers volcanoes, earthquakes and ocean currents.",
    "The twins painted the fence blue, then argued about the colour.",
    "A gentle breeze carried the sound of church bells across the valley.",
    "Keep the receipt in case the shoes do not fit.",
    "The kettle whistled just as the phone began to ring.",
    "Winter evenings are perfect for long books and warm blankets.",
    "The mechanic said the engine would be ready by Friday.",
    "Children laughed as the clown juggled five oranges at once.",
    "Bright lanterns lined the path leading down to the beach.",
    "Our team finally solved the puzzle after three long hours.",
    "The baker wakes at four to prepare the morning loaves.",
    "Quiet please, the concert is about to begin.",
    "Thick fog rolled over the fields and hid the distant farmhouses.",
    "The captain checked the map once more before raising the anchor.",
    "Strawberries are sweetest at the very beginning of summer.",
    "She whispered the answer so that only her brother could hear it.",
)


class MissingPackagesError(RuntimeError):
    """Raised when Debian packages (or the ``mido`` module) the corpus needs are missing."""


def missing_packages() -> list[str]:
    """Debian packages whose files or programs are absent on this machine.

    Returns
    -------
    list of str
        Package names, in ``tools/debian-packages.txt`` order (empty when all are present).
    """
    missing = []
    for package, probe in REQUIREMENTS:
        found = shutil.which(probe[4:]) if probe.startswith("bin:") else glob(probe)
        if not found:
            missing.append(package)
    return missing


def check_requirements() -> None:
    """Fails with a message naming every missing Debian package (and ``mido``).

    Raises
    ------
    MissingPackagesError
        When anything is missing.
    """
    problems = []
    missing = missing_packages()
    if missing:
        problems.append(
            f"missing Debian packages: {' '.join(missing)}. Install them with\n"
            f"  sudo apt-get install -y {' '.join(missing)}\n"
            "or run `bash tools/setup_env.sh`, which installs tools/debian-packages.txt."
        )
    try:
        import mido  # noqa: F401
    except ImportError:
        problems.append("missing Python package mido (MIDI parsing): "
                        "`.venv/bin/python -m pip install -r requirements.txt`.")
    if problems:
        raise MissingPackagesError("build_demo_corpus: " + "\n".join(problems))


# ------------------------------------------------------------------------------------ audio io
@dataclass
class Clip:
    """One written clip: what the manifest lists."""

    id: str
    category: str
    group: str
    path: str
    frames: int


def load_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decodes a file, downmixes it and resamples it (torchaudio) to ``sample_rate``.

    Arguments
    ---------
    path : str or Path
        Any file libsndfile reads.
    sample_rate : int
        Output rate in Hz.

    Returns
    -------
    numpy.ndarray
        ``[T]`` float32 samples.
    """
    data, rate = sf.read(path, dtype="float32", always_2d=True)  # [T, C]
    x = data.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        x = resample(torch.from_numpy(np.ascontiguousarray(x)), rate, sample_rate).numpy()
    return x


def _write(out: Path, clip_id: str, category: str, group: str, x: np.ndarray,
           sample_rate: int) -> Clip:
    """Writes one clip as 16-bit wav (scaled down if it would clip)."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0.99:
        x = x * np.float32(0.99 / peak)
    path = out / "wav" / category / f"{clip_id}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sample_rate, subtype="PCM_16")
    return Clip(clip_id, category, group, str(path), len(x))


def _passages(utterances: list[np.ndarray], sample_rate: int, clip_s: float,
              gap_s: float = 0.3) -> list[np.ndarray]:
    """Concatenates utterances (with short pauses) into passages of about ``clip_s`` seconds."""
    gap = np.zeros(int(gap_s * sample_rate), dtype=np.float32)
    out, current, length = [], [], 0
    for u in utterances:
        current += [u, gap]
        length += len(u) + len(gap)
        if length >= clip_s * sample_rate:
            out.append(np.concatenate(current[:-1]))
            current, length = [], 0
    if current and length >= 0.5 * clip_s * sample_rate:
        out.append(np.concatenate(current[:-1]))
    return out


def _rng(seed: int, name: str) -> np.random.Generator:
    """A generator per job, stable across runs and job orders."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


# ------------------------------------------------------------------------------------ speech
def _recorded_speaker(name: str, files: list[str], budget_s: float, clip_s: float, out: Path,
                      sample_rate: int, seed: int) -> list[Clip]:
    """Passages of one recorded speaker: shuffled utterances until ``budget_s`` seconds."""
    rng = _rng(seed, name)
    utterances, total = [], 0.0
    for i in rng.permutation(len(files)):
        x = load_mono(files[i], sample_rate)
        if rms_db(x) < -50.0:
            continue
        utterances.append(x)
        total += len(x) / sample_rate
        if total >= budget_s:
            break
    return [_write(out, f"speech-{name}-{k:03d}", "speech", f"speech/{name}", p, sample_rate)
            for k, p in enumerate(_passages(utterances, sample_rate, clip_s))]


def _tts_speaker(engine: str, voice: str, index: int, num_clips: int, out: Path,
                 sample_rate: int) -> list[Clip]:
    """Clips of one synthetic voice, each reading three sentences (a rotation per voice)."""
    name = f"{engine}_{re.sub(r'[^A-Za-z0-9]+', '_', voice)}"
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(num_clips):
            first = (7 * index + 3 * k) % len(SENTENCES)
            text = " ".join(SENTENCES[(first + j) % len(SENTENCES)] for j in range(3))
            wav = Path(tmp) / f"{k}.wav"
            if engine == "flite":
                cmd = ["flite", "-voice", voice, "-t", text, "-o", str(wav)]
            else:
                cmd = ["espeak-ng", "-v", voice, "-s", str(150 + 10 * (index % 3)), "-w",
                       str(wav), text]
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            x = load_mono(wav, sample_rate)
            clips.append(_write(out, f"speech-{name}-{k:03d}", "speech", f"speech/{name}", x,
                                sample_rate))
    return clips


# ------------------------------------------------------------------------------------ music
@dataclass
class Song:
    """A MIDI file analysed for stem rendering."""

    name: str
    path: str
    channels: dict[str, list[int]]  # stem -> MIDI channels (0-based)
    start: float  # excerpt start (s)
    stems_in_window: int  # stems with notes in the excerpt


def analyse_song(path: str, excerpt_s: float) -> Song | None:
    """Splits a song's channels into stems and picks the excerpt where most stems play.

    Arguments
    ---------
    path : str
        A standard MIDI file.
    excerpt_s : float
        Excerpt length in seconds.

    Returns
    -------
    Song or None
        None when the file does not parse.
    """
    import mido

    try:
        midi = mido.MidiFile(path, clip=True)
        program: dict[int, int] = {}
        first_program: dict[int, int] = {}
        onsets: dict[int, list[float]] = {}
        t = 0.0
        for msg in midi:  # merged tracks, msg.time in seconds (tempo map applied)
            t += msg.time
            if msg.type == "program_change":
                program[msg.channel] = msg.program
            elif msg.type == "note_on" and msg.velocity > 0:
                first_program.setdefault(msg.channel, program.get(msg.channel, 0))
                onsets.setdefault(msg.channel, []).append(t)
    except Exception:  # malformed files exist in the wild; they are skipped
        return None
    channels = {stem: [] for stem in STEMS}
    for ch in sorted(onsets):
        if ch == DRUM_CHANNEL:
            channels["music_drums"].append(ch)
        elif first_program[ch] in GM_BASS_PROGRAMS:
            channels["music_bass"].append(ch)
        else:
            channels["music_other"].append(ch)
    length = max((max(v) for v in onsets.values()), default=0.0)
    best = (-1, 0.0)
    for start in np.arange(0.0, max(length - excerpt_s, 0.0) + 1e-9, 1.0):
        score = 0
        for chans in channels.values():
            n = sum(int(np.sum((np.asarray(onsets[c]) >= start)
                               & (np.asarray(onsets[c]) < start + excerpt_s))) for c in chans)
            score += 1 if n >= 4 else 0
        if score > best[0]:
            best = (score, float(start))
    return Song(Path(path).stem, path, channels, best[1], max(best[0], 0))


def _stem_midi(song: Song, stem: str, excerpt_s: float, dest: Path) -> None:
    """Writes a type-0 MIDI file holding only one stem's channels within the excerpt.

    Times are converted to seconds through the song's tempo map and written at a fixed tempo
    (120 bpm, 960 ticks per beat), so no tempo event is needed. Controller and program events
    before the excerpt are kept (moved to its start); notes before it are dropped.
    """
    import mido

    keep = set(song.channels[stem])
    end = song.start + excerpt_s
    events = []
    t = 0.0
    for msg in mido.MidiFile(song.path, clip=True):
        t += msg.time
        if t > end:
            break
        if msg.is_meta:
            continue
        if hasattr(msg, "channel") and msg.channel not in keep:
            continue
        if t < song.start and msg.type in ("note_on", "note_off"):
            continue
        events.append((max(t, song.start) - song.start, msg))
    ticks_per_second = 960 * 2  # 120 bpm: 2 beats per second
    track = mido.MidiTrack()
    last = 0
    for when, msg in events:
        tick = int(round(when * ticks_per_second))
        track.append(msg.copy(time=tick - last))
        last = tick
    stop = int(round(excerpt_s * ticks_per_second))
    for ch in sorted(keep):  # all notes off at the end of the excerpt
        track.append(mido.Message("control_change", channel=ch, control=123, value=0,
                                  time=max(stop - last, 0)))
        last = max(stop, last)
    track.append(mido.MetaMessage("end_of_track", time=0))
    out = mido.MidiFile(type=0, ticks_per_beat=960)
    out.tracks.append(track)
    out.save(dest)


def _render_song(song: Song, excerpt_s: float, out: Path, sample_rate: int) -> list[Clip]:
    """Renders each stem of a song with fluidsynth at ``sample_rate``; silent stems dropped."""
    clips = []
    length = int(round(excerpt_s * sample_rate))
    name = re.sub(r"[^A-Za-z0-9]+", "_", song.name).strip("_").lower()
    with tempfile.TemporaryDirectory() as tmp:
        for stem in STEMS:
            if not song.channels[stem]:
                continue
            mid, wav = Path(tmp) / f"{stem}.mid", Path(tmp) / f"{stem}.wav"
            _stem_midi(song, stem, excerpt_s, mid)
            subprocess.run(
                ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6",
                 "-r", str(sample_rate), "-F", str(wav), "-T", "wav", "-O", "s16",
                 SOUNDFONT, str(mid)],
                check=True, capture_output=True, timeout=300,
            )
            x = load_mono(wav, sample_rate)[:length]
            x = np.pad(x, (0, length - len(x)))
            if rms_db(x) < -45.0:
                continue
            clips.append(_write(out, f"{stem}-{name}", stem, f"music/{name}", x, sample_rate))
    return clips


# ------------------------------------------------------------------------------------ sfx
def _sfx_group(source: str, path: str) -> str:
    """Group of a sound file: numbered variants (``dig.1.ogg``, ``dig.2.ogg``) stay together."""
    stem = re.sub(r"[._-]?\d+$", "", Path(path).stem)
    return f"sfx/{source}_{re.sub(r'[^A-Za-z0-9]+', '_', stem).lower()}"


def _sfx_files(limit: int | None, seed: int) -> list[tuple[str, str]]:
    """(source, path) of the sound-event files, a deterministic mix of sources when limited."""
    per_source = []
    for source, pattern in SFX_GLOBS.items():
        files = sorted(glob(pattern))
        if source == "freedesktop":  # these are spoken words ("front left"): not events
            files = [f for f in files if "audio-channel-" not in f]
        order = _rng(seed, source).permutation(len(files))
        per_source.append([(source, files[i]) for i in order])
    interleaved = [f for group in zip(*per_source) for f in group]
    rest = [f for files in per_source for f in files[min(map(len, per_source)):]]
    chosen = interleaved + rest
    return chosen if limit is None else chosen[:limit]


def _sfx_batch(files: list[tuple[str, str]], max_s: float, out: Path,
               sample_rate: int) -> list[Clip]:
    """Decodes, resamples and writes a batch of sound-event files (at most ``max_s`` each)."""
    clips = []
    for source, path in files:
        try:
            x = load_mono(path, sample_rate)[: int(max_s * sample_rate)]
        except (RuntimeError, sf.LibsndfileError):  # an unreadable file is skipped
            continue
        if len(x) < sample_rate // 10 or rms_db(x) < -50.0:
            continue
        clip_id = "sfx-" + _sfx_group(source, path)[4:] + "-" + Path(path).stem.replace(".", "_")
        clips.append(_write(out, clip_id, "sfx", _sfx_group(source, path), x, sample_rate))
    return clips


# ------------------------------------------------------------------------------------ build
def _jobs(subset: str, out: Path, sample_rate: int, seed: int) -> list[Callable[[], list[Clip]]]:
    """The independent jobs of a subset (each returns the clips it wrote)."""
    cfg = SUBSETS[subset]
    jobs: list[Callable[[], list[Clip]]] = []
    for speaker in cfg["fillets_speakers"]:
        lang, fish = speaker.split("_")
        files = sorted(glob(f"{FILLETS}/*/{lang}/*-{fish}-*.ogg"))
        jobs.append(lambda n=f"fillets_{speaker}", f=files: _recorded_speaker(
            n, f, cfg["fillets_s"], cfg["clip_s"], out, sample_rate, seed))
    if cfg["asterisk_s"] > 0:
        files = sorted(f for f in glob(f"{ASTERISK}/**/*.wav", recursive=True)
                       if "/silence/" not in f)
        jobs.append(lambda f=files: _recorded_speaker(
            "asterisk_allison", f, cfg["asterisk_s"], cfg["clip_s"], out, sample_rate, seed))
    for i, voice in enumerate(FLITE_VOICES[: cfg["flite_voices"]]):
        jobs.append(lambda v=voice, i=i: _tts_speaker("flite", v, i, cfg["tts_clips"], out,
                                                      sample_rate))
    for i, voice in enumerate(ESPEAK_VOICES[: cfg["espeak_voices"]]):
        jobs.append(lambda v=voice, i=i: _tts_speaker("espeak", v, i + 10, cfg["tts_clips"],
                                                      out, sample_rate))
    for song in _select_songs(cfg["songs"], cfg["excerpt_s"], seed):
        jobs.append(lambda s=song: _render_song(s, cfg["excerpt_s"], out, sample_rate))
    files = _sfx_files(cfg["sfx_files"], seed)
    for k in range(0, len(files), 16):
        jobs.append(lambda b=files[k:k + 16]: _sfx_batch(b, cfg["sfx_max_s"], out, sample_rate))
    return jobs


def _select_songs(count: int, excerpt_s: float, seed: int) -> list[Song]:
    """``count`` songs in a seeded order, those with all three stems in the excerpt first."""
    paths = sorted(p for d in MIDI_DIRS for p in glob(f"{d}/*.mid"))
    paths = [paths[i] for i in _rng(seed, "songs").permutation(len(paths))]
    chosen, spare = [], []
    for path in paths:
        song = analyse_song(path, excerpt_s)
        if song is None or song.stems_in_window < 2:
            continue
        (chosen if song.stems_in_window == 3 else spare).append(song)
        if len(chosen) >= count:
            break
    return (chosen + spare)[:count]


def _input_fingerprint() -> list:
    """Sizes and dates of every input file and program: part of the content key."""
    items = []
    for _, probe in REQUIREMENTS:
        if probe.startswith("bin:"):
            path = shutil.which(probe[4:])
            paths = [path] if path else []
        else:
            paths = sorted(glob(probe))
        for p in paths:
            st = os.stat(p)
            items.append((p, st.st_size, st.st_mtime_ns))
    return items


def content_key(subset: str, sample_rate: int, seed: int) -> str:
    """The cache key: this tool's source, the options and the input files' fingerprint.

    Arguments
    ---------
    subset : str
        ``small`` or ``full``.
    sample_rate : int
        Output rate in Hz.
    seed : int
        Selection and split seed.

    Returns
    -------
    str
        A sha256 hex digest.
    """
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(json.dumps([subset, sample_rate, seed, FRACTIONS, _input_fingerprint()]).encode())
    return h.hexdigest()


@dataclass
class DemoCorpus:
    """A built corpus: its folder, one manifest csv per split, and whether it was just built."""

    root: Path
    manifests: dict[str, Path]
    built: bool = False


def default_out(subset: str, sample_rate: int) -> Path:
    """``${GASS_CACHE:-~/.cache/gass}/demo_corpus/<subset>-<rate>``.

    Arguments
    ---------
    subset : str
        ``small`` or ``full``.
    sample_rate : int
        Output rate in Hz.

    Returns
    -------
    Path
        The default output folder.
    """
    cache = Path(os.environ.get("GASS_CACHE", Path.home() / ".cache" / "gass"))
    return cache / "demo_corpus" / f"{subset}-{sample_rate}"


def _cached(out: Path, key: str) -> DemoCorpus | None:
    """The corpus at ``out`` if its key matches and every file it lists exists."""
    try:
        meta = json.loads((out / "corpus.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    manifests = {s: out / f"{s}.csv" for s in SPLITS}
    if not all(p.is_file() for p in manifests.values()):
        return None
    if not all((out / rel).is_file() for rel in meta.get("files", [])):
        return None
    return DemoCorpus(out, manifests, built=False)


def build(subset: str = "full", out: str | Path | None = None, sample_rate: int = 16000,
          seed: int = 0, workers: int | None = None, force: bool = False,
          log: Callable[[str], None] = print) -> DemoCorpus:
    """Builds (or returns the cached) demo corpus.

    Arguments
    ---------
    subset : str
        ``full`` (≈ 60 min of audio) or ``small`` (≈ 2 min, for tests).
    out : str or Path, optional
        Output folder; default :func:`default_out`.
    sample_rate : int
        Output rate in Hz.
    seed : int
        Seed of the selections and of the split.
    workers : int, optional
        Parallel jobs (default: CPU count).
    force : bool
        Rebuild even when the cache is valid.
    log : callable
        Progress messages.

    Returns
    -------
    DemoCorpus
        Folder and manifests per split.
    """
    if subset not in SUBSETS:
        raise ValueError(f"expected subset in {sorted(SUBSETS)}, got {subset!r}")
    check_requirements()
    out = Path(out) if out is not None else default_out(subset, sample_rate)
    key = content_key(subset, sample_rate, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent builders (pytest-xdist, CI) wait here
        cached = None if force else _cached(out, key)
        if cached is not None:
            log(f"demo corpus up to date: {out}")
            return cached
        t0 = time.time()
        tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # parallelism comes from the jobs
        try:
            with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
                futures = [pool.submit(job) for job in _jobs(subset, tmp, sample_rate, seed)]
                clips = [c for f in futures for c in f.result()]
        finally:
            torch.set_num_threads(threads)
        clips.sort(key=lambda c: c.id)
        manifest = Manifest([c.id for c in clips], [c.path for c in clips],
                            [c.frames for c in clips], [sample_rate] * len(clips),
                            [1] * len(clips), [c.category for c in clips],
                            [c.group for c in clips])
        parts = manifest.split_by_group(FRACTIONS, seed=seed, names=SPLITS)
        stats = {}
        for split, part in parts.items():
            # paths as $data_root/wav/...: they resolve against the csv's folder once moved
            part.to_csv(tmp / f"{split}.csv", data_root=tmp)
            stats[split] = {c: {"clips": v["clips"], "minutes": round(v["hours"] * 60, 2),
                                "groups": v["groups"]}
                            for c, v in part.summary().items() if v["clips"]}
        files = sorted(str(Path(c.path).relative_to(tmp)) for c in clips)
        meta = {"key": key, "subset": subset, "sample_rate": sample_rate, "seed": seed,
                "minutes": round(float(manifest.durations.sum()) / 60, 2),
                "build_seconds": round(time.time() - t0, 1), "splits": stats, "files": files}
        (tmp / "corpus.json").write_text(json.dumps(meta, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        log(f"built the {subset} demo corpus in {meta['build_seconds']} s: "
            f"{meta['minutes']} min of audio in {len(clips)} clips -> {out}")
        return DemoCorpus(out, {s: out / f"{s}.csv" for s in SPLITS}, built=True)


def format_stats(corpus: DemoCorpus) -> str:
    """A markdown table of minutes / clips / groups per split and category.

    Arguments
    ---------
    corpus : DemoCorpus
        A built corpus.

    Returns
    -------
    str
        The table.
    """
    meta = json.loads((corpus.root / "corpus.json").read_text())
    cats = sorted({c for s in meta["splits"].values() for c in s})
    lines = ["| split | " + " | ".join(cats) + " |", "|---" * (len(cats) + 1) + "|"]
    for split, per_cat in meta["splits"].items():
        cells = [f"{per_cat[c]['minutes']:.1f} min, {per_cat[c]['clips']} clips, "
                 f"{per_cat[c]['groups']} groups" if c in per_cat else "-" for c in cats]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    lines.append(f"\ntotal {meta['minutes']} min, built in {meta['build_seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", choices=sorted(SUBSETS), default="full")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: $GASS_CACHE/demo_corpus/<subset>-<rate>)")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    try:
        corpus = build(args.subset, args.out, args.sample_rate, args.seed, args.workers,
                       args.force)
    except MissingPackagesError as err:
        print(err, file=sys.stderr)
        return 2
    print(format_stats(corpus))
    for split, path in corpus.manifests.items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
