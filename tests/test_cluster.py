"""Cluster executors: a local Ray instance and submitit's local backends run a toy study end to end."""

from __future__ import annotations

import json
import textwrap

import pytest

from harness.engine.driver import run_study
from harness.engine.runner import RunJob
from harness.engine.study import load_study
from harness.errors import MissingDependencyError
from harness.executors.cluster import RayExecutor, SubmititExecutor, run_resources

from .conftest import ROOT

STUDY = textwrap.dedent("""\
    name: cl
    allow_modules: [tests.toy_pipeline]
    pipeline:
      class_path: tests.toy_pipeline.CountingPipeline
      init_args: {steps: 3}
    seeds: [0, 1]
    grid:
      - variant: {a: {}, b: {scale: 2.0}}
    """)


def _study(tmp_path):
    path = tmp_path / "cl.yaml"
    path.write_text(STUDY)
    return load_study(path)


def _check(summary, runs):
    assert summary.exit_code == 0 and summary.counts() == {"complete": 4}
    totals = sorted(json.loads(p.read_text())["metrics"]["total"] for p in (runs / "cl").glob("*/result.json"))
    assert totals == [14.0, 17.0, 28.0, 31.0]  # scale·(1+4+9) + 3·seed


def test_ray_executor_runs_a_smoke_study_on_a_local_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    study, runs = _study(tmp_path), tmp_path / "runs"
    executor = RayExecutor(address=None, cpus=1, num_cpus=2)
    try:
        _check(run_study(study, executor, runs_dir=runs), runs)
        again = run_study(study, executor, runs_dir=runs)
        assert again.counts() == {"cached": 4}
    finally:
        ray.shutdown()


@pytest.mark.parametrize("cluster", ["debug", "local"])
def test_submitit_executor_runs_the_same_study_locally(tmp_path, monkeypatch, cluster):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    study, runs = _study(tmp_path), tmp_path / "runs"
    executor = SubmititExecutor(folder=str(tmp_path / "submitit" / "%j"), cluster=cluster, timeout_min=5)
    _check(run_study(study, executor, runs_dir=runs), runs)
    if cluster == "local":
        assert list((tmp_path / "submitit").glob("*/*_log.out"))  # real job folders, as on SLURM


def test_run_resources_come_from_the_pipeline_config(tmp_path):
    spec = _study(tmp_path).runs[0]
    job = RunJob(spec, "r", "c")
    assert run_resources(job, 1.0, 0.0) == (1.0, 0.0)
    cfg = {**spec.config, "pipeline": {**spec.config["pipeline"],
                                       "init_args": {**spec.config["pipeline"]["init_args"], "resources": {"gpus": 2}}}}
    job = RunJob(type(spec)(spec.study, spec.labels, spec.seed, cfg, spec.hash), "r", "c")
    assert run_resources(job, 4.0, 0.0) == (4.0, 2.0)


def test_missing_ray_is_an_actionable_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without ray looks like to import
    with pytest.raises(MissingDependencyError, match="optional dependency 'ray' is not installed .*the Ray executor.*pip install ray"):
        RayExecutor().submit(None)


def test_submitit_rejects_an_unknown_cluster():
    with pytest.raises(ValueError, match="cluster must be slurm, local or debug, got 'k8s'"):
        SubmititExecutor(cluster="k8s")
