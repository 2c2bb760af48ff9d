"""Study files: parsing, presets, overrides, allowlist, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml

from harness.cli import main
from harness.engine.config import deep_merge, expand_dotted, parse_override
from harness.engine.identity import canonical_json, config_hash
from harness.engine.study import check_instantiable, load_study
from harness.errors import ConfigError

from .conftest import ROOT, TOY_STUDY, cli_env

BASE = textwrap.dedent(
    """\
    name: s
    allow_modules: [tests.toy_pipeline]
    pipeline:
      class_path: tests.toy_pipeline.CountingPipeline
      init_args: {steps: 3}
    """
)


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_toy_study_expands_grid_times_seeds_with_defaults_filled():
    study = load_study(TOY_STUDY)
    assert study.name == "toy"
    assert len(study.runs) == 2 * 2 * 2
    names = sorted(r.name for r in study.runs)
    assert names[0] == "base/large/seed=0" and names[-1] == "double/small/seed=1"
    run = next(r for r in study.runs if r.labels == {"variant": "double", "size": "large"} and r.seed == 1)
    args = run.config["pipeline"]["init_args"]
    assert args["scale"] == 2.0 and args["table_size"] == 16 and args["steps"] == 4
    assert args["fail_at_step"] is None  # defaults are part of the resolved config
    assert run.config["seed"] == 1
    assert len({r.hash for r in study.runs}) == 8


def test_resolved_config_round_trips(tmp_path):
    study = load_study(TOY_STUDY)
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(yaml.safe_dump(study.config, sort_keys=False))
    again = load_study(dumped)
    assert again.config == study.config
    assert [r.hash for r in again.runs] == [r.hash for r in study.runs]


def test_preset_and_overrides_merge_over_the_file():
    study = load_study(TOY_STUDY, preset="smoke", overrides=["pipeline.init_args.table_size=5", "seeds=[5]"])
    assert {r.seed for r in study.runs} == {5}
    assert all(r.config["pipeline"]["init_args"]["steps"] == 2 for r in study.runs)  # from the preset
    # pipeline keys on the command line win over grid levels: both sizes collapse into one run per variant
    assert len(study.runs) == 2
    assert {r.config["pipeline"]["init_args"]["table_size"] for r in study.runs} == {5}
    assert {r.config["pipeline"]["init_args"]["scale"] for r in study.runs} == {1.0, 2.0}
    plain = load_study(TOY_STUDY)
    assert {r.config["pipeline"]["init_args"]["table_size"] for r in plain.runs} == {4, 16}


def test_hash_ignores_key_order_and_logging_keys():
    a = {"pipeline": {"class_path": "x.Y", "init_args": {"a": 1, "b": [1, 2], "checkpoint_every": 5}}, "seed": 0}
    b = {"seed": 0, "pipeline": {"init_args": {"checkpoint_every": 50, "b": [1, 2], "a": 1}, "class_path": "x.Y"}}
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash({**a, "seed": 1})
    assert canonical_json(a) == '{"pipeline":{"class_path":"x.Y","init_args":{"a":1,"b":[1,2]}},"seed":0}'


def test_hash_is_stable_across_processes():
    here = {r.name: r.hash for r in load_study(TOY_STUDY).runs}
    code = (
        "import json,sys; from harness.engine.study import load_study;"
        f"print(json.dumps({{r.name: r.hash for r in load_study({str(TOY_STUDY)!r}).runs}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(PYTHONHASHSEED="123"),
                         capture_output=True, text=True, check=True)
    import json

    assert json.loads(out.stdout) == here


def test_dotted_overrides_and_class_path_replacement():
    assert expand_dotted({"a.b.c": 1, "a.d": 2}) == {"a": {"b": {"c": 1}, "d": 2}}
    base = {"m": {"class_path": "p.A", "init_args": {"x": 1}}}
    assert deep_merge(base, {"m": {"init_args": {"y": 2}}}) == {"m": {"class_path": "p.A", "init_args": {"x": 1, "y": 2}}}
    assert deep_merge(base, {"m": {"class_path": "p.B"}}) == {"m": {"class_path": "p.B"}}
    assert parse_override("seeds=[0, 1]") == ("seeds", [0, 1])
    assert parse_override("a.lr=1e-3") == ("a.lr", 1e-3)
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        parse_override("seeds")


def test_validate_builds_every_plugin():
    study = load_study(TOY_STUDY)
    assert len(check_instantiable(study)) == 4  # distinct pipelines; seeds do not rebuild


BAD_CASES = {
    "malformed_yaml": ("name: s\npipeline: [unclosed\n", "malformed YAML at line 3"),
    "not_a_mapping": ("- a\n- b\n", "a study file must be a mapping"),
    "unknown_top_key": (BASE + "seedz: [1]\n", "unknown key 'seedz' (did you mean 'seeds'?)"),
    "unknown_init_arg": (BASE.replace("steps: 3", "stepz: 3"),
                         "key 'pipeline.init_args': unknown key 'stepz' (did you mean 'steps'?)"),
    "wrong_type": (BASE.replace("steps: 3", "steps: many"), "key 'pipeline.init_args.steps': Expected a int"),
    "unknown_class_path": (BASE.replace("CountingPipeline", "NoSuchPipeline"),
                           "key 'pipeline.class_path': cannot import"),
    "outside_allowlist": (BASE.replace("tests.toy_pipeline.CountingPipeline", "os.system"),
                          "key 'pipeline.class_path': 'os.system' is not allowed"),
    "nested_outside_allowlist": (BASE + "tracker: {class_path: subprocess.Popen}\n",
                                 "key 'tracker.class_path': 'subprocess.Popen' is not allowed"),
    "grid_bad_level": (BASE + "grid:\n  - variant: {a: {steps: x}}\n",
                       "grid[0].variant.a: key 'pipeline.init_args.steps'"),
    "empty_seeds": (BASE + "seeds: []\n", "key 'seeds' must list at least one seed"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_study_gives_one_line_exit_2_and_writes_nothing(case, write_study, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    text, expected = BAD_CASES[case]
    path = write_study(text)
    runs = tmp_path / "runs"
    for command in (["validate", str(path)], ["run", str(path), "--runs-dir", str(runs)]):
        code, out, err = run_cli(capsys, *command)
        assert code == 2, (case, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"error: {path}: "), lines[0]
        assert expected in lines[0], lines[0]
        assert "Traceback" not in err
    assert not runs.exists()


def test_missing_file_and_unknown_preset(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, _, err = run_cli(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and err.strip() == f"error: {tmp_path / 'nope.yaml'}: file not found"
    code, _, err = run_cli(capsys, "run", str(TOY_STUDY), "--preset", "huge", "--runs-dir", str(tmp_path / "r"))
    assert code == 2 and "unknown preset 'huge' (this study defines: smoke)" in err
    assert not (tmp_path / "r").exists()


def test_print_config_prints_the_resolved_study(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(capsys, "run", str(TOY_STUDY), "--preset", "smoke", "--print_config")
    assert code == 0
    cfg = yaml.safe_load(out)
    assert cfg["seeds"] == [0]
    assert cfg["pipeline"]["init_args"]["steps"] == 2
    assert cfg["pipeline"]["init_args"]["build_log"] is None
    assert cfg["tracker"] == {"class_path": "harness.tracking.NullTracker"}


def test_unknown_command_option_is_one_line(capsys):
    code, _, err = run_cli(capsys, "run", str(TOY_STUDY), "--wrokers", "2")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "wrokers" in err


def test_grid_levels_keep_strings_that_look_like_numbers(write_study):
    path = write_study(BASE + 'grid:\n  - steps: {"1": {tag: "1"}, "1*": {tag: "1*"}}\n')
    study = load_study(path)
    assert sorted(r.config["pipeline"]["init_args"]["tag"] for r in study.runs) == ["1", "1*"]
    assert sorted(r.labels["steps"] for r in study.runs) == ["1", "1*"]


def test_a_grid_level_can_swap_the_pipeline_class_keeping_accepted_args(write_study):
    path = write_study(BASE.replace("{steps: 3}", "{steps: 3, table_size: 4}") + textwrap.dedent("""\
        grid:
          - variant: {counting: {}}
          - variant: {reference: {class_path: tests.toy_pipeline.ConstantPipeline, value: 7.0}}
        presets:
          quick: {pipeline.init_args.steps: 1, pipeline.init_args.table_size: 2}
        """))
    runs = {r.labels["variant"]: r.config["pipeline"] for r in load_study(path).runs}
    assert runs["reference"] == {"class_path": "tests.toy_pipeline.ConstantPipeline",
                                 "init_args": {"value": 7.0, "table_size": 4}}
    assert runs["counting"]["init_args"]["steps"] == 3
    quick = {r.labels["variant"]: r.config["pipeline"] for r in load_study(path, preset="quick").runs}
    assert quick["reference"]["init_args"] == {"value": 7.0, "table_size": 2}  # `steps` is not its key
    assert quick["counting"]["init_args"]["steps"] == 1
