"""The toy world: the smallest complete ``World``, and the reference example for world authors.

Everything a world provides is here in a few lines each: prompts, a prompt encoder, "real" videos, a
backbone, a teacher and a causal init, decoding to frames and an evaluator. Nothing is trained: the
teacher and the causal init are seeded random networks, so a method runs its losses, rollouts, logging
and checkpoints against it in milliseconds. The test suite distils on it; ``docs/extending.md`` walks
through it. Copy this package to start a new world.

    from harness.worlds.toy import ToyWorld
    world = ToyWorld(frames=4)   # 4 frames of 3×16×16 in chunks of 2
"""

from harness.worlds.toy.evaluator import MeanBrightness
from harness.worlds.toy.world import PROMPTS, ToyWorld, randomise_backbone

__all__ = ["PROMPTS", "MeanBrightness", "ToyWorld", "randomise_backbone"]
