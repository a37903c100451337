"""Evaluation metrics against hand-computed values, and the evaluation command on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.evaluate import PSNR_CAP_DB, SSIM_K1, clip_scores, evaluate, flow_mse, psnr, ssim


def test_psnr_hand_computed():
    target = np.full((8, 8, 3), 0.1)
    assert psnr(np.zeros((8, 8, 3)), target) == pytest.approx(20.0)  # mse 0.01 -> 10 log10(100)
    pred = target.copy()
    pred[0, 0, 0] += 0.5  # mse = 0.25 / 192
    assert psnr(pred, target) == pytest.approx(10 * np.log10(192 / 0.25))


def test_psnr_of_identical_frames_is_capped():
    frame = np.random.default_rng(0).random((8, 8, 3))
    assert psnr(frame, frame) == PSNR_CAP_DB


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = 0.2, 0.6
    c1 = SSIM_K1**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # no variance: contrast/structure term is C2 / C2
    assert ssim(np.full((32, 32, 3), a), np.full((32, 32, 3), b)) == pytest.approx(expected, rel=1e-9)


def test_ssim_of_identical_and_of_offset_images():
    x = np.random.default_rng(1).random((32, 32, 3)) * 0.5
    assert ssim(x, x) == pytest.approx(1.0)
    # y = x + d: same local variance, covariance = variance, so only the luminance term is below 1.
    d = 0.25
    lower = ssim(x, x + d)
    assert 0 < lower < 1
    mean = 0.25  # local means of x are close to 0.25: the luminance term there
    c1 = SSIM_K1**2
    assert lower == pytest.approx((2 * mean * (mean + d) + c1) / (mean**2 + (mean + d) ** 2 + c1), abs=0.02)


def test_flow_mse_hand_computed():
    zero = np.zeros((2, 4, 4))
    assert flow_mse(np.ones((2, 4, 4)), zero) == 1.0
    uv = np.stack([np.full((4, 4), 3.0), np.full((4, 4), 4.0)])
    assert flow_mse(uv, zero) == pytest.approx((9 + 16) / 2)


def test_clip_scores_skip_frame_zero_and_use_the_estimator():
    rng = np.random.default_rng(2)
    real = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    video = real.copy()
    video[0] = 255 - real[0]  # frame 0 is the given input: not scored
    real_flows = np.zeros((2, 4, 16, 16), np.float32)
    real_flows[0] = 2.0

    class ConstantFlow:
        name = "constant"

        def __call__(self, frames: np.ndarray) -> np.ndarray:
            return np.ones((2, len(frames), *frames.shape[1:3]), np.float32)

    scores = clip_scores(video, real, real_flows, ConstantFlow())
    assert scores["psnr"] == PSNR_CAP_DB
    assert scores["ssim"] == pytest.approx(1.0)
    assert scores["flow_mse"] == pytest.approx((1.0 + 1.0) / 2)  # u: (1-2)^2, v: (1-0)^2


def test_evaluate_a_tiny_checkpoint(tmp_path: Path, tiny_data: Path, tiny_checkpoint: Path, capsys):
    from training.evaluate import main

    assert (
        main(
            [str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(tmp_path / "ev"), "--transfer", "2"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| repeat the first frame |" in printed
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["clips"] == 3 and len(report["rows"]) == 3
    assert (tmp_path / "ev" / "eval.md").read_text().startswith("Held-out clips: 3")
    assert report["transfer"]["images"] == 2 and len(report["transfer"]["per_image"]) == 2
    assert report["transfer"]["random_mean_pairwise_angle_deg"] is not None


def test_baseline_flow_mse_is_the_real_flow_energy(tiny_data: Path, tiny_checkpoint: Path):
    """Repeating frame 0 has zero flow, so its Flow-MSE is the mean square of the real flows."""
    from training.data.clips import find_clips
    from training.data.windows import window_arrays
    from training.flow.cache import FlowCache
    from training.model import preset

    report = evaluate(tiny_checkpoint, tiny_data, progress=False)
    cfg = preset("tiny")
    cache = FlowCache(tiny_data, cfg.image_size)
    energies = []
    for clip in find_clips(tiny_data, "sky_test", cfg.frames):
        flows = window_arrays(cache.load(clip), 0, cfg.frames)[1]
        energies.append(np.mean(flows[:, 1:].astype(np.float64) ** 2))
    assert report.rows["repeat the first frame"]["flow_mse"] == pytest.approx(np.mean(energies), rel=1e-6)
