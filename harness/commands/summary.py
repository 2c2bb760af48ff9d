"""The table ``harness run`` prints at the end: one line per row of the study, its seeds averaged."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

_SEED = re.compile(r"/?seed=\d+$")


def _row(name: str) -> str:
    return _SEED.sub("", name) or "-"


def summary_table(outcomes: Iterable[Any]) -> str:
    """Rows (run names without the seed) × runs complete, the headline metric's mean over seeds and its
    range, and the seconds computed in this invocation. Empty when there is no outcome."""
    groups: dict[str, list[Any]] = {}
    for o in outcomes:
        groups.setdefault(_row(o.name), []).append(o)
    if not groups:
        return ""
    lines = []
    for row, items in groups.items():
        ok = [o for o in items if o.ok]
        headline = next((o.headline for o in ok if o.headline), None)
        values = [float(o.metrics[headline]) for o in ok if headline and _number(o.metrics.get(headline))]
        if values:
            mean = sum(values) / len(values)
            spread = f" [{min(values):.4g}, {max(values):.4g}]" if len(values) > 1 else ""
            score = f"{headline}={mean:.4g}{spread}"
        else:
            score = "-"
        seconds = sum(o.seconds for o in items)
        lines.append((row, f"{len(ok)}/{len(items)}", score, f"{seconds:.1f}" if seconds else "-"))
    head = ("row", "complete", "headline (mean over seeds [min, max])", "seconds")
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *(fmt(line) for line in lines)])


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
