"""Sweeps on the journal storage: workers, a killed worker, pruning, optuna.load_study, the report, bad input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from harness.commands.sweep import sweep, sweep_parser, worker
from harness.engine.pipeline import RunContext
from harness.errors import ConfigError
from harness.sweep.report import sweep_report

from .conftest import ROOT, cli_env
from .toy_pipeline import CountingPipeline


class SweptCounting(CountingPipeline):
    """The toy pipeline, declaring its metrics and reporting its running total to the pruner."""

    produces = ("total", "steps")

    def run(self, ctx: RunContext) -> dict:
        log = ctx.log

        def log_and_report(metrics, step):
            log(metrics, step)
            ctx.report(metrics["total"], step)

        ctx.log = log_and_report
        return super().run(ctx)


STUDY = """\
name: sw
allow_modules: [tests.test_sweep]
pipeline:
  class_path: tests.test_sweep.SweptCounting
  init_args: {{steps: {steps}, step_sleep_s: {sleep}}}
sweep:
  objectives: {{total: maximize}}
  space:
    scale: {{low: 0.5, high: 4.0}}
  sampler: {{class_path: harness.sweep.TPE, init_args: {{seed: 3, n_startup_trials: 4}}}}
  baselines: [{{scale: 1.0}}]
  heartbeat_s: 1
  grace_s: 4
{extra}"""


def write(tmp_path: Path, steps: int = 3, sleep: float = 0.0, extra: str = "", name: str = "sw.yaml") -> Path:
    path = tmp_path / name
    path.write_text(STUDY.format(steps=steps, sleep=sleep, extra=textwrap.indent(extra, "  ")))
    return path


def journal(runs: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(runs / "sw" / "optuna.log")))
    return optuna.load_study(study_name="sw", storage=storage)


def worker_proc(study: Path, runs: Path, n_trials: int, storage: str | None = None) -> subprocess.Popen:
    code = ("import sys; from pathlib import Path; from harness.commands.sweep import worker; "
            f"sys.exit(worker(Path({str(study)!r}), storage={storage!r}, runs_dir=Path({str(runs)!r}), n_trials={n_trials}))")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sweep_runs_trials_as_store_runs_and_optuna_reads_the_study(tmp_path):
    study, runs = write(tmp_path), tmp_path / "runs"
    assert sweep(study, runs_dir=runs, n_trials=4) == 0
    loaded = journal(runs)  # Optuna's own API reads what the harness wrote
    trials = loaded.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert trials[0].params == {"scale": 1.0} and trials[0].user_attrs["harness.baseline"] is True
    for t in trials:  # value = Σ scale·[1, 4, 9] + seed 0 over 3 steps
        assert t.value == pytest.approx(14 * t.params["scale"], rel=1e-6)
        (run_hash,) = t.user_attrs["harness.runs"]
        result = json.loads((runs / "sw" / run_hash / "result.json").read_text())
        assert result["metrics"]["total"] == pytest.approx(t.value)
    manifest = json.loads((runs / "sw" / "sweep.json").read_text())
    assert manifest["storage"] == "optuna.log" and manifest["objectives"] == {"total": "maximize"}
    files = sweep_report(runs, "sw")
    assert {"trials", "best_trials", "history", "parallel"} <= set(files)
    assert all(p.stat().st_size > 0 and p.parent == runs / "report" / "sweep-sw" for p in files.values())
    best = max(trials, key=lambda t: t.value)
    assert f"| #{best.number} | {best.value:.6g} |" in files["best_trials"].read_text()
    assert files["history"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_enqueues_baselines_once_and_reuses_computed_runs(tmp_path):
    study, runs = write(tmp_path), tmp_path / "runs"
    assert sweep(study, runs_dir=runs, n_trials=1, report=False) == 0
    run_hash = journal(runs).trials[0].user_attrs["harness.runs"][0]
    mtime = (runs / "sw" / run_hash / "result.json").stat().st_mtime_ns
    journal(runs).enqueue_trial({"scale": 1.0})  # the same point again: its run is read back, not recomputed
    assert sweep(study, runs_dir=runs, n_trials=2, report=False) == 0
    trials = journal(runs).trials
    assert sum(t.user_attrs.get("harness.baseline", False) for t in trials) == 1
    assert trials[1].params == {"scale": 1.0} and trials[1].user_attrs["harness.runs"] == [run_hash]
    assert (runs / "sw" / run_hash / "result.json").stat().st_mtime_ns == mtime
    assert len((runs / "sw" / run_hash / "events.jsonl").read_text().splitlines()) == 3


def test_two_worker_processes_on_one_journal_neither_duplicate_nor_lose_trials(tmp_path):
    study, runs = write(tmp_path, sleep=0.05), tmp_path / "runs"
    assert sweep(study, runs_dir=runs, n_trials=1, report=False) == 0  # creates the study, enqueues the baseline
    procs = [worker_proc(study, runs, 4) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    trials = journal(runs).trials
    assert len(trials) == 9 and all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(9))
    workers = [t.user_attrs["harness.worker"] for t in trials[1:]]
    assert len(set(workers)) == 2 and all(workers.count(w) == 4 for w in set(workers))
    hashes = [t.user_attrs["harness.runs"][0] for t in trials]
    assert len(set(hashes)) == 9  # nine distinct points, each computed exactly once
    for h in hashes:
        steps = [json.loads(line)["step"] for line in (runs / "sw" / h / "events.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3]


def test_a_killed_worker_fails_its_trial_and_its_point_is_retried(tmp_path):
    study, runs = write(tmp_path, steps=8, sleep=0.4), tmp_path / "runs"
    assert sweep(study, runs_dir=runs, n_trials=0, report=False) == 0  # create + enqueue the baseline only
    victim = worker_proc(study, runs, 1)
    deadline = time.time() + 120
    events = None
    while time.time() < deadline:
        found = list((runs / "sw").glob("*/events.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            events = found[0]
            break
        time.sleep(0.1)
    assert events is not None, victim.stderr.read() if victim.poll() is not None else "no progress"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert journal(runs).trials[0].state == TrialState.RUNNING
    assert worker(study, runs_dir=runs, n_trials=1) == 0
    dead, retry = journal(runs).trials
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs["harness.failure"]
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params == {"scale": 1.0}
    assert retry.user_attrs["harness.retry_of"] == 0
    assert retry.user_attrs["harness.runs"] == dead.user_attrs["harness.runs"]
    result = json.loads((events.parent / "result.json").read_text())
    assert result["resumed_from"] >= 1 and result["metrics"]["total"] == pytest.approx(retry.value)
    assert retry.value == pytest.approx(1 + 4 + 9 + 16 + 25 + 36 + 49 + 0)  # table[8 % 8] = 0


def test_pruned_trials_are_recorded_in_optuna_and_in_the_store(tmp_path):
    extra = "pruner: {class_path: harness.sweep.Threshold, init_args: {lower: 8.0, n_warmup_steps: 3}}\n"
    study, runs = write(tmp_path, steps=4, extra=extra), tmp_path / "runs"
    assert sweep(study, runs_dir=runs, n_trials=0, report=False) == 0
    journal(runs).enqueue_trial({"scale": 0.5})  # totals 0.5, 2.5, 7: below 8 at step 3 → pruned
    assert sweep(study, runs_dir=runs, n_trials=2, report=False) == 0
    base, low = journal(runs).trials
    assert base.state == TrialState.COMPLETE and low.state == TrialState.PRUNED
    status = json.loads((runs / "sw" / low.user_attrs["harness.runs"][0] / "status.json").read_text())
    assert status["state"] == "failed" and status["pruned_step"] == 3
    assert status["reason"].startswith("pruned at step 3")


@pytest.mark.parametrize("override, message", [
    ("sweep.space.scale={low: 3.0, high: 1.0}", "key 'sweep.space.scale': inverted range, low 3.0 is above high 1.0"),
    ("sweep.objectives={totl: maximize}", "key 'sweep.objectives.totl': SweptCounting does not produce a metric 'totl'"),
    ("sweep.space.scael={low: 1.0, high: 2.0}", "unknown key 'scael' (did you mean 'scale'?)"),
    ("sweep.storage=postgresql://u:pw@127.0.0.1:9/none", "storage 'postgresql+psycopg2://u:***@127.0.0.1:9/none': cannot connect"),
])
def test_bad_input_is_one_line_before_any_trial(tmp_path, override, message):
    study, runs = write(tmp_path), tmp_path / "runs"
    with pytest.raises(ConfigError) as err:
        sweep(study, overrides=[override], runs_dir=runs, n_trials=1)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not list(runs.glob("sw/*/config.yaml"))


def test_a_study_name_clash_with_another_space_is_refused(tmp_path):
    study, runs = write(tmp_path), tmp_path / "runs"
    assert sweep(study, runs_dir=runs, n_trials=1, report=False) == 0
    with pytest.raises(ConfigError, match="already exists in storage .* with a different search space"):
        sweep(study, overrides=["sweep.space.scale={low: 0.5, high: 8.0}"], runs_dir=runs, n_trials=1)
    assert len(journal(runs).trials) == 1


def test_cli_argument_list(tmp_path):
    cfg = sweep_parser().parse_args(["s.yaml", "--n-trials", "3", "--timeout", "60", "--storage", "x.log",
                                      "--preset", "smoke", "--set", "seeds=[1]", "--runs-dir", "r"])
    assert (cfg.n_trials, cfg.timeout, cfg.storage, cfg.preset, cfg.overrides) == (3, 60.0, "x.log", "smoke", ["seeds=[1]"])
    assert cfg.report is True and str(cfg.runs_dir) == "r"


def test_wandb_callback_writes_one_offline_run_per_trial_and_one_for_the_study(tmp_path):
    tracker = "tracker: {class_path: harness.tracking.WandbTracker, init_args: {mode: offline}}\n"
    study, runs = write(tmp_path), tmp_path / "runs"
    study.write_text(study.read_text() + tracker)
    assert sweep(study, runs_dir=runs, n_trials=2, report=False) == 0
    folders = sorted(p.name for p in (runs / "sw" / "wandb").glob("offline-run-*"))
    trial_runs = [f for f in folders if f.endswith(("-sw-trial-0", "-sw-trial-1"))]
    assert len(trial_runs) == 2
    assert len(folders) == 5  # 2 store runs (the run tracker) + 2 trials + 1 study-level run with the table


def test_several_objectives_make_a_pareto_search_and_report(tmp_path):
    extra = ("objectives: {total: maximize, steps: minimize}\n"
             "sampler: {class_path: harness.sweep.NSGAII, init_args: {seed: 0, population_size: 4}}\n")
    study, runs = write(tmp_path), tmp_path / "runs"
    text = study.read_text().replace("  objectives: {total: maximize}\n", "").replace(
        "  sampler: {class_path: harness.sweep.TPE, init_args: {seed: 3, n_startup_trials: 4}}\n", "")
    study.write_text(text + textwrap.indent(extra, "  "))
    assert sweep(study, runs_dir=runs, n_trials=3) == 0
    trials = journal(runs).trials
    assert all(t.values[1] == 3 and t.values[0] == pytest.approx(14 * t.params["scale"], rel=1e-6) for t in trials)
    files = sweep_report(runs, "sw")
    assert {"pareto", "history-total", "history-steps", "best_trials"} <= set(files)
    with pytest.raises(ConfigError, match="Optuna cannot prune a search over several objectives"):
        sweep(study, overrides=["sweep.pruner={class_path: harness.sweep.Median}"], runs_dir=runs, n_trials=1)


def test_a_sweep_folder_is_a_study_for_ls_and_report_with_linked_pages(tmp_path, capsys, monkeypatch):
    from harness.cli import main

    monkeypatch.setattr("reports.figures.FIGURE_BUILDERS", ())  # the study report's figures are tested elsewhere
    study, runs = write(tmp_path), tmp_path / "runs"
    study.write_text(study.read_text().replace("scale: {low: 0.5, high: 4.0}",
                                               "scale: {low: 0.5, high: 4.0}\n    table_size: {low: 4, high: 8}"))
    assert sweep(study, runs_dir=runs, n_trials=3, report=False) == 0
    capsys.readouterr()
    assert journal(runs).metric_names == ["total"]  # optuna-dashboard shows 'total', not 'Objective 0'
    assert main(["ls", str(runs / "sw")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("sw ")]
    assert len(rows) == 3 and {r[2] for r in rows} == {"0", "1", "2"} and all(r[4] == "complete" for r in rows)
    assert main(["report", str(runs / "sw")]) == 0
    out, err = capsys.readouterr()
    assert "study sw: 3 of 3 runs complete" in out
    sweep_index = runs / "report" / "sweep-sw" / "index.html"
    study_index = runs / "sw" / "report" / "index.html"
    assert f"sweep report: {sweep_index}" in out and out.strip().endswith(f"report: {study_index}")
    assert "importances rest on 3 complete trials (fewer than 10)" in err
    page = sweep_index.read_text()
    assert "importances rest on 3 complete trials" in page and '<img src="history.png"' in page
    back = re.search(r'<a href="([^"]+)">The study report</a>', page).group(1)
    forth = re.search(r'<p class="sweep-link"><a href="([^"]+)">', study_index.read_text()).group(1)
    assert (sweep_index.parent / back).resolve() == study_index.resolve()
    assert (study_index.parent / forth).resolve() == sweep_index.resolve()
    assert main(["report", str(runs / "sw")]) == 0  # again: the link is refreshed, not repeated
    assert study_index.read_text().count('class="sweep-link"') == 1


def test_a_sweep_from_before_study_json_still_lists_and_reports(tmp_path, capsys, monkeypatch):
    from harness.cli import main

    monkeypatch.setattr("reports.figures.FIGURE_BUILDERS", ())
    study, runs = write(tmp_path), tmp_path / "runs"
    assert sweep(study, runs_dir=runs, n_trials=2, report=False) == 0
    listed = json.loads((runs / "sw" / "study.json").read_text())["runs"]
    (runs / "sw" / "study.json").unlink()
    capsys.readouterr()
    assert main(["ls", str(runs)]) == 0
    assert "no runs yet" not in capsys.readouterr().out
    assert main(["report", str(runs / "sw")]) == 0
    out, err = capsys.readouterr()
    assert "study.json rebuilt from the sweep's storage" in err and "study sw: 2 of 2 runs complete" in out
    rebuilt = json.loads((runs / "sw" / "study.json").read_text())["runs"]
    assert [(r["hash"], r["labels"], r["seed"]) for r in rebuilt] == [(r["hash"], r["labels"], r["seed"]) for r in listed]


def test_short_parameter_names_drop_plumbing_and_the_shared_path():
    from harness.sweep.names import short_names

    assert short_names(["method.init_args.alpha", "method.init_args.train.lr_generator"]) == {
        "method.init_args.alpha": "alpha", "method.init_args.train.lr_generator": "train.lr_generator"}
    assert short_names(["method.init_args.alpha", "world.init_args.size"]) == {
        "method.init_args.alpha": "method.alpha", "world.init_args.size": "world.size"}
    assert short_names(["a.x", "b.x"]) == {"a.x": "a.x", "b.x": "b.x"}  # never two parameters with one name
    assert short_names(["scale"]) == {"scale": "scale"}
