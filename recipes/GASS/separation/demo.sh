#!/usr/bin/env bash
# `make demo`: the GASS recipe end to end on real audio, on CPU, in about 15 minutes.
#
#  1. builds the GASS-mini corpus (full tier: real voices of 80 speakers, 100+ songs as stems,
#     2,000+ sound events from Debian packages, split by speaker or language group / song /
#     file; cached, so a second run skips this step);
#  2. trains a small TDANet-STFT (GASS setup: 4 outputs, mixtures of 1-4 sources, PIT log-MSE;
#     hparams/demo.yaml) for GASS_DEMO_UPDATES (default 6000) updates, the learning rate
#     decaying to zero over them; the log prints the updates done and an ETA after each
#     nominal epoch. A busy machine makes the run slower, not different;
#  3. evaluates it on held-out mixtures (speakers, songs and sound files never seen in training)
#     beside the IRM oracle, prints the summary table, writes separated examples and spectrogram
#     figures, and exports the model folder for GASSSeparator.from_hparams / gass-separate.
#
# Each run writes a new folder results/demo/<date-time> (results/demo/latest points to it).
# Environment: GASS_DEMO_UPDATES (training budget), GASS_CACHE (corpus cache), GASS_DEMO_OUT
# (output folder), GASS_DEMO_SUBSET (corpus tier: full, or small for a smoke run),
# GASS_PYTHON (interpreter; default .venv/bin/python).
# Arguments are passed on to train.py as SpeechBrain run options or hparams overrides, e.g. on a
# GPU: bash recipes/GASS/separation/demo.sh --device=cuda --batch_size=32
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY="${GASS_PYTHON:-.venv/bin/python}"
RATE=8000
SUBSET="${GASS_DEMO_SUBSET:-full}"
CORPUS="${GASS_CACHE:-$HOME/.cache/gass}/demo_corpus/$SUBSET-$RATE"
UPDATES="${GASS_DEMO_UPDATES:-6000}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="${GASS_DEMO_OUT:-results/demo/$STAMP}"
START=$(date +%s)

echo "== [1/3] demo corpus: $CORPUS"
"$PY" tools/build_demo_corpus.py --subset "$SUBSET" --sample-rate "$RATE" --out "$CORPUS"

echo "== [2/3] training a small TDANet-STFT for $UPDATES updates, then evaluating: $OUT"
"$PY" recipes/GASS/separation/train.py recipes/GASS/separation/hparams/demo.yaml \
    --data_folder="$CORPUS" --output_folder="$OUT" --number_of_updates="$UPDATES" "$@"
mkdir -p results/demo
if [ -z "${GASS_DEMO_OUT:-}" ]; then ln -sfn "$STAMP" results/demo/latest; fi

echo "== [3/3] results ($(( ($(date +%s) - START) / 60 )) min in all)"
cat "$OUT/eval/summary.md"
echo
echo "separated examples: $OUT/eval/audio/<id>/{mix,ref_k,est_k}.wav"
echo "spectrograms:       $OUT/eval/figures/"
echo "per-mixture scores: $OUT/eval/per_mixture.csv"
echo "model folder:       $OUT/model  (gass-separate IN.wav --model $OUT/model --out DIR)"
