"""benchmarks.hd: the scores mean what they say, and `--quick` writes its Markdown and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.hd import TABLE_FRAMES, Clip, render_oracle, render_repeat, score, summarize

S, H, T = 16, 64, 8


def moving_clip(speed: float = 2.0) -> Clip:
    """Detail drifting right by `speed` HD pixels a frame over the left half; the right half still."""
    rng = np.random.default_rng(0)
    texture = rng.integers(40, 216, (H, 2 * H, 3)).astype(np.uint8)
    truth = np.stack([texture[:, :H] for _ in range(T)])
    for t in range(T):
        shift = round(speed * t)
        truth[t, :, : H // 2] = texture[:, H - shift : H - shift + H // 2]
    flow = np.zeros((2, H, H), np.float32)
    flow[0, :, : H // 2] = speed
    small = truth[:, ::4, ::4]  # the model's frames: any S x S view will do for these checks
    return Clip(
        [0, 1, 0], truth, flow, np.ascontiguousarray(small), np.zeros((T, 2, S // 2, S // 2), np.float32)
    )


def test_the_truth_scores_perfectly_and_repeat_loses_on_motion() -> None:
    clip = moving_clip()
    perfect = score(clip.truth, clip, with_ssim=True)
    assert perfect["psnr"] == 100.0 and perfect["frame0_psnr"] == 100.0
    assert perfect["ssim"] == pytest.approx(1.0)
    assert perfect["sharpness"] == pytest.approx(1.0) and perfect["sharpness_still"] == pytest.approx(1.0)
    repeat = score(render_repeat(clip), clip)
    assert repeat["psnr"] < 40 and repeat["frame0_psnr"] == 100.0
    assert len(repeat["psnr_by_frame"]) == T - 1


def test_oracle_moves_the_detail_with_the_true_motion() -> None:
    """Upsampled model frames that are the truth's own blur plus the photo's detail moved by the true
    flow: better than repeating frame 0 where things move."""
    clip = moving_clip()
    oracle, repeat = score(render_oracle(clip), clip), score(render_repeat(clip), clip)
    assert oracle["psnr"] > repeat["psnr"]


def test_summary_counts_wins_and_tabulates_frames() -> None:
    def row(psnr: float) -> dict[str, object]:
        by_frame = [psnr] * 31
        return {"psnr": psnr, "ssim": 0.5, "sharpness": 0.5, "sharpness_still": 0.5, "frame0_psnr": 50.0,
                "psnr_by_frame": by_frame}  # fmt: skip

    scores = [
        {"guided": row(23.0), "resize": row(22.0), "repeat": row(19.0), "oracle": row(24.0)},
        {"guided": row(21.0), "resize": row(21.5), "repeat": row(19.0), "oracle": row(24.0)},
    ]
    summary = summarize(scores)
    assert summary["guided_wins"] == 1 and summary["clips"] == 2
    assert summary["guided"]["psnr"] == pytest.approx(22.0)
    assert list(summary["guided"]["psnr_at"]) == [str(t) for t in TABLE_FRAMES]


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path: Path) -> None:
    """`python -m benchmarks.hd --quick` (2 clips, 512 px) writes Markdown and JSON named for the machine."""
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.hd", "--quick", "--runs", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (json_path,) = tmp_path.glob("hd-*-quick.json")
    (md_path,) = tmp_path.glob("hd-*-quick.md")
    results = json.loads(json_path.read_text())
    assert list(results["sizes"]) == ["512"] and results["clips"] == 2
    block = results["sizes"]["512"]
    assert set(block["summary"]) >= {"guided", "resize", "repeat", "oracle", "guided_wins"}
    assert block["summary"]["guided"]["frame0_psnr"] >= 45
    assert block["cost"]["ms_per_frame"] > 0
    assert len(block["per_clip"]) == 2
    assert {g["goal"] for g in results["goals"]} >= {"PSNR >= resize + 0.4 dB", "frame 0 >= 45 dB"}
    text = md_path.read_text()
    assert "| guided |" in text and "t=31" in text and results["machine"]["name"] in text
    # --cost-only times the renderer again into the same files and keeps the scores
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.hd",
            "--quick",
            "--cost-only",
            "--runs",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    retimed = json.loads(json_path.read_text())
    assert retimed["sizes"]["512"]["summary"] == block["summary"]
    assert retimed["machine"] == results["machine"] and "cost_machine" in retimed
    assert "re-timed" in md_path.read_text()


def test_cost_only_needs_results(tmp_path: Path) -> None:
    from benchmarks.hd import main

    assert main(["--quick", "--cost-only", "--out", str(tmp_path)]) == 2
