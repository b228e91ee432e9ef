"""Data preparation for the ASR front-end recipe: English speech with transcripts, and test
mixtures of that speech with the demo corpus's music and sound events.

No transcribed English corpus can be downloaded here, and the demo corpus
(``tools/build_demo_corpus.py``) lists its speech without transcripts (its manifests are source
lists for the separation mixer). This script builds the transcribed speech from the same Debian
sources, so every word is known:

* **synthetic sentences** read by ``flite`` (5 voices) and ``espeak-ng`` (9 voice variants), with
  a random speaking rate (and pitch for espeak-ng) per utterance. Sentences come from a small
  seeded grammar (:data:`TEMPLATES`, :data:`WORDS`: about 180 words), so a small CTC model can
  learn the vocabulary on a CPU in minutes; train, valid and test sentences are disjoint (a test
  sentence is never heard in training), the voices are shared;
* **digit strings read by a person**: the Asterisk prompt voice's ``digits/0.wav`` ...
  ``digits/9.wav`` (``asterisk-core-sounds-en-wav``), concatenated into 3-6 digit strings.
  (The Debian package ships no transcript file for its other prompts, so they are not used:
  the digits are the prompts whose words follow from their file names.)

Each utterance is written as 16-bit wav at ``sample_rate`` at a random level (-30..-20 dBFS RMS)
and listed in ``train.csv``, ``valid.csv`` and ``test.csv`` (SpeechBrain columns ``ID,
duration, wav, spk_id, wrd``; paths as ``$data_root/...``).

**Test mixtures** (``test_mix.csv``: ``ID, duration, mix, speech, noise, wrd, sir_db,
interferers``): every test utterance plus 1-3 clips of the demo corpus's *test* split that are not
speech (music stems, sound events: never seen by a separator trained on its train split; music
and sound events equally likely, the stems sharing music's weight), each cropped at random and
placed at a random offset, with relative levels drawn in -6..0 dB and the sum scaled to a
speech-to-interference ratio drawn uniformly in ``sir_range`` dB; the three signals are rescaled
together if the mixture would clip, so ``mix == speech + noise``.

Preparation is skipped when ``<asr_folder>/prepare_opts.json`` records the same options.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gass_modules.dataio.manifest import Manifest
from gass_modules.dataio.mixer import resample, rms_db

logger = logging.getLogger(__name__)

ASTERISK_DIGITS = Path("/usr/share/asterisk/sounds/en_US_f_Allison/digits")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FLITE_VOICES = ("kal", "awb", "rms", "slt", "kal16")
ESPEAK_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-029+f2", "en-gb-scotland",
                 "en-gb-x-rp+f4", "en-us+m7", "en-gb-x-rp+m1")
SPLITS = ("train", "valid", "test")
ASR_COLUMNS = ("ID", "duration", "wav", "spk_id", "wrd")
MIX_COLUMNS = ("ID", "duration", "mix", "speech", "noise", "wrd", "sir_db", "interferers")

# A small grammar: each template's {slots} are filled from WORDS (the slot name without digits).
TEMPLATES = (
    "please {verb} the {adj} {noun} {prep} the {place}",
    "{name} {past} {number} {adj} {nouns} {time}",
    "the {adj} {noun} {prep} the {place} is {adj2}",
    "can you {verb} the {noun} before {event}",
    "{name} and {name2} {went} to the {place} {time}",
    "there are {number} {nouns} {prep} the {adj} {place}",
    "i think the {adj} {noun} belongs to {name}",
    "{name} {past} the {noun} {prep} the {place} {time}",
    "we need {number} {adj} {nouns} for the {place}",
    "do not {verb} the {adj} {noun} until {event}",
)
WORDS = {
    "verb": "move put bring take open close paint clean carry find push pull wash fix hide check",
    "past": "bought found painted carried lost sold cleaned borrowed counted ordered dropped fixed",
    "went": "walked drove ran cycled travelled hurried went returned",
    "adj": "red blue green yellow black white small large heavy old new wooden broken shiny "
           "quiet warm dusty empty",
    "noun": "box chair table lamp bottle book window basket bicycle kettle ladder blanket bucket "
            "mirror clock cup door key ball hat",
    "nouns": "boxes chairs tables lamps bottles books baskets bicycles cups keys apples oranges "
             "candles pencils",
    "place": "kitchen garden station market office library garage bedroom harbour bakery school "
             "hospital park museum bridge river",
    "prep": "near behind under inside beside above",
    "name": "anna peter maria james lucy david sarah thomas emma robert olivia daniel",
    "number": "two three four five six seven eight nine ten twelve twenty",
    "time": "yesterday|this morning|last week|on monday|on friday|after lunch|at noon|tonight",
    "event": "dinner|noon|midnight|the meeting|the weekend|sunrise",
}


def _slot_words(slot: str) -> list[str]:
    """Choices of a template slot (``adj2`` draws from ``adj``)."""
    table = WORDS[slot.rstrip("0123456789")]
    return table.split("|") if "|" in table else table.split()


def generate_sentences(count: int, rng: np.random.Generator,
                       exclude: set[str] | None = None) -> list[str]:
    """Draws ``count`` distinct sentences from the grammar, none of them in ``exclude``.

    Arguments
    ---------
    count : int
        Sentences to draw.
    rng : numpy.random.Generator
        Source of randomness.
    exclude : set of str, optional
        Sentences that must not be drawn (other splits); drawn sentences are added to it.

    Returns
    -------
    list of str
        Lower-case sentences, words separated by single spaces.
    """
    exclude = set() if exclude is None else exclude
    out: list[str] = []
    for _ in range(100 * count + 100):
        if len(out) == count:
            break
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        fields = {}
        for slot in _template_slots(template):
            choices = _slot_words(slot)
            fields[slot] = choices[int(rng.integers(len(choices)))]
        sentence = template.format(**fields)
        if sentence not in exclude:
            exclude.add(sentence)
            out.append(sentence)
    if len(out) < count:
        raise RuntimeError(f"the grammar gave only {len(out)} distinct sentences of {count}")
    return out


def _template_slots(template: str) -> list[str]:
    """Slot names of a template, in order."""
    return [part.split("}")[0] for part in template.split("{")[1:]]


def synthesize(text: str, engine: str, voice: str, rng: np.random.Generator,
               sample_rate: int) -> np.ndarray:
    """Reads ``text`` aloud with flite or espeak-ng at a random rate; mono float32 samples.

    Arguments
    ---------
    text : str
        What to say.
    engine : str
        ``flite`` or ``espeak-ng``.
    voice : str
        The engine's voice name.
    rng : numpy.random.Generator
        Speaking rate (and espeak-ng's pitch).
    sample_rate : int
        Output rate in Hz (torchaudio resampling).

    Returns
    -------
    numpy.ndarray
        ``[T]`` samples.
    """
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        if engine == "flite":
            stretch = rng.uniform(0.85, 1.2)
            cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-t",
                   text, "-o", str(wav)]
        elif engine == "espeak-ng":
            cmd = ["espeak-ng", "-v", voice, "-s", str(int(rng.integers(135, 186))), "-p",
                   str(int(rng.integers(30, 71))), "-w", str(wav), text]
        else:
            raise ValueError(f"engine must be 'flite' or 'espeak-ng', got {engine!r}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"{engine} -v {voice} failed (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[:300]}; is the Debian package installed "
                               "(tools/debian-packages.txt)?")
        data, rate = sf.read(wav, dtype="float32", always_2d=True)
    return _at_rate(data.mean(axis=1), rate, sample_rate)


def _at_rate(x: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """Mono float32 samples resampled (torchaudio, through the mixer's helper) if needed."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if rate != sample_rate:
        x = resample(torch.from_numpy(x), rate, sample_rate).numpy()
    return x


def digit_string(digits: list[int], rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """The Asterisk voice reading ``digits`` (its digit prompts with 50-150 ms pauses).

    Arguments
    ---------
    digits : list of int
        Digits 0-9.
    rng : numpy.random.Generator
        Pause lengths.
    sample_rate : int
        Output rate in Hz.

    Returns
    -------
    numpy.ndarray
        ``[T]`` samples.
    """
    parts = []
    for d in digits:
        data, rate = sf.read(ASTERISK_DIGITS / f"{d}.wav", dtype="float32", always_2d=True)
        parts += [_at_rate(data.mean(axis=1), rate, sample_rate),
                  np.zeros(int(rng.uniform(0.05, 0.15) * sample_rate), dtype=np.float32)]
    return np.concatenate(parts[:-1])


def _utterance(uid: str, split: str, spec: tuple, seed: int, folder: Path,
               sample_rate: int) -> dict:
    """Synthesises (or assembles) one utterance, writes it, returns its csv row."""
    rng = np.random.default_rng([seed, SPLITS.index(split), int(uid.rsplit("-", 1)[1])])
    kind, speaker, words = spec
    if kind == "digits":
        x = digit_string([DIGIT_WORDS.index(w) for w in words.split()], rng, sample_rate)
    else:
        x = synthesize(words, kind, speaker, rng, sample_rate)
    level = rms_db(x)
    if not math.isfinite(level):
        raise RuntimeError(f"{kind} {speaker} produced silence for {words!r}")
    x = x * np.float32(10 ** ((rng.uniform(-30.0, -20.0) - level) / 20))
    peak = float(np.abs(x).max())
    if peak > 0.95:
        x *= np.float32(0.95 / peak)
    rel = Path("wav") / split / f"{uid}.wav"
    sf.write(folder / rel, x, sample_rate, subtype="PCM_16")
    return {"ID": uid, "duration": f"{len(x) / sample_rate:.3f}", "wav": f"$data_root/{rel}",
            "spk_id": f"{kind}_{speaker}".replace("+", "_"), "wrd": words}


def _specs(split: str, count: int, rng: np.random.Generator, digit_fraction: float,
           used: set[str]) -> list[tuple[str, str, str]]:
    """``(engine or "digits", voice, words)`` for each utterance of a split."""
    voices = [("flite", v) for v in FLITE_VOICES] + [("espeak-ng", v) for v in ESPEAK_VOICES]
    num_digits = int(round(digit_fraction * count))
    sentences = generate_sentences(count - num_digits, rng, used)
    specs = []
    for k in range(count):
        if k < num_digits:
            while True:  # digit strings are disjoint across splits too
                n = int(rng.integers(3, 7))
                words = " ".join(DIGIT_WORDS[int(d)] for d in rng.integers(0, 10, n))
                if words not in used:
                    used.add(words)
                    break
            specs.append(("digits", "asterisk", words))
        else:
            engine, voice = voices[int(rng.integers(len(voices)))]
            specs.append((engine, voice, sentences[k - num_digits]))
    order = rng.permutation(count)
    return [specs[i] for i in order]


def _write_csv(path: Path, columns: tuple, rows: list[dict]) -> None:
    """Writes rows as a SpeechBrain csv."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def interferer_manifest(data_folder: str | Path) -> Manifest:
    """The non-speech clips of a source manifest folder's test split.

    Arguments
    ---------
    data_folder : str or Path
        A folder with ``test.csv`` (``tools/build_demo_corpus.py`` or ``tools/make_manifest.py``
        output).

    Returns
    -------
    Manifest
        The test clips whose category is not ``speech``.
    """
    csv_path = Path(data_folder) / "test.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"expected the source manifest {csv_path}; pass the demo corpus "
                                "folder (tools/build_demo_corpus.py writes it) as --data_folder")
    manifest = Manifest.from_csv(csv_path)
    rows = [i for i in range(len(manifest))
            if manifest.categories[manifest.category_codes[i]] != "speech"]
    if not rows:
        raise ValueError(f"{csv_path} lists no clip that is not speech (categories "
                         f"{list(manifest.categories)}); the mixtures need music or sound events")
    return manifest.select(rows)


def _read_clip(manifest: Manifest, row: int, sample_rate: int) -> np.ndarray:
    """A whole manifest clip, mono, at ``sample_rate``."""
    data, rate = sf.read(manifest.paths[row], dtype="float32", always_2d=True)
    return _at_rate(data.mean(axis=1), rate, sample_rate)


def make_mixture(speech: np.ndarray, manifest: Manifest, rng: np.random.Generator,
                 sample_rate: int, sir_range: tuple[float, float],
                 max_interferers: int = 3) -> tuple[np.ndarray, np.ndarray, float, list[str]]:
    """Adds 1..``max_interferers`` non-speech clips to ``speech`` at a random SIR.

    Arguments
    ---------
    speech : numpy.ndarray
        ``[T]`` the utterance.
    manifest : Manifest
        Interfering clips (:func:`interferer_manifest`).
    rng : numpy.random.Generator
        Clips, crops, offsets, levels and SIR.
    sample_rate : int
        Rate of ``speech`` and of the output.
    sir_range : tuple of float
        ``(low, high)`` speech-to-interference ratio in dB.
    max_interferers : int
        Most clips added.

    Returns
    -------
    tuple
        ``(speech [T], noise [T], sir_db, categories)``: the (possibly rescaled) speech and the
        interference, ``mix = speech + noise``.
    """
    length = len(speech)
    noise = np.zeros(length, dtype=np.float32)
    categories = []
    families: dict[str, list[str]] = {}  # music_drums, music_bass, ... weigh as one "music"
    for c in manifest.categories:
        if len(manifest.indices_of(c)):
            families.setdefault(c.split("_")[0], []).append(c)
    names = sorted(families)
    for _ in range(int(rng.integers(1, max_interferers + 1))):
        family = families[names[int(rng.integers(len(names)))]]
        category = family[int(rng.integers(len(family)))]
        for _attempt in range(20):  # skip silent crops, as the GASS mixer does
            clip = _read_clip(manifest, manifest.draw(category, rng), sample_rate)
            if len(clip) > length:
                start = int(rng.integers(len(clip) - length + 1))
                clip = clip[start:start + length]
            if rms_db(clip) > -60.0:
                break
        else:
            raise RuntimeError(f"20 crops of category {category!r} were silent")
        offset = int(rng.integers(length - len(clip) + 1))
        placed = np.zeros(length, dtype=np.float32)
        placed[offset:offset + len(clip)] = clip * np.float32(
            10 ** ((rng.uniform(-6.0, 0.0) - rms_db(clip)) / 20))
        noise += placed
        categories.append(category)
    sir = float(rng.uniform(*sir_range))
    noise *= np.float32(10 ** ((rms_db(speech) - sir - rms_db(noise)) / 20))
    peak = float(np.abs(speech + noise).max())
    if peak > 0.95:
        speech, noise = speech * np.float32(0.95 / peak), noise * np.float32(0.95 / peak)
    return speech.astype(np.float32), noise.astype(np.float32), sir, categories


def prepare_asr_frontend(asr_folder: str | Path, data_folder: str | Path,
                         num_train: int, num_valid: int, num_test: int,
                         sample_rate: int = 16000, seed: int = 1234,
                         digit_fraction: float = 0.15, sir_range: tuple[float, float] = (-5, 5),
                         num_workers: int = 2) -> dict[str, Path]:
    """Writes the ASR corpus (train/valid/test csv) and the test mixtures (test_mix.csv).

    Arguments
    ---------
    asr_folder : str or Path
        Output folder (wav/, mix/, the csv files, prepare_opts.json).
    data_folder : str or Path
        Source manifests for the interferers (the demo corpus folder, its ``test.csv``).
    num_train, num_valid, num_test : int
        Utterances per split.
    sample_rate : int
        Output rate in Hz.
    seed : int
        Seed of sentences, voices, levels and mixtures.
    digit_fraction : float
        Share of each split that is Asterisk digit strings.
    sir_range : tuple of float
        Speech-to-interference ratio range of the test mixtures (dB).
    num_workers : int
        Parallel synthesis jobs.

    Returns
    -------
    dict
        ``train``, ``valid``, ``test`` and ``test_mix`` csv paths.
    """
    folder = Path(asr_folder)
    out = {s: folder / f"{s}.csv" for s in (*SPLITS, "test_mix")}
    opts = {"data_folder": str(Path(data_folder).resolve()),
            "num": [num_train, num_valid, num_test], "sample_rate": sample_rate, "seed": seed,
            "digit_fraction": digit_fraction, "sir_range": list(sir_range),
            "version": 1}
    opts_file = folder / "prepare_opts.json"
    if opts_file.is_file() and all(p.is_file() for p in out.values()):
        if json.loads(opts_file.read_text()) == opts:
            logger.info(f"ASR front-end data already prepared in {folder}")
            return out
    if min(num_train, num_valid, num_test) < 1:
        raise ValueError(f"expected at least one utterance per split, got {opts['num']}")
    for sub in ("wav", "mix"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    for split in SPLITS:
        (folder / "wav" / split).mkdir(parents=True, exist_ok=True)
    (folder / "mix").mkdir(parents=True, exist_ok=True)
    manifest = interferer_manifest(data_folder)  # fail early if absent
    used: set[str] = set()
    rng = np.random.default_rng([seed, 99])
    rows = {}
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        for split, count in zip(SPLITS, (num_train, num_valid, num_test)):
            specs = _specs(split, count, rng, digit_fraction, used)
            jobs = [pool.submit(_utterance, f"{split}-{k:05d}", split, spec, seed, folder,
                                sample_rate) for k, spec in enumerate(specs)]
            rows[split] = [j.result() for j in jobs]
            _write_csv(out[split], ASR_COLUMNS, rows[split])
            logger.info(f"{split}: {count} utterances, "
                        f"{sum(float(r['duration']) for r in rows[split]) / 60:.1f} min")
    mix_rows = []
    for k, row in enumerate(rows["test"]):
        mix_rng = np.random.default_rng([seed, 7, k])
        speech, _ = sf.read(folder / row["wav"].replace("$data_root/", ""), dtype="float32")
        speech, noise, sir, cats = make_mixture(speech, manifest, mix_rng, sample_rate,
                                                tuple(sir_range))
        paths = {}
        for name, signal in (("mix", speech + noise), ("speech", speech), ("noise", noise)):
            rel = Path("mix") / f"{row['ID']}_{name}.wav"
            sf.write(folder / rel, signal, sample_rate, subtype="FLOAT")
            paths[name] = f"$data_root/{rel}"
        mix_rows.append({"ID": row["ID"], "duration": row["duration"], **paths,
                         "wrd": row["wrd"], "sir_db": f"{sir:.2f}",
                         "interferers": ";".join(cats)})
    _write_csv(out["test_mix"], MIX_COLUMNS, mix_rows)
    opts_file.write_text(json.dumps(opts, indent=1))
    return out
