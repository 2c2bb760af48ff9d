"""Sweeps on a real PostgreSQL server, started by the test on loopback in a temporary folder.

PostgreSQL refuses to run as root, so under root (CI) the server runs as the ``postgres`` user that
the Debian package creates (scripts/install_postgres.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from harness.commands.sweep import sweep

from .test_sweep import worker_proc, write


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server not installed (run scripts/install_postgres.sh)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "harness", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    opts = f"-p {port} -k {folder} -h 127.0.0.1 -c fsync=off -c max_connections=50"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="harness", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql://harness@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True,
                       timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_three_workers_on_postgres_complete_every_trial_once(tmp_path, postgres_url):
    study, runs = write(tmp_path, sleep=0.05), tmp_path / "runs"
    assert sweep(study, runs_dir=runs, storage=postgres_url, n_trials=0, report=False) == 0
    procs = [worker_proc(study, runs, 3, storage=postgres_url) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    loaded = optuna.load_study(study_name="sw", storage=postgres_url.replace("postgresql://", "postgresql+psycopg2://"))
    trials = loaded.get_trials()
    assert len(trials) == 9 and all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(9))
    assert sum(t.params == {"scale": 1.0} for t in trials) >= 1  # the baseline, enqueued once by the sweep
    workers = [t.user_attrs["harness.worker"] for t in trials]
    assert len(set(workers)) == 3 and all(workers.count(w) == 3 for w in set(workers))
    hashes = [t.user_attrs["harness.runs"][0] for t in trials]
    assert len(set(hashes)) == 9
    for h in hashes:
        assert len((runs / "sw" / h / "events.jsonl").read_text().splitlines()) == 3


def test_a_name_clash_on_postgres_is_refused_before_any_trial(tmp_path, postgres_url):
    from harness.errors import ConfigError

    study, runs = write(tmp_path), tmp_path / "runs"
    other = write(tmp_path, name="other.yaml")
    assert sweep(study, runs_dir=runs, storage=postgres_url, n_trials=0, report=False, overrides=["name=clash"]) == 0
    with pytest.raises(ConfigError, match="study 'clash' already exists in storage 'postgresql"):
        sweep(other, runs_dir=runs, storage=postgres_url, n_trials=1,
              overrides=["name=clash", "sweep.space.scale={low: 0.5, high: 8.0}"])
    assert not list((runs / "clash").glob("*/config.yaml"))
