"""Errors the user can act on.

Anything raised as a :class:`HarnessError` is printed by the CLI as one line (``error: ...``) with exit
code 2 and no traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A problem with the user's input or environment, stated in one line."""

    exit_code = 2


class ConfigError(HarnessError):
    """A study file, override or plugin config that cannot be used as written."""


class CheckpointError(HarnessError):
    """A checkpoint that is missing, corrupt or does not match the model it is loaded into."""


class CorruptFileError(HarnessError):
    """A run-store file that exists but cannot be read (garbage, bad UTF-8, not a JSON object)."""


class DiskFullError(HarnessError):
    """No space left (ENOSPC/EDQUOT) where a run writes: every later run would fail the same way, so the
    study stops; the message names the folder."""


class MissingDependencyError(HarnessError):
    """An optional package needed by the chosen feature is not installed."""


class TrainingDiverged(HarnessError):
    """A loss or gradient became NaN/Inf; the message names the step and the term."""


def require(module: str, *, extra: str | None = None, feature: str | None = None):
    """Import an optional dependency lazily, with an error that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'causal-video-harness[{extra}]'" if extra else f"pip install {module.split('.')[0]}"
        what = f" (needed for {feature})" if feature else ""
        raise MissingDependencyError(f"optional dependency '{module}' is not installed{what}; {hint}") from exc
