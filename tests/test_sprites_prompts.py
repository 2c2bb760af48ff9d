"""Sprites prompts: grammar round trip, clear errors, tokenizer, held-out splits."""

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.worlds.sprites.prompts import (
    MAX_TOKENS,
    VOCAB,
    ObjectSpec,
    PromptSuite,
    Scene,
    encode,
    encode_batch,
    parse_prompt,
)
from harness.worlds.sprites.world_config import SpritesConfig


@pytest.fixture(scope="module")
def suite():
    return PromptSuite(SpritesConfig())


def test_prompt_text_and_parse_round_trip():
    scene = Scene((ObjectSpec("red", "circle", "left"), ObjectSpec("blue", "square", "up")))
    assert scene.prompt == "a red circle moving left and a blue square moving up"
    assert parse_prompt(scene.prompt) == scene
    assert parse_prompt("a blue square and a yellow triangle").objects[1] == ObjectSpec(
        "yellow", "triangle", None
    )
    assert parse_prompt("  A Red Circle  ") == Scene((ObjectSpec("red", "circle", None),))


@pytest.mark.parametrize(
    "prompt, needle",
    [
        ("a pink circle moving left", "unknown word 'pink'"),
        ("a red circle moving sideways", "unknown word 'sideways'"),
        ("a red hexagon", "unknown word 'hexagon'"),
        ("red circle", "is not 'a <colour> <shape>"),
        ("a red circle moving", "is not 'a <colour> <shape>"),
        ("a red circle and a blue square and a green cross", "names 3 objects"),
        ("a red circle and a red square", "both objects are red"),
    ],
)
def test_bad_prompts_raise_one_clear_line(prompt, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        parse_prompt(prompt)
    assert "\n" not in str(info.value)


def test_encode_pads_to_fixed_length_with_mask():
    ids, mask = encode("a red circle moving left")
    assert len(ids) == len(mask) == MAX_TOKENS
    assert [VOCAB[i] for i in ids[:6]] == ["<bos>", "a", "red", "circle", "moving", "left"]
    assert mask == [1] * 6 + [0] * 6 and set(ids[6:]) == {VOCAB.index("<pad>")}
    null_ids, null_mask = encode("")
    assert null_ids[0] == VOCAB.index("<bos>") and null_mask == [1] + [0] * (MAX_TOKENS - 1)
    longest = "a white diamond moving down and a purple cross moving right"
    assert sum(encode(longest)[1]) == MAX_TOKENS
    with pytest.raises(ConfigError, match="unknown word 'pink'"):
        encode_batch(["a red circle", "a pink circle"])


def test_fixed_splits_are_deterministic_and_cover_every_attribute(suite):
    again = PromptSuite(SpritesConfig())
    assert suite.prompts("eval") == again.prompts("eval") and len(suite.prompts("eval")) == 48
    objects = [o for s in suite.scenes("eval") for o in s.objects]
    cfg = suite.cfg
    assert {o.color for o in objects} == set(cfg.colors)
    assert {o.shape for o in objects} == set(cfg.shapes)
    assert {o.direction for o in objects} == set(cfg.directions)
    assert any(len(s.objects) == 2 for s in suite.scenes("eval"))
    assert any(len(s.objects) == 1 for s in suite.scenes("eval"))


def test_held_out_pairs_only_in_heldout_split(suite):
    held = set(suite.cfg.held_out)
    train = suite.sample(2000, np.random.default_rng(0), "train")
    seen = {(o.color, o.shape) for s in train for o in s.objects}
    assert not seen & held and len(seen) == 30 - len(held)
    assert not {(o.color, o.shape) for s in suite.scenes("eval") for o in s.objects} & held
    assert all((s.objects[0].color, s.objects[0].shape) in held for s in suite.scenes("heldout"))


def test_unknown_split_and_empty_heldout_are_errors():
    suite = PromptSuite(SpritesConfig(held_out=()))
    with pytest.raises(ConfigError, match="unknown prompt split 'test'"):
        suite.sample(1, np.random.default_rng(0), "test")
    with pytest.raises(ConfigError, match="split 'heldout' is empty"):
        suite.sample(1, np.random.default_rng(0), "heldout")
    with pytest.raises(ConfigError, match="removes every colour-shape pair"):
        PromptSuite(
            SpritesConfig(colors=("red",), shapes=("circle",), max_objects=1, held_out=(("red", "circle"),))
        )
