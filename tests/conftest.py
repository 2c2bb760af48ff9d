"""Shared fixtures: the project root, a way to call the CLI in-process or as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY_STUDY = ROOT / "tests" / "studies" / "toy.yaml"


@pytest.fixture(autouse=True)
def _quiet_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".wandb-config"))
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def harness_proc(*args: str, cwd: Path = ROOT, env: dict | None = None, **kw) -> subprocess.Popen:
    """Start ``harness ...`` as a real process (for kill and concurrency tests)."""
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env or cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def harness(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def write_study(tmp_path):
    """Write a study YAML into tmp_path and return its path."""

    def _write(text: str, name: str = "study.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (small tensors run faster without OpenMP hand-offs, and results do
    not depend on the thread count); restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
