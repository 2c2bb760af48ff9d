"""Pipelines: what one run of a study computes, from a world, a method and a schedule to scores."""

from .distill import DistillAndEvaluate
from .references import DiffusionForcingReference, RealDataReference, TeacherReference

__all__ = ["DiffusionForcingReference", "DistillAndEvaluate", "RealDataReference", "TeacherReference"]
