"""What every command's parser shares: one-line errors, readable help, the study arguments."""

from __future__ import annotations

import re
from pathlib import Path

from jsonargparse import ArgumentParser, DefaultHelpFormatter


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with types as a user writes them (``path``, not ``<class 'Path'>``)."""

    def _get_type_str(self, action) -> str | None:
        text = super()._get_type_str(action)
        if text is None:
            return None
        text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)
        return re.sub(r"\bPath\b", "path", text)


def new_parser(description: str | None = None, **kwargs) -> ArgumentParser:
    """Every command's parser: one-line errors (raised, not printed) and readable help."""
    return ArgumentParser(description=description, exit_on_error=False, formatter_class=HelpFormatter, **kwargs)


def study_args(p: ArgumentParser, several: bool = False) -> None:
    """The study file(s), ``--preset``, ``--set`` and ``--print-config``: what every study command takes."""
    if several:
        p.add_argument("study", type=Path, nargs="+", help="study YAML files (or a run's config.yaml)")
    else:
        p.add_argument("study", type=Path, help="study YAML file (or a run folder's config.yaml: that one run)")
    p.add_argument("--preset", type=str, default=None, help="a preset defined in the study's 'presets'")
    p.add_argument("-s", "--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                   help="override a key of the study, e.g. --set seeds=[0,1] (repeatable; merges over the preset)")
    p.add_argument("--print-config", dest="print_config", action="store_true",
                   help="print the fully resolved study (preset, overrides and defaults applied) and exit; "
                        "--print_config works too")
