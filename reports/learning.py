"""Learning curves from the distillations' logs, and whether each distilled variant converged.

The training loop's eval hook logs, on some critic steps, ``eval/updates`` (generator updates so far),
``eval/train_seconds`` (training wall time) and scores ``eval/<raw|ema>/<schedule>/<metric>``
(:mod:`harness.training.evaluation`). :func:`eval_points` turns the long curves frame of
:func:`reports.collect.load_curves` into one row per (variant, seed, evaluation, model, schedule,
metric); :func:`curve` averages a variant's seeds at each evaluation with a 95% t-interval; and
:func:`convergence` gives each variant its verdict: the change of the mean curve over the last quarter
of training against the spread between seeds at the end.

Counters (``n``, ``exit_step``, ``eval/updates``, …) are never values of a curve: :func:`plotted_terms`
is what the training-curve figure may draw.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.tables import CONFIDENCE, estimate

EVAL_PREFIX = "eval/"
UPDATES, SECONDS = "eval/updates", "eval/train_seconds"
# Logged numbers that count or time something, or record a random draw: never drawn as a curve's value.
COUNTERS = {"step", "n", "exit_step", "updates", "train_seconds", "dmd_t_mean"}
DIAGNOSTICS = ("generator/fake_vs_teacher", "generator/cfg_gap", "generator/fake_vs_real")
# ASD's per-n diagnostics of D (methods/asd_diagnostics.py): drawn by reports/asd_figures.py, not as loss curves
ASD_DIAGNOSTIC = re.compile(
    r"^(critic|generator)/(heldout_acc|heldout_gap|feat_ratio|feat_null|readout_ratio|grad_ratio)_n(\d+)$"
    r"|^critic/heldout_acc_min$"
)
PREFERRED_MODEL, FALLBACK_MODEL = "ema", "raw"
CONVERGENCE_SCHEDULE, CONVERGENCE_METRIC, LAST_FRACTION = "1", "total", 0.25
MIN_SEEDS, MIN_POINTS = 2, 3
CONVERGED, NOT_CONVERGED, UNKNOWN = "converged", "not converged", "unknown"


def is_counter(term: str) -> bool:
    return term.rsplit("/", 1)[-1] in COUNTERS


def plotted_terms(curves: pd.DataFrame) -> list[str]:
    """Loss terms and other training quantities, in logging order: no eval scores (their own figures),
    no counters, no DMD diagnostics (their own figure)."""
    terms = dict.fromkeys(curves["term"]) if len(curves) else {}
    return [t for t in terms if not t.startswith(EVAL_PREFIX) and not is_counter(t) and t not in DIAGNOSTICS
            and not ASD_DIAGNOSTIC.match(t)]


def eval_points(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per logged eval score: method, seed, generator, step, updates, seconds, model, schedule,
    metric, value. Rows without ``eval/updates`` on their step (a foreign log) are dropped."""
    columns = ["method", "seed", "generator", "step", "updates", "seconds", "model", "schedule", "metric", "value"]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    logged = curves[curves["term"].str.startswith(EVAL_PREFIX)]
    keys = ["generator", "line"]  # the logged row: scores and their clock are logged together
    clock = logged[logged["term"] == UPDATES][keys + ["value"]].rename(columns={"value": "updates"})
    seconds = logged[logged["term"] == SECONDS][keys + ["value"]].rename(columns={"value": "seconds"})
    parts = logged["term"].str[len(EVAL_PREFIX):].str.split("/")
    scores = logged[parts.str.len() >= 3].copy()
    if scores.empty or clock.empty:
        return pd.DataFrame(columns=columns)
    split = parts[parts.str.len() >= 3]
    scores["model"] = split.str[0]
    scores["schedule"] = split.map(lambda p: "/".join(p[1:-1]))
    scores["metric"] = split.str[-1]
    scores = scores[~scores["metric"].map(is_counter)]
    out = scores.merge(clock.drop_duplicates(keys), on=keys).merge(seconds.drop_duplicates(keys), on=keys, how="left")
    return out[columns].reset_index(drop=True)


def preferred(points: pd.DataFrame, schedule: str, metric: str) -> pd.DataFrame:
    """The EMA's score at each evaluation where there is one, else the raw generator's (before the EMA
    starts the weights a run would hand back are the raw ones): method, seed, updates, seconds, model, value."""
    chosen = points[(points["schedule"] == schedule) & (points["metric"] == metric)]
    chosen = chosen[chosen["model"].isin([PREFERRED_MODEL, FALLBACK_MODEL])]
    rank = (chosen["model"] != PREFERRED_MODEL).astype(int)
    chosen = chosen.assign(rank=rank).sort_values(["method", "generator", "updates", "rank"], kind="stable")
    chosen = chosen.drop_duplicates(["method", "generator", "updates"])
    return chosen[["method", "seed", "generator", "updates", "seconds", "model", "value"]].reset_index(drop=True)


def curve(frame: pd.DataFrame, value: str = "value", x: str = "updates",
          confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per ``x`` (one evaluation; with ``x="seconds"`` the mean clock of the seeds' same evaluation):
    mean, low, high (t-interval over seeds; equal to the mean with one seed) and n."""
    records = []
    for updates, group in frame.groupby("updates", sort=True):
        values = [float(v) for v in group[value] if math.isfinite(v)]
        cell = estimate(values, confidence)
        if cell is None:
            continue
        half = 0.0 if math.isnan(cell.half_width) else cell.half_width
        where = float(updates) if x == "updates" else float(np.nanmean(group[x].astype(float)))
        records.append((where, cell.mean, cell.mean - half, cell.mean + half, cell.n))
    return pd.DataFrame.from_records(records, columns=["x", "mean", "low", "high", "n"])


def step_curve(curves: pd.DataFrame, term: str, confidence: float = CONFIDENCE) -> dict[str, pd.DataFrame]:
    """Method → per critic step mean and t-interval over seeds of a logged term (a diagnostic, a loss)."""
    part = curves[curves["term"] == term]
    return {str(method): curve(group.rename(columns={"step": "updates"}), confidence=confidence)
            for method, group in part.groupby("method", sort=False)}


# -- convergence -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Whether a variant's curve stopped moving: |change over the last quarter| < sd of final values over seeds."""

    method: str
    state: str  # CONVERGED, NOT_CONVERGED or UNKNOWN
    seeds: int
    points: int
    model: str = ""  # "EMA", "raw" or "EMA (raw before the EMA starts)"
    start: float = math.nan  # updates at the point at 75% of training
    end: float = math.nan  # updates at the last evaluation
    change: float = math.nan  # mean at end − mean at start, over the seeds with both
    spread: float = math.nan  # standard deviation of the final values over seeds
    final: float = math.nan  # mean final value

    def sentence(self, schedule: str = CONVERGENCE_SCHEDULE, metric: str = CONVERGENCE_METRIC) -> str:
        what = f"the mean {self.model} {metric.capitalize()} at {schedule} step{'s' if schedule != '1' else ''}"
        if self.state == UNKNOWN:
            return (f"Convergence of {self.method}: unknown, {self.seeds} seed{'s' if self.seeds != 1 else ''} "
                    f"and {self.points} evaluation{'s' if self.points != 1 else ''} while training (a verdict needs "
                    f"at least {MIN_SEEDS} seeds and {MIN_POINTS} evaluations).")
        compare = "less" if self.state == CONVERGED else "not less"
        tail = "" if self.state == CONVERGED else f"; it was still {'rising' if self.change > 0 else 'falling'}"
        return (f"Convergence of {self.method}: {self.state}: over the last quarter of training (updates "
                f"{self.start:g} → {self.end:g}) {what} changed by {self.change:+.2f} (to {self.final:.2f}), "
                f"{compare} than the spread between seeds at the end (sd {self.spread:.2f} over {self.seeds} "
                f"seeds){tail}.")


def _model_label(models: set[str]) -> str:
    if models == {PREFERRED_MODEL}:
        return "EMA"
    if models == {FALLBACK_MODEL}:
        return "raw"
    return "EMA (raw before the EMA starts)"


def _start_point(grid: list[float]) -> float:
    """The evaluation nearest 75% of the last one's updates (an earlier one on a tie), never the last."""
    target = (1.0 - LAST_FRACTION) * grid[-1]
    return min(grid[:-1], key=lambda u: (abs(u - target), u))


def verdict(method: str, frame: pd.DataFrame) -> Verdict:
    """The verdict of one variant from its :func:`preferred` frame (one value per seed and evaluation)."""
    seeds, grid = frame["seed"].nunique(), sorted(set(frame["updates"].astype(float)))
    if seeds < MIN_SEEDS or len(grid) < MIN_POINTS:
        return Verdict(method, UNKNOWN, seeds, len(grid), _model_label(set(frame["model"])))
    start, end = _start_point(grid), grid[-1]
    model = _model_label(set(frame.loc[frame["updates"].isin([start, end]), "model"]))
    by_seed = frame.pivot_table(index="seed", columns="updates", values="value", aggfunc="mean")
    finals = by_seed[end].dropna()
    both = by_seed[[start, end]].dropna()
    if len(finals) < MIN_SEEDS or both.empty:
        return Verdict(method, UNKNOWN, len(finals), len(grid), model)
    change = float(both[end].mean() - both[start].mean())
    spread = float(finals.std(ddof=1))
    state = CONVERGED if abs(change) < spread or change == 0.0 else NOT_CONVERGED
    return Verdict(method, state, len(finals), len(grid), model, start, end, change, spread, float(finals.mean()))


def convergence(curves: pd.DataFrame, schedule: str = CONVERGENCE_SCHEDULE,
                metric: str = CONVERGENCE_METRIC) -> list[Verdict]:
    """One verdict per variant that logged ``metric`` at ``schedule`` while training, in logging order."""
    frame = preferred(eval_points(curves), schedule, metric)
    return [verdict(str(method), group) for method, group in frame.groupby("method", sort=False)]


NO_EVAL_NOTE = ("no distillation evaluated its generator while training (train.eval.every: 0), so there are "
                "no learning curves and no convergence verdict")


def convergence_sentences(curves: pd.DataFrame) -> list[str]:
    """The verdict of every variant, or one line saying why there is none (no sentence without curves)."""
    if curves.empty:
        return []
    verdicts = convergence(curves)
    if not verdicts:
        if eval_points(curves).empty:
            return [NO_EVAL_NOTE[0].upper() + NO_EVAL_NOTE[1:] + "."]
        missing = (f"No distillation logged {CONVERGENCE_METRIC} at {CONVERGENCE_SCHEDULE} step while training, "
                   "so there is no convergence verdict.")
        return [missing]
    return [v.sentence() for v in verdicts]
