"""Speech of the demo corpus: real recorded voices from Debian packages, plus synthetic voices.

Real voices (each a ``source``; ``group`` is what the train/valid/test split keeps together):

* the two fish of Fish Fillets NG in Czech and Dutch (``fillets-ng-data-cs``/``-nl``; the
  files name the speaker: ``<level>-m-*`` the small fish, ``<level>-v-*`` the big one), one group
  per fish;
* Asterisk's telephony prompts (8 kHz): ``en_US_f_Allison``, ``fr_CA_f_June``, ``it_IT_m_Carlo``,
  ``ru_RU_f_IvrvoiceRU`` (``asterisk-core-sounds-*-wav``), the Colombian Spanish and the French
  (Armelle Desjardins) prompts (``asterisk-prompt-es-co``, ``asterisk-prompt-fr-armelle``); one
  group per voice;
* Hedgewars' voice packs (``hedgewars-data``, one actor each; ``Russian`` and ``Russian_pl`` are
  kept in one group in case they share an actor);
* the community recordings of KLettres (letters and syllables), KTuberling (words) and Tux Paint
  (stamp descriptions), one voice per package and language. A volunteer may have recorded the
  same language for several of them, so these are grouped **by language across the three
  packages** (``speech/lang_<code>``, regional variants and Norwegian Bokmål/Nynorsk folded):
  no voice lands in two splits. ``da/alpha`` of KLettres is skipped (its headers claim 128 kHz)
  and so are KTuberling's ``sr@*`` folders (copies of ``sr``).

Utterances of a voice are shuffled (seeded) and concatenated with short pauses into passages of
about ``clip_s`` seconds, up to a per-voice budget. Synthetic voices (``flite``, ``espeak-ng``,
reading :data:`SENTENCES`) are marked ``synthetic`` and counted apart from real speakers.
``codec2-examples`` was looked at and left out: a few minutes of amateur-radio recordings, mostly
codec outputs of the same few files.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from os.path import realpath
from pathlib import Path

import numpy as np

from gass_modules.dataio.mixer import rms_db

from .common import (
    Clip,
    find,
    load_mono,
    native_rate,
    passages,
    rng_for,
    slug,
    write_clip,
)

FILLETS = "/usr/share/games/fillets-ng/sound"
ASTERISK = "/usr/share/asterisk/sounds"
ASTERISK_VOICES = {  # voice -> (glob under ASTERISK, group)
    "asterisk_en_allison": ("en_US_f_Allison/**/*.wav", "asterisk_en_allison"),
    "asterisk_fr_june": ("fr_CA_f_June/**/*.wav", "asterisk_fr_june"),
    "asterisk_it_carlo": ("it_IT_m_Carlo/**/*.wav", "asterisk_it_carlo"),
    "asterisk_ru_ivrvoice": ("ru_RU_f_IvrvoiceRU/**/*.wav", "asterisk_ru_ivrvoice"),
    "asterisk_es_co": ("es/**/*.gsm", "asterisk_es_co"),
    "asterisk_fr_armelle": ("fr/**/*.gsm", "asterisk_fr_armelle"),
}
HEDGEWARS = "/usr/share/games/hedgewars/Data/Sounds/voices"
KLETTRES = "/usr/share/klettres"
KTUBERLING = "/usr/share/ktuberling/sounds"
TUXPAINT = "/usr/share/tuxpaint/stamps"

# What each input needs: (Debian package, a glob or program that it installs).
REQUIREMENTS = (
    ("fillets-ng-data-cs", f"{FILLETS}/*/cs/*.ogg"),
    ("fillets-ng-data-nl", f"{FILLETS}/*/nl/*.ogg"),
    ("asterisk-core-sounds-en-wav", f"{ASTERISK}/en_US_f_Allison/*.wav"),
    ("asterisk-core-sounds-fr-wav", f"{ASTERISK}/fr_CA_f_June/*.wav"),
    ("asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo/*.wav"),
    ("asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU/*.wav"),
    ("asterisk-prompt-es-co", f"{ASTERISK}/es/*.gsm"),
    ("asterisk-prompt-fr-armelle", f"{ASTERISK}/fr/*.gsm"),
    ("hedgewars-data", f"{HEDGEWARS}/*/*.ogg"),
    ("klettres-data", f"{KLETTRES}/*/alpha/*.ogg"),
    ("ktuberling-data", f"{KTUBERLING}/*/*.ogg"),
    ("tuxpaint-stamps-default", f"{TUXPAINT}/**/*_desc_fr.ogg"),
    ("flite", "bin:flite"),
    ("espeak-ng", "bin:espeak-ng"),
)
FLITE_VOICES = ("slt", "awb", "rms", "kal16")
ESPEAK_VOICES = ("en-us", "en-gb+f3", "en-gb-scotland", "en-029+f2", "en-gb-x-rp+m3",
                 "en-us+f4")

# What each tier takes. voice_s: seconds of speech per real voice at most (None: all);
# voices: how many of each kind (None: all), in a seeded order.
TIERS = {
    "small": {"voice_s": 7.0, "fillets": ("cs_m", "cs_v", "nl_m", "nl_v"), "asterisk": 0,
              "hedgewars": 0, "languages": 0, "flite_voices": 1, "espeak_voices": 1,
              "tts_clips": 1, "clip_s": 7.0},
    "full": {"voice_s": 360.0, "fillets": ("cs_m", "cs_v", "nl_m", "nl_v"), "asterisk": None,
             "hedgewars": None, "languages": None, "flite_voices": 4, "espeak_voices": 6,
             "tts_clips": 6, "clip_s": 10.0},
    "large": {"voice_s": None, "fillets": ("cs_m", "cs_v", "nl_m", "nl_v"), "asterisk": None,
              "hedgewars": None, "languages": None, "flite_voices": 4, "espeak_voices": 6,
              "tts_clips": 12, "clip_s": 10.0},
}
# Languages folded into one group (a volunteer may have recorded related variants).
LANGUAGE_FOLDS = {"nb": "no", "nn": "no", "en_GB": "en", "pt_BR": "pt"}

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


@dataclass
class Voice:
    """One recorded voice: its files, the split group it belongs to and its source name."""

    source: str
    group: str
    files: list[str]


def language_group(code: str) -> str:
    """The split group of a community recording's language code.

    Arguments
    ---------
    code : str
        A folder or suffix language code (``fr``, ``pt_BR``, ``sr@latin``, ``nn``).

    Returns
    -------
    str
        ``speech/lang_<language>`` with regional variants folded.

    Example
    -------
    >>> language_group("pt_BR"), language_group("nn"), language_group("sr@latin")
    ('speech/lang_pt', 'speech/lang_no', 'speech/lang_sr')
    """
    code = LANGUAGE_FOLDS.get(code, code)
    base = re.split(r"[_@]", code)[0]
    return f"speech/lang_{LANGUAGE_FOLDS.get(base, base)}"


def community_voices() -> list[Voice]:
    """The KLettres, KTuberling and Tux Paint voices, one per package and language.

    Returns
    -------
    list of Voice
        Voices with at least one file, grouped by language (see :func:`language_group`).
    """
    by_voice: dict[tuple[str, str], list[str]] = {}
    for path in find(f"{KLETTRES}/*/*/*.ogg"):
        lang, kind = Path(path).parts[-3], Path(path).parts[-2]
        if lang == "da" and kind == "alpha":  # headers claim 128 kHz
            continue
        by_voice.setdefault(("klettres", lang), []).append(path)
    for path in find(f"{KTUBERLING}/*/*.*"):
        lang = Path(path).parts[-2]
        if "@" in lang or Path(path).suffix not in (".ogg", ".wav", ".opus"):
            continue  # sr@* folders are copies of sr
        by_voice.setdefault(("ktuberling", lang), []).append(path)
    for path in find(f"{TUXPAINT}/**/*_desc*.ogg", recursive=True):
        match = re.search(r"_desc(?:_([A-Za-z@]+(?:_[A-Z]+)?))?\.ogg$", path)
        if match:
            by_voice.setdefault(("tuxpaint", match.group(1) or "en"), []).append(path)
    return [Voice(f"{pkg}_{slug(lang)}", language_group(lang), files)
            for (pkg, lang), files in sorted(by_voice.items())]


def dedicated_voices() -> list[Voice]:
    """Voices with a group of their own: Fillets' fish, Asterisk's prompts, Hedgewars' packs.

    Returns
    -------
    list of Voice
        In a fixed order; a voice whose package is missing has no files.
    """
    voices = []
    for speaker in ("cs_m", "cs_v", "nl_m", "nl_v"):
        lang, fish = speaker.split("_")
        files = find(f"{FILLETS}/*/{lang}/*-{fish}-*.ogg")
        voices.append(Voice(f"fillets_{speaker}", f"speech/fillets_{speaker}", files))
    for name, (pattern, group) in ASTERISK_VOICES.items():
        files = sorted({realpath(f): f for f in find(f"{ASTERISK}/{pattern}", recursive=True)
                        if "/silence/" not in f}.values())
        voices.append(Voice(name, f"speech/{group}", files))
    for folder in find(f"{HEDGEWARS}/*"):
        pack = Path(folder).name
        group = "russian" if pack.startswith("Russian") else slug(pack)
        voices.append(Voice(f"hedgewars_{slug(pack)}", f"speech/hedgewars_{group}",
                            find(f"{folder}/*.ogg")))
    return voices


def _recorded_voice(voice: Voice, budget_s: float | None, clip_s: float, out: Path,
                    sample_rate: int, seed: int) -> list[Clip]:
    """Passages of one recorded voice: shuffled utterances until ``budget_s`` seconds.

    A voice's band is that of its most common native rate; the few utterances recorded at a
    lower rate are left out, so every passage holds one band (the clip's ``bandwidth``).
    """
    rng = rng_for(seed, voice.source)
    rates = []
    for path in voice.files:
        try:
            rates.append(native_rate(path))
        except RuntimeError:  # an unreadable file is skipped
            rates.append(0)
    known = [r for r in rates if r > 0]
    if not known:
        return []
    values, counts = np.unique(known, return_counts=True)
    rate = int(values[np.argmax(counts)])
    utterances, total = [], 0.0
    for i in rng.permutation(len(voice.files)):
        if rates[i] < rate:
            continue
        x = load_mono(voice.files[i], sample_rate)
        if len(x) == 0 or rms_db(x) < -50.0:
            continue
        utterances.append(x)
        total += len(x) / sample_rate
        if budget_s is not None and total >= budget_s:
            break
    return [write_clip(out, f"speech-{voice.source}-{k:03d}", "speech", voice.group, p,
                       sample_rate, source=voice.source, bandwidth=rate / 2)
            for k, p in enumerate(passages(utterances, sample_rate, clip_s))]


def _tts_voice(engine: str, voice: str, index: int, num_clips: int, out: Path,
               sample_rate: int) -> list[Clip]:
    """Clips of one synthetic voice, each reading three sentences (a rotation per voice)."""
    name = f"{engine}_{slug(voice)}"
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
            clips.append(write_clip(out, f"speech-{name}-{k:03d}", "speech", f"speech/{name}",
                                    x, sample_rate, source=name, bandwidth=native_rate(wav) / 2,
                                    synthetic=True))
    return clips


def voices(tier: str, seed: int) -> list[Voice]:
    """The recorded voices a tier uses.

    Arguments
    ---------
    tier : str
        ``small``, ``full`` or ``large``.
    seed : int
        Order of the voices when a tier takes only some.

    Returns
    -------
    list of Voice
        Voices with files.
    """
    cfg = TIERS[tier]
    chosen = []
    dedicated = dedicated_voices()
    chosen += [v for v in dedicated if v.source[len("fillets_"):] in cfg["fillets"]
               and v.source.startswith("fillets_")]
    for prefix, key in (("asterisk_", "asterisk"), ("hedgewars_", "hedgewars")):
        some = [v for v in dedicated if v.source.startswith(prefix)]
        chosen += some if cfg[key] is None else some[: cfg[key]]
    community = community_voices()
    if cfg["languages"] is not None:
        langs = sorted({v.group for v in community})
        order = rng_for(seed, "languages").permutation(len(langs))
        keep = {langs[i] for i in order[: cfg["languages"]]}
        community = [v for v in community if v.group in keep]
    return [v for v in chosen + community if v.files]


def jobs(tier: str, out: Path, sample_rate: int, seed: int) -> list[Callable[[], list[Clip]]]:
    """The independent jobs of a tier's speech, each returning the clips it wrote.

    Arguments
    ---------
    tier : str
        ``small``, ``full`` or ``large``.
    out : Path
        Corpus folder.
    sample_rate : int
        Output rate in Hz.
    seed : int
        Selection seed.

    Returns
    -------
    list of callable
        One job per voice.
    """
    cfg = TIERS[tier]
    work: list[Callable[[], list[Clip]]] = []
    for voice in voices(tier, seed):
        work.append(lambda v=voice: _recorded_voice(v, cfg["voice_s"], cfg["clip_s"], out,
                                                    sample_rate, seed))
    for i, name in enumerate(FLITE_VOICES[: cfg["flite_voices"]]):
        work.append(lambda v=name, i=i: _tts_voice("flite", v, i, cfg["tts_clips"], out,
                                                   sample_rate))
    for i, name in enumerate(ESPEAK_VOICES[: cfg["espeak_voices"]]):
        work.append(lambda v=name, i=i: _tts_voice("espeak", v, i + 10, cfg["tts_clips"], out,
                                                   sample_rate))
    return work
