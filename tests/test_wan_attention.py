"""The block-causal attention backends of the Wan backbone (dense mask, flex BlockMask, chunk loop).

All three compute the same attention; the dense mask is the oracle (itself checked against SkyReels-V2
in test_wan_backbone.py). Measured on CPU, tiny config, 9 frames: ``chunked`` equals ``dense`` bitwise,
eager ``flex`` differs by ≤ 5e-7 (its unfused math sums in another order); the bounds below leave room.
torch has no FlexAttention backward on CPU, so flex gradients are checked only where a GPU is at hand
(benchmarks/bench_wan.py --device cuda compares them); here its CPU training refusal is.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers", reason="the wan extra is part of dev: pip install '.[dev]'")

from harness.diffusion.kv_cache import KVCache
from harness.errors import ConfigError
from harness.worlds.wan import block_causal
from harness.worlds.wan.backbone import WanBackbone, build_wan_backbone
from harness.worlds.wan.block_causal import BlockCausal
from harness.worlds.wan.config import CAUSAL_ATTENTION, WanConfig

# CPU flex runs eager (unfused) on purpose: its warning is expected here, and only here
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

B, FPC, C, H, W, TEXT = 2, 3, 16, 8, 8, 32
TOKENS = (H // 2) * (W // 2)
BACKENDS = ("dense", "flex", "chunked")
TOLERANCE = {"dense": 0.0, "flex": 1e-5, "chunked": 1e-6}


@pytest.fixture(scope="module")
def models() -> dict[str, WanBackbone]:
    """One tiny model per backend, with the same weights."""
    torch.manual_seed(0)
    base = build_wan_backbone("tiny").eval()
    out = {}
    for name in BACKENDS:
        model = build_wan_backbone("tiny", causal_attention=name).eval()
        model.load_state_dict(base.state_dict())
        out[name] = model
    return out


def _inputs(seed: int = 1, frames: int = 9):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, frames, C, H, W, generator=g)
    t = torch.rand(B, frames, generator=g) * 1000
    cond = torch.randn(B, 512, TEXT, generator=g)
    return x, t, cond


def _chunk(c: int) -> slice:
    return slice(c * FPC, (c + 1) * FPC)


# -- the layout -------------------------------------------------------------------------------------


def test_layout_is_none_for_a_single_chunk_and_spans_cover_whole_chunks():
    assert BlockCausal.of(3, 6, TOKENS, FPC) is None  # one chunk against its context: nothing masked
    layout = BlockCausal.of(6, 3, TOKENS, FPC)
    assert (layout.query_tokens, layout.key_tokens) == (6 * TOKENS, 9 * TOKENS)
    assert layout.spans() == [(0, 3 * TOKENS, 6 * TOKENS), (3 * TOKENS, 6 * TOKENS, 9 * TOKENS)]


def test_dense_mask_follows_the_chunk_rule_at_an_offset():
    layout = BlockCausal.of(6, 3, 2, FPC)  # queries = frames 3..8, keys = frames 0..8, 2 tokens each
    mask = block_causal.dense_mask(layout, torch.device("cpu"))[0, 0]
    q_frame = torch.arange(3, 9).repeat_interleave(2)
    k_frame = torch.arange(9).repeat_interleave(2)
    assert torch.equal(mask, (k_frame[None] // FPC) <= (q_frame[:, None] // FPC))


def test_block_mask_is_built_once_per_layout_and_device():
    layout = BlockCausal.of(9, 0, TOKENS, FPC)
    cpu = torch.device("cpu")
    first = block_causal.block_mask(layout, cpu)
    assert block_causal.block_mask(layout, cpu) is first
    assert first.shape[-2:] == (9 * TOKENS, 9 * TOKENS)
    assert block_causal.block_mask(BlockCausal.of(6, 3, TOKENS, FPC), cpu) is not first


# -- equivalence --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["flex", "chunked"])
def test_backend_equals_the_dense_mask(models, name):
    x, t, cond = _inputs()
    with torch.no_grad():
        dense = models["dense"](x, t, cond)
        ours = models[name](x, t, cond)
    assert (ours - dense).abs().max() <= TOLERANCE[name]


def test_chunked_gradients_equal_the_dense_masks(models):
    x, t, cond = _inputs(2)
    grads = {}
    for key in ("dense", "chunked"):
        model = models[key]
        model.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_(True)
        model(inp, t, cond).square().mean().backward()
        grads[key] = [inp.grad] + [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads["chunked"])
    worst = max(float((a - b).abs().max()) for a, b in zip(grads["chunked"], grads["dense"], strict=True))
    assert worst <= 1e-6


def test_flex_training_on_cpu_is_a_one_line_config_error(models):
    x, t, cond = _inputs(2)
    with pytest.raises(ConfigError, match="'flex' has no backward on CPU") as err:
        models["flex"](x.requires_grad_(True), t, cond)
    assert "\n" not in str(err.value)


def test_chunked_gradients_under_checkpointing_equal_unchecked(models):
    x, t, cond = _inputs(3)
    model = models["chunked"]
    grads = []
    for checkpointing in (False, True):
        (model.enable_gradient_checkpointing if checkpointing else model.disable_gradient_checkpointing)()
        model.train()
        model.zero_grad(set_to_none=True)
        model(x, t, cond).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    model.disable_gradient_checkpointing()
    model.eval()
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


@pytest.mark.parametrize("name", BACKENDS)
def test_cached_chunk_by_chunk_equals_the_full_forward(models, name):
    model = models[name]
    x, t, cond = _inputs(4)
    with torch.no_grad():
        full = model(x, t, cond)
        cache, chunks = KVCache(), []
        for c in range(3):
            chunks.append(model(x[:, _chunk(c)], t[:, _chunk(c)], cond, kv_cache=cache, write_cache=True))
        # two chunks at once against the first one's cache: the layout with an offset
        cache2 = KVCache()
        model(x[:, _chunk(0)], t[:, _chunk(0)], cond, kv_cache=cache2, write_cache=True)
        later = model(x[:, 3:], t[:, 3:], cond, kv_cache=cache2)
    assert (torch.cat(chunks, dim=1) - full).abs().max() <= 1e-6
    assert (later - full[:, 3:]).abs().max() <= max(TOLERANCE[name], 1e-6)


# -- choosing a backend --------------------------------------------------------------------------------


def test_auto_resolves_per_device_and_config_names_match_the_registry():
    assert set(CAUSAL_ATTENTION) == {"auto", *block_causal.BACKENDS}
    assert WanConfig.preset("tiny").causal_attention == "auto"
    for device in ("cpu", "cuda"):  # resolving needs no GPU, only the device type
        assert block_causal.resolve("auto", torch.device(device)) in block_causal.BACKENDS
    assert block_causal.resolve("auto", torch.device("cpu")) == block_causal.DEFAULT
    assert block_causal.resolve("flex", torch.device("cpu")) == "flex"


def test_constructor_and_setter_override_the_config(models):
    assert models["flex"].config.causal_attention == "flex"
    model = WanBackbone(WanConfig.preset("tiny", causal_attention="dense"), causal_attention="chunked")
    assert model.config.causal_attention == "chunked"
    model.set_causal_attention("dense")
    assert model.config.causal_attention == "dense"


@pytest.mark.parametrize("make", [
    lambda: WanConfig.preset("tiny", causal_attention="flash"),
    lambda: build_wan_backbone("tiny", causal_attention="flash"),
    lambda: WanBackbone("tiny", causal_attention="flash"),
    lambda: block_causal.resolve("flash", torch.device("cpu")),
])
def test_unknown_backend_is_a_one_line_config_error(make):
    with pytest.raises(ConfigError, match="'flash' is unknown; choose one of auto, dense, flex, chunked") as err:
        make()
    assert "\n" not in str(err.value)
