"""Harness overhead per run against calling the stage function bare, and the cost of a no-op rerun.

Targets (issue 2): overhead < 50 ms per run and < 2% of a 5-second run; a rerun of a completed
100-run study < 3 s (the whole `harness run` process, start-up included).

    .venv/bin/python benchmarks/bench_engine.py
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.engine.driver import run_study
from harness.engine.executors import InProcessExecutor
from harness.engine.pipeline import Pipeline, RunContext
from harness.engine.progress import LogProgress
from harness.engine.study import load_study


def work(seconds: float, index: int) -> float:
    """The stage function: sleeps like a computation would, returns a number."""
    time.sleep(seconds)
    return float(index) * 0.5


class WorkPipeline(Pipeline):
    """Calls :func:`work` once and logs one metric row."""

    headline = "value"

    def __init__(self, seconds: float = 0.0, index: int = 0):
        self.seconds, self.index = seconds, index

    def run(self, ctx: RunContext) -> dict:
        value = work(self.seconds, self.index)
        ctx.log({"value": value}, 1)
        return {"value": value}


def write_study(folder: Path, n: int, seconds: float) -> Path:
    levels = "\n".join(f"        r{i}: {{index: {i}}}" for i in range(n))
    path = folder / f"bench_{n}.yaml"
    path.write_text(
        f"name: bench{n}\nallow_modules: [benchmarks.bench_engine]\n"
        f"pipeline: {{class_path: benchmarks.bench_engine.WorkPipeline, init_args: {{seconds: {seconds}}}}}\n"
        f"grid:\n  - run:\n{levels}\n"
    )
    return path


def timed_study(path: Path, runs: Path) -> float:
    t0 = time.perf_counter()
    study = load_study(path)
    summary = run_study(study, InProcessExecutor(), runs_dir=runs, progress=LogProgress(io.StringIO()))
    assert not summary.failed, summary.lines()
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = 100
        study = write_study(tmp, n, 0.0)
        t0 = time.perf_counter()
        for i in range(n):
            work(0.0, i)
        bare = time.perf_counter() - t0
        harnessed = timed_study(study, tmp / "runs")
        per_run_ms = (harnessed - bare) / n * 1000
        print(f"100 trivial runs: bare {bare * 1000:.1f} ms, through the harness {harnessed:.2f} s "
              f"→ overhead {per_run_ms:.1f} ms per run (target < 50 ms)")

        five = write_study(tmp, 1, 5.0)
        t5 = timed_study(five, tmp / "runs")
        print(f"one 5-second run: {t5:.3f} s → overhead {(t5 - 5.0) / 5.0 * 100:.2f}% (target < 2%)")

        command = [sys.executable, "-m", "harness.cli", "run", str(study), "--runs-dir", str(tmp / "runs"), "--plain"]
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True)  # writes the report, as a first run would
        t0 = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        rerun = time.perf_counter() - t0
        assert proc.returncode == 0 and "100 already complete" in proc.stdout, proc.stdout + proc.stderr
        print(f"rerun of the completed 100-run study (whole `harness run` process): {rerun:.2f} s (target < 3 s)")


if __name__ == "__main__":
    main()
