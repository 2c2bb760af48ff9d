"""The Wan world on its ``tiny`` preset: every method trains on it, the paper studies validate without
weights, and every missing file is one line naming its setting. Nothing is downloaded."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers", reason="the wan extra is part of dev: pip install '.[dev]'")

from harness.engine.stages import StageCache
from harness.errors import CheckpointError, ConfigError
from harness.training.context import TrainContext
from harness.training.trainer import TrainSettings
from harness.worlds.wan.world import WanWorld
from methods.asd import ASD
from methods.dmd import DMD
from methods.self_forcing import SelfForcing

from .conftest import ROOT, harness

PAPER = ROOT / "studies" / "paper"
REAL = {"preset": "wan2.1-t2v-1.3b"}


class Stages:
    """The engine's stage cache without a run around it."""

    def __init__(self, root: Path) -> None:
        self.cache = StageCache(root)

    def stage(self, name, config, build, inputs=(), version=1):
        return self.cache.get(name, config, build, inputs, version=version)

    def progress(self, *args, **kwargs) -> None:
        pass


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan")
    world, stages = WanWorld("tiny"), Stages(root / "stages")
    return world, stages, world.teacher(stages), world.causal_init(stages), root


def test_the_tiny_world_has_the_shapes_and_conditions_the_methods_need(tiny):
    world, stages, teacher, init, _ = tiny
    shape = world.video_shape
    assert (shape.frames, shape.channels, shape.height, shape.width, shape.frames_per_chunk) == (6, 16, 8, 8, 3)
    assert len(world.prompts("train")) == 8 and len(world.prompts("eval")) == 4
    assert not set(world.prompts("train")) & set(world.prompts("eval"))
    cond = world.encode_prompts(["a red fox running through snow", "a cat"])
    assert cond.shape == (2, 512, 32)
    assert (cond[0, 7:] == 0).all() and (cond[0, :7] != 0).all()  # one row per word plus one, zero-padded
    assert torch.equal(cond, world.encode_prompts(["a red fox running through snow", "a cat"]))  # deterministic
    assert world.null_condition(3).shape == (3, 512, 32)
    assert torch.equal(world.null_condition(3)[2], world.encode_prompts([world.negative_prompt])[0])
    real, prompts = world.real_videos(3, seed=1)
    assert real.shape == (3, 6, 16, 8, 8) and set(prompts) <= set(world.prompts("train"))
    assert world.real_videos_of(["a", "b"], seed=2).shape == (2, 6, 16, 8, 8)
    # the teacher went through the strict diffusers loader: same weights as the stage's random model
    assert torch.equal(teacher.state_dict()["transformer.proj_out.weight"], init.state_dict()["transformer.proj_out.weight"])
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert len(list((stages.cache.root / "wan-tiny-teacher").glob("*/stage.json"))) == 1
    with torch.no_grad():
        v = teacher(torch.randn(1, 6, 16, 8, 8), 500.0, cond[:1], causal=False)
    assert v.shape == (1, 6, 16, 8, 8) and bool(torch.isfinite(v).all())


def test_decode_runs_the_tiny_wan_vae_and_the_tiny_bench_scores_it(tiny):
    world, stages, *_ = tiny
    latents = torch.randn(2, 6, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    videos = world.decode(latents)
    assert videos.shape == (2, 21, 64, 64, 3) and videos.dtype == np.uint8  # 4x in time (first frame alone), 8x in space
    assert np.array_equal(videos, WanWorld("tiny").decode(latents))  # the tiny VAE is the same in every process
    assert not np.array_equal(videos[0], videos[1])
    evaluator = world.evaluator(stages)
    raw = evaluator.score(videos, ["a", "a"])
    scores = evaluator.aggregate(raw)
    assert evaluator.name == "wan-tiny-bench" and set(raw) == set(evaluator.dimensions)
    assert set(raw) | set(scores) == world.metric_names()
    assert 0 < raw["temporal_flickering"] <= 1 and raw["prompt_retrieval"] == 1.0  # two videos, one prompt
    assert scores["total"] == pytest.approx((4 * scores["quality"] + scores["semantic"]) / 5)


METHODS = {"dmd": (DMD, {}), "self_forcing": (SelfForcing, {}), "asd": (ASD, {}), "asd_ffe": (ASD, {"inference": "ffe"})}


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_trains_one_iteration_on_the_tiny_wan_backbone(tiny, name):
    world, _, teacher, init, root = tiny
    rows: list[dict] = []
    ctx = TrainContext(workdir=root / name, seed=0, log=lambda metrics, step: rows.append(dict(metrics)))
    train = TrainSettings(steps=1, batch_size=2, critic_updates_per_generator=1, checkpoint_every=1)
    cls, args = METHODS[name]
    generator = cls(train=train, **args).distill(world, teacher, init, ctx)
    assert len(rows) == 1
    losses = {k: v for k, v in rows[0].items() if k.endswith("/loss")}
    assert set(losses) == {"generator/loss", "critic/loss"} and all(math.isfinite(v) for v in rows[0].values())
    assert losses["critic/loss"] > 0
    before, after = init.state_dict(), generator.state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > 0.9 * len(before)
    assert (root / name / "checkpoints").is_dir()


def test_a_trained_generator_samples_with_ffe_and_decodes(tiny):
    world, _, _, init, _ = tiny
    method = ASD(inference="ffe")
    samples = method.sample(world, init, world.prompts("eval")[:2], "1", seed=0)
    assert samples.schedule == "1*" and samples.videos.shape == (2, 6, 16, 8, 8)
    assert samples.nfe == (4 + 1) + (1 + 1)  # first chunk: 4 steps + cache pass; second: 1 + 1
    assert world.decode(samples.videos).shape == (2, 21, 64, 64, 3)


@pytest.mark.parametrize("study", ["ablation_asd.yaml", "main_table.yaml"])
@pytest.mark.parametrize("preset", [None, "tiny"])
def test_paper_studies_validate_with_no_weights_present(study, preset, capsys, tmp_path, monkeypatch):
    from harness.commands.run import validate

    monkeypatch.chdir(tmp_path)  # the study's relative paths (checkpoints/wan/..., prompts/...) name nothing
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # and hub ids are never looked up
    assert validate(PAPER / study, preset) == 0
    assert "every plugin built" in capsys.readouterr().out


def test_building_a_real_scale_world_reads_nothing(tmp_path):
    missing = str(tmp_path / "nowhere")
    world = WanWorld(**REAL, teacher=missing, causal_init=missing, critic=missing, vae=missing,
                     text_embeddings=missing, train_prompts=missing, eval_prompts=missing, real_latents=missing)
    assert world.video_shape.tensor_shape(1) == (1, 21, 16, 60, 104)
    assert world.metric_names() >= {"total", "quality", "semantic", "subject_consistency", "temporal_flickering"}
    assert world.guidance.form == "self_forcing" and world.guidance.scale == 3.0


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_missing_checkpoint_folder_is_one_line_naming_the_setting_and_path(tmp_path):
    missing = tmp_path / "ode_init"
    world = WanWorld("tiny", causal_init=str(missing))
    with pytest.raises(CheckpointError) as exc:
        world.causal_init(None)
    assert _one_line(exc) == f"WanWorld.causal_init: {missing}: no such folder"
    with pytest.raises(CheckpointError, match=r"^WanWorld.teacher: .*teacher14b: no such folder$"):
        WanWorld("tiny", teacher=str(tmp_path / "teacher14b")).teacher(None)
    with pytest.raises(CheckpointError, match=r"^WanWorld.critic: .*: no such folder$"):
        WanWorld("tiny", critic=str(tmp_path / "critic")).critic_init(torch.nn.Linear(1, 1))
    with pytest.raises(CheckpointError, match=r"^WanWorld.vae: .*: no such folder$"):
        WanWorld("tiny", vae=str(tmp_path / "vae")).decode(torch.zeros(1, 6, 16, 8, 8))


def test_unset_real_scale_parts_are_one_line_naming_the_setting(tmp_path):
    world = WanWorld(**REAL)
    cases = {
        "teacher": lambda: world.teacher(None),
        "causal_init": lambda: world.causal_init(None),
        "vae": lambda: world.decode(torch.zeros(1, 21, 16, 60, 104)),
        "text_embeddings": lambda: world.encode_prompts(["a cat"]),
        "train_prompts": lambda: world.prompts("train"),
        "real_latents": lambda: world.real_videos(1, 0),
        "diffusion_forcing": lambda: world.diffusion_forcing(None),
    }
    for setting, call in cases.items():
        with pytest.raises(ConfigError) as exc:
            call()
        assert _one_line(exc).startswith(f"WanWorld.{setting} is not set"), setting


def test_bad_settings_fail_when_the_world_is_built():
    with pytest.raises(ConfigError, match="Wan preset 'wan9' is unknown"):
        WanWorld("wan9")
    with pytest.raises(ConfigError, match="WanWorld.teacher_dtype 'int8' is unknown"):
        WanWorld("tiny", teacher_dtype="int8")
    with pytest.raises(ConfigError, match="WanWorld.evaluator 'fvd' is unknown"):
        WanWorld("tiny", evaluator="fvd")
    with pytest.raises(ConfigError, match="WanWorld.device 'gpu' is not a torch device"):
        WanWorld("tiny", device="gpu")
    with pytest.raises(ConfigError, match="cfg_form .double. is unknown"):
        WanWorld("tiny", cfg_form="double")


def test_prompt_files_text_store_and_latent_folder_are_read_on_first_use(tmp_path, tiny):
    from safetensors.torch import save_file

    from harness.worlds.wan.text import TextEmbeddingStore

    train, evals = tmp_path / "train.txt", tmp_path / "eval.txt"
    train.write_text("a cat\n\na dog\n", encoding="utf-8")
    evals.write_text("a bird\na bird\n", encoding="utf-8")
    store = TextEmbeddingStore()
    for prompt, rows in (("a cat", 2), ("a dog", 3), ("a bird", 2), ("", 1)):
        store.add(prompt, torch.full((rows, 32), float(rows)))
    store.save(tmp_path / "text.safetensors")
    latents = tmp_path / "latents"
    latents.mkdir()
    for i, prompt in enumerate(["a cat", "a cat", "a dog"]):
        save_file({"latents": torch.full((6, 16, 8, 8), float(i))}, str(latents / f"{i}.safetensors"),
                  metadata={"prompt": prompt})
    world = WanWorld("tiny", train_prompts=str(train), eval_prompts=str(evals), negative_prompt="",
                     text_embeddings=str(tmp_path / "text.safetensors"), real_latents=str(latents))
    assert world.prompts("train") == ["a cat", "a dog"] and world.prompts("eval") == ["a bird", "a bird"]
    cond = world.encode_prompts(["a dog"])
    assert cond.shape == (1, 512, 32) and (cond[0, :3] == 3).all() and (cond[0, 3:] == 0).all()
    assert (world.null_condition(2)[:, 0] == 1).all()
    with pytest.raises(ConfigError, match="no embedding for prompt 'a fish'"):
        world.encode_prompts(["a fish"])
    clips = world.real_videos_of(["a cat", "a cat", "a dog"], seed=0)
    assert sorted(float(c[0, 0, 0, 0]) for c in clips[:2]) == [0.0, 1.0] and float(clips[2, 0, 0, 0, 0]) == 2.0
    real, prompts = world.real_videos(4, seed=0)
    assert real.shape == (4, 6, 16, 8, 8) and set(prompts) <= {"a cat", "a dog"}
    with pytest.raises(ConfigError, match="no clip of prompt 'a bird'"):
        world.real_videos_of(["a bird"], seed=0)
    with pytest.raises(ConfigError, match=r"^WanWorld.eval_prompts: prompt file .*nope.txt not found$"):
        WanWorld("tiny", eval_prompts=str(tmp_path / "nope.txt")).prompts("eval")


def test_a_configured_critic_is_loaded_in_fp32_and_checked_against_the_world(tmp_path, tiny):
    from harness.worlds.wan.backbone import WanBackbone
    from harness.worlds.wan.convert import write_diffusers_folder

    world, stages, teacher, *_ = tiny
    folder = Path(world.tiny_teacher_artifact(stages).path) / "transformer"
    bf16_teacher = copy.deepcopy(teacher).to(torch.bfloat16)
    critic = WanWorld("tiny", critic=str(folder), gradient_checkpointing=True).critic_init(bf16_teacher)
    assert next(critic.parameters()).dtype == torch.float32 and critic.transformer.gradient_checkpointing
    assert WanWorld("tiny").critic_init(teacher) is not teacher  # unset: a copy of the teacher
    wide = WanBackbone(WanWorld("tiny").backbone_config.replace(text_dim=48))
    write_diffusers_folder(wide.transformer.state_dict(), wide.config, tmp_path / "wide")
    with pytest.raises(CheckpointError, match=r"^WanWorld.critic: the checkpoint has text_dim=48, .* need 32$"):
        WanWorld("tiny", critic=str(tmp_path / "wide")).critic_init(teacher)


def test_the_vbench_evaluator_writes_indexed_samples_and_aggregates_what_it_has(tmp_path, monkeypatch):
    from harness.evaluation import vbench_backend
    from harness.evaluation.vbench import QUALITY_KEYS, VBENCH_KEYS
    from harness.worlds.wan.evaluator import VBenchEvaluator

    seen = {}

    def fake_evaluate(samples_dir, backend, dimensions, **options):
        sidecars = sorted(Path(samples_dir).glob("*.json"))
        seen.update(backend=backend, dimensions=dimensions, options=options,
                    seeds=[json.loads(p.read_text())["seed"] for p in sidecars])
        return {d: 0.9 for d in dimensions}

    monkeypatch.setattr(vbench_backend, "evaluate_samples", fake_evaluate)
    evaluator = VBenchEvaluator(QUALITY_KEYS, extended_prompts="prompts/ext.txt", device="cpu")
    videos = np.zeros((3, 5, 16, 16, 3), np.uint8)
    raw = evaluator.score(videos, ["p one", "p two", "p one"])
    assert seen["backend"] == "vbench" and seen["dimensions"] == list(QUALITY_KEYS)
    assert seen["seeds"] == [0, 0, 1]  # the index of each video among its prompt's videos: -0, -0, -1
    assert seen["options"]["extended_prompts"] == Path("prompts/ext.txt")
    assert seen["options"]["mode"] == "vbench_standard"
    assert set(evaluator.aggregate(raw)) == {"quality"}  # no semantic dimension: no semantic, no total
    assert set(evaluator.aggregate({d: 0.9 for d in VBENCH_KEYS})) == {"total", "quality", "semantic"}


@pytest.mark.slow
def test_the_paper_main_table_runs_end_to_end_on_the_tiny_preset(tmp_path):
    proc = harness("run", str(PAPER / "main_table.yaml"), "--preset", "tiny", "--runs-dir", str(tmp_path / "runs"),
                   "--plain", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "study paper_main_table: 9 runs — 9 computed, 0 already complete, 0 failed" in proc.stdout
    table = (tmp_path / "runs" / "report" / "table.md").read_text().splitlines()
    rows = [[c.strip() for c in r.strip("|").split("|")][:3] for r in table if r.startswith("| ")][1:]
    assert rows == [["Teacher (Wan2.1)", "50", "100"], ["SkyReels-V2 (diffusion forcing)", "30", "62"],
                    ["CausVid (DMD)", "4", "10"], ["Self Forcing", "4", "10"], ["Self Forcing†", "2", "6"],
                    ["Self Forcing†", "1", "4"], ["Ours (ASD)", "4", "10"], ["Ours (ASD)", "2*", "8"],
                    ["Ours (ASD)", "1*", "7"]]  # the paper's names (the study's labels)
