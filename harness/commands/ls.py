"""``harness ls``: what is in a runs folder."""

from __future__ import annotations

from pathlib import Path

from harness.engine.driver import ls_rows
from harness.engine.store import CORRUPT, require_folder

COLUMNS = ("study", "hash", "variant", "seed", "status", "duration_s", "headline")
FLAG_LEGEND = ("flag: outdated = older plugin/stage versions (recomputed by `harness run`, left out of reports); "
               "commit = not the study's usual git commit")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    columns = COLUMNS + ("flag",) if any(r.get("flag") for r in rows) else COLUMNS
    cells = [[_cell(r.get(c)) if c != "flag" else r.get(c) or "" for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells])


def ls(runs_dir: Path = Path("runs")) -> int:
    """Print one line per run: study, hash, variant, seed, status, duration and headline metric."""
    rows = ls_rows(require_folder(runs_dir))
    if not rows:
        print(f"{runs_dir}: no runs yet")
        return 0
    print(format_table(rows))
    if any(r.get("flag") for r in rows):
        print(FLAG_LEGEND)
    failed = [r for r in rows if r["status"] in ("failed", CORRUPT)]
    for r in failed:
        print(f"{r['status']} {r['hash']} ({r['variant']}, seed {r['seed']}): {r['reason']}")
    return 0
