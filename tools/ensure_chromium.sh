#!/usr/bin/env bash
# Make sure a headless Chromium is there for the browser tests (tests/browser).
#
# - Chromium (or Chrome) already installed, or CHROMIUM=/path set: nothing to do.
# - Debian (or a Debian-based image) as root, or with password-less sudo: install the
#   distribution's `chromium` package, plus a Korean font so the screenshots show the
#   book's Korean terms instead of empty boxes.
# - Anywhere else (e.g. macOS without Chrome): say how to get it and exit 0; the browser
#   suite then skips with the same message. In CI (CI=true) exit 1 instead: CI must run it.
set -euo pipefail

found() {
  if [[ -n "${CHROMIUM:-}" ]] && command -v "$CHROMIUM" >/dev/null 2>&1; then
    echo "$CHROMIUM"; return 0
  fi
  for name in chromium chromium-browser google-chrome google-chrome-stable chrome; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  for app in "/Applications/Chromium.app/Contents/MacOS/Chromium" \
             "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"; do
    if [[ -x "$app" ]]; then echo "$app"; return 0; fi
  done
  return 1
}

if path=$(found); then
  echo "Chromium for the browser tests: $path ($("$path" --version 2>/dev/null || echo '?'))"
  exit 0
fi

is_debian=false
if [[ -r /etc/os-release ]] && grep -qiE '^(ID|ID_LIKE)=.*debian' /etc/os-release; then
  is_debian=true
fi
# Ubuntu's `chromium` package is only a stub for the snap, which does not run in containers.
if grep -qiE '^ID=ubuntu' /etc/os-release 2>/dev/null; then is_debian=false; fi

sudo=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
fi

if $is_debian && { [[ $(id -u) -eq 0 ]] || [[ -n $sudo ]]; }; then
  echo "Installing Chromium from the distribution's packages (about a minute)..."
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-nanum >/dev/null
  path=$(found)
  echo "Chromium for the browser tests: $path ($("$path" --version 2>/dev/null || echo '?'))"
  exit 0
fi

msg="No Chromium for the browser tests. Install Chromium or Chrome (Debian: apt-get install chromium), or set CHROMIUM=/path/to/it."
if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
  echo "ERROR: $msg (CI=true: the browser suite must run here)" >&2
  exit 1
fi
echo "WARNING: $msg The browser tests will be skipped." >&2
exit 0
