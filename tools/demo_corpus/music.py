"""Music stems of the demo corpus: General MIDI songs from Debian packages, split by channel and
rendered with fluidsynth through several SoundFont banks.

Songs: ``openttd-openmsx`` (31 MIDI files), ``simutrans-data`` (53), ``planetblupi-music-midi``
(10) and the MIDI music lumps (``D_*``) of the two ``freedoom`` IWADs, read from the WAD directory
(lumps identical across the WADs, or within one, are taken once; MUS-format lumps would be
skipped, Freedoom has none). Files are parsed by a small Standard MIDI File reader
(:func:`parse_midi`): tempo map applied, tracks merged, only channel events kept; ``mido``
parses the same files about ten times slower and rejects two Simutrans songs over a malformed
key signature.

Each song gives three stems: ``music_drums`` (MIDI channel 10), ``music_bass`` (channels whose
first program is a General MIDI bass, programs 33-40) and ``music_other`` (every other channel),
all excerpts of the same window (the one where most stems play, see :func:`pick_windows`);
stems below -50 dBFS are dropped. A song is one split group ``music/<source>_<name>``.

Timbres vary per song (seeded by the song's name): each stem is rendered through one bank drawn
among TimGM6mb (``timgm6mb-soundfont``) and FluidR3_GM (``fluid-soundfont-gm``); the drums also
through the two acoustic kits of ``avldrums.lv2-soundfont`` (Black Pearl, Red Zeppelin). Those
kits are melodic presets (bank 0, program 0) that fluidsynth cannot select on its drum channel 10,
so their drum stem is moved to channel 1 (program 0); they hold keys 36-59, so the acoustic bass
drum (35) is played as 36 and higher notes (latin percussion) are dropped. Half of the songs also
change instruments: melodic programs within their General MIDI family (``program // 8`` kept,
``program % 8`` drawn; the percussive and sound-effect families, programs 113-128, kept), the bass
within the bass family, and the drum kit among the General MIDI kits of the bank.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gass_modules.dataio.mixer import rms_db

from .common import Clip, find, load_mono, rng_for, slug, write_clip

MIDI_GLOBS = {
    "openttd": "/usr/share/games/openttd/baseset/openmsx/*.mid",
    "simutrans": "/usr/share/games/simutrans/music/*.mid",
    "planetblupi": "/usr/share/planetblupi/music/*.mid",
}
WAD_GLOB = "/usr/share/games/doom/freedoom*.wad"
TIMGM6MB = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
AVL_BLACK_PEARL = "/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2"
AVL_RED_ZEPPELIN = "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2"
# General MIDI banks (melodic presets in bank 0, drum kits in bank 128).
GM_BANKS = {"timgm6mb": TIMGM6MB, "fluidr3": FLUIDR3}
# Drum kits: the GM banks' channel-10 kits, and acoustic kits that are melodic presets 0.
DRUM_KITS = {**GM_BANKS, "avl_black_pearl": AVL_BLACK_PEARL,
             "avl_red_zeppelin": AVL_RED_ZEPPELIN}
MELODIC_KITS = ("avl_black_pearl", "avl_red_zeppelin")
# Kit programs (bank 128) both GM banks hold: Standard, Room, Power, Electronic, TR-808, Jazz,
# Brush (Orchestra, 48, is left out: timpani and concert percussion, not a drum kit).
GM_KIT_PROGRAMS = (0, 8, 16, 24, 25, 32, 40)
REQUIREMENTS = (
    ("fluidsynth", "bin:fluidsynth"),
    ("timgm6mb-soundfont", TIMGM6MB),
    ("fluid-soundfont-gm", FLUIDR3),
    ("avldrums.lv2-soundfont", AVL_BLACK_PEARL),
    ("openttd-openmsx", MIDI_GLOBS["openttd"]),
    ("simutrans-data", MIDI_GLOBS["simutrans"]),
    ("planetblupi-music-midi", MIDI_GLOBS["planetblupi"]),
    ("freedoom", WAD_GLOB),
)
GM_BASS_PROGRAMS = range(32, 40)  # GM programs 33-40 (0-based 32-39): the bass family
FIXED_FAMILIES = (14, 15)  # 0-based GM families kept as they are: percussive, sound effects
DRUM_CHANNEL = 9  # MIDI channel 10
STEMS = ("music_drums", "music_bass", "music_other")
# What each tier takes: songs (None: every usable one), excerpt length, excerpts per song.
TIERS = {
    "small": {"songs": 3, "excerpt_s": 6.0, "excerpts": 1},
    "full": {"songs": 120, "excerpt_s": 14.0, "excerpts": 1},
    "large": {"songs": None, "excerpt_s": 20.0, "excerpts": 2},
}
MIN_ONSETS = 4  # notes a stem plays in a window to count as present there
RENDER_GAIN = 0.6  # fluidsynth master gain
RENDER_RATE = 48000  # lowest rate fluidsynth renders at (Hz)
SILENCE_DB = -50.0  # stems below this RMS level (dBFS) are dropped; the mixer rejects < -60

NOTE_OFF, NOTE_ON, CONTROL, PROGRAM, PITCH = 0x80, 0x90, 0xB0, 0xC0, 0xE0
BANK_SELECT = (0, 32)  # controllers dropped: the bank is chosen here


# ------------------------------------------------------------------------------------ sources
def wad_lumps(data: bytes) -> list[tuple[str, bytes]]:
    """The lumps of a Doom WAD (IWAD or PWAD), in directory order.

    Arguments
    ---------
    data : bytes
        The whole WAD: a 12-byte header (``IWAD``/``PWAD``, lump count and directory offset,
        little-endian int32) and a directory of 16-byte entries (offset, size, 8-byte name).

    Returns
    -------
    list of (str, bytes)
        Name and content of each lump.

    Raises
    ------
    ValueError
        When ``data`` is not a WAD.

    Example
    -------
    >>> lump = b"MThd" + bytes(10)
    >>> wad = b"PWAD" + struct.pack("<ii", 1, 12 + len(lump)) + lump
    >>> wad += struct.pack("<ii8s", 12, len(lump), b"D_RUNNIN")
    >>> [(name, len(content)) for name, content in wad_lumps(wad)]
    [('D_RUNNIN', 14)]
    """
    if len(data) < 12 or data[:4] not in (b"IWAD", b"PWAD"):
        raise ValueError("not a WAD file (no IWAD/PWAD header)")
    count, directory = struct.unpack_from("<ii", data, 4)
    if count < 0 or directory < 12 or directory + 16 * count > len(data):
        raise ValueError("WAD directory out of bounds")
    lumps = []
    for k in range(count):
        offset, size, raw = struct.unpack_from("<ii8s", data, directory + 16 * k)
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        lumps.append((name, data[offset:offset + size]))
    return lumps


def wad_midi(data: bytes) -> tuple[list[tuple[str, bytes]], int]:
    """The Standard MIDI music lumps of a WAD, and how many MUS-format ones were skipped.

    Arguments
    ---------
    data : bytes
        The whole WAD.

    Returns
    -------
    list of (str, bytes)
        Name and content of the lumps starting with ``MThd``.
    int
        Lumps starting with ``MUS\\x1a`` (Doom's own music format), left out.

    Example
    -------
    >>> lumps = [b"MThd" + bytes(10), b"MUS\\x1a" + bytes(12), b"\\x01\\x02"]
    >>> body = b"".join(lumps)
    >>> wad = b"IWAD" + struct.pack("<ii", 3, 12 + len(body)) + body
    >>> wad += struct.pack("<ii8s", 12, 14, b"D_E1M1") + struct.pack("<ii8s", 26, 16, b"D_E1M2")
    >>> wad += struct.pack("<ii8s", 42, 2, b"PLAYPAL")
    >>> midi, mus = wad_midi(wad)
    >>> [name for name, _ in midi], mus
    (['D_E1M1'], 1)
    """
    midi, mus = [], 0
    for name, content in wad_lumps(data):
        if content[:4] == b"MThd":
            midi.append((name, content))
        elif content[:4] == b"MUS\x1a":
            mus += 1
    return midi, mus


@dataclass
class SongFile:
    """A MIDI song: ``source/name`` and its bytes."""

    name: str
    data: bytes


def song_files() -> tuple[list[SongFile], dict[str, int]]:
    """Every MIDI song of the packages, identical files taken once (first source wins).

    Returns
    -------
    list of SongFile
        Songs named ``<source>/<file or lump name>``, sources in :data:`MIDI_GLOBS` order, then
        ``freedoom1``/``freedoom2`` (the WADs' names).
    dict
        Counts: songs kept per source, ``duplicates`` dropped, ``mus_skipped`` lumps.
    """
    songs, seen = [], set()
    counts = {"duplicates": 0, "mus_skipped": 0}

    def add(source: str, name: str, data: bytes) -> None:
        digest = hashlib.sha1(data).digest()
        if digest in seen:
            counts["duplicates"] += 1
            return
        seen.add(digest)
        songs.append(SongFile(f"{source}/{name}", data))
        counts[source] = counts.get(source, 0) + 1

    for source, pattern in MIDI_GLOBS.items():
        for path in find(pattern):
            add(source, Path(path).stem, Path(path).read_bytes())
    for path in find(WAD_GLOB):
        lumps, mus = wad_midi(Path(path).read_bytes())
        counts["mus_skipped"] += mus
        for name, data in lumps:
            add(Path(path).stem, name, data)
    return songs, counts


# ------------------------------------------------------------------------------------ MIDI
@dataclass
class MidiEvents:
    """The channel events of a MIDI file, all tracks merged in time order.

    ``status`` is the MIDI status byte (event kind in the high nibble, 0-based channel in the
    low one); ``data2`` is 0 for the one-byte events (program change, channel pressure).
    """

    time: np.ndarray  # [N] float64, seconds (tempo map applied)
    status: np.ndarray  # [N] uint8
    data1: np.ndarray  # [N] uint8
    data2: np.ndarray  # [N] uint8

    @property
    def kind(self) -> np.ndarray:
        """``[N]`` event kinds (``status & 0xF0``)."""
        return self.status & 0xF0

    @property
    def channel(self) -> np.ndarray:
        """``[N]`` 0-based channels (``status & 0x0F``)."""
        return self.status & 0x0F

    def onsets(self) -> np.ndarray:
        """``[N]`` mask of the note-ons (velocity > 0)."""
        return (self.kind == NOTE_ON) & (self.data2 > 0)


def parse_midi(data: bytes) -> MidiEvents:
    """Reads the channel events of a Standard MIDI File (format 0 or 1) with their times.

    Meta events other than tempo and system exclusive events are skipped; running status is
    followed (meta and sysex events do not reset it, as in ``mido``); a truncated track ends
    where its data does; data bytes are clipped to 7 bits.

    Arguments
    ---------
    data : bytes
        The file's content.

    Returns
    -------
    MidiEvents
        Events sorted by time (ties: track order, then file order).

    Raises
    ------
    ValueError
        When ``data`` is not a MIDI file.

    Example
    -------
    >>> track = bytes([0, 0xC0, 5, 0, 0x90, 60, 100, 0x83, 0x60, 60, 0])  # running status
    >>> smf = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    >>> smf += b"MTrk" + struct.pack(">I", len(track)) + track
    >>> events = parse_midi(smf)
    >>> events.time.tolist(), events.status.tolist(), events.data1.tolist()
    ([0.0, 0.0, 0.5], [192, 144, 144], [5, 60, 60])
    """
    if data[:4] != b"MThd" or len(data) < 14:
        raise ValueError("not a Standard MIDI File (no MThd header)")
    header_len = int.from_bytes(data[4:8], "big")
    division = int.from_bytes(data[12:14], "big")
    ticks, status, data1, data2 = [], [], [], []
    tempos = [(0, 500000)]  # (tick, microseconds per beat); 120 bpm until told otherwise
    pos = 8 + header_len
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        start, end = pos + 8, min(pos + 8 + size, len(data))
        pos += 8 + size
        if chunk != b"MTrk":
            continue
        p, tick, running = start, 0, 0
        try:
            while p < end:
                byte = data[p]
                p += 1
                delta = byte & 0x7F
                while byte & 0x80:
                    byte = data[p]
                    p += 1
                    delta = (delta << 7) | (byte & 0x7F)
                tick += delta
                s = data[p]
                if s & 0x80:
                    p += 1
                elif running:
                    s = running
                else:
                    raise ValueError("running status without a previous status byte")
                if s < 0xF0:
                    running = s
                    first = data[p] & 0x7F
                    if s & 0xE0 == 0xC0:  # program change, channel pressure: one data byte
                        second = 0
                        p += 1
                    else:
                        second = data[p + 1] & 0x7F
                        p += 2
                    ticks.append(tick)
                    status.append(s)
                    data1.append(first)
                    data2.append(second)
                elif s == 0xFF or s in (0xF0, 0xF7):
                    kind = data[p] if s == 0xFF else -1
                    if s == 0xFF:
                        p += 1
                    byte = data[p]
                    p += 1
                    length = byte & 0x7F
                    while byte & 0x80:
                        byte = data[p]
                        p += 1
                        length = (length << 7) | (byte & 0x7F)
                    if kind == 0x51 and length == 3:
                        tempos.append((tick, max(int.from_bytes(data[p:p + 3], "big"), 1)))
                    p += length
                    if kind == 0x2F:  # end of track
                        break
                else:  # system common/real-time bytes do not belong in files: skip them
                    p += {0xF1: 1, 0xF2: 2, 0xF3: 1}.get(s, 0)
        except IndexError:  # truncated track: keep what was read
            pass
    tick_arr = np.asarray(ticks, dtype=np.int64)  # [N]
    order = np.argsort(tick_arr, kind="stable")
    tick_arr = tick_arr[order]
    if division & 0x8000:  # SMPTE: frames per second x ticks per frame
        seconds = tick_arr / float((256 - (division >> 8)) * (division & 0xFF))
    else:
        tempos.sort(key=lambda item: item[0])  # stable: the file's tempo at tick 0 wins
        change = np.asarray([t for t, _ in tempos], dtype=np.int64)  # [K]
        per_tick = np.asarray([u for _, u in tempos], dtype=np.float64) / 1e6 / max(division, 1)
        at_change = np.concatenate([[0.0], np.cumsum(np.diff(change) * per_tick[:-1])])  # [K]
        k = np.searchsorted(change, tick_arr, side="right") - 1
        seconds = at_change[k] + (tick_arr - change[k]) * per_tick[k]
    return MidiEvents(seconds.astype(np.float64),
                      np.asarray(status, dtype=np.uint8)[order],
                      np.asarray(data1, dtype=np.uint8)[order],
                      np.asarray(data2, dtype=np.uint8)[order])


def split_channels(events: MidiEvents) -> dict[str, list[int]]:
    """Assigns each channel that plays notes to a stem.

    Channel 10 is ``music_drums``; a channel whose program when it plays its first note is a
    General MIDI bass (0-based 32-39) is ``music_bass``; the others are ``music_other``.

    Arguments
    ---------
    events : MidiEvents
        A song.

    Returns
    -------
    dict
        Stem name -> sorted 0-based channels (possibly empty), for every stem of :data:`STEMS`.

    Example
    -------
    >>> ev = MidiEvents(np.zeros(4), np.array([0xC1, 0x91, 0x92, 0x99], dtype=np.uint8),
    ...                 np.array([33, 40, 60, 36], dtype=np.uint8), np.full(4, 90, np.uint8))
    >>> split_channels(ev)
    {'music_drums': [9], 'music_bass': [1], 'music_other': [2]}
    """
    onsets = events.onsets()
    channel, kind = events.channel, events.kind
    stems: dict[str, list[int]] = {stem: [] for stem in STEMS}
    for ch in np.unique(channel[onsets]).tolist():
        if ch == DRUM_CHANNEL:
            stems["music_drums"].append(ch)
            continue
        first = int(np.flatnonzero(onsets & (channel == ch))[0])
        changes = np.flatnonzero((kind[:first] == PROGRAM) & (channel[:first] == ch))
        program = int(events.data1[changes[-1]]) if changes.size else 0
        stems["music_bass" if program in GM_BASS_PROGRAMS else "music_other"].append(ch)
    return stems


def pick_windows(events: MidiEvents, channels: dict[str, list[int]], excerpt_s: float,
                 count: int = 1) -> list[tuple[float, int]]:
    """Non-overlapping excerpt windows where most stems play (1 s grid, best first).

    A stem is present in a window when it plays at least :data:`MIN_ONSETS` notes there;
    windows are ranked by stems present, then by stems playing in both halves of the window,
    then by time (earliest first). Windows with fewer than two stems present are not returned,
    nor any window of a song whose notes last less than 80 % of ``excerpt_s``.

    Arguments
    ---------
    events : MidiEvents
        A song.
    channels : dict
        Stem -> channels (:func:`split_channels`).
    excerpt_s : float
        Window length in seconds.
    count : int
        Windows wanted at most.

    Returns
    -------
    list of (float, int)
        Start (s) and stems present of each window.

    Example
    -------
    >>> n = 40
    >>> ev = MidiEvents(np.arange(2 * n) * 0.5, np.repeat([0x99, 0x90], n).astype(np.uint8),
    ...                 np.full(2 * n, 60, np.uint8), np.full(2 * n, 90, np.uint8))
    >>> pick_windows(ev, {"music_drums": [9], "music_bass": [], "music_other": [0]}, 10.0)
    [(12.0, 2)]
    """
    onsets = events.onsets()
    times = {stem: np.sort(events.time[onsets & np.isin(events.channel, chans)])
             for stem, chans in channels.items() if chans}
    if not times:
        return []
    length = max(float(t[-1]) for t in times.values() if t.size)
    if length < 0.8 * excerpt_s:  # a jingle: the excerpt would be mostly silence
        return []
    starts = np.arange(0.0, max(length - excerpt_s, 0.0) + 1e-9, 1.0)  # [W]
    present = np.zeros(len(starts), dtype=np.int64)  # [W]
    steady = np.zeros(len(starts), dtype=np.int64)  # [W]
    half = excerpt_s / 2
    for t in times.values():
        a, m, b = (np.searchsorted(t, starts + d) for d in (0.0, half, excerpt_s))  # [W] each
        present += (b - a) >= MIN_ONSETS
        steady += ((m - a) >= MIN_ONSETS // 2) & ((b - m) >= MIN_ONSETS // 2)
    score = present * 10 + steady  # [W]
    chosen: list[tuple[float, int]] = []
    free = np.ones(len(starts), dtype=bool)
    while len(chosen) < count and free.any():
        best = int(np.argmax(np.where(free, score, -1)))
        if present[best] < 2:
            break
        chosen.append((float(starts[best]), int(present[best])))
        free &= np.abs(starts - starts[best]) >= excerpt_s
    return chosen


def vary_program(program: int, offset: int) -> int:
    """Another instrument of a General MIDI program's family (eight programs a family).

    Arguments
    ---------
    program : int
        0-based GM program (0-127).
    offset : int
        Position within the family (0-7).

    Returns
    -------
    int
        ``program // 8 * 8 + offset``; the program itself in the percussive and sound-effect
        families (0-based 14 and 15, programs 112-127).

    Example
    -------
    >>> vary_program(33, 6), vary_program(0, 4), vary_program(121, 0)
    (38, 4, 121)
    """
    family = program // 8
    return program if family in FIXED_FAMILIES else family * 8 + offset % 8


def _varlen(value: int) -> bytes:
    """MIDI variable-length quantity of a non-negative int."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def stem_midi(events: MidiEvents, channels: list[int], start: float, excerpt_s: float,
              program_map: Callable[[int, int], int] | None = None,
              channel_map: dict[int, int] | None = None) -> bytes:
    """A type-0 MIDI file holding some channels of a song within an excerpt.

    Times are written at a fixed 120 bpm (960 ticks per beat, so 1920 ticks a second), so no
    tempo event is needed. Controller and pitch-bend events before the excerpt are kept (moved to
    its start), notes and pressure before it dropped; bank selects are dropped (the renderer's
    bank is chosen by the caller). Each channel starts with a program change to
    ``program_map(channel, program it had at the excerpt's start)``; program changes inside the
    excerpt are mapped the same way. All notes are turned off at the excerpt's end.

    Arguments
    ---------
    events : MidiEvents
        The song.
    channels : list of int
        0-based channels kept.
    start, excerpt_s : float
        Excerpt start and length in seconds.
    program_map : callable, optional
        ``(channel, program) -> program`` (default: identity).
    channel_map : dict, optional
        0-based channel -> channel it is written on (default: unchanged).

    Returns
    -------
    bytes
        The MIDI file.

    Example
    -------
    >>> u8 = lambda values: np.array(values, dtype=np.uint8)
    >>> ev = MidiEvents(np.array([0.0, 1.0, 2.5, 3.0]), u8([0xC0, 0x90, 0x90, 0x91]),
    ...                 u8([4, 60, 62, 40]), u8([0, 90, 90, 90]))
    >>> part = parse_midi(stem_midi(ev, [0], 2.0, 2.0, program_map=lambda ch, p: p + 1))
    >>> part.time.tolist(), part.status.tolist(), part.data1.tolist()
    ([0.0, 0.5, 2.0], [192, 144, 176], [5, 62, 123])
    """
    program_map = program_map or (lambda channel, program: program)
    channel_map = channel_map or {}
    keep = np.isin(events.channel, channels) & (events.time < start + excerpt_s)  # [N]
    kind, channel = events.kind, events.channel
    before = events.time < start
    bank = (kind == CONTROL) & np.isin(events.data1, BANK_SELECT)
    program_now = {ch: 0 for ch in channels}
    for i in np.flatnonzero(keep & before & (kind == PROGRAM)).tolist():
        program_now[int(channel[i])] = int(events.data1[i])
    ticks_per_second = 1920
    timed: list[tuple[int, bytes]] = []
    for ch in channels:
        out_ch = channel_map.get(ch, ch)
        timed.append((0, bytes([PROGRAM | out_ch, program_map(ch, program_now[ch]) & 0x7F])))
    prelude = before & ((kind == CONTROL) | (kind == PITCH))
    for i in np.flatnonzero(keep & ~bank & (prelude | ~before)).tolist():
        k, ch = int(kind[i]), int(channel[i])
        out = k | channel_map.get(ch, ch)
        tick = int(round(max(float(events.time[i]) - start, 0.0) * ticks_per_second))
        if k == PROGRAM:
            timed.append((tick, bytes([out, program_map(ch, int(events.data1[i])) & 0x7F])))
        elif k == 0xD0:
            timed.append((tick, bytes([out, int(events.data1[i])])))
        else:
            timed.append((tick, bytes([out, int(events.data1[i]), int(events.data2[i])])))
    stop = int(round(excerpt_s * ticks_per_second))
    for ch in sorted({channel_map.get(c, c) for c in channels}):
        timed.append((stop, bytes([CONTROL | ch, 123, 0])))  # all notes off
    track, last = bytearray(), 0
    for tick, message in timed:
        track += _varlen(tick - last) + message
        last = tick
    track += b"\x00\xff\x2f\x00"  # end of track
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 960)
            + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


def acoustic_kit_events(events: MidiEvents) -> MidiEvents:
    """Fits General MIDI drum notes to the AVL acoustic kits, which hold keys 36-59 only.

    The acoustic bass drum (35) is played on the kit's bass drum (36); notes above 59 (latin
    percussion and effects in General MIDI) are dropped rather than sent to unrelated keys.

    Arguments
    ---------
    events : MidiEvents
        Drum events.

    Returns
    -------
    MidiEvents
        The same events, notes mapped and filtered.

    Example
    -------
    >>> u8 = lambda values: np.array(values, dtype=np.uint8)
    >>> ev = MidiEvents(np.zeros(3), u8([0x99, 0x99, 0x99]), u8([35, 38, 64]), u8([90, 90, 90]))
    >>> acoustic_kit_events(ev).data1.tolist()
    [36, 38]
    """
    note = (events.kind == NOTE_ON) | (events.kind == NOTE_OFF)  # [N]
    keep = ~note | ((events.data1 >= 35) & (events.data1 <= 59))  # [N]
    data1 = np.where(note & (events.data1 == 35), 36, events.data1).astype(np.uint8)  # [N]
    return MidiEvents(events.time[keep], events.status[keep], data1[keep], events.data2[keep])


def render_midi(midi: bytes, soundfont: str, seconds: float, sample_rate: int) -> np.ndarray:
    """Renders a MIDI file with fluidsynth (no reverb, no chorus) to exactly ``seconds``.

    fluidsynth does not low-pass samples it pitches or plays below their own rate, so it renders
    at :data:`RENDER_RATE` at least (no aliasing of the 44.1 kHz banks' cymbals) and the result
    is resampled with torchaudio.

    Arguments
    ---------
    midi : bytes
        A Standard MIDI File.
    soundfont : str
        The ``.sf2`` bank.
    seconds : float
        Output length (cut or zero-padded).
    sample_rate : int
        Output rate in Hz.

    Returns
    -------
    numpy.ndarray
        ``[T]`` float32 mono samples, ``T = round(seconds * sample_rate)``.
    """
    length = int(round(seconds * sample_rate))
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "stem.mid", Path(tmp) / "stem.wav"
        mid.write_bytes(midi)
        subprocess.run(
            ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", str(RENDER_GAIN),
             "-r", str(max(sample_rate, RENDER_RATE)), "-F", str(wav), "-T", "wav", "-O", "s16",
             soundfont, str(mid)],
            check=True, capture_output=True, timeout=300,
        )
        x = load_mono(wav, sample_rate)[:length]  # [T']
    return np.pad(x, (0, length - len(x)))  # [T]


# ------------------------------------------------------------------------------------ songs
@dataclass
class Song:
    """A song analysed for rendering: its events, stems and excerpt windows."""

    name: str  # <source>/<file or lump name>
    events: MidiEvents
    channels: dict[str, list[int]]  # stem -> 0-based MIDI channels
    windows: list[tuple[float, int]]  # (start s, stems present), best first


def analyse_song(song: SongFile, excerpt_s: float, excerpts: int = 1) -> Song | None:
    """Parses a song, splits its channels into stems and picks its excerpt windows.

    Arguments
    ---------
    song : SongFile
        Name and bytes.
    excerpt_s : float
        Excerpt length in seconds.
    excerpts : int
        Windows wanted at most.

    Returns
    -------
    Song or None
        None when the file does not parse or no window has two stems present.
    """
    try:
        events = parse_midi(song.data)
    except (ValueError, IndexError):  # malformed files exist in the wild; they are skipped
        return None
    channels = split_channels(events)
    windows = pick_windows(events, channels, excerpt_s, excerpts)
    return Song(song.name, events, channels, windows) if windows else None


def select_songs(count: int | None, excerpt_s: float, excerpts: int, seed: int) -> list[Song]:
    """Usable songs in a seeded order, those with all three stems in their best window first.

    Arguments
    ---------
    count : int or None
        Songs wanted (None: every usable song).
    excerpt_s : float
        Excerpt length in seconds.
    excerpts : int
        Windows per song at most.
    seed : int
        Order seed.

    Returns
    -------
    list of Song
        At most ``count`` songs.
    """
    files, _ = song_files()
    chosen, spare = [], []
    for i in rng_for(seed, "songs").permutation(len(files)):
        song = analyse_song(files[i], excerpt_s, excerpts)
        if song is None:
            continue
        (chosen if song.windows[0][1] == 3 else spare).append(song)
        if count is not None and len(chosen) >= count:
            break
    return (chosen + spare)[:count]


@dataclass
class Timbre:
    """The banks and instruments a song is rendered with (see :func:`draw_timbre`)."""

    banks: dict[str, str]  # stem -> key of DRUM_KITS (of GM_BANKS for bass and other)
    fallback_kit: str  # GM bank for drums that an acoustic kit cannot play (see below)
    vary: bool  # whether programs and drum kit are redrawn
    offsets: np.ndarray  # [16, 128] int: position in the family, per channel and program
    kit: int  # GM drum kit program when ``vary``

    def melodic_program(self, channel: int, program: int) -> int:
        """The program a melodic channel plays instead of ``program`` (same GM family).

        Arguments
        ---------
        channel, program : int
            0-based channel and the song's program.

        Returns
        -------
        int
            The program to render.
        """
        if not self.vary:
            return program
        return vary_program(program, int(self.offsets[channel, program]))

    def drum_program(self, channel: int, program: int) -> int:
        """The GM drum kit (bank 128 program) the drum channel plays instead of ``program``.

        Arguments
        ---------
        channel, program : int
            0-based channel and the song's kit program.

        Returns
        -------
        int
            The drawn kit when ``vary``, else the song's kit if both GM banks hold it, else 0.
        """
        if self.vary:
            return self.kit
        return program if program in GM_KIT_PROGRAMS else 0


def draw_timbre(seed: int, name: str) -> Timbre:
    """Draws a song's banks and instruments, from the build's seed and the song's name only.

    Each stem's bank is uniform among its choices (drums: the four kits of
    :data:`DRUM_KITS`; bass and other: :data:`GM_BANKS`); half of the songs redraw their
    programs within their families and their drum kit among :data:`GM_KIT_PROGRAMS`.

    Arguments
    ---------
    seed : int
        The build's seed.
    name : str
        The song's name (``<source>/<name>``).

    Returns
    -------
    Timbre
        The draws.

    Example
    -------
    >>> a, b = draw_timbre(0, "openttd/x"), draw_timbre(0, "openttd/x")
    >>> a.banks == b.banks and a.kit == b.kit and bool((a.offsets == b.offsets).all())
    True
    """
    rng = rng_for(seed, "music/" + name)
    drums, melodic = list(DRUM_KITS), list(GM_BANKS)
    banks = {"music_drums": drums[rng.integers(len(drums))],
             "music_bass": melodic[rng.integers(len(melodic))],
             "music_other": melodic[rng.integers(len(melodic))]}
    fallback = melodic[rng.integers(len(melodic))]
    vary = bool(rng.random() < 0.5)
    offsets = rng.integers(0, 8, size=(16, 128))  # [channel, program]
    kit = int(GM_KIT_PROGRAMS[rng.integers(len(GM_KIT_PROGRAMS))])
    return Timbre(banks, fallback, vary, offsets, kit)


def fits_acoustic_kit(events: MidiEvents, channels: list[int], start: float,
                      excerpt_s: float) -> bool:
    """Whether an excerpt's drums are mostly kit pieces an AVL kit holds (keys 35-59).

    Arguments
    ---------
    events : MidiEvents
        The song.
    channels : list of int
        Drum channels.
    start, excerpt_s : float
        Excerpt start and length in seconds.

    Returns
    -------
    bool
        True when at least :data:`MIN_ONSETS` notes, and 75 % of the notes, are in 35-59.

    Example
    -------
    >>> u8 = lambda values: np.array(values, dtype=np.uint8)
    >>> ev = MidiEvents(np.arange(5.0), u8([0x99] * 5), u8([36, 38, 42, 38, 36]), u8([90] * 5))
    >>> fits_acoustic_kit(ev, [9], 0.0, 10.0), fits_acoustic_kit(ev, [9], 3.0, 10.0)
    (True, False)
    """
    window = (events.onsets() & np.isin(events.channel, channels)
              & (events.time >= start) & (events.time < start + excerpt_s))  # [N]
    notes = events.data1[window]
    inside = int(np.sum((notes >= 35) & (notes <= 59)))
    return inside >= MIN_ONSETS and inside >= 0.75 * len(notes)


def render_song(song: Song, excerpt_s: float, out: Path, sample_rate: int,
                seed: int) -> list[Clip]:
    """Renders the stems of each excerpt of a song with the banks :func:`draw_timbre` draws.

    A drum stem drawn an AVL kit whose excerpt does not fit it (:func:`fits_acoustic_kit`,
    e.g. latin percussion only) is rendered with the timbre's fallback GM bank.

    Arguments
    ---------
    song : Song
        An analysed song.
    excerpt_s : float
        Excerpt length in seconds.
    out : Path
        Corpus folder (clips go to ``out/wav/<stem>/``).
    sample_rate : int
        Output rate in Hz.
    seed : int
        The build's seed.

    Returns
    -------
    list of Clip
        One clip per non-silent stem and excerpt, grouped as ``music/<source>_<name>``, ids
        ``<stem>-<source>_<name>`` (second excerpts ``...-1``).
    """
    timbre = draw_timbre(seed, song.name)
    name = slug(song.name)
    clips = []
    for k, (start, _) in enumerate(song.windows):
        for stem in STEMS:
            chans = song.channels[stem]
            if not chans:
                continue
            bank = timbre.banks[stem]
            if stem == "music_drums" and bank in MELODIC_KITS:
                if fits_acoustic_kit(song.events, chans, start, excerpt_s):
                    midi = stem_midi(acoustic_kit_events(song.events), chans, start, excerpt_s,
                                     lambda channel, program: 0, {DRUM_CHANNEL: 0})
                else:
                    bank = timbre.fallback_kit
            if stem == "music_drums" and bank not in MELODIC_KITS:
                midi = stem_midi(song.events, chans, start, excerpt_s, timbre.drum_program)
            elif stem != "music_drums":
                midi = stem_midi(song.events, chans, start, excerpt_s, timbre.melodic_program)
            x = render_midi(midi, find(DRUM_KITS[bank])[0], excerpt_s, sample_rate)  # [T]
            if rms_db(x) < SILENCE_DB:
                continue
            clip_id = f"{stem}-{name}" + (f"-{k}" if k else "")
            clips.append(write_clip(out, clip_id, stem, f"music/{name}", x, sample_rate,
                                    source=song.name))
    return clips


def jobs(tier: str, out: Path, sample_rate: int, seed: int) -> list[Callable[[], list[Clip]]]:
    """The independent jobs of a tier: one per song, each rendering and writing its stems.

    The songs are parsed and chosen here (a few seconds for every song); the jobs run
    fluidsynth.

    Arguments
    ---------
    tier : str
        A key of :data:`TIERS`.
    out : Path
        Corpus folder.
    sample_rate : int
        Output rate in Hz.
    seed : int
        Selection and timbre seed.

    Returns
    -------
    list of callable
        Jobs returning the clips they wrote.
    """
    cfg = TIERS[tier]
    songs = select_songs(cfg["songs"], cfg["excerpt_s"], cfg["excerpts"], seed)
    return [lambda s=song: render_song(s, cfg["excerpt_s"], out, sample_rate, seed)
            for song in songs]
