#!/usr/bin/env bash
# The project's test command: lint, then the default (non-slow) test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check src tests benchmarks
python3 -m pytest -q "$@"
