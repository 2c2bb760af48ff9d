"""Flow-matching conventions: noising, x0/v conversions, the time shift and the CFG forms."""

from __future__ import annotations

import itertools

import pytest
import torch

from harness.diffusion import conventions as fm
from harness.errors import ConfigError


def _video(seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(2, 4, 3, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_warp_of_the_four_step_list_matches_self_forcing():
    warped = fm.warp_timesteps([1000, 750, 500, 250], shift=5.0)
    assert warped == pytest.approx([1000.0, 937.5, 2500.0 / 3.0, 625.0], abs=1e-9)


def test_shift_formula_and_identity_shift():
    assert fm.shift_sigma(0.5, 5.0) == pytest.approx(2.5 / 3.0)
    assert fm.warp_timesteps([1000, 500, 0], shift=1.0) == [1000.0, 500.0, 0.0]
    assert fm.warp_timesteps([1000, 500], shift=8.0)[1] == pytest.approx(1000 * 4.0 / 4.5)


def test_warp_rejects_steps_outside_range():
    with pytest.raises(ConfigError, match="1200"):
        fm.warp_timesteps([1200, 500])
    with pytest.raises(ConfigError, match="shift"):
        fm.shift_sigma(0.5, 0.0)


def test_noise_v_x0_round_trip_to_1e12_per_frame():
    x0, eps = _video(0), _video(1)
    sigma = torch.rand(2, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.9 + 0.05
    x_t = fm.add_noise(x0, eps, sigma)
    # frame (b, f) is mixed with its own sigma
    assert torch.allclose(x_t[1, 2], (1 - sigma[1, 2]) * x0[1, 2] + sigma[1, 2] * eps[1, 2], atol=1e-12)
    v = fm.flow_target(x0, eps)
    assert torch.allclose(v, eps - x0, atol=0)
    assert (fm.x0_from_v(x_t, v, sigma) - x0).abs().max() < 1e-12
    assert (fm.v_from_x0(x_t, x0, sigma) - v).abs().max() < 1e-12
    assert (fm.noise_from_x0(x_t, x0, sigma) - eps).abs().max() < 1e-12


def test_conversions_compute_in_float64_and_cast_back():
    x0, eps = _video(3, torch.float32), _video(4, torch.float32)
    sigma = torch.full((2,), 1e-3, dtype=torch.float64)
    x_t = fm.add_noise(x0, eps, sigma)
    v = fm.v_from_x0(x_t, x0, sigma)
    assert v.dtype == torch.float32
    exact = (x_t.double() - x0.double()) / 1e-3
    assert torch.equal(v, exact.float())


def test_endpoints_of_the_path():
    x0, eps = _video(5), _video(6)
    assert torch.equal(fm.add_noise(x0, eps, 0.0), x0)
    assert torch.equal(fm.add_noise(x0, eps, 1.0), eps)


def test_euler_step_on_exact_velocity_reaches_x0():
    x0, eps = _video(7), _video(8)
    x = fm.add_noise(x0, eps, 1.0)
    grid = [1.0, 0.7, 0.3, 0.0]
    for s, s_next in itertools.pairwise(grid):
        x = fm.euler_step(x, fm.flow_target(x0, eps), s, s_next)
    assert (x - x0).abs().max() < 1e-12


def test_per_frame_timesteps_broadcasting():
    assert fm.per_frame_timesteps(500.0, 2, 3).shape == (2, 3)
    per_sample = fm.per_frame_timesteps(torch.tensor([1.0, 2.0]), 2, 3)
    assert per_sample.tolist() == [[1.0] * 3, [2.0] * 3]
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        fm.per_frame_timesteps(torch.zeros(3, 2), 2, 3)


def test_sigma_timestep_conversion():
    assert fm.sigma_from_timestep(625.0) == 0.625
    assert fm.timestep_from_sigma(0.25) == 250.0


def test_cfg_forms_are_equivalent_with_scale_plus_one():
    cond, uncond = _video(9), _video(10)
    sf = fm.apply_cfg(cond, uncond, 3.0, form="self_forcing")
    std = fm.apply_cfg(cond, uncond, 4.0, form="standard")
    assert (sf - std).abs().max() < 1e-12
    assert (fm.apply_cfg(cond, uncond, 1.0, "standard") - cond).abs().max() < 1e-12
    assert fm.to_standard_scale(3.0, "self_forcing") == 4.0
    assert fm.to_standard_scale(3.0, "standard") == 3.0


def test_unknown_cfg_form_names_the_field():
    with pytest.raises(ConfigError, match="cfg_form 'plus_one'"):
        fm.apply_cfg(_video(0), _video(1), 2.0, form="plus_one")


def test_shifted_timestep_sampler_range_and_determinism():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = fm.sample_shifted_timesteps((1000,), min_t=20, max_t=980, generator=g1)
    b = fm.sample_shifted_timesteps((1000,), min_t=20, max_t=980, generator=g2)
    assert torch.equal(a, b)
    assert a.min() >= fm.warp_timesteps([20])[0] - 1e-3 and a.max() <= fm.warp_timesteps([980])[0] + 1e-3
    # shift 5 moves mass to high noise: the median lies well above 500
    assert a.median() > 700
