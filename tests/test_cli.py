"""The ``harness`` command line: usage, version, several files, print-config round trips, reruns from a run's
config.yaml, one-line errors, help text, pending runs, progress words and the closing table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from harness.cli import main
from harness.commands.study_file import load

from .conftest import ROOT, TOY_STUDY, cli_env, harness

STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


def test_bare_harness_prints_usage_and_version_is_known(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: harness") and "validate" in out and "gc" in out
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip().startswith("harness ")


def test_validate_takes_several_files_and_names_the_bad_one(tmp_path, capsys):
    missing = tmp_path / "none.yaml"
    assert main(["validate", str(TOY_STUDY), str(missing), str(TOY_STUDY)]) == 2
    out, err = capsys.readouterr()
    assert out.count("ok: ") == 2
    assert err.strip() == f"error: {missing}: file not found"


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_print_config_validates_back_to_the_same_runs(path, tmp_path, capsys):
    preset = "smoke" if "smoke" in (yaml.safe_load(path.read_text()).get("presets") or {}) else None
    args = ["validate", str(path), "--print_config"] + (["--preset", preset] if preset else [])
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "ok:" not in printed  # --print-config prints the study and nothing else
    copy = tmp_path / "printed.yaml"
    copy.write_text(printed)
    _, again = load(copy)
    _, original = load(path, preset)
    assert [r.hash for r in again.runs] == [r.hash for r in original.runs]
    assert main(["validate", str(copy)]) == 0


def test_a_run_config_yaml_reruns_that_run_and_keeps_the_study_manifest(tmp_path):
    runs = tmp_path / "runs"
    assert harness("run", str(TOY_STUDY), "--preset", "smoke", "--runs-dir", str(runs), "--plain",
                   "--no-report").returncode == 0
    manifest = (runs / "toy" / "study.json").read_text()
    run_dir = next(p for p in (runs / "toy").iterdir() if (p / "config.yaml").exists())
    proc = harness("run", str(run_dir / "config.yaml"), "--runs-dir", str(runs), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "1 runs — 0 computed, 1 already complete" in proc.stdout  # the same hash: nothing to do
    assert json.loads((runs / "toy" / "study.json").read_text())["runs"] == json.loads(manifest)["runs"]
    for name in ("result.json", "status.json"):  # lost: the same file computes it again, under the same hash
        (run_dir / name).unlink()
    proc = harness("run", str(run_dir / "config.yaml"), "--runs-dir", str(runs), "--plain", "--no-report")
    assert proc.returncode == 0 and "1 computed" in proc.stdout, proc.stderr
    assert (run_dir / "result.json").exists()


def test_errors_are_one_line_with_a_non_zero_exit(tmp_path):
    proc = harness("run", str(TOY_STUDY), "--workers", "0", "--runs-dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr == "error: --workers must be at least 1, got 0\n"
    proc = harness("run")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error:")
    proc = harness("gc", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1


def test_help_names_types_as_a_user_writes_them_and_eval_uses_dashes(capsys):
    for command in ("run", "eval", "gc", "sweep", "ls"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "<class" not in text and "type: path" in text, command
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    assert "--output-dir" in text and "--timeout-s" in text and "--output_dir" not in text


def test_the_old_underscore_spelling_still_reads(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none"), "--backend", "weight-free", "--output_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none'}: samples folder not found"


def test_no_broken_pipe_traceback_under_head():
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "validate", str(TOY_STUDY), "--print-config"],
                            cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_run_says_cache_hit_or_building_resume_and_ends_with_a_table(tmp_path):
    runs = tmp_path / "runs"
    proc = harness("run", str(TOY_STUDY), "--preset", "smoke", "--runs-dir", str(runs), "--plain", "--no-report",
                   "--set", "pipeline.init_args.fail_at_step=2")
    assert proc.returncode == 1
    assert "table: building" in proc.stderr and "table: cache hit" in proc.stderr and "(cache)" not in proc.stderr
    proc = harness("run", str(TOY_STUDY), "--preset", "smoke", "--runs-dir", str(runs), "--plain", "--no-report",
                   "--set", "pipeline.init_args.fail_at_step=2")
    assert "resume base/small/seed=0" in proc.stderr and "(attempt 2, was failed)" in proc.stderr
    assert "] start " not in proc.stderr
    proc = harness("run", str(TOY_STUDY), "--preset", "smoke", "--runs-dir", str(runs), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("row "))
    assert "headline" in lines[head] and lines[head + 2].startswith("base/small ")
    assert sum(line.split()[1] == "1/1" for line in lines[head + 2: head + 6]) == 4


def test_ls_shows_pending_runs(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert harness("run", str(TOY_STUDY), "--preset", "smoke", "--runs-dir", str(runs), "--plain",
                   "--no-report").returncode == 0
    gone = next(p for p in (runs / "toy").iterdir() if (p / "config.yaml").exists())
    shutil.rmtree(gone)
    assert main(["ls", str(runs)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("toy ")]
    assert len(rows) == 4
    assert [r.split()[4] for r in rows if gone.name in r] == ["pending"]


def test_live_display_shows_no_count_or_bar_for_a_stage_without_a_total():
    import io

    from rich.console import Console

    from harness.engine.progress import RichProgress

    display = RichProgress()
    display.progress.stop()
    display.begin("s", 2, 0)
    display.event({"run": "r", "name": "asd/1/seed=0", "event": "start", "attempt": 2, "previous": "failed"})

    def shown() -> str:
        console = Console(record=True, width=140, file=io.StringIO())
        console.print(display.progress.get_renderable())
        return console.export_text()

    assert "asd/1/seed=0: resume (attempt 2, was failed)" in shown() and "0/?" not in shown()
    display.event({"run": "r", "stage": "distill asd", "step": 3, "total": 3})
    assert "3/3" in shown()
    display.event({"run": "r", "stage": "evaluate"})  # a new stage without a total: no stale 3/3, no 0/?
    text = shown()
    assert "evaluate" in text and "3/3" not in text and "0/?" not in text and "━" not in text.split("evaluate")[1]
