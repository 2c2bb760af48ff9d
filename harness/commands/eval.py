"""``harness eval``: score a folder of samples and print the per-dimension table.

Errors the user can fix (missing weights, a samples folder VBench will not match, no vbench
environment) are raised as :class:`harness.errors.HarnessError`, which the CLI prints as one line.
"""

from __future__ import annotations

from pathlib import Path

from harness.evaluation.vbench import VBENCH, VBENCH_KEYS, final_scores
from harness.evaluation.vbench_backend import evaluate_samples


def format_table(raw: dict[str, float]) -> str:
    """Dimension, group, raw score (fraction), normalised score (0-100); the Total when all are there."""
    lines = [f"{'dimension':<24}{'group':<10}{'raw':>10}{'normalised':>12}"]
    for key in VBENCH_KEYS:
        if key in raw:
            dim = VBENCH.dimension(key)
            lines.append(f"{key:<24}{dim.group:<10}{raw[key]:>10.5f}{100 * dim.normalise(raw[key]):>12.2f}")
    if all(key in raw for key in VBENCH_KEYS):
        scores = final_scores(raw)
        lines.append(
            f"VBench total {scores.total:.2f} | quality {scores.quality:.2f} | semantic {scores.semantic:.2f}"
        )
    else:
        lines.append(f"{len(raw)} of {len(VBENCH_KEYS)} dimensions: no VBench total (it needs all of them)")
    return "\n".join(lines)


def eval_command(
    samples_dir: Path,
    backend: str = "vbench",
    dimensions: list[str] | None = None,
    mode: str = "vbench_standard",
    output_dir: Path | None = None,
    device: str = "cpu",
    full_info: Path | None = None,
    extended_prompts: Path | None = None,
    vbench_python: Path | None = None,
    timeout_s: float | None = None,
) -> int:
    """Evaluate the ``.mp4`` samples of SAMPLES_DIR and print a per-dimension table; returns the exit code.

    Args:
        samples_dir: folder of samples (sidecar JSON per video, or files named ``{prompt}-{i}.mp4``).
        backend: ``vbench`` (vbench 0.1.5 in its own environment, see scripts/vbench_env.sh) or
            ``weight-free`` (the harness's exact temporal_flickering, no vbench needed).
        dimensions: VBench dimension keys; default: all the backend supports.
        mode: ``vbench_standard`` (prompts matched against VBench_full_info.json) or ``custom_input``.
        output_dir: where staged videos, vbench's log and results go (default: ``<samples_dir>/../vbench``).
        device: torch device for vbench (``cpu`` or ``cuda``).
        full_info: a ``VBench_full_info.json``; default: the one shipped in the vbench package.
        extended_prompts: extended prompt list aligned 1:1 with the suite, used to map sample prompts back.
        vbench_python: the vbench environment's interpreter (default: $HARNESS_VBENCH_PYTHON, then
            .cache/vbench-venv).
        timeout_s: stop vbench after this many seconds.
    """
    raw = evaluate_samples(
        samples_dir,
        backend=backend,
        dimensions=dimensions,
        mode=mode,
        output_dir=output_dir,
        device=device,
        full_info=full_info,
        extended_prompts=extended_prompts,
        vbench_python=vbench_python,
        timeout_s=timeout_s,
    )
    print(format_table(raw))
    return 0
