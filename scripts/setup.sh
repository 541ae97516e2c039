#!/usr/bin/env bash
# Installs everything PixSearch needs on a fresh machine: system packages (libcairo2 for SVG
# flags, chromium for the page test), the Python package with all extras (torch pinned to the
# CPU wheel), and the npm data package with the flag SVGs. Idempotent: re-running skips what
# is already there.
# Where the flags go (and their version) comes from `pixsearch.paths`, so `$PIXSEARCH_HOME` is
# resolved exactly as the library resolves it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! ldconfig -p 2>/dev/null | grep -q libcairo.so.2; then
  echo "[setup] installing libcairo2 (SVG rasteriser for the flags)"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libcairo2 >/dev/null
fi
# Debian's Chromium: the real browser tests/test_page_browser.py drives through Playwright
# (pip's playwright package, dev extra), so no `playwright install` download is needed
if [ ! -x /usr/bin/chromium ]; then
  echo "[setup] installing chromium (browser for the web-page test)"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi

echo "[setup] python packages"
# torch first and pinned: an unpinned torch may resolve to a multi-GB CUDA build
"$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q -e ".[all]"

# npm prefix and flag-icons version, from the one place that defines them
{ read -r NPM_PREFIX; read -r FLAG_ICONS_VERSION; } < <("$PY" -c \
  "from pixsearch.paths import npm_prefix, FLAG_ICONS_VERSION as v; print(npm_prefix()); print(v)")
PKG="$NPM_PREFIX/node_modules/flag-icons/package.json"
if ! grep -q "\"version\": \"$FLAG_ICONS_VERSION\"" "$PKG" 2>/dev/null; then
  echo "[setup] flag-icons@$FLAG_ICONS_VERSION (npm) into $NPM_PREFIX"
  mkdir -p "$NPM_PREFIX"
  npm install --silent --no-audit --no-fund --prefix "$NPM_PREFIX" "flag-icons@$FLAG_ICONS_VERSION"
fi
echo "[setup] done"
