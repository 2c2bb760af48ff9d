"""``harness gc``: the checkpoints of finished stages and complete runs go; everything else stays."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main

from .conftest import TOY_STUDY, harness


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _checkpoint(folder: Path, step: int, size: int = 1000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:08d}.pt"
    path.write_bytes(b"x" * size)
    return path


def _cache(root: Path) -> dict[str, Path]:
    """A finished stage with checkpoints, a build in progress with checkpoints, a finished stage without."""
    done = root / "distill-asd" / "aaaaaaaaaaaaaaaa"
    (done / "stage.json").parent.mkdir(parents=True)
    (done / "stage.json").write_text("{}")
    (done / "generator.safetensors").write_bytes(b"w" * 50)
    (done / "metrics.jsonl").write_text("{}\n")
    _checkpoint(done / "checkpoints", 2, 2_000_000)
    _checkpoint(done / "checkpoints", 3, 2_000_000)
    building = root / "distill-asd" / ".bbbbbbbbbbbbbbbb.building"
    _checkpoint(building / "checkpoints", 1)
    (building / "stage.json").write_text("{}")  # even a stray manifest: a build folder is never touched
    bare = root / "sprites-teacher" / "cccccccccccccccc"
    bare.mkdir(parents=True)
    (bare / "stage.json").write_text("{}")
    (bare / "model.safetensors").write_bytes(b"m")
    return {"done": done, "building": building, "bare": bare}


def test_dry_run_lists_with_sizes_and_removes_nothing(tmp_path, capsys):
    cache = tmp_path / "runs" / ".stages"
    made = _cache(cache)
    before = _files(tmp_path)
    assert main(["gc", str(tmp_path / "runs"), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert _files(tmp_path) == before
    assert out[0] == (f"would remove {made['done'] / 'checkpoints'} (4.0 MB; finished stage "
                      "distill-asd/aaaaaaaaaaaaaaaa)")
    assert out[-1] == "would remove 1 checkpoint folder, 4.0 MB; nothing removed (dry run)"


def test_gc_removes_only_the_checkpoints_of_finished_stages(tmp_path, capsys):
    cache = tmp_path / "cache"
    made = _cache(cache)
    before = _files(cache)
    assert main(["gc", str(tmp_path / "runs"), "--cache-dir", str(cache)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "removed 1 checkpoint folder, 4.0 MB"
    gone = {f for f in before if f.startswith("distill-asd/aaaaaaaaaaaaaaaa/checkpoints/")}
    assert len(gone) == 2 and _files(cache) == before - gone
    assert not (made["done"] / "checkpoints").exists()
    assert (made["building"] / "checkpoints" / "step-00000001.pt").exists()


def test_gc_keeps_what_runs_need_and_a_rerun_still_finds_everything(tmp_path):
    runs = tmp_path / "runs"
    args = ("run", str(TOY_STUDY), "--preset", "smoke", "--runs-dir", str(runs), "--plain", "--no-report")
    assert harness(*args).returncode == 0
    complete = [p for p in (runs / "toy").iterdir() if (p / "checkpoints").is_dir()]
    assert complete  # the toy pipeline checkpoints every step
    unfinished = complete[0]
    status = json.loads((unfinished / "status.json").read_text())
    (unfinished / "status.json").write_text(json.dumps({**status, "state": "failed"}))
    proc = harness("gc", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert (unfinished / "checkpoints").is_dir()  # a run that is not complete keeps its resume point
    assert all(not (p / "checkpoints").exists() for p in complete[1:])
    assert all((p / "result.json").exists() for p in complete)
    proc = harness(*args)
    assert proc.returncode == 0 and "1 computed, 3 already complete" in proc.stdout, proc.stdout + proc.stderr
