#!/usr/bin/env bash
# Sets up everything `make test` / `make demo` need on a fresh machine:
#  1. the Debian packages in tools/debian-packages.txt (apt-get, when missing);
#  2. the pinned Python stack (requirements.txt) in a venv cached OUTSIDE the clone, keyed by the
#     hash of requirements.txt, so CI's fresh clones reuse it instead of re-downloading ~5.6 GB;
#  3. a light `.venv` in the clone that overlays the cached stack (a .pth that calls
#     site.addsitedir) and holds the editable install of this clone and the test tools.
# Idempotent and cheap when everything is present. Override the cache with GASS_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
CACHE=${GASS_CACHE:-$HOME/.cache/gass}

# 1. Debian packages ---------------------------------------------------------------------------
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < tools/debian-packages.txt
if (( ${#missing[@]} )); then
  echo "setup_env: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    echo "setup_env: could not install ${missing[*]}; install them with apt-get and re-run." >&2
    exit 1
  fi
fi

# 1b. Data packages: unpacked (apt-get download + dpkg -x) into the cache, not installed, so no
#     game engine or dependency comes along; tools/build_demo_corpus.py reads them there.
DEBS="$CACHE/debs"
want=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  [[ -f "$DEBS/.unpacked-$pkg" ]] || want+=("$pkg")
done < tools/debian-data-packages.txt
if (( ${#want[@]} )); then
  echo "setup_env: unpacking data packages into $DEBS/root: ${want[*]}"
  mkdir -p "$DEBS/root"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  ( cd "$DEBS" && apt-get download "${want[@]}" >/dev/null ) || {
    $SUDO apt-get update -qq || true
    ( cd "$DEBS" && apt-get download "${want[@]}" >/dev/null ) || {
      echo "setup_env: could not download ${want[*]}; check apt sources and re-run." >&2; exit 1; }
  }
  for pkg in "${want[@]}"; do
    deb=$(ls -t "$DEBS/${pkg}"_*.deb | head -n 1)
    dpkg -x "$deb" "$DEBS/root" && rm -f "$deb" && touch "$DEBS/.unpacked-$pkg"
  done
fi

# 2. The cached stack ---------------------------------------------------------------------------
hash=$(cat requirements.txt | sha256sum | cut -c1-16)
STACK="$CACHE/stack-$hash"
if [[ ! -f "$STACK/.complete" ]]; then
  echo "setup_env: building the pinned stack in $STACK (once per requirements.txt; ~2-5 min)"
  rm -rf "$STACK"
  mkdir -p "$CACHE"
  "$PY" -m venv "$STACK"
  "$STACK/bin/python" -m pip install -q --upgrade pip
  "$STACK/bin/python" -m pip install -q -r requirements.txt
  touch "$STACK/.complete"
fi
STACK_SITE=$("$STACK/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# 3. The clone's own light venv -----------------------------------------------------------------
# (setup.py and the version in gass_modules/__init__.py: the editable install's metadata)
marker=".venv/.gass-$hash-$(cat setup.py gass_modules/__init__.py | sha256sum | cut -c1-12)"
if [[ ! -f "$marker" ]]; then
  rm -rf .venv
  "$STACK/bin/python" -m venv .venv
  SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$STACK_SITE')" > "$SITE/gass_stack.pth"
  # the test tools (setup.py's extra [test], less what the lock pins); build: the packaging
  # tests build the wheel and sdist with this venv's setuptools (python -m build --no-isolation)
  .venv/bin/python -m pip install -q "setuptools>=64" wheel "pytest>=8" "pytest-timeout>=2.3" \
    "ruff>=0.6" "build>=1.0"
  .venv/bin/python -m pip install -q --no-build-isolation --no-deps -e "$ROOT"
  touch "$marker"
fi
.venv/bin/python -c "import torch, torchaudio, speechbrain, gass_modules" \
  || { echo "setup_env: the environment does not import; delete $STACK and re-run" >&2; exit 1; }
