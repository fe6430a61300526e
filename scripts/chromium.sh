# Sourced by test.sh: the browser test drives Debian's chromium (no browser download).
# Installed with the least apt will do (no recommends), its output kept in a log file
# that is shown only when it fails.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  sudo_=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo_="sudo"; fi
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$sudo_" ]; }; then
    echo "installing Debian's chromium (no recommends) for the browser test; apt's output: /tmp/sd-watchdog-apt.log" >&2
    if ! ($sudo_ apt-get update -qq && $sudo_ env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium) >/tmp/sd-watchdog-apt.log 2>&1; then
      tail -5 /tmp/sd-watchdog-apt.log >&2
      echo "could not install chromium; the browser test will not run" >&2
    fi
  else
    echo "chromium is not installed (apt-get install chromium); the browser test is skipped" >&2
  fi
fi
