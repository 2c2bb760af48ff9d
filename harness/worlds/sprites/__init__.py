"""The embedded CPU-sized world: coloured shapes moving and bouncing."""
