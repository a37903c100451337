"""The benchmark's stand-in models: random weights make noise, a fitted generator makes smooth clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from runtime.imaging import to_uint8_frames
from training import checkpoint as ckpt_io
from training.data.synth import render_clip
from training.realistic import fitted_checkpoint, realistic_checkpoint


def _photo(size: int) -> np.ndarray:
    return render_clip(99, 1, size).frames[0]  # a scene the fitting never saw


def _frames(path: Path) -> np.ndarray:
    loaded = ckpt_io.load(path, components=["generator"])
    cfg = loaded.config
    image = _photo(cfg.image_size)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    with torch.no_grad():
        video = loaded.generator()(
            x, torch.randn(1, cfg.motion_dim, generator=torch.Generator().manual_seed(0))
        )
    return to_uint8_frames(video.video[0].numpy()).astype(np.int16)


def test_a_fitted_generator_makes_smooth_frames_of_the_photo(tmp_path: Path):
    fitted = _frames(fitted_checkpoint(tmp_path / "fitted", "tiny", seed=0, steps=60))
    unfitted = _frames(fitted_checkpoint(tmp_path / "unfitted", "tiny", seed=0, steps=0))
    noise = _frames(realistic_checkpoint(tmp_path / "random", "tiny", seed=0))
    change = {name: np.abs(np.diff(f, axis=0)).mean() for name, f in (("fitted", fitted), ("noise", noise))}
    assert change["fitted"] < 0.25 * change["noise"], change  # random weights: new noise every frame
    photo = _photo(fitted.shape[1]).astype(np.int16)
    error = {name: np.abs(f - photo).mean() for name, f in (("fitted", fitted), ("unfitted", unfitted))}
    assert error["fitted"] < 0.85 * error["unfitted"], error  # it learnt to show the photo
    info = ckpt_io.read_info(tmp_path / "fitted")
    assert "fitted to procedural time-lapses for 60 steps" in info["metadata"]["source"]
