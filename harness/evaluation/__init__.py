"""Turning samples into scores: official VBench scoring, weight-free dimensions, x̂0 analysis."""
