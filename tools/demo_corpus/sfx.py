"""Sound events (category ``sfx``) of the demo corpus: game, desktop and sample-pack sounds.

Every source is one Debian package of real recorded (or designed) sound effects; a file is one
clip, cut to the tier's length. What is speech (spoken prompts, voice acknowledgements, language
folders) or music (tunes, loops, instrument notes, ``music`` folders) is left out by folder and
file name, and so is a file longer than :data:`MAX_FILE_S` (most likely a tune), recorded below
:data:`MIN_RATE` Hz or that libsndfile cannot read. A file whose bytes repeat an earlier one (games
ship the same sound under several names) is listed once.

Groups (the train/valid/test split unit) are one per sound: ``sfx/<source>_<name>``, where the
numbered variants of one sound (``dig.1.ogg``, ``dig.2.ogg``; ``hit1.wav``, ``hit2.wav``) and
same-named files in several folders share the group; a clip's ``source`` is its file.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from gass_modules.dataio.mixer import rms_db

from .common import Clip, deb_root, find, load_mono, native_rate, rng_for, slug, write_clip

MAX_FILE_S = 20.0  # longer files are most likely tunes or ambience loops
MIN_RATE = 8000  # narrower recordings (some games' 4-5 kHz samples) are left out
MIN_S = 0.1  # shorter clips are skipped when written
MIN_DB = -50.0  # quieter clips are skipped when written
BATCH = 16  # files per job

# Folders that hold speech or music in any package.
_EXCLUDED_FOLDERS = re.compile(
    r"(^|/)(voices?|speech|music|musics|songs?|loops?|ringtones|stdmusic)/", re.IGNORECASE)

# qabcs' noise of each word: musical instruments, and characters, songs and flags (tunes or
# voices) are left out.
_QABCS_NOT_EVENTS = (
    "accordion aeoline bagpipes bass_drum cello changu cuica cymbals drums dulzaina "
    "electric_guitar erhu flute gamba grand_piano guitar hand_organ hang harmonica harp horn ipu "
    "jug kazoo lute maracas natural_horn ney oboe oedephon organ piano pipe quena quarter_note "
    "rabel recorder rozhok saxophone slit_drum spoons squeezebox timpani topshuur trumpet "
    "ukulele violin washint western_concert_flute xun xylophone yangqin youhikko yueqin "
    "zhaleyka zither zurna ode "
    "adjutant austrian_flag estonian_flag cheburashka chef christmas_tree circus clown dunno "
    "emelya firebird gamekeeper iotshin ivasyk joker ole_lukoje pishik prince pupil quiz_game "
    "sailorboy schooler umka ursula x-men yaga yobel"
).split()


@dataclass(frozen=True)
class Source:
    """One package's sound effects.

    ``globs`` are absolute (installed paths; :func:`common.find` also looks under the unpacked
    packages); ``base`` is the folder clip ids are named relative to; ``exclude`` is a regular
    expression (case-insensitive, searched in the path below ``base``) of files that are speech or
    music; ``variants`` says whether trailing numbers mark variants of one sound (false where
    files are just numbered, ``sound000.wav`` ...); ``probe`` is a glob without ``**`` telling
    whether the package is there (default: the first of ``globs``).
    """

    name: str
    package: str
    base: str
    globs: tuple[str, ...]
    exclude: str = ""
    variants: bool = True
    probe: str = ""


SOURCES: tuple[Source, ...] = (
    Source("qabcs", "qabcs-data", "/usr/share/qabcs/abcs/all/noises",
           ("/usr/share/qabcs/abcs/all/noises/*.ogg",),
           r"^(" + "|".join(re.escape(w) for w in _QABCS_NOT_EVENTS) + r")\.ogg$"),
    Source("minetest", "minetest-data", "/usr/share/games/minetest/games",
           ("/usr/share/games/minetest/games/*/mods/*/sounds/*.ogg",)),
    # loops, guitar phrases, bass notes, piano and choir are music
    Source("sonicpi", "sonic-pi-samples", "/usr/share/sonic-pi/samples",
           ("/usr/share/sonic-pi/samples/*.flac",),
           r"^(loop_|guit_|bass_|ambi_piano|ambi_choir)"),
    # audio-channel-* are spoken words ("front left")
    Source("freedesktop", "sound-theme-freedesktop", "/usr/share/sounds/freedesktop/stereo",
           ("/usr/share/sounds/freedesktop/stereo/*.oga",), r"audio-channel-"),
    # voices/ (one folder level down) is speech; 1C..9D are piano notes; the rest are tunes,
    # a chant and a call
    Source("hedgewars", "hedgewars-data", "/usr/share/games/hedgewars/Data/Sounds",
           ("/usr/share/games/hedgewars/Data/Sounds/*.ogg",),
           r"^([1-9][a-g]|ride_of_the_valkyries|hogchant\d*|yoohoo)\.ogg$"),
    # the stamps' own sounds (animals, tools...); the descriptions (*_desc*), the letters and
    # numbers (symbols/, *_<lang>) are spoken, music/ and the bugle call are music, and the
    # dreidel letters and Santa's hat may be voices
    Source("tuxpaint_stamps", "tuxpaint-stamps-default", "/usr/share/tuxpaint/stamps",
           ("/usr/share/tuxpaint/stamps/**/*.ogg", "/usr/share/tuxpaint/stamps/**/*.wav"),
           r"(_desc|^symbols/|_[a-z]{2}(_[a-z]{2,4})?\.(ogg|wav)$|final-roll-call|dreydl|"
           r"santahat)", probe="/usr/share/tuxpaint/stamps/animals/birds/*.ogg"),
    # unit acknowledgements and selections ("yes, my lord") are speech; so may be the minaret
    # calls, "good morning" and the menu's "attention"
    Source("megaglest", "megaglest-data", "/usr/share/games/megaglest",
           ("/usr/share/games/megaglest/**/*.wav", "/usr/share/games/megaglest/**/*.ogg"),
           r"((^|[/_])(ack|select|sel)\d*\.(wav|ogg)$|minarett|good_morning|attention)",
           probe="/usr/share/games/megaglest/techs/megapack/commondata/sounds/*.wav"),
    # fanfares, horn signals and war drums are music
    Source("wesnoth", "wesnoth-1.16-data", "/usr/share/games/wesnoth/1.16",
           ("/usr/share/games/wesnoth/1.16/**/sounds/**/*.ogg",
            "/usr/share/games/wesnoth/1.16/**/sounds/**/*.wav"),
           r"(fanfare|horn-signals|wardrums)",
           probe="/usr/share/games/wesnoth/1.16/data/core/sounds/*.ogg"),
    Source("lincity", "lincity-ng-data", "/usr/share/games/lincity-ng/sounds",
           ("/usr/share/games/lincity-ng/sounds/*.wav",)),
    # a spoken "fight for your life"
    Source("scorched3d", "scorched3d-data", "/usr/share/games/scorched3d/data/globalmods",
           ("/usr/share/games/scorched3d/data/globalmods/*/data/wav/**/*.wav",), r"fight4life",
           probe="/usr/share/games/scorched3d/data/globalmods/none/data/wav/misc/*.wav"),
    # the tool sounds; three of them are voices
    Source("tuxpaint", "tuxpaint-data", "/usr/share/tuxpaint/sounds",
           ("/usr/share/tuxpaint/sounds/*.wav",), r"^(areyousure|youcannot|tuxok)\.wav$"),
    Source("tuxpaint_magic", "tuxpaint-plugins-default", "/usr/share/tuxpaint/sounds/magic",
           ("/usr/share/tuxpaint/sounds/magic/*.ogg", "/usr/share/tuxpaint/sounds/magic/*.wav")),
    # drum hits and effects (the basses, instruments, pads, waveforms and loops are music)
    Source("lmms", "lmms-common", "/usr/share/lmms/samples",
           ("/usr/share/lmms/samples/drums/*.ogg", "/usr/share/lmms/samples/effects/*.ogg",
            "/usr/share/lmms/samples/misc/*.ogg"), r"bass!"),
    # unit selections and orders are speech, and so are the "screams" (the same recording)
    Source("netpanzer", "netpanzer-data", "/usr/share/games/netpanzer/sound",
           ("/usr/share/games/netpanzer/sound/*.wav",),
           r"(selected|affirm|yessir|movout|tarconf|ohgod|scream|^attack\.wav$)"),
    Source("oxygen", "oxygen-sounds", "/usr/share/sounds",
           ("/usr/share/sounds/Oxygen-*.ogg",)),
    # the player's exclamations are speech
    Source("lbreakout2", "lbreakout2-data", "/usr/share/games/lbreakout2/sounds",
           ("/usr/share/games/lbreakout2/sounds/*.wav",),
           r"^(dammit|damn|excellent|verygood|wontgiveup)\.wav$"),
    Source("bzflag", "bzflag-data", "/usr/share/games/bzflag",
           ("/usr/share/games/bzflag/*.wav",)),
    Source("powermanga", "powermanga-data", "/usr/share/games/powermanga/sounds",
           ("/usr/share/games/powermanga/sounds/*.wav",)),
    Source("freedroid", "freedroid-data", "/usr/share/games/freedroid/sound",
           ("/usr/share/games/freedroid/sound/*.wav",), r"ThouArtDefeated"),
    # instrument notes are music
    Source("sound_icons", "sound-icons", "/usr/share/sounds/sound-icons",
           ("/usr/share/sounds/sound-icons/*.wav",),
           r"^(cembalo|chord|electric-piano|guitar|klavichord|piano|trumpet|violoncello|xylofon)"),
    Source("yaru", "yaru-theme-sound", "/usr/share/sounds/Yaru/stereo",
           ("/usr/share/sounds/Yaru/stereo/*.oga",)),
    Source("deepin", "deepin-sound-theme", "/usr/share/sounds/deepin/stereo",
           ("/usr/share/sounds/deepin/stereo/*.wav",)),
)

# What each source needs: (Debian package, a glob of what it installs).
REQUIREMENTS: tuple[tuple[str, str], ...] = tuple((s.package, s.probe or s.globs[0])
                                                  for s in SOURCES)

# What each tier takes: how many files (None: all of them, about 2,200; a limited tier mixes the
# sources evenly) and how much of each (seconds; None: the whole file, at most MAX_FILE_S).
TIERS: dict[str, dict] = {
    "small": {"files": 6, "max_s": 4.0},
    "full": {"files": None, "max_s": 10.0},
    "large": {"files": None, "max_s": None},
}


def group_of(source: str, path: str, variants: bool = True) -> str:
    """The split group of a sound file: numbered variants of one sound share it.

    Arguments
    ---------
    source : str
        Source name (the group's prefix).
    path : str
        The file.
    variants : bool
        Whether a trailing number (after an optional ``.``, ``_``, ``-`` or space) marks a variant;
        a name that is only a number keeps it.

    Returns
    -------
    str
        ``sfx/<source>_<name>``.

    Example
    -------
    >>> group_of("minetest", "/x/default_dig_cracky.2.ogg")
    'sfx/minetest_default_dig_cracky'
    >>> group_of("lincity", "/x/Blacksmith3.wav") == group_of("lincity", "/y/Blacksmith1.wav")
    True
    >>> group_of("colobot", "/x/sound012.wav", variants=False)
    'sfx/colobot_sound012'
    >>> group_of("dink", "/x/106.ogg")
    'sfx/dink_106'
    """
    stem = Path(path).stem
    if variants:
        stem = re.sub(r"[._ -]?\d+$", "", stem) or stem
    return f"sfx/{source}_{slug(stem)}"


def _installed(path: str) -> str:
    """The installed form of a path found under :func:`common.deb_root`."""
    root = str(deb_root())
    return path[len(root):] if path.startswith(root + "/") else path


def clip_id(source: Source, path: str) -> str:
    """The clip id of a file: its source and its path below the source's ``base`` folder.

    Arguments
    ---------
    source : Source
        Where the file comes from.
    path : str
        The file, installed or unpacked under :func:`common.deb_root`.

    Returns
    -------
    str
        ``sfx-<source>-<path slug>`` (the extension kept: ``rain.ogg`` and ``rain.wav`` differ).

    Example
    -------
    >>> src = Source("wesnoth", "wesnoth-1.16-data", "/usr/share/games/wesnoth/1.16", ())
    >>> clip_id(src, "/usr/share/games/wesnoth/1.16/data/core/sounds/axe.ogg")
    'sfx-wesnoth-data_core_sounds_axe_ogg'
    """
    rel = _installed(path)
    if rel.startswith(source.base.rstrip("/") + "/"):
        rel = rel[len(source.base.rstrip("/")) + 1:]
    return f"sfx-{source.name}-{slug(rel)}"


def is_excluded(source: Source, path: str) -> bool:
    """Whether a file is left out by name: speech or music folders, or the source's ``exclude``.

    Arguments
    ---------
    source : Source
        Where the file comes from.
    path : str
        The file, installed or unpacked under :func:`common.deb_root`.

    Returns
    -------
    bool
        True when the file is not a sound event.

    Example
    -------
    >>> src = Source("hw", "hedgewars-data", "/d", (), r"^([1-9][a-g])\\.ogg$")
    >>> [is_excluded(src, p) for p in ("/d/voices/Default/Hello.ogg", "/d/music/x.ogg",
    ...                                "/d/3E.ogg", "/d/explosion.ogg")]
    [True, True, True, False]
    """
    rel = _installed(path)
    if rel.startswith(source.base.rstrip("/") + "/"):
        rel = rel[len(source.base.rstrip("/")) + 1:]
    if _EXCLUDED_FOLDERS.search(rel):
        return True
    return bool(source.exclude) and re.search(source.exclude, rel, re.IGNORECASE) is not None


def _usable(path: str) -> bool:
    """Readable, at least :data:`MIN_RATE` Hz, between :data:`MIN_S` and :data:`MAX_FILE_S`."""
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError):
        return False
    return info.samplerate >= MIN_RATE and MIN_S <= info.duration <= MAX_FILE_S


def source_files(source: Source) -> list[str]:
    """The usable sound-event files of one source, sorted (before removing duplicates).

    Arguments
    ---------
    source : Source
        The source.

    Returns
    -------
    list of str
        Paths (installed, or unpacked under :func:`common.deb_root`).
    """
    paths = sorted({p for g in source.globs for p in find(g, recursive="**" in g)})
    return [p for p in paths if not is_excluded(source, p) and _usable(p)]


def _digest(path: str) -> str:
    """sha1 of a file's bytes."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _deduplicated(per_source: list[list[str]]) -> list[list[str]]:
    """Drops files whose bytes repeat an earlier file (sources in order, paths sorted)."""
    sizes: dict[int, int] = {}
    for files in per_source:
        for p in files:
            size = Path(p).stat().st_size
            sizes[size] = sizes.get(size, 0) + 1
    seen: set[str] = set()
    out = []
    for files in per_source:
        kept = []
        for p in files:
            if sizes[Path(p).stat().st_size] > 1:  # only files sharing a size can be copies
                digest = _digest(p)
                if digest in seen:
                    continue
                seen.add(digest)
            kept.append(p)
        out.append(kept)
    return out


def _source(name: str) -> Source:
    """The source called ``name``."""
    return next(s for s in SOURCES if s.name == name)


def list_files(tier: str, seed: int) -> list[tuple[str, str]]:
    """(source, path) of a tier's sound-event files: each source in a seeded order,
    interleaved (one file of each source in turn) so that a limited tier mixes them evenly.

    Arguments
    ---------
    tier : str
        A key of :data:`TIERS`.
    seed : int
        Selection seed.

    Returns
    -------
    list of (str, str)
        Source name and path of each file, in selection order.
    """
    limit = TIERS[tier]["files"]
    per_source = _deduplicated([source_files(s) for s in SOURCES])
    queues = []
    for source, files in zip(SOURCES, per_source):
        order = rng_for(seed, f"sfx/{source.name}").permutation(len(files))
        queues.append([(source.name, files[i]) for i in order])
    chosen = [q[k] for k in range(max(map(len, queues), default=0)) for q in queues if k < len(q)]
    return chosen if limit is None else chosen[:limit]


def write_batch(files: list[tuple[str, str]], max_s: float | None, out: Path,
                sample_rate: int) -> list[Clip]:
    """Decodes, resamples and writes a batch of sound-event files.

    A file shorter than :data:`MIN_S` or quieter than :data:`MIN_DB` (after the cut), or that
    cannot be decoded, is skipped.

    Arguments
    ---------
    files : list of (str, str)
        Source name and path of each file (from :func:`list_files`).
    max_s : float, optional
        Seconds kept from the start of each file (None: all of it).
    out : Path
        Corpus folder (clips go to ``out/wav/sfx/``).
    sample_rate : int
        Output rate in Hz.

    Returns
    -------
    list of Clip
        The written clips (``bandwidth``: half the file's native rate).
    """
    clips = []
    for name, path in files:
        source = _source(name)
        try:
            x = load_mono(path, sample_rate)
            rate = native_rate(path)
        except (RuntimeError, sf.LibsndfileError):  # an unreadable file is skipped
            continue
        if max_s is not None:
            x = x[: int(max_s * sample_rate)]
        if len(x) < MIN_S * sample_rate or rms_db(x) < MIN_DB:
            continue
        clips.append(write_clip(out, clip_id(source, path), "sfx",
                                group_of(name, path, source.variants), x, sample_rate,
                                source=_installed(path), bandwidth=rate / 2))
    return clips


def jobs(tier: str, out: Path, sample_rate: int, seed: int) -> list[Callable[[], list[Clip]]]:
    """The independent jobs of a tier: batches of :data:`BATCH` files, each returning its clips.

    Arguments
    ---------
    tier : str
        A key of :data:`TIERS`.
    out : Path
        Corpus folder.
    sample_rate : int
        Output rate in Hz.
    seed : int
        Selection seed.

    Returns
    -------
    list of callable
        Jobs to run in any order, on any thread.
    """
    max_s = TIERS[tier]["max_s"]
    files = list_files(tier, seed)
    return [lambda b=files[k:k + BATCH]: write_batch(b, max_s, out, sample_rate)
            for k in range(0, len(files), BATCH)]
