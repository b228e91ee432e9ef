"""Source manifests: columnar storage, O(1) draws, group splits, csv round trip, header scans."""

import numpy as np
import pytest
import soundfile as sf
from speechbrain.dataio.dataset import DynamicItemDataset

from gass_modules.dataio.columns import StringColumn
from gass_modules.dataio.manifest import Manifest, load_manifest
from gass_modules.dataio.scan import scan_audio


def synthetic(n: int, seed: int = 0, groups: int | None = None) -> Manifest:
    """A manifest of ``n`` non-existing clips with realistic path lengths."""
    rng = np.random.default_rng(seed)
    cats = np.array(["speech", "music_drums", "music_bass", "sfx"])
    c = rng.integers(0, len(cats), n)
    groups = groups or max(n // 20, 1)
    g = rng.integers(0, groups, n)
    return Manifest(
        [f"clip{i:08d}" for i in range(n)],
        [f"/data/gass/{cats[c[i]]}/group{g[i]:06d}/clip{i:08d}.flac" for i in range(n)],
        rng.integers(8000, 16000 * 30, n), rng.choice([16000, 44100, 48000], n),
        rng.integers(1, 3, n), cats[c].tolist(), [f"group{k:06d}" for k in g],
    )


def test_string_column_matches_python_lists():
    """Random gathers of a blob+offsets column equal list indexing (unicode, empty strings)."""
    rng = np.random.default_rng(0)
    values = ["", "ä/ö.wav", "x" * 300, "speech/spk1/u1.flac", "🎵"] * 40
    col = StringColumn.from_strings(values)
    assert col.tolist() == values
    idx = rng.integers(0, len(values), 500)
    assert col.take(idx).tolist() == [values[i] for i in idx]
    assert col.take([]).tolist() == []
    with pytest.raises(ValueError, match="offsets"):
        StringColumn(np.zeros(3, np.uint8), np.array([0, 2]))


def test_rows_and_indexes_match_the_input_columns():
    """Every row decodes to its input values; per-category indexes list exactly that category."""
    m = synthetic(2000)
    rng = np.random.default_rng(1)
    for i in rng.integers(0, len(m), 50):
        info = m[int(i)]
        assert info.path.endswith(f"clip{i:08d}.flac") and info.id == f"clip{i:08d}"
        assert info.category in info.path and info.group in info.path
    codes = m.category_codes
    for name in m.categories:
        expected = np.flatnonzero(codes == m.categories.index(name))
        np.testing.assert_array_equal(m.indices_of(name), expected)
    with pytest.raises(KeyError, match="not in this manifest"):
        m.indices_of("opera")


def test_draw_is_uniform_within_a_category():
    """Draws stay in the category and hit its clips uniformly (chi-square, 5 dof)."""
    m = Manifest([f"c{i}" for i in range(9)], [f"{i}.wav" for i in range(9)], [1] * 9,
                 [8000] * 9, [1] * 9, ["a", "b", "a", "a", "b", "a", "a", "b", "a"],
                 ["g"] * 9)
    rng = np.random.default_rng(0)
    draws = np.array([m.draw("a", rng) for _ in range(12000)])
    rows = m.indices_of("a")
    assert set(draws.tolist()) == set(rows.tolist())
    counts = np.array([(draws == r).sum() for r in rows])
    chi2 = ((counts - 2000.0) ** 2 / 2000.0).sum()
    assert chi2 < 20.5  # p ≈ 0.001 for 5 degrees of freedom


def test_memory_per_clip_is_small_and_flat():
    """≤ 200 bytes per clip including the category index, and the same at 5 k and 50 k rows."""
    small, large = synthetic(5000), synthetic(50000)
    for m in (small, large):
        m.indices_of("sfx")
    per_small, per_large = small.nbytes / len(small), large.nbytes / len(large)
    assert per_large <= 200
    assert abs(per_small - per_large) < 0.1 * per_large


def test_validation_errors_are_explicit():
    """Mismatched columns, duplicate ids and empty clips are refused with the culprit named."""
    with pytest.raises(ValueError, match="every column needs 2"):
        Manifest(["a", "b"], ["a.wav"], [1, 1], [8000] * 2, [1, 1], ["x"] * 2, ["g"] * 2)
    with pytest.raises(ValueError, match="duplicates such as \\['a'\\]"):
        Manifest(["a", "a"], ["a.wav"] * 2, [1, 1], [8000] * 2, [1, 1], ["x"] * 2, ["g"] * 2)
    with pytest.raises(ValueError, match="frames >= 1.*'b'"):
        Manifest(["a", "b"], ["a.wav"] * 2, [1, 0], [8000] * 2, [1, 1], ["x"] * 2, ["g"] * 2)


def test_group_split_has_no_leakage_and_follows_fractions():
    """Groups never straddle splits, rows are partitioned, shares approach the fractions."""
    m = synthetic(20000, groups=600)
    parts = m.split_by_group((0.8, 0.1, 0.1), seed=3)
    seen = {}
    total = m.durations.sum()
    for name, part in parts.items():
        names = set(part.group_names[g] for g in np.unique(part.group_codes))
        for other, other_names in seen.items():
            assert names.isdisjoint(other_names), f"{name} and {other} share groups"
        seen[name] = names
        assert set(part.categories) >= {"speech", "sfx"}
        for cat in m.categories:
            assert len(part.indices_of(cat)) > 0, f"{name} lacks {cat}"
    ids = sorted(i for p in parts.values() for i in p.ids.tolist())
    assert ids == sorted(m.ids.tolist())
    shares = [p.durations.sum() / total for p in parts.values()]
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.03)
    again = m.split_by_group((0.8, 0.1, 0.1), seed=3)
    assert again["test"].ids.tolist() == parts["test"].ids.tolist()


def test_group_split_keeps_multi_category_groups_together():
    """A song's stems (one group, three categories) land in one split; 3 groups fill 3 splits."""
    cats = ["music_drums", "music_bass", "music_other"] * 3
    groups = ["song1"] * 3 + ["song2"] * 3 + ["song3"] * 3
    m = Manifest([f"c{i}" for i in range(9)], [f"{i}.wav" for i in range(9)], [100] * 9,
                 [10] * 9, [1] * 9, cats, groups)
    parts = m.split_by_group((0.8, 0.1, 0.1), seed=0)
    for part in parts.values():
        assert len(part) == 3
        assert len({part[i].group for i in range(3)}) == 1
        assert sorted(part[i].category for i in range(3)) == sorted(cats[:3])
    with pytest.raises(ValueError, match="one non-negative fraction per split"):
        m.split_by_group((0.5, 0.5))


def test_csv_round_trip_relocates_and_loads_in_speechbrain(tmp_path):
    """to_csv/from_csv preserve every column; $data_root follows a moved folder; SB reads it."""
    m = synthetic(300)
    root = tmp_path / "corpus"
    moved = Manifest(m.ids.tolist(), [str(root / p.lstrip("/")) for p in m.paths.tolist()],
                     m.frames, m.sample_rates, m.channels,
                     [m.categories[c] for c in m.category_codes],
                     [m.group_names[g] for g in m.group_codes])
    csv_path = moved.to_csv(root / "m.csv", data_root=root)
    assert "$data_root/data/gass/" in csv_path.read_text()
    back = Manifest.from_csv(csv_path)
    assert [back[i] for i in range(len(back))] == [moved[i] for i in range(len(moved))]
    relocated = Manifest.from_csv(csv_path, replacements={"data_root": "/elsewhere"})
    assert relocated[0].path == "/elsewhere/" + m[0].path.lstrip("/")
    sb = DynamicItemDataset.from_csv(str(csv_path), replacements={"data_root": str(root)})
    first = sb.data[m.ids[0]]
    assert first["wav"] == moved[0].path
    assert first["duration"] == pytest.approx(m[0].duration, rel=1e-5)
    other = Manifest(["extra"], [str(root / "x.wav")], [8], [8000], [1], ["sfx"], ["h"])
    both = load_manifest([csv_path, other.to_csv(root / "o.csv", data_root=root)])
    assert len(both) == len(m) + 1 and both[len(m)].path == str(root / "x.wav")


def test_csv_errors_name_the_problem(tmp_path):
    """Wrong header, short rows and unresolved placeholders give explicit errors."""
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,wav\na,a.wav\n")
    with pytest.raises(ValueError, match="expected the header"):
        Manifest.from_csv(bad)
    short = tmp_path / "short.csv"
    short.write_text("ID,duration,wav,frames,sample_rate,channels,category,group\na,1,x.wav\n")
    with pytest.raises(ValueError, match="short.csv:2: expected 8 fields"):
        Manifest.from_csv(short)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("ID,duration,wav,frames,sample_rate,channels,category,group\n"
                       "a,1,$corpus/a.wav,8000,8000,1,sfx,g\n")
    with pytest.raises(KeyError, match="no value for \\$corpus"):
        Manifest.from_csv(unknown)


def test_scan_reads_headers_and_reports_skips(tmp_path, tools, capsys):
    """Frames/rates/channels equal what was written; broken and empty files are counted."""
    root = tmp_path / "corpus"
    written = {}
    for spk, rate, channels, frames in (("spk1", 16000, 1, 1234), ("spk1", 44100, 2, 999),
                                        ("spk2", 8000, 1, 4000)):
        folder = root / spk / "chapter"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"u{rate}.flac"
        sf.write(path, np.zeros((frames, channels), np.float32), rate)
        written[f"corpus/{spk}/chapter/u{rate}"] = (frames, rate, channels, f"corpus/{spk}")
    (root / "spk2" / "broken.wav").write_bytes(b"RIFF....garbage")
    sf.write(root / "spk2" / "empty.wav", np.zeros((0, 1), np.float32), 8000)
    (root / "notes.txt").write_text("not audio, not a candidate")
    manifest, report = scan_audio([root], "speech", group_depth=1, workers=3)
    got = {manifest[i].id: (manifest[i].frames, manifest[i].sample_rate, manifest[i].channels,
                            manifest[i].group) for i in range(len(manifest))}
    assert got == written
    assert report.reason_counts() == {"unreadable": 1, "empty": 1}
    assert report.totals["speech"]["clips"] == 3
    per_file, _ = scan_audio([root], "speech", group_depth=0)
    assert len(set(per_file[i].group for i in range(len(per_file)))) == 3
    with pytest.raises(FileNotFoundError, match="expected a folder"):
        scan_audio([tmp_path / "missing"], "speech")

    out = tmp_path / "m.csv"
    assert tools("make_manifest").main([str(root), "--category", "speech", "--out", str(out),
                                        "--split", "0.5", "0.5", "0"]) == 0
    printed = capsys.readouterr().out
    assert "speech: 3 clips" in printed and "unreadable: 1" in printed and "empty: 1" in printed
    assert len(Manifest.from_csv(out)) == 3
    assert (tmp_path / "m_train.csv").is_file() and (tmp_path / "m_valid.csv").is_file()


# ----------------------------------------------------------------------------- issue 27 item 7

HEADER = "ID,duration,wav,frames,sample_rate,channels,category,group"


def test_csv_with_a_bom_header_is_read(tmp_path):
    """A manifest saved by a spreadsheet starts with a UTF-8 BOM: the header is accepted."""
    path = tmp_path / "m.csv"
    path.write_bytes(("\ufeff" + HEADER + "\na,1,/x/a.wav,8000,8000,1,speech,g\n")
                     .encode("utf-8"))
    m = Manifest.from_csv(path)
    assert (m[0].id, m[0].frames, m[0].sample_rate, m[0].channels) == ("a", 8000, 8000, 1)


@pytest.mark.parametrize("row,message", [
    ("a,1,/x/a.wav,8000,8000,70000,speech,g", r"m.csv:2: channels = 70000 is out of range"),
    ("a,1,/x/a.wav,8000,100000000000,1,speech,g", r"m.csv:2: sample_rate = 100000000000 is out"),
    ("a,1,/x/a.wav,8000,1e11,1,speech,g", r"m.csv:2: sample_rate must be a whole number, got "
                                          r"'1e11'"),
    ("a,1,/x/a.wav,-5,8000,1,speech,g", r"m.csv:2: frames = -5 is out of range"),
    ("a,1,/x/a.wav,99999999999999999999,8000,1,speech,g", r"m.csv:2: frames = 9+ is out of "),
])
def test_out_of_range_integers_are_row_errors(tmp_path, row, message):
    """Channels 70000 or a rate of 1e11 were an OverflowError traceback from numpy; they are a
    ValueError naming the file, line, column and value."""
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\n{row}\n")
    with pytest.raises(ValueError, match=message):
        Manifest.from_csv(path)


def test_check_clips_decodes_the_last_frame_a_row_claims(tmp_path):
    """A file whose header promises more frames than its data holds passes a header probe; the
    check decodes the row's last frame and reports it (sampled in large manifests)."""
    from gass_modules.dataio.scan import check_clips

    good, cut = tmp_path / "good.flac", tmp_path / "cut.flac"
    audio = 0.1 * np.random.default_rng(0).standard_normal(48000).astype(np.float32)
    sf.write(good, audio, 16000)
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # FLAC header still says 48000 frames
    assert sf.info(cut).frames == 48000
    m = Manifest(["good", "cut"], [str(good), str(cut)], [48000, 48000], [16000] * 2, [1] * 2,
                 ["speech"] * 2, ["g", "h"])
    bad = check_clips(m)
    assert [(clip, reason.split(":")[0]) for clip, _, reason in bad] == [
        ("cut", "frames past the end of the decoded audio")]
    assert "decoding stops at" in bad[0][2]
    assert check_clips(m, tail_checks=0) == []  # header-only: what passed before
    many = Manifest([f"c{k}" for k in range(40)], [str(cut)] * 40, [48000] * 40, [16000] * 40,
                    [1] * 40, ["speech"] * 40, ["g"] * 40)
    assert len(check_clips(many, tail_checks=5)) == 5  # a sample of 5 rows decoded


def test_unknown_categories_and_clips_in_two_splits_warn(tmp_path, caplog):
    """A category the scenario never draws, and a clip in both train and test (same id, or the
    same audio under another name), used to pass in silence."""
    import logging

    from gass_modules.dataio.mixer import GASSMixer
    from gass_modules.dataio.scan import overlapping_clips

    files = []
    for k in range(3):
        files.append(tmp_path / f"c{k}.wav")
        sf.write(files[-1], (0.1 * (k + 1)) * np.ones(8000, np.float32), 8000)
    copy = tmp_path / "copy_of_c0.wav"
    copy.write_bytes(files[0].read_bytes())
    train = Manifest(["c0", "c1", "c2"], [str(p) for p in files], [8000] * 3, [8000] * 3,
                     [1] * 3, ["speech", "sfx", "speach"], ["g0", "g1", "g2"])
    test = Manifest(["c1", "t0"], [str(files[1]), str(copy)], [8000] * 2, [8000] * 2, [1] * 2,
                    ["sfx", "speech"], ["g1", "g3"])
    assert overlapping_clips({"train": train, "test": test}) == [
        ("train", "test", "c1", "same id"), ("train", "test", "c0", "same audio as t0")]
    with caplog.at_level(logging.WARNING, logger="gass_modules.dataio.mixer"):
        GASSMixer(train, {"foreground_categories": ["speech", "sfx"], "duration": 1.0,
                          "sample_rate": 8000})
    assert "categories the scenario does not use" in caplog.text and "'speach': 1" in caplog.text


def test_make_manifest_never_writes_over_a_scanned_file(tmp_path, tools, capsys):
    """#27, third probe: ``--out`` naming a scanned audio file replaced it with the csv, and a
    folder gave an IsADirectoryError traceback; both are usage errors now (status 2)."""
    root = tmp_path / "corpus"
    root.mkdir()
    sf.write(root / "song.wav", np.full((800, 1), 0.1, np.float32), 8000)
    before = (root / "song.wav").read_bytes()
    for out in (root / "song.wav", root):
        with pytest.raises(SystemExit) as stop:
            tools("make_manifest").main([str(root), "--category", "music", "--out", str(out)])
        assert stop.value.code == 2 and "--out must name a .csv file" in capsys.readouterr().err
    assert (root / "song.wav").read_bytes() == before
