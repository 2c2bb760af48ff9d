"""The Wan backbone (diffusers WanTransformer3DModel behind the Backbone protocol), on tiny random configs.

Oracles: stock diffusers for the bidirectional mode, ``SkyReelsV2Transformer3DModel`` with
``num_frame_per_block=3`` and diffusion forcing for the block-causal mode, the full block-causal
forward for the cached chunk-by-chunk path. Nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
import sys

import pytest
import torch

pytest.importorskip("diffusers", reason="the wan extra is part of dev: pip install '.[dev]'")

from diffusers import SkyReelsV2Transformer3DModel, WanTransformer3DModel

from harness.diffusion.conventions import sigma_from_timestep, x0_from_v
from harness.diffusion.kv_cache import KVCache
from harness.diffusion.sampling import NoiseSource, causal_rollout, predict_x0
from harness.diffusion.schedules import StepSchedule
from harness.errors import CheckpointError, ConfigError, MissingDependencyError
from harness.worlds.base import VideoShape
from harness.worlds.wan import deps
from harness.worlds.wan.backbone import WanBackbone, build_wan_backbone, count_parameters
from harness.worlds.wan.config import WanConfig
from harness.worlds.wan.convert import convert_checkpoint, convert_state_dict
from harness.worlds.wan.convert import main as convert_main
from harness.worlds.wan.kv_cache import WanKVCache
from harness.worlds.wan.loading import load_wan_backbone
from harness.worlds.wan.rope import OffsetRope
from harness.worlds.wan.text import TextEmbeddingStore, encode_prompts, prompt_key

B, FPC, C, H, W, TEXT = 2, 3, 16, 8, 8, 32
TOKENS = (H // 2) * (W // 2)


@pytest.fixture(scope="module")
def model() -> WanBackbone:
    torch.manual_seed(0)
    return build_wan_backbone("tiny").eval()


def _stock(model: WanBackbone, cls=WanTransformer3DModel, **extra) -> torch.nn.Module:
    twin = cls(**model.config.diffusers_kwargs(), **extra).eval()
    twin.load_state_dict(model.transformer.state_dict())
    return twin


def _inputs(seed: int = 1, frames: int = 6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, frames, C, H, W, generator=g)
    t = torch.rand(B, frames, generator=g) * 1000
    cond = torch.randn(B, 512, TEXT, generator=g)
    cond[0, 7:] = 0  # zero-padded rows past the prompt's length
    return x, t, cond


def _chunk(c: int) -> slice:
    return slice(c * FPC, (c + 1) * FPC)


# -- equivalence with diffusers -------------------------------------------------------------------


def test_bidirectional_equals_stock_diffusers_bitwise(model):
    x, _, cond = _inputs()
    stock = _stock(model)
    with torch.no_grad():
        for timestep in (torch.tensor([999.0, 250.0]), torch.tensor(500.0)):
            ours = model(x, timestep, cond, causal=False)
            theirs = stock(x.transpose(1, 2).contiguous(), timestep.expand(B), cond, return_dict=False)[0]
            assert torch.equal(ours, theirs.transpose(1, 2))


def test_block_causal_equals_skyreels_v2_diffusion_forcing(model):
    x, t, cond = _inputs(frames=9)
    sky = _stock(model, SkyReelsV2Transformer3DModel, num_frame_per_block=FPC)
    with torch.no_grad():
        ours = model(x, t, cond, causal=True)
        theirs = sky(x.transpose(1, 2).contiguous(), t, cond, enable_diffusion_forcing=True, return_dict=False)[0]
    assert (ours - theirs.transpose(1, 2)).abs().max() <= 1e-5


def test_block_causality_across_chunks_and_bidirectional_inside(model):
    x, t, cond = _inputs()
    with torch.no_grad():
        base = model(x, t, cond)
        later = x.clone()
        later[:, _chunk(1)] += 1.0
        changed_later = model(later, t, cond)
        mate = x.clone()
        mate[:, 2] += 1.0
        changed_mate = model(mate, t, cond)
    assert torch.equal(base[:, _chunk(0)], changed_later[:, _chunk(0)])
    assert not torch.equal(base[:, _chunk(1)], changed_later[:, _chunk(1)])
    assert (base[:, 0] - changed_mate[:, 0]).abs().max() > 1e-4


# -- the KV cache ---------------------------------------------------------------------------------


def test_chunk_by_chunk_with_cache_equals_full_block_causal_forward(model):
    x, t, cond = _inputs(2, frames=9)
    with torch.no_grad():
        full = model(x, t, cond, causal=True)
        cache, chunks = KVCache(), []
        for c in range(3):
            model(torch.randn(B, FPC, C, H, W), 937.5, cond, kv_cache=cache)  # read only
            chunks.append(model(x[:, _chunk(c)], t[:, _chunk(c)], cond, kv_cache=cache, write_cache=True))
    assert cache.num_frames == 9
    assert (torch.cat(chunks, dim=1) - full).abs().max() <= 1e-6


def test_denoising_against_t0_context_equals_full_forward(model):
    """Self Forcing inference: clean chunks written by t = 0 passes, then a read-only noisy chunk."""
    clean, _, cond = _inputs(3)
    noisy = torch.randn(B, FPC, C, H, W)
    t_chunk = torch.tensor([[833.3] * FPC, [625.0] * FPC])
    with torch.no_grad():
        cache = WanKVCache()
        model(clean[:, _chunk(0)], 0.0, cond, kv_cache=cache, write_cache=True)
        cached = model(noisy, t_chunk, cond, kv_cache=cache)
        full = model(torch.cat([clean[:, _chunk(0)], noisy], 1), torch.cat([torch.zeros(B, FPC), t_chunk], 1), cond)
    assert (cached - full[:, _chunk(1)]).abs().max() <= 1e-5


def test_read_only_passes_keep_the_cache_and_rewrites_overwrite(model):
    x, _, cond = _inputs(4, frames=9)
    cache = WanKVCache()
    with torch.no_grad():
        model(x[:, _chunk(0)], 0.0, cond, kv_cache=cache, write_cache=True)
        model(x[:, _chunk(1)], 0.0, cond, kv_cache=cache, write_cache=True)
        keys = cache.read(0)[0].clone()
        for _ in range(3):
            model(x[:, _chunk(2)], 500.0, cond, kv_cache=cache)
        assert cache.num_frames == 6 and torch.equal(cache.read(0)[0], keys)
        model(x[:, _chunk(2)], 0.0, cond, kv_cache=cache, start_frame=3, write_cache=True)  # replaces chunk 1
        assert cache.num_frames == 6 and cache.read(0)[0].shape[2] == 6 * TOKENS
        assert torch.equal(cache.read(0)[0][:, :, : 3 * TOKENS], keys[:, :, : 3 * TOKENS])
        assert not torch.equal(cache.read(0)[0][:, :, 3 * TOKENS :], keys[:, :, 3 * TOKENS :])
        fresh = WanKVCache()
        model(x[:, _chunk(0)], 0.0, cond, kv_cache=fresh, write_cache=True)
        model(x[:, _chunk(2)], 0.0, cond, kv_cache=fresh, write_cache=True)
        assert torch.equal(fresh.read(1)[0], cache.read(1)[0])  # as if chunk 1 had been written so
        model(x[:, _chunk(1)], 0.0, cond, kv_cache=cache, start_frame=0, write_cache=True)
        assert cache.num_frames == 3
        plain = KVCache()
        model(x[:, _chunk(0)], 0.0, cond, kv_cache=plain, write_cache=True)
        with pytest.raises(ConfigError, match="needs a WanKVCache"):
            model(x[:, _chunk(0)], 0.0, cond, kv_cache=plain, start_frame=0, write_cache=True)


def test_cache_is_detached_and_gradients_stay_in_the_chunk():
    torch.manual_seed(0)
    model = build_wan_backbone("tiny").train()
    x, t, cond = _inputs(5)
    first = x[:, _chunk(0)].clone().requires_grad_(True)
    second = x[:, _chunk(1)].clone().requires_grad_(True)
    cache = KVCache()
    model(first, 0.0, cond, kv_cache=cache, write_cache=True)  # written with grad on: still detached
    assert not cache.read(0)[0].requires_grad
    model(second, t[:, _chunk(1)], cond, kv_cache=cache).square().mean().backward()
    assert first.grad is None
    assert second.grad is not None and second.grad.abs().sum() > 0
    assert model.transformer.blocks[0].attn1.to_q.weight.grad.abs().sum() > 0


# -- timesteps and positions ----------------------------------------------------------------------


def test_uniform_per_frame_timesteps_equal_per_sample_ones_and_bad_ones_fail(model):
    x, _, cond = _inputs()
    with torch.no_grad():
        per_sample = model(x, torch.tensor([700.0, 100.0]), cond)
        per_frame = model(x, torch.tensor([[700.0] * 6, [100.0] * 6]), cond)
    assert torch.equal(per_sample, per_frame)
    with pytest.raises(ConfigError, match=r"timestep shape \(2, 5\)") as bad_shape:
        model(x, torch.zeros(B, 5), cond)
    with pytest.raises(ConfigError, match=r"must lie in \[0, 1000\]"):
        model(x, torch.full((B, 6), 1200.0), cond)
    assert "\n" not in str(bad_shape.value)


def test_rope_offset_rows_continue_the_full_table(model):
    from harness.worlds.wan.attention import PassContext, PassState

    stock_rope = _stock(model).rope
    context = PassContext()
    rope = OffsetRope.replacing(stock_rope, context)
    full_cos, full_sin = stock_rope(torch.zeros(1, C, 9, H, W))
    with context.active(PassState(frame_offset=3)):
        cos, sin = rope(torch.zeros(1, C, 3, H, W))
    assert torch.equal(cos, full_cos[:, 3 * TOKENS : 6 * TOKENS])
    assert torch.equal(sin, full_sin[:, 3 * TOKENS : 6 * TOKENS])
    assert not torch.equal(cos, full_cos[:, : 3 * TOKENS])
    # the same chunk against the same (empty-context-equivalent) content at another start differs
    x, _, cond = _inputs()
    with torch.no_grad():
        cache = WanKVCache()
        model(x[:, _chunk(0)], 0.0, cond, kv_cache=cache, write_cache=True)
        at_three = model(x[:, _chunk(1)], 300.0, cond, kv_cache=cache)
        at_zero = model(x[:, _chunk(1)], 300.0, cond, kv_cache=cache, start_frame=0)
        alone = model(x[:, _chunk(1)], 300.0, cond)
    assert torch.equal(at_zero, alone)
    assert not torch.equal(at_three, alone)


def test_velocity_convention_matches_the_harness_flow_matching_utils(model):
    x, t, cond = _inputs()
    with torch.no_grad():
        v = model(x, t, cond)
        x0 = predict_x0(model, x, t, cond)
    assert v.shape == x.shape
    expected = (x.double() - (t.double() / 1000.0)[:, :, None, None, None] * v.double()).float()
    assert torch.equal(x0, expected)
    assert torch.allclose(x0, x0_from_v(x, v, sigma_from_timestep(t)), atol=1e-6)  # float32 σ there


def test_the_shared_causal_sampler_drives_the_backbone(model):
    _, _, cond = _inputs()
    shape = VideoShape(frames=6, channels=C, height=H, width=W, frames_per_chunk=FPC)
    with torch.no_grad():
        rollout = causal_rollout(model, cond, shape, StepSchedule.from_spec(2), NoiseSource(0))
    assert rollout.video.shape == (B, 6, C, H, W) and rollout.nfe == 2 * 3
    assert rollout.cache.num_frames == 6 and torch.isfinite(rollout.video).all()


# -- training hooks -------------------------------------------------------------------------------


def _grads(model: WanBackbone, cached: bool) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    x, t, cond = _inputs(6)
    model.zero_grad()
    cache = None
    if cached:
        cache = KVCache()
        with torch.no_grad():
            model(x[:, _chunk(0)], 0.0, cond, kv_cache=cache, write_cache=True)
        x, t = x[:, _chunk(1)], t[:, _chunk(1)]
    v, features = model(x, t, cond, kv_cache=cache, return_features=True)
    (v.square().mean() + sum(f.mean() for f in features)).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}, [f.detach() for f in features]


@pytest.mark.parametrize("cached", [False, True], ids=["block-causal-mask", "kv-cache"])
def test_checkpointed_gradients_equal_unchecked_ones(cached):
    torch.manual_seed(0)
    model = build_wan_backbone("tiny").train()
    plain, plain_features = _grads(model, cached)
    model.enable_gradient_checkpointing()
    checked, checked_features = _grads(model, cached)
    assert len(checked_features) == model.depth  # recorded once, not again on recompute
    for a, b in zip(plain_features, checked_features, strict=True):
        assert torch.equal(a, b)
    for name, grad in plain.items():
        assert torch.equal(grad, checked[name]), name


def test_checkpointing_enabled_on_the_diffusers_model_is_refused(model):
    twin = copy.deepcopy(model)
    twin.transformer.enable_gradient_checkpointing()
    x, t, cond = _inputs()
    with pytest.raises(ConfigError, match="enable_gradient_checkpointing"):
        twin(x, t, cond)


def test_feature_taps_shapes_and_gradients(model):
    torch.manual_seed(0)
    model = build_wan_backbone("tiny").train()
    head = torch.nn.Linear(model.feature_dim, 1)
    x, t, cond = _inputs()
    _, features = model(x, t, cond, causal=False, return_features=True)
    assert len(features) == model.depth == 2
    assert all(f.shape == (B, 6, TOKENS, model.feature_dim) for f in features)
    head(features[1].mean(dim=(1, 2))).sum().backward()
    assert model.transformer.blocks[0].ffn.net[2].weight.grad.abs().sum() > 0
    assert model(x, t, cond).shape == x.shape  # no features unless asked


def test_deepcopy_keeps_its_own_pass_state(model):
    twin = copy.deepcopy(model)
    assert twin.transformer.blocks[0].attn1.processor.context is twin._pass
    assert twin.transformer.rope.pass_context is twin._pass
    x, t, cond = _inputs()
    with torch.no_grad():
        cache_a, cache_b = KVCache(), KVCache()
        model(x[:, _chunk(0)], 0.0, cond, kv_cache=cache_a, write_cache=True)
        twin(x[:, _chunk(0)], 0.0, cond, kv_cache=cache_b, write_cache=True)
        assert torch.equal(model(x[:, _chunk(1)], t[:, _chunk(1)], cond, kv_cache=cache_a),
                           twin(x[:, _chunk(1)], t[:, _chunk(1)], cond, kv_cache=cache_b))


# -- bad input ------------------------------------------------------------------------------------


def test_bad_input_gives_one_line_errors(model):
    x, t, cond = _inputs()
    cases = [
        ((torch.randn(B, 5, C, H, W), 0.0, cond), "5 frames, not a multiple of frames_per_chunk=3"),
        ((torch.randn(B, 6, 4, H, W), 0.0, cond), r"expects latents \[B, F, 16, H, W\]"),
        ((x, t, torch.randn(B, 512, 48)), r"expects \[B, L, 32\] \(WanConfig.text_dim=32\)"),
        ((x, t, cond[:1]), "batch 1 but x_t has batch 2"),
    ]
    for args, message in cases:
        with pytest.raises(ConfigError, match=message) as error:
            model(*args)
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="start_frame=3 needs a kv_cache"):
        model(x[:, _chunk(0)], 0.0, cond, start_frame=3)


def test_missing_diffusers_is_one_actionable_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'causal-video-harness\[wan\]'") as error:
        deps.diffusers()
    assert "\n" not in str(error.value)
    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(MissingDependencyError, match="accelerate"):
        deps.accelerate()


def test_config_presets_and_parameter_counts():
    assert WanConfig.preset("wan2.1-t2v-1.3b").dim == 1536
    assert count_parameters("wan2.1-t2v-1.3b") == 1_418_996_800
    assert WanConfig.preset("tiny").tokens_per_frame() == TOKENS
    with pytest.raises(ConfigError, match="latent_frames=7 is not a multiple"):
        WanConfig.preset("tiny", latent_frames=7)
    with pytest.raises(ConfigError, match="unknown"):
        WanConfig.preset("wan9")


# -- loading and conversion -----------------------------------------------------------------------


def test_save_and_load_round_trip_with_a_foreign_class_name(model, tmp_path):
    model.transformer.save_pretrained(tmp_path / "pipe" / "transformer")
    config_file = tmp_path / "pipe" / "transformer" / "config.json"
    raw = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**raw, "_class_name": "CausalWanTransformer3DModel"}))
    loaded = load_wan_backbone(tmp_path / "pipe").eval()  # finds transformer/ by itself
    x, t, cond = _inputs()
    with torch.no_grad():
        assert torch.equal(loaded(x, t, cond), model(x, t, cond))


def test_mismatched_checkpoints_are_refused_naming_the_file(model, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "tiny"
    model.transformer.save_pretrained(folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    variants = {
        "missing": ({k: v for k, v in state.items() if k != "proj_out.bias"}, "tensor 'proj_out.bias' missing"),
        "extra": ({**state, "blocks.0.extra": torch.zeros(1)}, "unexpected tensor 'blocks.0.extra'"),
        "shape": ({**state, "proj_out.bias": torch.zeros(3)}, r"'proj_out.bias' has shape \[3\], model expects \[64\]"),
    }
    for name, (tensors, message) in variants.items():
        save_file(tensors, str(weights))
        with pytest.raises(CheckpointError, match=message) as error:
            load_wan_backbone(folder)
        assert str(weights) in str(error.value) and "\n" not in str(error.value), name
    with pytest.raises(CheckpointError, match="no config.json"):
        load_wan_backbone(tmp_path)


def _original_names(model: WanBackbone) -> dict[str, torch.Tensor]:
    """The tiny model's weights under the original Wan names, as Self Forcing stores them."""
    inverse = {
        "condition_embedder.text_embedder.linear_": lambda i: f"text_embedding.{2 * (int(i) - 1)}",
        "condition_embedder.time_embedder.linear_": lambda i: f"time_embedding.{2 * (int(i) - 1)}",
    }
    block = {"attn1.to_out.0": "self_attn.o", "attn2.to_out.0": "cross_attn.o", "attn1.to_": "self_attn.",
             "attn2.to_": "cross_attn.", "attn1.norm": "self_attn.norm", "attn2.norm": "cross_attn.norm",
             "norm2.": "norm3.", "ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2", "scale_shift_table": "modulation"}
    out = {}
    for key, tensor in model.transformer.state_dict().items():
        name = key
        if key.startswith("blocks."):
            for new, old in block.items():
                if new in name:
                    name = name.replace(new, old)
                    break
        elif key.startswith("condition_embedder.time_proj"):
            name = key.replace("condition_embedder.time_proj", "time_projection.1")
        elif key.startswith("proj_out"):
            name = key.replace("proj_out", "head.head")
        elif key == "scale_shift_table":
            name = "head.modulation"
        else:
            for new, old in inverse.items():
                if key.startswith(new):
                    index, rest = key[len(new):].split(".", 1)
                    name = f"{old(index)}.{rest}"
        out["model." + name] = tensor.clone()
    return out


def test_converter_maps_original_names_to_a_strict_loading_folder(model, tmp_path):
    original = _original_names(model)
    assert "model.blocks.1.self_attn.q.weight" in original and "model.blocks.0.norm3.weight" in original
    src = tmp_path / "self_forcing_dmd.pt"
    torch.save({"generator_ema": original, "generator": {}, "step": torch.tensor(600)}, src)
    assert convert_main([str(src), str(tmp_path / "out"), "--preset", "tiny"]) == 0
    loaded = load_wan_backbone(tmp_path / "out").eval()
    x, t, cond = _inputs()
    with torch.no_grad():
        assert torch.equal(loaded(x, t, cond), model(x, t, cond))
    with pytest.raises(CheckpointError, match=r"missing \[blocks.0.attn1.to_q.weight\]; unexpected \[blocks.0.q\]"):
        broken = {("model.blocks.0.q" if k == "model.blocks.0.self_attn.q.weight" else k): v for k, v in original.items()}
        convert_state_dict(broken, model.config, source="x.pt")
    with pytest.raises(CheckpointError, match="does not match the Wan config"):
        convert_checkpoint(src, tmp_path / "wrong")  # the 1.3B preset: every shape differs
    torch.save({"optimizer": {}}, tmp_path / "other.pt")
    assert convert_main([str(tmp_path / "other.pt"), str(tmp_path / "o2"), "--preset", "tiny"]) == 2


# -- text embeddings ------------------------------------------------------------------------------


class _FakeTokenizer:
    def __call__(self, prompts, *, max_length, **_):
        ids = torch.zeros(len(prompts), max_length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, prompt in enumerate(prompts):
            n = len(prompt.split()) + 1  # words + end-of-sequence
            ids[i, :n] = torch.arange(1, n + 1)
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask}


class _FakeEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(600, TEXT)

    def forward(self, ids, attention_mask):
        return type("Out", (), {"last_hidden_state": self.embed(ids)})()


def test_text_store_round_trip_pads_with_zeros_and_checks_the_width(tmp_path):
    prompts = ["a cat walks on grass", "rain", ""]
    encoder = _FakeEncoder()
    store = encode_prompts(prompts, _FakeTokenizer(), encoder, text_len=512)
    path = store.save(tmp_path / "prompts.safetensors")
    loaded = TextEmbeddingStore.load(path)
    cond = loaded.embed(prompts[:2], text_dim=TEXT)
    assert cond.shape == (2, 512, TEXT)
    assert loaded.rows[prompt_key("rain")].shape == (2, TEXT)
    assert torch.equal(cond[1, :2], encoder.embed(torch.tensor([1, 2])).detach())
    assert cond[1, 2:].abs().sum() == 0 and cond[0, 6:].abs().sum() == 0
    with pytest.raises(ConfigError, match="width 32, the Wan backbone expects text_dim=4096"):
        loaded.embed(prompts, text_dim=4096)
    with pytest.raises(ConfigError, match="no embedding for prompt 'unseen'"):
        loaded.embed(["unseen"])
    with torch.no_grad():
        assert build_wan_backbone("tiny")(torch.zeros(2, 3, C, H, W), 500.0, cond).shape == (2, 3, C, H, W)


def test_encoding_without_transformers_is_one_actionable_line(monkeypatch):
    from harness.worlds.wan.text import load_umt5

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match="pip install transformers"):
        load_umt5("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
