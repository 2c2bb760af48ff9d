"""Executors a study file can name under ``executor:``.

The local ones belong to the engine (a study runs without any plugin); they are re-exported here so a
study file names every executor in one namespace: ``harness.executors.ProcessPoolExecutor``, and the
cluster ones ``harness.executors.cluster.RayExecutor`` / ``harness.executors.cluster.SubmititExecutor``.
"""

from harness.engine.executors import Executor, InProcessExecutor, ProcessPoolExecutor

__all__ = ["Executor", "InProcessExecutor", "ProcessPoolExecutor"]
