"""Benchmark recipes (FUSS, Libri2Mix, DnR, MUSDB18) end to end on tiny official-layout trees.

``benchmark_fixtures.py`` writes each dataset's official layout from the real audio of the
``demo_corpus_small`` fixture. On it:

* every ``prepare.py`` reads the layout, and the manifests' items equal the official files;
* wrong paths and partial downloads (missing split, missing stem, truncated file) raise the
  documented ``LayoutError``; MUSDB18 ``.stem.mp4`` needs ffmpeg (or a working stempeg);
* every benchmark row of ``tests/recipes.csv`` trains and evaluates in debug mode with the row's
  own flags, and its results are recomputed from the exported model folder with independent
  numpy references;
* every benchmark fine-tunes from a checkpoint of the GASS recipe (run here in debug mode at
  8 kHz with 4 outputs) at the GASS model's rate and outputs, all weights transferred (or, with
  ``finetune_rate: benchmark``, at the benchmark's rate with kernels converted), and evaluates
  the GASS model folder as it is (no tuning).

Recipes run in-process through their ``train.main(argv)`` (the command line a user types,
without a Python start-up per run, which would double the suite time).
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import math
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import benchmark_fixtures as fixtures  # tests/integration is on sys.path (no __init__.py)
import numpy as np
import pytest
import soundfile as sf
import torch

from gass_modules.dataio.benchmark_sets import load_benchmark_set
from gass_modules.dataio.benchmarks import LayoutError
from gass_modules.inference.separator import GASSSeparator
from gass_modules.training.checkpointing import AtomicCheckpointer

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"FUSS": "FUSS", "Libri2Mix": "LibriMix", "DnR": "DnR", "MUSDB18": "MUSDB18"}
ALL_ROWS = list(csv.DictReader(open(ROOT / "tests" / "recipes.csv", newline="")))
ROWS = [r for r in ALL_ROWS if r["Dataset"] in FOLDERS]
GASS_ROW = next(r for r in ALL_ROWS if r["Dataset"] == "GASS"
                and r["Hparam_file"].endswith("tdanet_wav.yaml"))
# one intra-op thread, as the recipe subprocesses of test_recipes.py (OMP_NUM_THREADS=1): tiny
# models gain nothing from a second thread on a busy 2-core machine
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


# ----------------------------------------------------------------------------------------------
# helpers and fixtures
# ----------------------------------------------------------------------------------------------
def load_recipe_module(folder: str, name: str) -> types.ModuleType:
    """Imports ``recipes/<folder>/separation/<name>.py`` with its folder first on sys.path.

    The four recipes each have a ``prepare.py``: the cached module is dropped before and after,
    so each ``train.py`` gets its own.
    """
    recipe_dir = ROOT / "recipes" / folder / "separation"
    sys.modules.pop("prepare", None)
    sys.path.insert(0, str(recipe_dir))
    try:
        spec = importlib.util.spec_from_file_location(f"_{folder}_{name}",
                                                      recipe_dir / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(recipe_dir))
        sys.modules.pop("prepare", None)


def run_row(row: dict, data: Path, out: Path, *extra: str):
    """Runs a csv row's recipe in debug mode (its own flags), returns the SeparationBrain."""
    train = load_recipe_module(FOLDERS[row["Dataset"]], "train")
    argv = [str(ROOT / row["Hparam_file"]), f"--data_folder={data}", f"--output_folder={out}",
            "--device=cpu", *shlex.split(row["test_debug_flags"]), *extra]
    return train.main(argv)


def check_card(row: dict) -> None:
    """Fails when the model card of a row (hparams/models/<name>.yaml) is missing: the card is
    a project file, so its absence is a regression, never a reason to skip the row."""
    card = ROOT / "hparams" / "models" / Path(row["Hparam_file"]).name
    assert card.is_file(), (f"{row['Dataset']} row {row['Hparam_file']}: its model card "
                            f"{card.relative_to(ROOT)} is missing (restore it, or remove the "
                            "row from tests/recipes.csv with its recipe yaml)")


def row_for(dataset: str, model: str = "tdanet_wav") -> dict:
    """The csv row of a benchmark and model."""
    return next(r for r in ROWS if r["Dataset"] == dataset and
                Path(r["Hparam_file"]).stem == model)


@pytest.fixture(scope="session")
def benchmark_data(demo_corpus_small, tmp_path_factory) -> dict[str, Path]:
    """One tiny official-layout tree per benchmark (real audio)."""
    root = tmp_path_factory.mktemp("benchmark_data")
    return {
        "FUSS": fixtures.make_fuss(root / "fuss", demo_corpus_small, per_split=4),
        "Libri2Mix": fixtures.make_librimix(root / "librimix", demo_corpus_small),
        "DnR": fixtures.make_dnr(root / "dnr", demo_corpus_small, seconds=1.0),
        "MUSDB18": fixtures.make_musdb(root / "musdb", demo_corpus_small, seconds=1.0),
    }


@pytest.fixture(scope="session")
def gass_run(demo_corpus_small, tmp_path_factory) -> Path:
    """The GASS recipe (tdanet_wav row of recipes.csv: debug, tiny card, 8 kHz, 4 outputs).

    Returns its output folder: ``save/`` (checkpoints, kept by ``--debug_persistently``) and
    ``model/`` (the exported model folder).
    """
    out = tmp_path_factory.mktemp("gass") / "exp"
    spec = importlib.util.spec_from_file_location(
        "_gass_train", ROOT / "recipes" / "GASS" / "separation" / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    argv = [str(ROOT / GASS_ROW["Hparam_file"]), f"--data_folder={demo_corpus_small.root}",
            f"--output_folder={out}", "--device=cpu", *shlex.split(GASS_ROW["test_debug_flags"])]
    train.run(*train.build(argv))
    assert (out / "model" / "separator.ckpt").is_file()
    return out


def np_si_snr(ref: np.ndarray, est: np.ndarray, zero_mean: bool = True) -> float:
    """SI-SNR (dB) of one estimate, float64 (zero-mean by default)."""
    if zero_mean:
        ref, est = ref - ref.mean(), est - est.mean()
    proj = np.dot(est, ref) / np.dot(ref, ref) * ref
    return 10 * math.log10(np.dot(proj, proj) / np.dot(est - proj, est - proj))


def np_oracle_si_snri(refs: np.ndarray, est: np.ndarray, mix: np.ndarray) -> float:
    """Mean SI-SNRi over references, outputs assigned by brute force (the assignment that
    maximises the summed SI-SNR without mean removal, as the FUSS/PIT evaluation matches)."""
    best, best_score = None, -np.inf
    for perm in itertools.permutations(range(est.shape[1]), refs.shape[1]):
        score = sum(np_si_snr(refs[:, k], est[:, j], False) for k, j in enumerate(perm))
        if score > best_score:
            best, best_score = perm, score
    return float(np.mean([np_si_snr(refs[:, k], est[:, j]) - np_si_snr(refs[:, k], mix)
                          for k, j in enumerate(best)]))


def not_loaded(report: str) -> set[str]:
    """Names listed after "not loaded (left as initialised):" in a transfer.txt."""
    line = next((x for x in report.splitlines() if x.startswith("not loaded")), "")
    entries = line.split(": ", 1)[1].split("; ") if line else []
    return {entry.split(": ")[0] for entry in entries}


def separate_test_file(model_folder: Path, path: str) -> np.ndarray:
    """``[C, T, S]`` estimates of one test file by a model folder, in model output order."""
    sep = GASSSeparator.from_hparams(source=model_folder, run_opts={"device": "cpu"})
    channels = sf.info(path).channels
    result = sep.separate_to_files(path, channels="each" if channels > 1 else "mix",
                                   keep_silent=True)
    est = torch.empty_like(result.sources)
    est[..., torch.as_tensor(result.kept)] = result.sources
    return est.double().numpy()


# ----------------------------------------------------------------------------------------------
# prepare.py on the official layouts
# ----------------------------------------------------------------------------------------------
PREPARE = {"FUSS": "prepare_fuss", "Libri2Mix": "prepare_librimix", "DnR": "prepare_dnr",
           "MUSDB18": "prepare_musdb"}
COUNTS = {"FUSS": (4, 4, 4), "Libri2Mix": (3, 3, 3), "DnR": (3, 3, 3), "MUSDB18": (2, 1, 2)}


@pytest.mark.parametrize("dataset", list(FOLDERS))
def test_prepare_reads_the_official_layout(dataset, benchmark_data, tmp_path):
    """Split sizes, categories and numbers of sources; items equal the official files."""
    prepare = getattr(load_recipe_module(FOLDERS[dataset], "prepare"), PREPARE[dataset])
    paths = prepare(data_folder=benchmark_data[dataset], save_folder=tmp_path)
    rows = {s: list(csv.DictReader(open(p))) for s, p in paths.items()}
    assert tuple(len(rows[s]) for s in ("train", "valid", "test")) == COUNTS[dataset]
    if dataset == "FUSS":
        assert [r["active_sources"] for r in rows["test"]] == ["1", "2", "3", "4"]
        assert rows["test"][3]["source_categories"] == "background;foreground;foreground;" \
                                                      "foreground"
    if dataset == "MUSDB18":
        assert [r["ID"] for r in rows["valid"]] == ["train/Actions - One Minute Smile"]
        assert all("Actions" not in r["ID"] for r in rows["train"])
    # every test item equals the files it was read from
    num_slots = len(rows["test"][0]["source_categories"].split(";"))
    data = load_benchmark_set(paths["test"], num_slots,
                              replacements={"data_root": str(benchmark_data[dataset])})
    for index, row in enumerate(rows["test"]):
        item = data[index]
        mix, _ = sf.read(item["mix_wav"], dtype="float32", always_2d=True)
        np.testing.assert_array_equal(item["mix"].numpy(), mix.T)
        for k in range(num_slots):
            wav = row[f"s{k + 1}_wav"].replace("$data_root", str(benchmark_data[dataset]))
            ref = sf.read(wav, dtype="float32", always_2d=True)[0].T if wav else 0.0
            np.testing.assert_array_equal(item["targets"][..., k].numpy(), ref)
    # a second run with the same options leaves the manifests alone
    stamp = paths["test"].stat().st_mtime_ns
    prepare(data_folder=benchmark_data[dataset], save_folder=tmp_path)
    assert paths["test"].stat().st_mtime_ns == stamp


DAMAGE = {
    # dataset: (split folder to delete, a stem file to delete, a file to truncate), relative
    "FUSS": ("ssdata_reverb/validation", "ssdata_reverb/eval/example00002_sources/"
             "foreground1_sound.wav", "ssdata_reverb/train/example00003.wav"),
    "Libri2Mix": ("Libri2Mix/wav8k/min/dev", "Libri2Mix/wav8k/min/test/s2/"
                  "test_001-0000_002-0001.wav", "Libri2Mix/wav8k/min/train-360/mix_clean/"
                  "train-360_000-0000_001-0001.wav"),
    "DnR": ("dnr_v2/tt", "dnr_v2/cv/1006/music.wav", "dnr_v2/tr/1001/sfx.wav"),
    "MUSDB18": ("test", "train/Demo Band - First Song/bass.wav",
                "test/Other Band - Test Song/vocals.wav"),
}


@pytest.mark.parametrize("dataset", list(FOLDERS))
def test_wrong_or_partial_layouts_raise_the_documented_error(dataset, benchmark_data, tmp_path):
    """Wrong path, a missing split folder, a missing stem and a truncated file: LayoutError
    naming the expected layout and the broken files; nothing is written."""
    prepare = getattr(load_recipe_module(FOLDERS[dataset], "prepare"), PREPARE[dataset])
    save = tmp_path / "save"
    with pytest.raises(LayoutError, match="Expected the official layout") as err:
        prepare(data_folder=tmp_path / "not_there", save_folder=save)
    assert "does not exist" in str(err.value)
    split, stem, truncated = DAMAGE[dataset]
    for what in ("split", "stem", "truncated"):
        copy = tmp_path / what
        shutil.copytree(benchmark_data[dataset], copy)
        if what == "split":
            fixtures.remove(copy / split)
            expected = f"missing folders .*{Path(split).name}"
        elif what == "stem":
            fixtures.remove(copy / stem)
            expected = f"1 of \\d+ examples are incomplete.*missing file .*{Path(stem).name}"
        else:
            fixtures.truncate(copy / truncated)
            expected = f"examples are incomplete.*{Path(truncated).name}"
        with pytest.raises(LayoutError, match=expected):
            prepare(data_folder=copy, save_folder=save)
        assert not list(save.glob("*.csv"))


def write_stem_mp4(path: Path, streams: list[np.ndarray], rate: int) -> None:
    """A MUSDB18-style ``.stem.mp4``: the streams (mixture, drums, bass, other, vocals) as AAC
    audio streams of one mp4, muxed by the ffmpeg program (as MUSDB18's own files are)."""
    cmd = ["ffmpeg", "-v", "error", "-y"]
    for k, x in enumerate(streams):
        sf.write(path.parent / f"{path.name}.{k}.wav", x.astype(np.float32), rate,
                 subtype="FLOAT")
        cmd += ["-i", str(path.parent / f"{path.name}.{k}.wav")]
    for k in range(len(streams)):
        cmd += ["-map", str(k)]
    subprocess.run([*cmd, "-c:a", "aac", "-b:a", "256k", str(path)], check=True)
    for k in range(len(streams)):
        (path.parent / f"{path.name}.{k}.wav").unlink()


def test_musdb_stem_mp4_needs_ffmpeg_or_is_decoded_with_stempeg(tmp_path, monkeypatch):
    """Without a usable stempeg the error names ffmpeg; with ffmpeg, real .stem.mp4 files
    (written here by ffmpeg, AAC) are decoded once by stempeg into the HQ layout, streams 0-4 =
    mixture, drums, bass, other, vocals, each within AAC's error of what was encoded."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.fail("ffmpeg/ffprobe not installed: tools/setup_env.sh installs the packages of "
                    "tools/debian-packages.txt (apt-get install ffmpeg)")
    prepare = load_recipe_module("MUSDB18", "prepare")
    data, rate = tmp_path / "musdb18", 44100
    tracks = {"train": ["Actions - One Minute Smile", "Band - Song"], "test": ["Band - Test"]}
    t = np.arange(rate) / rate
    originals = {}
    for split, names in tracks.items():
        (data / split).mkdir(parents=True)
        for n, name in enumerate(names):
            stems = [0.2 * np.stack([np.sin(2 * np.pi * f * (n + 1) * t),
                                     np.sin(2 * np.pi * 1.01 * f * (n + 1) * t)], 1)
                     for f in (110, 165, 220, 330)]  # drums, bass, other, vocals
            originals[(split, name)] = [sum(stems), *stems]
            write_stem_mp4(data / split / f"{name}.stem.mp4", originals[(split, name)], rate)

    def broken():
        raise RuntimeError("found MUSDB18 .stem.mp4 files, which need stempeg and the ffmpeg "
                           "program")

    with monkeypatch.context() as patch:
        patch.setattr(prepare, "_stempeg", broken)
        with pytest.raises(RuntimeError, match="ffmpeg"):
            prepare.prepare_musdb(data, tmp_path / "save")
    paths = prepare.prepare_musdb(data, tmp_path / "save")
    rows = {s: list(csv.DictReader(open(p))) for s, p in paths.items()}
    assert [len(rows[s]) for s in ("train", "valid", "test")] == [1, 1, 1]
    decoded = tmp_path / "save" / "musdb18_decoded"
    for (split, name), streams in originals.items():
        for k, stem in enumerate(("mixture", "drums", "bass", "other", "vocals")):
            wav = decoded / split / name / f"{stem}.wav"
            assert sf.info(wav).channels == 2 and sf.info(wav).subtype == "PCM_16"
            got = sf.read(wav, dtype="float64")[0][: rate]
            err = got - streams[k][: len(got)]
            snr = 10 * math.log10(np.sum(streams[k][: len(got)] ** 2) / np.sum(err ** 2))
            assert len(got) == rate and snr > 20, (split, name, stem, snr)  # AAC at 256 kb/s
    assert Path(rows["test"][0]["s4_wav"]) == decoded / "test" / "Band - Test" / "vocals.wav"
    stamp = (decoded / "test" / "Band - Test" / "vocals.wav").stat().st_mtime_ns
    prepare.decode_stems(data, decoded)  # already decoded: skipped
    assert (decoded / "test" / "Band - Test" / "vocals.wav").stat().st_mtime_ns == stamp


# ----------------------------------------------------------------------------------------------
# debug runs of every csv row
# ----------------------------------------------------------------------------------------------
HEADLINE = {"FUSS": ["MSi", "1S SI-SNR"], "Libri2Mix": ["SI-SNRi", "SDRi"],
            "DnR": ["SDR avg", "SI-SDR avg"], "MUSDB18": ["cSDR avg", "uSDR avg"]}
NATIVE = {"FUSS": (4, 16000), "Libri2Mix": (2, 8000), "DnR": (3, 44100), "MUSDB18": (4, 44100)}
NATIVE_STEMS = {"FUSS": ("s1", "s2", "s3", "s4"), "Libri2Mix": ("s1", "s2"),
                "DnR": ("speech", "music", "sfx"), "MUSDB18": ("drums", "bass", "other", "vocals")}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['Dataset']}-{Path(r['Hparam_file']).stem}"
                                           for r in ROWS])
def test_recipe_debug_run(row, benchmark_data, tmp_path):
    """Trains, evaluates whole test recordings, writes results and exports the best checkpoint;
    a row of results.csv is recomputed from the exported model (every benchmark)."""
    check_card(row)
    dataset = row["Dataset"]
    out = tmp_path / "exp"
    brain = run_row(row, benchmark_data[dataset], out)
    results = list(csv.DictReader(open(out / "eval" / "results.csv")))
    assert len(results) >= 1 and len(results) == len(brain.scorer.rows)
    summary = (out / "eval" / "summary.md").read_text()
    for metric in HEADLINE[dataset]:
        assert f"| {metric} |" in summary
    assert all(math.isfinite(v) for k, v in brain.scorer.summary().items()
               if k in HEADLINE[dataset] and not (dataset == "FUSS" and k == "1S SI-SNR"))
    best = AtomicCheckpointer(out / "save").find_checkpoint(min_key="loss")
    exported = torch.load(out / "model" / "separator.ckpt", weights_only=True)
    saved = torch.load(best.paramfiles["separator"], weights_only=True)
    assert exported.keys() == saved.keys() and all(torch.equal(exported[k], saved[k])
                                                   for k in saved)
    sep = GASSSeparator.from_hparams(source=out / "model", run_opts={"device": "cpu"})
    assert (sep.num_sources, sep.sample_rate) == NATIVE[dataset]
    # labelled stems (DnR, MUSDB18) are stitched in output order, PIT outputs re-aligned
    assert (sep.order == "fixed") is (dataset in ("DnR", "MUSDB18"))
    recompute_from_the_exported_model(dataset, results, out, benchmark_data[dataset])
    # the experiment folder keeps the recipe's train.py, not the library it calls
    script = ROOT / "recipes" / FOLDERS[dataset] / "separation" / "train.py"
    assert (out / "train.py").read_bytes() == script.read_bytes()
    assert not (out / "finetune.py").exists() and not (out / "recipe.py").exists()


def recompute_from_the_exported_model(dataset: str, results: list[dict], out: Path,
                                      data: Path) -> None:
    """Recomputes a debug run's figures from its exported model folder, independently: the
    test recordings separated by ``GASSSeparator`` (not the brain), scored with numpy (FUSS,
    Libri2Mix, DnR, MUSDB18 uSDR) and museval (MUSDB18 cSDR) against ``results.csv``."""
    stems = len(NATIVE_STEMS[dataset])
    test = load_benchmark_set(out / "save" / "test.csv", stems,
                              replacements={"data_root": str(data)})
    items = {test[i]["id"]: test[i] for i in range(len(test))}
    # FUSS: the row with the most active references (the PIT assignment matters most)
    row = max(results, key=lambda r: int(r.get("num_active_refs", 0)))
    item = items[row["id"]]
    est = separate_test_file(out / "model", item["mix_wav"])  # [C, T, S] in model order
    refs, mix = item["targets"].double().numpy(), item["mix"].double().numpy()  # [C, T, S]
    if dataset == "Libri2Mix":
        assert float(row["si_snri"]) == pytest.approx(
            np_oracle_si_snri(refs[0], est[0], mix[0]), abs=1e-3)
    elif dataset == "FUSS":  # SI-SNR without mean removal, outputs assigned by brute force
        active = [k for k in range(stems) if np.any(refs[0, :, k])]
        assert int(row["num_active_refs"]) == len(active) >= 1
        best = max(itertools.permutations(range(est.shape[-1]), len(active)),
                   key=lambda perm: sum(np_si_snr(refs[0, :, k], est[0, :, j], False)
                                        for k, j in zip(active, perm)))
        for k, j in zip(active, best):
            stem = NATIVE_STEMS[dataset][k]
            value = np_si_snr(refs[0, :, k], est[0, :, j], False)
            assert float(row[f"si_snr_{stem}"]) == pytest.approx(value, abs=1e-3)
            assert float(row[f"si_snri_{stem}"]) == pytest.approx(
                value - np_si_snr(refs[0, :, k], mix[0], False), abs=1e-3)
    elif dataset == "DnR":  # output k is stem k; SDR and zero-mean SI-SDR per stem
        for k, stem in enumerate(NATIVE_STEMS[dataset]):
            s, e = refs[..., k].ravel(), est[..., k].ravel()
            sdr = 10 * math.log10((np.dot(s, s) + 1e-7) / (np.dot(s - e, s - e) + 1e-7))
            assert float(row[f"sdr_{stem}"]) == pytest.approx(sdr, abs=1e-3)
            assert float(row[f"si_sdr_{stem}"]) == pytest.approx(np_si_snr(s, e), abs=1e-3)
    else:  # MUSDB18, stereo: uSDR over both channels, cSDR from museval's bss_eval (v4)
        from gass_modules.evaluation.benchmark_metrics import _museval_metrics

        rate = sf.info(item["mix_wav"]).samplerate
        # museval refuses silent references; v4 (bsseval_sources_version=False) scores each
        # stem against its own reference only, so the others are scored without them
        active = [k for k in range(stems) if np.any(refs[..., k])]
        frames = _museval_metrics().bss_eval(
            refs[..., active].transpose(2, 1, 0), est[..., active].transpose(2, 1, 0),
            window=rate, hop=rate, compute_permutation=False, filters_len=512,
            framewise_filters=False, bsseval_sources_version=False)[0]  # [S', frames]
        for k, stem in enumerate(NATIVE_STEMS[dataset]):
            s, e = refs[..., k].ravel(), est[..., k].ravel()
            usdr = 10 * math.log10((np.dot(s, s) + 1e-7) / (np.dot(s - e, s - e) + 1e-7))
            if k not in active:  # the metrics module's convention: a silent reference, -100 dB
                usdr = -100.0 if np.any(e) else 0.0
            assert float(row[f"usdr_{stem}"]) == pytest.approx(usdr, abs=1e-3)
            csdr = np.nanmedian(frames[active.index(k)]) if k in active else usdr
            assert float(row[f"csdr_{stem}"]) == pytest.approx(csdr, abs=1e-2), stem


# ----------------------------------------------------------------------------------------------
# fine-tuning from the GASS recipe's checkpoint, and GASS as it is
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", list(FOLDERS))
def test_finetune_from_the_gass_recipe_checkpoint(dataset, benchmark_data, gass_run, tmp_path):
    """finetune_rate: model (the default): the model keeps GASS's rate (8 kHz) and 4 outputs,
    every tensor loads (100 %, in transfer.txt, transfer.json and eval/headline.json), the
    benchmark audio is resampled in and the outputs out; then it trains and evaluates."""
    row = row_for(dataset)
    out = tmp_path / "exp"
    source = gass_run / ("save" if dataset in ("FUSS", "DnR") else "model")
    run_row(row, benchmark_data[dataset], out, f"--pretrained_path={source}")
    report = (out / "transfer.txt").read_text()
    assert "(100.0% of the values)" in report and not_loaded(report) == set()
    assert "source model: 4 sources at 8000 Hz" in report
    assert json.loads((out / "transfer.json").read_text())["transferred_fraction"] == 1.0
    headline = json.loads((out / "eval" / "headline.json").read_text())
    assert headline["transferred_fraction"] == 1.0 and headline["finetune_rate"] == "model"
    tuned = GASSSeparator.from_hparams(source=out / "model", run_opts={"device": "cpu"})
    assert (tuned.num_sources, tuned.sample_rate) == (4, 8000)
    gass = torch.load(gass_run / "model" / "separator.ckpt", weights_only=True)
    assert gass.keys() == tuned.mods.separator.state_dict().keys()
    results = list(csv.DictReader(open(out / "eval" / "results.csv")))
    assert len(results) >= 1  # scored at the benchmark's rate against its own stems


def test_finetune_transfers_values_before_training(benchmark_data, gass_run, tmp_path):
    """With no training epoch, the exported model holds the GASS tensors exactly; at the
    benchmark's rate (FUSS, 16 kHz, ``finetune_rate: benchmark``) TDANet-Wav's encoder and
    decoder kernels are resampled to twice their taps (the same ms) and everything else loads."""
    from gass_modules.training.rate_conversion import resample_kernel

    gass = torch.load(gass_run / "model" / "separator.ckpt", weights_only=True)
    out = tmp_path / "model_rate"
    run_row(row_for("Libri2Mix"), benchmark_data["Libri2Mix"], out,
            f"--pretrained_path={gass_run / 'model'}", "--number_of_epochs=0")
    tuned = torch.load(out / "model" / "separator.ckpt", weights_only=True)
    assert tuned.keys() == gass.keys() and all(torch.equal(tuned[k], gass[k]) for k in gass)
    out = tmp_path / "benchmark_rate"
    run_row(row_for("FUSS"), benchmark_data["FUSS"], out, f"--pretrained_path={gass_run / 'model'}",
            "--number_of_epochs=0", "--finetune_rate=benchmark")
    tuned = torch.load(out / "model" / "separator.ckpt", weights_only=True)
    converted = json.loads((out / "transfer.json").read_text())["converted"]
    assert converted and all(tuned[k].shape[-1] == 2 * gass[k].shape[-1] for k in converted)
    for k in gass:
        expected = resample_kernel(gass[k], tuned[k].shape[-1]) if k in converted else gass[k]
        assert torch.equal(tuned[k], expected), k
    sep = GASSSeparator.from_hparams(source=out / "model", run_opts={"device": "cpu"})
    assert (sep.num_sources, sep.sample_rate) == (4, 16000)
    assert "finetune_rate: benchmark" in (out / "transfer.txt").read_text()


def test_fixed_order_finetuning_starts_from_outputs_matched_to_the_stems(benchmark_data, gass_run,
                                                                       tmp_path):
    """DnR (``order: fixed``): before training, the pre-trained outputs are renumbered to where
    the model puts each stem on the validation mixtures (output_order.json); with no training
    epoch the exported model computes exactly the GASS model's outputs in that order. A PIT task
    (Libri2Mix, ``aligned``) keeps them as they are, and ``finetune_match_outputs=False`` too."""
    gass = GASSSeparator.from_hparams(source=gass_run / "model", run_opts={"device": "cpu"})
    out = tmp_path / "dnr"
    run_row(row_for("DnR"), benchmark_data["DnR"], out, f"--pretrained_path={gass_run / 'model'}",
            "--number_of_epochs=0")
    matched = json.loads((out / "output_order.json").read_text())
    assert matched["applied"] and sorted(matched["order"]) == [0, 1, 2, 3]
    assert len(matched["counts"]) == 3 and matched["kept"] >= matched["before"]
    tuned = GASSSeparator.from_hparams(source=out / "model", run_opts={"device": "cpu"})
    mix = torch.randn(1, 4000, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = gass.mods.separator.eval()(mix)[..., matched["order"]]
        torch.testing.assert_close(tuned.mods.separator.eval()(mix), expected)
    kept = tmp_path / "dnr_kept"
    run_row(row_for("DnR"), benchmark_data["DnR"], kept,
            f"--pretrained_path={gass_run / 'model'}", "--number_of_epochs=0",
            "--finetune_match_outputs=False")
    assert not (kept / "output_order.json").exists()
    pit = tmp_path / "libri"
    run_row(row_for("Libri2Mix"), benchmark_data["Libri2Mix"], pit,
            f"--pretrained_path={gass_run / 'model'}", "--number_of_epochs=0")
    assert not (pit / "output_order.json").exists()


@pytest.mark.parametrize("dataset", list(FOLDERS))
def test_no_tuning_evaluates_the_gass_model_as_it_is(dataset, benchmark_data, gass_run,
                                                     tmp_path):
    """The 4-output 8-kHz GASS model on each benchmark: resampled, aligned, scored;
    nothing is trained."""
    row = row_for(dataset)
    out = tmp_path / "exp"
    brain = run_row(row, benchmark_data[dataset], out, f"--pretrained_path={gass_run / 'model'}",
                    "--no_tuning=True")
    assert brain.scorer.order == "aligned"
    assert brain.separator.num_sources == 4
    assert brain.separator.sample_rate == 8000
    results = list(csv.DictReader(open(out / "eval_no_tuning" / "results.csv")))
    assert len(results) == len(brain.scorer.rows) >= 1
    assert "no tuning" in (out / "eval_no_tuning" / "summary.md").read_text()
    assert not (out / "model").exists() and not list((out / "save").glob("CKPT+*"))
    if dataset == "Libri2Mix":  # recompute: 4 outputs, the 2 best-matching ones scored
        test = load_benchmark_set(out / "save" / "test.csv", 2,
                                  replacements={"data_root": str(benchmark_data[dataset])})
        item = next(test[i] for i in range(len(test)) if test[i]["id"] == results[0]["id"])
        est = separate_test_file(gass_run / "model", item["mix_wav"])[0]  # [T, 4]
        refs, mix = item["targets"][0].double().numpy(), item["mix"][0].double().numpy()
        assert float(results[0]["si_snri"]) == pytest.approx(np_oracle_si_snri(refs, est, mix),
                                                             abs=1e-3)


def test_no_tuning_needs_a_model_folder(benchmark_data, gass_run, tmp_path):
    """A checkpoint folder is not enough to rebuild the GASS model as it is: the error says so."""
    with pytest.raises(ValueError, match="no_tuning evaluates a pre-trained GASS model"):
        run_row(row_for("DnR"), benchmark_data["DnR"], tmp_path / "exp",
                f"--pretrained_path={gass_run / 'save'}", "--no_tuning=True")


def test_a_resumed_benchmark_run_reproduces_an_uninterrupted_one(benchmark_data, tmp_path):
    """Stopped after epoch 1 and resumed, a benchmark recipe ends with the weights of a run that
    went through both epochs at once: the random training crops and dropout draw from torch's
    global generator, whose state each rank's checkpoint keeps (``RandomStates``)."""
    row = row_for("Libri2Mix")

    def run(out: Path, epochs: int) -> None:
        flags = shlex.split(row["test_debug_flags"])
        flags = [f for f in flags if not f.startswith("--debug_epochs")] + [
            f"--debug_epochs={epochs}"]
        train = load_recipe_module(FOLDERS[row["Dataset"]], "train")
        train.main([str(ROOT / row["Hparam_file"]), f"--data_folder={benchmark_data['Libri2Mix']}",
                    f"--output_folder={out}", "--device=cpu", *flags])

    run(tmp_path / "once", 2)
    run(tmp_path / "resumed", 1)
    run(tmp_path / "resumed", 2)  # recovers the epoch-1 checkpoint, trains epoch 2
    once = torch.load(tmp_path / "once" / "model" / "separator.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "model" / "separator.ckpt", weights_only=True)
    assert once.keys() == resumed.keys()
    assert all(torch.equal(once[k], resumed[k]) for k in once), "the resumed run diverged"
