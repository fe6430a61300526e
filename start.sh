#!/usr/bin/env bash
# Quick start: set up .venv (first run only) and run the watchdog.
# Extra arguments go to app.py, e.g. ./start.sh --settings my-settings.json
set -eu
cd "$(dirname "$0")"
source scripts/venv.sh requirements.txt
exec .venv/bin/python app.py "$@"
