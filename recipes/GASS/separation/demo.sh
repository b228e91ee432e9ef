#!/usr/bin/env bash
# `make demo`: the GASS recipe end to end on real audio, on CPU, in about 15 minutes.
#
#  1. builds the demo corpus (speech, music stems and sound events from Debian packages, split
#     by speaker / song / file; cached, so a second run skips this step);
#  2. trains a small TDANet-STFT (GASS setup: 4 outputs, mixtures of 1-4 sources, PIT log-MSE)
#     for GASS_DEMO_MINUTES (default 11) minutes of wall-clock time, with a progress bar;
#  3. evaluates it on held-out mixtures (speakers, songs and sound files never seen in training)
#     beside the IRM oracle, prints the summary table, writes separated examples and spectrogram
#     figures, and exports the model folder for GASSSeparator.from_hparams / gass-separate.
#
# Each run writes a new folder results/demo/<date-time> (results/demo/latest points to it).
# Environment: GASS_DEMO_MINUTES (training budget), GASS_CACHE (corpus cache), GASS_DEMO_OUT.
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
RATE=8000
CORPUS="${GASS_CACHE:-$HOME/.cache/gass}/demo_corpus/full-$RATE"
MINUTES="${GASS_DEMO_MINUTES:-11}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="${GASS_DEMO_OUT:-results/demo/$STAMP}"
START=$(date +%s)

echo "== [1/3] demo corpus: $CORPUS"
"$PY" tools/build_demo_corpus.py --subset full --sample-rate "$RATE" --out "$CORPUS"

echo "== [2/3] training a small TDANet-STFT for $MINUTES min on CPU, then evaluating: $OUT"
"$PY" recipes/GASS/separation/train.py recipes/GASS/separation/hparams/tdanet_stft.yaml \
    --data_folder="$CORPUS" --output_folder="$OUT" --sample_rate="$RATE" \
    --model="{separator: {n_fft: 256, hop_length: 64, bottleneck_channels: 96,
              hidden_channels: 192, depth: 3, num_blocks: 2, num_heads: 4, features: mag,
              mask_type: magnitude, mask_activation: sigmoid}}" \
    --oracle="{n_fft: 256, hop_length: 64}" \
    --scenario="{num_sources_probs: [0.1, 0.5, 0.25, 0.15]}" \
    --segment_seconds=1.0 --batch_size=8 --lr=0.002 --num_workers=1 \
    --steps_per_epoch=200 --number_of_epochs=1000 --max_train_minutes="$MINUTES" \
    --num_valid_mixtures=60 --num_test_mixtures=300 --eval_save_audio=4 --eval_figures=2
mkdir -p results/demo
if [ -z "${GASS_DEMO_OUT:-}" ]; then ln -sfn "$STAMP" results/demo/latest; fi

echo "== [3/3] results ($(( ($(date +%s) - START) / 60 )) min in all)"
cat "$OUT/eval/summary.md"
echo
echo "separated examples: $OUT/eval/audio/<id>/{mix,ref_k,est_k}.wav"
echo "spectrograms:       $OUT/eval/figures/"
echo "per-mixture scores: $OUT/eval/per_mixture.csv"
echo "model folder:       $OUT/model  (gass-separate IN.wav --model $OUT/model --out DIR)"
