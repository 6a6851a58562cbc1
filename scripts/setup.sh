#!/usr/bin/env bash
# Creates .venv if missing, installs the pinned requirements, and installs the system
# packages the app and tests use (emoji font, headless Chromium) where this machine allows.
# Every step is skipped when already done, so `make run` / `make test` stay fast after the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

system_packages=(fonts-noto-color-emoji fonts-dejavu-core chromium chromium-driver)
missing=()
for pkg in "${system_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    echo "setup: installing system packages: ${missing[*]}"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      echo "setup: WARNING could not install ${missing[*]}; emoji fall back to drawn icons and the browser test is skipped." >&2
    fi
  else
    echo "setup: WARNING cannot install ${missing[*]} (needs root/apt); emoji fall back to drawn icons and the browser test is skipped." >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python requirements (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

# UMAP's first map compiles its numba code (about a minute), which numba caches in the venv: do it
# here, once, so the first build's maps (and the app's first models) do not wait for it.
warm="$VENV/.umap-compiled"
if [ "$(cat "$warm" 2>/dev/null)" != "$want" ]; then
  echo "setup: compiling UMAP's numba code once (about a minute)"
  "$VENV/bin/python" -c "import numpy as np; from dml_core.search.projection import fit_projection; fit_projection(np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32))"
  echo "$want" > "$warm"
fi
