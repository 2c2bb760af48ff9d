"""Running studies: caching, resume after SIGKILL, concurrency, failures, executors, ``harness ls``."""

from __future__ import annotations

import json
import signal
import textwrap
import time
from pathlib import Path

import yaml

from harness.engine.checkpoints import CheckpointStore
from harness.io.atomic import read_jsonl

from .conftest import harness, harness_proc

STUDY = textwrap.dedent(
    """\
    name: eng
    allow_modules: [tests.toy_pipeline]
    pipeline:
      class_path: tests.toy_pipeline.CountingPipeline
      init_args:
        steps: {steps}
        step_sleep_s: {sleep}
        build_log: {build_log}
        build_sleep_s: {build_sleep}
    seeds: [0, 1]
    grid:
      - variant: {{a: {{}}, b: {{scale: 2.0}}}}
    """
)


def make_study(tmp_path: Path, steps=3, sleep=0.0, build_sleep=0.0, extra="") -> Path:
    path = tmp_path / "eng.yaml"
    path.write_text(STUDY.format(steps=steps, sleep=sleep, build_log=tmp_path / "builds.log",
                                 build_sleep=build_sleep) + extra)
    return path


def run_dirs(runs: Path) -> list[Path]:
    return sorted(p for p in (runs / "eng").iterdir() if p.is_dir() and (p / "config.yaml").exists())


def steps_executed(run_dir: Path) -> list[int]:
    return [e["step"] for e in read_jsonl(run_dir / "events.jsonl")]


def test_run_writes_the_store_and_a_rerun_recomputes_nothing(tmp_path):
    study, runs = make_study(tmp_path), tmp_path / "runs"
    first = harness("run", str(study), "--runs-dir", str(runs), "--plain")
    assert first.returncode == 0, first.stderr
    assert "4 runs — 4 computed, 0 already complete, 0 failed" in first.stdout
    assert f"report: {runs / 'report' / 'index.html'}" in first.stdout  # built at the end of `harness run`
    table = (runs / "report" / "table.md").read_text()
    assert table.startswith("| Method | Steps | NFE | n | Total |") and "| b |" in table
    dirs = run_dirs(runs)
    assert len(dirs) == 4
    for d in dirs:
        names = {p.name for p in d.iterdir()}
        assert {"config.yaml", "status.json", "metrics.jsonl", "result.json", "provenance.json", "checkpoints"} <= names
        status = json.loads((d / "status.json").read_text())
        assert status["state"] == "complete" and status["heartbeat"] > 0
        prov = json.loads((d / "provenance.json").read_text())
        assert {"git_commit", "git_dirty", "packages", "host", "started", "ended"} <= set(prov)
        assert prov["packages"]["torch"].startswith("2.")
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        assert cfg["hash"].startswith(d.name) and cfg["study"] == "eng"
        assert [m["step"] for m in read_jsonl(d / "metrics.jsonl")] == [1, 2, 3]
        assert steps_executed(d) == [1, 2, 3]
    results = {yaml.safe_load((d / "config.yaml").read_text())["labels"]["variant"] + str(
        yaml.safe_load((d / "config.yaml").read_text())["seed"]): json.loads((d / "result.json").read_text())
               for d in dirs}
    # table = [0,1,4,...]; total = Σ scale·table[step] + seed over steps 1..3 = scale·(1+4+9) + 3·seed
    assert results["a0"]["metrics"]["total"] == 14 and results["b1"]["metrics"]["total"] == 31
    assert results["a0"]["headline"] == "total"
    assert (tmp_path / "builds.log").read_text().count("\n") == 1  # one shared stage for all four runs

    mtimes = {d: (d / "result.json").stat().st_mtime_ns for d in dirs}
    again = harness("run", str(study), "--runs-dir", str(runs), "--plain", "--no-report")
    assert again.returncode == 0 and "0 computed, 4 already complete" in again.stdout
    assert all((d / "result.json").stat().st_mtime_ns == mtimes[d] for d in dirs)
    assert all(steps_executed(d) == [1, 2, 3] for d in dirs)

    forced = harness("run", str(study), "--runs-dir", str(runs), "--plain", "--no-report", "--force")
    assert "4 computed" in forced.stdout
    assert all(steps_executed(d) == [1, 2, 3] for d in dirs)  # --force starts each run from scratch

    listing = harness("ls", str(runs))
    lines = listing.stdout.strip().splitlines()
    assert lines[0].split() == ["study", "hash", "variant", "seed", "status", "duration_s", "headline"]
    assert len(lines) == 2 + 4
    assert any(line.split()[2:5] == ["a", "0", "complete"] and line.endswith("total=14") for line in lines[2:])


def _newest_checkpoint(run_dir: Path) -> int:
    return max(CheckpointStore(run_dir / "checkpoints").steps(), default=0)


def test_killed_study_resumes_without_recomputing_complete_runs(tmp_path):
    study, runs = make_study(tmp_path, steps=6, sleep=0.25), tmp_path / "runs"
    proc = harness_proc("run", str(study), "--runs-dir", str(runs), "--plain", "--no-report")
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until one run is complete and the next is mid-way
        dirs = run_dirs(runs) if (runs / "eng").exists() else []
        states = [json.loads((d / "status.json").read_text()).get("state") for d in dirs if (d / "status.json").exists()]
        # a step's marker is written before its checkpoint: wait for the checkpoint the resume will use
        busy = [d for d in dirs if _newest_checkpoint(d) >= 3 and d.joinpath("status.json").exists()
                and json.loads((d / "status.json").read_text())["state"] == "running"]
        if states.count("complete") >= 1 and busy:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {d: steps_executed(d) for d in run_dirs(runs)}
    complete = [d for d in before if json.loads((d / "status.json").read_text())["state"] == "complete"]
    killed = [d for d in before if json.loads((d / "status.json").read_text())["state"] == "running"]
    assert complete and len(killed) == 1
    killed_ckpt = _newest_checkpoint(killed[0])

    listing = harness("ls", str(runs))
    assert "stale" in listing.stdout  # marked running, but its process is gone

    rerun = harness("run", str(study), "--runs-dir", str(runs), "--plain", "--no-report")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(complete)} already complete" in rerun.stdout
    for d in complete:
        assert steps_executed(d) == before[d] == [1, 2, 3, 4, 5, 6]
    resumed = killed[0]
    result = json.loads((resumed / "result.json").read_text())
    assert result["resumed_from"] == killed_ckpt >= 3
    assert steps_executed(resumed)[len(before[resumed]):] == list(range(killed_ckpt + 1, 7))
    assert [m["step"] for m in read_jsonl(resumed / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    cfg = yaml.safe_load((resumed / "config.yaml").read_text())
    scale, seed = cfg["pipeline"]["init_args"]["scale"], cfg["seed"]
    assert result["metrics"]["total"] == scale * (1 + 4 + 9 + 16 + 25 + 36) + 6 * seed  # as if never killed


def test_two_concurrent_runs_of_one_study_never_run_a_run_twice(tmp_path):
    study, runs = make_study(tmp_path, steps=3, sleep=0.1, build_sleep=0.5), tmp_path / "runs"
    procs = [harness_proc("run", str(study), "--runs-dir", str(runs), "--plain", "--no-report") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    for d in run_dirs(runs):
        events = read_jsonl(d / "events.jsonl")
        assert [e["step"] for e in events] == [1, 2, 3], d
        assert len({e["pid"] for e in events}) == 1
    assert (tmp_path / "builds.log").read_text().count("\n") == 1
    assert all("4 runs" in out for out, _ in outs)


def test_failed_run_is_recorded_and_the_study_goes_on(tmp_path):
    study, runs = make_study(tmp_path, extra="  - variant: {broken: {fail_at_step: 2}}\n"), tmp_path / "runs"
    proc = harness("run", str(study), "--runs-dir", str(runs), "--plain", "--no-report")
    assert proc.returncode == 1
    assert "6 runs — 4 computed, 0 already complete, 2 failed" in proc.stderr
    assert "failed broken/seed=0: RuntimeError: planned failure at step 2" in proc.stderr
    assert "Traceback" not in proc.stderr
    failed = [d for d in run_dirs(runs) if json.loads((d / "status.json").read_text())["state"] == "failed"]
    assert len(failed) == 2
    status = json.loads((failed[0] / "status.json").read_text())
    assert status["reason"] == "RuntimeError: planned failure at step 2"
    assert "Traceback" in (failed[0] / "error.log").read_text()
    assert not (failed[0] / "result.json").exists()
    listing = harness("ls", str(runs))
    assert "RuntimeError: planned failure at step 2" in listing.stdout


def test_nan_in_training_fails_the_run_naming_step_and_term(tmp_path, write_study):
    path = write_study("name: nan\nallow_modules: [tests.toy_pipeline]\n"
                       "pipeline: {class_path: tests.toy_pipeline.NaNPipeline, init_args: {bad_step: 3}}\n")
    proc = harness("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--plain", "--no-report")
    assert proc.returncode == 1
    assert "loss_dmd is nan at step 3" in proc.stderr
    run = next(p for p in (tmp_path / "runs" / "nan").iterdir() if p.is_dir())
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == [1, 2]


def test_process_pool_executor_runs_the_study(tmp_path):
    study, runs = make_study(tmp_path), tmp_path / "runs"
    proc = harness("run", str(study), "--runs-dir", str(runs), "--plain", "--no-report", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "4 computed" in proc.stdout
    pids = {e["pid"] for d in run_dirs(runs) for e in read_jsonl(d / "events.jsonl")}
    assert len(pids) >= 1 and all(json.loads((d / "result.json").read_text())["metrics"]["steps"] == 3
                                  for d in run_dirs(runs))


def test_plain_progress_shows_runs_done_and_stage(tmp_path):
    study, runs = make_study(tmp_path), tmp_path / "runs"
    proc = harness("run", str(study), "--runs-dir", str(runs))  # not a terminal: plain lines
    assert "[eng] 4 runs, 0 already complete, 4 to run" in proc.stderr
    assert "[4/4] complete" in proc.stderr and "ETA" in proc.stderr
    assert "a/seed=0: train" in proc.stderr


def test_ls_on_missing_folder_is_a_one_line_error(tmp_path):
    proc = harness("ls", str(tmp_path / "nope"))
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'nope'}: no such runs folder"


def test_eta_leaves_out_the_first_run_once_another_has_finished():
    from harness.engine.progress import _Counter

    counter = _Counter()
    counter.total, counter.done = 5, 1
    counter.computed_seconds = [1100.0]  # the first run also trained the shared teacher
    assert counter.eta() == 1100.0 * 4
    counter.done, counter.computed_seconds = 3, [1100.0, 10.0, 20.0]
    assert counter.eta() == 15.0 * 2
