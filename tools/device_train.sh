#!/usr/bin/env bash
# Trains a GASS recipe on a lent GPU machine (this workplace's `device` tool), from the repo root.
#
#   tools/device_train.sh train UPDATES BATCH   # the run; results under $OUT
#   tools/device_train.sh auto BATCH SECONDS    # a 300-update probe, then the run with as many
#                                               # updates (in thousands) as fit in SECONDS in all
#
# Expects, beside the working tree: .whl/ (speechbrain 1.1.2, hyperpyyaml, soundfile and their
# pure-Python needs, for the machine's Python 3.12; torch/torchaudio 2.11 are there already) and
# .gpu/corpus (tools/pack_corpus.py pack of the GASS-mini corpus' train and valid splits: the
# 8-kHz WAV corpus is 5x over the 64-MiB transfer limit, Vorbis fits). Test figures are NOT
# measured there: the exported model is evaluated on the original WAV test split afterwards.
# Extra recipe overrides: $GASS_ARGS (space-separated) and $GASS_MODEL (the model card's, yaml).
set -euo pipefail
SECONDS_START=$(date +%s)
cd "$(dirname "$0")/.."
PHASE=${1:?auto or train}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
[ -f /tmp/corpus/valid.csv ] || python3 tools/pack_corpus.py unpack .gpu/corpus /tmp/corpus \
    --workers 16
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
RECIPE=recipes/GASS/separation
COMMON=(--data_folder=/tmp/corpus --test_manifest=/tmp/corpus/valid.csv --device=cuda:0
        --num_workers=12 --num_threads=1 --noprogressbar)
read -r -a EXTRA <<< "${GASS_ARGS:-}"  # simple overrides, e.g. --lr=0.003
[ -z "${GASS_MODEL:-}" ] || EXTRA+=("--model=$GASS_MODEL")  # e.g. {separator: {depth: 4}}

if [ "$PHASE" = auto ]; then
    BATCH=${2:?batch}
    DEADLINE=$((SECONDS_START + ${3:?seconds}))
    rm -rf /tmp/probe
    (cd $RECIPE && python3 train.py hparams/gass_mini.yaml "${COMMON[@]}" "${EXTRA[@]}" \
        --output_folder=/tmp/probe --batch_size="$BATCH" --number_of_updates=300 \
        --steps_per_epoch=300 --num_valid_mixtures=60 --num_test_mixtures=2) \
        > "$OUT/probe.log" 2>&1 || { tail -40 "$OUT/probe.log"; exit 1; }
    per=$(grep -o 'update 300, [0-9.]* s/update' /tmp/probe/log.txt | cut -d' ' -f3)
    # what is left, less ~60 s for the run's start, its test and export, and the copies
    left=$((DEADLINE - $(date +%s) - 60))
    UPDATES=$(python3 -c "print(max(1000, int($left / ($per * 1.05) / 1000) * 1000))")
    echo "probe: $per s/update at batch $BATCH; $left s left -> $UPDATES updates"
else
    UPDATES=${2:?updates}
    BATCH=${3:?batch}
fi
RUN=/tmp/gass_mini
# a copy of the newest weights and logs every 30 s, so a run cut by the time limit still returns
( while sleep 30; do
    ckpt=$(ls -td $RUN/save/CKPT* 2>/dev/null | head -1)
    [ -n "$ckpt" ] && cp "$ckpt/separator.ckpt" "$OUT/latest_separator.ckpt" 2>/dev/null
    cp $RUN/log.txt $RUN/train_log.txt "$OUT/" 2>/dev/null
  done ) &
COPIER=$!
(cd $RECIPE && python3 train.py hparams/gass_mini.yaml "${COMMON[@]}" "${EXTRA[@]}" \
    --output_folder=$RUN --batch_size="$BATCH" --number_of_updates="$UPDATES" \
    --num_test_mixtures=60) > "$OUT/train.out" 2>&1 || tail -40 "$OUT/train.out"
kill $COPIER 2>/dev/null || true
cp $RUN/log.txt $RUN/train_log.txt "$OUT/"
best=$(for f in $RUN/save/CKPT*/CKPT.yaml; do echo "$(grep ^loss: "$f" | cut -d' ' -f2) $f"; \
       done | sort -g | head -1 | cut -d' ' -f2)
best=$(dirname "$best")
echo "best checkpoint: $best"; cat "$best/CKPT.yaml"
tar -C "$(dirname "$best")" -cf "$OUT/best_ckpt.tar" "$(basename "$best")"
split -b 15m -d "$OUT/best_ckpt.tar" "$OUT/best_ckpt.tar.part" && rm "$OUT/best_ckpt.tar"
tar -C $RUN -cf "$OUT/model.tar" model
rm -f "$OUT/latest_separator.ckpt"
tail -5 $RUN/train_log.txt
ls -la "$OUT"
