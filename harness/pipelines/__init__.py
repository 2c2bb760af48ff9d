"""Pipelines: what one run of a study computes, from a world, a method and a schedule to scores."""

from .distill import DistillAndEvaluate

__all__ = ["DistillAndEvaluate"]
