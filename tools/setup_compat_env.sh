#!/usr/bin/env bash
# Sets up what `make compat` needs: the compatibility layer of requirements-compat.txt
# (SpeechBrain 1.0.3 with torch/torchaudio 2.6.0, the oldest versions setup.py declares), installed
# with --no-deps into a folder cached OUTSIDE the clone and keyed by the hash of
# requirements-compat.txt, like the main stack (tools/setup_env.sh). `make compat` puts the layer
# in front of the clone's .venv (PYTHONPATH), so the layer's packages shadow the lock's and the
# main stack supplies everything else. Prints the layer's folder. ~5 GB, built once (~4 min).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${GASS_CACHE:-$HOME/.cache/gass}
hash=$(cat requirements-compat.txt | sha256sum | cut -c1-16)
LAYER="$CACHE/compat-$hash"
if [[ ! -f "$LAYER/.complete" ]]; then
  echo "setup_compat_env: installing requirements-compat.txt into $LAYER (once; ~5 GB)" >&2
  rm -rf "$LAYER"
  mkdir -p "$CACHE"
  # --target: nothing of the main stack or the .venv is touched or uninstalled
  .venv/bin/python -m pip install -q --no-deps --target "$LAYER/site" -r requirements-compat.txt >&2
  touch "$LAYER/.complete"
fi
# the layer must shadow the stack: say what runs, and stop if it is not the layer's SpeechBrain
PYTHONPATH="$LAYER/site" .venv/bin/python -c 'import speechbrain, torch, torchaudio, numpy
print(f"make compat: speechbrain {speechbrain.__version__}, torch {torch.__version__}, "
      f"torchaudio {torchaudio.__version__}, numpy {numpy.__version__}")
assert speechbrain.__version__ == "1.0.3", speechbrain.__file__' >&2 \
  || { echo "setup_compat_env: the layer does not import; delete $LAYER and re-run" >&2; exit 1; }
echo "$LAYER/site"
