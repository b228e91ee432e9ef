"""Fuzz test of the readers and ``gass-separate`` over generated malformed audio files.

Every format soundfile writes is generated, then damaged (header truncated, body truncated,
bytes flipped), plus random bytes, extreme rates and channel counts. Each case must end in a clear
error (``ValueError``, ``FileNotFoundError``) or a correct result (finite stems of the input's
length), never another exception, a hang (each case has a time limit) or NaN. The cases are
drawn from a fixed seed, a few hundred in all, so the test is reproducible and takes seconds.
"""

import contextlib
import io
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gass_modules.cli import main
from gass_modules.inference import GASSSeparator
from gass_modules.model_folder import save_model_folder
from tests.doubles import ScaledCopies

CASE_SECONDS = 20  # a case running longer than this is a hang
CLEAR_ERRORS = (ValueError, FileNotFoundError)


def writable_formats() -> list[tuple[str, str, str]]:
    """(format, subtype, extension) for every format/subtype pair soundfile can write."""
    out = []
    for fmt in sf.available_formats():
        if fmt == "SD2":  # its resource fork goes to "._<name>" in the working directory
            continue
        for subtype in sf.available_subtypes(fmt):
            if not sf.check_format(fmt, subtype):
                continue
            buffer = io.BytesIO()
            try:
                sf.write(buffer, np.zeros((8, 1), np.float32), 8000, subtype=subtype,
                         format=fmt)
            except Exception:  # e.g. MPEG in WAV: valid combination, no encoder
                continue
            out.append((fmt, subtype, fmt.lower()))
    return out


def make_cases(folder: Path, seed: int = 17) -> list[Path]:
    """The malformed (and a few well-formed) files."""
    rng = np.random.default_rng(seed)
    cases = []

    def add(name: str, data: bytes) -> None:
        path = folder / name
        path.write_bytes(data)
        cases.append(path)

    for fmt, subtype, ext in writable_formats():
        rate = 8000 if fmt not in ("OGG", "MP3") else 16000
        buffer = io.BytesIO()
        signal_ = 0.3 * rng.standard_normal((1200, 2)).astype(np.float32)
        try:
            sf.write(buffer, signal_, rate, subtype=subtype, format=fmt)
        except Exception:
            continue
        data = buffer.getvalue()
        tag = f"{fmt}_{subtype}"
        add(f"{tag}_ok.{ext}", data)
        cuts = [c for c in (4, 12, 44, len(data) // 2, len(data) - 3) if 0 < c < len(data)]
        cut = int(rng.choice(cuts))  # one truncation per format: header or body
        add(f"{tag}_cut{cut}.{ext}", data[:cut])
        flipped = bytearray(data)
        for position in rng.integers(0, len(data), size=8):
            flipped[position] ^= 0xFF
        add(f"{tag}_flipped.{ext}", bytes(flipped))
    for k in range(20):
        add(f"random{k}.wav", rng.integers(0, 256, size=int(rng.integers(0, 600)),
                                           dtype=np.uint8).tobytes())
    for rate in (1, 7, 44101, 384000, 2**31 - 1):
        path = folder / f"rate{rate}.wav"
        try:
            sf.write(path, 0.1 * np.ones((64, 1), np.float32), rate, subtype="PCM_16")
            cases.append(path)
        except Exception:
            pass
    for channels in (3, 64, 1024):
        path = folder / f"channels{channels}.wav"
        sf.write(path, 0.1 * rng.standard_normal((300, channels)).astype(np.float32), 8000,
                 subtype="FLOAT")
        cases.append(path)
    nan = folder / "nan.wav"
    sf.write(nan, np.full((100, 1), np.nan, np.float32), 8000, subtype="FLOAT")
    cases.append(nan)
    return cases


@contextlib.contextmanager
def time_limit(seconds: int, what: str):
    """Fails the test when the block runs longer than ``seconds`` (a hang)."""
    def expire(signum, frame):
        raise TimeoutError(f"{what} ran more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def fuzz_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    model = save_model_folder(ScaledCopies([0.7, 0.3], 8000), folder / "model")
    (folder / "cases").mkdir()
    return model, make_cases(folder / "cases"), folder


def test_readers_end_in_a_clear_error_or_a_correct_result(fuzz_setup):
    model, cases, folder = fuzz_setup
    assert 150 <= len(cases) <= 400, len(cases)  # bounded: seconds, not minutes
    sep = GASSSeparator.from_hparams(source=model, run_opts={"device": "cpu"})
    outcomes = {"ok": 0, "error": 0}
    for k, path in enumerate(cases):
        with time_limit(CASE_SECONDS, path.name):
            try:
                result = sep.separate_to_files(path, out_dir=folder / "out" / str(k),
                                           keep_silent=True)
            except CLEAR_ERRORS as err:
                message = str(err)
                assert message and "Traceback" not in message, path.name
                assert str(path) in message or path.name in message or "Hz" in message, (
                    f"{path.name}: the error does not say which file: {message}")
                outcomes["error"] += 1
                assert not list((folder / "out" / str(k)).glob(".*")), path.name  # no partials
                continue
        outcomes["ok"] += 1
        assert len(result.files) == 2
        stems = []
        for stem in result.files:
            data, rate = sf.read(stem, dtype="float32", always_2d=True)
            assert rate == result.sample_rate and len(data) == result.num_frames, path.name
            assert np.isfinite(data).all(), path.name
            stems.append(data)
        # the gain separator's outputs are 0.7 x and 0.3 x: their ratio survives any format
        # (up to the quantisation of 8-bit and u-law stems)
        scale = float(np.abs(stems[0]).max())
        np.testing.assert_allclose(0.3 * stems[0], 0.7 * stems[1], atol=0.02 * scale + 1e-4,
                                   err_msg=path.name)
        assert not list((folder / "out" / str(k)).glob(".*")), path.name
    assert outcomes["ok"] >= 20 and outcomes["error"] >= 50, outcomes


def test_cli_reports_every_malformed_file_without_a_traceback(fuzz_setup, capsys):
    model, cases, folder = fuzz_setup
    picked = cases[::7]  # one in seven through the command line, in one run
    with time_limit(CASE_SECONDS * 4, "gass-separate"):
        code = main([*map(str, picked), "--model", str(model), "--out", str(folder / "cli")])
    err = capsys.readouterr().err
    assert code in (0, 1)
    assert "Traceback" not in err
    failed = [line for line in err.splitlines() if "FAILED" in line]
    for line in failed:  # every failure is one of the clear kinds, naming its file
        assert not any(kind in line for kind in ("RuntimeError", "IndexError", "KeyError",
                                                 "LibsndfileError", "OverflowError",
                                                 "MemoryError", "TypeError")), line
    assert torch.get_num_threads() >= 1
