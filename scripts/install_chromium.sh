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

bash "$(dirname "$0")/apt_install.sh" install_chromium chromium fonts-dejavu-core

if ! "$chromium" --version >/dev/null 2>&1; then
    echo "install_chromium: apt-get finished but $chromium does not run" >&2
    exit 1
fi
echo "chromium installed: $("$chromium" --version 2>/dev/null)"
