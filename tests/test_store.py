"""Atomic files, run folders, checkpoints and the stage cache."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from harness.engine.checkpoints import CheckpointStore
from harness.engine.stages import StageCache
from harness.engine.store import COMPLETE, FAILED, RUNNING, RunDir
from harness.errors import CheckpointError
from harness.io.atomic import append_line, atomic_write_json, read_jsonl

from .conftest import ROOT, cli_env

WRITER = """
import sys, json
from harness.io.atomic import atomic_write_json
path = sys.argv[1]
i = 0
while True:
    i += 1
    atomic_write_json(path, {"i": i, "payload": "x" * 2_000_000})
"""


def test_sigkill_mid_write_leaves_old_or_new_file_never_torn(tmp_path):
    target = tmp_path / "status.json"
    atomic_write_json(target, {"i": 0, "payload": ""})
    seen = set()
    for delay in (0.05, 0.11, 0.23, 0.37, 0.5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT, env=cli_env())
        time.sleep(delay + 0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads(target.read_text())  # raises if torn
        assert data["payload"] in ("", "x" * 2_000_000)
        seen.add(data["i"])
    assert max(seen) > 0  # the writer did replace the file while being killed
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "status.json"]
    assert all(name.startswith(".status.json.") for name in leftovers)  # only temp files may remain


def test_jsonl_reader_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_line(path, json.dumps({"step": 1}))
    with open(path, "a") as fh:
        fh.write('{"step": 2, "lo')
    assert read_jsonl(path) == [{"step": 1}]


def test_status_transitions_and_metrics_truncation(tmp_path):
    run = RunDir(tmp_path / "abc")
    run.path.mkdir()
    assert run.read_status()["state"] == "pending"
    run.write_status(RUNNING, stage="train")
    assert run.read_status()["state"] == RUNNING and run.read_status()["stage"] == "train"
    assert run.is_stale()  # nobody holds the lock: the process that marked it running is gone
    with run.lock():
        pass
    lock = run.lock()
    lock.acquire()
    try:
        code = f"from harness.engine.store import RunDir; import sys; sys.exit(0 if RunDir(__import__('pathlib').Path({str(run.path)!r})).is_stale() else 3)"
        assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(), check=False).returncode == 3
    finally:
        lock.release()
    run.write_status(FAILED, reason="boom")
    assert run.read_status()["reason"] == "boom"
    run.write_status(COMPLETE)
    assert "reason" not in run.read_status()
    with pytest.raises(ValueError, match="unknown run state"):
        run.write_status("done")
    for step in range(1, 6):
        run.log_metrics({"loss": step / 10}, step)
    run.truncate_metrics_after(3)
    assert [r["step"] for r in run.metrics()] == [1, 2, 3]


def test_checkpoints_keep_latest_and_refuse_corrupt_files(tmp_path):
    store = CheckpointStore(tmp_path / "ck", keep=2)
    assert store.latest() is None
    for step in (10, 20, 30):
        store.save(step, {"w": torch.full((2,), float(step))})
    assert store.steps() == [20, 30]
    step, state = store.latest()
    assert step == 30 and torch.equal(state["w"], torch.full((2,), 30.0))
    store.path(30).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="step-00000030.pt is corrupt or not a harness checkpoint"):
        store.load(30)
    with pytest.raises(CheckpointError, match="checkpoint not found: step-00000040.pt"):
        store.load(40)


def test_checkpoints_load_memory_mapped_and_private_and_legacy_files_still_load(tmp_path):
    store = CheckpointStore(tmp_path)
    path = store.save(1, {"w": torch.arange(4.0)})
    state = store.load(1)
    maps = Path("/proc/self/maps")
    if maps.exists():  # Linux: the tensor's memory is a mapping of the checkpoint file itself
        ptr = state["w"].data_ptr()
        spans = [line.split() for line in maps.read_text().splitlines()]
        owner = [s[-1] for s in spans if int(s[0].split("-")[0], 16) <= ptr < int(s[0].split("-")[1], 16)]
        assert owner == [str(path)]
    state["w"] += 1  # a private mapping: the file is untouched
    assert torch.equal(store.load(1)["w"], torch.arange(4.0))
    torch.save({"step": 2, "state": {"w": torch.ones(2)}}, store.path(2), _use_new_zipfile_serialization=False)
    assert torch.equal(store.load(2)["w"], torch.ones(2))  # the legacy format cannot be mapped: read


def test_checkpoint_refuses_pickled_objects(tmp_path):
    store = CheckpointStore(tmp_path)
    torch.save({"step": 1, "state": {"obj": Path("x")}}, store.path(1))  # a pickled arbitrary object
    with pytest.raises(CheckpointError, match="corrupt or not a harness checkpoint"):
        store.load(1)


def _build_in_process(args):
    root, log = args
    from harness.io.atomic import append_line as _append

    def build(folder: Path) -> None:
        _append(log, "built")
        time.sleep(0.5)
        (folder / "weights.txt").write_text("w")

    art = StageCache(root).get("teacher", {"size": 3}, build)
    return str(art.path), (art.path / "weights.txt").read_text()


def test_stage_is_built_once_when_two_processes_ask_at_once(tmp_path):
    log = tmp_path / "builds.log"
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_build_in_process, [(str(tmp_path / "cache"), str(log))] * 2))
    assert results[0] == results[1] and results[0][1] == "w"
    assert log.read_text().splitlines() == ["built"]
    manifest = json.loads((Path(results[0][0]) / "stage.json").read_text())
    assert manifest["config"] == {"size": 3} and manifest["name"] == "teacher"


def test_stage_key_depends_on_config_and_inputs_and_failed_build_leaves_nothing(tmp_path):
    cache = StageCache(tmp_path)
    a = cache.get("teacher", {"size": 3}, lambda d: (d / "f").write_text("a"))
    b = cache.get("teacher", {"size": 4}, lambda d: (d / "f").write_text("b"))
    c = cache.get("init", {"steps": 1}, lambda d: (d / "f").write_text("c"), inputs=[a])
    d = cache.get("init", {"steps": 1}, lambda d: (d / "f").write_text("d"), inputs=[b])
    assert len({a.path, b.path, c.path, d.path}) == 4
    assert cache.get("init", {"steps": 1}, lambda d: 1 / 0, inputs=[a]).path == c.path  # cached: no rebuild

    def broken(folder: Path) -> None:
        (folder / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cache.get("teacher", {"size": 5}, broken)
    assert cache.lookup("teacher", {"size": 5}) is None  # nothing that looks finished

    def resume(folder: Path) -> None:  # the next build finds what the failed one left
        assert (folder / "half").read_text() == "x"
        (folder / "f").write_text("done")

    art = cache.get("teacher", {"size": 5}, resume)
    assert (art.path / "f").read_text() == "done"
    assert not [p for p in (tmp_path / "teacher").iterdir() if p.name.endswith(".building")]
