"""Shared fixtures of the training tests: a tiny procedural data set and a tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.model import preset

TINY_FRAMES = preset("tiny").frames


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 training and 3 held-out procedural clips of 12 frames at 32 x 32 (the tiny preset's size)."""
    from training.data.synth import write_dataset

    return write_dataset(
        tmp_path_factory.mktemp("data") / "synth", 6, test_clips=3, seed=5, frames=12, size=32, progress=False
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.checkpoint import init_checkpoint

    return init_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", preset("tiny"), seed=0)
