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
