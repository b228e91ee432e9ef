"""The GASS mixer: item invariants, determinism, reads/resampling/downmix against references,
gains, silent-crop retries, clipping, scenario tables and the rank/worker-distinct stream."""

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from hyperpyyaml import load_hyperpyyaml
from torch.utils.data import DataLoader

from gass_modules.dataio.manifest import Manifest
from gass_modules.dataio.mixer import GASSMixer, mixture_rng, rms_db
from gass_modules.dataio.mixture_sets import MixtureStream, make_eval_set
from gass_modules.dataio.scenario import DEFAULT_SCENARIO, Scenario

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as in dataloader workers


def write_clips(folder: Path, specs) -> Manifest:
    """Writes float wav clips ``(id, category, rate, channels, seconds, kind)`` and lists them."""
    rng = np.random.default_rng(0)
    rows = []
    for clip_id, category, rate, channels, seconds, kind in specs:
        n = int(seconds * rate)
        t = np.arange(n) / rate
        if kind == "silent":
            x = np.zeros((n, channels))
        elif kind == "sine":
            x = np.stack([0.3 * np.sin(2 * np.pi * (440 + 110 * c) * t)
                          for c in range(channels)], 1)
        else:
            x = rng.uniform(-0.4, 0.4, (n, channels)) * (1 + np.sin(2 * np.pi * t))[:, None]
        path = folder / f"{clip_id}.wav"
        sf.write(path, x.astype(np.float32), rate, subtype="FLOAT")
        rows.append((clip_id, str(path), n, rate, channels, category, clip_id))
    return Manifest(*map(list, zip(*rows)))


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Manifest:
    """Clips at several rates and channel counts, long and short, in three categories."""
    folder = tmp_path_factory.mktemp("pool")
    specs = []
    for k, (rate, channels) in enumerate([(16000, 1), (44100, 2), (22050, 1), (8000, 1),
                                          (48000, 2), (16000, 2)]):
        for cat in ("speech", "music", "sfx"):
            specs.append((f"{cat}{k}", cat, rate, channels, 1.5 if k % 2 else 0.3, "noise"))
    return write_clips(folder, specs)


def small_scenario(**overrides) -> dict:
    """A 0.5 s scenario at 16 kHz (tests stay fast)."""
    return {"duration": 0.5, **overrides}


def test_items_satisfy_the_contract(pool):
    """mix == targets.sum(-1), empty slots exactly zero with '' category, roles, peak limit."""
    mixer = GASSMixer(pool, small_scenario())
    counts = np.zeros(5, int)
    for i in range(60):
        m = mixer.draw(mixture_rng(5, i))
        item = m.to_item(f"m{i}")
        mix, targets = item["mix"], item["targets"]
        assert mix.shape == (8000,) and targets.shape == (8000, 4)
        assert mix.dtype == targets.dtype == torch.float32
        assert torch.allclose(mix, targets.sum(-1), atol=1e-6)
        n = item["num_sources"]
        counts[n] += 1
        assert torch.all(targets[:, n:] == 0) and item["categories"][n:] == [""] * (4 - n)
        assert all(c in ("speech", "music", "sfx") for c in item["categories"][:n])
        assert all(targets[:, s].abs().max() > 0 for s in range(n))
        assert float(mix.abs().max()) <= 0.9 + 1e-6
        assert m.roles[0] == "foreground"
        for role, cat in zip(m.roles, m.categories):
            table = mixer.scenario.background_categories if role == "background" else \
                mixer.scenario.foreground_categories
            assert cat in table
        assert torch.isfinite(targets).all()
    assert np.all(counts[1:] > 0), f"1-4 sources should all occur, got {counts[1:]}"


def test_draws_are_a_pure_function_of_the_seed(pool):
    """Same seed keys, same mixture; eval item i ignores set size; another seed differs."""
    mixer = GASSMixer(pool, small_scenario())
    a = mixer.draw(mixture_rng(1, 0, 7))
    b = GASSMixer(pool, small_scenario()).draw(mixture_rng(1, 0, 7))
    assert np.array_equal(a.targets, b.targets) and a.clips == b.clips
    small, large = make_eval_set(mixer, 3, seed=4), make_eval_set(mixer, 6, seed=4)
    for i in range(3):
        assert torch.equal(small[i]["targets"], large[i]["targets"])
        assert small[i]["id"] == large[i]["id"] == f"eval-{i:06d}"
    assert torch.equal(large[2]["mix"], large[2]["mix"])  # reading twice: same item
    other = make_eval_set(mixer, 3, seed=5)
    assert not torch.equal(other[0]["mix"], small[0]["mix"])


def test_partial_read_equals_slice_of_full_read_with_downmix(tmp_path):
    """Same rate: the crop is the matching slice of the whole file, channels averaged."""
    manifest = write_clips(tmp_path, [("st", "speech", 16000, 2, 3.0, "noise")])
    mixer = GASSMixer(manifest, small_scenario())
    full, _ = sf.read(manifest.paths[0], dtype="float32")  # [T, 2]
    reference = full.mean(axis=1)
    for seed in range(5):
        x, start, offset = mixer.read_crop(0, np.random.default_rng(seed))
        assert offset == 0 and len(x) == 8000
        np.testing.assert_allclose(x, reference[start:start + 8000], atol=1e-7)


@pytest.mark.parametrize("rate", [44100, 22050, 8000, 48000])
def test_resampled_crop_equals_slice_of_full_resample(tmp_path, rate):
    """Other rates: the crop equals torchaudio's resample of the whole file, sliced; and a sine
    comes out as the same sine sampled at 16 kHz (closed form)."""
    manifest = write_clips(tmp_path, [(f"s{rate}", "music", rate, 1, 2.0, "sine")])
    mixer = GASSMixer(manifest, small_scenario())
    full, _ = sf.read(manifest.paths[0], dtype="float32")
    reference = torchaudio.functional.resample(torch.from_numpy(full), rate, 16000).numpy()
    g = math.gcd(rate, 16000)
    for seed in range(4):
        x, start, _ = mixer.read_crop(0, np.random.default_rng(seed))
        assert start % (rate // g) == 0
        first = start * 16000 // rate
        np.testing.assert_allclose(x, reference[first:first + 8000], atol=1e-5)  # f32 conv
        t = start / rate + np.arange(8000) / 16000
        inside = slice(0, 8000) if start > 0 else slice(64, 8000)  # file start: filter edge
        np.testing.assert_allclose(x[inside], 0.3 * np.sin(2 * np.pi * 440 * t)[inside],
                                   atol=3e-3)


def test_short_clip_is_placed_whole_inside_zeros(tmp_path):
    """A clip shorter than T is read whole and placed at a random offset, zeros elsewhere."""
    manifest = write_clips(tmp_path, [("blip", "sfx", 16000, 1, 0.1, "noise")])
    mixer = GASSMixer(manifest, small_scenario(foreground_categories=["sfx"],
                                               num_sources_probs=[1, 0, 0, 0]))
    data, _ = sf.read(manifest.paths[0], dtype="float32")
    offsets = set()
    for seed in range(6):
        m = mixer.draw(np.random.default_rng(seed))
        off = m.offsets[0]
        offsets.add(off)
        target = m.targets[:, 0]
        assert np.all(target[:off] == 0) and np.all(target[off + 1600:] == 0)
        gain = target[off:off + 1600] / data
        np.testing.assert_allclose(gain, gain[0], rtol=1e-5)  # an exact scaled copy
    assert len(offsets) > 1


def test_gains_give_the_requested_rms_ratios(pool):
    """Each source sits at reference_db + gain_db dB RMS (content region), background lower."""
    scenario = small_scenario(num_sources_probs=[0, 0, 0, 1], background_prob=0.5,
                              peak_limit=1.0, reference_db=-40.0)
    mixer = GASSMixer(pool, scenario)
    sc = mixer.scenario
    seen_background = False
    for i in range(25):
        m = mixer.draw(mixture_rng(9, i))
        levels = []
        for s in range(m.num_sources):
            content = m.targets[m.offsets[s]:m.offsets[s] + _content_length(m, mixer, s), s]
            levels.append(rms_db(content))
        expected = [sc.reference_db + g + 20 * math.log10(m.scale) for g in m.gains_db]
        np.testing.assert_allclose(levels, expected, atol=1e-3)
        for role, g in zip(m.roles, m.gains_db):
            lo, hi = sc.background_gain_db if role == "background" else sc.foreground_gain_db
            assert lo <= g <= hi
            seen_background |= role == "background"
    assert seen_background


def _content_length(m, mixer, s) -> int:
    """Samples of source ``s`` that came from its file (T, or less for a short clip)."""
    clip = m.clips[s]
    rate = int(mixer.manifest.sample_rates[clip])
    n = math.ceil(int(mixer.manifest.frames[clip]) * 16000 / rate)
    return min(n, mixer.scenario.num_samples)


def test_clipping_rescale_keeps_invariant_and_ratios(pool):
    """Loud scenarios are rescaled jointly: peak at the limit, invariant and ratios kept."""
    mixer = GASSMixer(pool, small_scenario(reference_db=0.0, num_sources_probs=[0, 0, 1, 0],
                                           background_prob=0.0, peak_limit=0.5))
    for i in range(10):
        m = mixer.draw(mixture_rng(2, i))
        assert m.scale < 1
        peak = max(np.abs(m.mix).max(), np.abs(m.targets).max())
        assert peak == pytest.approx(0.5, abs=1e-6)
        np.testing.assert_allclose(m.mix, m.targets.sum(-1), atol=1e-6)
        levels = [rms_db(m.targets[m.offsets[s]:m.offsets[s] + _content_length(m, mixer, s), s])
                  for s in range(3)]
        np.testing.assert_allclose(np.diff(levels), np.diff(m.gains_db), atol=1e-3)


def test_silent_crops_are_redrawn_within_bounds(tmp_path):
    """Silent clips are never used; when all are silent the error comes after max_retries."""
    manifest = write_clips(tmp_path, [("quiet1", "speech", 16000, 1, 1.0, "silent"),
                                      ("quiet2", "speech", 16000, 1, 1.0, "silent"),
                                      ("loud", "speech", 16000, 1, 1.0, "noise")])
    mixer = GASSMixer(manifest, small_scenario(foreground_categories=["speech"],
                                               max_retries=30))
    for i in range(10):
        m = mixer.draw(mixture_rng(0, i))
        assert all(manifest.ids[c] == "loud" for c in m.clips)
    silent = GASSMixer(manifest.select([0, 1]), small_scenario(foreground_categories=["speech"],
                                                               max_retries=4))
    calls = []
    original = silent.read_crop
    silent.read_crop = lambda clip, rng: calls.append(clip) or original(clip, rng)
    with pytest.raises(RuntimeError, match="5 crops of category 'speech'.*silence_threshold_db"):
        silent.draw(np.random.default_rng(0))
    assert len(calls) == 5


def test_scenario_validation_messages(pool):
    """Bad tables fail with what was expected and what was found."""
    with pytest.raises(ValueError, match="expected 4 non-negative probabilities"):
        Scenario(num_sources_probs=[1, 0])
    with pytest.raises(ValueError, match="background must be lower"):
        Scenario(background_gain_db=[-6, 0], foreground_gain_db=[-5, 5])
    with pytest.raises(ValueError, match="unknown scenario keys \\['durration'\\]"):
        Scenario.coerce({"durration": 2})
    with pytest.raises(ValueError, match="non-negative weights"):
        Scenario(foreground_categories={"speech": -1})
    with pytest.raises(ValueError, match="none of the foreground categories"):
        GASSMixer(pool, {"foreground_categories": ["opera"]})
    with pytest.raises(ValueError, match="peak_limit"):
        Scenario(peak_limit=1.5)


def test_yaml_table_loads_and_recipes_override_it(tmp_path, pool):
    """gass.yaml has exactly the Scenario fields; a recipe includes it and overrides keys."""
    with open(DEFAULT_SCENARIO) as f:
        table = load_hyperpyyaml(f)
    assert set(table) == {f for f in Scenario.__dataclass_fields__}
    default = Scenario.coerce(None)
    assert default.max_sources == 4 and default.background_gain_db[1] <= \
        default.foreground_gain_db[0]
    manifest_csv = pool.to_csv(tmp_path / "pool.csv")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"scenario: !include:{DEFAULT_SCENARIO}\n"
        "    duration: 0.25\n"
        "    num_sources_probs: [0, 1, 0, 0]\n"
        "mixer: !new:gass_modules.dataio.mixer.GASSMixer\n"
        f"    manifest: {manifest_csv}\n"
        "    scenario: !ref <scenario>\n"
        "train_set: !new:gass_modules.dataio.mixture_sets.MixtureStream\n"
        "    mixer: !ref <mixer>\n"
        "    seed: 3\n"
        "    epoch_size: 2\n"
    )
    with open(recipe) as f:
        hp = load_hyperpyyaml(f)
    items = list(hp["train_set"])
    assert [it["num_sources"] for it in items] == [2, 2]
    assert items[0]["mix"].shape == (4000,)
    assert hp["mixer"].scenario.reference_db == default.reference_db


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha1(tensor.numpy().tobytes()).hexdigest()


def test_two_ranks_two_workers_never_repeat_a_mixture(pool):
    """2 DDP ranks x 2 dataloader workers: all mixtures and ids distinct; a rank's epoch is the
    same set whatever num_workers; another epoch gives new mixtures."""
    mixer = GASSMixer(pool, small_scenario(duration=0.1))
    seen, ids = {}, set()
    per_rank = {}
    for rank in (0, 1):
        stream = MixtureStream(mixer, seed=11, epoch_size=12, rank=rank)
        loader = DataLoader(stream, batch_size=None, num_workers=2)
        items = list(loader)
        assert len(items) == 12
        per_rank[rank] = {it["id"]: _digest(it["mix"]) for it in items}
        for it in items:
            digest = _digest(it["mix"])
            assert digest not in seen, f"{it['id']} repeats {seen.get(digest)}"
            seen[digest] = it["id"]
            ids.add(it["id"])
    assert len(ids) == 24
    single = MixtureStream(mixer, seed=11, epoch_size=12, rank=1)
    assert {it["id"]: _digest(it["mix"]) for it in single} == per_rank[1]
    single.set_epoch(1)
    assert not set(_digest(it["mix"]) for it in single) & set(per_rank[1].values())
    with pytest.raises(TypeError, match="endless"):
        len(MixtureStream(mixer))


def test_sources_of_one_mixture_come_from_distinct_groups(tmp_path):
    """Two speakers with four clips each: every 2-source speech mixture pairs both speakers
    (before, a mixture drew a second clip of the first speaker in about 3 cases in 7); a
    category with a single group still mixes (the preference falls back)."""
    base = write_clips(tmp_path, [(f"c{i}", "speech", 8000, 1, 1.0, "noise") for i in range(8)])
    groups = ["alice"] * 4 + ["bob"] * 4
    manifest = Manifest(base.ids.tolist(), base.paths.tolist(), base.frames, base.sample_rates,
                        base.channels, ["speech"] * 8, groups)
    scenario = {"sample_rate": 8000, "duration": 0.5, "max_sources": 2,
                "num_sources_probs": [0.0, 1.0], "background_prob": 0.0,
                "foreground_categories": {"speech": 1.0}, "background_categories": {}}
    mixer = GASSMixer(manifest, scenario)
    for k in range(60):
        m = mixer.draw(mixture_rng(3, k))
        assert sorted(groups[c] for c in m.clips) == ["alice", "bob"]
    single = Manifest(base.ids.tolist(), base.paths.tolist(), base.frames, base.sample_rates,
                      base.channels, ["speech"] * 8, ["alice"] * 8)
    m = GASSMixer(single, scenario).draw(mixture_rng(3, 0))
    assert len(set(m.clips)) == 2  # distinct clips of the one group


def test_multi_source_background_is_one_target_of_several_clips(tmp_path):
    """A low-volume multi-source background: 2-3 distinct clips of its category summed in one
    slot (each tone found in it by projection, no other), the slot at its drawn gain (closed
    form RMS), counted as one source; foregrounds stay single clips."""
    rate, n = 16000, 8000
    t = np.arange(2 * rate) / rate
    freqs = [200, 300, 500, 700, 1100, 1300]  # whole periods in 0.5 s: orthogonal tones
    rows = []
    for k, f in enumerate(freqs):
        path = tmp_path / f"tone{k}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), rate, "FLOAT")
        rows.append((f"tone{k}", str(path), len(t), rate, 1, "sfx", f"g{k}"))
    path = tmp_path / "voice.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.3, 0.3, len(t)).astype(np.float32), rate,
             "FLOAT")
    rows.append(("voice", str(path), len(t), rate, 1, "speech", "gv"))
    pool = Manifest(*map(list, zip(*rows)))
    scenario = {"sample_rate": rate, "duration": n / rate, "max_sources": 3,
                "num_sources_probs": [0, 1, 0], "background_prob": 1.0,
                "foreground_categories": {"speech": 1.0}, "background_categories": {"sfx": 1.0},
                "multi_background_prob": 1.0, "multi_background_clips": [2, 3]}
    mixer = GASSMixer(pool, scenario)
    sizes = set()
    for i in range(12):
        m = mixer.draw(mixture_rng(9, i))
        assert m.num_sources == 2 and m.roles == ["foreground", "background"]
        assert m.categories == ["speech", "sfx", ""] and m.components[0] == [m.clips[0]]
        parts = m.components[1]
        assert 2 <= len(parts) <= 3 and len(set(parts)) == len(parts) and parts[0] == m.clips[1]
        sizes.add(len(parts))
        slot = m.targets[:, 1].astype(np.float64)
        amps = []
        for f in freqs:
            c, s = (np.dot(slot, fn(2 * np.pi * f * np.arange(n) / rate)) for fn in (np.cos,
                                                                                   np.sin))
            amps.append(2 * math.hypot(c, s) / n)
        present = {pool.ids[p] for p in parts}
        for k, a in enumerate(amps):
            assert (a > 1e-4) is (f"tone{k}" in present), (k, a, present)
        expected = -25.0 + m.gains_db[1] + 20 * math.log10(m.scale)
        assert rms_db(slot) == pytest.approx(expected, abs=1e-3)
        np.testing.assert_allclose(m.mix, m.targets.sum(1), atol=1e-6)
    assert sizes == {2, 3}
    # off by default: a background is one clip, and the stream of draws is unchanged
    single = GASSMixer(pool, {**scenario, "multi_background_prob": 0.0})
    assert all(len(c) == 1 for c in single.draw(mixture_rng(9, 0)).components)
    with pytest.raises(ValueError, match="multi_background_prob"):
        Scenario(multi_background_prob=1.5)
