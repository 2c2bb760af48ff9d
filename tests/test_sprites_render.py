"""The sprites renderer: determinism, exact pixels, the world's physics, the training data API."""

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.worlds.sprites.data import SpritesData
from harness.worlds.sprites.palette import (
    SHAPES,
    TRAIL_OPACITY,
    background_image,
    shape_templates,
    trail_tone,
)
from harness.worlds.sprites.prompts import VOCAB, parse_prompt
from harness.worlds.sprites.render import (
    BACKGROUND_NAMES,
    COLOR_NAMES,
    DIRECTION_NAMES,
    PALETTE,
    UNIT_VELOCITY,
    bounce,
    from_model,
    to_model,
    trail_positions,
)
from harness.worlds.sprites.world_config import SpritesConfig


@pytest.fixture(scope="module")
def data():
    return SpritesData(SpritesConfig())


@pytest.fixture(scope="module")
def batch(data):
    return data.render(64, 7)


def test_same_seed_same_videos_other_seed_other_videos(data, batch):
    again = data.render(64, 7)
    assert np.array_equal(again.videos, batch.videos)
    assert again.prompts == batch.prompts
    assert not np.array_equal(data.render(64, 8).videos, batch.videos)


def test_video_layout_and_model_range(batch):
    assert batch.videos.dtype == np.uint8 and batch.videos.shape == (64, 8, 32, 32, 3)
    x = to_model(batch.videos)
    assert x.dtype == np.float32 and x.shape == (64, 8, 3, 32, 32)
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert np.array_equal(from_model(x), batch.videos)


def test_objects_are_painted_with_exact_colours_and_template_areas(data, batch):
    size = data.cfg.size
    areas = shape_templates(size).sum((1, 2))
    st = batch.states
    for i in range(8):
        for o in np.nonzero(st.present[i])[0]:
            x, y = st.top_left[i, o, 0]
            patch = batch.videos[i, 0, y : y + size, x : x + size]
            painted = (patch == PALETTE[st.color[i, o]]).all(-1)
            assert painted.sum() == areas[st.shape[i, o]]
            assert np.array_equal(painted, shape_templates(size)[st.shape[i, o]])


def test_trajectories_follow_constant_speed_with_wall_bounces(data, batch):
    st, travel = batch.states, data.cfg.travel
    assert st.top_left.min() >= 0 and st.top_left.max() <= travel
    nxt, _ = bounce(st.top_left[:, :, :-1], st.velocity[:, :, :-1], 1, travel)
    assert np.array_equal(nxt, st.top_left[:, :, 1:])
    speed = np.abs(st.velocity).sum(-1)
    assert np.all(speed == speed[:, :, :1])  # bounces flip the sign, never the speed
    assert speed.min() >= data.cfg.speed_min and speed.max() <= data.cfg.speed_max


def test_first_displacement_goes_the_prompted_way(batch):
    st = batch.states
    step = st.top_left[:, :, 1] - st.top_left[:, :, 0]
    for i, prompt in enumerate(batch.prompts):
        for o, obj in enumerate(parse_prompt(prompt).objects):
            unit = UNIT_VELOCITY[DIRECTION_NAMES.index(obj.direction)]
            assert (step[i, o] @ unit) > 0 and np.all(step[i, o] * (unit == 0) == 0)


def test_objects_move_the_prompted_way_for_their_lead_frames_before_any_bounce():
    cfg = SpritesConfig(resolution=16, object_size=5, speed_max=2, lead_frames=4)
    batch = SpritesData(cfg).render(256, 3)
    st = batch.states
    steps = np.diff(st.top_left[:, :, : cfg.lead_frames + 1], axis=2)  # [n, slots, lead, 2]
    turned = 0
    for i, prompt in enumerate(batch.prompts):
        for o, obj in enumerate(parse_prompt(prompt).objects):
            unit = UNIT_VELOCITY[DIRECTION_NAMES.index(obj.direction)]
            assert np.all(steps[i, o] @ unit > 0), (prompt, st.top_left[i, o])
            turned += bool(np.any(np.diff(st.top_left[i, o], axis=0) @ unit < 0))
    assert turned > 0  # walls still turn objects after their lead


def test_two_objects_never_touch(data):
    st = data.render(256, 3).states
    gap = np.abs(st.top_left[:, 0] - st.top_left[:, 1]).max(-1)
    both = st.present.all(1)
    assert both.sum() > 50
    assert gap[both].min() > data.cfg.size


def test_states_match_prompts(batch):
    st = batch.states
    for i, prompt in enumerate(batch.prompts):
        objects = parse_prompt(prompt).objects
        assert st.present[i].sum() == len(objects)
        for o, obj in enumerate(objects):
            assert COLOR_NAMES[st.color[i, o]] == obj.color and SHAPES[st.shape[i, o]] == obj.shape


def test_train_split_never_renders_held_out_pairs(data):
    held = set(data.cfg.held_out)
    st = data.render(512, 11, split="train").states
    pairs = {
        (COLOR_NAMES[c], SHAPES[s])
        for c, s, p in zip(st.color.ravel(), st.shape.ravel(), st.present.ravel())
        if p
    }
    assert pairs and not pairs & held


def test_batch_api_for_training_loops(data):
    videos, ids, mask, prompts = data.batch(5, np.random.default_rng(0))
    assert videos.dtype == torch.float32 and videos.shape == (5, 8, 3, 32, 32)
    assert ids.dtype == torch.int64 and ids.shape == mask.shape == (5, 12) and mask.dtype == torch.bool
    for row, m, prompt in zip(ids, mask, prompts):
        assert [VOCAB[k] for k in row[m].tolist()] == ["<bos>", *prompt.split()]


def test_small_resolution_keeps_objects_recognisable():
    cfg = SpritesConfig(resolution=16, frames=12, speed_max=2)
    batch = SpritesData(cfg).render(4, 0)
    assert batch.videos.shape == (4, 12, 16, 16, 3) and cfg.size == 5


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"colors": ("red", "pink")}, "sprites.colors: unknown value 'pink'"),
        ({"shapes": ()}, "sprites.shapes must not be empty"),
        ({"object_size": 20}, "sprites.object_size"),
        ({"resolution": 8}, "sprites.resolution"),
        ({"speed_max": 40}, "sprites.speed_min/speed_max"),
        ({"held_out": (("red", "hexagon"),)}, "sprites.held_out"),
        ({"resolution": 16, "object_size": 5, "speed_max": 3, "lead_frames": 4},
         r"sprites.lead_frames must satisfy 1 <= lead_frames and lead_frames \* speed_max <= 11"),
        ({"lead_frames": 0}, "sprites.lead_frames must satisfy"),
        ({"trail": 4}, r"sprites.trail must be in \[0, 3\]"),
    ],
)
def test_bad_world_config_names_the_field(kwargs, needle):
    with pytest.raises(ConfigError, match=needle.replace("/", ".")):
        SpritesConfig(**kwargs)


def test_trails_are_faded_copies_at_earlier_positions_under_unchanged_objects():
    cfg = SpritesConfig(trail=2)
    plain = SpritesData(SpritesConfig()).render(16, 4)
    trailed = SpritesData(cfg).render(16, 4)
    st = trailed.states
    assert np.array_equal(st.top_left, plain.states.top_left)  # a trail changes the pixels, not the motion
    templates = shape_templates(cfg.size)
    # an independent, pixel-by-pixel painting: the faintest copies first, the objects last
    expected = plain.videos.copy()
    for i in range(16):
        background = background_image(BACKGROUND_NAMES[st.background[i]], cfg.resolution)
        expected[i] = background
        layers = [(k, o) for k in (2, 1) for o in (0, 1)] + [(0, o) for o in (0, 1)]
        for k, o in layers:
            if not st.present[i, o]:
                continue
            where = st.top_left[i, o] if k == 0 else trail_positions(
                st.top_left[i : i + 1, o], st.velocity[i : i + 1, o, 0], k, cfg.travel)[0]
            for t in range(cfg.frames):
                x, y = where[t]
                for dy, dx in zip(*np.nonzero(templates[st.shape[i, o]])):
                    color = PALETTE[st.color[i, o]]
                    alpha = TRAIL_OPACITY * (3 - k) / 2
                    under = background[y + dy, x + dx]
                    expected[i, t, y + dy, x + dx] = color if k == 0 else trail_tone(color, under, alpha)
    assert np.array_equal(trailed.videos, expected)
    assert (plain.videos != trailed.videos).any(-1).mean() > 0.01
    objects = (trailed.videos == PALETTE[st.color[:, 0]][:, None, None, None]).all(-1)
    assert np.array_equal(objects, (plain.videos == PALETTE[st.color[:, 0]][:, None, None, None]).all(-1))


def test_trail_before_the_first_frame_lies_behind_the_prompted_direction():
    top_left = np.asarray([[[5, 3], [4, 3], [3, 3]], [[0, 6], [0, 7], [0, 8]]])  # moving left; moving down
    velocity0 = np.asarray([[-1, 0], [0, 1]])
    assert trail_positions(top_left, velocity0, 1, travel=11).tolist() == [
        [[6, 3], [5, 3], [4, 3]], [[0, 5], [0, 6], [0, 7]]]
    assert trail_positions(top_left, velocity0, 2, travel=11)[:, 0].tolist() == [[7, 3], [0, 4]]
    # at a wall the copy before frame 0 stays inside the frame, on the object
    assert trail_positions(np.asarray([[[11, 0]]]), np.asarray([[-1, 0]]), 3, travel=11)[0, 0].tolist() == [11, 0]
