#!/usr/bin/env bash
# Create the isolated virtual environment that runs vbench 0.1.5 (idempotent).
#
# Why a separate environment: vbench 0.1.5 pins numpy<2 and transformers==4.33.2, and openai-clip
# needs pkg_resources (setuptools<82); none of that can live beside the harness's own stack.
# The harness drives this environment as a subprocess (harness/evaluation/vbench_backend.py).
#
# Usage:  scripts/vbench_env.sh [VENV_DIR]        default VENV_DIR: .cache/vbench-venv (repo root)
#         VBENCH_FULL=1 scripts/vbench_env.sh     also install vbench's declared dependencies
#                                                 (needed for the model-based dimensions; they
#                                                 still need pre-seeded weights, see VBENCH_CACHE_DIR,
#                                                 and detectron2 from git for the GRiT dimensions)
# Env:    PYTHON (default python3.11)
#
# The default install is what `import vbench` and the weight-free `temporal_flickering` need:
# torch + torchvision (a pair that imports), numpy<2, opencv, decord, Pillow, vbench --no-deps.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.cache/vbench-venv}"
python="${PYTHON:-python3.11}"
stamp="$venv/.vbench-env-ok"

modules="'vbench', 'cv2', 'decord', 'torchvision'"
[[ "${VBENCH_FULL:-0}" == "1" ]] && modules="$modules, 'transformers', 'pyiqa', 'clip'"
ready_check="import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, [$modules])))"
if [[ -f "$stamp" && -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$ready_check" 2>/dev/null; then
    echo "vbench environment ready: $venv"
    exit 0
fi

case "$(uname -m)" in
    x86_64) torch_pair=("torch==2.14.1" "torchvision==0.29.1") ;;
    aarch64|arm64) torch_pair=("torch==2.9.1" "torchvision==0.24.1") ;;
    *) echo "error: no known torch/torchvision pair for machine '$(uname -m)'" >&2; exit 1 ;;
esac

"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip "setuptools<82" wheel
"${pip[@]}" "numpy<2" "${torch_pair[@]}"
# the same OpenCV build as the harness's own environment, so both decode mp4s to the same pixels
"${pip[@]}" "numpy<2" "opencv-python-headless==4.11.0.86" "decord==0.6.0" Pillow tqdm
"${pip[@]}" --no-deps "vbench==0.1.5"
if [[ "${VBENCH_FULL:-0}" == "1" ]]; then
    "${pip[@]}" "numpy<2" "setuptools<82" "${torch_pair[@]}" "vbench==0.1.5"
fi

"$venv/bin/python" -c "import vbench, cv2, numpy; assert numpy.__version__ < '2'"
touch "$stamp"
echo "vbench environment ready: $venv"
