#!/usr/bin/env bash
# One command: set up .venv with the bench requirements, run the comparison, print a table.
# Arguments go to bench/compare.py, e.g. bench/run.sh --reps 20 --idle-s 60
set -eu
cd "$(dirname "$0")/.."
source scripts/venv.sh bench/requirements.txt
source scripts/chromium.sh
exec .venv/bin/python bench/compare.py "$@"
