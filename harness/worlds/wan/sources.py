"""Checkpoint sources named in a study: a local folder, or a Hugging Face hub id.

``Wan-AI/Wan2.1-T2V-14B-Diffusers`` is a hub id; ``/data/wan/ode_init``, ``./ckpt`` and ``~/ckpt`` are
folders. A folder that does not exist is one :class:`CheckpointError` naming the setting and the
path, before anything tries the network: otherwise a typo in a path would surface as a hub lookup
error about a repository nobody meant.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import CheckpointError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(source: str) -> bool:
    """``owner/name`` with no leading ``.``, ``/`` or ``~`` (a relative ``a/b`` folder that exists wins)."""
    return bool(_HUB_ID.match(source)) and not Path(source).expanduser().exists()


def checked_source(source: str | Path, setting: str) -> str:
    """``source`` as a string, after checking that a local folder exists; hub ids pass unchecked."""
    text = str(source)
    if looks_like_hub_id(text):
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise CheckpointError(f"WanWorld.{setting}: {path}: no such folder")
    return str(path)
