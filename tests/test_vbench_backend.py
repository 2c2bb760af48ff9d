"""VBench backend: refusals before launching vbench, staging, and parity with the real vbench 0.1.5.

The parity tests need the vbench environment; the fixture creates it with scripts/vbench_env.sh when
it is absent (minutes, once) and skips only if it cannot be created on this machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.commands.eval import eval_command
from harness.errors import ConfigError, HarnessError, MissingDependencyError
from harness.evaluation.flicker import temporal_flickering
from harness.evaluation.ingest import per_video_rows
from harness.evaluation.vbench_backend import (
    DEFAULT_VENV,
    REPO_ROOT,
    check_weights,
    collect_samples,
    evaluate_samples,
    extended_to_original,
    find_vbench_python,
    stage_videos,
)
from harness.io.video import SampleMeta, write_video

FLICKER_PROMPTS = ["In a still frame, a stop sign", "a toilet, frozen in time", "a laptop, frozen in time"]


def clip(seed: int, noise: int, frames: int = 6, size: tuple[int, int] = (32, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 210, (1, *size, 3))
    return np.clip(base + rng.integers(-noise, noise + 1, (frames, *size, 3)), 0, 255).astype(np.uint8)


def write_samples(folder: Path, prompts: list[str], per_prompt: int = 2) -> list[Path]:
    paths = []
    for k, prompt in enumerate(prompts):
        for i in range(per_prompt):
            meta = SampleMeta(prompt, seed=100 * k + i, method="dmd", schedule="uniform:4", nfe=5)
            paths.append(
                write_video(folder / f"sample_{k}_{i}.mp4", clip(10 * k + i, noise=15 * k), fps=8, meta=meta)
            )
    return paths


def small_suite(tmp_path: Path) -> Path:
    suite = [{"prompt_en": p, "dimension": ["temporal_flickering"]} for p in FLICKER_PROMPTS]
    suite.append({"prompt_en": "a person is dancing", "dimension": ["human_action"]})
    path = tmp_path / "VBench_full_info.json"
    path.write_text(json.dumps(suite))
    return path


@pytest.fixture(scope="session")
def vbench_python() -> Path:
    try:
        return find_vbench_python()
    except MissingDependencyError:
        pass
    done = subprocess.run(
        [str(REPO_ROOT / "scripts" / "vbench_env.sh"), str(DEFAULT_VENV)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"vbench environment could not be created on this machine: {tail[0]}")
    return find_vbench_python()


# --- refusals that happen before vbench is launched (no vbench environment needed) ---------------


def test_missing_weights_named_with_cache_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(
        MissingDependencyError,
        match=r"'motion_smoothness' needs weights file .*cache/amt_model/amt-s.pth, which is "
        r"missing; .*set VBENCH_CACHE_DIR",
    ):
        check_weights(["temporal_flickering", "motion_smoothness"])
    (tmp_path / "cache" / "amt_model").mkdir(parents=True)
    (tmp_path / "cache" / "amt_model" / "amt-s.pth").write_bytes(b"x")
    check_weights(["temporal_flickering", "motion_smoothness"])


def test_missing_weights_checked_before_anything_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "cache"))
    write_samples(tmp_path / "samples", FLICKER_PROMPTS[:1])
    with pytest.raises(MissingDependencyError, match="ViClip-InternVid-10M-FLT.pth"):
        evaluate_samples(tmp_path / "samples", dimensions=["temporal_style"], output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # vbench was never launched


def test_sample_without_sidecar_or_vbench_name_is_named(tmp_path) -> None:
    (tmp_path / "s").mkdir()
    write_video(tmp_path / "s" / "clip.mp4", clip(0, 5))
    with pytest.raises(
        ConfigError, match=r"clip.mp4: no sidecar JSON and the name is not '\{prompt\}-\{i\}.mp4'"
    ):
        collect_samples(tmp_path / "s")


def test_prompt_outside_the_suite_is_named(tmp_path) -> None:
    write_samples(tmp_path / "s", ["a purple elephant juggling"], per_prompt=1)
    with pytest.raises(
        ConfigError,
        match=r"sample_0_0.mp4: prompt 'a purple elephant juggling' is not a VBench "
        r"prompt of \['temporal_flickering'\]",
    ):
        evaluate_samples(
            tmp_path / "s",
            dimensions=["temporal_flickering"],
            full_info=small_suite(tmp_path),
            output_dir=tmp_path / "out",
        )


def test_more_than_five_samples_per_prompt_refused(tmp_path) -> None:
    write_samples(tmp_path / "s", FLICKER_PROMPTS[:1], per_prompt=6)
    with pytest.raises(ConfigError, match="sample_0_5.mp4: more than 5 samples for prompt"):
        evaluate_samples(
            tmp_path / "s",
            dimensions=["temporal_flickering"],
            full_info=small_suite(tmp_path),
            output_dir=tmp_path / "out",
        )


def test_unknown_dimension_backend_and_option(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"unknown VBench dimension\(s\) \['flicker'\]"):
        evaluate_samples(tmp_path, dimensions=["flicker"])
    with pytest.raises(ConfigError, match="unknown evaluation backend 'vbench2'"):
        evaluate_samples(tmp_path, backend="vbench2")
    with pytest.raises(ConfigError, match="evaluate_samples: .*'colour'"):
        evaluate_samples(tmp_path, colour="red")
    with pytest.raises(ConfigError, match=r"need vbench_standard mode"):
        evaluate_samples(tmp_path, dimensions=["scene"], mode="custom_input")


def test_failed_vbench_run_names_its_log(tmp_path) -> None:
    write_samples(tmp_path / "s", FLICKER_PROMPTS[:1], per_prompt=1)
    with pytest.raises(
        HarnessError, match=r"vbench exited with code 1: .*No module named 'vbench'; see .*vbench.log"
    ):
        evaluate_samples(
            tmp_path / "s",
            dimensions=["temporal_flickering"],
            full_info=small_suite(tmp_path),
            output_dir=tmp_path / "out",
            vbench_python=Path(sys.executable),
        )
    assert (tmp_path / "out" / "videos" / f"{FLICKER_PROMPTS[0]}-0.mp4").is_file()


def test_staging_uses_vbench_names_and_extended_prompts(tmp_path) -> None:
    suite = json.loads(small_suite(tmp_path).read_text())
    extended = tmp_path / "extended.txt"
    extended.write_text("\n".join(f"{e['prompt_en']}, cinematic, highly detailed" for e in suite) + "\n")
    originals = extended_to_original(suite, extended)
    long_prompt = "a toilet, frozen in time, cinematic, highly detailed"
    write_video(tmp_path / "s" / "b.mp4", clip(1, 5), meta=SampleMeta(long_prompt, 9, "asd", "ffe:1*", 2))
    write_video(tmp_path / "s" / "a.mp4", clip(2, 5), meta=SampleMeta(long_prompt, 3, "asd", "ffe:1*", 2))
    write_video(tmp_path / "s" / "a laptop, frozen in time-0.mp4", clip(3, 5))  # already VBench-named
    names = stage_videos(collect_samples(tmp_path / "s", originals), tmp_path / "videos")
    assert names == {
        "a toilet, frozen in time-0.mp4": "a toilet, frozen in time",
        "a toilet, frozen in time-1.mp4": "a toilet, frozen in time",
        "a laptop, frozen in time-0.mp4": "a laptop, frozen in time",
    }
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == sorted(names)
    staged_first = (tmp_path / "videos" / "a toilet, frozen in time-0.mp4").read_bytes()
    assert staged_first == (tmp_path / "s" / "a.mp4").read_bytes()  # seed 3 before seed 9
    with pytest.raises(ConfigError, match=r"extended.txt: 2 prompts, expected 4"):
        extended.write_text("one\ntwo\n")
        extended_to_original(suite, extended)


def test_eval_command_prints_table_with_weight_free_backend(tmp_path, capsys) -> None:
    paths = write_samples(tmp_path / "s", FLICKER_PROMPTS[:2])
    assert eval_command(tmp_path / "s", backend="weight-free") == 0
    out = capsys.readouterr().out
    expected = np.mean([temporal_flickering(p) for p in paths])
    assert f"temporal_flickering     quality   {100 * expected:>10.3f}" in out  # raw, in percent
    assert "1 of 16 dimensions: no VBench total" in out


# --- parity with the real vbench 0.1.5 ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["vbench_standard", "custom_input"])
def test_temporal_flickering_matches_real_vbench(tmp_path, vbench_python, mode) -> None:
    write_samples(tmp_path / "samples", FLICKER_PROMPTS)
    write_video(
        tmp_path / "samples" / "odd.mp4",
        clip(99, 40, frames=9, size=(31, 45)),
        meta=SampleMeta(FLICKER_PROMPTS[0], 7, "dmd", "uniform:4", 5),
    )
    raw = evaluate_samples(
        tmp_path / "samples",
        dimensions=["temporal_flickering"],
        mode=mode,
        output_dir=tmp_path / "vb",
        vbench_python=vbench_python,
        timeout_s=300,
    )
    rows = per_video_rows(tmp_path / "vb" / "results" / "harness_eval_results.json")
    assert len(rows) == 7
    ours = [temporal_flickering(row["video_path"]) for row in rows]
    np.testing.assert_allclose(ours, [row["value"] for row in rows], rtol=0, atol=1e-6)
    assert raw["temporal_flickering"] == pytest.approx(np.mean(ours), abs=1e-6)
    assert max(ours) == 1.0 and min(ours) < 0.99  # static clips score 1, noisy ones really flicker
    weight_free = evaluate_samples(tmp_path / "samples", backend="weight-free")
    assert weight_free["temporal_flickering"] == pytest.approx(raw["temporal_flickering"], abs=1e-6)
