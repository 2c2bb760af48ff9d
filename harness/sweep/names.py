"""Short parameter names for the sweep's figures and tables: ``alpha``, not ``method.init_args.alpha``.

A sweep names its parameters by their path in the pipeline's config; on a figure's axis every one then
reads ``method.init_args....``. The short name drops ``init_args`` and the leading path all parameters
share, and keeps a longer name wherever two would otherwise read the same.
"""

from __future__ import annotations

from collections.abc import Iterable

_PLUMBING = {"init_args"}


def short_names(names: Iterable[str]) -> dict[str, str]:
    """Full dotted name → the shortest unambiguous readable name."""
    names = list(dict.fromkeys(names))
    parts = {n: [p for p in n.split(".") if p not in _PLUMBING] or [n] for n in names}
    common = 0
    if len(names) > 1:
        shortest = min(len(p) for p in parts.values())
        while common < shortest - 1 and len({tuple(p[: common + 1]) for p in parts.values()}) == 1:
            common += 1
    elif names:
        common = len(parts[names[0]]) - 1
    out = {n: ".".join(p[common:]) for n, p in parts.items()}
    if len(set(out.values())) < len(out):  # a clash: the names without plumbing, unshortened
        out = {n: ".".join(p) for n, p in parts.items()}
    if len(set(out.values())) < len(out):
        out = {n: n for n in names}
    return out
