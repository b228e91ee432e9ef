"""Tests of gass_modules.dataio.benchmarks: layout errors, header probes, manifests, and the
benchmark datasets' values (crops, downmix, resampling, empty slots) against the files read
directly with soundfile and resampled independently with torchaudio.functional.
"""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from gass_modules.dataio.benchmark_sets import load_benchmark_set
from gass_modules.dataio.benchmarks import (
    BenchmarkExample,
    LayoutError,
    manifests_ready,
    probe_examples,
    require_folders,
    write_manifests,
)


def make_example(folder, name, length, rate=44100, channels=2, sources=("a", "b"), seed=0):
    """Writes a mixture and its sources (float wav); returns the example and the arrays."""
    gen = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {s: gen.uniform(-0.4, 0.4, (length, channels)).astype(np.float32) for s in sources}
    arrays["mix"] = sum(arrays[s] for s in sources)
    for key, value in arrays.items():
        sf.write(folder / f"{name}_{key}.wav", value, rate, subtype="FLOAT")
    example = BenchmarkExample(name, folder / f"{name}_mix.wav",
                               tuple(folder / f"{name}_{s}.wav" for s in sources), tuple(sources))
    return example, arrays


def prepare(tmp_path, examples, slots=3):
    """Manifest of one split named 'test'."""
    return write_manifests("X", {"test": examples}, tmp_path / "save", tmp_path, slots,
                           {"v": 1}, ["<id>_mix.wav"])["test"]


def test_require_folders_names_what_is_missing_and_what_is_there(tmp_path):
    """The message names the dataset, the missing folders, the listing and the layout."""
    (tmp_path / "train").mkdir()
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(LayoutError) as err:
        require_folders("MUSDB18", tmp_path, ["train", "test"], ["{train,test}/<track>/"],
                        "download it")
    text = str(err.value)
    assert "MUSDB18: missing folders ['test']" in text
    assert "holds ['readme.txt', 'train/']" in text
    assert "{train,test}/<track>/" in text and text.endswith("download it")
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(LayoutError, match="does not exist"):
        require_folders("X", tmp_path / "nope", [], [])


def test_probe_reports_every_kind_of_incomplete_example(tmp_path):
    """Missing, empty, unreadable files and stems that disagree with their mixture."""
    good, _ = make_example(tmp_path, "good", 500)
    short, _ = make_example(tmp_path, "short", 500, seed=1)
    sf.write(short.sources[1], np.zeros((400, 2), np.float32), 44100)  # shorter stem
    rate, _ = make_example(tmp_path, "rate", 500, seed=2)
    sf.write(rate.sources[0], np.zeros((500, 2), np.float32), 48000)
    missing, _ = make_example(tmp_path, "missing", 500, seed=3)
    missing.sources[0].unlink()
    empty, _ = make_example(tmp_path, "empty", 500, seed=4)
    sf.write(empty.mix, np.zeros((0, 2), np.float32), 44100)
    broken, _ = make_example(tmp_path, "broken", 500, seed=5)
    broken.sources[1].write_bytes(b"RIFF\x00\x00")
    assert probe_examples("X", tmp_path, [good], ["l"])[0].frames == 500
    with pytest.raises(LayoutError) as err:
        probe_examples("X", tmp_path, [good, short, rate, missing, empty, broken, good], ["l"])
    text = str(err.value)
    assert "5 of 7 examples are incomplete" in text
    for fragment in ("short: short_b.wav has 400 samples", "at 48000 Hz", "missing file",
                     "empty file", "... and 0 more"):
        assert fragment in text or fragment == "... and 0 more"
    with pytest.raises(LayoutError, match="no example found"):
        probe_examples("X", tmp_path, [], ["l"])


def test_manifest_columns_and_rerun_detection(tmp_path):
    """Portable paths, empty slots, counts and categories; option changes force a new prep."""
    ex, _ = make_example(tmp_path / "data", "t1", 300, rate=8000, channels=1)
    path = prepare(tmp_path, [ex])
    rows = list(csv.DictReader(open(path)))
    assert rows[0]["mix_wav"] == "$data_root/data/t1_mix.wav"
    assert (rows[0]["s1_wav"], rows[0]["s3_wav"]) == ("$data_root/data/t1_a.wav", "")
    assert (rows[0]["active_sources"], rows[0]["source_categories"]) == ("2", "a;b;")
    assert (rows[0]["frames"], rows[0]["sample_rate"], rows[0]["channels"]) == ("300", "8000", "1")
    assert float(rows[0]["duration"]) == pytest.approx(300 / 8000)
    assert manifests_ready(tmp_path / "save", ["test"], {"v": 1})
    assert not manifests_ready(tmp_path / "save", ["test"], {"v": 2})
    assert not manifests_ready(tmp_path / "save", ["test", "train"], {"v": 1})


def test_evaluation_items_are_the_files_as_they_are(tmp_path):
    """sample_rate=None: [C, T] mixture and [C, T, S] references, empty slots exactly zero."""
    ex, arrays = make_example(tmp_path, "t", 700)
    data = load_benchmark_set(prepare(tmp_path, [ex]), 3,
                              replacements={"data_root": str(tmp_path)})
    item = data[0]
    np.testing.assert_array_equal(item["mix"].numpy(), arrays["mix"].T)
    np.testing.assert_array_equal(item["targets"][..., 0].numpy(), arrays["a"].T)
    np.testing.assert_array_equal(item["targets"][..., 1].numpy(), arrays["b"].T)
    assert item["targets"][..., 2].abs().max() == 0
    assert (item["num_sources"], item["categories"], item["sample_rate"]) == (2, ["a", "b", ""],
                                                                              44100)
    assert item["mix_wav"] == str(tmp_path / "t_mix.wav")


def test_training_crops_are_mono_slices_of_the_files(tmp_path):
    """Same rate: a random crop equals the channel mean of a file slice, for every source."""
    ex, arrays = make_example(tmp_path, "t", 4410, rate=44100)
    csv_path = prepare(tmp_path, [ex])
    data = load_benchmark_set(csv_path, 2, sample_rate=44100, segment_seconds=0.02,
                              random_crop=True, replacements={"data_root": str(tmp_path)})
    mono = {k: v.mean(1) for k, v in arrays.items()}
    starts = set()
    for _ in range(6):
        item = data[0]
        assert item["mix"].shape == (882,) and item["targets"].shape == (882, 2)
        start = int(np.argmin([np.abs(mono["mix"][s:s + 882] - item["mix"].numpy()).max()
                               for s in range(4410 - 881)]))
        starts.add(start)
        np.testing.assert_allclose(item["mix"].numpy(), mono["mix"][start:start + 882],
                                   atol=1e-6)
        np.testing.assert_allclose(item["targets"][:, 1].numpy(),
                                   mono["b"][start:start + 882], atol=1e-6)
    assert len(starts) > 1  # random positions
    valid = load_benchmark_set(csv_path, 2, sample_rate=44100, segment_seconds=0.02,
                               replacements={"data_root": str(tmp_path)})
    middle = (4410 - 882) // 2
    np.testing.assert_allclose(valid[0]["mix"].numpy(), mono["mix"][middle:middle + 882],
                               atol=1e-6)


def test_training_items_are_resampled_and_padded(tmp_path):
    """Another model rate: torchaudio's resampling of the downmix; short files zero-padded."""
    ex, arrays = make_example(tmp_path, "t", 4410, rate=44100)
    csv_path = prepare(tmp_path, [ex])
    whole = load_benchmark_set(csv_path, 2, sample_rate=16000,
                               replacements={"data_root": str(tmp_path)})[0]
    mono = torch.from_numpy(arrays["a"].mean(1))
    expected = torchaudio.functional.resample(mono, 44100, 16000)  # independent call, float32
    torch.testing.assert_close(whole["targets"][:, 0], expected, atol=1e-5, rtol=0)
    assert whole["mix"].shape == (1600,)
    padded = load_benchmark_set(csv_path, 2, sample_rate=16000, segment_seconds=0.25,
                                random_crop=True, replacements={"data_root": str(tmp_path)})[0]
    assert padded["mix"].shape == (4000,)
    assert padded["mix"][1600:].abs().max() == 0
    torch.testing.assert_close(padded["mix"][:1600], whole["mix"])


def test_dataset_errors_say_what_to_do(tmp_path):
    """Too few slots, a truncated file, a missing or foreign manifest, a crop without a rate."""
    ex, _ = make_example(tmp_path, "t", 500, sources=("a", "b", "c"))
    csv_path = prepare(tmp_path, [ex])
    repl = {"data_root": str(tmp_path)}
    with pytest.raises(ValueError, match="has 3 sources but the model has num_sources=2"):
        load_benchmark_set(csv_path, 2, replacements=repl)[0]
    sf.write(ex.sources[0], np.zeros((100, 2), np.float32), 44100)  # changed after prep
    with pytest.raises(ValueError, match="is truncated"):
        load_benchmark_set(csv_path, 3, replacements=repl)[0]
    with pytest.raises(FileNotFoundError, match="run the recipe's prepare.py"):
        load_benchmark_set(tmp_path / "none.csv", 2)
    (tmp_path / "other.csv").write_text("ID,duration,wav\nx,1,a.wav\n")
    with pytest.raises(ValueError, match="is not a benchmark manifest"):
        load_benchmark_set(tmp_path / "other.csv", 2)
    with pytest.raises(ValueError, match="segment_seconds=1.0 needs"):
        load_benchmark_set(csv_path, 3, segment_seconds=1.0)
    with pytest.raises(ValueError, match="one category per source slot"):
        BenchmarkExample("x", tmp_path, (tmp_path,), ())
