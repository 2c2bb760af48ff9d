"""``asd``: step-unified Self Forcing plus Adversarial Self-Distillation (Yang et al., ICLR 2026).

Each iteration draws n from ``n_choices``. The generator rolls out n steps with gradient (Self Forcing
truncation: only the last forward of each chunk carries it) and, without gradient, n+1 steps from
its own noise. Both outputs are noised (Ψ) and scored by D_n, logit n of a head on the critic
backbone's features. With the relativistic loss ``softplus(−(D(a) − D(b)))``:

* generator: ``L_DMD(x_n) + α·softplus(−(D_n(Ψ(x_n)) − D_n(Ψ(x_{n+1}))))`` — the (n+1)-step output
  plays the data, so gradient reaches the generator only through the n-step branch;
* discriminator (on critic steps): the mirror ``softplus(−(D_n(Ψ(x_{n+1})) − D_n(Ψ(x_n))))``,
  plus optional finite-difference R1 (on the n+1 branch) / R2 (on the n branch) as in R3GAN.

A critic step draws its own n and its own no-grad pair; the fake score's flow loss uses that step's
n-step output (the sample the DMD loss is applied to), and the discriminator loss joins it on the same
optimiser step (the head and the fake score share the critic optimiser).

Every choice the paper leaves open is a constructor field; the docstring of :class:`ASD` states each
default and where it comes from (research/paper.md §2, §8). ``asd_ffe`` is this method with
``inference="ffe"`` (methods/__init__.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.diffusion import DEFAULT_STEP_LIST
from harness.errors import ConfigError
from harness.sampling import NoiseSource
from harness.worlds.base import World
from methods.discriminator import Discriminator, DiscriminatorHead
from methods.distill import DistillationMethod
from methods.distribution_matching import DEFAULT_TIMESTEPS, NoisedSample, ScoreTimesteps, noise_sample
from methods.self_forcing import SelfRolloutRecipe
from methods.trainer import DEFAULT_TRAIN, StepOutput, TrainSettings


def relativistic_loss(preferred: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``mean(softplus(−(preferred − other)))``: small when ``preferred`` scores above ``other``."""
    return F.softplus(-(preferred - other)).mean()


def finite_difference_penalty(
    disc: Discriminator, sample: NoisedSample, cond: torch.Tensor, n: int, sigma: float, noise: NoiseSource
) -> torch.Tensor:
    """R1/R2 by finite differences (Self Forcing ``model/gan.py``): ``mean(((D(x + σε) − D(x)) / σ)²)``."""
    x = sample.x_t.detach()
    shifted = x + sigma * noise.normal(x.shape, x.device, x.dtype)
    diff = disc(shifted, sample.timestep, cond, n) - disc(x, sample.timestep, cond, n)
    return ((diff / sigma) ** 2).mean()


class ASDRecipe(SelfRolloutRecipe):
    """Self Forcing's steps for a random n, plus D_n on the critic backbone."""

    def __init__(
        self, method: ASD, world: World, teacher: nn.Module, init: nn.Module, device: torch.device
    ) -> None:
        super().__init__(method, world, teacher, init, device)
        self.asd = method
        depth, dim = self._probe_features()
        if dim % method.head_heads:
            raise ConfigError(
                f"asd.head_heads={method.head_heads} does not divide the critic feature width {dim}"
            )
        self.head = DiscriminatorHead(
            dim, method.head_heads, depth, max(method.n_choices), method.feature_layers
        ).to(device)
        self.disc = Discriminator(
            self.fake_score, self.head, train_backbone=method.train_backbone_with_discriminator
        )
        self.critic = nn.ModuleDict({"fake_score": self.fake_score, "head": self.head})

    def _probe_features(self) -> tuple[int, int]:
        """Number of feature maps and their width, from one forward of the critic on a blank chunk."""
        shape = self.world.video_shape
        x = torch.zeros(
            (1, shape.frames_per_chunk, shape.channels, shape.height, shape.width), device=self.device
        )
        with torch.no_grad():
            _, features = self.fake_score(
                x, 500.0, self.world.null_condition(1).to(self.device), causal=False, return_features=True
            )
        return len(features), features[0].shape[-1]

    def _pair(
        self, cond: torch.Tensor, n: int, noise: NoiseSource, *, grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_n (with gradient when ``grad``) and x_{n+1} (never with gradient)."""
        start = noise.get_state() if self.asd.same_start_noise else None
        x_n = self.rollout(cond, self.training_schedule(n), noise, grad=grad).video
        if start is not None:
            noise.set_state(start)
        with torch.no_grad():
            x_next = self.rollout(cond, self.training_schedule(n + 1), noise, grad=False).video
        return x_n, x_next

    def _psi(
        self, x_n: torch.Tensor, x_next: torch.Tensor, noise: NoiseSource
    ) -> tuple[NoisedSample, NoisedSample]:
        """Ψ of both branches: independent ε; one shared t when ``same_noise_level``."""
        psi_n = noise_sample(x_n, self.asd.discriminator_timesteps, noise)
        shared_t = psi_n.timestep if self.asd.same_noise_level else None
        return psi_n, noise_sample(x_next, self.asd.discriminator_timesteps, noise, shared_t)

    @property
    def adversarial(self) -> bool:
        """False at alpha = 0 (the step-unified DMD baseline): the n+1-step branch and D_n would
        change nothing, so they are not computed and the baseline trains at Self Forcing's cost."""
        return self.asd.alpha > 0

    def generator_step(self, step: int, noise: NoiseSource) -> StepOutput:
        _, cond, uncond = self.prompt_batch(noise)
        n = noise.choice(self.asd.n_choices)
        if not self.adversarial:
            x_n = self.rollout(cond, self.training_schedule(n), noise, grad=True).video
            dmd, metrics = self.scores.generator_loss(x_n, cond, uncond, noise)
            metrics.update(n=float(n))
            return StepOutput(dmd, {"dmd": dmd.detach()}, metrics)
        x_n, x_next = self._pair(cond, n, noise, grad=True)
        dmd, metrics = self.scores.generator_loss(x_n, cond, uncond, noise)
        psi_n, psi_next = self._psi(x_n, x_next, noise)
        d_n = self.disc(psi_n.x_t, psi_n.timestep, cond, n, for_generator=True)
        with torch.no_grad():
            d_next = self.disc(psi_next.x_t, psi_next.timestep, cond, n)
        adversarial = relativistic_loss(d_n, d_next)
        loss = dmd + self.asd.alpha * adversarial
        metrics.update(n=float(n), logit_n=float(d_n.detach().mean()), logit_n_plus_1=float(d_next.mean()))
        return StepOutput(loss, {"dmd": dmd.detach(), "asd": adversarial.detach()}, metrics)

    def critic_step(self, step: int, noise: NoiseSource) -> StepOutput:
        _, cond, _ = self.prompt_batch(noise)
        n = noise.choice(self.asd.n_choices)
        if not self.adversarial:
            with torch.no_grad():
                x_n = self.rollout(cond, self.training_schedule(n), noise, grad=False).video
            flow = self.scores.critic_loss(x_n, cond, noise)
            return StepOutput(flow, {"flow": flow.detach()}, {"n": float(n)})
        with torch.no_grad():
            x_n, x_next = self._pair(cond, n, noise, grad=False)
        flow = self.scores.critic_loss(x_n, cond, noise)
        if step % self.asd.discriminator_interval:
            return StepOutput(flow, {"flow": flow.detach()}, {"n": float(n)})
        disc_loss, terms, metrics = self.discriminator_loss(x_n, x_next, cond, n, noise)
        return StepOutput(
            flow + self.asd.discriminator_weight * disc_loss,
            {"flow": flow.detach(), **terms},
            {"n": float(n), **metrics},
        )

    def discriminator_loss(
        self, x_n: torch.Tensor, x_next: torch.Tensor, cond: torch.Tensor, n: int, noise: NoiseSource
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
        """The mirror relativistic loss (x_{n+1} preferred) plus weighted R1/R2."""
        a = self.asd
        psi_n, psi_next = self._psi(x_n.detach(), x_next.detach(), noise)
        d_next = self.disc(psi_next.x_t, psi_next.timestep, cond, n)
        d_n = self.disc(psi_n.x_t, psi_n.timestep, cond, n)
        loss = relativistic_loss(d_next, d_n)
        terms = {"discriminator": loss.detach()}
        for name, weight, sample in (("r1", a.r1_weight, psi_next), ("r2", a.r2_weight, psi_n)):
            if weight > 0:
                penalty = finite_difference_penalty(self.disc, sample, cond, n, a.regularizer_sigma, noise)
                loss = loss + 0.5 * weight * penalty
                terms[name] = penalty.detach()
        gap = (d_next - d_n).detach()
        metrics = {
            "logit_n": float(d_n.detach().mean()),
            "logit_n_plus_1": float(d_next.detach().mean()),
            "logit_gap": float(gap.mean()),
        }
        return loss, terms, metrics


class ASD(DistillationMethod):
    """Step-unified Self Forcing + adversarial self-distillation between n and n+1 steps.

    Args:
        n_choices: the n drawn (uniformly) each iteration; needs n + 1 <= len(step_list). Default
            {1, 2, 3}: "n ∈ {1..N} ... all adjacent step pairs" with n + 1 <= N = 4 (paper.md §2.5).
        alpha: weight of the adversarial term. The paper sweeps {0, 10, 20, 30} (Fig. 8, via reviewer
            3) without naming its default; 10 is assumed (the smallest non-zero value).
        same_noise_level: one t for Ψ of both branches. Default False: reviewer 1 reads Alg. 1 as
            drawing two timesteps (paper.md §2.2); Self Forcing's GAN code shares one.
        same_start_noise: draw x_{n+1} from the same noise streams as x_n (each chunk starts from the
            same noise and shares the re-noise draws of the common steps). Default
            False: Fig. 3 shows separate samples z1, z2 (paper.md §2.1).
        feature_layers: critic blocks the head reads (negative = from the end). Default the last two;
            Self Forcing taps 3 of 30 blocks in its back half (paper.md §2.3). Assumed.
        head_heads: attention heads of each register readout.
        train_backbone_with_discriminator: let the discriminator loss update the critic backbone.
            Default False: papernotes calls the shared fake-score backbone "frozen" (paper.md §2.3);
            Self Forcing's GAN trainer updates both (True).
        discriminator_weight: weight of the discriminator loss added to the critic's flow loss on a
            shared optimiser step (assumed 1; Self Forcing's GAN uses 1e-2 for a 1.3B backbone).
        discriminator_interval: the discriminator loss joins every k-th critic step (update ratio);
            default 1 = every critic step, which itself runs ``train.critic_updates_per_generator``
            times per generator step (Self Forcing 5; ASD's ratio is unknown, paper.md §2.4).
        r1_weight, r2_weight: finite-difference R1 (n+1 branch) / R2 (n branch) weights; default 0
            (off). A secondary note reports R3GAN-style λ = 600, σ = 0.05, unverified (paper.md §2.2).
        regularizer_sigma: σ of the finite differences (Self Forcing default 0.01).
        discriminator_timesteps: noise level sampler of Ψ (Self Forcing GAN: shift 5, clamp [20, 980]).
        step_list, reading, inference, renoise, train, timesteps: as for :class:`SelfForcing`.
    """

    name = "asd"

    def __init__(
        self,
        n_choices: tuple[int, ...] = (1, 2, 3),
        alpha: float = 10.0,
        same_noise_level: bool = False,
        same_start_noise: bool = False,
        feature_layers: tuple[int, ...] = (-2, -1),
        head_heads: int = 4,
        train_backbone_with_discriminator: bool = False,
        discriminator_weight: float = 1.0,
        discriminator_interval: int = 1,
        r1_weight: float = 0.0,
        r2_weight: float = 0.0,
        regularizer_sigma: float = 0.01,
        discriminator_timesteps: ScoreTimesteps = DEFAULT_TIMESTEPS,
        step_list: tuple[float, ...] = DEFAULT_STEP_LIST,
        reading: str = "prefix",
        inference: str = "uniform",
        renoise: str = "sde",
        train: TrainSettings = DEFAULT_TRAIN,
        timesteps: ScoreTimesteps = DEFAULT_TIMESTEPS,
    ) -> None:
        super().__init__(
            train=train,
            timesteps=timesteps,
            step_list=step_list,
            reading=reading,
            inference=inference,
            renoise=renoise,
        )
        choices = tuple(int(n) for n in n_choices)
        if not choices or min(choices) < 1 or max(choices) + 1 > len(self.step_list):
            raise ConfigError(
                f"asd.n_choices {list(choices)} must lie in 1..{len(self.step_list) - 1} "
                f"(n + 1 steps must fit the {len(self.step_list)}-step list)"
            )
        if discriminator_interval < 1 or regularizer_sigma <= 0 or min(alpha, r1_weight, r2_weight) < 0:
            raise ConfigError(
                "asd: discriminator_interval must be >= 1, regularizer_sigma > 0, "
                "alpha / r1_weight / r2_weight >= 0"
            )
        self.n_choices, self.alpha = choices, alpha
        self.same_noise_level, self.same_start_noise = same_noise_level, same_start_noise
        self.feature_layers, self.head_heads = tuple(feature_layers), head_heads
        self.train_backbone_with_discriminator = train_backbone_with_discriminator
        self.discriminator_weight, self.discriminator_interval = discriminator_weight, discriminator_interval
        self.r1_weight, self.r2_weight, self.regularizer_sigma = r1_weight, r2_weight, regularizer_sigma
        self.discriminator_timesteps = discriminator_timesteps
        self.num_steps = len(self.step_list)

    def build_recipe(
        self, world: World, teacher: nn.Module, init: nn.Module, device: torch.device
    ) -> ASDRecipe:
        return ASDRecipe(self, world, teacher, init, device)
