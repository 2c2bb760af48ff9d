#!/usr/bin/env bash
# Install the PostgreSQL server (initdb, pg_ctl) for the sweep tests, unless it is already there.
# Idempotent and non-interactive: CI runs it as root with no stdin.
set -euo pipefail

has_initdb() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if has_initdb; then
  echo "postgresql server present"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_postgres.sh: no apt-get here; install the PostgreSQL server (initdb) with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq </dev/null
$SUDO apt-get install -y -qq --no-install-recommends postgresql </dev/null
# The Debian package starts a cluster of its own; the tests start theirs on a free port and need none.
if command -v pg_lsclusters >/dev/null 2>&1; then
  $SUDO service postgresql stop </dev/null >/dev/null 2>&1 || true
fi
has_initdb && echo "postgresql server installed"
