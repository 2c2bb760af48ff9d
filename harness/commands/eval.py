"""``harness eval``: score a folder of samples and print the per-dimension table.

Errors the user can fix (missing weights, a samples folder VBench will not match, no vbench
environment) are raised as :class:`harness.errors.HarnessError`, which the CLI prints as one line.
"""

from __future__ import annotations

from pathlib import Path

from harness.commands.eval_results import read_vbench_results, weight_free_results, write_results
from harness.errors import ConfigError
from harness.evaluation.vbench import VBENCH, VBENCH_KEYS, final_scores
from harness.evaluation.vbench_backend import EvalOptions, evaluate_samples

RESULTS_NAME = EvalOptions.name  # vbench's run name: results/<name>_eval_results.json


def format_table(raw: dict[str, float]) -> str:
    """Dimension, group, raw score in percent (as reports and VBench's leaderboard print it) and VBench's
    normalised score ((raw − min)/(max − min), what its Total averages); the Total when all are there."""
    lines = [f"{'dimension':<24}{'group':<10}{'raw %':>10}{'normalised %':>14}"]
    for key in VBENCH_KEYS:
        if key in raw:
            dim = VBENCH.dimension(key)
            lines.append(f"{key:<24}{dim.group:<10}{100 * raw[key]:>10.3f}{100 * dim.normalise(raw[key]):>14.2f}")
    if all(key in raw for key in VBENCH_KEYS):
        scores = final_scores(raw)
        lines.append(
            f"VBench total {scores.total:.2f} | quality {scores.quality:.2f} | semantic {scores.semantic:.2f}"
            " (from normalised scores)"
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
        output_dir: where ``results.json`` and ``results/<name>_eval_results.json`` (VBench's layout) go, and
            with vbench its staged videos and log (default for vbench: ``<samples_dir>/../vbench``; the
            weight-free backend writes files only when it is given).
        device: torch device for vbench (``cpu`` or ``cuda``).
        full_info: a ``VBench_full_info.json``; default: the one shipped in the vbench package.
        extended_prompts: extended prompt list aligned 1:1 with the suite, used to map sample prompts back.
        vbench_python: the vbench environment's interpreter (default: $HARNESS_VBENCH_PYTHON, then
            .cache/vbench-venv).
        timeout_s: stop vbench after this many seconds.
    """
    if backend == "weight-free":  # per-video scores as well, for the results file
        unsupported = [d for d in dimensions or [] if d != "temporal_flickering"]
        if unsupported:
            raise ConfigError(f"backend 'weight-free' computes only temporal_flickering, not {unsupported}")
        results = weight_free_results(Path(samples_dir))
        raw = {key: entry[0] for key, entry in results.items()}
    else:
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
        output_dir = Path(output_dir or Path(samples_dir).resolve().parent / "vbench")
        results = read_vbench_results(output_dir, RESULTS_NAME)
    print(format_table(raw))
    if output_dir is not None:
        used_mode = mode if backend == "vbench" else None  # the weight-free score matches no prompt suite
        print(f"results: {write_results(Path(output_dir), RESULTS_NAME, backend, used_mode, results)}")
    return 0
