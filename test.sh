#!/usr/bin/env bash
# Set up .venv with the test dependencies (first run only) and run the whole suite.
# Extra arguments go to pytest, e.g. ./test.sh -k switch -x
set -eu
cd "$(dirname "$0")"
source scripts/venv.sh requirements-dev.txt
source scripts/chromium.sh
source scripts/promtool.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
