#!/usr/bin/env bash
# Install a minimal TeX Live (pdflatex with booktabs) when pdflatex is missing (idempotent).
#
# Why: the report's LaTeX test compiles table.tex in a minimal document with pdflatex, to prove that
# the tables are ready to \input (booktabs, caption, label) and that the main table fits the text
# width. Debian's texlive-latex-base gives pdflatex; texlive-latex-recommended adds booktabs.
#
# Usage:  scripts/install_texlive.sh
# Exit status 0 when pdflatex runs afterwards; non-zero (with the reason) otherwise.
set -euo pipefail

if command -v pdflatex >/dev/null 2>&1 && kpsewhich booktabs.sty >/dev/null 2>&1; then
    echo "pdflatex present: $(pdflatex --version 2>/dev/null | head -n 1)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_texlive: apt-get not found; install pdflatex and booktabs (TeX Live) by hand" >&2
    exit 1
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "install_texlive: needs root (or passwordless sudo) to apt-get install texlive" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends texlive-latex-base texlive-latex-recommended >/dev/null

if ! command -v pdflatex >/dev/null 2>&1 || ! kpsewhich booktabs.sty >/dev/null 2>&1; then
    echo "install_texlive: apt-get finished but pdflatex or booktabs.sty is missing" >&2
    exit 1
fi
echo "pdflatex installed: $(pdflatex --version 2>/dev/null | head -n 1)"
