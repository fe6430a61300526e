# Sourced by test.sh: the deploy/ test checks the Prometheus config and alert rules
# with promtool. Taken from Debian's prometheus package without installing it (no
# service starts, no root needed once apt's lists are there): unpacked into .venv.
dest=".venv/promtool"
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$dest/usr/bin/promtool" ] \
    && command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
  echo "fetching promtool from Debian's prometheus package for the deploy/ test" >&2
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 \
      && (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) || true
  fi
  if ls "$tmp"/prometheus_*.deb >/dev/null 2>&1; then
    dpkg -x "$tmp"/prometheus_*.deb "$dest"
  else
    echo "could not fetch promtool; the deploy/ checks that need it are skipped" >&2
  fi
  rm -rf "$tmp"
fi
[ -x "$dest/usr/bin/promtool" ] && export PATH="$PWD/$dest/usr/bin:$PATH"
true
