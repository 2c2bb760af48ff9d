"""What ``harness eval --output-dir X`` writes: VBench's own results layout, plus who scored it.

- ``X/results/<name>_eval_results.json``: exactly VBench's file, ``{dimension: [aggregate, [{video_path,
  video_results}, ...]]}``, so VBench's ``cal_final_score.py`` and :func:`harness.evaluation.ingest.read_eval_results`
  read it (the vbench backend's own file is this one);
- ``X/results.json``: the same per-video and aggregate scores under ``results``, with the evaluator and its
  version, the mode, the raw and normalised score of each dimension and, when every dimension is there,
  VBench's Total / Quality / Semantic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import __version__
from harness.evaluation.ingest import read_eval_results
from harness.evaluation.vbench import VBENCH, VBENCH_KEYS, final_scores
from harness.io.atomic import atomic_write_json

VBENCH_VERSION = "0.1.5"  # the release the vbench backend runs and the weight-free flicker matches


def weight_free_results(samples_dir: Path) -> dict[str, list[Any]]:
    """temporal_flickering of every sample, in VBench's layout (the aggregate is the mean, as vbench's)."""
    from harness.evaluation.flicker import temporal_flickering
    from harness.evaluation.vbench_backend import collect_samples

    groups = collect_samples(samples_dir)
    per_video = [{"video_path": s.path.name, "video_results": float(temporal_flickering(s.path))}
                 for samples in groups.values() for s in samples]
    mean = sum(v["video_results"] for v in per_video) / len(per_video)
    return {"temporal_flickering": [mean, per_video]}


def evaluator(backend: str) -> dict[str, str]:
    if backend == "weight-free":
        return {"name": "harness weight-free", "version": __version__,
                "note": f"temporal_flickering computed exactly as vbench {VBENCH_VERSION} does, no weights"}
    return {"name": "VBench", "version": VBENCH_VERSION, "note": "vbench run in its own environment"}


def write_results(output_dir: Path, name: str, backend: str, mode: str | None, results: dict[str, list[Any]]) -> Path:
    """Both files (see the module docstring); returns ``results.json``."""
    output_dir = Path(output_dir)
    vbench_file = output_dir / "results" / f"{name}_eval_results.json"
    vbench_file.parent.mkdir(parents=True, exist_ok=True)
    if not vbench_file.exists() or json.loads(vbench_file.read_text(encoding="utf-8")) != results:
        atomic_write_json(vbench_file, results)
    raw = read_eval_results(vbench_file)  # the file reads back the way every results file is read
    scores = {k: {"raw": raw[k], "raw_percent": 100 * raw[k], "normalised": 100 * VBENCH.dimension(k).normalise(raw[k])}
              for k in VBENCH_KEYS if k in raw}
    summary: dict[str, Any] = {"evaluator": evaluator(backend), "mode": mode, "videos": _videos(results),
                               "eval_results": str(vbench_file.relative_to(output_dir)), "scores": scores,
                               "results": results}
    if all(k in raw for k in VBENCH_KEYS):
        final = final_scores(raw)
        summary["final"] = {"total": final.total, "quality": final.quality, "semantic": final.semantic}
    path = output_dir / "results.json"
    atomic_write_json(path, summary)
    return path


def read_vbench_results(output_dir: Path, name: str) -> dict[str, list[Any]]:
    """The file the vbench backend left in ``output_dir/results``."""
    return json.loads((Path(output_dir) / "results" / f"{name}_eval_results.json").read_text(encoding="utf-8"))


def _videos(results: dict[str, list[Any]]) -> int:
    return max((len(entry[1]) for entry in results.values() if len(entry) > 1 and isinstance(entry[1], list)),
               default=0)
