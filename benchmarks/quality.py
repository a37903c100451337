"""How far each CPU line's frames are from the float32 frames: PSNR on realistic inputs.

Point it at any checkpoint (the bundled demo model, a trained run, a realistic random one):

    python -m benchmarks.quality CKPT [--exports DIR] [--images 8] [--json out.json]

The reference frames are the float32 PyTorch generator's; the inputs are fresh procedural landscapes
(`export.calibration`, never the int8 calibration or selection images) with seeded motion. PSNR is over
[-1, 1] (peak-to-peak 2, as `export.parity`), per clip; the table gives the worst and the mean clip.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.artifacts import export_artifacts
from benchmarks.lines import CPU_KEYS, Context, line, load, unavailable
from export.calibration import check_seeds, landscape_batch
from export.int8 import DEFAULT_TARGET_PSNR
from export.parity import compare

IMAGES = 8
BATCH = 4
QUALITY_SEED = 7  # which fresh landscapes (check seeds) are drawn


def describe_source(info: dict[str, Any]) -> str:
    """Where a checkpoint's weights come from, in words (its metadata's source, or its training step)."""
    source = info.get("metadata", {}).get("source")
    if source:
        return str(source)
    return f"trained checkpoint, step {info.get('step', 0)}" if info.get("step") else "checkpoint"


def measure_quality(
    checkpoint: str | Path,
    exports: str | Path | None = None,
    *,
    keys: Sequence[str] = CPU_KEYS,
    images: int = IMAGES,
    seed: int = QUALITY_SEED,
    int8_psnr: float = DEFAULT_TARGET_PSNR,
) -> dict[str, Any]:
    """PSNR of every available line in `keys` against the reference line, on `images` landscapes."""
    from training import checkpoint as ckpt_io

    checkpoint = Path(checkpoint)
    info = ckpt_io.read_info(checkpoint)
    cfg = info["config"]
    fp16 = "ort-fp16" in keys
    out = export_artifacts(
        checkpoint, Path(exports) if exports else None, fp16=fp16, int8_psnr=int8_psnr, engines=False
    )
    context = Context(checkpoint, out)
    seeds = check_seeds(np.random.default_rng(seed), images)
    feeds = [
        landscape_batch(seeds[i : i + BATCH], cfg.image_size, cfg.motion_dim) for i in range(0, images, BATCH)
    ]
    reference = load(line("reference"), context)
    expected = [reference.run(f) for f in feeds]
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "source": describe_source(info),
        "step": info.get("step", 0),
        "config": cfg.to_dict(),
        "images": images,
        "inputs": "fresh procedural landscapes (export.calibration.check_seeds) with seeded motion",
        "lines": {},
    }
    for key in keys:
        item = line(key)
        if item.loader == "reference":  # the reference itself (or in another thread layout)
            continue
        reason = unavailable(item, context)
        if reason:
            result["lines"][key] = {"skipped": reason}
            continue
        loaded = load(item, context)
        psnrs, worst = [], 0.0
        for feed, want in zip(feeds, expected, strict=True):
            got = loaded.run(feed)
            for clip in range(got.shape[0]):
                metrics = compare(got[clip], want[clip], 2.0)
                psnrs.append(metrics["psnr_db"] if metrics["psnr_db"] is not None else float("inf"))
                worst = max(worst, metrics["max_abs"])
        loaded.close()
        result["lines"][key] = {
            "label": item.label,
            "psnr_db_min": round(min(psnrs), 2),
            "psnr_db_mean": round(float(np.mean(psnrs)), 2),
            "max_abs": round(worst, 4),
        }
    reference.close()
    return result


def quality_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(line, worst PSNR, mean PSNR, max abs) per line as display strings; skipped lines say why."""
    rows = []
    for key, entry in result["lines"].items():
        if "skipped" in entry:
            rows.append((key, f"skipped: {entry['skipped']}", "", ""))
        else:
            rows.append(
                (
                    entry["label"],
                    f"{entry['psnr_db_min']:.2f}",
                    f"{entry['psnr_db_mean']:.2f}",
                    f"{entry['max_abs']:.3f}",
                )
            )
    return rows


def format_quality(result: dict[str, Any]) -> str:
    """A small table: line, worst and mean PSNR, max abs error."""
    lines = [
        f"quality vs float32 PyTorch frames: {result['checkpoint']} ({result['source'] or 'checkpoint'})"
    ]
    lines.append(f"{'line':<40} {'PSNR min':>9} {'PSNR mean':>10} {'max abs':>8}")
    lines += [f"{a:<40} {b:>9} {c:>10} {d:>8}" for a, b, c, d in quality_rows(result)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder")
    parser.add_argument("--exports", type=Path, help="artifact folder (default: cached per checkpoint)")
    parser.add_argument("--images", type=int, default=IMAGES, help=f"landscapes (default {IMAGES})")
    parser.add_argument("--int8-psnr", type=float, default=DEFAULT_TARGET_PSNR, help="int8 export target")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = measure_quality(args.checkpoint, args.exports, images=args.images, int8_psnr=args.int8_psnr)
    print(format_quality(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
