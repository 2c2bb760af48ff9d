"""One run's life: lock → status → pipeline → result, with heartbeat, tracking and failure capture.

Under torchrun every rank calls :func:`execute_run` on the same job. Rank 0 lives the run as above and
tells the others whether there is anything to do; they run the same pipeline (its collectives need
them) in a :class:`FollowerContext` that reads rank 0's run folder and writes only to a scratch folder,
with no tracker, and act on rank 0's answer whenever the pipeline reports to a sweep's pruner.
``python -m harness.engine.runner JOB OUTCOME`` is what each rank runs (see :mod:`harness.executors`).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import pickle
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.engine.checkpoints import CheckpointStore
from harness.engine.pipeline import Pipeline, ProgressSink, Reporter, RunContext, RunPruned
from harness.engine.plugins import instantiate_plugin
from harness.engine.provenance import collect, utc_now
from harness.engine.rank_stages import RankStageCache
from harness.engine.run_spec import RunSpec
from harness.engine.stages import StageCache
from harness.engine.store import COMPLETE, FAILED, HEARTBEAT_INTERVAL_S, RUNNING, RunDir, RunStore
from harness.errors import DiskFullError, HarnessError, TrainingDiverged
from harness.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from harness.parallel import ranks
from harness.tracking import GuardedTracker, NullTracker, RunInfo, Tracker, scrub_secrets

log = logging.getLogger(__name__)


# Outcome states beyond the stored ones.
CACHED = "cached"  # complete before this invocation: nothing recomputed
BUSY = "busy"  # another process holds the run right now
PRUNED = "pruned"  # stopped by a sweep's pruner; stored as failed with reason "pruned at step N ..."


@dataclass
class RunJob:
    """Everything a worker needs to execute one run; plain data, so it pickles to any process."""

    spec: RunSpec
    runs_root: str
    cache_root: str
    tracker_config: dict[str, Any] = field(default_factory=lambda: {"class_path": "harness.tracking.NullTracker"})
    force: bool = False
    heartbeat_s: float = HEARTBEAT_INTERVAL_S


@dataclass
class RunOutcome:
    hash: str
    name: str
    state: str  # complete | failed | cached | busy
    seconds: float = 0.0
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    headline: str | None = None
    resumed_from: int | None = None

    @property
    def ok(self) -> bool:
        return self.state in (COMPLETE, CACHED)


class _Monitor:
    """Serialises status writes and keeps the heartbeat going while the pipeline runs."""

    def __init__(self, run_dir: RunDir, sink: ProgressSink | None, interval: float):
        self.run_dir, self.sink, self.interval = run_dir, sink, interval
        self.lock = threading.Lock()
        self.where: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def event(self, ev: dict[str, Any]) -> None:
        with self.lock:
            if ev.get("stage") is not None:
                self.where = {"stage": ev["stage"], "step": ev.get("step"), "total": ev.get("total")}
            elif ev.get("step") is not None:
                self.where.update(step=ev["step"], total=ev.get("total", self.where.get("total")))
        if self.sink is not None:
            self.sink(ev)

    def status(self, state: str, **fields: Any) -> None:
        with self.lock:
            self.run_dir.write_status(state, **fields)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self.lock:
                try:
                    self.run_dir.touch_heartbeat(**self.where)
                except OSError as exc:  # a full disk: the run's own writes fail next and say so
                    log.warning("heartbeat of %s not written: %s", self.run_dir.path, exc.strerror or exc)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {text}"


def _json_metrics(metrics: Mapping[str, Any], run: str) -> dict[str, Any]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"pipeline of run {run} returned {type(metrics).__name__}, expected a mapping of metrics")
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric '{key}' is {value}")
        json.dumps(value)  # raises TypeError naming the type if it cannot be stored
        out[str(key)] = value
    return out


def execute_run(job: RunJob, progress: ProgressSink | None = None, reporter: Reporter | None = None) -> RunOutcome:
    """Execute one run unless it is complete already or another process holds it.

    ``reporter`` is a sweep's pruning hook, handed to the pipeline as ``ctx.report``. Under torchrun,
    ranks other than 0 follow rank 0 (see the module docstring).
    """
    if not ranks.is_rank_zero():
        return _follow(job)
    spec = job.spec
    run_dir = RunStore(job.runs_root, spec.study).run(spec.short)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    lock = run_dir.lock()
    if not lock.acquire(blocking=False):
        _tell_followers(False)
        return RunOutcome(spec.hash, spec.name, BUSY)
    try:
        status = run_dir.read_status()
        if run_dir.is_complete() and not job.force:
            _tell_followers(False)
            result = run_dir.read_result() or {}
            return RunOutcome(spec.hash, spec.name, CACHED, metrics=result.get("metrics", {}),
                              headline=result.get("headline"))
        if job.force:
            run_dir.clear()
            status = {}
        _tell_followers(True)
        return _execute_locked(job, run_dir, status, progress, reporter)
    finally:
        lock.release()


def _execute_locked(job: RunJob, run_dir: RunDir, previous: dict, progress: ProgressSink | None,
                    reporter: Reporter | None = None) -> RunOutcome:
    spec = job.spec
    started, t0 = utc_now(), time.time()
    attempts = previous.get("attempts")
    attempts = (attempts if isinstance(attempts, int) else 0) + 1
    monitor = _Monitor(run_dir, progress, job.heartbeat_s)
    try:
        run_dir.set_aside_unreadable()  # a garbled status/result/config is kept as <name>.corrupt
        run_dir.write_config({"study": spec.study, "hash": spec.hash, "labels": spec.labels, **spec.config})
        monitor.status(RUNNING, started=started, attempts=attempts, stage="starting", step=None, total=None)
    except OSError as exc:
        return _record_failure(spec, run_dir, monitor, None, exc, t0, None)
    tracker = GuardedTracker(_make_tracker(job))
    tracker.start(RunInfo(id=spec.short, name=spec.name, group=spec.study, job_type=spec.job_type,
                          config=scrub_secrets({"labels": spec.labels, **spec.config}),
                          dir=Path(job.runs_root) / spec.study, tags=run_tags(spec)))
    monitor.event({"run": spec.short, "name": spec.name, "stage": "starting", "event": "start",
                   "attempt": attempts, "previous": previous.get("state")})
    monitor.start()
    resumed_from = None
    try:
        pipeline: Pipeline = instantiate_plugin(spec.config["pipeline"], Pipeline, f"run {spec.name}", "pipeline")
        ctx = RunContext(seed=spec.seed, labels=dict(spec.labels), config=spec.config["pipeline"], run_dir=run_dir,
                         stages=_stage_cache(job), tracker=tracker,
                         progress_sink=lambda ev: monitor.event({"run": spec.short, **ev}),
                         reporter=_shared_decision(reporter) if ranks.is_distributed() else reporter)
        resumed_from = ctx.checkpoints.newest_valid_step()
        if resumed_from is not None:
            monitor.event({"run": spec.short, "stage": f"resumed from its checkpoint at step {resumed_from}"})
            run_dir.truncate_metrics_after(resumed_from)
        elif run_dir.metrics_path.exists():
            run_dir.metrics_path.unlink()
        metrics = _json_metrics(pipeline.run(ctx), spec.name)
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded; interrupts are re-raised below
        monitor.stop()
        if isinstance(exc, RunPruned):  # not an error: the sweep chose to stop it; resumable like any run
            return _record_pruned(spec, run_dir, monitor, tracker, exc, t0, resumed_from)
        return _record_failure(spec, run_dir, monitor, tracker, exc, t0, resumed_from)
    monitor.stop()
    seconds = time.time() - t0
    headline = getattr(pipeline, "headline", None)
    try:
        _commit(run_dir, monitor, {"metrics": metrics, "headline": headline, "seconds": round(seconds, 3),
                                   "resumed_from": resumed_from},
                {**collect(), "started": started, "ended": utc_now(), "seconds": round(seconds, 3),
                 "attempts": attempts})
    except OSError as exc:
        return _record_failure(spec, run_dir, monitor, tracker, exc, t0, resumed_from)
    tracker.summary(metrics)
    _mirror_outputs(tracker, run_dir, ctx.reused_stages)
    tracker.finish(COMPLETE)
    monitor.event({"run": spec.short, "event": "end"})
    return RunOutcome(spec.hash, spec.name, COMPLETE, seconds, metrics=metrics, headline=headline,
                      resumed_from=resumed_from)


def run_tags(spec: RunSpec) -> list[str]:
    """Tracker tags to filter runs by: the study, the method (the pipeline's, else the pipeline itself)
    and the sampling schedule where the pipeline has one (``schedule: 1*``)."""
    args = spec.config["pipeline"].get("init_args") or {}
    method = args.get("method")
    plugin = method.get("class_path") if isinstance(method, Mapping) else spec.config["pipeline"].get("class_path")
    tags = [f"study:{spec.study}", f"method:{str(plugin).rsplit('.', 1)[-1].lower()}"]
    schedule = args.get("schedule")
    if schedule is not None:
        tags.append(f"schedule:{schedule}")
    return [t[:64] for t in tags]  # W&B's limit


def _mirror_outputs(tracker: Tracker, run_dir: RunDir, reused: Mapping[str, Mapping[str, str]]) -> None:
    """The run's sample videos (the mp4 files themselves, captioned with their prompt) to the tracker, and
    for every stage this run found built (a cached distillation: its curves are in the builder's history)
    the run that built it."""
    for video in sorted(run_dir.samples_dir.glob("*.mp4")) if run_dir.samples_dir.is_dir() else []:
        caption = None
        try:
            caption = json.loads(video.with_suffix(".json").read_text(encoding="utf-8")).get("prompt")
        except (OSError, ValueError, AttributeError):
            pass
        tracker.log_video(f"samples/{video.stem}", video, caption=caption)
    if reused:
        tracker.summary({"built_by": {name: (f"{b['study']}/{b['run']}" if b else "unknown")
                                      for name, b in reused.items()}})


def _commit(run_dir: RunDir, monitor: _Monitor, result: dict[str, Any], provenance: dict[str, Any]) -> None:
    """result.json right before the complete status, the run's commit point: if that status cannot be
    written, result.json goes again, so no run is left ``running`` with a result."""
    atomic_write_json(run_dir.provenance_path, provenance)
    run_dir.write_result(result)
    try:
        monitor.status(COMPLETE, ended=utc_now(), seconds=result["seconds"], stage="done")
    except BaseException:
        try:
            run_dir.result_path.unlink(missing_ok=True)
        except OSError:  # a read-only disk: the status still says running, so the run is recomputed
            pass
        raise


def _record_pruned(spec: RunSpec, run_dir: RunDir, monitor: _Monitor, tracker: Tracker, exc: RunPruned,
                   t0: float, resumed_from: int | None) -> RunOutcome:
    try:
        monitor.status(FAILED, reason=str(exc), pruned_step=exc.step, ended=utc_now(),
                       seconds=round(time.time() - t0, 3))
    except OSError as err:
        return _record_failure(spec, run_dir, monitor, tracker, err, t0, resumed_from)
    tracker.finish(FAILED)
    return RunOutcome(spec.hash, spec.name, PRUNED, time.time() - t0, str(exc), resumed_from=resumed_from)


def _record_failure(spec: RunSpec, run_dir: RunDir, monitor: _Monitor, tracker: Tracker | None,
                    exc: BaseException, t0: float, resumed_from: int | None) -> RunOutcome:
    """Mark the run failed with its reason and traceback, as far as the disk allows; never raises on its
    own account. Re-raises an interrupt, and raises :class:`DiskFullError` when the disk is full (every
    later run would fail the same way), after marking the run."""
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else _one_line(exc)
    full = _disk_full(exc)
    try:
        atomic_write_text(run_dir.path / "error.log", "".join(traceback.format_exception(exc)))
    except OSError as err:
        full = full or _disk_full(err)
        log.warning("run %s: error.log not written (%s)", spec.name, err.strerror or err)
    marked = True
    try:
        monitor.status(FAILED, reason=reason, ended=utc_now(), seconds=round(time.time() - t0, 3))
    except OSError as err:
        full, marked = full or _disk_full(err), False
        log.warning("run %s: not marked failed (%s); it reads as stale until rerun", spec.name, err.strerror or err)
    if tracker is not None:
        tracker.finish(FAILED)
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        raise exc
    if full is not None:
        raise DiskFullError(_disk_full_message(full, run_dir.path, spec.name, marked)) from None
    return RunOutcome(spec.hash, spec.name, FAILED, time.time() - t0, reason, resumed_from=resumed_from)


def _disk_full(exc: BaseException | None) -> OSError | None:
    """The out-of-space error (ENOSPC, EDQUOT) behind ``exc``, following its causes."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _disk_full_message(err: OSError, run_folder: Path, run: str, marked: bool) -> str:
    folder = Path(err.filename).parent if err.filename else run_folder
    mount = folder.resolve()
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    state = "marked failed" if marked else "could not be marked failed"
    return (f"{err.strerror or 'no space left'} writing to {folder} (the disk mounted at {mount}); run {run} "
            f"{state}; the study stops here: free space there, then rerun")


def _stage_cache(job: RunJob) -> StageCache:
    """A forced run rebuilds the partial build folders of the stages it asks for (never a complete stage)."""
    cls = RankStageCache if ranks.is_distributed() else StageCache
    return cls(job.cache_root, rebuild_partial=job.force)


# -- ranks other than 0 under torchrun ------------------------------------------------------------


def _tell_followers(go: bool) -> None:
    """Rank 0 says whether the run executes (the others must then run the pipeline with it)."""
    if ranks.is_distributed():
        ranks.broadcast_object(go)


def _shared_decision(reporter: Reporter | None) -> Reporter:
    """Rank 0 asks the sweep; every rank acts on its answer, so all stop at the same step."""

    def report(value: float, step: int) -> bool:
        decision = bool(reporter(value, step)) if reporter is not None else False
        return bool(ranks.broadcast_object(decision))

    return report


class _ReadOnlyCheckpoints(CheckpointStore):
    """Rank 0's checkpoints, to resume from; saving is rank 0's job."""

    def save(self, step: int, state: dict[str, Any]) -> Path:
        return self.path(step)

    def _set_aside(self, path: Path, why: str) -> None:  # rank 0 renames; followers only skip
        log.warning("%s; skipped", why)


@dataclass
class FollowerContext(RunContext):
    """What a rank other than 0 sees: rank 0's run folder to read, its own scratch folder to write."""

    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="harness-rank-")))

    def __post_init__(self) -> None:
        self.checkpoints = _ReadOnlyCheckpoints(self.run_dir.checkpoints_dir)

    @property
    def workdir(self) -> Path:
        return self.scratch

    @property
    def samples_dir(self) -> Path:
        (self.scratch / "samples").mkdir(parents=True, exist_ok=True)
        return self.scratch / "samples"

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for key, value in metrics.items():  # diverge together with rank 0; record nothing
            if isinstance(value, float) and not math.isfinite(value):
                raise TrainingDiverged(f"{key} is {value} at step {step}")

    def progress(self, stage: str | None = None, step: int | None = None, total: int | None = None) -> None:
        pass


def _follow(job: RunJob) -> RunOutcome:
    """A rank other than 0: run the pipeline alongside rank 0 when it runs, keeping nothing."""
    spec = job.spec
    if not ranks.broadcast_object(None):
        return RunOutcome(spec.hash, spec.name, CACHED)
    t0 = time.time()
    pipeline: Pipeline = instantiate_plugin(spec.config["pipeline"], Pipeline, f"run {spec.name}", "pipeline")
    run_dir = RunStore(job.runs_root, spec.study).run(spec.short)
    with tempfile.TemporaryDirectory(prefix=f"harness-rank{ranks.rank()}-") as scratch:
        ctx = FollowerContext(seed=spec.seed, labels=dict(spec.labels), config=spec.config["pipeline"],
                              run_dir=run_dir, stages=_stage_cache(job), tracker=NullTracker(),
                              reporter=lambda value, step: bool(ranks.broadcast_object(None)),
                              scratch=Path(scratch))
        metrics = _json_metrics(pipeline.run(ctx), spec.name)
    return RunOutcome(spec.hash, spec.name, COMPLETE, time.time() - t0, metrics=metrics)


def rank_main(job_file: str, outcome_file: str) -> int:
    """One rank of a torchrun launch: execute the pickled job; rank 0 pickles the outcome.

    A rank that fails writes ``OUTCOME.rank<r>.json`` (its one-line reason and the time) before its
    process group closes — the others fail only after that, so the earliest record is the root cause.
    Rank 0 exits non-zero when the run failed, so torchrun stops ranks still waiting in a collective.
    """
    job: RunJob = pickle.loads(Path(job_file).read_bytes())
    with ranks.process_group():
        link = ranks.LauncherLink.from_env() if ranks.is_rank_zero() else None
        try:
            progress = link.progress if link is not None else None
            reporter = link.report if link is not None and link.reports else None
            outcome = execute_run(job, progress, reporter)
        except RunPruned:  # a follower stopping with rank 0
            return 0
        except BaseException as exc:
            _write_rank_failure(outcome_file, _one_line(exc))
            raise
        finally:
            if link is not None:
                link.close()
        if ranks.is_rank_zero():
            if outcome.state == FAILED:
                _write_rank_failure(outcome_file, outcome.reason or "failed")
            atomic_write_bytes(outcome_file, pickle.dumps(outcome))
    return 1 if outcome.state == FAILED else 0


def _write_rank_failure(outcome_file: str, reason: str) -> None:
    atomic_write_json(f"{outcome_file}.rank{ranks.rank()}.json",
                      {"rank": ranks.rank(), "time": time.time(), "reason": reason})


def _make_tracker(job: RunJob) -> Tracker:
    try:
        return instantiate_plugin(job.tracker_config, Tracker, f"run {job.spec.name}", "tracker")
    except Exception as exc:  # noqa: BLE001 - a tracker never fails a run
        log.warning("tracker could not be built (%s); continuing without it", exc)
        return NullTracker()


if __name__ == "__main__":
    from harness.engine.runner import rank_main as _rank_main  # the importable module, not this __main__ copy

    sys.exit(_rank_main(*sys.argv[1:3]))
