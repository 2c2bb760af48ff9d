"""What every training loop shares: the EMA of the weights and the one-model fit loop.

The teacher, the diffusion-forcing model and the causal init train one model with :func:`fit`; the
distillation methods' two-player trainer (``methods/trainer.py``: a generator and an optional critic)
uses the same :class:`EMA`.
"""
