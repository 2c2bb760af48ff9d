"""Synthetic but realistic run folders for the report tests, so they need no training.

``write_ablation(runs_dir)`` lays out what ``harness run`` leaves behind for a small ablation:
DMD and ASD each sampled with 1, 2 and 1* steps over 3 seeds, a real-data reference row, one failed
run, one complete run missing a dimension, x̂0 cosine files, one small mp4 per run with its sidecar,
and the distillation stages' ``metrics.jsonl`` shared by the schedules of one (method, seed), with its
copy ``distill_metrics.jsonl`` in each run folder: loss terms, counters, the DMD diagnostics and the
eval hook's rows (ASD's curve flattens, DMD's still rises). ``references=True`` adds the causal init
at the students' schedules and the teacher at 1, 2, 4 and 50 Euler steps, over the same seeds.
The scores are drawn around known means so tests can assert the numbers the report must print; within
a seed every row samples the same noise, so rows pair by seed, and each method's seed offsets are a
different permutation, so the per-seed differences have a known spread.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from harness.engine.versions import code_versions
from harness.evaluation.cosine import X0Trace, cosine_similarity_matrices
from harness.io.video import SampleMeta, write_video

STUDY = "ablation_asd"
SEEDS = (0, 1, 2)
SCHEDULES = {"1": (1, 1), "2": (2, 2), "1*": (4, 1)}  # label -> steps of (first chunk, later chunks)
NFE = {"1": 4, "2": 6, "1*": 7}  # 2 chunks, steps + 1 forward each
QUALITY_DIMS = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
                "dynamic_degree", "imaging_quality")
SEMANTIC_DIMS = ("object_class", "color", "multiple_objects", "motion_direction")
# Mean Total per (method, schedule): ASD beats DMD by 6 points at 1 step; FFE adds 2 points.
TOTAL_MEANS = {("DMD", "1"): 70.0, ("DMD", "2"): 76.0, ("DMD", "1*"): 72.0,
               ("ASD", "1"): 76.0, ("ASD", "2"): 79.0, ("ASD", "1*"): 78.0}
SEED_OFFSETS = (-0.5, 0.0, 0.5)  # Total of seed i = mean + offset: sd 0.5, so the 95% half-width is 1.242
# per method (a permutation of SEED_OFFSETS, so every row keeps sd 0.5): ASD − DMD per seed is 6 + (0, −0.5, 0.5)
METHOD_OFFSETS = {"ASD": SEED_OFFSETS, "DMD": (-0.5, 0.5, 0.0), "causal_init": (0.0, 0.0, 0.0),
                  "teacher": (0.5, 0.0, -0.5)}
INIT_TOTALS = {"1": 40.0, "2": 55.0, "1*": 45.0}  # the causal init at the students' schedules
TEACHER_TOTALS = {"1": 30.0, "2": 45.0, "4": 70.0, "50": 84.0}  # the teacher's own Euler sampler
EVAL_UPDATES = (0, 5, 10, 15, 20)  # the eval hook's rows: every 5 generator updates, 1 update per critic step
EMA_FROM = 10  # updates from which the hook also scores the EMA
FAILED = ("ASD", "2", 2)
MISSING_DIMENSION = ("DMD", "1*", 1, "color")
LOSS_TERMS = {"DMD": ("loss_dmd", "loss_critic"), "ASD": ("loss_dmd", "loss_critic", "loss_adv", "loss_disc")}
FRAMES, SIZE = 4, 16
REFERENCE_DIVERSITY = 0.554  # a property of the real reference set: the same in every row


def run_hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _metrics(method: str, schedule: str, seed: int) -> dict:
    total = TOTAL_MEANS[(method, schedule)] + METHOD_OFFSETS[method][seed]
    rng = np.random.default_rng(int(run_hash(method, schedule, seed), 16) % 2**32)
    dims = {d: float(np.clip(total / 100 + rng.normal(0, 0.02), 0, 1)) for d in QUALITY_DIMS + SEMANTIC_DIMS}
    return {**dims, "total": total, "quality": total + 1.0, "semantic": total - 4.0,
            "fd": 40.0 - total / 4 + 0.1 * seed, "diversity": 0.3 + (0.1 if method == "ASD" else 0.0),
            "reference_diversity": REFERENCE_DIVERSITY,
            "nfe": NFE[schedule], "latency_s": 0.01 * NFE[schedule] + 0.001 * seed, "schedule": schedule,
            "method": method.lower(), "generator": f"distill-{method.lower()}/{_stage_key(method, seed)}"}


def _stage_key(method: str, seed: int) -> str:
    return run_hash("stage", method, seed)


def _video(method: str, schedule: str) -> np.ndarray:
    """A square moving right; its colour says which row it is, so a grid's rows differ visibly."""
    video = np.full((FRAMES, SIZE, SIZE, 3), 30, np.uint8)
    colour = (220, 60, 40) if method == "ASD" else (40, 90, 220)
    shade = {"1": 0.6, "2": 0.8, "1*": 1.0}.get(schedule, 1.0)
    for t in range(FRAMES):
        video[t, 5:11, 2 + 2 * t: 8 + 2 * t] = [int(c * shade) for c in colour]
    return video


def _write_cosine(samples: Path, schedule: str, seed: int) -> None:
    first, later = SCHEDULES[schedule]
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(2, 2, 1, 4, 4, generator=generator)
    trace = X0Trace()
    for chunk, steps in enumerate((first, later)):
        for s in range(steps):
            trace.record(chunk, base + 0.3 * (steps - s) * torch.randn(base.shape, generator=generator))
    cosine_similarity_matrices(trace).save(samples, stem="x0_cosine")


def _write_run(study_dir: Path, run: dict, metrics: dict | None, state: str, reason: str | None = None) -> None:
    folder = study_dir / run["hash"]
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    config = {"study": STUDY, "hash": run["hash"] * 4, "labels": run["labels"], "seed": run["seed"],
              "pipeline": {"class_path": "harness.pipelines.distill.DistillAndEvaluate",
                           "init_args": {"schedule": run["labels"]["steps"]}}}
    config["versions"] = code_versions(config["pipeline"])  # computed by the current code: not outdated
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    status = {"state": state, "seconds": 12.5, **({"reason": reason} if reason else {})}
    (folder / "status.json").write_text(json.dumps(status))
    if metrics is not None:
        (folder / "result.json").write_text(json.dumps({"metrics": metrics, "headline": "total", "seconds": 12.5}))


PROMPTS = ("a red square moving right", "a blue square moving right")


def _write_samples(folder: Path, method: str, schedule: str, seed: int) -> None:
    """Two prompts, the first with two noise draws (as videos_per_prompt 2 keeps them): the gallery shows
    the first draw of each prompt."""
    for index, prompt in enumerate((PROMPTS[0], PROMPTS[0], PROMPTS[1])):
        meta = SampleMeta(prompt=prompt, seed=index, method=method.lower(), schedule=schedule,
                          nfe=NFE.get(schedule, 0), extra={"index": index})
        video = _video(method, schedule)[:, :, ::-1] if prompt == PROMPTS[1] else _video(method, schedule)
        write_video(folder / "samples" / f"sample_{index:03d}.mp4", np.ascontiguousarray(video), fps=4, meta=meta)
    _write_cosine(folder / "samples", schedule, seed)


def eval_total(method: str, updates: float, seed: int) -> float:
    """The hook's Total at 1 step: ASD flattens by the last quarter, DMD still climbs 1 point an update."""
    if method == "ASD":
        return 76.0 - 26.0 * float(np.exp(-updates / 3.0)) + SEED_OFFSETS[seed]
    return 50.0 + 1.0 * updates + METHOD_OFFSETS[method][seed]


def _eval_row(method: str, seed: int, updates: int) -> dict:
    row = {"eval/updates": float(updates), "eval/train_seconds": 1.5 * updates + 0.1 * seed}
    for model in ("raw", "ema") if updates >= EMA_FROM else ("raw",):
        lift = 0.5 if model == "ema" else 0.0
        for schedule, gain in (("1", 0.0), ("2", 4.0)):
            total = eval_total(method, updates, seed) + gain + lift
            row[f"eval/{model}/{schedule}/total"] = total
            row[f"eval/{model}/{schedule}/semantic"] = total - 4.0
            for k, dim in enumerate(SEMANTIC_DIMS):
                row[f"eval/{model}/{schedule}/{dim}"] = min(1.0, total / 100 - 0.02 * k)
    return row


def training_log(method: str, seed: int) -> list[dict]:
    """The distillation's log: 20 critic steps, one generator update each, with the eval hook's rows."""
    rows = []
    for step in range(20):
        row = {"step": step}
        for k, term in enumerate(LOSS_TERMS[method]):
            rate = 8.0 if method == "DMD" else 5.0  # ASD's terms fall faster, so the curves differ
            row[term] = (1.0 + k) * np.exp(-(step + 1) / rate) + 0.05 * seed
        row["generator/n"] = float(1 + step % 2)  # a counter: never drawn as a curve
        row["generator/fake_vs_teacher"] = 0.01 * (step + 1) * (2.0 if method == "ASD" else 1.0)
        row["generator/cfg_gap"] = 0.3 + 0.01 * seed
        if step == 0:
            row.update(_eval_row(method, seed, 0))
        if (step + 1) in EVAL_UPDATES:
            row.update(_eval_row(method, seed, step + 1))
        rows.append(row)
    return rows


def _write_stage(stages: Path, method: str, seed: int) -> str:
    """The stage's metrics.jsonl; returns its text, which each run sampling the generator keeps a copy of."""
    folder = stages / f"distill-{method.lower()}" / _stage_key(method, seed)
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row) + "\n" for row in training_log(method, seed))
    (folder / "metrics.jsonl").write_text(text)
    return text


# The grid as study.json holds it: the students' levels are keyed dmd/asd and labelled DMD/ASD (the report
# shows the labels); the reference rows carry no label, so the report falls back to their level keys.
GRID = [{"variant": {"dmd": {"label": "DMD", "method": {"init_args": {"alpha": 0.0}}},
                     "asd": {"label": "ASD", "method": {"init_args": {"alpha": 10.0}}}},
         "steps": {s: {"schedule": s} for s in SCHEDULES}},
        {"variant": {"causal_init": {}, "teacher": {}, "Real data": {}}}]
WORLD = {"class_path": "harness.worlds.sprites.world.SpritesWorld", "init_args": {"size": "smoke"}}


def manifest(runs: list[dict], tracker: dict | None = None) -> dict:
    return {"study": STUDY, "source": "ablation_asd.yaml", "preset": "smoke",
            "config": {"name": STUDY, "seeds": list(SEEDS),
                       "pipeline": {"class_path": "harness.pipelines.DistillAndEvaluate",
                                    "init_args": {"world": WORLD}},
                       "tracker": tracker or {"class_path": "harness.tracking.NullTracker"}, "grid": GRID},
            "runs": runs, "provenance": {"git_commit": "0" * 40, "git_dirty": False,
                                         "packages": {"torch": "2.13.0"}, "host": {"python": "3.11.7"}}}


def _reference_metrics(kind: str, schedule: str, seed: int) -> dict:
    totals = INIT_TOTALS if kind == "causal_init" else TEACHER_TOTALS
    total = totals[schedule] + METHOD_OFFSETS[kind][seed]
    dims = {d: total / 100 for d in QUALITY_DIMS + SEMANTIC_DIMS}
    nfe = NFE[schedule] if kind == "causal_init" else 2 * int(schedule)  # CFG: two forwards a teacher step
    metrics = {**dims, "total": total, "quality": total + 1.0, "semantic": total - 4.0, "fd": 40.0 - total / 4,
               "diversity": 0.3, "reference_diversity": REFERENCE_DIVERSITY, "nfe": nfe, "latency_s": 0.01 * nfe, "schedule": schedule, "method": kind}
    return {**metrics, "generator": "causal_init"} if kind == "causal_init" else metrics


def _write_references(study_dir: Path, runs: list[dict]) -> None:
    for kind, schedules in (("causal_init", INIT_TOTALS), ("teacher", TEACHER_TOTALS)):
        for schedule in schedules:
            for seed in SEEDS:
                run = {"hash": run_hash(kind, schedule, seed), "seed": seed,
                       "labels": {"variant": kind, "steps": schedule}, "name": f"{kind}/{schedule}/seed={seed}"}
                runs.append(run)
                _write_run(study_dir, run, _reference_metrics(kind, schedule, seed), "complete")


def write_ablation(runs_dir: Path, *, samples: bool = True, references: bool = False) -> Path:
    """Write the ablation study under ``runs_dir``; returns its study folder."""
    study_dir, stages = runs_dir / STUDY, runs_dir / ".stages"
    study_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for method in ("DMD", "ASD"):
        logs = {seed: _write_stage(stages, method, seed) for seed in SEEDS}
        for schedule in SCHEDULES:
            for seed in SEEDS:
                run = {"hash": run_hash(method, schedule, seed), "seed": seed,
                       "labels": {"variant": method.lower(), "steps": schedule},
                       "name": f"{method.lower()}/{schedule}/seed={seed}"}
                runs.append(run)
                if (method, schedule, seed) == FAILED:
                    _write_run(study_dir, run, None, "failed", "TrainingDiverged: loss_adv is nan at step 12")
                    continue
                metrics = _metrics(method, schedule, seed)
                if (method, schedule, seed) == MISSING_DIMENSION[:3]:
                    metrics.pop(MISSING_DIMENSION[3])
                _write_run(study_dir, run, metrics, "complete")
                (study_dir / run["hash"] / "distill_metrics.jsonl").write_text(logs[seed])
                if samples:
                    _write_samples(study_dir / run["hash"], method, schedule, seed)
    if references:
        _write_references(study_dir, runs)
    reference = {"hash": run_hash("real data"), "seed": 0, "labels": {"variant": "Real data", "steps": "—"},
                 "name": "Real data/—/seed=0"}
    runs.append(reference)
    real = {**{d: 0.97 for d in QUALITY_DIMS + SEMANTIC_DIMS}, "total": 97.0, "quality": 97.5, "semantic": 95.0,
            "fd": 0.0, "diversity": 0.45, "reference_diversity": REFERENCE_DIVERSITY}
    _write_run(study_dir, reference, real, "complete")
    (study_dir / "study.json").write_text(json.dumps(manifest(runs), indent=1))
    return study_dir
