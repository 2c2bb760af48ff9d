"""The video gallery of a study's page: table rows × prompts, one ``<video>`` per seed in each cell.

The runs keep their first samples as mp4 with a JSON sidecar (prompt, noise seed). Within a seed every
row samples the same noise, so a column compares rows on one prompt and one noise draw. The mp4 files are
hard-linked (copied where a link cannot be made) into ``videos/`` beside ``index.html``, so the page plays
them offline and keeps playing when the report folder is moved on its own.
"""

from __future__ import annotations

import html
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from reports.figure_base import FigureInputs
from reports.tables import TableRow

MAX_PROMPTS, MAX_SEEDS = 4, 3
VIDEOS_DIRNAME = "videos"


@dataclass
class Clip:
    """One mp4 of the gallery: where it lies in the report folder, and what it shows."""

    file: str  # relative to the report folder
    seed: object
    run: str


@dataclass
class Gallery:
    prompts: list[str]
    rows: list[tuple[str, dict[str, list[Clip]]]]  # (row label, prompt -> clips by seed)
    seeds: list[object] = field(default_factory=list)  # the seeds a cell shows, in order
    all_seeds: int = 0  # the seeds the study has
    all_prompts: int = 0  # the distinct prompts the runs kept samples of


def _samples(samples_dir: Path) -> list[tuple[Path, str, object]]:
    """(mp4, prompt, noise seed) of a run's kept samples, one per prompt (its first noise draw)."""
    from harness.io.video import read_sidecar

    found, seen = [], set()
    for path in sorted(samples_dir.glob("sample_*.mp4")):
        try:
            meta = read_sidecar(path)
        except HarnessError:
            continue  # no sidecar: the prompt is unknown, so the clip has no column
        if meta.prompt not in seen:
            seen.add(meta.prompt)
            found.append((path, meta.prompt, meta.seed))
    return found


def _place(source: Path, out_dir: Path, name: str) -> str:
    """Hard-link (else copy) ``source`` to ``out_dir/videos/name``; returns the relative path."""
    target = out_dir / VIDEOS_DIRNAME / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: a copy plays the same
        shutil.copyfile(source, target)
    return f"{VIDEOS_DIRNAME}/{name}"


def build_gallery(inputs: FigureInputs) -> Gallery | None:
    """Rows × prompts of the kept samples; the prompts are those of the first row that has samples."""
    old = inputs.out_dir / VIDEOS_DIRNAME
    if old.is_dir():  # clips of runs no longer in the study must not linger
        shutil.rmtree(old)
    per_row: list[tuple[TableRow, dict[str, list[Clip]]]] = []
    prompts, seen = [], set()
    every_seed = sorted({s for s in inputs.study.complete["seed"].dropna()})
    seeds = every_seed[:MAX_SEEDS]
    for row in inputs.table.rows:
        cells: dict[str, list[Clip]] = {}
        runs = inputs.runs_of(row)
        for _, run in runs[runs["seed"].isin(seeds)].iterrows():
            for path, prompt, _noise in _samples(Path(run["samples_dir"])):
                seen.add(prompt)
                if prompt not in prompts and len(prompts) < MAX_PROMPTS:
                    prompts.append(prompt)
                if prompt in prompts:
                    file = _place(path, inputs.out_dir, f"{run['hash']}_{path.name}")
                    cells.setdefault(prompt, []).append(Clip(file, run["seed"], str(run["hash"])))
        if cells:
            per_row.append((row, cells))
    if not per_row:
        inputs.problems.append(f"{inputs.study.name}: no run kept an mp4 sample; no video gallery")
        return None
    return Gallery(prompts, [(row.label, cells) for row, cells in per_row], seeds, len(every_seed), len(seen))


def _seed(seed: object) -> str:
    return str(int(seed)) if isinstance(seed, float) and seed.is_integer() else str(seed)


def _clip(clip: Clip, runs_href: str) -> str:
    """The video, captioned with its seed, which links to the run folder when ``runs_href`` is given."""
    src, seed = html.escape(clip.file), f"seed {html.escape(_seed(clip.seed))}"
    if runs_href:
        seed = f'<a href="{html.escape(runs_href + clip.run)}/" title="run {html.escape(clip.run)}">{seed}</a>'
    return (f'<figure class="clip"><video src="{src}" controls loop muted playsinline '
            f'preload="auto"></video><figcaption>{seed}</figcaption></figure>')


def _cell(clips: list[Clip], seeds: list[object], runs_href: str) -> str:
    """A clip per seed; a seed without one (a failed run, no sample of the prompt) says so in its place."""
    by_seed = {_seed(c.seed): c for c in clips}
    parts = []
    for seed in seeds:
        clip = by_seed.get(_seed(seed))
        parts.append(_clip(clip, runs_href) if clip else f'<figure class="clip missing"><div>no sample</div>'
                                             f"<figcaption>seed {html.escape(_seed(seed))}</figcaption></figure>")
    return "".join(parts)


def gallery_html(gallery: Gallery, runs_href: str = "") -> str:
    """The gallery as an HTML table: a row per table row, a column per prompt, a clip per seed (its seed
    linking to its run folder, ``runs_href`` being the study folder relative to the page)."""
    head = "<th>Row</th>" + "".join(f"<th>{html.escape(p)}</th>" for p in gallery.prompts)
    body = []
    for label, cells in gallery.rows:
        tds = "".join(f"<td>{_cell(cells.get(p, []), gallery.seeds, runs_href)}</td>" for p in gallery.prompts)
        body.append(f"<tr><th>{html.escape(label)}</th>{tds}</tr>")
    prompts = (f"all {len(gallery.prompts)} prompts the runs kept samples of" if gallery.all_prompts <= len(gallery.prompts)
               else f"the first {len(gallery.prompts)} of the {gallery.all_prompts} prompts the runs kept samples of")
    seeds = (f"every seed ({len(gallery.seeds)})" if gallery.all_seeds <= len(gallery.seeds)
             else f"the first {len(gallery.seeds)} of {gallery.all_seeds} seeds")
    caption = (f"Rows: method · steps; columns: {prompts}; in each cell the model of {seeds}, the first noise "
               "draw of that prompt, which is the same for every row at a seed. The mp4 files lie in videos/ "
               "beside this page.")
    return (f'<div class="scroll"><table class="gallery"><caption>{html.escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
