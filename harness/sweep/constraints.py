"""Constraints of a sweep: trials whose training did not reach a bound are infeasible, not just worse.

``sweep.constraints: {critic/heldout_acc_min: 0.6}`` names a term of the trial's training logs (each
run folder's ``distill_metrics.jsonl``) and the lowest acceptable value. After a trial's runs, its value
per constraint is ``bound − mean over seeds of the term's last logged value`` (Optuna's convention:
<= 0 is feasible), set with ``trial.set_constraint`` (Optuna 5; TPE, NSGA-II and GP read it, the random
sampler ignores it). A run that never logged the term makes the trial infeasible. Used by ASD's sweep to
search only where the discriminator learns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

RUN_TRAINING_LOG = "distill_metrics.jsonl"  # harness.pipelines.distill writes it into every run folder
INFEASIBLE = 1.0e9


def last_logged(path: Path, term: str) -> float | None:
    """The last value of ``term`` in a JSON-lines log, or None when it never appears."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        value = row.get(term) if isinstance(row, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def constraint_values(bounds: Mapping[str, float], run_dirs: Sequence[Path]) -> list[float]:
    """Per bound: ``bound − mean last value over the runs`` (<= 0 feasible); INFEASIBLE where a run lacks it."""
    values = []
    for term, bound in bounds.items():
        logged = [last_logged(folder / RUN_TRAINING_LOG, term) for folder in run_dirs]
        if not logged or any(v is None for v in logged):
            values.append(INFEASIBLE)
        else:
            values.append(float(bound) - sum(logged) / len(logged))
    return values
