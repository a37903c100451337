"""Realistic random checkpoints for tests: see training/realistic.py (the benchmarks use them too)."""

from training.realistic import calibrate, realistic_checkpoint

__all__ = ["calibrate", "realistic_checkpoint"]
