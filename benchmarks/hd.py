"""`python -m benchmarks.hd`: how good and how costly HD rendering is (`runtime.hd`), on procedural clips
with exactly known truth.

Each clip is a held-out scene of `training.data.synth` (seed namespace 1: never trained on), rendered
at the output size. The bundled demo model sees what a user's photo would give it: the INTER_AREA
downsample of frame 0 and the clip's own motion (its frames' optical flow at the model's size, through
the flow encoder, as `dtvnet demo` does). Its 32 frames and flows are rendered to HD four ways:

- guided: `runtime.hd.GuidedRenderer` (the photo's detail along the model's flows, faded);
- resize: the model's frames interpolated (bicubic), what `upscale` gives;
- repeat: the photo itself for every frame (no motion at all);
- oracle: the photo's detail moved by the TRUE motion (the scene's known wind) on the upsampled model
  frames: what a perfect flow would give this scheme.

Scored against the true HD frames 1..31: PSNR, SSIM, sharpness (mean Sobel gradient magnitude over the
truth's) on all pixels and on still ones (true motion < 0.5 px), and frame 0's PSNR; a per-frame PSNR
table; the renderer's ms per frame at 512 and 1024 px on one core (best of several runs: the machine is
shared). Markdown + JSON under benchmarks/results/hd-<machine>[-quick].{md,json}.

`--tune` searches the guided parameters on TRAINING scenes (seed namespace 0) and prints the best; the
defaults in `runtime.hd.GuidedParams` come from it. Never tune on the held-out clips scored here.

Usage:
    python -m benchmarks.hd [--quick] [--clips 16] [--sizes 512 1024] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.machine import describe_machine, load_average
from runtime.fsutil import atomic_file, ensure_writable_dir
from runtime.hd import GuidedParams, GuidedRenderer, upscale

METHODS = ("guided", "resize", "repeat", "oracle")
TABLE_FRAMES = (1, 4, 8, 16, 31)
STILL_PX = 0.5  # true motion under this many HD pixels per frame counts as still
HELD_OUT, TRAINING = 1, 0  # seed namespaces of training.data.synth.clip_seed
QUICK_CLIPS = 2
FULL_CLIPS = 16
TIMING_RUNS = 5
RESULTS = Path(__file__).parent / "results"


@dataclass
class Clip:
    """One scene at one HD size: the truth, and the model's view of it."""

    seed: list[int]
    truth: np.ndarray  # uint8 [T, H, H, 3]
    true_flow: np.ndarray  # float32 [2, H, H]: the scene's per-frame motion in HD pixels (constant in t)
    model_frames: np.ndarray  # uint8 [T, S, S, 3]
    model_flows: np.ndarray  # float32 [T, 2, S/2, S/2]


class DemoModel:
    """The bundled demo model's generator and flow encoder (torch: the benchmark is the top layer)."""

    def __init__(self) -> None:
        from training import checkpoint as ckpt_io
        from training.demo import demo_checkpoint

        loaded = ckpt_io.load(demo_checkpoint(), components=["generator", "flow_encoder"])
        self.generator, self.flow_encoder = loaded.generator("cpu"), loaded.flow_encoder("cpu")
        self.size, self.frames = loaded.config.image_size, loaded.config.frames

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True HD frames -> the model's frames [T, S, S, 3] uint8 and flows [T, 2, S/2, S/2]."""
        import torch

        from runtime.imaging import prepare_image, to_uint8_frames
        from runtime.motion import reference_flows

        image = torch.from_numpy(prepare_image(frames[0], self.size))[None]
        flows = torch.from_numpy(reference_flows(list(frames), self.size))
        with torch.no_grad():
            out = self.generator(image, self.flow_encoder.encode(flows))
        video = to_uint8_frames(out.video[0].numpy())
        return video, np.ascontiguousarray(out.flows[0].numpy().transpose(1, 0, 2, 3))


def make_clip(model: DemoModel, seed: list[int], size: int) -> Clip:
    from training.data.synth import render_clip

    synth = render_clip(seed, model.frames, size)
    frames, flows = model(synth.frames)
    return Clip(seed, synth.frames, synth.flows[:, 1], frames, flows)


# ------------------------------------------------------------------------------------------------
# The four renders
# ------------------------------------------------------------------------------------------------


def render_guided(clip: Clip, params: GuidedParams | None = None) -> np.ndarray:
    renderer = GuidedRenderer(clip.truth[0], clip.model_frames[0], params)
    return np.stack(
        [
            renderer.frame(t, f, flow)
            for t, (f, flow) in enumerate(zip(clip.model_frames, clip.model_flows, strict=True))
        ]
    )


def render_resize(clip: Clip) -> np.ndarray:
    size = clip.truth.shape[1]
    return np.stack([upscale(f, size, size) for f in clip.model_frames])


def render_repeat(clip: Clip) -> np.ndarray:
    return np.repeat(clip.truth[:1], len(clip.truth), axis=0)


def render_oracle(clip: Clip) -> np.ndarray:
    """The photo's detail (against the model's frame 0, as guided) moved by the true motion, unfaded."""
    size = clip.truth.shape[1]
    up = [
        cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        for f in clip.model_frames
    ]
    detail = clip.truth[0].astype(np.float32) - up[0]
    grid = np.dstack(np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32)))
    motion = clip.true_flow.transpose(1, 2, 0)
    out = [clip.truth[0]]
    for t in range(1, len(up)):
        moved = cv2.remap(detail, grid - t * motion, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out.append(np.clip(np.rint(up[t] + moved), 0, 255).astype(np.uint8))
    return np.stack(out)


# ------------------------------------------------------------------------------------------------
# Scores
# ------------------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 100.0 if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """`training.evaluate.ssim` (Gaussian 11 px window, sigma 1.5) of two uint8 frames, in float32."""
    from training.evaluate import ssim as evaluate_ssim

    scale = np.float32(1 / 255)
    return evaluate_ssim(a.astype(np.float32) * scale, b.astype(np.float32) * scale, np.float32)


def gradient(frame: np.ndarray) -> np.ndarray:
    grey = frame.astype(np.float32).mean(axis=2)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def score(video: np.ndarray, clip: Clip, with_ssim: bool = True) -> dict[str, Any]:
    """Frames 1..T-1 against the truth; sharpness sums gradients over frames before the ratio."""
    still = np.hypot(clip.true_flow[0], clip.true_flow[1]) < STILL_PX
    frames = range(1, len(video))
    per_frame = [psnr(video[t], clip.truth[t]) for t in frames]
    grad_sum = np.zeros(2)
    true_sum = np.zeros(2)
    for t in frames:
        g, g_true = gradient(video[t]), gradient(clip.truth[t])
        grad_sum += (g.mean(), g[still].mean() if still.any() else 0.0)
        true_sum += (g_true.mean(), g_true[still].mean() if still.any() else 0.0)
    return {
        "psnr": float(np.mean(per_frame)),
        "ssim": float(np.mean([ssim(video[t], clip.truth[t]) for t in frames])) if with_ssim else None,
        "sharpness": float(grad_sum[0] / true_sum[0]),
        "sharpness_still": float(grad_sum[1] / true_sum[1]) if true_sum[1] > 0 else None,
        "frame0_psnr": psnr(video[0], clip.truth[0]),
        "psnr_by_frame": per_frame,
    }


def render_all(clip: Clip) -> dict[str, np.ndarray]:
    return {
        "guided": render_guided(clip),
        "resize": render_resize(clip),
        "repeat": render_repeat(clip),
        "oracle": render_oracle(clip),
    }


def summarize(scores: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Means over clips per method, per-frame PSNR means, and the clips guided wins against resize."""
    out: dict[str, Any] = {}
    for method in METHODS:
        rows = [s[method] for s in scores]
        mean = {
            k: (float(np.mean([r[k] for r in rows])) if all(r[k] is not None for r in rows) else None)
            for k in ("psnr", "ssim", "sharpness", "sharpness_still", "frame0_psnr")
        }
        mean["frame0_psnr"] = float(min(r["frame0_psnr"] for r in rows))  # the worst clip's frame 0
        by_frame = np.mean([r["psnr_by_frame"] for r in rows], axis=0)
        mean["psnr_at"] = {str(t): float(by_frame[t - 1]) for t in TABLE_FRAMES if t - 1 < len(by_frame)}
        out[method] = mean
    out["guided_wins"] = int(sum(s["guided"]["psnr"] > s["resize"]["psnr"] for s in scores))
    out["clips"] = len(scores)
    return out


# ------------------------------------------------------------------------------------------------
# Cost
# ------------------------------------------------------------------------------------------------


def time_renderer(clip: Clip, runs: int) -> dict[str, float]:
    """The guided renderer's ms per frame on one core: each frame's best of `runs` (a shared machine's
    other work lands in some runs, rarely in all), averaged over frames 1..T-1; the per-clip setup apart,
    and both spread over the clip's frames."""
    cv2.setNumThreads(1)
    count = len(clip.model_frames)
    best = np.full(count, np.inf)
    medians: list[list[float]] = [[] for _ in range(count)]
    stage_best: list[dict[str, float]] = [{} for _ in range(count)]
    try:
        for _ in range(runs):
            start = time.perf_counter()
            renderer = GuidedRenderer(clip.truth[0], clip.model_frames[0])
            renderer.frame(0, clip.model_frames[0])
            for t in range(count):
                if t:
                    stages: dict[str, float] = {}
                    start = time.perf_counter()
                    renderer.frame(t, clip.model_frames[t], clip.model_flows[t], stages)
                    for name, seconds in stages.items():
                        stage_best[t][name] = min(stage_best[t].get(name, np.inf), seconds)
                elapsed = time.perf_counter() - start
                best[t] = min(best[t], elapsed)
                medians[t].append(elapsed)
    finally:
        cv2.setNumThreads(0)
    per_frame = float(best[1:].mean())
    stage_ms = {name: 1000 * float(np.mean([b[name] for b in stage_best[1:]])) for name in stage_best[1]}
    return {
        "stages_ms": stage_ms,  # each step's best of `runs`, per frame: what an idle core would take
        "stages_sum_ms": sum(stage_ms.values()),
        "ms_per_frame": 1000 * per_frame,
        "setup_ms": 1000 * float(best[0]),
        "ms_per_frame_with_setup": 1000 * float(best.sum()) / count,
        "median_ms_per_frame": 1000 * float(np.mean([np.median(m) for m in medians[1:]])),
        "runs": runs,
        "load": load_average(),
    }


# ------------------------------------------------------------------------------------------------
# Tuning on training scenes
# ------------------------------------------------------------------------------------------------


def tune(model: DemoModel, clips: int, size: int) -> GuidedParams:
    """Grid search of GuidedParams on training scenes, maximizing PSNR subject to the sharpness goals."""
    data = [make_clip(model, [0, TRAINING, i], size) for i in tqdm(range(clips), desc="training clips")]
    base = GuidedParams()
    grid = {
        "motion_scale": (1.0, 2.0, 4.0),
        "disagreement": (8.0, 16.0, 32.0),
        "still_flow": (0.05, 0.1, 0.2),
    }
    resize = [score(render_resize(c), c, with_ssim=False) for c in data]
    best: tuple[float, GuidedParams] | None = None
    for values in tqdm(list(itertools.product(*grid.values())), desc="tune"):
        params = replace(base, **dict(zip(grid, values, strict=True)))
        rows = [score(render_guided(c, params), c, with_ssim=False) for c in data]
        gain = float(np.mean([r["psnr"] - s["psnr"] for r, s in zip(rows, resize, strict=True)]))
        sharp = float(np.mean([r["sharpness"] for r in rows]))
        still = float(np.mean([r["sharpness_still"] for r in rows if r["sharpness_still"] is not None]))
        ok = sharp >= 0.55 and still >= 0.8
        print(f"{values}: +{gain:.2f} dB, sharpness {sharp:.2f}, still {still:.2f}{'' if ok else ' (short)'}")
        key = gain + (0 if ok else -100)
        if best is None or key > best[0]:
            best = (key, params)
    assert best is not None
    print(f"best: {best[1]}")
    return best[1]


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# HD rendering: {m['name']}",
        "",
        f"{m['cpu']}, load {m['load_before']} -> {m['load_after']}, {m['date']}. Demo model "
        f"({results['model_size']} px), {results['clips']} held-out procedural clips "
        f"(`training.data.synth`, seeds [0, 1, i]), frames 1..{results['frames'] - 1}. "
        f"Guided parameters: {results['params']}.",
        "",
    ]
    if "cost_machine" in results:
        c = results["cost_machine"]
        lines += [f"Renderer costs re-timed (`--cost-only`) on {c['date']}, load {c['load_before']}.", ""]
    for size, block in results["sizes"].items():
        s = block["summary"]
        lines += [
            f"## {size} px",
            "",
            "| method | PSNR dB | SSIM | sharpness | sharpness (still) | frame 0 dB (worst) |",
            "|---|---|---|---|---|---|",
        ]
        for method in METHODS:
            r = s[method]
            lines.append(
                f"| {method} | {_fmt(r['psnr'])} | {_fmt(r['ssim'], 3)} | {_fmt(r['sharpness'])} | "
                f"{_fmt(r['sharpness_still'])} | {_fmt(r['frame0_psnr'], 1)} |"
            )
        lines += [
            "",
            f"guided beats resize on {s['guided_wins']} of {s['clips']} clips "
            f"({s['guided']['psnr'] - s['resize']['psnr']:+.2f} dB on average).",
            "",
            "PSNR (dB) by frame:",
            "",
            "| method | " + " | ".join(f"t={t}" for t in TABLE_FRAMES) + " |",
            "|---|" + "---|" * len(TABLE_FRAMES),
        ]
        for method in METHODS:
            at = s[method]["psnr_at"]
            lines.append(f"| {method} | " + " | ".join(_fmt(at.get(str(t))) for t in TABLE_FRAMES) + " |")
        c = block.get("cost")
        if c:
            lines += [
                "",
                f"Guided renderer, one core (cv2.setNumThreads(1)), each frame's best of {c['runs']} runs: "
                f"{c['ms_per_frame']:.2f} ms per frame (median {c['median_ms_per_frame']:.2f}); setup "
                f"{c['setup_ms']:.1f} ms per clip ({c['ms_per_frame_with_setup']:.2f} ms per frame with it); "
                f"load {c['load']}. Each step's best, summed (the cost on an idle core, where "
                f"no other work lands between two steps): {c['stages_sum_ms']:.2f} ms per frame ("
                + ", ".join(f"{k} {v:.2f}" for k, v in c["stages_ms"].items())
                + ").",
            ]
        lines.append("")
    goals = results.get("goals")
    if goals:
        lines += ["## Goals (512 px)", "", "| goal | value | met |", "|---|---|---|"]
        lines += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else 'NO'} |" for g in goals]
        lines.append("")
    return "\n".join(lines)


def goals(summary: dict[str, Any], cost: dict[str, float] | None) -> list[dict[str, Any]]:
    g, r = summary["guided"], summary["resize"]
    gain = g["psnr"] - r["psnr"]
    rows = [
        {"goal": "PSNR >= resize + 0.4 dB", "value": f"{gain:+.2f} dB", "met": gain >= 0.4},
        {
            "goal": "better than resize on every clip",
            "value": f"{summary['guided_wins']}/{summary['clips']}",
            "met": summary["guided_wins"] == summary["clips"],
        },
        {
            "goal": "SSIM above resize's",
            "value": f"{_fmt(g['ssim'], 3)} vs {_fmt(r['ssim'], 3)}",
            "met": g["ssim"] is not None and g["ssim"] > r["ssim"],
        },
        {
            "goal": "sharpness >= 0.8 on still pixels",
            "value": _fmt(g["sharpness_still"]),
            "met": (g["sharpness_still"] or 0) >= 0.8,
        },
        {"goal": "sharpness >= 0.55 overall", "value": _fmt(g["sharpness"]), "met": g["sharpness"] >= 0.55},
        {"goal": "frame 0 >= 45 dB", "value": _fmt(g["frame0_psnr"], 1), "met": g["frame0_psnr"] >= 45},
    ]
    if cost:
        rows.append(
            {
                "goal": "<= 4 ms per frame on one core",
                "value": f"{cost['ms_per_frame']:.2f} ms",
                "met": cost["ms_per_frame"] <= 4.0,
            }
        )
        if "stages_sum_ms" in cost:
            rows.append(
                {
                    "goal": "<= 4 ms per frame, idle-core estimate (each step's best, summed)",
                    "value": f"{cost['stages_sum_ms']:.2f} ms",
                    "met": cost["stages_sum_ms"] <= 4.0,
                }
            )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hd", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help=f"{QUICK_CLIPS} clips at 512 px only (a test's run)")
    p.add_argument(
        "--clips", type=int, help=f"held-out clips (default {FULL_CLIPS}; {QUICK_CLIPS} with --quick)"
    )
    p.add_argument("--sizes", type=int, nargs="+", help="output sides in pixels (default 512 1024)")
    p.add_argument("--runs", type=int, default=TIMING_RUNS, help="timing runs, best taken")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    p.add_argument("--machine", help="the results' machine name (default: measured)")
    p.add_argument("--tune", type=int, metavar="CLIPS", help="tune on this many TRAINING clips and exit")
    p.add_argument(
        "--cost-only",
        action="store_true",
        help="time the renderer again (at --sizes) into this machine's existing results, scores kept: "
        "quality is deterministic, timings on a shared machine are not",
    )
    return p.parse_args(argv)


def write(results: dict[str, Any], machine: Any | None, args: argparse.Namespace) -> tuple[Path, Path]:
    """The JSON and Markdown files, named for the machine (and -quick for a quick run); `machine`, the
    one that scored the clips (None: keep the one recorded)."""
    if machine is not None:
        machine.load_after = load_average()
        results["machine"] = machine.to_dict()
    if "512" in results["sizes"]:
        block = results["sizes"]["512"]
        results["goals"] = goals(block["summary"], block["cost"])
    name = f"hd-{results['machine']['name']}{'-quick' if args.quick else ''}"
    folder = ensure_writable_dir(args.out)
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    with atomic_file(json_path) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    with atomic_file(md_path) as tmp:
        tmp.write_text(markdown(results))
    return json_path, md_path


def retime(model: DemoModel, machine: Any, args: argparse.Namespace, sizes: list[int]) -> int:
    """--cost-only: new cost blocks (clip 0 of the held-out scenes) in the machine's results file."""
    path = Path(args.out) / f"hd-{machine.name}{'-quick' if args.quick else ''}.json"
    if not path.is_file():
        print(f"{path} does not exist; run the benchmark without --cost-only first", file=sys.stderr)
        return 2
    results = json.loads(path.read_text())
    for size in sizes:
        if str(size) not in results["sizes"]:
            print(f"{path} has no {size} px results; run the benchmark at that size first", file=sys.stderr)
            return 2
        clip = make_clip(model, [0, HELD_OUT, 0], size)
        results["sizes"][str(size)]["cost"] = time_renderer(clip, args.runs)
    machine.load_after = load_average()
    results["cost_machine"] = machine.to_dict()
    json_path, md_path = write(results, None, args)
    print(markdown(results))
    print(f"wrote {json_path} and {md_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    clips = args.clips or (QUICK_CLIPS if args.quick else FULL_CLIPS)
    sizes = args.sizes or ([512] if args.quick else [512, 1024])
    if clips < 1 or any(s < 64 for s in sizes):
        print("--clips must be at least 1 and every --sizes at least 64", file=sys.stderr)
        return 2
    model = DemoModel()
    if args.tune:
        tune(model, args.tune, sizes[0])
        return 0
    machine = describe_machine(threads=1, name=args.machine)
    if args.cost_only:
        return retime(model, machine, args, sizes)
    results: dict[str, Any] = {
        "clips": clips,
        "frames": model.frames,
        "model_size": model.size,
        "params": asdict(GuidedParams()),
        "still_px": STILL_PX,
        "sizes": {},
    }
    for size in sizes:
        scores = []
        timing_clip = None
        for i in tqdm(range(clips), desc=f"{size} px", unit="clip"):
            clip = make_clip(model, [0, HELD_OUT, i], size)
            renders = render_all(clip)
            scores.append({m: score(v, clip) for m, v in renders.items()})
            timing_clip = timing_clip or clip
        summary = summarize(scores)
        per_clip = [{m: {"psnr": s[m]["psnr"], "ssim": s[m]["ssim"]} for m in METHODS} for s in scores]
        assert timing_clip is not None
        cost = time_renderer(timing_clip, args.runs)
        results["sizes"][str(size)] = {"summary": summary, "per_clip": per_clip, "cost": cost}
        paths = write(results, machine, args)  # after each size: a long run cut short keeps what it has
    print(markdown(results))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    from runtime.console import run_cli

    sys.exit(run_cli(main))
