#!/usr/bin/env bash
# Install Debian packages for a test dependency: scripts/apt_install.sh WHO PACKAGE...
#
# Why one script: the system dependencies the tests install (Chromium, TeX Live) need the same checks:
# apt-get present, root or passwordless sudo, a quiet non-interactive install. WHO names the caller in
# the one-line error.
set -euo pipefail

who="$1"; shift
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$who: apt-get not found; install $* by hand" >&2
    exit 1
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "$who: needs root (or passwordless sudo) to apt-get install $*" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq </dev/null
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
