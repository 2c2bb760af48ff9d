"""Failure stays with the run: garbled store files, corrupt checkpoints, a full disk, a bad runs folder.

Each case drives the CLI in-process (``harness.cli.main``) on the toy pipeline and checks the exit code,
that any error is one ``error:`` line without a traceback, and that nothing already written is lost.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import textwrap
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.engine.checkpoints import CheckpointStore
from harness.engine.pipeline import Pipeline, RunContext
from harness.engine.stages import StageCache
from harness.engine.store import RunDir
from harness.errors import CheckpointError
from harness.io.atomic import read_jsonl

STUDY = textwrap.dedent(
    """\
    name: fc
    allow_modules: [tests.toy_pipeline, tests.test_failure_containment]
    pipeline:
      class_path: tests.toy_pipeline.CountingPipeline
      init_args: {{steps: 2, build_log: {log}}}
    seeds: [0, 1]
    """
)

GARBAGE = {
    "garbage": b"{not json",
    "random bytes": bytes(range(256)),  # invalid UTF-8
    "a list": b"[1, 2, 3]",
}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The stderr of a refused command: exactly one ``error:`` line and no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def study_file(tmp_path: Path, text: str = STUDY) -> Path:
    path = tmp_path / "fc.yaml"
    path.write_text(text.format(log=tmp_path / "builds.log"))
    return path


def run_folders(runs: Path, study: str = "fc") -> list[Path]:
    return sorted(p for p in (runs / study).iterdir() if (p / "config.yaml").exists())


@pytest.fixture
def done(tmp_path, capsys):
    """A complete two-run study and its runs folder."""
    study, runs = study_file(tmp_path), tmp_path / "runs"
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 0, err
    return study, runs


# -- 1. unreadable status.json / result.json / study.json ------------------------------------------


@pytest.mark.parametrize("name", ["status.json", "result.json"])
@pytest.mark.parametrize("kind", list(GARBAGE))
def test_unreadable_run_file_is_corrupt_in_ls_and_report_and_recomputed_by_run(done, capsys, name, kind):
    study, runs = done
    bad, good = run_folders(runs)
    good_result = (good / "result.json").read_bytes()
    total = json.loads((bad / "result.json").read_text())["metrics"]["total"]
    (bad / name).write_bytes(GARBAGE[kind])

    code, out, err = cli(capsys, "ls", runs)
    assert code == 0 and "Traceback" not in err
    row = next(line for line in out.splitlines() if line.startswith("fc") and bad.name in line)
    assert " corrupt " in row
    assert f"corrupt {bad.name} " in out and f"{name}: " in out  # the line names the file

    code, out, err = cli(capsys, "report", runs)
    assert code == 0 and "Traceback" not in err
    assert any(bad.name in line and f"corrupt: {name}" in line and "left out" in line for line in err.splitlines())
    assert "1 of 2 runs complete" in out

    code, out, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 0, err
    assert "2 runs — 1 computed, 1 already complete, 0 failed" in out
    assert (bad / f"{name}.corrupt").read_bytes() == GARBAGE[kind]  # kept aside, not lost
    assert json.loads((bad / "status.json").read_text())["state"] == "complete"
    assert json.loads((bad / "result.json").read_text())["metrics"]["total"] == total
    assert (good / "result.json").read_bytes() == good_result  # the sound run was not touched


def test_status_with_an_unknown_state_is_corrupt_too(done, capsys):
    _, runs = done
    bad = run_folders(runs)[0]
    (bad / "status.json").write_text('{"state": 5}')
    assert RunDir(bad).read_status()["state"] == "corrupt" and not RunDir(bad).is_complete()
    code, out, _ = cli(capsys, "ls", runs)
    assert code == 0 and "unknown state 5" in out


def test_unreadable_study_manifest_is_a_warning_and_is_set_aside_by_the_next_run(done, capsys):
    study, runs = done
    (runs / "fc" / "study.json").write_bytes(GARBAGE["random bytes"])
    code, out, err = cli(capsys, "ls", runs)
    assert code == 0 and out.count("complete") == 2
    code, out, err = cli(capsys, "report", runs)
    assert code == 0 and "Traceback" not in err
    assert "study.json: not UTF-8 text" in err and "2 of 2 runs complete" in out
    code, out, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 0 and "2 already complete" in out
    assert (runs / "fc" / "study.json.corrupt").read_bytes() == GARBAGE["random bytes"]
    assert json.loads((runs / "fc" / "study.json").read_text())["study"] == "fc"


def test_garbled_metrics_of_a_resumed_run_are_set_aside_not_fatal(tmp_path):
    run = RunDir(tmp_path)
    run.metrics_path.write_bytes(b'{"step": 1}\n\xff\xfe\n{"step": 2}\n')
    run.truncate_metrics_after(1)
    assert not run.metrics_path.exists() and (tmp_path / "metrics.jsonl.corrupt").exists()


# -- 2. corrupt checkpoints ------------------------------------------------------------------------


def test_latest_falls_back_past_corrupt_checkpoints_and_sets_them_aside(tmp_path, caplog):
    store = CheckpointStore(tmp_path, keep=5)
    for step in (1, 2, 3, 4):
        store.save(step, {"w": torch.full((2,), float(step))})
    store.path(4).write_bytes(b"garbage")
    torch.save({"step": 3, "state": {"obj": Path("x")}}, store.path(3))  # a pickled object
    with caplog.at_level(logging.WARNING, logger="harness.engine.checkpoints"):
        step, state = store.latest()
    assert step == 2 and torch.equal(state["w"], torch.full((2,), 2.0))
    assert store.steps() == [1, 2]
    assert (tmp_path / "step-00000004.pt.corrupt").read_bytes() == b"garbage"
    assert (tmp_path / "step-00000003.pt.corrupt").exists()
    warnings = [r.getMessage() for r in caplog.records]
    assert any("step-00000004.pt" in w and "step-00000004.pt.corrupt" in w for w in warnings)
    assert any("step-00000003.pt" in w for w in warnings)
    assert store.newest_valid_step() == 2


def test_pickle_payload_message_does_not_advise_weights_only_false(tmp_path):
    store = CheckpointStore(tmp_path)
    torch.save({"step": 1, "state": {"obj": Path("x")}}, store.path(1))
    with pytest.raises(CheckpointError) as info:
        store.load(1)
    message = str(info.value)
    assert "not a harness checkpoint (refused to unpickle arbitrary objects)" in message
    assert "weights_only" not in message and "\n" not in message


def test_all_checkpoints_corrupt_means_a_fresh_start(tmp_path):
    store = CheckpointStore(tmp_path)
    store.path(1).write_bytes(b"x")
    assert store.latest() is None and store.steps() == []


class StagedCounting(Pipeline):
    """A run whose shared stage trains with checkpoints, as the distill stage does.

    Args:
        steps: stage training steps.
        fail_at_step: the stage build raises at this step (``None`` never).
    """

    headline = "total"

    def __init__(self, steps: int = 4, fail_at_step: int | None = None):
        self.steps, self.fail_at_step = steps, fail_at_step

    def _build(self, folder: Path) -> None:
        store = CheckpointStore(folder / "checkpoints", keep=10)
        start, total = 0, 0.0
        found = store.latest()
        if found is not None:
            start, state = found
            if "total" not in state:
                raise CheckpointError(f"{store.path(start).name} does not match this stage: no 'total'")
            total = float(state["total"])
        for step in range(start + 1, self.steps + 1):
            if step == self.fail_at_step:
                raise RuntimeError(f"planned failure at step {step}")
            total += step
            with open(folder / "steps.log", "a") as fh:
                fh.write(f"{step}\n")
            store.save(step, {"total": torch.tensor(total)})
        (folder / "total.json").write_text(json.dumps(total))

    def run(self, ctx: RunContext) -> dict:
        art = ctx.stage("counter", {"steps": self.steps}, self._build)
        return {"total": json.loads((art.path / "total.json").read_text())}


STAGED = textwrap.dedent(
    """\
    name: st
    allow_modules: [tests.test_failure_containment]
    pipeline:
      class_path: tests.test_failure_containment.StagedCounting
      init_args: {{steps: 4}}
    seeds: [0]
    """
)


def building_folder(runs: Path) -> Path:
    (folder,) = (runs / ".stages" / "counter").glob(".*.building")
    return folder


def test_stage_build_resumes_from_the_newest_valid_checkpoint(tmp_path, capsys):
    study, runs = study_file(tmp_path, STAGED), tmp_path / "runs"
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report",
                       "--set", "pipeline.init_args.fail_at_step=4")
    assert code == 1 and "planned failure at step 4" in err
    build = building_folder(runs)
    (build / "checkpoints" / "step-00000003.pt").write_bytes(bytes(range(256)))
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 0, err
    final = build.parent / build.name.removeprefix(".").removesuffix(".building")
    assert (final / "steps.log").read_text().split() == ["1", "2", "3", "3", "4"]  # resumed after step 2
    assert (final / "checkpoints" / "step-00000003.pt.corrupt").read_bytes() == bytes(range(256))
    (run,) = [d for d in run_folders(runs, "st") if (d / "result.json").exists()]
    assert json.loads((run / "result.json").read_text())["metrics"]["total"] == 10.0


def test_unusable_stage_checkpoint_names_the_build_folder_and_force_rebuilds_it(tmp_path, capsys):
    study, runs = study_file(tmp_path, STAGED), tmp_path / "runs"
    cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report", "--set", "pipeline.init_args.fail_at_step=3")
    build = building_folder(runs)
    CheckpointStore(build / "checkpoints").save(2, {"other": torch.zeros(1)})  # loads, but is not this stage's
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 1 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "does not match" in line]
    assert str(build) in line and "--force" in line and "delete it" in line
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report", "--force")
    assert code == 0, err
    assert not build.exists()
    (run,) = [d for d in run_folders(runs, "st") if (d / "result.json").exists()]
    assert json.loads((run / "result.json").read_text())["metrics"]["total"] == 10.0


def test_rebuild_partial_never_touches_a_complete_stage(tmp_path):
    built = StageCache(tmp_path).get("t", {"a": 1}, lambda d: (d / "f").write_text("first"))
    again = StageCache(tmp_path, rebuild_partial=True).get("t", {"a": 1}, lambda d: (d / "f").write_text("second"))
    assert again.path == built.path and (built.path / "f").read_text() == "first"


# -- 3. the failure handler on a full or read-only disk --------------------------------------------


def refuse(err: int, original=None, when=lambda *a, **k: True):
    """A write that raises ``OSError(err)`` when ``when(*args)`` holds, else calls ``original``."""

    def write(*args, **kwargs):
        if original is None or when(*args, **kwargs):
            raise OSError(err, os.strerror(err))
        return original(*args, **kwargs)

    return write




def test_full_disk_writing_error_log_marks_the_run_failed_and_ends_the_study(tmp_path, capsys, monkeypatch):
    study, runs = study_file(tmp_path), tmp_path / "runs"
    text = study.read_text().replace("steps: 2,", "steps: 2, fail_at_step: 2,")
    study.write_text(text)
    monkeypatch.setattr("harness.engine.runner.atomic_write_text", refuse(errno.ENOSPC))
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 2
    line = one_error_line(err)
    assert "No space left on device" in line and str(runs / "fc") in line and "marked failed" in line
    (first,) = run_folders(runs)  # the study stopped: the second run never started
    status = json.loads((first / "status.json").read_text())
    assert status["state"] == "failed" and "planned failure at step 2" in status["reason"]
    assert not (first / "result.json").exists()


def test_full_disk_at_the_complete_status_leaves_no_result_and_the_run_failed(tmp_path, capsys, monkeypatch):
    study, runs = study_file(tmp_path), tmp_path / "runs"
    monkeypatch.setattr(RunDir, "write_status", refuse(errno.ENOSPC, RunDir.write_status,
                                                       lambda self, state, **kw: state == "complete"))
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 2 and "No space left on device" in one_error_line(err)
    (first,) = run_folders(runs)
    assert json.loads((first / "status.json").read_text())["state"] == "failed"
    assert not (first / "result.json").exists()
    monkeypatch.undo()
    code, out, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 0 and "2 computed" in out


def test_full_disk_everywhere_never_leaves_running_with_a_result(tmp_path, capsys, monkeypatch):
    study, runs = study_file(tmp_path), tmp_path / "runs"
    monkeypatch.setattr(RunDir, "write_status", refuse(errno.ENOSPC, RunDir.write_status,
                                                       lambda self, state, **kw: state != "running"))
    monkeypatch.setattr("harness.engine.runner.atomic_write_text", refuse(errno.ENOSPC))
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 2 and "could not be marked failed" in one_error_line(err)
    (first,) = run_folders(runs)
    assert json.loads((first / "status.json").read_text())["state"] == "running"  # stale: its lock is free
    assert not (first / "result.json").exists()
    monkeypatch.undo()
    code, out, err = cli(capsys, "ls", runs)
    assert " stale " in out
    code, out, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 0 and "2 computed" in out


def test_read_only_error_log_fails_the_run_only(tmp_path, capsys, monkeypatch):
    study, runs = study_file(tmp_path), tmp_path / "runs"
    study.write_text(study.read_text().replace("steps: 2,", "steps: 2, fail_at_step: 1,"))
    monkeypatch.setattr("harness.engine.runner.atomic_write_text", refuse(errno.EROFS))
    code, _, err = cli(capsys, "run", study, "--runs-dir", runs, "--plain", "--no-report")
    assert code == 1 and "Traceback" not in err and "2 failed" in err  # no disk-full stop: both runs tried
    assert all(json.loads((d / "status.json").read_text())["state"] == "failed" for d in run_folders(runs))


# -- 4. a runs or cache folder that is a file, read-only, or not a path ----------------------------


def _sweep_file(tmp_path: Path, fail: bool = False) -> Path:
    path = tmp_path / "sw.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: swfc
        allow_modules: [tests.toy_pipeline]
        pipeline:
          class_path: tests.toy_pipeline.CountingPipeline
          init_args: {{steps: 2{', fail_at_step: 1' if fail else ''}}}
        sweep:
          objectives: {{total: maximize}}
          space:
            scale: {{low: 0.5, high: 4.0}}
          sampler: {{class_path: harness.sweep.TPE, init_args: {{seed: 3, n_startup_trials: 4}}}}
        """))
    return path


def _commands(tmp_path: Path, option: str, value: Path) -> list[list]:
    study, sweep = study_file(tmp_path), _sweep_file(tmp_path)
    folders = [option, value] if option == "--runs-dir" else ["--runs-dir", tmp_path / "runs", option, value]
    return [["run", study, "--plain", *folders], ["sweep", sweep, "--n-trials", "1", *folders],
            ["worker", sweep, "--n-trials", "1", *folders]]


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("option", ["--runs-dir", "--cache-dir"])
def test_a_file_as_runs_or_cache_folder_is_one_line(tmp_path, capsys, option):
    target = tmp_path / "file"
    target.write_text("keep me")
    for argv in _commands(tmp_path, option, target):
        before = _snapshot(tmp_path)
        code, _, err = cli(capsys, *argv)
        assert code == 2, argv
        assert f"{option} {target}: {target} is a file, not a folder" in one_error_line(err)
        assert _snapshot(tmp_path) == before  # nothing written, the file untouched


@pytest.mark.parametrize("simulated", [False, True])
def test_a_read_only_runs_folder_is_one_line(tmp_path, capsys, monkeypatch, simulated):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if simulated:  # what os.access says for a non-root user, so the check is tested under root too
            access = os.access
            monkeypatch.setattr("harness.engine.store.os.access", lambda p, mode: Path(p) != ro and access(p, mode))
        elif os.access(ro, os.W_OK):
            pytest.skip("running as root: a 0555 folder is writable")
        for target in (ro, ro / "runs"):
            for argv in _commands(tmp_path, "--runs-dir", target):
                code, _, err = cli(capsys, *argv)
                assert code == 2 and "is not writable" in one_error_line(err), argv
                assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_a_runs_folder_under_a_file_and_a_nul_byte_are_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = cli(capsys, "run", study_file(tmp_path), "--runs-dir", tmp_path / "file" / "runs")
    assert code == 2 and "is a file, not a folder" in one_error_line(err)
    code, _, err = cli(capsys, "run", study_file(tmp_path), "--runs-dir", f"{tmp_path}/ru\0ns")
    assert code == 2 and "NUL" in one_error_line(err)


@pytest.mark.parametrize("command", ["ls", "report"])
def test_ls_and_report_on_a_missing_or_file_runs_folder_are_one_line(tmp_path, capsys, command):
    (tmp_path / "file").write_text("x")
    code, _, err = cli(capsys, command, tmp_path / "nope")
    assert code == 2 and "no such runs folder" in one_error_line(err)
    code, _, err = cli(capsys, command, tmp_path / "file")
    assert code == 2 and "is a file, not a runs folder" in one_error_line(err)


# -- 5. a sweep with no complete trial -------------------------------------------------------------


def test_sweep_whose_every_trial_failed_exits_1(tmp_path, capsys):
    code, _, err = cli(capsys, "sweep", _sweep_file(tmp_path, fail=True), "--runs-dir", tmp_path / "runs",
                         "--n-trials", "2", "--no-report")
    assert code == 1  # (Optuna itself logs each failed trial's traceback as a warning)
    assert "sweep swfc: no trial complete (2 trials, none finished)" in err
    runs = run_folders(tmp_path / "runs", "swfc")
    assert len(runs) == 2 and all(read_jsonl(d / "metrics.jsonl") == [] for d in runs)
