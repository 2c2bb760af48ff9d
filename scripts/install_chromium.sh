#!/usr/bin/env bash
# Install Debian's Chromium when /usr/bin/chromium is missing (idempotent).
#
# Why: the report's browser test opens RUNS_DIR/report/index.html in headless Chromium to prove that
# every image loads offline and the console stays clean. Debian's package is the one browser build
# that installs on these machines (a tool's own browser download is blocked).
#
# Usage:  scripts/install_chromium.sh
# Exit status 0 when /usr/bin/chromium runs afterwards; non-zero (with the reason) otherwise.
set -euo pipefail

chromium=/usr/bin/chromium

if [[ -x "$chromium" ]] && "$chromium" --version >/dev/null 2>&1; then
    echo "chromium present: $("$chromium" --version 2>/dev/null)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: apt-get not found; install Chromium by hand at $chromium" >&2
    exit 1
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "install_chromium: needs root (or passwordless sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

if ! "$chromium" --version >/dev/null 2>&1; then
    echo "install_chromium: apt-get finished but $chromium does not run" >&2
    exit 1
fi
echo "chromium installed: $("$chromium" --version 2>/dev/null)"
