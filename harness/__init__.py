"""A harness for few-step causal video distillation (DMD, Self Forcing, ASD, FFE)."""

__version__ = "0.1.0"
