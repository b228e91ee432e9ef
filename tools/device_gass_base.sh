#!/usr/bin/env bash
# GASS-base (issue 24) on a lent GPU in ONE device command of at most 9.5 minutes, from the repo
# root: the fused-step GPU table, the training with a wall-clock guard, the export and a quick
# evaluation, all under $OUT (at most 8 files, none over 16 MiB).
#
#   tools/device_gass_base.sh prepare    # HERE, once: wheels into .whl/, the 16-kHz corpus packed
#                                        # into .gpu/corpus16 (Opus 0.93, 51.3 MiB), the 64-MiB
#                                        # tree limit checked (GASS_CORPUS: the WAV corpus)
#   tools/device_gass_base.sh run        # THERE: the device command (below)
#   tools/device_gass_base.sh rehearse   # HERE: `run` on the CPU with a tiny budget and card
#
# The device call (carry .whl and .gpu; 570 s is the 9.5-minute cap):
#   run(command="OUT=$OUT bash tools/device_gass_base.sh run", carry=[".whl", ".gpu"],
#       timeout_s=600)
#
# Phases of `run` and their expected times on an H100/H200 (GASS_LIMIT_S=560 in all):
#   wheels (pip --no-index)                         ~10 s
#   (a) unpack .gpu/corpus16 (16 processes)         ~10-20 s
#   (b) benchmarks/bench_train_step.py, if present  GASS_BENCH_S=180 (+30 s grace, then killed)
#   (c) train gass_base.yaml, --max_train_minutes = what is left less GASS_START_S (45 s: the
#       recipe's start) and GASS_RESERVE_S (75 s: the last validation, the quick test, the
#       export and the copies): ~3-3.5 min (~6 without the bench). SeparationBrain stops
#       after the update during which the minutes run out, validates, checkpoints, evaluates
#       the best checkpoint and exports it; the learning rate reaches zero at that moment
#       (WallClockLinearDecay).
#       A `timeout` kills it if it overruns; a copy of the newest weights taken every 30 s
#       then comes back instead.
#   (d) the quick evaluation: GASS_TEST_MIXTURES (200) mixtures of the carried (lossy) valid
#       split, IRM beside. The held-out test figures are measured afterwards HERE on the WAV
#       test split (recipes/GASS/separation/README.md, "GASS-base").
# Files back: device.log (this script's and the bench's output), bench_train_step.md,
# train.out (the recipe's log), train_log.txt, model.tar (the exported model folder), eval.tar
# (the quick evaluation), run.json (device, updates, phase times, the exact training command);
# latest_separator.ckpt only when the training did not finish.
#
# The fused step (issue 23): gass_base.yaml sets cuda_graphs: true (eager with a log line where
# capture is impossible); GASS_COMPILE=1 adds --compile_regions=True.
# Other knobs: GASS_ARGS (extra simple overrides, space-separated), GASS_MODEL (a --model
# override in yaml), GASS_DATA (an unpacked corpus folder: skips the unpacking), GASS_DEVICE,
# PY (the python).
set -euo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/.."
PHASE=${1:?prepare, run or rehearse}
RECIPE=recipes/GASS/separation
PACK=${GASS_PACK:-.gpu/corpus16}

if [ "$PHASE" = prepare ]; then
    # HERE: what the device call carries. The corpus: tools/build_demo_corpus.py --subset full
    # --sample-rate 16000 (built once into ~/.cache/gass/demo_corpus/full-16000).
    SRC=${GASS_CORPUS:-${GASS_CACHE:-$HOME/.cache/gass}/demo_corpus/full-16000}
    # Opus: the full tier at 16 kHz does not fit as Vorbis (tools/pack_corpus.py says why)
    CODEC=${GASS_PACK_CODEC:-opus}
    LEVEL=${GASS_PACK_LEVEL:-0.93}
    PYH=${PY:-.venv/bin/python}
    { git check-ignore -q .whl/x && git check-ignore -q .gpu/x; } || { echo ".whl and .gpu must be"\
        "ignored (.gitignore)"; exit 1; }
    # the device image has torch, torchaudio, numpy, scipy, tqdm, pyyaml, joblib, sentencepiece,
    # huggingface-hub and matplotlib (KINDS.md); these are what the recipe needs beside them
    # (requirements.txt), for its Python 3.12 (3.4 MiB); fast-bss-eval is an sdist: built here
    if [ ! -d .whl ]; then
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d .whl speechbrain==1.1.2 hyperpyyaml==1.2.3 \
            ruamel.yaml==0.18.17 ruamel.yaml.clib==0.2.15 soundfile==0.14.0 cffi==2.1.1 \
            pycparser==3.12
        python3 -m pip wheel -q --no-deps -w .whl fast-bss-eval==0.1.4
    fi
    rm -rf "$PACK"
    "$PYH" tools/pack_corpus.py pack "$SRC" "$PACK" --codec "$CODEC" --level "$LEVEL" \
        --workers "${GASS_WORKERS:-2}"
    tree=$(( $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) ))
    carried=$(du -cb .whl "$PACK" | tail -1 | cut -f1)
    echo "tracked files $((tree / 1024 / 1024)) MiB + carried $((carried / 1024 / 1024)) MiB" \
         "= $(((tree + carried) / 1024 / 1024)) MiB of the 64 MiB the device tool takes"
    [ $((tree + carried)) -lt $((64 * 1024 * 1024)) ] || { echo "over 64 MiB: raise" \
        "GASS_PACK_LEVEL or pack fewer splits"; exit 1; }
    exit 0
fi

if [ "$PHASE" = rehearse ]; then
    # HERE, on the CPU: the whole `run` with a tiny card and budget, the small 16-kHz corpus
    # packed and unpacked as the full one is, into OUT (default /tmp/gass_base_rehearsal).
    export OUT=${OUT:-/tmp/gass_base_rehearsal}
    SMALL=${GASS_CORPUS:-${GASS_CACHE:-$HOME/.cache/gass}/demo_corpus/small-16000}
    rm -rf "$OUT" /tmp/gass_base_pack && mkdir -p "$OUT"
    export PY=${PY:-.venv/bin/python} GASS_NO_WHEELS=1  # .whl holds the device's Python 3.12
    "$PY" tools/pack_corpus.py pack "$SMALL" /tmp/gass_base_pack --codec opus --level 0.93 \
        --workers 2
    export GASS_PACK=/tmp/gass_base_pack GASS_UNPACKED=/tmp/gass_base_corpus GASS_DEVICE=cpu
    export GASS_BENCH_DEVICE=cpu GASS_BENCH_S=${GASS_BENCH_S:-10} GASS_LIMIT_S=${GASS_LIMIT_S:-220}
    export GASS_START_S=${GASS_START_S:-60} GASS_RESERVE_S=${GASS_RESERVE_S:-60}
    export GASS_TEST_MIXTURES=4 GASS_WORKERS=2 GASS_NUM_WORKERS=0
    export GASS_ARGS="--batch_size=4 --precision=fp32 --num_valid_mixtures=4 --steps_per_epoch=5
        --ckpt_interval_minutes=0 --warmup_steps=2 --segment_seconds=1.0"
    export GASS_MODEL="{separator: {bottleneck_channels: 8, hidden_channels: 16, depth: 2,
        num_blocks: 1, num_heads: 2}}"
    rm -rf /tmp/gass_base_corpus /tmp/gass_base_run
    export GASS_RUN=/tmp/gass_base_run
    exec bash "$0" run
fi

[ "$PHASE" = run ] || { echo "unknown phase $PHASE: prepare, run or rehearse"; exit 2; }
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LIMIT=${GASS_LIMIT_S:-560}
DEADLINE=$((T0 + LIMIT))
log() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/device.log"; }
if [ -z "${GASS_NO_WHEELS:-}" ] && compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PY:-python3}
case $PY in /*) ;; */*) PY=$PWD/$PY ;; esac  # the recipe runs from its own folder
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    || echo "no GPU (rehearsal)") | tee -a "$OUT/device.log"
log "wheels ready"

# (a) the corpus
DATA=${GASS_DATA:-${GASS_UNPACKED:-/tmp/corpus16}}
if [ ! -f "$DATA/valid.csv" ]; then
    "$PY" tools/pack_corpus.py unpack "$PACK" "$DATA" --workers "${GASS_WORKERS:-16}" \
        2>&1 | tee -a "$OUT/device.log"
fi
log "(a) corpus in $DATA"

# (b) the fused-step GPU table (issue 23), when the script exists
BENCH_S=${GASS_BENCH_S:-180}
T_BENCH=$(date +%s)
if [ -f benchmarks/bench_train_step.py ]; then
    timeout --kill-after=10 $((BENCH_S + 30)) "$PY" benchmarks/bench_train_step.py \
        --device "${GASS_BENCH_DEVICE:-cuda}" --budget-s "$BENCH_S" \
        --out "$OUT/bench_train_step.md" >> "$OUT/device.log" 2>&1 \
        || log "(b) bench_train_step exited with status $? (its output is above)"
else
    log "(b) benchmarks/bench_train_step.py is not in this tree: skipped"
fi
BENCH_TOOK=$(($(date +%s) - T_BENCH))
log "(b) bench done in $BENCH_TOOK s"

# (c) the training, bounded by the wall clock
START_S=${GASS_START_S:-45}
RESERVE_S=${GASS_RESERVE_S:-75}
left=$((DEADLINE - $(date +%s) - START_S - RESERVE_S))
[ "$left" -ge 30 ] || { log "(c) only $left s left for training: not started"; exit 1; }
MINUTES=$("$PY" -c "print(round($left / 60, 2))")
# the fused step is the yaml's (cuda_graphs: true: one CUDA graph per step, eager fall-back with
# a log line); GASS_COMPILE=1 also compiles the repeated blocks (minutes of compile on a cold
# cache: not by default inside a 9.5-minute lease)
FUSED=()
[ "${GASS_COMPILE:-0}" = 1 ] && FUSED=(--compile_regions=True)
log "(c) fused step: cuda_graphs from the yaml ${FUSED[*]:-(no regional compile)}"
read -r -a EXTRA <<< "$(echo "${GASS_ARGS:-}" | tr '\n' ' ')"
[ -z "${GASS_MODEL:-}" ] || EXTRA+=("--model=$(echo "$GASS_MODEL" | tr '\n' ' ')")
RUN=${GASS_RUN:-/tmp/gass_base}
rm -rf "$RUN"
CMD=(train.py hparams/gass_base.yaml --data_folder="$DATA" --test_manifest="$DATA/valid.csv"
     --num_test_mixtures="${GASS_TEST_MIXTURES:-200}" --device="${GASS_DEVICE:-cuda:0}"
     --num_workers="${GASS_NUM_WORKERS:-12}" --output_folder="$RUN"
     --max_train_minutes="$MINUTES" --eval_save_audio=0 --eval_figures=0 --noprogressbar
     "${FUSED[@]}" "${EXTRA[@]}")
log "(c) training for $MINUTES min: cd $RECIPE && $PY ${CMD[*]}"
# a copy of the newest weights every 30 s, so a run cut by the time limit still returns
( while sleep 30; do
    ckpt=$(ls -td "$RUN"/save/CKPT* 2>/dev/null | head -1)
    [ -n "$ckpt" ] && cp "$ckpt/separator.ckpt" "$OUT/latest_separator.ckpt" 2>/dev/null
  done ) &
COPIER=$!
T_TRAIN=$(date +%s)
status=0
(cd $RECIPE && timeout --signal=INT --kill-after=15 $((DEADLINE - $(date +%s) - 30)) \
    "$PY" "${CMD[@]}") > "$OUT/train.out" 2>&1 || status=$?
kill $COPIER 2>/dev/null || true
TRAIN_TOOK=$(($(date +%s) - T_TRAIN))
log "(c) training, test and export: status $status after $TRAIN_TOOK s"
[ "$status" = 0 ] || tail -30 "$OUT/train.out" | tee -a "$OUT/device.log"

# (d) the exported folder and the quick evaluation
cp "$RUN/train_log.txt" "$OUT/" 2>/dev/null || true
if [ ! -f "$RUN/model/separator.ckpt" ] && compgen -G "$RUN/save/CKPT*/separator.ckpt" >/dev/null
then  # cut before its export: the checkpoint with the lowest validation loss, exported here
    log "(d) no exported model: exporting the best checkpoint (not evaluated)"
    (cd $RECIPE && "$PY" - "$RUN" "${CMD[@]}" <<'EOF2'
import sys
from pathlib import Path

import speechbrain as sb
import yaml
from hyperpyyaml import load_hyperpyyaml

from gass_modules.model_folder.folder import load_separator_checkpoint, save_model_folder
from gass_modules.training.recipe import included_card

run = Path(sys.argv[1])
hparams_file, _, overrides = sb.parse_arguments(sys.argv[3:])
losses = {c: yaml.safe_load((c / "CKPT.yaml").read_text()).get("loss", float("inf"))
          for c in run.glob("save/CKPT*") if (c / "separator.ckpt").is_file()}
best = min(losses, key=losses.get)
card = included_card(hparams_file, overrides)
separator = load_hyperpyyaml(card)["separator"]
load_separator_checkpoint(separator, best / "separator.ckpt")
save_model_folder(separator, run / "model", card=card)
print(f"exported {best.name} (valid loss {losses[best]:.3f}) to {run / 'model'}")
EOF2
    ) 2>&1 | tail -3 | tee -a "$OUT/device.log" || true
fi
if [ -f "$RUN/model/separator.ckpt" ]; then
    tar -C "$RUN" -cf "$OUT/model.tar" model
    rm -f "$OUT/latest_separator.ckpt"
fi
[ -d "$RUN/eval" ] && tar -C "$RUN" --exclude=audio --exclude=figures -cf "$OUT/eval.tar" eval
[ -f "$RUN/eval/summary.md" ] && cat "$RUN/eval/summary.md" >> "$OUT/device.log"
"$PY" - "$RUN" "$OUT" "$MINUTES" "$BENCH_TOOK" "$TRAIN_TOOK" "$(($(date +%s) - T0))" \
    "$DATA" "$RUN" "cd $RECIPE && python ${CMD[*]}" <<'EOF'
import json
import subprocess
import sys
from pathlib import Path

run, out, minutes, bench_s, train_s, total_s, data, run_folder, command = sys.argv[1:]
# the command as provenance may name it: no path of the device machine
command = (command.replace(f" --output_folder={run_folder}", "").replace(data, "CORPUS16")
           .replace("\n", " "))
command = " ".join(command.split())
head = Path(run) / "eval" / "headline.json"
headline = json.loads(head.read_text()) if head.is_file() else {}
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                         capture_output=True, text=True, check=True).stdout.strip()
except (OSError, subprocess.CalledProcessError):
    gpu = "cpu (rehearsal)"
report = {"device": gpu, "updates": headline.get("updates"),
          "parameters": headline.get("parameters"), "max_train_minutes": float(minutes),
          "seconds": {"bench": int(bench_s), "train_test_export": int(train_s),
                      "total": int(total_s)},
          "command": command,
          "corpus": "CORPUS16: the full-16000 GASS-mini corpus (tools/build_demo_corpus.py "
                    "--subset full --sample-rate 16000), carried as OGG by tools/pack_corpus.py",
          "quick_eval": {k: v for k, v in headline.items()
                                             if k not in ("updates", "parameters")}}
Path(out, "run.json").write_text(json.dumps(report, indent=1) + "\n")
print(json.dumps({k: report[k] for k in ("device", "updates", "seconds")}))
EOF
log "done; files under $OUT:"
ls -la "$OUT" | tee -a "$OUT/device.log"
