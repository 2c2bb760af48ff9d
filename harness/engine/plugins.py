"""Plugins built from their ``class_path``/``init_args`` config, with jsonargparse's errors made one line.

Apart from :mod:`harness.engine.study` so the runner can build a run's plugins without the study
machinery above it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from jsonargparse import ArgumentError, ArgumentParser

from harness.engine.config import format_parse_error
from harness.errors import ConfigError


def parse_config(parser: ArgumentParser, raw: Mapping[str, Any], source: str, prefix: str = "",
                 top_level: Sequence[str] = ()) -> Any:
    """``parser.parse_object`` with its error as one ``source: key 'a.b': reason`` line."""
    try:
        return parser.parse_object(copy.deepcopy(dict(raw)))  # jsonargparse may rewrite nested values in place
    except ArgumentError as exc:
        raise ConfigError(f"{source}: {format_parse_error(str(exc), raw, prefix, top_level)}") from None


@functools.cache
def _plugin_parser(base: type, key: str) -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument(f"--{key}", type=base, required=True)
    return parser


def instantiate_plugin(config: Mapping[str, Any], base: type, source: str, key: str) -> Any:
    """Build one plugin from its resolved ``class_path``/``init_args`` config."""
    parser = _plugin_parser(base, key)
    cfg = parse_config(parser, {key: dict(config)}, source)
    try:
        return getattr(parser.instantiate(cfg), key)
    except ConfigError as exc:  # a constructor's own check: say which file and plugin it is about
        text = str(exc)
        raise ConfigError(text if text.startswith(f"{source}: ") else f"{source}: key '{key}': {text}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: key '{key}': {exc}") from None
