"""Hostile and careless input, one table: each case is a study file (and a command) that must end in one
``error:`` line naming what is wrong, a given exit code, nothing written and no code of the file's run.

A new plugin slot or command gets its cases by adding rows to ``CASES``. The canary file is what an
attack in a case would create if its code ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.cli import main

from .conftest import ROOT, cli_env

CANARY = "pwned"

SPRITES_ROW = """\
name: hostile
pipeline:
  class_path: harness.pipelines.DistillAndEvaluate
  init_args:
    world: {class_path: harness.worlds.sprites.world.SpritesWorld, init_args: {size: smoke}}
    method: %s
    num_videos: 4
    num_reference: 2
seeds: [0]
"""

ASD = "{class_path: methods.asd.ASD, init_args: {train: {steps: 2, batch_size: 2}}}"


def row(method: str = ASD, extra: str = "") -> str:
    return SPRITES_ROW % method + textwrap.dedent(extra)


@dataclass
class Case:
    """A study text, the command's extra arguments, and what must come out."""

    id: str
    study: str
    message: str  # a substring of the one error line
    args: list[str] = field(default_factory=list)
    command: str = "validate"
    exit_code: int = 2


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "name: bomb\n" + "\n".join(lines) + f"\npipeline: *a{levels - 1}\nseeds: [0]\n"


CASES = [
    # -- code execution through a class_path --------------------------------------------------------
    Case("attribute-chain-os-system", row(f'{{class_path: harness.io.atomic.os.system, init_args: {{command: "touch {CANARY}"}}}}'),
         "cannot import 'harness.io.atomic.os.system'"),
    Case("attribute-chain-sys-exit", row("{class_path: harness.errors.sys.exit}"), "cannot import 'harness.errors.sys.exit'"),
    Case("foreign-class-through-allowed-module", row("{class_path: harness.engine.config.Path, init_args: {}}"),
         "'harness.engine.config.Path' is not allowed"),
    Case("module-object-through-allowed-module", row("{class_path: harness.engine.config.importlib}"),
         "'harness.engine.config.importlib' is not allowed"),
    Case("outside-module", row(f'{{class_path: subprocess.getoutput, init_args: {{cmd: "touch {CANARY}"}}}}'),
         "'subprocess.getoutput' is not allowed"),
    Case("grid-level-class-path", row(extra=f"""\
        grid:
          - variant: {{evil: {{method: {{class_path: os.system, init_args: {{command: "touch {CANARY}"}}}}}}}}
        """), "'os.system' is not allowed"),
    Case("override-class-path", row(), "'posix.system' is not allowed",
         args=["--set", "pipeline.init_args.method.class_path=posix.system"]),
    Case("sweep-point-class-path", row(extra=f"""\
        sweep:
          objectives: {{total: maximize}}
          space:
            method.class_path: {{choices: ["subprocess.getoutput"]}}
            method.init_args.cmd: {{choices: ["touch {CANARY}"]}}
          n_trials: 1
        """), "'subprocess.getoutput' is not allowed", command="sweep"),
    Case("not-a-dotted-path", row("{class_path: 'methods.asd.ASD; import os'}"), "is not a dotted import path"),
    # -- typed method settings ----------------------------------------------------------------------
    Case("unknown-method-key", row("{class_path: methods.asd.ASD, init_args: {alfa: 1.0}}"),
         "unknown key 'alfa' (did you mean 'alpha'?)"),
    Case("wrong-type-in-method", row(), "train.steps", args=["--set", "pipeline.init_args.method.init_args.train.steps=abc"]),
    Case("zero-batch", row(), "train.batch_size must be >= 1, got 0",
         args=["--set", "pipeline.init_args.method.init_args.train.batch_size=0"]),
    Case("missing-method-class", row("{class_path: methods.asd.NoSuchMethod}"),
         "module 'methods.asd' has no attribute 'NoSuchMethod'"),
    Case("method-of-wrong-type", row("{class_path: harness.tracking.NullTracker}"), "method"),
    # -- counts -------------------------------------------------------------------------------------
    Case("negative-num-videos", row(), "num_videos must be a whole number >= 1, got -1",
         args=["--set", "pipeline.init_args.num_videos=-1"]),
    Case("huge-num-videos", row(), "num_videos=1000000000000 is more than 200000 videos", 
         args=["--set", "pipeline.init_args.num_videos=1000000000000"]),
    Case("huge-num-videos-run", row(), "num_videos=1000000000000 is more than", command="run",
         args=["--set", "pipeline.init_args.num_videos=1000000000000"]),
    # -- malformed files ----------------------------------------------------------------------------
    Case("alias-bomb", _bomb(), "an alias bomb?"),
    Case("deep-nesting", "name: deep\nseeds: [0]\npipeline: " + "[" * 3000 + "]" * 3000 + "\n",
         "nesting deeper than 64 levels"),
    Case("nul-in-name", row().replace("name: hostile", 'name: "a\\0b"'), "key 'name' must be a plain folder name"),
    Case("name-with-backslash", row().replace("name: hostile", 'name: "a\\\\b"'), "key 'name' must be a plain folder name"),
    Case("not-utf8", "name: \udcff\n", "not UTF-8 text"),
    Case("not-a-mapping", "- a\n- b\n", "a study file must be a mapping"),
]


def _write_study(folder: Path, text: str) -> Path:
    path = folder / "study.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


def _command_args(case: Case, study: Path, folder: Path) -> list[str]:
    args = [case.command, str(study), *case.args]
    if case.command in ("run", "sweep"):
        args += ["--runs-dir", str(folder / "runs")]
    return args


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    study = _write_study(tmp_path, case.study)
    code = main(_command_args(case, study, tmp_path))
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.exit_code, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.message in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]  # no runs folder, no canary


def test_a_package_in_the_current_folder_does_not_replace_the_project(tmp_path):
    """``./methods/__init__.py`` next to a study once ran under ``harness validate``."""
    shadow = tmp_path / "methods"
    shadow.mkdir()
    (shadow / "__init__.py").write_text(f"open({str(tmp_path / CANARY)!r}, 'w').close()\n")
    study = _write_study(tmp_path, row())
    harness = Path(sys.executable).with_name("harness")
    proc = subprocess.run([str(harness), "validate", str(study)], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ")
    assert not (tmp_path / CANARY).exists()


def test_allow_modules_still_imports_local_code(tmp_path):
    """The explicit way to add local code keeps working: a module in the current folder, listed."""
    (tmp_path / "local_rows.py").write_text(textwrap.dedent("""\
        from tests.toy_pipeline import CountingPipeline


        class LocalPipeline(CountingPipeline):
            pass
        """))
    study = _write_study(tmp_path, textwrap.dedent("""\
        name: local
        allow_modules: [local_rows]
        pipeline: {class_path: local_rows.LocalPipeline, init_args: {steps: 2}}
        seeds: [0]
        """))
    env = {**cli_env(), "PYTHONPATH": os.pathsep.join([str(ROOT), cli_env().get("PYTHONPATH", "")])}
    harness = Path(sys.executable).with_name("harness")
    proc = subprocess.run([str(harness), "validate", str(study)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "1 runs" in proc.stdout or "1 run" in proc.stdout


def test_merged_grid_rows_are_named_in_a_warning(tmp_path, monkeypatch, capsys):
    """An override that makes two rows one config keeps one run and says which rows merged."""
    monkeypatch.chdir(tmp_path)
    study = _write_study(tmp_path, row("{class_path: methods.asd.ASD}", extra="""\
        grid:
          - variant:
              dmd: {method: {class_path: methods.asd.ASD, init_args: {alpha: 0.0}}}
              asd: {method: {class_path: methods.asd.ASD, init_args: {alpha: 10.0}}}
        """))
    code = main(["validate", str(study), "--set", "pipeline.init_args.method.init_args.alpha=5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warning: grid row asd has the same config as dmd: they are one run, labelled dmd" in err
    assert "1 runs" in out or "1 run" in out
