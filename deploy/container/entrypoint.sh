#!/bin/sh
# The container's entrypoint: sd-watchdog as PID 1 (RunPod and Vast.ai pods have no
# systemd). As PID 1 it reaps every orphan of the pod, and on `docker stop` (SIGTERM)
# it stops the framework's whole tree and exits. Settings and logs live on the volume
# (/workspace by default) so they survive a new pod.
#   SDW_USER / SDW_PASSWORD   set the page's login on start (needed: it serves publicly)
#   SDW_SETTINGS              settings file (default /workspace/sd-watchdog/settings.json)
#   SDW_HOME                  where the watchdog is installed (default /opt/sd-watchdog)
#   SDW_PYTHON                the Python with its requirements (default python3)
set -eu
home=${SDW_HOME:-/opt/sd-watchdog}
python=${SDW_PYTHON:-python3}
settings=${SDW_SETTINGS:-/workspace/sd-watchdog/settings.json}
if [ ! -f "$settings" ]; then
  mkdir -p "$(dirname "$settings")"
  cp "$home/settings.json" "$settings"
fi
if [ -n "${SDW_USER:-}" ] && [ -n "${SDW_PASSWORD:-}" ]; then
  printf '%s\n' "$SDW_PASSWORD" | "$python" "$home/app.py" --settings "$settings" set-password "$SDW_USER" >/dev/null
fi
exec "$python" "$home/app.py" --settings "$settings" --public-host "$@"
