"""WebDataset shards of the GASS mixer: writer, index, verify, shard source, resume, urls, errors.

Authors
 * gass developers 2026
"""

import functools
import http.server
import logging
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gass_modules.dataio.manifest import Manifest
from gass_modules.dataio.mixer import GASSMixer, mixture_rng
from gass_modules.dataio.scenario import Scenario
from gass_modules.dataio.shard_crops import BufferedClip, wav_frames
from gass_modules.dataio.shard_source import CategoryStream, ShardMixer, ShardMixtureStream
from gass_modules.dataio.shards import (
    INDEX_NAME,
    PARTIAL_NAME,
    ShardError,
    ShardIndex,
    shard_samples,
    verify_shards,
    write_shards,
)
from gass_modules.training.checkpointing import AtomicCheckpointer

RATE = 8000
SCENARIO = {"sample_rate": RATE, "duration": 0.25, "max_retries": 20,
            "foreground_categories": ["speech", "sfx"], "background_categories": ["sfx"],
            "num_sources_probs": [0.25, 0.25, 0.25, 0.25]}
CLIPS_PER_CATEGORY = 24
SHARD_BYTES = 31_000  # three 0.5-s 16-bit clips per shard (tar records of 10,240 bytes)


def make_corpus(folder: Path, per_category: int = CLIPS_PER_CATEGORY,
                categories=("speech", "sfx")) -> Manifest:
    """Noise clips of distinct levels, 0.5 s at 8 kHz, one group per clip, 16-bit wav."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids, paths = [], []
    cats = []
    for category in categories:
        for k in range(per_category):
            path = folder / f"{category}-{k}.wav"
            sf.write(path, rng.uniform(-1, 1, RATE // 2) * (0.05 + 0.01 * k), RATE,
                     subtype="PCM_16")
            ids.append(f"{category}-{k}")
            paths.append(str(path))
            cats.append(category)
    n = len(ids)
    return Manifest(ids, paths, [RATE // 2] * n, [RATE] * n, [1] * n, cats, ids)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shard_corpus")
    manifest = make_corpus(folder / "wav")
    manifest.to_csv(folder / "train.csv")
    index = write_shards(folder / "train.csv", folder / "shards", max_bytes=SHARD_BYTES)
    return folder, manifest, index


def tree_bytes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def items_of(stream, n=None):
    out = []
    for item in stream:
        out.append(item)
        if n is not None and len(out) == n:
            break
    return out


def assert_same_items(a, b):
    assert [x["id"] for x in a] == [x["id"] for x in b]
    for x, y in zip(a, b):
        assert torch.equal(x["mix"], y["mix"]) and torch.equal(x["targets"], y["targets"])
        assert x["source_ids"] == y["source_ids"]


# ---------------------------------------------------------------------------- writer and index
def test_shard_writer_index_deterministic_and_resumable(corpus, tmp_path):
    folder, manifest, index = corpus
    totals = index.totals()
    assert totals["speech"]["clips"] == totals["sfx"]["clips"] == CLIPS_PER_CATEGORY
    assert totals["speech"]["seconds"] == pytest.approx(CLIPS_PER_CATEGORY * 0.5)
    assert totals["speech"]["shards"] == CLIPS_PER_CATEGORY // 3
    assert all(s.bytes <= SHARD_BYTES for s in index.shards)
    assert index.num_clips == len(manifest)
    # a run stopped after 3 shards (as a killed one) and resumed gives the same bytes
    partial = write_shards(folder / "train.csv", tmp_path / "s", max_bytes=SHARD_BYTES,
                           stop_after=3)
    assert len(partial.shards) == 3 and (tmp_path / "s" / PARTIAL_NAME).is_file()
    assert not (tmp_path / "s" / INDEX_NAME).exists()
    resumed = write_shards(folder / "train.csv", tmp_path / "s", max_bytes=SHARD_BYTES)
    assert not (tmp_path / "s" / PARTIAL_NAME).exists()
    assert tree_bytes(tmp_path / "s") == tree_bytes(folder / "shards")
    assert resumed.to_json() == index.to_json()
    with pytest.raises(ShardError, match="other options"):
        write_shards(folder / "train.csv", tmp_path / "s", max_bytes=SHARD_BYTES + 1)


def test_shard_verify_round_trip_and_corruption(corpus, tmp_path):
    folder, manifest, index = corpus
    report = verify_shards(folder / "shards", folder / "train.csv")
    assert report.ok and report.clips == len(manifest)
    flac = write_shards(manifest, tmp_path / "flac", max_bytes=SHARD_BYTES, codec="flac")
    assert verify_shards(flac, manifest).ok
    assert {m.name.rsplit(".", 1)[1] for m in tarfile.open(tmp_path / "flac" / flac.shards[0]
                                                           .url)} == {"flac", "json"}
    # a shard cut in the middle: reported, not a crash
    bad = tmp_path / "flac" / flac.shards[1].url
    bad.write_bytes(bad.read_bytes()[:5000])
    report = verify_shards(tmp_path / "flac", manifest)
    assert not report.ok and any("sha256" in p for p in report.problems)
    assert any("manifest clips are in no shard" in p for p in report.problems)


# ---------------------------------------------------------------------------- shard source
def test_shard_mixer_uses_the_file_mixers_rules(tmp_path):
    """One clip per category and fixed roles: the shard mixer makes the file mixer's draws.

    Crops as long as the clips (start 0 either way): the file mixer's mixture, bit for bit.
    Shorter crops: the shard mixer's crop starts are drawn when a clip enters its buffer, so
    they differ, and everything else (categories, gains, clips) is the file mixer's; each
    target is the file's audio at the shard crop's start, at the drawn level (closed form).
    """
    manifest = make_corpus(tmp_path / "wav", per_category=1)
    index = write_shards(manifest, tmp_path / "shards")
    scenario = {**SCENARIO, "foreground_categories": ["speech"],
                "background_categories": ["sfx"], "background_prob": 1.0,
                "num_sources_probs": [0, 1, 0, 0]}
    whole = {**scenario, "duration": 0.5}  # the clips' length
    files = GASSMixer(manifest, whole)
    shards = ShardMixer(index, files.scenario, buffer_size=2)
    for seed in range(4):
        a, b = files.draw(mixture_rng(seed)), shards.draw(mixture_rng(seed))
        assert np.array_equal(a.targets, b.targets) and np.array_equal(a.mix, b.mix)
        assert a.categories == b.categories and a.gains_db == b.gains_db
        assert shards.last_ids == ["speech-0", "sfx-0"]
    files = GASSMixer(manifest, scenario)
    shards = ShardMixer(index, files.scenario, buffer_size=2)
    audio = {c: sf.read(tmp_path / "wav" / f"{c}-0.wav", dtype="float32")[0]
             for c in ("speech", "sfx")}
    size, ref = files.scenario.num_samples, files.scenario.reference_db
    starts = set()
    for seed in range(4):
        a, b = files.draw(mixture_rng(seed)), shards.draw(mixture_rng(seed))
        assert a.categories == b.categories and a.gains_db == b.gains_db
        assert shards.last_ids == ["speech-0", "sfx-0"] and a.scale == b.scale == 1.0
        for slot, (category, start, gain) in enumerate(zip(b.categories, b.starts, b.gains_db)):
            x = audio[category][start:start + size]
            level = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
            np.testing.assert_allclose(b.targets[:, slot], x * 10 ** ((ref + gain - level) / 20),
                                       rtol=1e-5, atol=1e-7)
            starts.add((category, start))
        np.testing.assert_array_equal(b.mix, b.targets.sum(1))
    assert len(starts) > 4  # crops drawn anew for each clip entering the buffer


def test_shard_stream_deterministic_and_split_over_ranks(corpus, monkeypatch):
    folder, manifest, index = corpus
    # <= 8 sources + 3 buffered per category: within one pass (12 clips per category and rank)
    kwargs = dict(scenario=SCENARIO, seed=3, batch_size=1, batches_per_epoch=2, buffer_size=6)
    seen = {}
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        a = items_of(ShardMixtureStream(index, **kwargs))
        assert_same_items(a, items_of(ShardMixtureStream(index, **kwargs)))
        assert a[0]["id"] == f"shards-e0-r{rank}-000000-0"
        for item in a:
            assert torch.allclose(item["mix"], item["targets"].sum(-1), atol=1e-6)
            assert item["targets"][:, item["num_sources"]:].abs().sum() == 0
        seen[rank] = {c: set(CategoryStream(c, index.urls_of(c), seed=3).shards_of_pass(0))
                      for c in ("speech", "sfx")}
        seen[rank]["clips"] = {i for item in a for i in item["source_ids"]}
    for c in ("speech", "sfx"):  # each shard to exactly one rank
        assert not seen[0][c] & seen[1][c]
        assert seen[0][c] | seen[1][c] == set(index.urls_of(c))
    assert not seen[0]["clips"] & seen[1]["clips"]


def test_shard_stream_resume_is_bit_identical(corpus):
    folder, manifest, index = corpus
    kwargs = dict(scenario=SCENARIO, seed=5, batch_size=2, batches_per_epoch=8, buffer_size=6)
    full = items_of(ShardMixtureStream(index, **kwargs))
    ids = [i for item in full for i in item["source_ids"]]
    # 8 batches of 2 mixtures of <= 4 sources from 48 clips: within one pass per category
    assert len(ids) == len(set(ids)), "a clip was used twice within a pass"
    first = ShardMixtureStream(index, **kwargs)
    done = items_of(first, 6)  # three batches consumed, then the run stops
    first.record(done[-1]["stream_state"])
    resumed = ShardMixtureStream(index, **kwargs)
    resumed.consumed = first.consumed
    assert_same_items(items_of(resumed), full[6:])


def test_shard_loader_checkpoint_resume_with_workers(corpus, tmp_path):
    folder, manifest, index = corpus
    kwargs = dict(scenario=SCENARIO, seed=7, batch_size=2, batches_per_epoch=6, buffer_size=6)
    full = [b for b in ShardMixtureStream(index, **kwargs).make_loader(num_workers=2)]
    stream = ShardMixtureStream(index, **kwargs)
    ckpt = AtomicCheckpointer(tmp_path / "save", {"train_stream": stream})
    for k, _ in enumerate(stream.make_loader(num_workers=2)):
        if k == 2:  # three batches trained on: checkpoint, then the node dies
            ckpt.save_checkpoint()
            break
    assert (next((tmp_path / "save").glob("CKPT*")) / "train_stream.rank0.json").is_file()
    again = ShardMixtureStream(index, **kwargs)
    AtomicCheckpointer(tmp_path / "save", {"train_stream": again}).recover_if_possible()
    rest = list(again.make_loader(num_workers=2))
    assert [b.id for b in rest] == [b.id for b in full[3:]]
    for a, b in zip(rest, full[3:]):
        assert torch.equal(a.mix.data, b.mix.data)
    assert again.epoch == 1 and len(full) == 6


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_shard_urls_file_http_pipe(corpus):
    folder, manifest, index = corpus
    root = folder / "shards"
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        kwargs = dict(scenario=SCENARIO, seed=1, batch_size=2, batches_per_epoch=2,
                      buffer_size=4)
        ref = items_of(ShardMixtureStream(root, **kwargs))
        for url, base in ((f"file://{root}/{INDEX_NAME}", None),
                          (f"http://127.0.0.1:{port}/{INDEX_NAME}", None),
                          (f"pipe:cat {root}/{INDEX_NAME}", f"pipe:cat {root}/{{url}}")):
            assert_same_items(items_of(ShardMixtureStream(url, shard_base=base, **kwargs)), ref)
        with pytest.raises(ShardError, match="cannot read the shard index"):
            ShardIndex.load(f"http://127.0.0.1:{port}/missing/{INDEX_NAME}")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ShardError, match="cannot read the shard index|empty"):
        ShardIndex.load(f"http://127.0.0.1:{port}/{INDEX_NAME}")  # server gone: unreachable


def test_an_index_cannot_run_a_command(tmp_path):
    """#27, third probe: an ``index.json`` is data (fetched over http, shared on a server),
    yet a shard url ``pipe:touch ...`` in it ran in a shell when the shards were opened
    (``make_shards.py verify``, training); and a url with ``;`` extended the user's own pipe
    template. Both are refused; the user's pipe templates and paths still work."""
    import json

    from gass_modules.dataio.shard_index import resolve_url

    marker = tmp_path / "PWNED"
    rows = [{"url": f"pipe:touch {marker}", "category": "a", "clips": 1, "seconds": 1.0,
             "bytes": 1},
            {"url": f"a-0.tar; touch {marker}", "category": "a", "clips": 1, "seconds": 1.0,
             "bytes": 1}]
    for row in rows:
        (tmp_path / INDEX_NAME).write_text(json.dumps({"format": "gass-shards",
                                                       "shards": [row]}))
        with pytest.raises(ShardError, match="never a pipe: command"):
            ShardIndex.load(tmp_path)
    with pytest.raises(ShardError, match="cannot go into the template"):
        resolve_url(f"a.tar;touch {marker}", "pipe:cat /data/{url}")
    assert not marker.exists()
    assert resolve_url("a/a-000000.tar", "pipe:cat /d/{url}") == "pipe:cat /d/a/a-000000.tar"
    for url in ("a/a-000000.tar", "/data/x/a-1.tar", "https://h.org:8080/s/a-1.tar",
                "file:///data/a-1.tar"):
        (tmp_path / INDEX_NAME).write_text(json.dumps({"format": "gass-shards", "shards": [
            {"url": url, "category": "a", "clips": 1, "seconds": 1.0, "bytes": 1}]}))
        assert ShardIndex.load(tmp_path).shards[0].url == url


def test_shard_bad_shards_are_skipped_counted_and_named(corpus, tmp_path, caplog):
    folder, manifest, index = corpus
    import shutil

    shutil.copytree(folder / "shards", tmp_path / "s")
    speech = index.shards_of("speech")
    truncated = tmp_path / "s" / speech[0].url
    truncated.write_bytes(truncated.read_bytes()[:9000])
    with tarfile.open(tmp_path / "s" / speech[1].url, "w") as tar:  # records lack fields
        for k in range(2):
            for name, data in ((f"{k:09d}.json", b'{"id": "x"}'), (f"{k:09d}.wav", b"RIFF")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, __import__("io").BytesIO(data))
    shards = ShardIndex.load(tmp_path / "s")
    shards.shards[2].url = "http://127.0.0.1:9/gone.tar"  # unreachable (discard port)
    stream = ShardMixtureStream(shards, scenario=SCENARIO, batch_size=2, batches_per_epoch=10,
                                buffer_size=6)
    with caplog.at_level(logging.WARNING):
        items = items_of(stream)
    last = items[-1]["stream_state"]["streams"]
    # three bad shards, met once per pass (a shard may come back after a network error)
    assert last["speech"]["bad_shards"] >= 2 and last["sfx"]["bad_shards"] >= 1
    assert stream.bad_shards == 0  # nothing consumed through a loader: nothing recorded
    stream.record(items[-1]["stream_state"])
    assert stream.bad_shards == last["speech"]["bad_shards"] + last["sfx"]["bad_shards"]
    text = caplog.text
    assert "skipping bad shard" in text and "lacks the fields" in text
    assert "the tar is truncated" in text and "unreachable url" in text
    assert "gone.tar" in text and speech[0].url in text
    assert len(items) == 20 and all(torch.isfinite(i["mix"]).all() for i in items)


def test_shard_errors_missing_category_too_few_shards_all_bad(corpus, tmp_path, monkeypatch):
    folder, manifest, index = corpus
    with pytest.raises(ShardError, match="has no shards"):
        CategoryStream("music", [])
    with pytest.raises(ValueError, match="none of the foreground categories"):
        ShardMixtureStream(index, scenario={**SCENARIO, "foreground_categories": ["music"]})
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "16")
    with pytest.raises(ShardError, match="8 shards for 16 ranks"):
        items_of(ShardMixtureStream(index, scenario=SCENARIO), 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    broken = ShardIndex.load(folder / "shards")
    for s in broken.shards:
        if s.category == "sfx":
            s.url = str(tmp_path / "nowhere.tar")
    with pytest.raises(ShardError, match="no shard of this reader gave a clip"):
        items_of(ShardMixtureStream(broken, scenario=SCENARIO, batches_per_epoch=20))
    with pytest.raises(ShardError, match="not a gass shard index"):
        (tmp_path / INDEX_NAME).write_text("{}")
        ShardIndex.load(tmp_path)


def test_shard_loader_remix_more_mixtures_per_byte(corpus):
    """In-batch remix: extra batches of new mixtures of the same sources, each a valid mixer
    item (mix = sum of targets, active slots first, within the peak limit), deterministic."""
    folder, manifest, index = corpus
    kwargs = dict(scenario=SCENARIO, seed=2, batch_size=4, batches_per_epoch=2, buffer_size=6)
    loader = ShardMixtureStream(index, **kwargs).make_loader(remix=2)
    batches = list(loader)
    assert len(batches) == len(loader) == 6
    again = list(ShardMixtureStream(index, **kwargs).make_loader(remix=2))
    for read, remixed in ((batches[0], batches[1]), (batches[3], batches[5])):
        assert remixed.id[0].startswith(read.id[0] + "-remix")
        targets = remixed.targets.data  # [B, T, S]
        assert torch.allclose(remixed.mix.data, targets.sum(-1), atol=1e-6)
        assert remixed.mix.data.abs().max() <= 0.9 + 1e-6
        active = targets.abs().amax(1) > 0  # [B, S]
        num = remixed.num_sources.tolist()
        assert active.sum(1).tolist() == num
        assert all(bool(a[: int(n)].all()) for a, n in zip(active, num))
        # the same sources, recombined: slot 0 of every new mixture is a slot-0 source
        firsts = {round(float(x), 5) for x in read.targets.data[:, :, 0].abs().sum(1)}
        assert {round(float(x), 5) for x in targets[:, :, 0].abs().sum(1)} <= firsts
        assert not torch.equal(remixed.mix.data, read.mix.data)
    for a, b in zip(batches, again):
        assert torch.equal(a.mix.data, b.mix.data)


def test_shard_crops_per_clip_reuses_clips_and_resumes(corpus):
    """Two crops per clip read: half the clips for as many sources, never one clip twice in a
    mixture, and a resumed stream (uses saved per buffered clip) still bit-identical."""
    folder, manifest, index = corpus
    kwargs = dict(scenario=SCENARIO, seed=4, batch_size=2, batches_per_epoch=6, buffer_size=6)
    once = items_of(ShardMixtureStream(index, **kwargs))
    twice = items_of(ShardMixtureStream(index, crops_per_clip=2, **kwargs))
    sources = sum(len(i["source_ids"]) for i in twice)
    assert len({c for i in twice for c in i["source_ids"]}) < 0.75 * sources
    assert len({c for i in once for c in i["source_ids"]}) == sum(
        len(i["source_ids"]) for i in once)
    assert all(len(set(i["source_ids"])) == len(i["source_ids"]) for i in twice)
    first = ShardMixtureStream(index, crops_per_clip=2, **kwargs)
    done = items_of(first, 4)
    first.record(done[-1]["stream_state"])
    resumed = ShardMixtureStream(index, crops_per_clip=2, **kwargs)
    resumed.consumed = first.consumed
    assert_same_items(items_of(resumed), twice[4:])


def test_shard_resampled_streams_deterministic_per_rank(corpus, monkeypatch):
    """resampled: True (WebDataset's ResampledShards): endless, the same per (seed, rank,
    pass), different across ranks, and usable with more readers than shards."""
    folder, manifest, index = corpus
    urls = index.urls_of("sfx")
    plans = {}
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "16")  # 8 shards, 16 readers: fine when resampled
        stream = CategoryStream("sfx", urls, seed=1, resampled=True)
        stream.check_readers()
        plans[rank] = [stream.shards_of_pass(p) for p in range(3)]
        assert plans[rank] == [CategoryStream("sfx", urls, seed=1, resampled=True)
                               .shards_of_pass(p) for p in range(3)]
        assert all(len(p) == 1 and p[0] in urls for p in plans[rank])
        items = items_of(ShardMixtureStream(index, scenario=SCENARIO, batches_per_epoch=3,
                                            buffer_size=4, resampled=True))
        assert len(items) == 3
    assert plans[0] != plans[1]


def test_shard_crops_decode_as_soundfile(tmp_path):
    """The buffered crops of a clip equal soundfile's float32 read of the same frames, bit for
    bit, through the WAV fast path (16/32-bit integer, float, stereo, extensible) and through
    soundfile (24-bit WAV, FLAC, Ogg); only the crops' frames are kept."""
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, (3000, 2)).astype(np.float32)
    cases = [("WAV", "PCM_16", 1, True), ("WAV", "PCM_32", 1, True), ("WAV", "FLOAT", 2, True),
             ("WAV", "PCM_16", 2, True), ("WAVEX", "PCM_16", 2, True),
             ("WAV", "PCM_24", 1, False), ("FLAC", "PCM_16", 2, False),
             ("FLAC", "PCM_24", 1, False), ("OGG", "VORBIS", 1, False)]
    spans = [(100, 90, 700), (2000, 1990, 2600)]
    for fmt, subtype, channels, fast in cases:
        path = tmp_path / f"x-{fmt}-{subtype}-{channels}.{fmt.lower()}"
        sf.write(path, audio[:, :channels], RATE, format=fmt, subtype=subtype)
        data = path.read_bytes()
        assert (wav_frames(data) is not None) == fast, (fmt, subtype)
        clip = BufferedClip({"id": "x", "frames": 3000}, data, (0, 0, 0), spans)
        assert clip.kept_frames == 2600 - 90
        for k, (_, first, last) in enumerate(spans):
            ref, _ = sf.read(path, start=first, frames=last - first, dtype="float32",
                             always_2d=True)
            assert np.array_equal(clip.crop(k), ref), (fmt, subtype, channels)
    assert wav_frames(b"RIFF\x04\x00\x00\x00WAVE") is None  # no fmt / data chunk
    truncated = (tmp_path / "x-WAV-PCM_16-1.wav").read_bytes()[:1000]  # fewer frames than said
    clip = BufferedClip({"id": "x", "frames": 3000}, truncated, (0, 0, 0), spans)
    assert clip.crop(1).shape[0] == 0  # what soundfile reads: none (the mixer raises)


def test_shard_buffers_hold_crops_not_clips(corpus, tmp_path):
    """A clip in a buffer keeps the frames of its crops only (crops_per_clip of them), and
    a stream's mixtures do not depend on the decoding path (fast WAV vs FLAC shards)."""
    folder, manifest, index = corpus
    kwargs = dict(scenario=SCENARIO, seed=9, batch_size=2, batches_per_epoch=3, buffer_size=6)
    wav, flac = (write_shards(manifest, tmp_path / codec, codec=codec)  # one shard each
                 for codec in ("original", "flac"))
    assert_same_items(items_of(ShardMixtureStream(flac, **kwargs)),
                      items_of(ShardMixtureStream(wav, **kwargs)))
    size = Scenario.coerce(SCENARIO).num_samples  # 2000 of the clips' 4000 frames
    for crops in (1, 2):
        mixer = ShardMixer(index, Scenario.coerce(SCENARIO), buffer_size=6, crops_per_clip=crops)
        for i in range(4):
            mixer.draw(mixture_rng(0, i))
        clips = [c for b in mixer.buffers.values() for c in b]
        assert clips and all(len(c.spans) == crops for c in clips)
        assert all(c.kept_frames <= min(crops * size, RATE // 2) for c in clips)
        assert all(c.kept_frames == size for c in clips) if crops == 1 else True


def test_shard_samples_random_access_equals_webdatasets_reader(corpus, tmp_path):
    """Seekable shards are read by tarfile's random-access mode, streams and compressed
    shards by WebDataset's reader: the same samples either way."""
    import gzip

    import webdataset as wds

    folder, manifest, index = corpus
    url = str(folder / "shards" / index.shards[0].url)
    ref = list(wds.tarfile_to_samples()([{"url": url}]))
    (tmp_path / "s.tar.gz").write_bytes(gzip.compress(Path(url).read_bytes()))
    for other in (url, f"pipe:cat {url}", str(tmp_path / "s.tar.gz")):
        got = list(shard_samples(other))
        assert [{k: v for k, v in s.items() if k != "__url__"} for s in got] == [
            {k: v for k, v in s.items() if k != "__url__"} for s in ref]


def test_shard_workers_trim_their_heap_without_changing_the_mixtures(corpus, monkeypatch):
    """In a loader worker the stream returns its heap's free pages to the system after about
    every ``trim_every`` mixtures (at batch ends; never in the main process, never with 0), and
    the mixtures are the same with or without it; a negative ``trim_every`` is refused."""
    from types import SimpleNamespace

    import gass_modules.dataio.shard_source as shard_source

    folder, manifest, index = corpus
    kwargs = dict(scenario=SCENARIO, seed=3, batch_size=2, batches_per_epoch=6, buffer_size=6)
    calls = []
    monkeypatch.setattr(shard_source, "release_free_memory", lambda: calls.append(1) or True)
    reference = items_of(ShardMixtureStream(index, trim_every=4, **kwargs))
    assert calls == []  # the main process: no worker info
    monkeypatch.setattr(torch.utils.data, "get_worker_info",
                        lambda: SimpleNamespace(id=0, num_workers=1))
    for name, value in (("WORKER", "0"), ("NUM_WORKERS", "1")):  # set by the stream in a worker;
        monkeypatch.setenv(name, value)  # restored (removed) after the test
    assert_same_items(items_of(ShardMixtureStream(index, trim_every=4, **kwargs)), reference)
    assert len(calls) == 3  # 12 mixtures, a trim after every 4 (every second batch of 2)
    calls.clear()
    assert_same_items(items_of(ShardMixtureStream(index, trim_every=0, **kwargs)), reference)
    assert calls == []
    with pytest.raises(ValueError, match="trim_every"):
        ShardMixtureStream(index, trim_every=-1, **kwargs)
