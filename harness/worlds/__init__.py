"""Worlds: prompts, data, backbone, teacher recipe and evaluator for one domain."""
