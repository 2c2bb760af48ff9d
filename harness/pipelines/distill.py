"""Distil a method in a world, sample it with one schedule, evaluate: one row of the paper's tables.

The distillation is a cached stage keyed by the world, the method and the seed — not the schedule —
so an ASD model is trained once and sampled with 1, 2, 1* and 2* steps by four runs. With
``resources: {gpus: N}`` the run executes under torchrun and the distillation is data parallel over
the N ranks (every rank trains; rank 0 writes the artifact); then every rank samples its share of the
evaluation videos and rank 0 scores them all (:mod:`.streaming`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from harness.engine.checkpoints import CheckpointStore
from harness.engine.pipeline import RunContext
from harness.engine.rank_stages import every_rank
from harness.io.atomic import append_line, atomic_write_bytes, truncate_jsonl_after
from harness.io.weights import load_weights, save_weights
from harness.parallel.ranks import is_distributed, is_rank_zero
from harness.pipelines.batches import VideoBatch, checked_batch, plan_batches
from harness.pipelines.common import WorldPipeline, check_row_sizes, component_config, take_prompts
from harness.pipelines.streaming import EvalStream, RowSampler
from harness.pipelines.training_eval import FixedSetScores
from harness.worlds.base import World
from methods.base import Method

GENERATOR_FILE = "generator.safetensors"
TRAINING_LOG = "metrics.jsonl"  # in the distill stage's folder: losses, diagnostics and the eval hook's scores
RUN_TRAINING_LOG = "distill_metrics.jsonl"  # its copy in each run folder that samples that generator
# Version of the distill-<method> stage's own code (_distilled below); the world's and the method's
# class versions enter its key with their configs (the rule: harness/engine/versions.py).
STAGE_VERSION = 1


class DistillAndEvaluate(WorldPipeline):
    """One method × schedule × seed.

    Args:
        world: The domain (prompts, teacher, causal init, evaluator).
        method: The distillation method (``methods.dmd.DMD``, ``methods.asd.ASD``, …).
        schedule: Sampling schedule: ``"4"``, ``"2"``, ``"1"``, FFE ``"1*"``/``"2*"``, or a list ``"[1000,500]"``,
            read by the method (:meth:`Method.schedule`): its step list, reading, shift and FFE mode apply.
        num_videos: Videos generated on the eval prompts and scored.
        videos_per_prompt: Samples of each prompt (with different noise): diversity is measured among them.
        num_reference: Real videos the distribution scores compare against (0 to skip them).
        sample_seed: Offset of the sampling noise, whose seed is ``sample_seed + seed``: within a seed every row
            of a study samples the same noise, so rows pair by seed and differ only by model.
        save_videos: How many samples to keep as mp4 in the run folder.
        trace_videos: Videos whose per-step x̂0 trace is recorded for the cosine-similarity analysis.
        sample_batch: Videos sampled and decoded at a time (memory, not results: each video's noise is
            its own). Under torchrun every rank samples a contiguous share of the batches.
        resources: What one run asks of an executor, e.g. ``{gpus: 2}`` (several GPUs: torchrun).
    """


    def __init__(self, world: World, method: Method, schedule: str = "4", num_videos: int = 32,
                 videos_per_prompt: int = 2, num_reference: int = 128, sample_seed: int = 0,
                 save_videos: int = 4, trace_videos: int = 8, sample_batch: int = 64,
                 resources: dict[str, float] | None = None):
        check_row_sizes(world, num_videos=num_videos, videos_per_prompt=videos_per_prompt,
                        num_reference=num_reference, save_videos=save_videos, trace_videos=trace_videos)
        self.world, self.method, self.videos_per_prompt = world, method, videos_per_prompt
        self.schedule = method.schedule(schedule)  # the method's step list, reading, shift and FFE mode apply
        self.num_videos, self.num_reference, self.sample_seed = num_videos, num_reference, sample_seed
        self.save_videos, self.trace_videos = save_videos, trace_videos
        self.sample_batch = checked_batch(sample_batch)
        self.resources = dict(resources or {})

    def run(self, ctx: RunContext) -> dict[str, Any]:
        prompts = take_prompts(self.world.prompts("eval"), self.num_videos, self.videos_per_prompt)
        # before distilling: an evaluator that cannot run (VBench's environment, weights) fails now
        stream = EvalStream(ctx, self.world, prompts, seed=self.noise_seed(ctx), batch_size=self.sample_batch,
                            save_videos=self.save_videos, num_reference=self.num_reference)
        generator, source = self._distilled(ctx)

        def sample(batch_prompts: list[str], batch: VideoBatch) -> tuple[torch.Tensor, int]:
            noise = batch.noise(self.noise_seed(ctx))
            out = self.method.sample(self.world, generator, batch_prompts, self.schedule, noise)
            return out.videos, out.nfe

        row = RowSampler(sample, self.method.display_name, self.schedule.label)
        stream.sample(row)
        # display_name: the dmd row (ASD at alpha 0) is "dmd" in result.json and sidecars, not "asd"
        info = {"schedule": self.schedule.label, "method": self.method.display_name, "generator": source}
        if not is_rank_zero():  # this rank's videos are collected; rank 0 scores them all
            return info
        nfe, latency = stream.measure(row)
        if self.trace_videos > 0:
            self._save_trace(ctx, generator, prompts[: self.trace_videos])
        return {**stream.scores(), "nfe": nfe, "latency_s": latency, **info}

    def _distilled(self, ctx: RunContext) -> tuple[torch.nn.Module, str]:
        """The trained generator and where it came from: built once per (world, method, seed) as a stage
        shared by every schedule; a method that does not train (the causal-init row) needs no stage.

        The teacher and the causal init are loaded only when the stage is built (at Wan scale, a 14B
        teacher on every rank); a generator trained in this process is sampled as it is, not read back."""
        from harness.training.context import TrainContext

        if not self.method.trains:
            init = self.world.causal_init(ctx)
            return self.method.distill(self.world, init, init, None).eval(), self.method.name
        config = {"world": component_config(ctx.config, "world"), "method": component_config(ctx.config, "method"),
                  "seed": ctx.seed}
        trained: list[torch.nn.Module] = []

        def build(folder: Path) -> None:  # on every rank under torchrun; rank 0 alone writes
            if is_rank_zero():  # the step the trainer resumes from: the newest checkpoint that loads
                resume_step = CheckpointStore(folder / "checkpoints").newest_valid_step()
                truncate_jsonl_after(folder / TRAINING_LOG, resume_step or 0)

            def log(metrics, step):
                append_line(folder / TRAINING_LOG, _json_row(step, metrics))
                ctx.log(metrics, step)

            teacher, init = self.world.teacher(ctx), self.world.causal_init(ctx)
            train = TrainContext(workdir=folder, seed=ctx.seed, log=log, device=self.world.device,
                                 progress=lambda **kw: ctx.progress(**{"stage": f"distill {self.method.display_name}", **kw}),
                                 evaluate=FixedSetScores(self.world, self.method, ctx, self.sample_batch))
            model = self.method.distill(self.world, teacher, init, train)
            if is_rank_zero():
                save_weights(model, folder / GENERATOR_FILE)
            if not is_distributed():  # under torchrun a rank may hold a shard only: read the saved file
                trained.append(model)

        artifact = ctx.stage(f"distill-{self.method.name}", config, every_rank(build), version=STAGE_VERSION)
        if trained:
            generator = trained[0]
        else:
            generator = self.world.make_backbone()
            load_weights(generator, artifact.path / GENERATOR_FILE)
        if is_rank_zero():
            _keep_training_log(artifact.path / TRAINING_LOG, ctx.run_dir.path / RUN_TRAINING_LOG)
        return generator.eval(), f"{artifact.name}/{artifact.path.name}"

    def _save_trace(self, ctx: RunContext, generator, prompts: list[str]) -> None:
        """The x̂0 trace of the first evaluation videos (their very noise), ``sample_batch`` at a time."""
        from harness.evaluation.cosine import X0Trace, cosine_similarity_matrices

        ctx.progress(stage="x0 trace")
        parts = []
        with torch.no_grad():
            for batch in plan_batches(len(prompts), self.sample_batch):
                noise = batch.noise(self.noise_seed(ctx))
                out = self.method.sample(self.world, generator, batch.prompts(prompts), self.schedule, noise,
                                         trace=True)
                parts.append(out.trace)
        trace = X0Trace.concat(parts)
        trace.meta.update(prompts=list(prompts), seed=self.noise_seed(ctx), noise="per video")
        cosine_similarity_matrices(trace).save(ctx.samples_dir, stem="x0_cosine")


def _keep_training_log(source: Path, target: Path) -> None:
    """The distillation's log in the run folder too: reports draw learning curves from run folders alone,
    also for runs that reused a cached generator (their own metrics.jsonl is empty)."""
    if source.is_file():
        atomic_write_bytes(target, source.read_bytes(), durable=False)


def _json_row(step: int, metrics) -> str:
    return json.dumps({"step": step, **{k: float(v) for k, v in metrics.items()}})
