"""The sprites block-causal DiT: cache equivalence, causality, conditioning, gradients and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from harness.diffusion.kv_cache import KVCache
from harness.errors import ConfigError
from harness.worlds.sprites.backbone import SpritesDiT, build_sprites_dit, count_parameters
from harness.worlds.sprites.dit_config import SpritesDiTConfig
from harness.worlds.sprites.embeddings import phrase_mask, phrase_means

B, FPC, CHUNKS = 2, 2, 4
FRAMES = FPC * CHUNKS


def _perturbed(**overrides) -> SpritesDiT:
    """A smoke model whose zero-initialised gates and output are made non-zero, so every path matters."""
    torch.manual_seed(0)
    model = build_sprites_dit("smoke", **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _inputs(seed: int = 1, frames: int = FRAMES):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, frames, 3, 16, 16, generator=g)
    t = torch.rand(B, frames, generator=g) * 1000
    cond = torch.randint(1, 64, (B, 6), generator=g)
    cond[0, 4:] = 0  # padding
    return x, t, cond


@pytest.fixture(scope="module", params=[{}, {"rotary_positions": True}, {"pixel_channels": 8}, {"token_conv": True},
                                        {"relative_bias": True}, {"prompt_positions": 8},
                                        {"phrase_separator_id": 3},
                                        {"phrase_separator_id": 3, "phrase_pooling": True}],
                ids=["learned-positions", "rotary-positions", "pixel-layers", "token-conv", "relative-bias",
                     "prompt-positions", "prompt-phrases", "prompt-phrase-means"])
def model(request) -> SpritesDiT:
    return _perturbed(**request.param)


def test_chunk_by_chunk_with_cache_equals_full_block_causal_forward(model):
    x, t, cond = _inputs()
    with torch.no_grad():
        full = model(x, t, cond, causal=True)
        cache, chunks = KVCache(), []
        for k in range(CHUNKS):
            part = slice(k * FPC, (k + 1) * FPC)
            model(
                torch.randn(B, FPC, 3, 16, 16), torch.full((B, FPC), 937.5), cond, kv_cache=cache
            )  # read only
            chunks.append(model(x[:, part], t[:, part], cond, kv_cache=cache, write_cache=True))
    assert cache.num_frames == FRAMES
    assert (torch.cat(chunks, dim=1) - full).abs().max() < 1e-5


def test_denoising_a_chunk_against_clean_context_equals_full_forward(model):
    """Self Forcing inference: noisy chunk k at its own t, clean chunks < k at t = 0 in the cache."""
    clean, _, cond = _inputs(2)
    noisy = torch.randn(B, FPC, 3, 16, 16)
    k = 2
    with torch.no_grad():
        cache = KVCache()
        for j in range(k):
            model(clean[:, j * FPC : (j + 1) * FPC], 0.0, cond, kv_cache=cache, write_cache=True)
        t_chunk = torch.tensor([[833.3, 833.3], [625.0, 625.0]])
        cached = model(noisy, t_chunk, cond, kv_cache=cache)
        sequence = torch.cat([clean[:, : k * FPC], noisy], dim=1)
        t_full = torch.cat([torch.zeros(B, k * FPC), t_chunk], dim=1)
        full = model(sequence, t_full, cond)
    assert (cached - full[:, k * FPC :]).abs().max() < 1e-5


def test_denoising_forward_does_not_grow_the_cache(model):
    x, t, cond = _inputs()
    cache = KVCache()
    with torch.no_grad():
        model(x[:, :FPC], 0.0, cond, kv_cache=cache, write_cache=True)
        keys_before = cache.read(0)[0].clone()
        model(x[:, FPC : 2 * FPC], t[:, FPC : 2 * FPC], cond, kv_cache=cache)
    assert cache.num_frames == FPC
    assert torch.equal(cache.read(0)[0], keys_before)
    assert cache.read(0)[0].shape == (B, 2, FPC * 16, 16)  # [B, heads, tokens, head_dim]
    with pytest.raises(RuntimeError, match="read-only"):
        cache.append(0, keys_before, keys_before)


def test_failed_write_leaves_the_cache_unchanged(model):
    x, _, cond = _inputs()
    cache = KVCache()
    with torch.no_grad():
        model(x[:, :FPC], 0.0, cond, kv_cache=cache, write_cache=True)
        with pytest.raises(ConfigError):
            model(x[:, :1], 0.0, cond, kv_cache=cache, write_cache=True)
    assert cache.num_frames == FPC and not cache.is_writing


def test_cache_copy_branches_independently(model):
    x, _, cond = _inputs()
    cache = KVCache()
    with torch.no_grad():
        model(x[:, :FPC], 0.0, cond, kv_cache=cache, write_cache=True)
        branch = cache.copy()
        model(x[:, FPC : 2 * FPC], 0.0, cond, kv_cache=branch, write_cache=True)
    assert (cache.num_frames, branch.num_frames) == (FPC, 2 * FPC)
    assert cache.read(0)[0].shape[2] == FPC * 16 and branch.read(0)[0].shape[2] == 2 * FPC * 16


def _windowed_rollout(model, x, cond, window):
    """Write every chunk of x into a cache with ``window_frames=window``; the per-chunk outputs."""
    cache, outs = KVCache(window_frames=window), []
    with torch.no_grad():
        for k in range(x.shape[1] // FPC):
            part = slice(k * FPC, (k + 1) * FPC)
            outs.append(model(x[:, part], torch.full((B, FPC), 500.0), cond, kv_cache=cache, write_cache=True))
    return cache, outs


def test_a_window_as_long_as_the_video_changes_nothing(model):
    x, _, cond = _inputs(4)
    _, windowed = _windowed_rollout(model, x, cond, window=FRAMES)
    _, unbounded = _windowed_rollout(model, x, cond, window=None)
    assert all(torch.equal(a, b) for a, b in zip(windowed, unbounded))


def test_a_window_bounds_the_context_and_forgets_evicted_frames(model):
    x, _, cond = _inputs(5)
    cache, outs = _windowed_rollout(model, x, cond, window=2 * FPC)
    assert (cache.num_frames, cache.stored_frames) == (FRAMES, 2 * FPC)
    tokens = model.config.tokens_per_frame * 2 * FPC
    assert all(keys.shape[2] == tokens for keys in cache._keys)
    # the window keeps the newest written frames: chunk 2 (written with its full context) and chunk 3,
    # whose first-layer keys depend on its own frames alone
    full_cache, full_outs = _windowed_rollout(model, x, cond, window=None)
    chunk2 = slice(4 * model.config.tokens_per_frame, 6 * model.config.tokens_per_frame)
    half = tokens // 2
    assert all(torch.equal(k[:, :, :half], f[:, :, chunk2]) for k, f in zip(cache._keys, full_cache._keys))
    assert torch.equal(cache._keys[0], full_cache._keys[0][:, :, -tokens:])
    # chunks 0-2 were generated with at most 4 cached frames in both; chunk 3 lost chunk 0
    assert all(torch.equal(outs[k], full_outs[k]) for k in range(3))
    assert not torch.equal(outs[3], full_outs[3])
    with pytest.raises(ConfigError, match="window_frames=3 is not a multiple of frames_per_chunk=2"):
        model(x[:, :FPC], 0.0, cond, kv_cache=KVCache(window_frames=3), write_cache=True)


def test_causal_mode_ignores_the_future_and_bidirectional_does_not(model):
    x, t, cond = _inputs()
    changed = x.clone()
    changed[:, -FPC:] += 1.0
    with torch.no_grad():
        causal_a, causal_b = model(x, t, cond), model(changed, t, cond)
        bidir_a, bidir_b = model(x, t, cond, causal=False), model(changed, t, cond, causal=False)
    assert (causal_a[:, :-FPC] - causal_b[:, :-FPC]).abs().max() == 0
    assert (bidir_a[:, :-FPC] - bidir_b[:, :-FPC]).abs().max() > 1e-3
    assert (causal_a[:, :FPC] - bidir_a[:, :FPC]).abs().max() > 1e-3


def test_attention_is_bidirectional_inside_a_chunk(model):
    x, t, cond = _inputs()
    changed = x.clone()
    changed[:, 1] += 1.0  # second frame of chunk 0
    with torch.no_grad():
        delta = (model(x, t, cond) - model(changed, t, cond))[:, 0].abs().max()
    assert delta > 1e-3


def test_per_frame_timesteps_modulate_their_own_frames(model):
    x, t, cond = _inputs()
    later = t.clone()
    later[:, -1] = 10.0
    with torch.no_grad():
        a, b = model(x, t, cond), model(x, later, cond)
    assert (a[:, :-FPC] - b[:, :-FPC]).abs().max() == 0  # earlier chunks: causal and unaffected
    assert (a[:, -1] - b[:, -1]).abs().max() > 1e-3
    scalar = model(x, 500.0, cond)
    assert torch.allclose(scalar, model(x, torch.full((B, FRAMES), 500.0), cond))


@pytest.mark.parametrize("cross_attention", [True, False])
def test_prompt_conditioning_reaches_the_output(cross_attention):
    model = _perturbed(cross_attention=cross_attention)
    x, t, cond = _inputs()
    other = cond.clone()
    other[:, 1] = (other[:, 1] % 60) + 2
    unconditional = torch.zeros_like(cond)  # all padding: the CFG null prompt
    with torch.no_grad():
        a, b, u = model(x, t, cond), model(x, t, other), model(x, t, unconditional)
    assert (a - b).abs().max() > 1e-3
    assert torch.isfinite(u).all() and (a - u).abs().max() > 1e-3


def test_padding_tokens_do_not_change_the_output(model):
    x, t, cond = _inputs()
    padded = torch.cat([cond, torch.zeros(B, 3, dtype=cond.dtype)], dim=1)
    with torch.no_grad():
        assert (model(x, t, cond) - model(x, t, padded)).abs().max() < 1e-5


def test_prompt_embeddings_are_accepted(model):
    x, t, _ = _inputs()
    embedding = torch.randn(B, 5, model.config.dim)
    with torch.no_grad():
        assert model(x, t, embedding).shape == x.shape


def test_features_are_exposed_per_block(model):
    x, t, cond = _inputs()
    v, features = model(x, t, cond, return_features=True)
    assert v.shape == x.shape
    assert len(features) == model.config.depth
    assert all(f.shape == (B, FRAMES, 16, model.config.dim) for f in features)


def test_gradients_reach_every_parameter():
    model = _perturbed().train()
    x, t, cond = _inputs()
    model(x, t, cond).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert missing == []


def test_fresh_model_predicts_zero_and_trains_its_output_layer():
    model = build_sprites_dit("smoke")
    x, t, cond = _inputs()
    v = model(x, t, cond)
    assert v.abs().max() == 0
    (v - x).square().mean().backward()
    assert model.final.proj.weight.grad.abs().max() > 0


def test_pixel_layers_start_at_zero_and_train_both_output_paths():
    model = build_sprites_dit("smoke", pixel_channels=8)
    assert model.final.proj.out_features == (3 + 8) * 4 * 4  # token → patch of pixels and pixel features
    x, t, cond = _inputs()
    v = model(x, t, cond)
    assert v.shape == x.shape and v.abs().max() == 0
    (v - x).square().mean().backward()
    assert model.head.out.weight.grad.abs().max() > 0 and model.final.proj.weight.grad.abs().max() > 0
    with pytest.raises(ConfigError, match="pixel_channels must be >= 0"):
        SpritesDiTConfig(pixel_channels=-1)


def test_presets_and_parameter_count():
    smoke, default = SpritesDiTConfig.preset("smoke"), SpritesDiTConfig.preset("default")
    assert count_parameters(smoke) == build_sprites_dit("smoke").num_parameters() < 100_000
    assert count_parameters(default) > 10 * count_parameters(smoke)
    assert smoke.tokens_per_frame == 16 and default.tokens_per_frame * 8 <= 512
    with pytest.raises(ConfigError, match="preset 'huge'"):
        SpritesDiTConfig.preset("huge")
    with pytest.raises(ConfigError, match="no field"):
        SpritesDiTConfig.preset("smoke", depht=3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"height": 18}, "height=18 is not divisible by patch_size=4"),
        ({"width": 16, "patch_size": 5}, "not divisible by patch_size=5"),
        ({"dim": 30, "heads": 4}, "dim=30 is not divisible by heads=4"),
        ({"depth": 0}, "depth must be >= 1"),
        ({"pad_id": 64}, "pad_id=64"),
        ({"phrase_separator_id": 0}, "phrase_separator_id=0 must be a token id"),
        ({"phrase_separator_id": 64}, "phrase_separator_id=64 must be a token id"),
        ({"phrase_pooling": True}, "phrase_pooling needs phrase_separator_id"),
    ],
)
def test_bad_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        SpritesDiTConfig.preset("smoke", **overrides)


def test_bad_inputs_give_clear_errors(model):
    x, t, cond = _inputs()
    with pytest.raises(ConfigError, match="frames_per_chunk=2"):
        model(x[:, :3], t[:, :3], cond)
    with pytest.raises(ConfigError, match="channels/height/width"):
        model(torch.randn(B, 2, 3, 8, 8), 0.0, cond)
    with pytest.raises(ConfigError, match="vocab_size=64"):
        model(x, t, torch.full((B, 3), 64))
    with pytest.raises(ConfigError, match="max_prompt_len=12"):
        model(x, t, torch.ones(B, 13, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(2, 8\)"):
        model(x, torch.zeros(B, 3), cond)
    with pytest.raises(ValueError, match="write_cache=True needs a kv_cache"):
        model(x, t, cond, write_cache=True)
    cache = KVCache()
    with torch.no_grad():
        model(x[:, :FPC], 0.0, cond, kv_cache=cache, write_cache=True)
    with pytest.raises(ValueError, match="kv_cache holds batch 2"):
        model(x[:1, :FPC], 0.0, cond[:1], kv_cache=cache)


def test_relative_bias_indexes_each_pair_by_its_frame_row_and_column_offset():
    from harness.worlds.sprites.relative_bias import MAX_FRAME_OFFSET, relative_index

    rows = cols = 4

    def decode(i: int) -> tuple[int, int, int]:
        df, rest = divmod(i, (2 * rows - 1) * (2 * cols - 1))
        dr, dc = divmod(rest, 2 * cols - 1)
        return df - MAX_FRAME_OFFSET, dr - (rows - 1), dc - (cols - 1)

    # 2 query frames at absolute frames 6-7; the cache keeps frames 4-5 (2 stored frames of 6 written)
    index = relative_index(2, 6, 2, rows, cols)
    assert index.shape == (2 * 16, 4 * 16)
    query = 1 * 16 + 2 * cols + 3  # frame 7, row 2, col 3
    key = 0 * 16 + 1 * cols + 0  # the first stored frame (frame 4), row 1, col 0
    assert decode(int(index[query, key])) == (3, 1, 3)
    assert decode(int(index[query, 3 * 16 + 2 * cols + 3])) == (0, 0, 0)  # itself
    far = relative_index(1, 40, 40, rows, cols)  # 40 frames back: clamped to the last table entry
    assert decode(int(far[0, 0])) == (MAX_FRAME_OFFSET, 0, 0)


def test_apply_rotary_turns_each_channel_pair_by_its_angle_and_passes_the_rest():
    from harness.worlds.sprites.attention import apply_rotary

    x = torch.arange(1.0, 11.0).view(1, 1, 1, 10)  # pairs (1, 2), (3, 4), (5, 6), (7, 8); channels 9, 10 pass
    angles = torch.tensor([[math.pi / 2, math.pi, 0.0, math.pi / 4]])
    y = apply_rotary(x, torch.polar(torch.ones_like(angles), angles)).flatten()
    c = math.sqrt(0.5)
    expected = torch.tensor([-2.0, 1.0, -3.0, -4.0, 5.0, 6.0, c * (7 - 8), c * (7 + 8), 9.0, 10.0])
    assert torch.allclose(y, expected, atol=1e-6)


def test_prompt_position_term_starts_at_zero_and_then_depends_on_prompt_frame_and_place_jointly():
    torch.manual_seed(0)
    with_term = build_sprites_dit("smoke", prompt_positions=4).eval()
    without = build_sprites_dit("smoke").eval()
    without.load_state_dict({k: v for k, v in with_term.state_dict().items() if not k.startswith("prompt_positions")})
    x = torch.randn(2, 4, 3, 16, 16)
    cond = torch.tensor([[1, 2, 5, 11, 4, 16], [1, 2, 5, 11, 4, 17]])
    with torch.no_grad():
        assert torch.equal(with_term(x, 500.0, cond, causal=False), without(x, 500.0, cond, causal=False))
        term = with_term.prompt_positions
        term.out.weight.normal_()
        pooled = torch.randn(2, with_term.config.dim)
        value = term(pooled, torch.arange(4))
    assert value.shape == (2, 4, 16, with_term.config.dim)
    # a sum of a prompt, a frame and a place term would change by the same vector everywhere when the
    # prompt changes; the product changes differently in every frame and place
    diff = value[0] - value[1]
    assert diff.norm(dim=-1).min() > 0
    assert (diff - diff.mean(dim=(0, 1), keepdim=True)).norm() > 0.1 * diff.norm()


def test_phrase_mask_keeps_each_word_to_its_own_phrase_and_the_null_token():
    ids = torch.tensor([[1, 5, 3, 6, 7, 0]])  # <bos> w | and w w | pad, separator id 3
    mask = torch.cat([torch.ones(1, 1, dtype=torch.bool), ids != 0], dim=1)
    keys = phrase_mask(ids, mask, separator=3)
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0],  # null: itself only
        [1, 1, 1, 0, 0, 0, 0],  # first phrase: null, <bos>, w
        [1, 1, 1, 0, 0, 0, 0],
        [1, 0, 0, 1, 1, 1, 0],  # "and" opens the second phrase
        [1, 0, 0, 1, 1, 1, 0],
        [1, 0, 0, 1, 1, 1, 0],
        [1, 0, 0, 1, 1, 1, 0],  # padding never is a key
    ], dtype=torch.bool)
    assert torch.equal(keys[0], expected)


@pytest.mark.parametrize("separator, first_object_shared", [(3, True), (None, False)])
def test_a_phrase_separator_keeps_the_second_object_out_of_the_first_objects_words(separator, first_object_shared):
    from harness.worlds.sprites.prompts import VOCAB, encode_batch

    assert VOCAB.index("and") == 3
    model = _perturbed(phrase_separator_id=separator)
    ids = torch.from_numpy(encode_batch(["a red circle moving left and a blue square moving up",
                                         "a red circle moving left and a green cross moving down",
                                         "a red circle moving left"])[0])
    with torch.no_grad():
        context, _, _ = model.prompt(ids)
    first = slice(0, 7)  # null, <bos> and the first object's five words
    assert torch.equal(context[0, first], context[1, first]) == first_object_shared
    assert torch.equal(context[0, first], context[2, first]) == first_object_shared
    assert (context[0, 7:] - context[1, 7:]).abs().max() > 1e-2  # the second objects differ


def test_phrase_means_average_each_phrases_real_words_and_leave_the_null_token_alone():
    ids = torch.tensor([[1, 5, 3, 6, 7, 0]])  # <bos> w | and w w | pad, separator id 3
    mask = torch.cat([torch.ones(1, 1, dtype=torch.bool), ids != 0], dim=1)
    x = torch.arange(7, dtype=torch.float32).reshape(1, 7, 1) * torch.tensor([1.0, 10.0])
    out = phrase_means(x, phrase_mask(ids, mask, separator=3))
    expected = torch.tensor([0.0, 1.5, 1.5, 4.0, 4.0, 4.0, 4.0])  # null | mean(1, 2) | mean(3, 4, 5), pad too
    torch.testing.assert_close(out[0, :, 0], expected)
    torch.testing.assert_close(out[0, :, 1], 10 * expected)
    empty = torch.zeros_like(ids)  # no words at all: every vector stays as it was (no 0/0)
    keys = phrase_mask(empty, torch.cat([torch.ones(1, 1, dtype=torch.bool), empty != 0], dim=1), separator=3)
    torch.testing.assert_close(phrase_means(x, keys), x)


@pytest.mark.parametrize("pooling", [True, False])
def test_phrase_pooling_binds_a_direction_word_to_its_own_object(pooling):
    """Swapping the direction words of two objects leaves the bag of words as it was; only an encoder that
    binds words to their phrase moves the colour word's vector far, so that a red object's tokens see it."""
    from harness.worlds.sprites.prompts import encode_batch

    model = _perturbed(phrase_separator_id=3, phrase_pooling=pooling)
    ids = torch.from_numpy(encode_batch(["a red circle moving left and a blue square moving up",
                                         "a red circle moving up and a blue square moving left"])[0])
    with torch.no_grad():
        context, _, _ = model.prompt(ids)
    first = slice(1, 7)  # <bos> and the first object's five words
    if pooling:  # one vector per phrase, which differs when its direction word does
        assert torch.equal(context[:, first], context[:, 1:2].expand(-1, 6, -1))
    red = 3  # null, <bos>, "a", "red": the key a red object's tokens find; its vector has norm about 5.7
    change = float((context[0, red] - context[1, red]).norm())
    assert (change > 1.0) == pooling, change  # pooled 2.2; phrase-local attention alone 0.4

