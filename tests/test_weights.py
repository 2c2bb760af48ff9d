"""Strict safetensors loading: every problem is one CheckpointError naming the file and the tensor."""

from __future__ import annotations

import stat

import pytest
import torch
from torch import nn

from harness.errors import CheckpointError
from harness.io.weights import load_weights, save_weights


def test_saved_weights_get_the_mode_of_any_other_new_file(tmp_path):
    path = save_weights(nn.Linear(3, 2), tmp_path / "m.safetensors")
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_round_trip_and_every_mismatch_is_named(tmp_path):
    model = nn.Linear(3, 2)
    path = save_weights(model, tmp_path / "m.safetensors")
    twin = load_weights(nn.Linear(3, 2), path)
    assert torch.equal(twin.weight, model.weight)
    with pytest.raises(CheckpointError, match=r"m.safetensors: tensor 'weight' has shape \[2, 3\], model expects \[4, 3\]"):
        load_weights(nn.Linear(3, 4), path)
    with pytest.raises(CheckpointError, match="tensor 'bias' missing"):
        load_weights(nn.Linear(3, 2), save_weights(nn.Linear(3, 2, bias=False), tmp_path / "nobias.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected tensor 'bias'"):
        load_weights(nn.Linear(3, 2, bias=False), path)
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.safetensors: unreadable safetensors file"):
        load_weights(model, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match=r"none.safetensors: missing \(train it first\)"):
        load_weights(model, tmp_path / "none.safetensors", hint="train it first")
