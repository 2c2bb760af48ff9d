"""Distillation methods behind one distill/sample interface, one file each.

A study names a method the one way the harness knows, by its class path and constructor arguments:
``{class_path: methods.asd.ASD, init_args: {alpha: 20, inference: ffe}}`` (ASD trained as usual and
sampled with First-Frame Enhancement whenever a bare step count is asked for). Adding a method is one
file here plus a study (docs/extending.md).
"""
