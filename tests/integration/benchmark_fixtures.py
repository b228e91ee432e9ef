"""Tiny copies of FUSS, Libri2Mix, DnR and MUSDB18-HQ in their official layouts, from real audio.

Each ``make_*`` function writes a few short mixtures in the layout the dataset is distributed
in (see the recipes' ``prepare.py``), built from the clips of the ``demo_corpus_small`` fixture
(speech, music stems and sound events from Debian packages), resampled with torchaudio to the
dataset's rate. Sources are real recordings; mixtures are their sums (plus a noise floor for DnR,
as DnR has). ``break_*`` helpers then damage a tree the way a partial download does.

Used by ``tests/integration/test_benchmark_recipes.py`` only.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gass_modules.dataio.mixer import resample


@dataclass
class Clips:
    """Demo-corpus clips by category, at one rate: ``Clips.take(category, seconds, k)``.

    Arguments
    ---------
    root : pathlib.Path
        The demo corpus folder (``demo_corpus_small.root``).
    manifests : dict
        Split name to manifest csv (``demo_corpus_small.manifests``).
    rate : int
        The rate clips are returned at.
    """

    root: Path
    manifests: dict
    rate: int

    def __post_init__(self) -> None:
        self.paths: dict[str, list[Path]] = {}
        for manifest in self.manifests.values():
            with open(manifest, newline="") as f:
                for row in csv.DictReader(f):
                    path = Path(row["wav"].replace("$data_root", str(self.root)))
                    self.paths.setdefault(row["category"], []).append(path)
        self._cache: dict[Path, np.ndarray] = {}

    def _load(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
            mono = torch.from_numpy(audio.mean(1))
            self._cache[path] = resample(mono, rate, self.rate).numpy()
        return self._cache[path]

    def take(self, category: str, seconds: float, k: int) -> np.ndarray:
        """The ``k``-th clip of a category (cycling), cut or looped to ``seconds``, peak 0.3.

        Arguments
        ---------
        category : str
            ``speech``, ``sfx``, ``music_drums``, ``music_bass`` or ``music_other``.
        seconds : float
            Length.
        k : int
            Which clip (and which offset into it).

        Returns
        -------
        numpy.ndarray
            ``[round(seconds * rate)]`` float32.
        """
        paths = self.paths[category]
        clip = self._load(paths[k % len(paths)])
        n = round(seconds * self.rate)
        level = float(np.sqrt(np.mean(clip**2)))
        out = np.resize(clip, n)
        for attempt in range(16):  # an offset whose excerpt is not (nearly) silent
            start = ((k + attempt) * 977) % max(1, len(clip) - n) if len(clip) > n else 0
            out = np.resize(clip[start:], n).astype(np.float32)  # loops short clips
            if float(np.sqrt(np.mean(out**2))) > 0.1 * level:
                break
        peak = float(np.abs(out).max())
        return out * (0.3 / peak) if peak > 0 else out


def _write(path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)


def make_fuss(root: Path, corpus, version: str = "ssdata_reverb", per_split: int = 3,
              seconds: float = 1.0) -> Path:
    """FUSS: ``<root>/<version>/{train,validation,eval}`` with example lists, 16 kHz.

    Example ``i`` of a split has ``1 + i % 4`` sources (background + foregrounds), so every split
    with 4 examples covers 1-4 sources.

    Arguments
    ---------
    root : pathlib.Path
        The folder to create (the recipe's ``data_folder``).
    corpus
        The ``demo_corpus_small`` fixture.
    version : str
        ``ssdata_reverb`` or ``ssdata``.
    per_split : int
        Examples per split.
    seconds : float
        Length of each example.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    clips = Clips(corpus.root, corpus.manifests, 16000)
    base = root / version
    for offset, split in enumerate(("train", "validation", "eval")):
        lines = []
        for i in range(per_split):
            k = i + 5 * offset  # other clips (and offsets) in every split
            name = f"example{i:05d}"
            folder = base / split / f"{name}_sources"
            count = 1 + i % 4
            sources = [clips.take("music_other", seconds, k)]
            names = ["background0_sound.wav"]
            for j in range(count - 1):
                sources.append(clips.take("sfx" if j % 2 == 0 else "speech", seconds, k + j))
                names.append(f"foreground{j}_sound.wav")
            for audio, file in zip(sources, names):
                _write(folder / file, audio, 16000)
            mix = np.sum([sf.read(folder / f, dtype="float32")[0] for f in names], axis=0)
            _write(base / split / f"{name}.wav", mix, 16000)
            lines.append("\t".join([f"{split}/{name}.wav"] +
                                   [f"{split}/{name}_sources/{f}" for f in names]))
        (base / f"{split}_example_list.txt").write_text("\n".join(lines) + "\n")
    return root


def make_librimix(root: Path, corpus, rate: int = 8000, mode: str = "min", per_split: int = 3,
                  seconds: float = 1.0, metadata: bool = True) -> Path:
    """Libri2Mix: ``<root>/Libri2Mix/wav<k>/<mode>/{train-360,dev,test}/...`` + metadata csvs.

    Arguments
    ---------
    root : pathlib.Path
        The folder to create (the recipe's ``data_folder``).
    corpus
        The ``demo_corpus_small`` fixture.
    rate : int
        8000 or 16000.
    mode : str
        ``min`` or ``max``.
    per_split : int
        Mixtures per split.
    seconds : float
        Length of each mixture.
    metadata : bool
        Write ``metadata/mixture_<split>_mix_clean.csv`` (and ``mix_both``).

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    clips = Clips(corpus.root, corpus.manifests, rate)
    base = root / "Libri2Mix" / f"wav{rate // 1000}k" / mode
    for offset, split in enumerate(("train-360", "dev", "test")):
        rows = {"mix_clean": [], "mix_both": []}
        for i in range(per_split):
            k = i + 5 * offset  # other clips (and offsets) in every split
            mix_id = f"{split}_{i:03d}-0000_{i + 1:03d}-0001"
            s1 = clips.take("speech", seconds, 2 * k)
            s2 = 0.7 * clips.take("speech", seconds, 2 * k + 1)
            noise = 0.1 * clips.take("sfx", seconds, k)
            files = {"s1": s1, "s2": s2, "noise": noise, "mix_clean": s1 + s2,
                     "mix_both": s1 + s2 + noise}
            for folder, audio in files.items():
                _write(base / split / folder / f"{mix_id}.wav", audio, rate)
            for kind in rows:
                rows[kind].append([mix_id, str(base / split / kind / f"{mix_id}.wav"),
                                   str(base / split / "s1" / f"{mix_id}.wav"),
                                   str(base / split / "s2" / f"{mix_id}.wav"),
                                   str(base / split / "noise" / f"{mix_id}.wav"),
                                   len(s1)])
        if metadata:
            (base / "metadata").mkdir(parents=True, exist_ok=True)
            for kind, kind_rows in rows.items():
                with open(base / "metadata" / f"mixture_{split}_{kind}.csv", "w",
                          newline="") as f:
                    writer = csv.writer(f)
                    writer.writerow(["mixture_ID", "mixture_path", "source_1_path",
                                     "source_2_path", "noise_path", "length"])
                    writer.writerows(kind_rows)
    return root


def make_dnr(root: Path, corpus, per_split: int = 3, seconds: float = 1.5,
             rate: int = 44100) -> Path:
    """DnR v2: ``<root>/dnr_v2/{tr,cv,tt}/<id>/{mix,speech,music,sfx}.wav``, 44.1 kHz, float.

    Arguments
    ---------
    root : pathlib.Path
        The folder to create (the recipe's ``data_folder``).
    corpus
        The ``demo_corpus_small`` fixture.
    per_split : int
        Mixtures per split.
    seconds : float
        Length of each mixture.
    rate : int
        Sample rate.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    clips = Clips(corpus.root, corpus.manifests, rate)
    gen = np.random.default_rng(0)
    for offset, split in enumerate(("tr", "cv", "tt")):
        for i in range(per_split):
            k = i + 5 * offset  # other clips (and offsets) in every split
            folder = root / "dnr_v2" / split / f"{1000 + k}"
            stems = {"speech": clips.take("speech", seconds, k),
                     "music": 0.5 * (clips.take("music_other", seconds, k)
                                     + clips.take("music_bass", seconds, k)),
                     "sfx": 0.6 * clips.take("sfx", seconds, k)}
            floor = 1e-4 * gen.standard_normal(len(stems["speech"])).astype(np.float32)
            for name, audio in stems.items():
                _write(folder / f"{name}.wav", audio, rate, "FLOAT")
            _write(folder / "mix.wav", sum(stems.values()) + floor, rate, "FLOAT")
            (folder / "annots.csv").write_text("file,class,mix start time\n")
    return root


MUSDB_TRACKS = {"train": ["Actions - One Minute Smile", "Demo Band - First Song",
                          "Demo Band - Second Song"],
                "test": ["Demo Band - Test Song", "Other Band - Test Song"]}


def make_musdb(root: Path, corpus, seconds: float = 1.5, rate: int = 44100) -> Path:
    """MUSDB18-HQ: ``<root>/{train,test}/<track>/{mixture,drums,bass,other,vocals}.wav``, stereo.

    ``train`` holds one official validation track (``Actions - One Minute Smile``), so the
    validation split is not empty.

    Arguments
    ---------
    root : pathlib.Path
        The folder to create (the recipe's ``data_folder``).
    corpus
        The ``demo_corpus_small`` fixture.
    seconds : float
        Length of each track.
    rate : int
        Sample rate.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    clips = Clips(corpus.root, corpus.manifests, rate)
    sources = {"drums": "music_drums", "bass": "music_bass", "other": "music_other",
               "vocals": "speech"}
    k = 0
    for split, tracks in MUSDB_TRACKS.items():
        for track in tracks:
            folder = root / split / track
            total = 0
            for j, (stem, category) in enumerate(sources.items()):
                mono = clips.take(category, seconds, k)
                pan = 0.3 + 0.4 * ((j + k) % 3) / 2  # a stereo image per stem
                stereo = np.stack([pan * mono, (1 - pan) * mono], axis=1)
                _write(folder / f"{stem}.wav", stereo, rate)
                total = total + sf.read(folder / f"{stem}.wav", dtype="float32")[0]
            _write(folder / "mixture.wav", total, rate)
            k += 1
    return root


def remove(path: Path) -> None:
    """Deletes a file or folder (to simulate a partial download).

    Arguments
    ---------
    path : pathlib.Path
        What to delete.
    """
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def truncate(path: Path) -> None:
    """Overwrites a file with a few garbage bytes (an interrupted transfer).

    Arguments
    ---------
    path : pathlib.Path
        The file.
    """
    path.write_bytes(b"RIFF\x00\x00")
