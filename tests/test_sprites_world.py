"""The sprites world at smoke size: artifacts through a stage cache, the Euler sampler, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.diffusion.conventions import x0_from_v
from harness.diffusion.kv_cache import KVCache
from harness.diffusion.ode import ode_timesteps, sample_ode
from harness.engine.stages import StageCache
from harness.errors import CheckpointError, ConfigError
from harness.training.fit import lr_factor
from harness.worlds.sprites.backbone import SpritesDiT
from harness.worlds.sprites.dit_config import SpritesDiTConfig
from harness.worlds.sprites.teacher import FlowRecipe, load_model, save_model, train_flow
from harness.worlds.sprites.world import SpritesWorld, world_preset

torch.set_num_threads(1)


class CacheStages:
    """The StageProvider a RunContext gives a world, over a bare StageCache."""

    def __init__(self, root: Path) -> None:
        self.cache = StageCache(root)
        self.built: list[str] = []

    def stage(self, name, config, build, inputs=(), version=1):
        def counted(path):
            self.built.append(name)
            return build(path)

        return self.cache.get(name, config, counted, inputs, version=version)

    def progress(self, stage=None, step=None, total=None) -> None:
        pass


def artifact_dirs(folder: Path) -> list[Path]:
    """Finished artifact folders (lock files and temporary build folders start with a dot)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One smoke world with every artifact built once (shared by the tests of this module)."""
    root = tmp_path_factory.mktemp("stages")
    stages = CacheStages(root)
    world = SpritesWorld("smoke")
    models = {"teacher": world.teacher(stages), "init": world.causal_init(stages),
              "df": world.diffusion_forcing(stages), "evaluator": world.evaluator(stages)}
    return world, stages, models, root


def test_artifacts_build_once_and_are_reused(built):
    _world, stages, _models, root = built
    assert stages.built == ["sprites-teacher", "sprites-causal-init", "sprites-diffusion-forcing",
                            "sprites-classifier"]
    [teacher_dir] = artifact_dirs(root / "sprites-teacher")
    mtime = (teacher_dir / "model.safetensors").stat().st_mtime_ns
    again = SpritesWorld("smoke")
    again.teacher(stages)
    again.causal_init(stages)
    assert stages.built == ["sprites-teacher", "sprites-causal-init", "sprites-diffusion-forcing",
                            "sprites-classifier"]
    assert (teacher_dir / "model.safetensors").stat().st_mtime_ns == mtime
    [init_dir] = artifact_dirs(root / "sprites-causal-init")
    init_manifest = json.loads((init_dir / "stage.json").read_text())
    teacher_manifest = json.loads((teacher_dir / "stage.json").read_text())
    assert init_manifest["inputs"] == [teacher_manifest["key"]]


def test_changed_recipe_is_a_new_artifact(built, tmp_path):
    _, stages, _, root = built
    SpritesWorld("smoke", teacher_steps=3).teacher(stages)
    assert stages.built[-1] == "sprites-teacher"
    assert len(artifact_dirs(root / "sprites-teacher")) == 2


def test_students_keep_the_teachers_prompt_encoder_and_train_the_rest(built, tmp_path):
    from harness.training.context import TrainContext
    from harness.training.trainer import TrainSettings
    from methods.dmd import DMD

    world, _, models, _ = built
    teacher, init = models["teacher"], models["init"]

    def same(a, b) -> list[bool]:
        return [torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters())]

    assert all(same(init.prompt, teacher.prompt)) and not all(same(init, teacher))
    assert all(same(models["df"].prompt, teacher.prompt))
    settings = TrainSettings(steps=2, batch_size=2, critic_updates_per_generator=1, ema_start_step=0,
                             checkpoint_every=2)
    recipe = DMD(train=settings).build_recipe(world, teacher, init, torch.device("cpu"))
    assert not any(p.requires_grad for p in recipe.generator.prompt.parameters())
    assert all(p.requires_grad for p in recipe.generator.blocks.parameters())
    generator = DMD(train=settings).distill(
        world, teacher, init, TrainContext(workdir=tmp_path, seed=0, log=lambda metrics, step: None))
    assert all(same(generator.prompt, init.prompt))
    assert not all(same(generator.blocks, init.blocks))


def test_models_run_and_causal_init_differs_from_teacher(built):
    world, _, models, _ = built
    shape = world.video_shape
    x = torch.randn(shape.tensor_shape(2))
    cond = world.encode_prompts(world.prompts("eval")[:2])
    for key in ("teacher", "init", "df"):
        v = models[key](x, 500.0, cond, causal=key != "teacher")
        assert v.shape == x.shape and torch.isfinite(v).all()
    moved = [not torch.equal(a, b) for a, b in zip(models["teacher"].parameters(), models["init"].parameters())]
    assert any(moved)
    assert world.decode(x).shape == (2, shape.frames, shape.height, shape.width, 3)


def test_evaluator_scores_real_videos(built):
    world, _, models, _ = built
    videos, prompts = world.real_videos(4, seed=3, split="eval")
    raw = models["evaluator"].score(world.decode(videos), prompts)
    assert raw["color"] == pytest.approx(1.0) and raw["object_class"] == pytest.approx(1.0)


def test_one_euler_step_from_noise_is_x_minus_v():
    torch.manual_seed(0)
    model = SpritesDiT(SpritesDiTConfig.preset("smoke"))
    for p in model.final.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x_t = torch.randn(2, 2, 3, 16, 16)
    cond = torch.randint(1, 20, (2, 5))
    out = sample_ode(model, x_t, cond, steps=1)
    v = model(x_t, 1000.0, cond, causal=False)
    torch.testing.assert_close(out.x0, x_t - v)
    torch.testing.assert_close(out.x0, x0_from_v(x_t, v, 1.0))


@pytest.mark.parametrize("form,scale", [("standard", 2.5), ("self_forcing", 1.5)])
def test_cfg_forms_agree_with_conventions(form, scale):
    torch.manual_seed(1)
    model = SpritesDiT(SpritesDiTConfig.preset("smoke"))
    for p in model.final.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x_t = torch.randn(2, 2, 3, 16, 16)
    cond, uncond = torch.randint(1, 20, (2, 5)), torch.zeros(2, 5, dtype=torch.long)
    out = sample_ode(model, x_t, cond, uncond, steps=1, guidance_scale=scale, cfg_form_name=form)
    vc, vu = model(x_t, 1000.0, cond, causal=False), model(x_t, 1000.0, uncond, causal=False)
    g = scale + (1.0 if form == "self_forcing" else 0.0)
    torch.testing.assert_close(out.x0, x_t - (vu + g * (vc - vu)), rtol=1e-5, atol=1e-5)


def test_ode_grid_passes_through_the_warped_step_list():
    grid = ode_timesteps(48, shift=5.0)
    assert grid[0] == pytest.approx(1000.0) and grid[-1] == 0.0
    assert [grid[i] for i in (12, 24, 36)] == pytest.approx([937.5, 833.3333, 625.0])
    torch.manual_seed(0)
    model = SpritesDiT(SpritesDiTConfig.preset("smoke"))
    out = sample_ode(model, torch.randn(1, 2, 3, 16, 16), torch.ones(1, 3, dtype=torch.long), steps=8,
                     return_trajectory=True)
    assert len(out.trajectory) == 9
    assert out.states_at([1000.0, 625.0])[1] is out.trajectory[6]
    with pytest.raises(ConfigError, match="not on the ODE grid"):
        out.states_at([700.0])


def test_lr_schedule_warms_up_and_decays():
    recipe = FlowRecipe(steps=100, warmup=10, min_lr_ratio=0.1)
    assert lr_factor(0, recipe) == pytest.approx(0.1)
    assert lr_factor(10, recipe) == pytest.approx(1.0)
    assert lr_factor(100, recipe) == pytest.approx(0.1)


def test_ema_moves_every_parameter_toward_the_model_by_the_warmed_up_decay():
    from harness.training.ema import EMA

    model, start = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
        for p in start.parameters():
            p.fill_(0.0)
    ema = EMA(0.99, warmup=True).track(start)
    ema.update(model, step=0)  # warm-up: d = min(0.99, 1/10) = 0.1
    assert all(torch.allclose(v, torch.full_like(v, 0.9)) for v in ema.shadow.values())
    ema.decay = 0.5
    ema.update(model, step=1000)  # past the warm-up: d = 0.5
    assert all(torch.allclose(v, torch.full_like(v, 0.95)) for v in ema.shadow.values())
    assert all(torch.equal(p, torch.ones_like(p)) for p in model.parameters())  # the model is untouched


def test_a_gradient_step_clips_the_global_norm_to_the_recipe():
    from harness.training.fit import fit

    model = torch.nn.Linear(7, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    weights = torch.tensor([30.0] * 3 + [40.0] * 4)  # gradient norm sqrt(3·900 + 4·1600) = 95.4
    fit(model, [model.weight], lambda step: (model.weight[0] * weights).sum(), FlowRecipe(steps=1, grad_clip=2.0),
        what="toy loss")
    scale = 2.0 / (3 * 900 + 4 * 1600) ** 0.5
    assert model.weight.grad.norm() == pytest.approx(2.0, rel=1e-5)  # what the optimiser stepped with
    torch.testing.assert_close(model.weight.grad[0], scale * weights)


def test_the_causal_init_optimises_with_its_own_recipe_fields():
    from harness.worlds.sprites.causal_init import CausalInitRecipe, _as_flow_recipe

    recipe = CausalInitRecipe(lr=3e-4, grad_clip=0.5, steps=40, warmup=4)
    flow = _as_flow_recipe(recipe)
    assert (flow.lr, flow.betas, flow.weight_decay) == (3e-4, (0.9, 0.99), 0.0)
    assert (flow.grad_clip, flow.steps, flow.warmup, flow.min_lr_ratio) == (0.5, 40, 4, recipe.min_lr_ratio)


@pytest.mark.parametrize("freeze", [True, False])
def test_flow_training_keeps_a_frozen_prompt_encoder_as_initialised(freeze):
    preset = world_preset("smoke")
    recipe = FlowRecipe(steps=3, batch_size=4, warmup=1, ema_decay=0.0, freeze_prompt_encoder=freeze)
    torch.manual_seed(0)
    model = SpritesDiT(preset.dit)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ema, _ = train_flow(model, preset.world, recipe, causal=False, per_chunk_noise=False)
    after = ema.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    prompt = {k for k in before if k.startswith("prompt.")}
    assert moved - prompt  # the rest of the DiT trains either way
    assert moved & prompt == (set() if freeze else prompt)


def _saved(tmp_path: Path) -> tuple[Path, SpritesDiT]:
    preset = world_preset("smoke")
    model = SpritesDiT(preset.dit)
    save_model(tmp_path, model, preset.world, kind="teacher", recipe={}, metrics={})
    return tmp_path, model


def test_checkpoint_round_trip(tmp_path):
    folder, model = _saved(tmp_path)
    loaded = load_model(folder, model.config, kind="teacher")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_corrupt_weights_name_the_file(tmp_path):
    folder, model = _saved(tmp_path)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(folder, model.config)


def test_mismatched_config_names_the_field(tmp_path):
    folder, model = _saved(tmp_path)
    with pytest.raises(CheckpointError, match=r"model.json.*dit.dim"):
        load_model(folder, model.config.replace(dim=64, heads=2))
    with pytest.raises(CheckpointError, match="holds a 'teacher' model"):
        load_model(folder, model.config, kind="causal_init")
    (folder / "model.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="model.json: not valid JSON"):
        load_model(folder)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="model.json: missing"):
        load_model(tmp_path)


def test_world_from_jsonargparse_config():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--world", type=SpritesWorld)
    cfg = parser.parse_object({"world": {"class_path": "harness.worlds.sprites.world.SpritesWorld",
                                         "init_args": {"size": "smoke", "guidance_scale": 2.0,
                                                       "cfg_form": "self_forcing"}}})
    world = parser.instantiate(cfg).world
    assert isinstance(world, SpritesWorld)
    assert world.guidance.scale == 2.0 and world.guidance.form == "self_forcing"
    assert world.config()["guidance"] == {"scale": 2.0, "form": "self_forcing"}


def test_bad_world_arguments_name_the_field():
    with pytest.raises(ConfigError, match="size 'huge'"):
        SpritesWorld("huge")
    with pytest.raises(ConfigError, match="cfg_form 'nope'"):
        SpritesWorld("smoke", cfg_form="nope")
    with pytest.raises(ConfigError, match="teacher_steps"):
        SpritesWorld("smoke", teacher_steps=0)


def test_cache_pass_matches_training_context(built):
    """The init's training reads clean context through the cache, as the causal sampler does."""
    world, _, models, _ = built
    model, fpc = models["init"], world.video_shape.frames_per_chunk
    x = torch.randn(world.video_shape.tensor_shape(1))
    cond = world.encode_prompts(["a red circle moving left"])
    cache = KVCache()
    model(x[:, :fpc], 0.0, cond, kv_cache=cache, write_cache=True)
    chunk = model(x[:, fpc:2 * fpc], 400.0, cond, kv_cache=cache)
    t = torch.tensor([[0.0] * fpc + [400.0] * fpc])
    full = model(x[:, : 2 * fpc], t, cond)
    torch.testing.assert_close(chunk, full[:, fpc:], rtol=1e-4, atol=1e-5)


def test_teacher_command_trains_a_loadable_teacher(tmp_path, capsys):
    from harness.worlds.sprites.retrain_teacher import main

    main(["--size", "smoke", "--out", str(tmp_path), "--threads", "1"])
    assert '"steps_per_second"' in capsys.readouterr().out
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["kind"] == "teacher" and meta["recipe"]["steps"] == world_preset("smoke").teacher.steps
    model = load_model(tmp_path, world_preset("smoke").dit, kind="teacher")
    assert isinstance(model, SpritesDiT)


def test_shipped_teacher_weights_stand_in_for_training_only_for_their_exact_recipe(tmp_path, monkeypatch):
    from harness.worlds.sprites import shipped
    from harness.worlds.sprites.retrain_teacher import main

    smoke = world_preset("smoke")
    folder = tmp_path / "weights" / "smoke_teacher"
    main(["--size", "smoke", "--out", str(folder), "--threads", "1"])  # the command that makes shipped weights
    root = tmp_path / "weights"
    assert shipped.find_shipped_teacher(smoke.world, smoke.dit, smoke.teacher, root) == folder
    longer = FlowRecipe(**{**smoke.teacher.__dict__, "steps": smoke.teacher.steps + 1})
    assert shipped.find_shipped_teacher(smoke.world, smoke.dit, longer, root) is None
    assert shipped.find_shipped_teacher(smoke.world, smoke.dit.replace(depth=3), smoke.teacher, root) is None
    monkeypatch.setenv(shipped.TRAIN_ENV, "1")
    assert shipped.find_shipped_teacher(smoke.world, smoke.dit, smoke.teacher, root) is None
    monkeypatch.delenv(shipped.TRAIN_ENV)

    meta = json.loads((folder / "model.json").read_text())
    meta["metrics"]["origin"] = "shipped"  # not a field that identifies the weights: still a match
    (folder / "model.json").write_text(json.dumps(meta))
    monkeypatch.setattr(shipped, "SHIPPED_DIR", root)
    art = SpritesWorld("smoke").teacher_artifact(CacheStages(tmp_path / "stages"))
    assert json.loads((art.path / "model.json").read_text())["metrics"]["origin"] == "shipped"  # copied
    assert (art.path / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()


def test_the_shipped_default_teacher_matches_the_default_preset_and_loads():
    from harness.worlds.sprites.shipped import SHIPPED_DIR, find_shipped_teacher

    preset = world_preset("default")
    folder = find_shipped_teacher(preset.world, preset.dit, preset.teacher)
    assert folder == SHIPPED_DIR / "default_teacher", "retrain it with the command in shipped.py's docstring"
    model = load_model(folder, preset.dit, kind="teacher")  # strict: every tensor present, shapes checked
    assert model.final.proj.weight.abs().max() > 0  # trained: the output projection starts at zero
    meta = json.loads((folder / "model.json").read_text())
    assert meta["recipe"]["steps"] == preset.teacher.steps and meta["metrics"]["train_seconds"] > 0


def test_sincos_positions_give_every_patch_a_distinct_place():
    from harness.worlds.sprites.teacher import init_spatial_positions

    model = SpritesDiT(world_preset("default").dit)
    init_spatial_positions(model)
    table = model.spatial_position.detach()
    assert table.shape == (16, 96)
    torch.testing.assert_close(table.norm(dim=-1), torch.full((16,), (96 / 2) ** 0.5))
    distances = torch.cdist(table, table) + torch.eye(16) * 1e3
    assert distances.min() > 0.5
