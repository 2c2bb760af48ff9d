"""The one training loop (:class:`~harness.training.trainer.Trainer`) and what it is made of.

A recipe hands the loop a generator, an optional critic and one step of each: the distillation methods
train a generator against a critic, with checkpoints, resume, DDP/FSDP and the evaluation hook
(:mod:`harness.training.evaluation`); the world's own models (the sprites teacher, diffusion forcing, the
causal init) train one model on a loss of their own through :func:`harness.training.fit.fit`, the same
loop without a critic or checkpoints. One EMA (:mod:`harness.training.ema`) serves both.
"""
