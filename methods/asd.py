"""``asd``: step-unified Self Forcing plus Adversarial Self-Distillation (Yang et al., ICLR 2026).

Each iteration draws n from ``n_choices``. The generator rolls out n steps with gradient (Self Forcing
truncation: only the last forward of each chunk carries it) and, without gradient, n+1 steps from
its own noise. Both outputs are noised (Ψ) and scored by D_n, logit n of a head on the critic
backbone's features. With the relativistic loss ``softplus(−(D(a) − D(b)))``:

* generator: ``L_DMD(x_n) + α·softplus(−(D_n(Ψ(x_n)) − D_n(Ψ(x_{n+1}))))`` — the (n+1)-step output
  plays the data, so gradient reaches the generator only through the n-step branch;
* discriminator (on critic steps): the mirror ``softplus(−(D_n(Ψ(x_{n+1})) − D_n(Ψ(x_n))))``,
  plus optional finite-difference R1 (on the n+1 branch) / R2 (on the n branch) as in R3GAN.

A critic step draws its own n; the fake score's flow loss uses that step's n-step output (the sample
the DMD loss is applied to), and on the steps where D updates the discriminator loss joins it on the
same optimiser step — the head in its own parameter group (its own lr and betas when given) — and only
those steps roll out the no-grad (n+1)-step branch.

What makes D able to learn and α comparable across backbones (issue 19): a warm-up of critic steps
with α = 0 for the generator while D trains, then a linear ramp of α (:mod:`methods.asd_calibration`);
α per n set from a target ratio ``‖∇θ α·L_ASD‖ / ‖∇θ L_DMD‖``, which is logged per n every few
updates either way; and D's accuracy, logit gap and feature separation on a fixed held-out set of pairs
(:mod:`methods.asd_diagnostics`).

Every choice the paper leaves open is a constructor field; the docstring of :class:`ASD` states each
default and where it comes from (docs/references.md#the-asd-paper). ASD with First-Frame Enhancement is this
method with ``inference="ffe"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from harness.diffusion.sampling import NoiseSource
from harness.errors import ConfigError
from harness.training.trainer import StepOutput
from harness.worlds.base import World
from methods.asd_calibration import AlphaCalibration, alpha_scale, gradient_ratio
from methods.asd_diagnostics import HeldOutPairs
from methods.discriminator import Discriminator, DiscriminatorHead
from methods.distill import DistillationMethod
from methods.distribution_matching import DEFAULT_TIMESTEPS, NoisedSample, ScoreTimesteps, noise_sample
from methods.self_forcing import SelfRolloutRecipe


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


def _sharded(module: nn.Module) -> bool:
    """Whether FSDP2 has sharded ``module``'s parameters (they are DTensors)."""
    return any(hasattr(p, "full_tensor") for p in module.parameters())


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
        self.calibration = AlphaCalibration(max(method.n_choices), method.alpha, method.target_ratio).to(device)
        # the calibration's α per n is a buffer of the critic, so checkpoints carry it and resume exactly
        self.critic = nn.ModuleDict(
            {"fake_score": self.fake_score, "head": self.head, "calibration": self.calibration}
        )
        self.heldout = HeldOutPairs(self.train_prompts, method.diagnostic_pairs, method.diagnostic_seed)

    def critic_param_groups(self) -> list[dict[str, Any]]:
        """The critic optimiser's groups: the fake score at ``train.lr_critic``, the head at its own lr and
        betas where given (the trainer fills what a group leaves out from the train settings)."""
        a = self.asd
        head: dict[str, Any] = {"params": list(self.head.parameters())}
        if a.discriminator_lr is not None:
            head["lr"] = a.discriminator_lr
        if a.discriminator_betas is not None:
            head["betas"] = tuple(a.discriminator_betas)
        return [{"params": list(self.fake_score.parameters())}, head]

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
        """False at alpha = 0 without a target ratio (the step-unified DMD baseline): the n+1-step
        branch and D_n would change nothing, so they are not computed and the baseline trains at Self
        Forcing's cost."""
        return self.asd.alpha > 0 or self.asd.target_ratio > 0

    def _updates(self, step: int) -> int:
        return step // self.asd.train.critic_updates_per_generator

    def _ratio_due(self, step: int, n: int) -> bool:
        """Measure the gradient ratio every ``ratio_every`` updates, and before a calibrated α_n exists.

        Not under FSDP: ``autograd.grad`` cannot reach sharded parameters (the forward runs on gathered
        copies), so there is no ratio to log, and α cannot be set from a target ratio."""
        if _sharded(self.generator):
            if self.calibration.calibrated:
                raise ConfigError("asd.target_ratio needs the generator's gradients, which FSDP shards: "
                                  "set asd.alpha instead, or train with train.parallel ddp")
            return False
        every = self.asd.ratio_every
        return (every > 0 and self._updates(step) % every == 0) or not self.calibration.known(n)

    def _diagnostics_due(self, step: int) -> bool:
        every = self.asd.diagnostics_every * self.asd.train.critic_updates_per_generator
        return self.adversarial and every > 0 and (step % every == 0 or step == self.asd.train.steps - 1)

    def generator_step(self, step: int, noise: NoiseSource) -> StepOutput:
        _, cond, uncond = self.prompt_batch(noise)
        n = noise.choice(self.asd.n_choices)
        scale = alpha_scale(step, self.asd.warmup_steps, self.asd.alpha_ramp_steps) if self.adversarial else 0.0
        measure = self.adversarial and self._ratio_due(step, n)
        if scale == 0.0 and not measure:  # DMD alone (the baseline, or the warm-up): no n+1 branch, no D
            x_n = self.rollout(cond, self.training_schedule(n), noise, grad=True).video
            dmd, metrics = self.scores.generator_loss(x_n, cond, uncond, noise)
            metrics.update(n=float(n), **({"alpha": 0.0} if self.adversarial else {}))
            return StepOutput(dmd, {"dmd": dmd.detach()}, metrics)
        x_n, x_next = self._pair(cond, n, noise, grad=True)
        dmd, metrics = self.scores.generator_loss(x_n, cond, uncond, noise)
        psi_n, psi_next = self._psi(x_n, x_next, noise)
        d_n = self.disc(psi_n.x_t, psi_n.timestep, cond, n, for_generator=True)
        with torch.no_grad():
            d_next = self.disc(psi_next.x_t, psi_next.timestep, cond, n)
        adversarial = relativistic_loss(d_n, d_next)
        if measure:  # at the full α_n (after calibration when a target ratio is set), warm-up or not
            params = [p for p in self.generator.parameters() if p.requires_grad]
            metrics[f"grad_ratio_n{n}"] = self.calibration.update(n, *gradient_ratio(dmd, adversarial, params))
        alpha = scale * self.calibration.value(n)
        loss = dmd + alpha * adversarial
        metrics.update(
            n=float(n), alpha=alpha, logit_n=float(d_n.detach().mean()), logit_n_plus_1=float(d_next.mean())
        )
        return StepOutput(loss, {"dmd": dmd.detach(), "asd": adversarial.detach()}, metrics)

    def critic_step(self, step: int, noise: NoiseSource) -> StepOutput:
        _, cond, _ = self.prompt_batch(noise)
        n = noise.choice(self.asd.n_choices)
        trains_d = self.adversarial and step % self.asd.discriminator_interval == 0
        with torch.no_grad():
            if trains_d:
                x_n, x_next = self._pair(cond, n, noise, grad=False)
            else:  # D does not update on this step: the (n+1)-step rollout would be wasted
                x_n = self.rollout(cond, self.training_schedule(n), noise, grad=False).video
        flow = self.scores.critic_loss(x_n, cond, noise)
        metrics = {"n": float(n)}
        if self._diagnostics_due(step):
            metrics.update(self.diagnostics())
        if not trains_d:
            return StepOutput(flow, {"flow": flow.detach()}, metrics)
        disc_loss, terms, d_metrics = self.discriminator_loss(x_n, x_next, cond, n, noise)
        return StepOutput(
            flow + self.asd.discriminator_weight * disc_loss,
            {"flow": flow.detach(), **terms},
            {**metrics, **d_metrics},
        )

    def diagnostics(self) -> dict[str, float]:
        """D on the fixed held-out pairs of the current generator (:mod:`methods.asd_diagnostics`)."""
        return self.heldout.measure(
            lambda prompts: self.world.encode_prompts(prompts).to(self.device),
            lambda cond, n, noise: self._pair(cond, n, noise, grad=False),
            self._psi,
            self.disc,
            self.asd.n_choices,
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
            {1, 2, 3}: "n ∈ {1..N} ... all adjacent step pairs" with n + 1 <= N = 4 (docs/references.md#what-the-asd-paper-leaves-open).
        alpha: weight of the adversarial term. The paper sweeps {0, 10, 20, 30} (Fig. 8, via reviewer
            3) without naming its default; 10 is assumed (the smallest non-zero value).
        same_noise_level: one t for Ψ of both branches. Default False: reviewer 1 reads Alg. 1 as
            drawing two timesteps (docs/references.md#what-the-asd-paper-leaves-open); Self Forcing's GAN code shares one.
        same_start_noise: draw x_{n+1} from the same noise streams as x_n (each chunk starts from the
            same noise and shares the re-noise draws of the common steps). Default
            False: Fig. 3 shows separate samples z1, z2 (docs/references.md#what-the-asd-paper-leaves-open).
        feature_layers: critic blocks the head reads (negative = from the end). Default the last two;
            Self Forcing taps 3 of 30 blocks in its back half (docs/references.md#what-the-asd-paper-leaves-open). Assumed.
        head_heads: attention heads of each register readout.
        train_backbone_with_discriminator: let the discriminator loss update the critic backbone.
            Default False: papernotes calls the shared fake-score backbone "frozen" (docs/references.md#what-the-asd-paper-leaves-open);
            Self Forcing's GAN trainer updates both (True).
        discriminator_weight: weight of the discriminator loss added to the critic's flow loss on a
            shared optimiser step (assumed 1; Self Forcing's GAN uses 1e-2 for a 1.3B backbone).
        discriminator_interval: the discriminator loss joins every k-th critic step (update ratio);
            default 1 = every critic step, which itself runs ``train.critic_updates_per_generator``
            times per generator step (Self Forcing 5; ASD's ratio is unknown, docs/references.md#what-the-asd-paper-leaves-open).
        r1_weight, r2_weight: finite-difference R1 (n+1 branch) / R2 (n branch) weights; default 0
            (off). A secondary note reports R3GAN-style λ = 600, σ = 0.05, unverified (docs/references.md#what-the-asd-paper-leaves-open).
        regularizer_sigma: σ of the finite differences (Self Forcing default 0.01).
        discriminator_timesteps: noise level sampler of Ψ (Self Forcing GAN: shift 5, clamp [20, 980]);
            its ``shift``, ``min_t`` and ``max_t`` are the distribution of D's noise level. With shift 5
            most of D's inputs are nearly pure noise (56% at σ > 0.8): shift 1 and ``max_t`` 500 show D
            more of the samples.
        discriminator_lr: learning rate of the head's own parameter group; None = ``train.lr_critic``
            (one group with the fake score, as before issue 19). Adam moves a weight by about lr per
            step, so the fake score's 2e-5 leaves the head near its initialisation for a whole study.
        discriminator_betas: AdamW betas of the head's group; None = ``train.betas``.
        warmup_steps: critic steps at the start where the generator trains with α = 0 (DMD alone, no
            n+1 rollout on its steps) while D trains. Default 0.
        alpha_ramp_steps: critic steps after the warm-up over which α rises linearly to its value.
        target_ratio: when > 0, α per n is set so that ``‖∇θ α·L_ASD‖ / ‖∇θ L_DMD‖`` equals it on the
            generator's parameters at each measurement (``alpha`` is then unused): "ASD at ratio r".
            Default 0 (off: α = ``alpha``).
        ratio_every: generator updates between measurements of that ratio (logged per n as
            ``generator/grad_ratio_n{n}``; two extra backward passes each); 0 = only where a target
            ratio needs a first α_n.
        diagnostics_every: generator updates between the held-out diagnostics of D (and at the last
            step); 0 = off.
        diagnostic_pairs: (x_n, x_{n+1}) pairs per n in the held-out set.
        diagnostic_seed: the held-out set's own noise seed (train prompts, noise no training step draws).
        **shared: the settings of every distillation method (:class:`~methods.distill.DistillationMethod`).
    """

    name = "asd"

    @property
    def display_name(self) -> str:
        """'dmd' without the adversarial term (α = 0, no target ratio): the step-unified DMD baseline."""
        return "dmd" if self.alpha == 0 and self.target_ratio == 0 else self.name

    # 2: D's own optimiser group, warm-up and ramp of α, α from a target ratio, held-out diagnostics, and
    # no n+1 rollout on critic steps where D does not update (issue 19)
    version: ClassVar[int] = 2

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
        discriminator_lr: float | None = None,
        discriminator_betas: tuple[float, float] | None = None,
        warmup_steps: int = 0,
        alpha_ramp_steps: int = 0,
        target_ratio: float = 0.0,
        ratio_every: int = 5,
        diagnostics_every: int = 10,
        diagnostic_pairs: int = 16,
        diagnostic_seed: int = 104_729,
        **shared: Any,
    ) -> None:
        super().__init__(**shared)
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
        self._check_schedule(warmup_steps, alpha_ramp_steps, target_ratio, ratio_every, diagnostics_every)
        self._check_optimiser(discriminator_lr, discriminator_betas, diagnostic_pairs)
        self.discriminator_lr, self.discriminator_betas = discriminator_lr, discriminator_betas
        self.warmup_steps, self.alpha_ramp_steps = warmup_steps, alpha_ramp_steps
        self.target_ratio, self.ratio_every = target_ratio, ratio_every
        self.diagnostics_every, self.diagnostic_pairs = diagnostics_every, diagnostic_pairs
        self.diagnostic_seed = diagnostic_seed
        self.num_steps = len(self.step_list)

    @staticmethod
    def _check_schedule(warmup: int, ramp: int, target_ratio: float, ratio_every: int, diagnostics: int) -> None:
        for name, value in (("warmup_steps", warmup), ("alpha_ramp_steps", ramp), ("ratio_every", ratio_every),
                            ("diagnostics_every", diagnostics)):
            if value < 0:
                raise ConfigError(f"asd.{name} must be >= 0, got {value}")
        if target_ratio < 0:
            raise ConfigError(f"asd.target_ratio must be >= 0 (0 = use alpha), got {target_ratio}")

    @staticmethod
    def _check_optimiser(lr: float | None, betas: tuple[float, float] | None, pairs: int) -> None:
        if lr is not None and lr <= 0:
            raise ConfigError(f"asd.discriminator_lr must be > 0 (or null for train.lr_critic), got {lr}")
        if betas is not None and (len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas)):
            raise ConfigError(f"asd.discriminator_betas must be two numbers in [0, 1), got {list(betas)}")
        if pairs < 2:
            raise ConfigError(f"asd.diagnostic_pairs must be >= 2, got {pairs}")

    def build_recipe(
        self, world: World, teacher: nn.Module, init: nn.Module, device: torch.device
    ) -> ASDRecipe:
        return ASDRecipe(self, world, teacher, init, device)
