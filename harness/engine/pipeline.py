"""What one run does, and the context the engine hands it.

A study names one :class:`Pipeline` (``pipeline: {class_path: ..., init_args: ...}``); every run of
the study is that pipeline with the run's overrides and seed. The pipeline asks the context for
cached stages, checkpoints, logging and progress, and returns its metrics; the engine owns run
folders, status, locking, tracking and failure handling.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.engine.checkpoints import CheckpointStore
from harness.engine.stages import Artifact, StageCache
from harness.engine.store import RunDir
from harness.errors import TrainingDiverged
from harness.tracking import Tracker

ProgressSink = Callable[[dict[str, Any]], None]  # progress events of a run, e.g. {'run': ..., 'stage': ...}
Reporter = Callable[[float, int], bool]  # (value, step) -> should the run stop now?


class RunPruned(Exception):
    """Raised by :meth:`RunContext.report` when a sweep decides this run is not worth finishing."""

    def __init__(self, step: int, value: float):
        super().__init__(f"pruned at step {step} (reported value {value:.6g})")
        self.step, self.value = step, value


class Pipeline(ABC):
    """One run's computation. Subclasses are plugins; their ``__init__`` arguments are the config.

    Constructors must be cheap (``harness validate`` builds every plugin without running it).
    ``headline`` names the metric that ``harness ls`` and summaries show.
    """

    headline: str | None = None
    # Bumped when what a subclass computes for the same config changes; enters every run's hash
    # (the rule: harness/engine/versions.py).
    version: ClassVar[int] = 1
    # Names of the metrics ``run`` returns, when they are known before running: sweeps check their
    # objectives against them so a typo fails before any trial. None means "not declared".
    produces: ClassVar[tuple[str, ...] | None] = None

    def metric_names(self) -> set[str] | None:
        """The metric names ``run`` will return, or None when unknown (override if they depend on config)."""
        return set(self.produces) if self.produces is not None else None

    @abstractmethod
    def run(self, ctx: RunContext) -> Mapping[str, Any]:
        """Compute the run and return its metrics (numbers, or small JSON-able values)."""


@dataclass
class RunContext:
    """Everything a pipeline may touch while it runs."""

    seed: int
    labels: dict[str, str]
    config: dict[str, Any]  # the run's resolved pipeline config: stage keys are built from parts of it
    run_dir: RunDir
    stages: StageCache
    tracker: Tracker
    progress_sink: ProgressSink | None = None
    reporter: Reporter | None = None  # set by sweeps; None outside them
    checkpoints: CheckpointStore = field(init=False)
    # stage name → the run that built it ({"study", "run"}; empty if unknown), for stages found built
    reused_stages: dict[str, dict[str, str]] = field(default_factory=dict, init=False)
    _last_step: int = field(default=-1, init=False)

    def __post_init__(self) -> None:
        self.checkpoints = CheckpointStore(self.run_dir.checkpoints_dir)

    @property
    def samples_dir(self) -> Path:
        self.run_dir.samples_dir.mkdir(parents=True, exist_ok=True)
        return self.run_dir.samples_dir

    @property
    def workdir(self) -> Path:
        return self.run_dir.path

    def stage(self, name: str, config: Mapping[str, Any], build: Callable[[Path], Any],
              inputs: Iterable[Artifact | str] = (), version: int = 1) -> Artifact:
        """A cached artifact shared across runs and studies (see :class:`StageCache`).

        ``version``: the builder's ``STAGE_VERSION``, bumped when what it builds changes; the versions
        of the classes ``config`` names enter the key too (the rule: :mod:`harness.engine.versions`)."""
        inputs = list(inputs)
        hit = self.stages.lookup(name, config, inputs, version=version)
        if hit is not None:
            self.progress(stage=f"{name}: cache hit")
            self._reused(hit)
            return hit
        waited: list[bool] = []

        def on_wait() -> None:
            waited.append(True)
            self.progress(stage=f"{name}: waiting for another run to build it")

        self.progress(stage=f"{name}: building")
        artifact = self.stages.get(name, config, build, inputs, version=version, on_wait=on_wait)
        if waited:
            self._reused(artifact)
        else:
            _record_builder(artifact, self.run_dir)
        return artifact

    def _reused(self, artifact: Artifact) -> None:
        """Remember which run built a stage this run reuses: trackers point at it (its curves live there)."""
        self.reused_stages[artifact.name] = read_builder(artifact)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Append to ``metrics.jsonl`` and mirror to the tracker; a NaN/Inf fails the run."""
        for key, value in metrics.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise TrainingDiverged(f"{key} is {value} at step {step}")
        self.run_dir.log_metrics(dict(metrics), step)
        self.tracker.log(metrics, step)
        self._last_step = step

    def progress(self, stage: str | None = None, step: int | None = None, total: int | None = None) -> None:
        """Report where the run is; shown by the study's progress display."""
        if self.progress_sink is not None:
            self.progress_sink({"run": self.run_dir.hash, "stage": stage, "step": step, "total": total})

    def report(self, value: float, step: int) -> None:
        """Report an intermediate evaluation; under a sweep's pruner this may stop the run.

        A no-op outside sweeps. Raises :class:`RunPruned` when the sweep's pruner says stop; the
        engine records the run as failed with a ``pruned at step N`` reason (resumable later).
        """
        if self.reporter is not None and self.reporter(float(value), int(step)):
            raise RunPruned(int(step), float(value))


BUILDER_FILE = "built_by.json"


def _record_builder(artifact: Artifact, run_dir: RunDir) -> None:
    """Name the run that built ``artifact`` in its folder (rank 0 only; a failure is not the run's)."""
    from harness.io.atomic import atomic_write_json
    from harness.parallel.ranks import is_rank_zero

    if not is_rank_zero():
        return
    try:
        atomic_write_json(artifact.path / BUILDER_FILE, {"study": run_dir.path.parent.name, "run": run_dir.hash})
    except OSError:
        pass


def read_builder(artifact: Artifact) -> dict[str, str]:
    """The run that built ``artifact`` ({} for stages built before builders were recorded)."""
    import json

    try:
        data = json.loads((artifact.path / BUILDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: str(data[k]) for k in ("study", "run") if isinstance(data, dict) and k in data}
