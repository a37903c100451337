"""Evaluate a checkpoint on held-out clips: PSNR, SSIM and Flow-MSE, against "repeat the first frame".

Protocol (the paper's, on raw frames rather than lossy mp4s, ARCHITECTURE.md quirk 7): for each
held-out clip, its first T frames are the ground truth; the motion vector is the flow encoder's
encoding of that clip's real flows, normalized with the statistics stored at training time
(`FlowEncoder.encode`); the generator gets frame 0 and that vector. Metrics are averaged over frames
1..T-1 of each clip (frame 0 is the given input: the baseline would score infinite PSNR on it), then
over clips. The baseline "repeat the first frame" is scored on the same clips, and so is the
generator with a seeded random N(0, I) vector (what `dtvnet demo` uses when no motion is given).

- PSNR: 10 log10(1 / MSE) on RGB in [0, 1], per frame, capped at 100 dB (identical frames).
- SSIM: Wang et al. 2004, 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 1,
  averaged over the window positions that fit inside the frame and over the three channels.
- Flow-MSE: mean over pixels and both components of (flow(generated) - flow(real))^2, with both
  flows estimated by the same estimator (DIS by default) at the model's resolution, in pixels.

Motion transfer (`--transfer`): the same image driven by motion vectors encoded from other clips
should move like those clips. For every image and every reference clip, the mean flow of the
generated video is compared with the reference clip's mean real flow (cosine), and for each image the
angle between the motions produced by its two most different references is reported.

Usage:
    python -m training.evaluate CHECKPOINT_OR_RUN --data DATA [--split sky_test] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from runtime.fsutil import atomic_file, ensure_writable_dir
from runtime.imaging import to_uint8_frames
from training import checkpoint as ckpt_io
from training.data.clips import find_clips
from training.data.windows import frames_to_tensor, window_arrays
from training.flow.cache import FlowCache
from training.flow.estimator import FlowEstimator, get_estimator
from training.model import FlowEncoder, Generator

log = logging.getLogger(__name__)

PSNR_CAP_DB = 100.0
SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW = 0.01, 0.03, 1.5, 11


# ---------------------------------------------------------------------------------------------
# Metrics on single frames / flow fields (numpy, checked against hand-computed values in tests)
# ---------------------------------------------------------------------------------------------


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of two images with values in [0, 1], capped at PSNR_CAP_DB."""
    mse = float(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2))
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else 10.0 * math.log10(1.0 / mse)


def ssim(pred: np.ndarray, target: np.ndarray, dtype: type = np.float64) -> float:
    """SSIM of two H x W x C (or H x W) images with values in [0, 1]; see the module docstring.
    dtype: the arithmetic's (float32 for many large frames, as `benchmarks.hd` scores them)."""
    x, y = np.asarray(pred, dtype), np.asarray(target, dtype)
    c1, c2 = SSIM_K1**2, SSIM_K2**2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    pad = SSIM_WINDOW // 2
    return float(s[pad:-pad, pad:-pad].mean())


def flow_mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared difference of two flow fields (any shape, e.g. [2, H, W]), in pixels^2."""
    return float(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2))


def clip_scores(
    video: np.ndarray, real: np.ndarray, real_flows: np.ndarray, estimator: FlowEstimator
) -> dict[str, float]:
    """Frames 1..T-1 of one clip: video and real uint8 [T, S, S, 3]; real_flows [2, T, S, S]."""
    fake_flows = estimator(video)
    v, r = video.astype(np.float64) / 255, real.astype(np.float64) / 255
    frames = range(1, len(video))
    return {
        "psnr": float(np.mean([psnr(v[t], r[t]) for t in frames])),
        "ssim": float(np.mean([ssim(v[t], r[t]) for t in frames])),
        "flow_mse": float(np.mean([flow_mse(fake_flows[:, t], real_flows[:, t]) for t in frames])),
    }


# ---------------------------------------------------------------------------------------------
# Evaluation of a checkpoint
# ---------------------------------------------------------------------------------------------


@dataclass
class EvalReport:
    checkpoint: str
    step: int
    data: str
    split: str
    clips: int
    frames: int
    image_size: int
    flow: str
    rows: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> mean
    transfer: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [
            f"Held-out clips: {self.clips} from `{self.split}` of `{self.data}`, {self.frames} frames at "
            f"{self.image_size}x{self.image_size}, metrics over frames 1..{self.frames - 1} on raw frames; "
            f"Flow-MSE with `{self.flow}` flows. Checkpoint `{self.checkpoint}` (step {self.step}).",
            "",
            "| method | PSNR (dB) ↑ | SSIM ↑ | Flow-MSE (px²) ↓ |",
            "| --- | --- | --- | --- |",
        ]
        for name, row in self.rows.items():
            lines.append(f"| {name} | {row['psnr']:.3f} | {row['ssim']:.4f} | {row['flow_mse']:.4f} |")
        if self.transfer:
            t = self.transfer
            lines += [
                "",
                f"Motion transfer: {t['images']} images x {t['references']} reference clips. Mean cosine "
                f"between the generated video's mean flow and the reference clip's mean flow: "
                f"{t['mean_cosine']:.3f} ({t['agreeing_share']:.0%} of pairs point the same way). Angle "
                f"between the motions one image gets from its two most different references: mean "
                f"{t['mean_angle_deg']:.1f} deg "
                f"(reference clips themselves: {t['mean_reference_angle_deg']:.1f} deg).",
                "",
                "| image | reference clips | their mean flows (u, v) px/frame | generated mean flows (u, v) "
                "| angle between the generated |",
                "| --- | --- | --- | --- | --- |",
            ]
            for p in t["per_image"]:
                ref = " / ".join(f"({u:+.3f}, {v:+.3f})" for u, v in p["reference_mean_flow"])
                gen = " / ".join(f"({u:+.3f}, {v:+.3f})" for u, v in p["generated_mean_flow"])
                pair = " & ".join(str(k) for k in p["references"])
                lines.append(
                    f"| {p['image']} | {pair} | {ref} | {gen} | {p['generated_angle_deg']:.1f} deg |"
                )
        if self.transfer.get("random_mean_pairwise_angle_deg") is not None:
            t = self.transfer
            lines += [
                "",
                f"Random motion: {t['random_vectors']} seeded N(0, I) vectors per image give mean flows "
                f"{t['random_mean_pairwise_angle_deg']:.1f} deg apart on average (pairs of vectors), at a "
                f"mean speed of {t['random_mean_speed']:.3f} px/frame.",
            ]
        return "\n".join(lines)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the `latest` checkpoint of a run folder."""
    from training.train import latest_checkpoint  # lazy: train imports the data stack

    latest = latest_checkpoint(path)
    return latest if latest is not None else ckpt_io.checkpoint_dir(path)


def load_models(checkpoint: Path, device: torch.device) -> tuple[ckpt_io.Checkpoint, Generator, FlowEncoder]:
    loaded = ckpt_io.load(checkpoint, components=["generator", "flow_encoder"])
    return loaded, loaded.generator(device), loaded.flow_encoder(device)


def mean_flow(flows: np.ndarray) -> np.ndarray:
    """(u, v) averaged over frames 1..T-1 and all pixels of [2, T, H, W] flows."""
    return flows[:, 1:].reshape(2, -1).mean(axis=1)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, _cosine(a, b)))))


@torch.no_grad()
def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    *,
    split: str = "sky_test",
    max_clips: int | None = None,
    flow: str | None = None,
    flow_cache: str | Path | None = None,
    batch: int = 8,
    seed: int = 0,
    transfer: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> EvalReport:
    """Score the checkpoint, the repeat-first-frame baseline and random motion on held-out clips."""
    path = resolve_checkpoint(checkpoint)
    dev = torch.device(device)
    loaded, generator, flow_encoder = load_models(path, dev)
    cfg = loaded.config
    flow = flow or loaded.metadata.get("train_config", {}).get("flow", "dis")
    estimator = get_estimator(flow)
    clips = find_clips(data, split, min_frames=cfg.frames)[:max_clips]
    cache = FlowCache(data, cfg.image_size, estimator, flow_cache)
    cache.build(clips, progress=progress)
    report = EvalReport(
        str(path), loaded.step, str(data), split, len(clips), cfg.frames, cfg.image_size, estimator.name
    )
    methods = (
        "DTVNet (motion from the clip's flows)",
        "DTVNet (motion ~ N(0, I), seeded)",
        "repeat the first frame",
    )
    scores: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    windows = [window_arrays(cache.load(c), 0, cfg.frames) for c in clips]
    rng = torch.Generator().manual_seed(seed)
    bar = tqdm(total=len(clips), desc="evaluate", unit="clip", disable=not progress)
    for first in range(0, len(windows), batch):
        chunk = windows[first : first + batch]
        real = torch.stack([frames_to_tensor(w[0]) for w in chunk]).to(dev)
        flows = torch.stack([torch.from_numpy(w[1]) for w in chunk]).to(dev)
        motion = flow_encoder.encode(flows)
        random_motion = torch.randn(len(chunk), cfg.motion_dim, generator=rng).to(dev)
        videos = {
            methods[0]: to_uint8_frames(generator(real[:, :, 0], motion).video.cpu().numpy()),
            methods[1]: to_uint8_frames(generator(real[:, :, 0], random_motion).video.cpu().numpy()),
        }
        for i, (frames, real_flows, _) in enumerate(chunk):
            videos_i = {m: v[i] for m, v in videos.items()}
            videos_i[methods[2]] = np.repeat(frames[:1], cfg.frames, axis=0)
            for method, video in videos_i.items():
                scores[method].append(clip_scores(video, frames, real_flows, estimator))
            bar.update(1)
    bar.close()
    report.rows = {
        m: {k: float(np.mean([s[k] for s in rows])) for k in ("psnr", "ssim", "flow_mse")}
        for m, rows in scores.items()
    }
    if transfer:
        report.transfer = motion_transfer(
            generator, flow_encoder, windows[:transfer], estimator, dev, seed=seed
        )
    return report


@torch.no_grad()
def motion_transfer(
    generator: Generator,
    flow_encoder: FlowEncoder,
    windows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    estimator: FlowEstimator,
    device: torch.device,
    random_vectors: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Drive every clip's first frame with every clip's encoded motion; compare mean flow directions.

    Also drives each image with `random_vectors` seeded N(0, I) vectors (what `dtvnet demo` does by
    default) and reports the mean angle between the directions they produce and their mean speed.
    """
    flows = torch.stack([torch.from_numpy(w[1]) for w in windows]).to(device)
    motions = flow_encoder.encode(flows)
    randoms = torch.randn(random_vectors, motions.shape[1], generator=torch.Generator().manual_seed(seed))
    reference = np.stack([mean_flow(w[1]) for w in windows])  # [R, 2]
    pairs: list[float] = []
    per_image = []
    random_angles: list[float] = []
    random_speeds: list[float] = []

    def mean_flows(image: torch.Tensor, vectors: torch.Tensor) -> np.ndarray:
        batch = image.unsqueeze(0).to(device).expand(len(vectors), -1, -1, -1)
        videos = to_uint8_frames(generator(batch, vectors.to(device)).video.cpu().numpy())
        return np.stack([mean_flow(estimator(v)) for v in videos])

    for i, (frames, _, _) in enumerate(windows):
        image = frames_to_tensor(frames)[:, 0]
        generated = mean_flows(image, motions)  # [R, 2]
        pairs += [_cosine(generated[j], reference[j]) for j in range(len(windows))]
        if random_vectors > 1:
            drawn = mean_flows(image, randoms)
            random_angles += [
                _angle_deg(drawn[j], drawn[k]) for j in range(len(drawn)) for k in range(j + 1, len(drawn))
            ]
            random_speeds += np.linalg.norm(drawn, axis=1).tolist()
        # The two references with the most different real motion, and what they do to this image.
        a, b = max(
            ((j, k) for j in range(len(windows)) for k in range(j + 1, len(windows))),
            key=lambda jk: _angle_deg(reference[jk[0]], reference[jk[1]]),
        )
        per_image.append(
            {
                "image": i,
                "references": [a, b],
                "reference_mean_flow": [reference[a].tolist(), reference[b].tolist()],
                "generated_mean_flow": [generated[a].tolist(), generated[b].tolist()],
                "reference_angle_deg": _angle_deg(reference[a], reference[b]),
                "generated_angle_deg": _angle_deg(generated[a], generated[b]),
            }
        )
    return {
        "images": len(windows),
        "references": len(windows),
        "mean_cosine": float(np.mean(pairs)),
        "agreeing_share": float(np.mean([c > 0 for c in pairs])),
        "mean_angle_deg": float(np.mean([p["generated_angle_deg"] for p in per_image])),
        "mean_reference_angle_deg": float(np.mean([p["reference_angle_deg"] for p in per_image])),
        "random_vectors": random_vectors,
        "random_mean_pairwise_angle_deg": float(np.mean(random_angles)) if random_angles else None,
        "random_mean_speed": float(np.mean(random_speeds)) if random_speeds else None,
        "per_image": per_image,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtvnet evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkpoint", type=Path, help="checkpoint folder, or a run folder (its latest checkpoint)"
    )
    parser.add_argument("--data", type=Path, required=True, help="data root holding the held-out split")
    parser.add_argument("--split", default="sky_test", help="held-out split folder (default sky_test)")
    parser.add_argument("--clips", type=int, default=None, help="evaluate only the first N clips")
    parser.add_argument(
        "--flow", default=None, help="flow estimator (default: the one the model was trained with)"
    )
    parser.add_argument(
        "--flow-cache", type=Path, default=None, help="flow cache folder (default <data>/.flowcache)"
    )
    parser.add_argument(
        "--transfer", type=int, default=0, help="motion transfer among the first N clips (0: off)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random motion vectors")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="folder for eval.md and eval.json")
    args = parser.parse_args(argv)
    if args.transfer == 1:
        parser.error("--transfer needs at least 2 clips")
    report = evaluate(
        args.checkpoint,
        args.data,
        split=args.split,
        max_clips=args.clips,
        flow=args.flow,
        flow_cache=args.flow_cache,
        seed=args.seed,
        transfer=args.transfer,
        device=args.device,
    )
    text = report.markdown()
    print(text)
    if args.out is not None:
        ensure_writable_dir(args.out)
        with atomic_file(args.out / "eval.md") as tmp:
            tmp.write_text(text + "\n")
        with atomic_file(args.out / "eval.json") as tmp:
            tmp.write_text(json.dumps(asdict(report), indent=2) + "\n")
        print(f"wrote {args.out / 'eval.md'} and {args.out / 'eval.json'}")
    return 0


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
