"""The demo corpus (small subset) and the GASS mixer feeding SpeechBrain's dataloader."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataloader import LoopedLoader, SaveableDataLoader, make_dataloader
from speechbrain.dataio.dataset import DynamicItemDataset

from gass_modules.dataio.manifest import Manifest
from gass_modules.dataio.mixer import GASSMixer
from gass_modules.dataio.mixture_sets import (
    MixtureStream,
    export_eval_set,
    load_eval_set,
    make_eval_set,
)

CATEGORIES = {"speech", "music_drums", "music_bass", "music_other", "sfx"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as in dataloader workers


@pytest.fixture(scope="module")
def manifests(demo_corpus_small):
    """The small corpus's manifests per split."""
    return {s: Manifest.from_csv(p) for s, p in demo_corpus_small.manifests.items()}


def test_small_corpus_covers_every_category_in_every_split(demo_corpus_small, manifests):
    """≈2 minutes, 16 kHz mono wav, all categories in all splits, no group in two splits."""
    total = sum(m.durations.sum() for m in manifests.values())
    assert 60 < total < 200, f"{total:.0f} s of audio"
    groups = {}
    for split, m in manifests.items():
        assert {c for c in m.categories if len(m.indices_of(c))} == CATEGORIES, split
        assert set(m.sample_rates.tolist()) == {16000} and set(m.channels.tolist()) == {1}
        groups[split] = {m[i].group for i in range(len(m))}
        for i in range(len(m)):
            info = sf.info(m[i].path)
            assert (info.frames, info.samplerate, info.channels) == (m[i].frames, 16000, 1)
    assert not groups["train"] & groups["valid"] and not groups["train"] & groups["test"]
    assert not groups["valid"] & groups["test"]
    speakers = {g for g in groups["train"] if g.startswith("speech/")}
    assert len(speakers) >= 3  # several speakers: recorded (fillets) and synthetic
    stems = [m for m in manifests["train"].ids.tolist() if m.startswith("music_")]
    assert len({s.split("-", 1)[1] for s in stems}) * 3 == len(stems)  # 3 stems per song


def test_cache_is_keyed_on_content(demo_corpus_small, tools, tmp_path):
    """A second build is a cache hit; a wrong key or a missing file invalidates the cache."""
    builder = tools("build_demo_corpus")
    again = builder.build("small", log=lambda message: None)
    assert not again.built and again.root == demo_corpus_small.root
    key = builder.content_key("small", 16000, 0)
    assert key != builder.content_key("small", 16000, 1) != builder.content_key("full", 16000, 1)
    assert builder._cached(demo_corpus_small.root, key) is not None
    assert builder._cached(demo_corpus_small.root, "stale") is None
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("corpus.json", "train.csv", "valid.csv", "test.csv"):
        shutil.copy(demo_corpus_small.root / name, partial / name)
    assert json.loads((partial / "corpus.json").read_text())["files"]  # lists the wavs
    assert builder._cached(partial, key) is None  # wav files missing: not a valid cache


def test_missing_packages_are_named(tools, monkeypatch, capsys):
    """Without its Debian packages the tool stops with their names and an apt-get line."""
    builder = tools("build_demo_corpus")
    monkeypatch.setattr(builder, "REQUIREMENTS", builder.REQUIREMENTS + (
        ("imaginary-sounds", "/nonexistent/*.ogg"), ("nosuch-synth", "bin:nosuch-synth-bin")))
    with pytest.raises(builder.MissingPackagesError,
                       match="(?s)imaginary-sounds nosuch-synth.*apt-get install -y"):
        builder.check_requirements()
    assert builder.main(["--subset", "small", "--out", "/nonexistent/out"]) == 2
    assert "missing Debian packages: imaginary-sounds nosuch-synth" in capsys.readouterr().err


def test_eval_set_feeds_speechbrain_dataloader(manifests):
    """make_dataloader over the eval set: SaveableDataLoader + PaddedBatch with the names the
    training loop reads; batches are deterministic across loaders and worker counts."""
    mixer = GASSMixer(manifests["valid"], {"duration": 1.0})
    dataset = make_eval_set(mixer, 6, seed=2)
    assert isinstance(dataset, DynamicItemDataset)
    loader = make_dataloader(dataset, batch_size=3)
    assert isinstance(loader, SaveableDataLoader)
    batches = list(loader)
    assert len(batches) == 2
    batch = batches[0]
    assert isinstance(batch, PaddedBatch)
    assert batch.mix.data.shape == (3, 16000) and batch.targets.data.shape == (3, 16000, 4)
    assert torch.equal(batch.num_sources, torch.tensor([dataset[i]["num_sources"]
                                                        for i in range(3)]))
    assert batch.id == ["eval-000000", "eval-000001", "eval-000002"]
    assert [len(c) for c in batch.categories] == [4, 4, 4]
    assert torch.allclose(batch.mix.data, batch.targets.data.sum(-1), atol=1e-6)
    for b in range(3):
        n = int(batch.num_sources[b])
        assert torch.all(batch.targets.data[b, :, n:] == 0)
        assert batch.categories[b][n:] == [""] * (4 - n)
    workers = list(make_dataloader(dataset, batch_size=3, num_workers=2))
    assert torch.equal(workers[1].targets.data, batches[1].targets.data)


def test_training_stream_feeds_speechbrain_dataloader(manifests):
    """The iterable stream through make_dataloader with workers and PaddedBatch, finite and
    looped (endless stream, nominal epoch)."""
    mixer = GASSMixer(manifests["train"], {"duration": 0.5})
    stream = MixtureStream(mixer, seed=0, epoch_size=8, rank=0)
    loader = make_dataloader(stream, batch_size=4, num_workers=2, collate_fn=PaddedBatch)
    batches = list(loader)
    assert len(batches) == 2
    ids = [i for b in batches for i in b.id]
    assert sorted(ids) == [f"train-e0-r0-{k:09d}" for k in range(8)]
    for b in batches:
        assert b.mix.data.shape == (4, 8000) and b.targets.data.shape == (4, 8000, 4)
        assert b.num_sources.dtype == torch.int64
        assert torch.allclose(b.mix.data, b.targets.data.sum(-1), atol=1e-6)
    endless = make_dataloader(MixtureStream(mixer, seed=0), batch_size=2,
                              collate_fn=PaddedBatch, looped_nominal_epoch=3)
    assert isinstance(endless, LoopedLoader)
    assert len(list(endless)) == 3


def test_frozen_eval_set_round_trips(manifests, tmp_path):
    """export_eval_set + load_eval_set reproduce make_eval_set exactly, with provenance."""
    mixer = GASSMixer(manifests["test"], {"duration": 0.75})
    csv_path = export_eval_set(mixer, 4, tmp_path / "frozen", seed=5)
    shutil.move(tmp_path / "frozen", tmp_path / "moved")  # relocatable: $data_root paths
    frozen = load_eval_set(tmp_path / "moved" / csv_path.name)
    live = make_eval_set(mixer, 4, seed=5)
    for i in range(4):
        a, b = frozen[i], live[i]
        assert a["id"] == b["id"] and a["num_sources"] == b["num_sources"]
        assert a["categories"] == b["categories"]
        assert torch.equal(a["mix"], b["mix"]) and torch.equal(a["targets"], b["targets"])
    rows = (tmp_path / "moved" / csv_path.name).read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    clips = first["source_clips"].split(";")
    assert len(clips) == int(first["active_sources"])
    assert all(c in manifests["test"].ids.tolist() for c in clips)
    assert np.isfinite([float(g) for g in first["gains_db"].split(";")]).all()
