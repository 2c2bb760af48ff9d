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

bash "$(dirname "$0")/apt_install.sh" install_texlive texlive-latex-base texlive-latex-recommended

if ! command -v pdflatex >/dev/null 2>&1 || ! kpsewhich booktabs.sty >/dev/null 2>&1; then
    echo "install_texlive: apt-get finished but pdflatex or booktabs.sty is missing" >&2
    exit 1
fi
echo "pdflatex installed: $(pdflatex --version 2>/dev/null | head -n 1)"
