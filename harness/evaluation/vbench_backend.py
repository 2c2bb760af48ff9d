"""Drive vbench 0.1.5, in its own virtual environment, on a folder of harness samples.

vbench pins numpy<2 and transformers==4.33.2, so it cannot be imported here; it lives in the venv
that ``scripts/vbench_env.sh`` creates (default ``.cache/vbench-venv`` at the repository root, or
the interpreter named by ``HARNESS_VBENCH_PYTHON``) and runs as a subprocess. The flow:

1. collect samples: every ``.mp4`` in the folder; its prompt comes from the sidecar JSON
   (``extra.vbench_prompt`` first, then an extended prompt mapped back to VBench's original, then
   ``prompt``) or, without a sidecar, from a ``{prompt}-{i}.mp4`` file name;
2. check, BEFORE launching vbench, that every requested dimension's weights are on disk (vbench
   would otherwise try ``wget``, which fails offline), naming the file and the variable to set;
3. stage hard links (or copies) named ``{prompt}-{i}.mp4`` in ``<output>/videos`` (vbench's standard
   mode matches these names and reads the suffix of the first file it lists, so the folder holds
   only videos);
4. run ``VBench(device, full_info, results).evaluate(..., local=True, mode=...)`` and ingest
   ``<output>/results/<name>_eval_results.json``.

Backends are a registry: ``vbench`` (the real thing) and ``weight-free`` (our exact re-implementation
of the one dimension that needs no weights, ``temporal_flickering``, no vbench needed).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.errors import ConfigError, HarnessError, MissingDependencyError
from harness.evaluation.ingest import read_eval_results
from harness.evaluation.vbench import VBENCH_KEYS

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".cache" / "vbench-venv"
PYTHON_VARIABLE = "HARNESS_VBENCH_PYTHON"
CACHE_VARIABLE = "VBENCH_CACHE_DIR"
MODES = ("vbench_standard", "custom_input")
SAMPLES_PER_PROMPT = 5  # vbench_standard looks for {prompt}-0 .. {prompt}-4
CUSTOM_INPUT_UNSUPPORTED = {
    "object_class",
    "multiple_objects",
    "scene",
    "appearance_style",
    "color",
    "spatial_relationship",
}

# Files vbench 0.1.5 loads with local=True (vbench/utils.py init_submodules and the dimension modules),
# as (variable naming the root, its default under the home folder, path under the root).
_CACHE = (CACHE_VARIABLE, ".cache/vbench")
_GRIT = (*_CACHE, "grit_model/grit_b_densecap_objectdet.pth")
_VICLIP = ((*_CACHE, "ViCLIP/ViClip-InternVid-10M-FLT.pth"), (*_CACHE, "ViCLIP/bpe_simple_vocab_16e6.txt.gz"))
WEIGHT_FILES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "subject_consistency": (
        (*_CACHE, "dino_model/facebookresearch_dino_main/hubconf.py"),
        (*_CACHE, "dino_model/dino_vitbase16_pretrain.pth"),
        ("TORCH_HOME", ".cache/torch", "hub/checkpoints/dino_vitbase16_pretrain.pth"),
    ),
    "background_consistency": ((*_CACHE, "clip_model/ViT-B-32.pt"),),
    "temporal_flickering": (),
    "motion_smoothness": ((*_CACHE, "amt_model/amt-s.pth"),),
    "dynamic_degree": ((*_CACHE, "raft_model/models/raft-things.pth"),),
    "aesthetic_quality": (
        (*_CACHE, "clip_model/ViT-L-14.pt"),
        (*_CACHE, "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth"),
    ),
    "imaging_quality": ((*_CACHE, "pyiqa_model/musiq_spaq_ckpt-358bb6af.pth"),),
    "object_class": (_GRIT,),
    "multiple_objects": (_GRIT,),
    "human_action": ((*_CACHE, "umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth"),),
    "color": (_GRIT,),
    "spatial_relationship": (_GRIT,),
    "scene": ((*_CACHE, "caption_model/tag2text_swin_14m.pth"),),
    "appearance_style": ((*_CACHE, "clip_model/ViT-B-32.pt"),),
    "temporal_style": _VICLIP,
    "overall_consistency": _VICLIP,
}

# Runs inside the vbench environment (stdlib + vbench only); argv[1] is the JSON spec we write.
_RUNNER = """
import json, sys
spec = json.load(open(sys.argv[1], encoding="utf-8"))
from vbench import VBench
bench = VBench(spec["device"], spec["full_info"], spec["results_dir"])
extra = {"prompt_list": spec["prompt_list"]} if spec["mode"] == "custom_input" else {}
bench.evaluate(videos_path=spec["videos_dir"], name=spec["name"], dimension_list=spec["dimensions"],
               local=True, mode=spec["mode"], **extra)
"""


@dataclass
class EvalOptions:
    """Everything a backend may need besides the samples folder and the dimensions."""

    output_dir: Path | None = None
    mode: str = "vbench_standard"
    device: str = "cpu"
    full_info: Path | None = None
    extended_prompts: Path | None = None
    vbench_python: Path | None = None
    name: str = "harness"
    timeout_s: float | None = None


@dataclass(frozen=True)
class Sample:
    path: Path
    prompt: str
    order: tuple[int, str]


def check_dimensions(dimensions: Sequence[str]) -> list[str]:
    unknown = [d for d in dimensions if d not in VBENCH_KEYS]
    if unknown:
        raise ConfigError(f"unknown VBench dimension(s) {unknown}; choose from {', '.join(VBENCH_KEYS)}")
    if not dimensions:
        raise ConfigError("no VBench dimension requested")
    return list(dict.fromkeys(dimensions))


def check_weights(dimensions: Sequence[str], environ: dict[str, str] | None = None) -> None:
    """Fail before launching vbench when a dimension's weights are absent, naming file and variable."""
    environ = dict(os.environ if environ is None else environ)
    for dimension in dimensions:
        for variable, default, relative in WEIGHT_FILES[dimension]:
            root = Path(environ.get(variable) or Path.home() / default)
            if not (root / relative).exists():
                raise MissingDependencyError(
                    f"VBench dimension '{dimension}' needs weights file {root / relative}, which is missing; "
                    f"download it on a connected machine and set {variable} to the folder holding {relative}"
                )


def find_vbench_python(explicit: Path | None = None) -> Path:
    """The vbench environment's interpreter: argument, then $HARNESS_VBENCH_PYTHON, then the default venv."""
    python = explicit or (Path(os.environ[PYTHON_VARIABLE]) if os.environ.get(PYTHON_VARIABLE) else None)
    python = python or DEFAULT_VENV / "bin" / "python"
    if not Path(python).exists():
        raise MissingDependencyError(
            f"vbench environment not found ({python}); "
            f"create it with scripts/vbench_env.sh or set {PYTHON_VARIABLE}"
        )
    return Path(python)


def bundled_full_info(python: Path) -> Path:
    """``VBench_full_info.json`` inside that environment's vbench package (located, not imported: slow)."""
    code = "import importlib.util as u; print(u.find_spec('vbench').submodule_search_locations[0])"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MissingDependencyError(
            f"{python}: vbench is not installed in this environment; run scripts/vbench_env.sh"
        )
    return Path(done.stdout.strip()) / "VBench_full_info.json"


def load_prompt_suite(path: Path) -> list[dict]:
    """Entries ``{prompt_en, dimension[, auxiliary_info]}`` of a ``VBench_full_info.json``."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read VBench prompt suite ({exc})") from exc
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "prompt_en" in e for e in entries):
        raise ConfigError(f"{path}: expected a list of {{prompt_en, dimension}} entries")
    return entries


def extended_to_original(suite: list[dict], extended_path: Path) -> dict[str, str]:
    """Map each line of an extended prompt list (aligned 1:1 with the suite) to VBench's original prompt."""
    lines = Path(extended_path).read_text(encoding="utf-8").splitlines()
    lines = lines[:-1] if lines and not lines[-1].strip() else lines
    if len(lines) != len(suite):
        raise ConfigError(
            f"{extended_path}: {len(lines)} prompts, expected {len(suite)} (one per suite entry)"
        )
    return {ext.strip(): entry["prompt_en"] for ext, entry in zip(lines, suite)}


def _sample_prompt(path: Path, originals: dict[str, str]) -> tuple[str, int]:
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        from harness.io.video import read_sidecar

        meta = read_sidecar(path)
        prompt = meta.extra.get("vbench_prompt") or originals.get(meta.prompt) or meta.prompt
        return str(prompt), meta.seed
    match = re.fullmatch(r"(.+)-(\d+)", path.stem)
    if not match:
        raise ConfigError(
            f"{path}: no sidecar JSON and the name is not '{{prompt}}-{{i}}.mp4'; VBench cannot match it"
        )
    return match.group(1), int(match.group(2))


def collect_samples(samples_dir: Path, originals: dict[str, str] | None = None) -> dict[str, list[Sample]]:
    """Videos of a folder grouped by VBench prompt, each group ordered by (seed or index, name)."""
    samples_dir = Path(samples_dir)
    if not samples_dir.is_dir():
        raise ConfigError(f"{samples_dir}: samples folder not found")
    groups: dict[str, list[Sample]] = defaultdict(list)
    for path in sorted(samples_dir.glob("*.mp4")):
        prompt, order = _sample_prompt(path, originals or {})
        if "/" in prompt or len((prompt + "-0.mp4").encode()) > 255:
            raise ConfigError(f"{path}: prompt cannot be a file name for VBench: {prompt[:80]!r}")
        groups[prompt].append(Sample(path, prompt, (order, path.name)))
    if not groups:
        raise ConfigError(f"{samples_dir}: no .mp4 samples in this folder")
    return {prompt: sorted(group, key=lambda s: s.order) for prompt, group in groups.items()}


def check_against_suite(
    groups: dict[str, list[Sample]], suite: list[dict], dimensions: Sequence[str], source: Path
) -> None:
    """In standard mode every prompt must belong to a requested dimension, with at most 5 samples."""
    wanted = {e["prompt_en"] for e in suite if set(e.get("dimension", ())) & set(dimensions)}
    for prompt, samples in groups.items():
        if prompt not in wanted:
            raise ConfigError(
                f"{samples[0].path}: prompt {prompt[:80]!r} is not a VBench prompt of "
                f"{list(dimensions)} in {source.name}; VBench would not match this file (for samples of "
                "your own prompts, e.g. sprites, use --mode custom_input)"
            )
        if len(samples) > SAMPLES_PER_PROMPT:
            raise ConfigError(
                f"{samples[SAMPLES_PER_PROMPT].path}: more than {SAMPLES_PER_PROMPT} samples for "
                f"prompt {prompt[:80]!r}; vbench_standard reads only -0 .. -4"
            )
    missing = len(wanted - set(groups))
    if missing:
        log.warning(
            "%d of %d VBench prompts of %s have no sample; the score is not comparable to published ones",
            missing,
            len(wanted),
            list(dimensions),
        )


def stage_videos(groups: dict[str, list[Sample]], videos_dir: Path) -> dict[str, str]:
    """Fill ``videos_dir`` (recreated) with ``{prompt}-{i}.mp4`` links; returns {file name: prompt}."""
    if videos_dir.exists():
        shutil.rmtree(videos_dir)
    videos_dir.mkdir(parents=True)
    names = {}
    for prompt, samples in groups.items():
        for i, sample in enumerate(samples):
            target = videos_dir / f"{prompt}-{i}.mp4"
            try:
                os.link(sample.path, target)
            except OSError:
                shutil.copyfile(sample.path, target)
            names[target.name] = prompt
    return names


def run_vbench(python: Path, spec: dict, output_dir: Path, timeout_s: float | None) -> Path:
    """Run the runner in the vbench environment; its output goes to ``<output>/vbench.log``."""
    results = Path(spec["results_dir"]) / f"{spec['name']}_eval_results.json"
    results.unlink(missing_ok=True)  # never ingest a previous run's scores
    spec_path = output_dir / "vbench_spec.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    log_path = output_dir / "vbench.log"
    with open(log_path, "w", encoding="utf-8") as log_file:
        try:
            done = subprocess.run(
                [str(python), "-c", _RUNNER, str(spec_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
                cwd=output_dir,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"vbench ran past {timeout_s} s; see {log_path}") from exc
    if done.returncode != 0:
        lines = [
            ln for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()
        ]
        raise HarnessError(
            f"vbench exited with code {done.returncode}: {lines[-1][:200] if lines else ''}; see {log_path}"
        )
    return results


class Backend(Protocol):
    default_dimensions: tuple[str, ...]

    def evaluate(
        self, samples_dir: Path, dimensions: list[str], options: EvalOptions
    ) -> dict[str, float]: ...


class VBenchBackend:
    """The real vbench 0.1.5, run in its own environment."""

    default_dimensions = VBENCH_KEYS

    def evaluate(self, samples_dir: Path, dimensions: list[str], options: EvalOptions) -> dict[str, float]:
        if options.mode not in MODES:
            raise ConfigError(f"unknown VBench mode '{options.mode}'; choose from {MODES}")
        if options.mode == "custom_input" and CUSTOM_INPUT_UNSUPPORTED & set(dimensions):
            raise ConfigError(
                f"dimensions {sorted(CUSTOM_INPUT_UNSUPPORTED & set(dimensions))} need "
                "vbench_standard mode (they read auxiliary info from the prompt suite)"
            )
        check_weights(dimensions)
        python = None if options.full_info else find_vbench_python(options.vbench_python)
        full_info = Path(options.full_info or bundled_full_info(python)).resolve()
        suite = load_prompt_suite(full_info)
        originals = extended_to_original(suite, options.extended_prompts) if options.extended_prompts else {}
        groups = collect_samples(samples_dir, originals)
        if options.mode == "vbench_standard":
            check_against_suite(groups, suite, dimensions, full_info)
        output_dir = Path(options.output_dir or Path(samples_dir).resolve().parent / "vbench").resolve()
        python = python or find_vbench_python(options.vbench_python)
        names = stage_videos(groups, output_dir / "videos")
        spec = {
            "device": options.device,
            "full_info": str(full_info),
            "results_dir": str(output_dir / "results"),
            "videos_dir": str(output_dir / "videos"),
            "name": options.name,
            "dimensions": dimensions,
            "mode": options.mode,
            "prompt_list": names,
        }
        results = run_vbench(python, spec, output_dir, options.timeout_s)
        return read_eval_results(results)


class WeightFreeBackend:
    """Our exact temporal_flickering on every mp4 of the folder (the mean over videos, as vbench)."""

    default_dimensions = ("temporal_flickering",)

    def evaluate(self, samples_dir: Path, dimensions: list[str], options: EvalOptions) -> dict[str, float]:
        from harness.evaluation.flicker import temporal_flickering_score

        unsupported = [d for d in dimensions if d not in self.default_dimensions]
        if unsupported:
            raise ConfigError(f"backend 'weight-free' computes only temporal_flickering, not {unsupported}")
        groups = collect_samples(samples_dir)
        paths = [s.path for samples in groups.values() for s in samples]
        return {"temporal_flickering": temporal_flickering_score(paths)}


BACKENDS: dict[str, Backend] = {"vbench": VBenchBackend(), "weight-free": WeightFreeBackend()}


def evaluate_samples(
    samples_dir: str | os.PathLike,
    backend: str = "vbench",
    dimensions: Sequence[str] | None = None,
    **options,
) -> dict[str, float]:
    """Score a folder of samples: ``{dimension: raw}`` (fractions, as VBench reports them).

    ``options`` are the fields of :class:`EvalOptions` (output_dir, mode, device, full_info,
    extended_prompts, vbench_python, name, timeout_s).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown evaluation backend '{backend}'; choose from {sorted(BACKENDS)}")
    chosen = BACKENDS[backend]
    try:
        opts = EvalOptions(**options)
    except TypeError as exc:
        raise ConfigError(f"evaluate_samples: {exc}") from exc
    dims = check_dimensions(list(dimensions) if dimensions else list(chosen.default_dimensions))
    return chosen.evaluate(Path(samples_dir), dims, opts)
