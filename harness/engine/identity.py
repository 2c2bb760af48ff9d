"""Run identity: a resolved config → canonical JSON → sha256.

Keys that only change where output goes or how much is logged do not change what a run computes, so
they are dropped before hashing: the same experiment always lands in the same folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Keys that never take part in a run's identity, wherever they appear in the config tree.
NON_IDENTITY_KEYS = frozenset(
    {
        "log_every",
        "progress_every",
        "checkpoint_every",
        "keep_checkpoints",
        "output_dir",
        "verbose",
        "num_workers",
    }
)

SHORT_HASH_LEN = 16


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items() if str(k) not in NON_IDENTITY_KEYS}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def canonical_json(config: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, identity-neutral keys removed."""
    return json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(config: Mapping[str, Any]) -> str:
    """Full sha256 hex digest of the canonical JSON."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def short_hash(full: str) -> str:
    """The folder name of a run: the first 64 bits of its hash."""
    return full[:SHORT_HASH_LEN]
