"""One run, fully resolved: the unit the engine hashes, stores and executes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.engine.identity import short_hash


@dataclass(frozen=True)
class RunSpec:
    """One run, fully resolved: what the engine hashes, stores and executes."""

    study: str
    labels: dict[str, str]
    seed: int
    config: dict[str, Any]  # {"pipeline": {...resolved...}, "seed": int, "versions": {class_path: int}}
    hash: str
    allow_modules: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        return short_hash(self.hash)

    @property
    def name(self) -> str:
        return "/".join([*self.labels.values(), f"seed={self.seed}"])

    @property
    def job_type(self) -> str:
        """The row's variant (``dmd``, ``self_forcing_1step``), for grouping in trackers; without a variant
        axis, the pipeline's method plugin (its class would call the ``dmd`` row, ASD at α = 0, ``asd``)."""
        if self.labels.get("variant"):
            return str(self.labels["variant"])
        pipe = self.config["pipeline"]
        method = (pipe.get("init_args") or {}).get("method")
        class_path = method.get("class_path") if isinstance(method, Mapping) else pipe.get("class_path")
        return str(class_path).rsplit(".", 1)[-1].lower()
