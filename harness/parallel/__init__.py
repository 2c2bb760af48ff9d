"""Parallelism: rank helpers, DDP for the methods' trainer, FSDP2 for large backbones."""
