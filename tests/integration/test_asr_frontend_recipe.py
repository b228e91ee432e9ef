"""The ASR front-end recipe (recipes/ASR_frontend): its data preparation (sentences, digit
strings, mixtures at an exact SIR) and a debug run of its tests/recipes.csv row on the small
demo corpus (prepare, tokenizer, CTC training, the six-row WER table, SeparateThenTranscribe)."""

import csv
import importlib.util
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "ASR_frontend"
ROW = next(r for r in csv.DictReader(open(ROOT / "tests" / "recipes.csv", newline=""))
           if r["Hparam_file"] == "recipes/ASR_frontend/hparams/crdnn_ctc.yaml")


def load_prepare():
    """Imports recipes/ASR_frontend/prepare.py."""
    spec = importlib.util.spec_from_file_location("asr_frontend_prepare", RECIPE / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sentences_are_distinct_in_vocabulary_and_respect_exclusions():
    """Every drawn sentence is new, made of the grammar's words, and never an excluded one."""
    prep = load_prepare()
    vocab = {w for table in prep.WORDS.values() for phrase in table.split("|")
             for w in phrase.split()} | {w for t in prep.TEMPLATES for w in
                                         re.sub(r"\{\w+\}", " ", t).split()}
    used = set()
    first = prep.generate_sentences(300, np.random.default_rng(0), used)
    second = prep.generate_sentences(100, np.random.default_rng(0), used)  # same seed
    assert len(set(first)) == 300 and not set(first) & set(second)
    assert all(set(s.split()) <= vocab for s in first + second)
    assert len(used) == 400


def test_mixture_has_the_drawn_sir_and_sums_exactly(demo_corpus_small):
    """make_mixture: mix = speech + noise, 10 log10(|s|^2 / |n|^2) equals the drawn SIR, the
    interferers are not speech."""
    prep = load_prepare()
    manifest = prep.interferer_manifest(demo_corpus_small.root)
    assert "speech" not in {manifest.categories[c] for c in manifest.category_codes}
    t = np.arange(32000) / 16000
    speech = (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        s, n, sir, cats = prep.make_mixture(speech.copy(), manifest, rng, 16000, (-5.0, 5.0))
        measured = 10 * math.log10(float(np.sum(s.astype(np.float64) ** 2))
                                   / float(np.sum(n.astype(np.float64) ** 2)))
        assert measured == pytest.approx(sir, abs=1e-3)
        assert -5.0 <= sir <= 5.0 and 1 <= len(cats) <= 3
        assert np.abs(s + n).max() <= 0.95 + 1e-6


def test_digit_strings_are_the_asterisk_prompts_in_order():
    """A digit string is the prompts of its digits with 50-150 ms pauses between them."""
    prep = load_prepare()
    rng = np.random.default_rng(3)
    out = prep.digit_string([4, 2], rng, 8000)
    first, _ = sf.read(prep.ASTERISK_DIGITS / "4.wav", dtype="float32")
    second, _ = sf.read(prep.ASTERISK_DIGITS / "2.wav", dtype="float32")
    gap = len(out) - len(first) - len(second)
    assert 0.05 * 8000 <= gap <= 0.15 * 8000
    np.testing.assert_allclose(out[: len(first)], first, atol=1e-6)
    np.testing.assert_allclose(out[-len(second):], second, atol=1e-6)


@pytest.mark.slow
def test_recipe_debug_run(demo_corpus_small, tmp_path):
    """The csv row runs end to end and reports the WER table and per-stream transcripts."""
    out = tmp_path / "exp"
    cmd = [sys.executable, str(ROOT / ROW["Script_file"]), str(ROOT / ROW["Hparam_file"]),
           f"--data_folder={demo_corpus_small.root}", f"--output_folder={out}",
           *shlex.split(ROW["test_debug_flags"])]
    proc = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=400,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1",
                               "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    table = (out / "wer.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "WER" not in line]
    assert len(rows) == 7, table
    for line in rows:
        wer = float(line.split("|")[2])
        assert 0.0 <= wer and math.isfinite(wer)
    assert table.count("[untrained separator]") == 3  # --separator_folder=null in debug
    assert re.search(r"Intonation pick = oracle pick in \d+/2 mixtures .* in \d+/2 ", table)
    # the data the table was computed on: mixtures sum exactly, transcripts match
    mixes = list(csv.DictReader(open(out / "asr_corpus" / "test_mix.csv")))
    tests = {r["ID"]: r["wrd"] for r in csv.DictReader(open(out / "asr_corpus" / "test.csv"))}
    assert [r["wrd"] for r in mixes] == [tests[r["ID"]] for r in mixes]
    for row in mixes:
        sig = {k: sf.read(row[k].replace("$data_root", str(out / "asr_corpus")))[0]
               for k in ("mix", "speech", "noise")}
        np.testing.assert_allclose(sig["mix"], sig["speech"] + sig["noise"], atol=1e-6)
    import json

    report = json.loads((out / "separate_then_transcribe.json").read_text())
    assert len(report) == 2 and all(r["reference"] == tests[r["id"]] for r in report)
    for item in report:
        scores = [s["speech_score"] for s in item["streams"]]
        assert scores == sorted(scores, reverse=True)
        assert all(set(s) == {"index", "text", "speech_score", "energy_db", "is_speech"}
                   for s in item["streams"])
