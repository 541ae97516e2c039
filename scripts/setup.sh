#!/usr/bin/env bash
# Installs everything PixSearch needs on a fresh machine: system libraries (libcairo2 for SVG
# flags), the Python package with all extras (torch pinned to the CPU wheel), and the npm data
# package with the flag SVGs. Idempotent: re-running skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PIXSEARCH_HOME="${PIXSEARCH_HOME:-$HOME/.cache/pixsearch}"
PY="${PYTHON:-python3}"

if ! ldconfig -p 2>/dev/null | grep -q libcairo.so.2; then
  echo "[setup] installing libcairo2 (SVG rasteriser for the flags)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libcairo2 >/dev/null
fi

echo "[setup] python packages"
# torch first and pinned: an unpinned torch may resolve to a multi-GB CUDA build
"$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q -e ".[all]"

FLAGS="$PIXSEARCH_HOME/npm/node_modules/flag-icons/flags/4x3"
if [ ! -d "$FLAGS" ]; then
  echo "[setup] flag-icons (npm) into $PIXSEARCH_HOME/npm"
  mkdir -p "$PIXSEARCH_HOME/npm"
  npm install --silent --no-audit --no-fund --prefix "$PIXSEARCH_HOME/npm" flag-icons@7.5.0
fi
echo "[setup] done"
