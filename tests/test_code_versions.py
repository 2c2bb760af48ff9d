"""Code versions: a plugin's or a stage's version bump re-keys what it computed, and `ls`/`report` flag
runs computed by other code than the rest of their study (see harness/engine/versions.py)."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from harness.cli import main
from harness.engine.identity import config_hash
from harness.engine.stages import StageCache, stage_key
from harness.engine.study import load_study
from harness.engine.versions import code_versions, study_flags
from harness.errors import ConfigError
from tests.toy_pipeline import CountingPipeline

STUDY = textwrap.dedent(
    """\
    name: cv
    allow_modules: [tests.toy_pipeline]
    pipeline:
      class_path: tests.toy_pipeline.CountingPipeline
      init_args: {steps: 2}
    seeds: [0, 1, 2]
    """
)
TOY = "tests.toy_pipeline.CountingPipeline"


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "cv.yaml"
    path.write_text(STUDY)
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_folders(runs):
    return sorted(p for p in (runs / "cv").iterdir() if (p / "config.yaml").exists())


def test_code_versions_names_the_class_and_the_bases_that_declare_one(monkeypatch):
    config = {"class_path": TOY, "init_args": {"inner": [{"class_path": "methods.asd.ASD"}]}}
    from methods.asd import ASD

    assert code_versions(config) == {TOY: 1, "harness.engine.pipeline.Pipeline": 1, "methods.asd.ASD": ASD.version,
                                     "methods.base.Method": 1}
    monkeypatch.setattr(CountingPipeline, "version", 3)
    assert code_versions(config)[TOY] == 3
    monkeypatch.setattr(CountingPipeline, "version", "2")
    with pytest.raises(ConfigError, match="'version' must be an integer"):
        code_versions(config)


def test_a_version_bump_changes_the_run_hash_and_the_recorded_versions(study, monkeypatch):
    before = load_study(study).runs
    assert before[0].config["versions"] == {TOY: 1, "harness.engine.pipeline.Pipeline": 1}
    monkeypatch.setattr(CountingPipeline, "version", 2)
    after = load_study(study).runs
    assert after[0].config["versions"][TOY] == 2
    assert {r.hash for r in before}.isdisjoint(r.hash for r in after)
    monkeypatch.setattr("harness.engine.pipeline.Pipeline.version", 2)  # a base's bump reaches an overriding subclass
    assert {r.hash for r in after}.isdisjoint(r.hash for r in load_study(study).runs)


def test_sweep_trials_carry_versions(tmp_path, monkeypatch):
    from harness.sweep.objective import trial_runs
    from harness.sweep.schema import parse_sweep

    path = tmp_path / "sw.yaml"
    path.write_text(STUDY + "sweep:\n  objectives: {total: maximize}\n  space:\n    scale: {low: 0.5, high: 4.0}\n")
    spec = parse_sweep(load_study(path))
    (first, *_) = trial_runs(spec, {"scale": 2.0}, 0)
    assert first.config["versions"][TOY] == 1
    monkeypatch.setattr(CountingPipeline, "version", 2)
    (again, *_) = trial_runs(spec, {"scale": 2.0}, 0)
    assert again.config["versions"][TOY] == 2 and again.hash != first.hash


def test_harness_run_recomputes_after_a_bump_and_ls_and_report_flag_the_old_runs(study, tmp_path, capsys,
                                                                                  monkeypatch):
    from reports import build_reports

    runs = tmp_path / "runs"
    code, out, _ = cli(capsys, "run", str(study), "--runs-dir", str(runs), "--plain")
    assert code == 0 and "3 computed, 0 already complete" in out
    old = run_folders(runs)
    assert yaml.safe_load((old[0] / "config.yaml").read_text())["versions"][TOY] == 1

    monkeypatch.setattr(CountingPipeline, "version", 2)
    # before the next `harness run`, the study's manifest still lists the old runs: the report drops them
    result = build_reports(runs, figures=False).studies[0]
    assert result.complete_runs == 0
    assert sum("outdated: CountingPipeline 1→2: computed by older code; left out" in p for p in result.problems) == 3
    assert "| 3 |" not in (runs / "report" / "table.md").read_text()
    page = (runs / "report" / "index.html").read_text()
    assert "outdated: CountingPipeline 1→2" in page and "is outdated: left out of the tables" in page

    code, out, _ = cli(capsys, "run", str(study), "--runs-dir", str(runs), "--plain")
    assert code == 0 and "3 computed, 0 already complete" in out  # not reused
    assert len(run_folders(runs)) == 6
    code, out, _ = cli(capsys, "ls", str(runs))
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("cv ")}
    assert all(lines[p.name].endswith("outdated: CountingPipeline 1→2") for p in old)
    assert sum("outdated" in line for line in lines.values()) == 3
    assert "flag: outdated = older plugin/stage versions" in out


def _set_commit(folder, commit: str, ended: str = "2030-01-01") -> None:
    path = folder / "provenance.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "git_commit": commit, "git_dirty": False, "ended": ended}))


def test_ls_and_report_flag_a_run_computed_at_another_commit(study, tmp_path, capsys):
    from reports import build_reports

    runs = tmp_path / "runs"
    assert cli(capsys, "run", str(study), "--runs-dir", str(runs), "--plain")[0] == 0
    folders = run_folders(runs)
    for folder in folders:
        _set_commit(folder, "a" * 40)
    _set_commit(folders[1], "b" * 40)
    _, out, _ = cli(capsys, "ls", str(runs))
    flagged = [line for line in out.splitlines() if "≠" in line]
    assert len(flagged) == 1 and folders[1].name in flagged[0]
    assert flagged[0].endswith("commit bbbbbbb ≠ study's aaaaaaa")
    result = build_reports(runs, figures=False).studies[0]
    assert result.complete_runs == 3  # kept in the tables
    (problem,) = [p for p in result.problems if "≠" in p]
    assert problem.startswith(f"cv/{folders[1].name} (")
    assert problem.endswith(": commit bbbbbbb ≠ study's aaaaaaa; kept in the tables")


def test_study_flags_tie_goes_to_the_newest_commit_and_unknown_commits_are_not_compared(study, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert cli(capsys, "run", str(study), "--runs-dir", str(runs), "--plain")[0] == 0
    a, b, c = run_folders(runs)
    _set_commit(a, "a" * 40, ended="2030-01-01")
    _set_commit(b, "b" * 40, ended="2030-02-01")
    _set_commit(c, "", ended="2030-03-01")
    flags = study_flags([(a, None), (b, None), (c, None)])
    assert list(flags) == [a.name] and flags[a.name].study_commit == "bbbbbbb"
    config = yaml.safe_load((a / "config.yaml").read_text())
    del config["versions"]  # a run folder from before versions were recorded
    assert study_flags([(a, config)])[a.name].text == "outdated: no versions recorded"


def test_stage_keys_take_the_stage_version_and_the_config_classes(tmp_path, monkeypatch):
    config = {"size": 3}
    # a stage without plugin classes at version 1 keeps the key it had before versions existed
    assert stage_key("t", config) == config_hash({"stage": "t", "config": config, "inputs": []})
    assert stage_key("t", config, version=2) != stage_key("t", config)
    with_class = {"method": {"class_path": TOY, "init_args": {}}}
    before = stage_key("t", with_class)
    monkeypatch.setattr(CountingPipeline, "version", 2)
    assert stage_key("t", with_class) != before

    built = []
    cache = StageCache(tmp_path)
    first = cache.get("t", with_class, lambda d: built.append(d))
    assert cache.get("t", with_class, lambda d: built.append(d)).key == first.key and len(built) == 1
    bumped = cache.get("t", with_class, lambda d: built.append(d), version=2)
    assert bumped.key != first.key and len(built) == 2
    manifest = json.loads((bumped.path / "stage.json").read_text())
    assert manifest["versions"] == {"stage": 2, TOY: 2, "harness.engine.pipeline.Pipeline": 1}
    assert cache.lookup("t", with_class, version=2) is not None and cache.lookup("t", with_class) is not None


def test_world_stages_pass_their_builders_version(monkeypatch):
    from harness.worlds.sprites import teacher
    from harness.worlds.sprites.shipped import find_shipped_teacher
    from harness.worlds.sprites.world import SpritesWorld, world_preset

    calls = []

    class Recorder:
        def stage(self, name, config, build, inputs=(), version=1):
            calls.append((name, version))

        def progress(self, *args, **kwargs):
            pass

    SpritesWorld(size="smoke").teacher_artifact(Recorder())
    assert calls == [("sprites-teacher", teacher.STAGE_VERSION)]
    preset = world_preset("default")
    assert find_shipped_teacher(preset.world, preset.dit, preset.teacher) is not None
    monkeypatch.setattr("harness.worlds.sprites.shipped.STAGE_VERSION", teacher.STAGE_VERSION + 1)
    assert find_shipped_teacher(preset.world, preset.dit, preset.teacher) is None  # weights of another version
