"""Can D_n tell x_n from x_{n+1}? Diagnostics on a fixed held-out set of pairs, logged while training.

Every few generator updates the recipe rolls out, for each n, ``pairs`` n-step and (n+1)-step videos of
the current generator from a fixed seed of its own (train prompts, noise no training step draws), noises
both with Ψ drawn from that seed too, and reads:

* ``heldout_acc_n{n}``: the share of pairs where D_n ranks x_{n+1} above x_n (0.5 = chance; the
  relativistic loss only ever asks for that ranking); ``heldout_acc_min``: the lowest over n, the
  number a sweep constrains;
* ``heldout_gap_n{n}``: the mean logit gap ``D_n(Ψ(x_{n+1})) − D_n(Ψ(x_n))``;
* ``feat_ratio_n{n}``: the distance between the two branches' mean features relative to the spread
  within a branch, ``‖μ_n − μ_{n+1}‖ / sqrt(½(s²_n + s²_{n+1}))`` with s² the mean squared distance to
  the branch mean, on the critic backbone's tapped layers averaged over tokens (what the head can
  read); ``feat_null_n{n}``: the same with the pairs' labels shuffled once (fixed), i.e. the value two
  samples of one distribution give at this set size; ``readout_ratio_n{n}``: the same ratio on the
  head's own readout.

A ``feat_ratio`` near its null says x_n and x_{n+1} cannot be told apart in D's features, whatever
the head does; a ratio well above the null with accuracy at chance says the head is what fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from harness.diffusion.sampling import NoiseSource

PairMaker = Callable[[torch.Tensor, int, NoiseSource], tuple[torch.Tensor, torch.Tensor]]


def separation(preferred: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean gap): the share of pairs with ``preferred > other`` (ties count half) and
    ``mean(preferred − other)``."""
    diff = (preferred - other).double()
    accuracy = float((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean())
    return accuracy, float(diff.mean())


def feature_ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    """``‖mean(a) − mean(b)‖ / sqrt(½(s²_a + s²_b))`` for feature rows a, b [B, D]."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    spread = 0.5 * (_spread(a) + _spread(b))
    between = float((a.mean(0) - b.mean(0)).norm())
    return between / math.sqrt(spread) if spread > 0 else (math.inf if between > 0 else 0.0)


def _spread(x: torch.Tensor) -> float:
    return float((x - x.mean(0)).pow(2).sum(1).mean())


def shuffled_ratio(a: torch.Tensor, b: torch.Tensor, seed: int) -> float:
    """:func:`feature_ratio` after pooling a and b and splitting them again at random (fixed ``seed``)."""
    both = torch.cat([a, b])
    order = torch.randperm(len(both), generator=torch.Generator().manual_seed(seed))
    return feature_ratio(both[order[: len(a)]], both[order[len(a):]])


class HeldOutPairs:
    """The fixed held-out set: ``pairs`` train prompts (cycled) and one noise seed."""

    def __init__(self, prompts: Sequence[str], pairs: int, seed: int) -> None:
        self.prompts = [prompts[i % len(prompts)] for i in range(pairs)]
        self.seed = seed

    def measure(self, encode: Callable[[list[str]], torch.Tensor], make_pair: PairMaker, psi, disc,
                n_choices: Sequence[int]) -> dict[str, float]:
        """Every number of the module docstring for each n in ``n_choices``; the caller's torch random
        state is left as it was, so the run trains the same weights with or without diagnostics."""
        rng = torch.get_rng_state()
        out: dict[str, float] = {}
        try:
            with torch.no_grad():
                cond = encode(self.prompts)
                for n in n_choices:
                    noise = NoiseSource(self.seed + n)
                    x_n, x_next = make_pair(cond, n, noise)
                    psi_n, psi_next = psi(x_n, x_next, noise)
                    d_n, pooled_n, read_n = disc.inspect(psi_n.x_t, psi_n.timestep, cond, n)
                    d_next, pooled_next, read_next = disc.inspect(psi_next.x_t, psi_next.timestep, cond, n)
                    accuracy, gap = separation(d_next, d_n)
                    out[f"heldout_acc_n{n}"], out[f"heldout_gap_n{n}"] = accuracy, gap
                    out[f"feat_ratio_n{n}"] = feature_ratio(pooled_n, pooled_next)
                    out[f"feat_null_n{n}"] = shuffled_ratio(pooled_n, pooled_next, self.seed + n)
                    out[f"readout_ratio_n{n}"] = feature_ratio(read_n, read_next)
        finally:
            torch.set_rng_state(rng)
        out["heldout_acc_min"] = min(out[f"heldout_acc_n{n}"] for n in n_choices)
        return out
