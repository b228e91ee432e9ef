"""Integration tests of ``gass-separate`` (gass_modules.inference.cli) and ``tools/export.py``.

The model folder holds a gain separator (``g_s * x``), so every number in the JSON reports has a
closed form: output ``s`` has energy ``20 log10(g_s)`` dB relative to the mixture.
"""

import importlib.metadata
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_fuzz_inputs import time_limit  # tests/integration is on sys.path (no __init__.py)

from gass_modules.inference.cli import collect_inputs, main
from gass_modules.model_folder.folder import save_model_folder
from tests.doubles import ScaledCopies

ROOT = Path(__file__).resolve().parents[2]
GAINS = [0.6, 0.3, 0.05, 0.0]  # -4.4, -10.5, -26 dB (silent at -20), -inf


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A model folder with the gains above."""
    folder = tmp_path_factory.mktemp("model")
    return save_model_folder(ScaledCopies(GAINS, 16000), folder / "m")


def tones(rate: int, seconds: float, channels: int) -> np.ndarray:
    """``[T, C]`` tones under 4 kHz: the 16 kHz model round trip leaves them intact."""
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.2 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(2 * np.pi * 3 * f * t)
                     for f in (220.0 + 110 * c for c in range(channels))], axis=1)


def write_inputs(folder: Path) -> dict:
    """Good and bad inputs; returns name -> path."""
    (folder / "sub").mkdir(parents=True)
    paths = {
        "a": folder / "a.wav",  # 44.1 kHz stereo PCM_16
        "b": folder / "sub" / "b.flac",  # 22.05 kHz mono 24-bit FLAC
        "c": folder / "c.ogg",  # 48 kHz 6 channels Vorbis
        "empty": folder / "empty.wav",
        "nan": folder / "nan.wav",
        "header": folder / "header.wav",
        "text": folder / "text.wav",
    }
    sf.write(paths["a"], tones(44100, 1.2, 2), 44100, subtype="PCM_16")
    sf.write(paths["b"], tones(22050, 0.7, 1), 22050, subtype="PCM_24")
    sf.write(paths["c"], tones(48000, 0.5, 6), 48000, format="OGG", subtype="VORBIS")
    sf.write(paths["empty"], np.zeros((0, 1)), 8000)
    nan = tones(8000, 0.5, 1).astype(np.float32)
    nan[100] = np.nan
    sf.write(paths["nan"], nan, 8000, subtype="FLOAT")
    sf.write(paths["header"], tones(8000, 0.1, 1), 8000)
    paths["header"].write_bytes(paths["header"].read_bytes()[:30])
    paths["text"].write_text("not audio")
    return paths


def test_cli_separates_good_files_and_reports_bad_ones(tmp_path, model_dir, capsys):
    """Good inputs are separated (names, rates, formats, JSON values); each bad one is reported
    with its reason and the exit status is 1."""
    paths = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    argv = [str(tmp_path / "in"), str(tmp_path / "missing.wav"), "--model", str(model_dir),
            "--out", str(out), "--chunk-seconds", "0.4", "--plot"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "3 file(s) separated, 5 failed" in err
    assert f"{tmp_path / 'missing.wav'}: no such file or directory" in err
    assert f"{paths['empty']}: expected audio, got 0 samples in {paths['empty']}" in err
    assert f"{paths['nan']}: {paths['nan']} contains NaN or Inf samples (first at sample 100" in err
    assert f"{paths['header']}: {paths['header']} is not a readable audio file" in err
    assert f"{paths['text']}: {paths['text']} is not a readable audio file" in err

    expected = {  # stem -> (folder, rate, channels, subtype, frames)
        "a": (out, 44100, 1, "PCM_16", int(44100 * 1.2)),
        "b": (out / "sub", 22050, 1, "PCM_24", int(22050 * 0.7)),
        "c": (out, 48000, 1, "FLOAT", int(48000 * 0.5)),
    }
    for stem, (folder, rate, channels, subtype, frames) in expected.items():
        assert sorted(p.name for p in folder.glob(f"{stem}*")) == [
            f"{stem}.json", f"{stem}.png", f"{stem}_s1.wav", f"{stem}_s2.wav"]
        for k in (1, 2):
            info = sf.info(folder / f"{stem}_s{k}.wav")
            assert (info.samplerate, info.channels, info.subtype, info.frames) == (
                rate, channels, subtype, frames)
        report = json.loads((folder / f"{stem}.json").read_text())
        assert report["num_active"] == 2 and report["sample_rate"] == rate
        assert report["order"] == "aligned"  # a PIT model folder: chunks are re-aligned
        assert "fixed_order" not in report  # its name before 2.0.0 is not written twice
        assert [s["output"] for s in report["sources"]] == [1, 2, 3, 4]
        assert [s["file"] for s in report["sources"]] == [f"{stem}_s1.wav", f"{stem}_s2.wav",
                                                          None, None]
        assert [s["active"] for s in report["sources"]] == [True, True, False, False]
        energies = [s["energy_db"] for s in report["sources"]]
        np.testing.assert_allclose(energies[:3], [20 * math.log10(g) for g in GAINS[:3]],
                                   atol=0.05)
        assert energies[3] is None  # -inf: an all-zero output
        seconds = [s["active_seconds"] for s in report["sources"]]
        assert seconds == pytest.approx([frames / rate] * 2 + [0.0, 0.0], abs=0.11)
        assert (folder / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mix = sf.read(paths["a"], dtype="float32")[0].mean(1)
    stem = sf.read(out / "a_s1.wav", dtype="float32")[0]
    np.testing.assert_allclose(stem[500:-500], GAINS[0] * mix[500:-500], atol=2e-3)
    assert not list(out.rglob(".*partial*"))


def test_cli_never_overwrites_without_flag(tmp_path, model_dir, capsys):
    """A second run skips the done input (exit 0, a "skipped" line: reruns are idempotent, as
    --help says; issue 27 item 13) and leaves the outputs; another input of the same name is
    not "done" (an error, as before); --overwrite replaces them."""
    sf.write(tmp_path / "x.wav", tones(16000, 0.3, 1), 16000, subtype="PCM_16")
    argv = [str(tmp_path / "x.wav"), "--model", str(model_dir), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    assert sorted(before) == ["x.json", "x_s1.wav", "x_s2.wav"]
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"{tmp_path / 'x.wav'}: skipped: outputs exist" in captured.out
    assert "FAILED" not in captured.err
    other = one_input(tmp_path / "elsewhere", "x.wav")  # same name, another input: not done
    assert main([str(other)] + argv[1:]) == 1
    err = capsys.readouterr().err
    assert f"outputs already exist ({tmp_path / 'o' / 'x.json'}) for another input" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before
    assert main(argv + ["--overwrite", "--keep-silent"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "x.json", "x_s1.wav", "x_s2.wav", "x_s3.wav", "x_s4.wav"]


def test_cli_channels_each_keeps_the_channels(tmp_path, model_dir):
    """--channels each: stems keep the input's channels, each the gain times its channel."""
    audio = tones(16000, 0.5, 2)
    sf.write(tmp_path / "st.wav", audio, 16000, subtype="FLOAT")
    assert main([str(tmp_path / "st.wav"), "--model", str(model_dir), "--out",
                 str(tmp_path / "o"), "--channels", "each", "--device", "cpu"]) == 0
    stem = sf.read(tmp_path / "o" / "st_s2.wav", dtype="float32")[0]
    np.testing.assert_allclose(stem, GAINS[1] * audio, atol=1e-6)


def test_cli_usage_errors(tmp_path, model_dir, capsys):
    """Wrong options exit 2 through argparse; a missing model folder returns 2."""
    for bad in (["--overlap", "0.8"], ["--chunk-seconds", "-1"], ["--channels", "left"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["x.wav", "--model", str(model_dir), "--out", str(tmp_path)] + bad)
        assert exit_info.value.code == 2
    assert main(["x.wav", "--model", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_console_script_is_installed():
    """The gass-separate console script (setup.py) is installed and points at main."""
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (entry,) = [e for e in scripts if e.name == "gass-separate"]
    assert entry.value == "gass_modules.inference.cli:main" and entry.load() is main
    assert (Path(sys.executable).parent / "gass-separate").exists()


def load_export_tool():
    """tools/export.py as a module."""
    spec = importlib.util.spec_from_file_location("gass_export", ROOT / "tools" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:The given buffer is not writable:UserWarning")
def test_export_matches_eager(tmp_path, model_dir, capsys):
    """tools/export.py writes a program with a dynamic length that matches eager."""
    export = load_export_tool()
    out = tmp_path / "sep.pt2"
    assert export.main([str(model_dir), "--out", str(out), "--max-seconds", "5"]) == 0
    assert "max |exported - eager| = 0.00e+00" in capsys.readouterr().out
    extra = {"gass.json": ""}
    program = torch.export.load(out, extra_files=extra)
    meta = json.loads(extra["gass.json"])
    assert meta == {"sample_rate": 16000, "num_sources": 4, "stride": 1, "max_samples": 80000}
    eager = ScaledCopies(GAINS, 16000)
    for shape in ((1, 7), (3, 1234), (2, 80000)):
        x = torch.randn(*shape)
        torch.testing.assert_close(program.module()(x), eager(x).detach(), atol=0, rtol=0)
    assert export.main([str(tmp_path / "no_model"), "--out", str(out)]) == 1
    assert "model folder not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- issue 17

SLOW_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import tests.doubles  # registers ScaledCopies, the model folder's separator
import gass_modules.inference.separator as inference
original = inference.GASSSeparator._model
def slow(self, *args):
    time.sleep({delay})
    {action}
    return original(self, *args)
inference.GASSSeparator._model = slow
from gass_modules.inference.cli import collect_inputs, main
sys.exit(main(sys.argv[1:]))
"""


def child(argv: list[str], delay: float = 0.05, action: str = "") -> list[str]:
    """A ``gass-separate`` process whose chunks take ``delay`` s each (so runs overlap)."""
    return [sys.executable, "-c", SLOW_CHILD.format(root=str(ROOT), delay=delay,
                                                   action=action or "pass"),
            *argv]


def test_concurrent_runs_never_exchange_stems(model_dir, tmp_path):
    """Item 1: two processes, same --out, different inputs with the same file name. Each run
    that exits 0 holds its own stems; the final stems and JSON all come from one input."""
    import subprocess

    t = np.arange(16000 * 3) / 16000
    inputs = {"one": 0.5 * np.sin(2 * np.pi * 300 * t), "two": 0.5 * np.sin(2 * np.pi * 700 * t)}
    for name, x in inputs.items():
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "song.wav", x.astype(np.float32), 16000, subtype="FLOAT")
    out = tmp_path / "out"
    procs = [subprocess.Popen(child([str(tmp_path / name / "song.wav"), "--model",
                                     str(model_dir), "--out", str(out), "--overwrite",
                                     "--chunk-seconds", "0.1"]),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in inputs]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        assert code in (0, 1) and "Traceback" not in err, err
        if code == 1:  # lost the race: told so, wrote nothing
            assert "another process is writing" in err
    report = json.loads((out / "song.json").read_text())
    source = Path(report["input"]).parent.name
    x = inputs[source]
    for k, gain in enumerate(GAINS[:2]):
        stem = sf.read(out / f"song_s{k + 1}.wav", dtype="float32")[0]
        np.testing.assert_allclose(stem, gain * x, atol=1e-5)
    assert sorted(p.name for p in out.iterdir()) == ["song.json", "song_s1.wav", "song_s2.wav"]


def test_overwrite_in_the_input_folder_never_destroys_inputs(model_dir, tmp_path):
    """Item 2: --out is the input folder and an input is named like a stem (a_s1.wav beside
    a.wav): that input is not overwritten, and a second run does not take stems as inputs."""
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a.wav", tones(16000, 0.5, 1), 16000, subtype="PCM_16")
    sf.write(folder / "b_s1.wav", tones(16000, 0.5, 1), 16000, subtype="PCM_16")
    sf.write(folder / "b.wav", 0.5 * tones(16000, 0.5, 1), 16000, subtype="PCM_16")
    protected = (folder / "b_s1.wav").read_bytes()
    code = main([str(folder), "--model", str(model_dir), "--out", str(folder), "--overwrite"])
    assert code == 1  # b.wav: its stem would replace the input b_s1.wav
    assert (folder / "b_s1.wav").read_bytes() == protected
    assert (folder / "a_s1.wav").is_file() and (folder / "b_s1.json").is_file()
    listed = sorted(p.name for p in folder.iterdir())
    code = main([str(folder), "--model", str(model_dir), "--out", str(folder), "--overwrite"])
    assert (folder / "b_s1.wav").read_bytes() == protected
    # the stems of the first run (a_s1.wav, a_s2.wav, b_s1_s*.wav) were not separated again
    assert sorted(p.name for p in folder.iterdir()) == listed
    assert not (folder / "a_s1_s1.wav").exists()


@pytest.mark.parametrize("signame,status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_sigterm_removes_partial_files(model_dir, tmp_path, signame, status):
    """Item 8: SIGTERM mid-file leaves no .partial files (as Ctrl-C), and says so. Issue 16: the
    exit status is 128 + the signal's number, 143 for SIGTERM (it was 130, Ctrl-C's)."""
    import subprocess

    sf.write(tmp_path / "long.wav", tones(16000, 2.0, 1), 16000, subtype="PCM_16")
    out = tmp_path / "out"
    action = ("import os, signal\n    slow.calls = getattr(slow, 'calls', 0) + 1\n"
              f"    if slow.calls == 3: os.kill(os.getpid(), signal.{signame})")
    proc = subprocess.run(child([str(tmp_path / "long.wav"), "--model", str(model_dir), "--out",
                                 str(out), "--chunk-seconds", "0.2"], action=action),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == status, proc.stderr
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------- issue 27


def one_input(folder: Path, name: str = "a.wav", seconds: float = 0.3) -> Path:
    """A short mono PCM_16 input at the model's rate."""
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / name, tones(16000, seconds, 1), 16000, subtype="PCM_16")
    return folder / name


def test_overwrite_removes_only_files_this_tool_recorded(tmp_path, model_dir, capsys):
    """Item 1: --overwrite never deletes a <stem>_sK.wav that no run wrote (a user's a_s3.wav
    beside a.wav, with 2 active sources); a stem an earlier run recorded is replaced or removed,
    and a foreign file with a stem's name is refused, not replaced."""
    path = one_input(tmp_path)
    user = tmp_path / "a_s3.wav"
    sf.write(user, tones(16000, 0.1, 1), 16000, subtype="PCM_16")
    mine = user.read_bytes()
    argv = [str(path), "--model", str(model_dir), "--out", str(tmp_path), "--overwrite"]
    assert main(argv) == 0
    assert user.read_bytes() == mine  # 2 active sources: s3 was not this run's
    assert main(argv + ["--keep-silent"]) == 1  # s3 would replace the user's file: refused
    assert "would be written over the input(s) or protected files" in capsys.readouterr().err
    assert user.read_bytes() == mine
    user.rename(tmp_path / "keep.wav")
    assert main(argv + ["--keep-silent"]) == 0  # now s3 and s4 are written and recorded
    assert main(argv) == 0  # and removed again by a run that writes 2 stems
    assert sorted(p.name for p in tmp_path.glob("a*")) == ["a.json", "a.wav", "a_s1.wav",
                                                           "a_s2.wav"]


@pytest.mark.parametrize("name,extra", [("take.json", []), ("x.png", ["--plot"])])
def test_report_and_plot_never_overwrite_an_input(tmp_path, model_dir, name, extra, capsys):
    """Item 2: --out is the input folder and an input is named like the report or the plot of
    another input (take.json beside take.wav; x.png beside x.wav): the input is kept."""
    stem = name.split(".")[0]
    path = one_input(tmp_path, f"{stem}.wav")
    other = tmp_path / name
    sf.write(other, tones(16000, 0.2, 1), 16000, format="WAV", subtype="PCM_16")
    before = other.read_bytes()
    code = main([str(path), str(other), "--model", str(model_dir), "--out", str(tmp_path),
                 "--overwrite", *extra])
    assert code == 1
    assert "would be written over the input" in capsys.readouterr().err
    assert other.read_bytes() == before


def test_killed_run_leftovers_are_skipped_cleared_and_cleaned(tmp_path, model_dir, capsys):
    """Item 3: a SIGKILLed run's hidden partial files and lock (with its dead pid) are not taken
    as inputs by a folder scan; the next run over the folder clears the stale lock with a
    message and removes the partial files."""
    import subprocess

    folder = tmp_path / "in"
    one_input(folder)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    (folder / ".a.gass-lock").write_text(str(dead.pid))
    for leftover in (".a_o1.k2j4h1x9.partial.wav", ".a.x8s7.partial.json"):
        sf.write(folder / leftover, tones(16000, 0.1, 1), 16000, format="WAV")
    jobs, errors = collect_inputs([str(folder)])
    assert [p.name for p, _ in jobs] == ["a.wav"] and not errors
    assert main([str(folder), "--model", str(model_dir), "--out", str(folder)]) == 0
    err = capsys.readouterr().err
    assert f"cleared the stale lock {folder / '.a.gass-lock'} of process {dead.pid}" in err
    assert sorted(p.name for p in folder.iterdir()) == ["a.json", "a.wav", "a_s1.wav",
                                                        "a_s2.wav"]


def test_default_model_is_the_bundled_one_whatever_the_working_folder(tmp_path, monkeypatch,
                                                                      capsys):
    """Item 5: an empty or foreign ./gass-mini folder does not replace the default model; an
    explicit --model gass-mini that is also a local folder says which one it used."""
    from gass_modules.model_folder.pretrained import bundled_model_folder

    path = one_input(tmp_path / "in", seconds=0.5)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gass-mini").mkdir()  # empty: loading it would fail
    assert main([str(path), "-o", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "a.json").read_text())
    assert report["model"] == str(bundled_model_folder("gass-mini"))
    capsys.readouterr()
    assert main([str(path), "-m", "gass-mini", "-o", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert f"using the local folder {tmp_path / 'gass-mini'}, not the bundled model" in err


def test_chunk_seconds_has_a_minimum(tmp_path, model_dir, capsys):
    """Item 9: --chunk-seconds 0.001 (minutes of model calls for 0.5 s) is a usage error, and
    the same value in a model folder is refused at load."""
    import shutil

    path = one_input(tmp_path, seconds=0.5)
    with pytest.raises(SystemExit) as exit_info:
        main([str(path), "--model", str(model_dir), "--chunk-seconds", "0.001"])
    assert exit_info.value.code == 2
    assert "--chunk-seconds must be a number of seconds >= 0.1" in capsys.readouterr().err
    folder = tmp_path / "tiny_chunks"
    shutil.copytree(model_dir, folder)
    card = (folder / "hyperparams.yaml").read_text()
    (folder / "hyperparams.yaml").write_text(card.replace("chunk_seconds: 10.0",
                                                          "chunk_seconds: 0.001"))
    assert "chunk_seconds: 0.001" in (folder / "hyperparams.yaml").read_text()
    assert main([str(path), "--model", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "chunk_seconds=0.001 is too short" in capsys.readouterr().err


def test_fifo_and_special_files_are_refused_before_opening(tmp_path, model_dir, capsys):
    """Item 10: a FIFO named as input (or found in a folder) is refused, not opened (opening
    one blocks forever)."""
    import os

    fifo = tmp_path / "in" / "live.wav"
    one_input(tmp_path / "in", "ok.wav")
    os.mkfifo(fifo)
    with time_limit(60, "gass-separate on a FIFO"):
        code = main([str(fifo), str(tmp_path / "in"), "--model", str(model_dir), "--out",
                     str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{fifo}: not a regular file (a FIFO, device or socket)" in err
    assert "1 file(s) separated, 1 failed" in err  # ok.wav; the FIFO is not scanned either


def test_outputs_follow_the_umask(tmp_path, model_dir):
    """Item 12: stems, report and plot are created 0666 less the umask (0644 under 022), not
    mkstemp's 0600."""
    import os

    path = one_input(tmp_path / "in")
    old = os.umask(0o022)
    try:
        assert main([str(path), "--model", str(model_dir), "--out", str(tmp_path / "o"),
                     "--plot"]) == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "o").iterdir()}
    assert modes == {"a.json": 0o644, "a.png": 0o644, "a_s1.wav": 0o644, "a_s2.wav": 0o644}


def test_trust_model_code_warns_and_names_the_folder(tmp_path, model_dir, capsys):
    """Item 14: --trust-model-code prints a warning naming the folder before loading it."""
    path = one_input(tmp_path / "in")
    assert main([str(path), "--model", str(model_dir), "--out", str(tmp_path / "o"),
                 "--trust-model-code"]) == 0
    err = capsys.readouterr().err
    assert f"WARNING --trust-model-code: loading {model_dir}" in err
    assert "code written in its hyperparams.yaml may run" in err


def test_folder_scan_takes_every_format_soundfile_reads(tmp_path, model_dir):
    """Item 15: a folder scan picks up mp3 (and aiff, au, ...) as a named file would be."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, fmt, subtype in [("m.mp3", "MP3", "MPEG_LAYER_III"), ("f.aiff", "AIFF", "PCM_16"),
                               ("u.au", "AU", "PCM_16")]:
        sf.write(folder / name, tones(16000, 0.5, 1), 16000, format=fmt, subtype=subtype)
    (folder / "notes.txt").write_text("not audio")
    assert main([str(folder), "--model", str(model_dir), "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").glob("*.json")) == ["f.json", "m.json",
                                                                       "u.json"]


def test_short_flags_version_and_device_errors(tmp_path, model_dir, capsys):
    """Item 16: -o/-m work, --version prints the version; --device cuda without CUDA says so,
    and an unsupported device (mps) is a usage error, not a silent CPU run. (Probe: a file named
    twice, directly and through its folder, is separated once, not an error.)"""
    path = one_input(tmp_path / "in")
    assert main([str(path), str(path.parent), "-m", str(model_dir), "-o", str(tmp_path / "o")]) \
        == 0
    assert (tmp_path / "o" / "a_s1.wav").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("gass-separate ")
    bad = [("mps", "the mps device is not supported")]
    if not torch.cuda.is_available():
        bad.append(("cuda", "--device cuda: no CUDA device"))
    for device, message in bad:
        with pytest.raises(SystemExit) as exit_info:
            main([str(path), "-m", str(model_dir), "--device", device])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "cannot load the model folder" not in err


def test_disk_full_and_too_loud_inputs_say_so(tmp_path, model_dir, monkeypatch, capsys):
    """Item 17: a full disk says "no space left on device writing PATH" (and leaves no partial
    file); float input of 1e30 says "input too loud", not "check the checkpoint"."""
    import errno

    loud = tmp_path / "in" / "loud.wav"
    loud.parent.mkdir()
    audio = tones(16000, 0.3, 1).astype(np.float32)
    audio[1000] = 1e30
    sf.write(loud, audio, 16000, subtype="FLOAT")
    assert main([str(loud), "--model", str(model_dir), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "input too loud: sample 1000" in err and "checkpoint" not in err

    path = one_input(tmp_path / "in")
    original = sf.SoundFile.write

    def full(self, data):
        if "partial" in str(self.name):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", full)
    assert main([str(path), "--model", str(model_dir), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"no space left on device writing {tmp_path / 'o' / 'a_s1.wav'}" in err
    assert list((tmp_path / "o").iterdir()) == []
    def no_room(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", original)  # the disk fills up at the report:
    monkeypatch.setattr(Path, "write_text", no_room)
    assert main([str(path), "--model", str(model_dir), "--out", str(tmp_path / "o")]) == 1
    assert f"no space left on device writing {tmp_path / 'o' / 'a.json'}" in \
        capsys.readouterr().err
    assert list((tmp_path / "o").iterdir()) == []  # no stems left without their record


def test_ctrl_c_while_loading_and_twice_leaves_no_traceback(tmp_path, model_dir, monkeypatch,
                                                           capsys):
    """Item 17: Ctrl-C while the model loads exits 130 with a message, no traceback; a second
    Ctrl-C during the cleanup of the first cannot leave partial files."""
    import subprocess

    path = one_input(tmp_path / "in", seconds=2.0)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("gass_modules.inference.cli.GASSSeparator.from_hparams", interrupted)
        assert main([str(path), "--model", str(model_dir)]) == 130
    assert "interrupted" in capsys.readouterr().err
    action = ("import os, signal, gass_modules.inference.output_files as output_files\n"
              "    slow.calls = getattr(slow, 'calls', 0) + 1\n"
              "    abort = output_files.StemWriter.abort\n"
              "    def again(self):\n"
              "        os.kill(os.getpid(), signal.SIGINT); time.sleep(0.2); abort(self)\n"
              "    output_files.StemWriter.abort = again\n"
              "    if slow.calls == 3: os.kill(os.getpid(), signal.SIGINT)")
    out = tmp_path / "out"
    proc = subprocess.run(child([str(path), "--model", str(model_dir), "--out", str(out),
                                 "--chunk-seconds", "0.2"], action=action),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "interrupted" in proc.stderr
    assert list(out.iterdir()) == []


def test_progress_lines_without_a_terminal(tmp_path, model_dir, monkeypatch, capsys):
    """Item 19: without a terminal a long file gets plain progress lines (percent, chunks, ETA)
    and no bar redraws (no carriage returns)."""
    import gass_modules.inference.stems as stems

    path = one_input(tmp_path / "in", seconds=2.0)
    monkeypatch.setattr(stems, "PROGRESS_SECONDS", 0.0)  # a line per chunk
    assert main([str(path), "--model", str(model_dir), "--out", str(tmp_path / "o"),
                 "--chunk-seconds", "0.25"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "ETA" in line]
    assert len(lines) >= 5 and "\r" not in err
    assert lines[0].startswith("gass-separate: a.wav: ") and "chunk 1/" in lines[0]
    assert "% (" in lines[0] and "of 2.0 s)" in lines[0]
    # on a terminal: one tqdm line for the file, kept when done (all chunks counted)
    monkeypatch.setattr(stems, "BAR_DELAY", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([str(path), "--model", str(model_dir), "--out", str(tmp_path / "o2"),
                 "--chunk-seconds", "0.25"]) == 0
    err = capsys.readouterr().err
    assert "ETA" not in err and err.count("\n") == 1  # one line, redrawn in place
    chunks = lines[-1].split("chunk ")[1].split("/")[1].split(",")[0]
    assert "a.wav: 100%" in err and f"{chunks}/{chunks}" in err


def test_damaged_ogg_warns_that_it_decoded_short(tmp_path, model_dir, capsys):
    """Item 6: an Ogg Vorbis file with garbage in the middle decodes short (libsndfile stops at
    the damage); the run warns with the frames announced (last page's granule) and decoded."""
    t = np.arange(16000 * 10) / 16000
    good = tmp_path / "good.ogg"
    sf.write(good, 0.3 * np.sin(2 * np.pi * 440 * t), 16000, format="OGG", subtype="VORBIS")
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 500] = np.random.default_rng(1).integers(0, 256, 500,
                                                                   np.uint8).tobytes()
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(bytes(data))
    decoded = sf.info(bad).frames
    assert 0 < decoded < len(t)  # the damage this test is about
    assert main([str(good), str(bad), "--model", str(model_dir), "--out", str(tmp_path / "o")]) \
        == 0
    err = capsys.readouterr().err
    assert (f"WARNING {bad} is damaged: its Ogg stream announces {len(t)} frames but only "
            f"{decoded} could be decoded") in err
    assert "good.ogg is damaged" not in err
    report = json.loads((tmp_path / "o" / "bad.json").read_text())
    assert report["warnings"] and report["num_frames"] == decoded


# ---- #27, third probe: --stream as the batch mode, symlinks, absurd rates and headers ----


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory) -> Path:
    """A tiny causal BSRNN model folder (8 kHz, 3 outputs) for ``--stream``."""
    from gass_modules.lobes.bsrnn import BSRNN

    torch.manual_seed(0)
    model = BSRNN(num_sources=3, sample_rate=8000, n_fft=256, hop_length=64, feature_dim=8,
                  hidden_dim=8, num_blocks=1, causal=True).eval()
    return save_model_folder(model, tmp_path_factory.mktemp("causal") / "m")


def stream(causal_dir: Path, *argv: str) -> int:
    return main([*argv, "--stream", "--model", str(causal_dir)])


def test_stream_skips_a_done_input_as_the_batch_mode_does(tmp_path, causal_dir, capsys,
                                                          monkeypatch):
    """#27 item 13 on ``--stream``: a done input is skipped (status 0, a "skipped" line,
    nothing rewritten), ``--overwrite`` redoes it, a stream cut short (its report says
    ``complete: false``) is redone; stdin is never "done": new outputs need ``--overwrite``."""
    import io

    sf.write(tmp_path / "a.wav", tones(8000, 0.3, 1), 8000)
    out = tmp_path / "out"
    assert stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(out)) == 0
    report = json.loads((out / "a.json").read_text())
    assert report["complete"] is True and report["num_frames"] == 2400
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(out)) == 0
    assert "a.wav: skipped: outputs exist" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(out), "--overwrite") == 0
    assert "streamed" in capsys.readouterr().out
    (out / "a.json").write_text(json.dumps({**report, "complete": False}))  # cut short
    (out / "a_s2.wav").write_bytes(b"half")
    assert stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(out)) == 0
    assert sf.info(out / "a_s2.wav").frames == 2400
    pcm = np.zeros(800, np.int16).tobytes()
    for status in (0, 1):
        monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": io.BytesIO(pcm)})())
        assert stream(causal_dir, "-", "-o", str(out)) == status
    assert "for stdin" in capsys.readouterr().err


def test_stream_refuses_what_the_batch_mode_refuses(tmp_path, causal_dir, capsys):
    """``--stream`` takes folders as the batch mode does and refuses, with a reason and
    status 1 (2: a hop over 10 s), a FIFO (before blocking on it), a second input with the
    same stem (which would replace the first one's stems), NaN and empty files, and a rate
    whose resampling kernel would take gigabytes (it ran for minutes)."""
    import os

    (tmp_path / "d" / "e").mkdir(parents=True)
    sf.write(tmp_path / "d" / "e" / "a.wav", tones(8000, 0.2, 1), 8000)
    sf.write(tmp_path / "a.flac", tones(8000, 0.2, 1), 8000)
    out = tmp_path / "out"
    assert stream(causal_dir, str(tmp_path / "d"), "-o", str(out)) == 0
    assert sf.info(out / "e" / "a_s3.wav").frames == 1600
    os.mkfifo(tmp_path / "fifo.wav")
    nan = tones(8000, 0.2, 1).astype(np.float32)
    nan[700] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 8000, subtype="FLOAT")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1)), 8000)
    sf.write(tmp_path / "odd.wav", tones(44101, 0.1, 1), 44101)
    sf.write(tmp_path / "a.wav", tones(8000, 0.2, 1), 8000)
    capsys.readouterr()
    with time_limit(60, "gass-separate --stream on bad inputs"):
        status = stream(causal_dir, *(str(tmp_path / n) for n in (
            "a.wav", "a.flac", "fifo.wav", "nan.wav", "empty.wav", "odd.wav")), "-o",
            str(tmp_path / "o2"), "--overwrite")
    err = capsys.readouterr().err
    assert status == 1
    for reason in ("would overwrite those of", "not a regular file", "NaN or Inf",
                   "0 samples", "cannot resample 44101 Hz"):
        assert reason in err, reason
    assert json.loads((tmp_path / "o2" / "a.json").read_text())["input"] == str(
        (tmp_path / "a.wav").resolve())
    assert stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(out), "--hop-ms", "1e9") == 2


def test_stream_never_writes_through_a_symlink_nor_removes_other_names(tmp_path, causal_dir,
                                                                      capsys):
    """A stem name that is a symlink (recorded by a report) is replaced as a link: the file it
    points to was truncated and rewritten; a link to the input is refused (as in the batch
    mode); a report that lists another file of the folder (``notes.txt``) never gets it
    removed by ``--overwrite``."""
    sf.write(tmp_path / "a.wav", tones(8000, 0.2, 1), 8000)
    sf.write(tmp_path / "precious.wav", tones(8000, 0.1, 1), 8000)
    before = (tmp_path / "precious.wav").read_bytes()
    out = tmp_path / "out"
    assert stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(out)) == 0
    report = json.loads((out / "a.json").read_text())
    report["sources"].append({"output": 9, "file": "notes.txt"})
    (out / "a.json").write_text(json.dumps(report))
    (out / "notes.txt").write_text("mine")
    (out / "a_s1.wav").unlink()
    (out / "a_s1.wav").symlink_to(tmp_path / "a.wav")
    assert stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(out), "--overwrite") == 1
    assert "written over the input" in capsys.readouterr().err
    (out / "a_s1.wav").unlink()
    (out / "a_s1.wav").symlink_to(tmp_path / "precious.wav")
    assert stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(out), "--overwrite") == 0
    assert (tmp_path / "precious.wav").read_bytes() == before
    assert not (out / "a_s1.wav").is_symlink() and sf.info(out / "a_s1.wav").frames == 1600
    assert (out / "notes.txt").read_text() == "mine"


def test_stream_fails_on_nan_model_output(tmp_path, causal_dir, capsys):
    """A checkpoint of NaN weights loads; the batch mode said so, ``--stream`` wrote NaN
    stems with status 0."""
    import shutil

    folder = tmp_path / "nan_model"
    shutil.copytree(causal_dir, folder)
    state = torch.load(folder / "separator.ckpt")
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                for k, v in state.items()}, folder / "separator.ckpt")
    sf.write(tmp_path / "a.wav", tones(8000, 0.2, 1), 8000)
    assert stream(folder, str(tmp_path / "a.wav"), "-o", str(tmp_path / "out")) == 1
    assert "returned NaN or Inf" in capsys.readouterr().err


def test_overwrite_removes_a_stale_residual_link_not_its_target(tmp_path, model_dir):
    """``--overwrite`` without ``--residual`` removes the earlier run's recorded residual;
    when that name is now a symlink, the link goes, not the file it points to (it deleted
    the target: an input or any user file)."""
    sf.write(tmp_path / "a.wav", tones(16000, 0.3, 1), 16000)
    sf.write(tmp_path / "precious.wav", tones(16000, 0.1, 1), 16000)
    out = tmp_path / "out"
    assert main([str(tmp_path / "a.wav"), "-m", str(model_dir), "-o", str(out),
                 "--residual"]) == 0
    (out / "a_residual.wav").unlink()
    (out / "a_residual.wav").symlink_to(tmp_path / "precious.wav")
    assert main([str(tmp_path / "a.wav"), "-m", str(model_dir), "-o", str(out),
                 "--overwrite"]) == 0
    assert (tmp_path / "precious.wav").is_file() and not (out / "a_residual.wav").exists()


def test_absurd_rates_are_refused_before_building_kernels(monkeypatch):
    """A 2**31-1 Hz header: the chunk plan of the progress line built a 17-GB resampling
    kernel before the rate check (gass-separate was killed by the OOM killer), and --plot's
    spectrogram a 2**26-sample FFT."""
    from gass_modules.inference import chunking
    from gass_modules.inference.stems import PLOT_MAX_FFT, Spectrogram

    def built(*args):
        raise AssertionError(f"a resampling kernel was built for {args}")

    monkeypatch.setattr(chunking, "cached_resampler", built)
    with pytest.raises(ValueError, match="cannot resample 2147483647 Hz"):
        chunking.plan_chunks(64, 2**31 - 1, 8000, 10.0, 0.25)
    assert Spectrogram(64, 2**31 - 1, 4).n_fft == PLOT_MAX_FFT == 2**14


def test_names_that_differ_in_case_only_clash(tmp_path):
    """``A.wav`` and ``a.wav`` write the same stems on a case-insensitive file system
    (macOS, Windows): the second is refused, as for ``a.wav`` and ``a.flac``."""
    for name in ("A.wav", "a.wav"):
        (tmp_path / name).write_bytes(b"")
    jobs, errors = collect_inputs([str(tmp_path / "A.wav"), str(tmp_path / "a.wav")])
    assert [p.name for p, _ in jobs] == ["A.wav"]
    assert "would overwrite those of" in errors[0][1]


def test_separate_file_does_not_allocate_a_header_length(tmp_path, model_dir):
    """A FLAC whose STREAMINFO claims 2**36 - 1 samples: ``separate_file`` allocated them
    (MemoryError, 256 GiB) before finding the file short; now a clear error."""
    from gass_modules.inference.separator import GASSSeparator

    sf.write(tmp_path / "s.flac", tones(8000, 0.5, 1), 8000, subtype="PCM_16")
    data = bytearray((tmp_path / "s.flac").read_bytes())
    value = int.from_bytes(data[18:26], "big") | ((1 << 36) - 1)  # total samples, 36 bits
    data[18:26] = value.to_bytes(8, "big")
    (tmp_path / "huge.flac").write_bytes(bytes(data))
    assert sf.info(str(tmp_path / "huge.flac")).frames == (1 << 36) - 1
    sep = GASSSeparator.from_hparams(source=model_dir, run_opts={"device": "cpu"})
    with pytest.raises(ValueError, match="huge.flac"):
        sep.separate_file(tmp_path / "huge.flac")


def test_stream_refuses_batch_only_options(tmp_path, causal_dir, capsys):
    """``--plot``, ``--residual``, ``--channels each``, ... did nothing with ``--stream``
    (no plot, no residual, status 0); now a usage error naming them (status 2)."""
    sf.write(tmp_path / "a.wav", tones(8000, 0.2, 1), 8000)
    with pytest.raises(SystemExit) as stop:
        stream(causal_dir, str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "--plot",
               "--residual", "--channels", "each")
    assert stop.value.code == 2
    assert "--plot, --residual, --channels each: not available with --stream" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_separate_batch_says_input_too_loud(model_dir):
    """A 1e30 batch blamed the checkpoint ("the separator returned NaN or Inf ... check the
    checkpoint"), as item 17 fixed for files: now "input too loud"."""
    from gass_modules.inference.separator import GASSSeparator

    sep = GASSSeparator.from_hparams(source=model_dir, run_opts={"device": "cpu"})
    with pytest.raises(ValueError, match="input too loud"):
        sep.separate_batch(torch.full((1, 800), 1e30))
    assert torch.isfinite(sep.separate_batch(torch.full((1, 800), 0.5))).all()
