"""Distillation methods behind one distill/sample interface."""
