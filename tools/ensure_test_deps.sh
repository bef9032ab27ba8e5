#!/usr/bin/env bash
# Install the system packages the browser tests (tests/browser) need, and say so first.
#
# The browser suite drives Debian's Chromium through Playwright (no browser is downloaded)
# and checks every page at phone width under two font sets that it builds from these
# packages only (tests/browser/fontsets.py), so its result does not depend on whatever other
# fonts a machine has:
#
#   chromium            the headless browser (/usr/bin/chromium)
#   fontconfig          fc-list, with which the suite checks that each font set is complete
#   fonts-dejavu-core   font set "dejavu":     DejaVu Sans/Serif/Sans Mono
#   fonts-nanum         font set "dejavu":     NanumGothic, for the book's Korean terms
#   fonts-liberation2   font set "liberation": Liberation Sans/Serif/Mono
#   fonts-noto-cjk      font set "liberation": Noto Sans/Serif CJK, for the Korean terms
#
# Before it installs anything it prints exactly which packages it is about to install (and
# prints that nothing is missing when all are there). It installs with apt-get on Debian (or a
# Debian-based image) as root or with password-less sudo. Anywhere else it prints what is
# missing and exits 0 (the suite then skips without Chromium, and fails naming the package
# for a missing font set); in CI (CI=true) it exits 1 instead: CI must run the suite.
#
# `bash tools/ensure_test_deps.sh --check` only reports what is missing (exit 1 if anything).
set -euo pipefail

# Keep in step with tests/browser/fontsets.py.
PACKAGES=(chromium fontconfig fonts-dejavu-core fonts-nanum fonts-liberation2 fonts-noto-cjk)

in_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }

chromium_path() {
  if [[ -n "${CHROMIUM:-}" ]] && command -v "$CHROMIUM" >/dev/null 2>&1; then
    command -v "$CHROMIUM"; return 0
  fi
  for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

is_debian=false
if [[ -r /etc/os-release ]] && grep -qiE '^(ID|ID_LIKE)=.*debian' /etc/os-release; then
  is_debian=true
fi
# Ubuntu's `chromium` package is only a stub for the snap, which does not run in containers.
if grep -qiE '^ID=ubuntu' /etc/os-release 2>/dev/null; then is_debian=false; fi

if ! $is_debian || ! command -v dpkg-query >/dev/null 2>&1; then
  msg="Not Debian: install Chromium (or set CHROMIUM=/path/to/it) and the fonts of tests/browser/fontsets.py yourself; the Debian packages are: ${PACKAGES[*]}."
  if in_ci; then echo "ERROR: $msg (CI=true: the browser suite must run here)" >&2; exit 1; fi
  echo "WARNING: $msg" >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  # Chromium installed some other way (CHROMIUM=..., or a chromium on PATH) is fine too.
  if [[ $pkg == chromium && $status != "install ok installed" ]] && chromium_path >/dev/null; then
    continue
  fi
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  path=$(chromium_path)
  echo "Browser tests: all system packages present (${PACKAGES[*]}); nothing to install."
  echo "Chromium: $path ($("$path" --version 2>/dev/null || echo '?'))"
  exit 0
fi

if [[ ${1:-} == "--check" ]]; then
  echo "Browser tests: missing system packages: ${missing[*]}" >&2
  exit 1
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
  else
    msg="Missing system packages for the browser tests: ${missing[*]}. Install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
    if in_ci; then echo "ERROR: $msg" >&2; exit 1; fi
    echo "WARNING: $msg" >&2
    exit 0
  fi
fi

echo "Browser tests: about to install these Debian packages with apt-get (--no-install-recommends):"
echo "  ${missing[*]}"
echo "  (apt-get also installs the libraries they depend on; Chromium alone is about 300 MB, a minute or two)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "Installed: ${missing[*]}"
path=$(chromium_path)
echo "Chromium: $path ($("$path" --version 2>/dev/null || echo '?'))"
