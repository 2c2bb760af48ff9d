"""Trackers: a real offline W&B run folder read back with wandb's own reader; failures never fail runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import cli_env, harness

SECRET = "wandb-secret-key-0123456789abcdef0123456789abcdef"


def study(tmp_path: Path, tracker: str) -> Path:
    path = tmp_path / "tracked.yaml"
    path.write_text(textwrap.dedent(
        f"""\
        name: tracked
        allow_modules: [tests.toy_pipeline]
        pipeline:
          class_path: tests.toy_pipeline.CountingPipeline
          init_args: {{steps: 3}}
        grid:
          - variant: {{a: {{}}}}
        tracker: {tracker}
        """))
    return path


def test_offline_wandb_run_is_read_back_with_wandbs_reader(tmp_path):
    runs = tmp_path / "runs"
    proc = harness("run", str(study(tmp_path, "{class_path: harness.tracking.WandbTracker, init_args: {project: t}}")),
                   "--runs-dir", str(runs), "--plain", "--no-report", env=cli_env(WANDB_API_KEY=SECRET, WANDB_MODE="offline"))
    assert proc.returncode == 0, proc.stderr
    run_dir = next(p for p in (runs / "tracked").iterdir() if p.is_dir() and (p / "result.json").exists())
    wandb_runs = list((runs / "tracked" / "wandb").glob(f"offline-run-*-{run_dir.name}"))
    assert len(wandb_runs) == 1
    reader = subprocess.run([str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--summary", "--json",
                             str(wandb_runs[0])], capture_output=True, text=True, timeout=120, env=cli_env(), check=False)
    assert reader.returncode == 0, reader.stderr
    record = json.loads(reader.stdout)
    assert record["run_id"] == run_dir.name and record["project"] == "t" and record["state"] == "finished"
    assert record["summary"]["total"] == 14 and record["summary"]["loss"] == 1 / 3 and record["step"] == 3
    assert record["config"]["seed"] == 0 and record["config"]["labels"] == {"variant": "a"}
    assert record["config"]["pipeline"]["init_args"]["steps"] == 3
    # no secret and no absolute path of this machine anywhere under the runs folder
    for path in runs.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert SECRET.encode() not in data, path
            assert str(tmp_path).encode() not in data, path


def test_wandb_group_and_job_type_come_from_study_and_method(tmp_path):
    """The W&B run's group is the study; job_type names the pipeline's method (here the pipeline)."""
    runs = tmp_path / "runs"
    harness("run", str(study(tmp_path, "{class_path: harness.tracking.WandbTracker}")), "--runs-dir", str(runs),
            "--plain", "--no-report")
    wandb_run = next((runs / "tracked" / "wandb").glob("offline-run-*"))
    records = subprocess.run([str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(wandb_run)],
                             capture_output=True, text=True, timeout=120, env=cli_env(), check=True).stdout
    run_record = next(json.loads(line) for line in records.splitlines() if '"type":"run"' in line.replace(" ", ""))
    text = json.dumps(run_record)
    assert '"tracked"' in text and '"countingpipeline"' in text


def test_a_failing_tracker_never_fails_a_run(tmp_path):
    runs = tmp_path / "runs"
    proc = harness("run", str(study(tmp_path, "{class_path: tests.toy_pipeline.BrokenTracker}")),
                   "--runs-dir", str(runs), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "1 computed" in proc.stdout
    assert "tracker BrokenTracker.start failed: ConnectionError: tracker service unreachable" in proc.stderr
    result = next((runs / "tracked").glob("*/result.json"))
    assert json.loads(result.read_text())["metrics"]["total"] == 14
