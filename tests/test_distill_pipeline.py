"""The distill-and-evaluate pipeline reads its schedule through the method, so a method's sampling
settings (FFE inference, step list, reading, shift) are what its rows are sampled with."""

from __future__ import annotations

import pytest

import methods.distill as distill_module
from harness.engine.pipeline import Pipeline
from harness.engine.study import instantiate_plugin

WORLD = {"class_path": "harness.worlds.sprites.world.SpritesWorld", "init_args": {"size": "smoke"}}


def _pipeline(schedule: str, **method_args) -> Pipeline:
    config = {"class_path": "harness.pipelines.DistillAndEvaluate",
              "init_args": {"world": WORLD, "schedule": schedule, "num_videos": 2, "num_reference": 0,
                            "method": {"class_path": "methods.asd.ASD", "init_args": method_args}}}
    return instantiate_plugin(config, Pipeline, "test", "pipeline")


def test_ffe_inference_turns_a_bare_step_count_into_n_star():
    pipe = _pipeline("1", inference="ffe")
    assert pipe.schedule.label == "1*"
    assert pipe.schedule.first_steps == (1000.0, 750.0, 500.0, 250.0)


@pytest.mark.parametrize("reading, expected", [("prefix", (1000.0, 800.0)), ("skip", (1000.0, 400.0))])
def test_step_list_reading_and_shift_of_the_method_reach_the_schedule(reading, expected):
    pipe = _pipeline("2", step_list=[1000, 800, 400, 200], reading=reading, timesteps={"shift": 3.0})
    assert pipe.schedule.steps == expected
    assert pipe.schedule.shift == 3.0 and not pipe.schedule.is_ffe


def test_the_sampler_gets_the_method_s_schedule(monkeypatch):
    seen = []
    monkeypatch.setattr(distill_module, "sample_causal", lambda world, gen, prompts, schedule, seed, **kw:
                        seen.append(schedule))
    pipe = _pipeline("2", inference="ffe", step_list=[1000, 800, 400, 200])
    pipe.method.sample(pipe.world, None, ["a red circle"], pipe.schedule, 0)
    assert seen == [pipe.schedule]
    assert seen[0].label == "2*" and seen[0].steps == (1000.0, 800.0)
    assert seen[0].first_steps == (1000.0, 800.0, 400.0, 200.0)


def test_a_preset_s_method_settings_reach_only_methods_that_take_them(tmp_path):
    """``method.init_args.train`` in a preset trains the students and skips the causal-init row."""
    from harness.engine.study import load_study

    study = tmp_path / "study.yaml"
    study.write_text(
        "name: rows\n"
        "pipeline:\n"
        "  class_path: harness.pipelines.DistillAndEvaluate\n"
        "  init_args:\n"
        "    world: {class_path: harness.worlds.sprites.world.SpritesWorld, init_args: {size: smoke}}\n"
        "    method: {class_path: methods.asd.ASD}\n"
        "grid:\n"
        "  - variant:\n"
        "      causal_init: {method: {class_path: methods.undistilled.Undistilled}}\n"
        "      asd: {}\n"
        "presets:\n"
        "  quick: {pipeline.init_args.method.init_args.train: {steps: 7}}\n")
    runs = {r.labels["variant"]: r.config["pipeline"]["init_args"]["method"] for r in load_study(study, "quick").runs}
    assert runs["asd"]["init_args"]["train"]["steps"] == 7
    assert "train" not in runs["causal_init"]["init_args"]
    assert runs["causal_init"]["class_path"] == "methods.undistilled.Undistilled"


def _one_row_study(tmp_path):
    from harness.engine.study import load_study

    study = tmp_path / "study.yaml"
    study.write_text(
        "name: memory\n"
        "pipeline:\n"
        "  class_path: harness.pipelines.DistillAndEvaluate\n"
        "  init_args:\n"
        "    world: {class_path: harness.worlds.sprites.world.SpritesWorld, init_args: {size: smoke}}\n"
        "    method: {class_path: methods.asd.ASD, init_args: {train: {steps: 2, batch_size: 2, eval: {every: 0}}}}\n"
        "    schedule: '2'\n"
        "    num_videos: 16\n"
        "    videos_per_prompt: 1\n"
        "    num_reference: 4\n"
        "    save_videos: 0\n"
        "    trace_videos: 0\n"
        "seeds: [0]\n"
    )
    return load_study(study)


def test_a_generator_trained_here_scores_as_the_one_read_back_and_a_cached_stage_loads_no_teacher(
        tmp_path, monkeypatch):
    """The just-trained generator is sampled from memory; the run that reuses the stage reads the file
    and loads neither the teacher nor the causal init. Both give the same scores."""
    import json

    from harness.engine.driver import run_study
    from harness.engine.executors import InProcessExecutor
    from harness.worlds.sprites.world import SpritesWorld

    loads = []
    for name in ("teacher", "causal_init"):
        original = getattr(SpritesWorld, name)
        monkeypatch.setattr(SpritesWorld, name, lambda self, stages, _o=original, _n=name: (loads.append(_n), _o(self, stages))[1])
    study, cache = _one_row_study(tmp_path), tmp_path / "cache"
    results = []
    for runs in ("built", "reused"):
        loads.clear()
        summary = run_study(study, InProcessExecutor(), runs_dir=tmp_path / runs, cache_dir=cache)
        assert summary.counts() == {"complete": 1}
        (result,) = (tmp_path / runs / "memory").glob("*/result.json")
        results.append(json.loads(result.read_text())["metrics"])
        assert sorted(set(loads)) == (["causal_init", "teacher"] if runs == "built" else [])
    # the evaluator's declared groups travel with the result, so reports need not know the world
    assert results[0]["dimension_groups"]["object_class"] == "semantic"
    assert results[0]["dimension_groups"]["temporal_flickering"] == "quality"
    scores = {k: v for k, v in results[0].items() if k not in ("latency_s", "generator")}
    assert scores == {k: v for k, v in results[1].items() if k not in ("latency_s", "generator")}


@pytest.mark.parametrize("class_path", ["methods.dmd.DMD", "methods.self_forcing.SelfForcing", "methods.asd.ASD"])
def test_every_method_takes_the_shared_settings_flat_and_suggests_them_when_misspelt(class_path):
    """The shared settings are declared once (DistillationMethod); each method passes them on."""
    from harness.engine.config import init_parameters
    from harness.errors import ConfigError
    from methods.distill import DistillationMethod

    module, _, name = class_path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    shared = init_parameters(DistillationMethod)
    assert shared == {"step_list", "reading", "inference", "renoise", "train", "timesteps"}
    assert shared <= init_parameters(cls)
    pipe = _pipeline_for(class_path, {"reading": "skip", "renoise": "ode", "train": {"steps": 3}})
    assert (pipe.method.reading, pipe.method.renoise, pipe.method.train.steps) == ("skip", "ode", 3)
    with pytest.raises(ConfigError, match=r"unknown key 'step_lst' \(did you mean 'step_list'\?\)"):
        _pipeline_for(class_path, {"step_lst": [1000, 500]})


def _pipeline_for(class_path: str, method_args: dict) -> Pipeline:
    config = {"class_path": "harness.pipelines.DistillAndEvaluate",
              "init_args": {"world": WORLD, "num_videos": 2, "num_reference": 0,
                            "method": {"class_path": class_path, "init_args": method_args}}}
    return instantiate_plugin(config, Pipeline, "test", "pipeline")
