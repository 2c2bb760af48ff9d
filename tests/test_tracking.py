"""Trackers: a real offline W&B run folder read back with wandb's own reader; failures never fail runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from harness.engine.pipeline import RunContext
from harness.io.video import SampleMeta, write_video

from .conftest import cli_env, harness
from .toy_pipeline import CountingPipeline

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


def records(wandb_run: Path) -> list[dict]:
    """Every record of an offline run, through wandb's own reader of the .wandb file."""
    out = subprocess.run([str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(wandb_run)],
                         capture_output=True, text=True, timeout=120, env=cli_env(), check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


def test_wandb_group_job_type_and_tags_come_from_study_row_and_method(tmp_path):
    """The W&B run's group is the study; job_type names the row's variant; tags name study, method, schedule."""
    runs = tmp_path / "runs"
    harness("run", str(study(tmp_path, "{class_path: harness.tracking.WandbTracker}")), "--runs-dir", str(runs),
            "--plain", "--no-report")
    wandb_run = next((runs / "tracked" / "wandb").glob("offline-run-*"))
    run_record = next(r["run"] for r in records(wandb_run) if r.get("type") == "run")
    assert run_record["run_group"] == "tracked" and run_record["job_type"] == "a"
    assert run_record["tags"] == ["study:tracked", "method:countingpipeline"]
    assert run_record["config"]["update"]["pipeline"]["init_args"]["steps"] == 3  # nested, not "pipeline.init_args"


def test_a_run_that_reuses_a_stage_points_at_the_run_that_built_it(tmp_path):
    """The builder's W&B run holds the stage's history; the others name it instead of being empty."""
    path = study(tmp_path, "{class_path: harness.tracking.WandbTracker}")
    path.write_text(path.read_text().replace("- variant: {a: {}}", "- variant: {a: {}, b: {scale: 2.0}}"))
    runs = tmp_path / "runs"
    proc = harness("run", str(path), "--runs-dir", str(runs), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "table: building" in proc.stderr and "table: cache hit" in proc.stderr
    built_by = {}
    for wandb_run in (runs / "tracked" / "wandb").glob("offline-run-*"):
        for r in records(wandb_run):
            if r.get("type") == "summary" and "built_by" in json.dumps(r):
                built_by[wandb_run.name[-16:]] = r["summary"]["update"]
    (reuser, summary), = built_by.items()  # one run found the stage built
    builder = next(p.name for p in (runs / "tracked").iterdir() if p.is_dir() and len(p.name) == 16 and p.name != reuser)
    assert json.dumps(summary).count(f"tracked/{builder}") == 1


class VideoCounting(CountingPipeline):
    """The toy pipeline that also leaves a real mp4 (with its sidecar) in the run's samples folder."""

    def run(self, ctx: RunContext) -> dict:
        rng = np.random.default_rng(ctx.seed)
        frames = rng.integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8)
        write_video(ctx.run_dir.samples_dir / "sample_000.mp4", frames, fps=4,
                    meta=SampleMeta(prompt="a red circle moving left", seed=ctx.seed, method="toy", schedule="1", nfe=2))
        return super().run(ctx)


def test_offline_run_read_back_holds_the_sample_video_and_history(tmp_path):
    path = tmp_path / "video.yaml"
    path.write_text(textwrap.dedent(
        """\
        name: video
        allow_modules: [tests.test_tracking, tests.toy_pipeline]
        pipeline: {class_path: tests.test_tracking.VideoCounting, init_args: {steps: 3}}
        tracker: {class_path: harness.tracking.WandbTracker, init_args: {project: t}}
        """))
    runs = tmp_path / "runs"
    proc = harness("run", str(path), "--runs-dir", str(runs), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stderr
    run_dir = next(p for p in (runs / "video").iterdir() if (p / "result.json").exists())
    (wandb_run,) = (runs / "video" / "wandb").glob(f"offline-run-*-{run_dir.name}")
    recs = records(wandb_run)
    history = [r["history"] for r in recs if r.get("type") == "history"]
    assert len(history) >= 3  # the training steps
    summary = {}
    for r in recs:
        if r.get("type") == "summary":
            summary.update(r["summary"]["update"])
    assert summary["samples/sample_000._type"] == "video-file"
    assert summary["samples/sample_000.caption"] == "a red circle moving left"  # the sidecar's prompt
    # the very mp4 of the run folder, byte for byte
    logged = wandb_run / "files" / summary["samples/sample_000.path"]
    assert logged.read_bytes() == (run_dir / "samples" / "sample_000.mp4").read_bytes()


def test_report_mirror_is_one_run_replaced_in_place_with_its_table_and_figures(tmp_path):
    import pandas as pd
    from PIL import Image

    from harness.tracking import WandbTracker, mirror_report

    figure = tmp_path / "frontier.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(figure)
    frame = pd.DataFrame({"Method": ["DMD", "+ASD"], "Total": [70.0, 72.5]})
    folder = tmp_path / "study"
    for _ in range(2):  # two `harness report`s
        assert mirror_report(WandbTracker(project="t"), "abl", folder, {"main_table": frame}, [figure]) == []
    (wandb_run,) = (folder / "wandb").glob("offline-run-*-report-abl")  # one run, not one per report
    (table_file,) = (wandb_run / "files" / "media" / "table").glob("main_table_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["Method", "Total"] and table["data"] == [["DMD", 70.0], ["+ASD", 72.5]]
    assert list((wandb_run / "files" / "media" / "images" / "figures").glob("frontier_*.png"))
    run_record = next(r["run"] for r in records(wandb_run) if r.get("type") == "run")
    assert run_record["job_type"] == "report" and "study:abl" in run_record["tags"]


def test_a_failing_tracker_never_fails_a_run(tmp_path):
    runs = tmp_path / "runs"
    proc = harness("run", str(study(tmp_path, "{class_path: tests.toy_pipeline.BrokenTracker}")),
                   "--runs-dir", str(runs), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "1 computed" in proc.stdout
    assert "tracker BrokenTracker.start failed: ConnectionError: tracker service unreachable" in proc.stderr
    result = next((runs / "tracked").glob("*/result.json"))
    assert json.loads(result.read_text())["metrics"]["total"] == 14
