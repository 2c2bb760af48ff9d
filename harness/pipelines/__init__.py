"""Pipelines: what one run of a study computes, from a world, a method and a schedule to scores."""

from harness.pipelines.distill import DistillAndEvaluate
from harness.pipelines.references import DiffusionForcingReference, RealDataReference, TeacherReference

__all__ = ["DiffusionForcingReference", "DistillAndEvaluate", "RealDataReference", "TeacherReference"]
