# Sourced by start.sh and test.sh: create .venv once, (re)install requirements only
# when a requirements file changed, so the second run starts in about a second.
set -eu
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
req="$1"

pick_python() {
  for py in "${PYTHON:-}" python3.13 python3.12 python3.11 python3.10 python3; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  echo "sd-watchdog needs Python 3.10 or newer (set PYTHON=/path/to/python3)" >&2
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  py=$(pick_python)
  echo "creating $venv with $py" >&2
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
fi
stamp="$venv/.installed-$(basename "$req")"
want=$(cat "$root/$req" "$root/requirements.txt" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing $req into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/$req" >&2
  echo "$want" >"$stamp"
fi
