"""`python benchmarks/fps.py` (or `dtvnet bench`): how fast every engine here makes time-lapse frames,
side by side with the reference generator, in one run.

Usage:
    python benchmarks/fps.py [--quick] [--checkpoint CKPT | --preset paper] [--batch 1,4,8]
        [--lines KEY,...] [--exports DIR] [--out benchmarks/results] [--machine NAME]
        [--rounds N] [--min-runs N] [--min-seconds S] [--e2e-seconds S] [--no-e2e]
        [--quality-checkpoint CKPT ...] [--no-quality]

For every available line (engine x precision, `benchmarks.lines`) and batch size: warm-up, then rounds
of timed calls interleaved across all lines (`benchmarks.timing`); clips/s and frames/s from the median
latency, p50/p90/p99 per batch, achieved GFLOP/s (`training.model.generator_flops`) against the
measured fp32 matmul peak and against each line's compute ceiling (`ceiling_clips`), ratios to the
reference line and to the paper's "31 FPS"; then end to end
(photo in, mp4 out) through `runtime.Generator`, and the PSNR of each line's frames against float32.
The model is the checkpoint given, else a paper-configuration checkpoint with realistic random weights
(`training.realistic`); its artifacts come from `export` (cached per checkpoint). Random weights make
frames of noise, the video encoder's worst case, so the best line is also run end to end on a
generator fitted to time-lapses, whose frames are smooth like a trained model's. `--quick` (the bundled
demo model, batch 1, short runs) takes ~25 s once its artifacts are cached (the first run exports
them: ~55 s on a 2-core machine); CI runs it.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import shlex
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import lines as lines_lib
from benchmarks.artifacts import (
    benchmark_checkpoint,
    demo_checkpoint,
    export_artifacts,
    natural_checkpoint,
)
from benchmarks.e2e import PHOTO_SIDE as HD_SIDE
from benchmarks.e2e import measure_end_to_end
from benchmarks.machine import (
    bf16_matmul_peak,
    describe_machine,
    int8_conv_peak,
    load_average,
    matmul_peaks,
    usable_cores,
)
from benchmarks.quality import describe_source, format_quality, measure_quality
from benchmarks.report import PAPER_CLAIM, text_table, write_results
from benchmarks.timing import Protocol, measure_interleaved
from benchmarks.worker import start_workers
from export.calibration import check_seeds, landscape_batch
from export.int8 import DEFAULT_TARGET_PSNR

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FULL = Protocol(warmup_runs=2, rounds=5, min_runs=5, min_seconds=2.0)
QUICK = Protocol(warmup_runs=1, rounds=1, min_runs=3, min_seconds=0.2)
FULL_BATCHES, QUICK_BATCHES = (1, 4, 8), (1,)
E2E_SECONDS, QUICK_E2E_SECONDS = 6.0, 0.5
PEAK_REPEATS, QUICK_PEAK_REPEATS = 10, 3  # best of N calls of each peak's kernel
E2E_REPEATS, QUICK_E2E_REPEATS = 3, 1
INPUT_SEED = 11


def batches_argument(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive batch sizes like 1,4,8, got {text!r}")
    return values


def keys_argument(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    known = [line.key for line in lines_lib.LINES]
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown line(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return keys if "reference" in keys else ("reference", *keys)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dtvnet bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the bundled demo model, batch 1, short runs (~25 s once exported, ~55 s fresh)",
    )
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to benchmark (default: realistic random)")
    parser.add_argument(
        "--preset",
        help="benchmark this preset with realistic random weights (default paper; --quick: the demo model)",
    )
    parser.add_argument("--batch", type=batches_argument, help="batch sizes (default 1,4,8; quick: 1)")
    parser.add_argument("--lines", type=keys_argument, help="line keys to run (default: all available)")
    parser.add_argument("--exports", type=Path, help="artifact folder (default: cached per checkpoint)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument(
        "--machine", help="results file name (default: the CPU/GPU name, plus what a partial run leaves out)"
    )
    parser.add_argument("--rounds", type=int, help="timing rounds, interleaved over all lines")
    parser.add_argument("--min-runs", type=int, help="timed calls per line and batch in each round")
    parser.add_argument("--min-seconds", type=float, help="seconds per line and batch in each round")
    parser.add_argument("--e2e-seconds", type=float, help="length of each end-to-end run")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end runs")
    parser.add_argument(
        "--quality-checkpoint",
        type=Path,
        action="append",
        default=[],
        help="also measure quality on this checkpoint (repeatable; the bundled demo model is included)",
    )
    parser.add_argument("--no-quality", action="store_true", help="skip the quality measurements")
    parser.add_argument(
        "--int8-psnr", type=float, default=DEFAULT_TARGET_PSNR, help="int8 export target (dB)"
    )
    return parser.parse_args(argv)


def protocol_for(args: argparse.Namespace) -> Protocol:
    base = QUICK if args.quick else FULL
    overrides = {
        name: value
        for name, value in (
            ("rounds", args.rounds),
            ("min_runs", args.min_runs),
            ("min_seconds", args.min_seconds),
        )
        if value is not None
    }
    return replace(base, **overrides)


def time_lines(
    context: lines_lib.Context, keys: Sequence[str], batches: Sequence[int], protocol: Protocol, cfg: Any
) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[str, str], dict[str, str]]:
    """Engine-only timings of every available line at every batch, each line in its own process:
    (key, batch) -> summary; skipped lines -> reason; timed lines -> what ran them."""
    skipped = {}
    for key in keys:
        reason = lines_lib.unavailable(lines_lib.line(key), context)
        if reason:
            skipped[key] = reason
    rng = np.random.default_rng(INPUT_SEED)
    feeds = {b: landscape_batch(check_seeds(rng, b), cfg.image_size, cfg.motion_dim) for b in batches}
    available = [k for k in keys if k not in skipped]
    print(f"loading {', '.join(available)} (one process each)...", file=sys.stderr, flush=True)
    workers = {w.key: w for w in start_workers(available, context, feeds)}
    try:
        cells = [(key, b) for b in batches for key, w in workers.items() if (w.max_batch or b) >= b]
        for key, worker in workers.items():
            if worker.max_batch is not None and worker.max_batch < max(batches):
                skipped[f"{key} batch > {worker.max_batch}"] = "outside the engine's optimization profile"
        blocks = [functools.partial(workers[key].block, b) for key, b in cells]
        samples = measure_interleaved(
            blocks,
            protocol,
            on_round=lambda r: print(f"timing round {r + 1}/{protocol.rounds} done", file=sys.stderr),
        )
    finally:
        for worker in workers.values():
            worker.close()
    timings = {cell: sample.summary() for cell, sample in zip(cells, samples, strict=True)}
    return timings, skipped, {key: w.device for key, w in workers.items()}


def ceiling_clips(
    gflop: float, mix: Mapping[str, float] | None, peaks: Mapping[str, float | None]
) -> float | None:
    """Clips/s if each of a line's FLOPs ran at the measured peak of the precision it runs in (`mix`:
    precision -> share, `lines.flop_mix`) and nothing else took time: a bound no line reaches in practice
    (norms, pads, reorders and quantization are left out, and most layers are smaller than the peak's).
    None where the mix or a peak it needs is unknown."""
    if not mix or any(not peaks.get(precision) for precision, share in mix.items() if share > 0):
        return None
    return 1.0 / sum(gflop * share / peaks[precision] for precision, share in mix.items() if share > 0)


def line_entries(
    timings: dict[tuple[str, int], dict[str, Any]],
    devices: dict[str, str],
    gflop: float,
    frames: int,
    peaks: Mapping[str, float | None],
    mixes: Mapping[str, Mapping[str, float] | None] | None = None,
) -> list[dict[str, Any]]:
    """One results entry per line and batch, with every derived rate and ratio; `peaks`: GFLOP/s by
    precision ("fp32", and "int8", "bf16" where measured), `mixes`: each line's `lines.flop_mix`."""
    reference = {b: t for (k, b), t in timings.items() if k == "reference"}
    fp32_peak = peaks.get("fp32")
    entries = []
    for (key, batch), timing in timings.items():
        item = lines_lib.line(key)
        clips = batch / (timing["latency_ms"]["p50"] / 1e3)
        ref = reference.get(batch)
        ref_clips = batch / (ref["latency_ms"]["p50"] / 1e3) if ref else None
        mix = (mixes or {}).get(key)
        ceiling = ceiling_clips(gflop, mix, peaks)
        entries.append(
            {
                "key": key,
                "label": item.label,
                "engine": item.engine,
                "precision": item.precision,
                "artifact": item.artifact,
                "device": devices[key],
                "note": item.note,
                "reference": item.reference,
                "batch": batch,
                **timing,
                "clips_per_s": clips,
                "frames_per_s": clips * frames,
                "gflops": clips * gflop,
                "pct_fp32_peak": 100 * clips * gflop / fp32_peak if fp32_peak else None,
                "flop_mix": mix,
                "ceiling_frames_per_s": ceiling * frames if ceiling else None,
                "pct_ceiling": 100 * clips / ceiling if ceiling else None,
                "vs_reference": clips / ref_clips if ref_clips else None,
                "vs_paper_frames": clips * frames / PAPER_CLAIM,
                "vs_paper_clips": clips / PAPER_CLAIM,
            }
        )
    return entries


def add_end_to_end(
    entries: list[dict[str, Any]],
    context: lines_lib.Context,
    seconds: float,
    repeats: int,
    keys: Collection[str] | None = None,
    field: str = "e2e",
    size: int | None = None,
) -> None:
    """End-to-end runs for every line the runtime can run (or those of `keys`), at each batch, from the
    artifacts of `context`, frames at the model's side or at `size`; stored in the entry under `field`."""
    for entry in entries:
        item = lines_lib.line(entry["key"])
        if item.runtime_backend is None or (keys is not None and item.key not in keys):
            continue
        batch = entry["batch"]
        clips = max(2 * batch, math.ceil(seconds * entry["clips_per_s"] / batch) * batch)
        print(f"end to end: {item.label}, batch {batch}, {clips} clips...", file=sys.stderr, flush=True)
        artifact, kwargs = lines_lib.runtime_artifact(item, context)
        result = measure_end_to_end(
            artifact, kwargs["backend"], kwargs["device"], batch, clips, repeats, size=size
        )
        entry[field] = {**result.to_dict(), "vs_engine": result.fps / entry["frames_per_s"]}


def default_preset(quick: bool) -> str:
    return "small" if quick else "paper"


def results_name(machine: str, args: argparse.Namespace) -> str:
    """The results files' name: the machine's, plus what the run left out of the full default one (quick,
    another model, some lines or batches), so that such a run never replaces a full run's results."""
    parts = [machine]
    if args.quick:
        parts.append("quick")
    if args.checkpoint is not None:
        parts.append(Path(args.checkpoint).name)
    elif args.preset not in (None, default_preset(args.quick)):
        parts.append(args.preset)
    if args.lines or args.batch:
        parts.append("partial")
    return "-".join(parts)


def model_checkpoint(quick_default: bool, preset: str, demo: Path | None) -> Path:
    """The benchmarked model when none is given: for `--quick` without `--preset`, the bundled demo model
    (a trained small-preset generator: its own natural frames, one model to export instead of three, so
    a first run on a fresh machine takes ~55 s, not ~4 minutes); else `preset` with realistic random
    weights, whose best line is also run on natural frames (`natural_context`)."""
    if quick_default and demo is not None:
        return demo
    return benchmark_checkpoint(preset)


def natural_context(preset: str, int8_psnr: float) -> lines_lib.Context:
    """The artifacts of a generator whose frames look like a trained model's (its int8 layers chosen for
    it, like any export's): what the end-to-end runs on natural frames use. Random weights make
    per-pixel noise, new in every frame, the video encoder's worst case."""
    checkpoint = natural_checkpoint(preset)
    return lines_lib.Context(
        checkpoint, export_artifacts(checkpoint, None, fp16=False, int8_psnr=int8_psnr, engines=False)
    )


def best_path(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest CPU entry (line and batch) that is not one of the reference's layouts."""
    others = [
        e
        for e in entries
        if (item := lines_lib.line(e["key"])).device == "cpu"
        and item.loader != "reference"
        and not item.natural
    ]
    return max(others, key=lambda e: e["frames_per_s"]) if others else None


def ratio_by_round(entry: dict[str, Any], reference: dict[str, Any]) -> list[float]:
    """`entry`'s frames/s over `reference`'s, round by round: each pair was measured in the same round
    (every line takes its turn in every round), so their range shows how far the machine's drift moves
    the headline ratio of medians (empty without per-round medians)."""
    pairs = zip(entry.get("round_medians_ms", []), reference.get("round_medians_ms", []), strict=False)
    return [(entry["batch"] / ms) / (reference["batch"] / ref_ms) for ms, ref_ms in pairs]


def ceiling_summary(prefix: str, entry: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """`entry`'s compute ceiling, the share of it reached, and how many times the reference's best it is:
    what even perfect kernels would give this line on this machine."""
    ceiling = entry.get("ceiling_frames_per_s")
    if not ceiling:
        return {}
    return {
        f"{prefix}_ceiling_fps": ceiling,
        f"{prefix}_pct_ceiling": entry["pct_ceiling"],
        f"{prefix}_ceiling_vs_reference_best": ceiling / reference["frames_per_s"],
    }


def summarize(entries: list[dict[str, Any]], quality: dict[str, Any] | None) -> dict[str, Any]:
    """The best CPU path against the reference, each at its best batch, with its quality and e2e ratio;
    also against the faster of the reference's thread layouts (the conservative ratio on a busy machine)."""
    cpu = [e for e in entries if lines_lib.line(e["key"]).device == "cpu"]
    ref = [e for e in cpu if e["reference"]]
    variants = [e for e in cpu if lines_lib.line(e["key"]).loader == "reference"]
    best = best_path(entries)
    if not ref or best is None:
        return {}
    best_ref = max(ref, key=lambda e: e["frames_per_s"])
    fastest_ref = max(variants, key=lambda e: e["frames_per_s"])
    psnr = (quality or {}).get("lines", {}).get(best["key"], {}).get("psnr_db_min")
    natural = [e for e in cpu if lines_lib.line(e["key"]).natural]
    fitted = max(natural, key=lambda e: e["frames_per_s"]) if natural else None
    return {
        "best_key": best["key"],
        "best_label": best["label"],
        "best_batch": best["batch"],
        "best_fps": best["frames_per_s"],
        "reference_best_fps": best_ref["frames_per_s"],
        "reference_best_batch": best_ref["batch"],
        "best_vs_reference_best": best["frames_per_s"] / best_ref["frames_per_s"],
        "best_vs_reference_best_by_round": ratio_by_round(best, best_ref),
        "fastest_reference_layout": fastest_ref["label"],
        "fastest_reference_fps": fastest_ref["frames_per_s"],
        "best_vs_fastest_reference": best["frames_per_s"] / fastest_ref["frames_per_s"],
        "best_psnr_db_min": psnr,
        **ceiling_summary("best", best, best_ref),
        "best_e2e_vs_engine": (best.get("e2e") or {}).get("vs_engine_alone"),
        "best_e2e_natural_vs_engine": (best.get("e2e_natural") or {}).get("vs_engine_alone"),
        "best_e2e_hd_vs_engine": (best.get("e2e_hd") or {}).get("vs_engine_alone"),
        **(
            {
                "fitted_key": fitted["key"],
                "fitted_batch": fitted["batch"],
                "fitted_fps": fitted["frames_per_s"],
                "fitted_vs_reference_best": fitted["frames_per_s"] / best_ref["frames_per_s"],
                "fitted_vs_reference_best_by_round": ratio_by_round(fitted, best_ref),
                "fitted_psnr_db_min": fitted.get("psnr_db"),
                **ceiling_summary("fitted", fitted, best_ref),
            }
            if fitted
            else {}
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    protocol = protocol_for(args)
    batches = args.batch or (QUICK_BATCHES if args.quick else FULL_BATCHES)
    preset = args.preset or default_preset(args.quick)
    from training import checkpoint as ckpt_io
    from training.model import generator_flops

    demo = demo_checkpoint()
    checkpoint = args.checkpoint or model_checkpoint(args.quick and args.preset is None, preset, demo)
    random_weights = args.checkpoint is None and checkpoint != demo
    info = ckpt_io.read_info(checkpoint)
    cfg = info["config"]
    machine = describe_machine(usable_cores(), args.machine)
    print(f"machine {machine.name}: load average {machine.load_before}", file=sys.stderr)
    repeats = QUICK_PEAK_REPEATS if args.quick else PEAK_REPEATS
    peaks = matmul_peaks(machine.threads, repeats=repeats)
    int8_peaks = int8_conv_peak(machine.threads, repeats=repeats)
    bf16_peaks = bf16_matmul_peak(machine.threads, repeats=repeats)
    exports = export_artifacts(
        checkpoint, args.exports, fp16=not args.quick, int8_psnr=args.int8_psnr, engines=not args.quick
    )
    keys = args.lines or tuple(line.key for line in lines_lib.LINES)
    wants_natural = not args.no_e2e or any(lines_lib.line(k).natural for k in keys)
    natural = natural_context(preset, args.int8_psnr) if random_weights and wants_natural else None
    context = lines_lib.Context(Path(checkpoint), exports, natural)
    timings, skipped, devices = time_lines(context, keys, batches, protocol, cfg)
    gflop = generator_flops(cfg) / 1e9
    peak = max(peaks.values(), default=0.0)
    by_precision = {
        "fp32": peak or None,
        "int8": max(int8_peaks.values(), default=None),
        "bf16": max(bf16_peaks.values(), default=None),
    }
    mixes = {key: lines_lib.flop_mix(lines_lib.line(key), context) for key in devices}
    entries = line_entries(timings, devices, gflop, cfg.frames, by_precision, mixes)
    natural_info: dict[str, str] = {}
    if natural is not None:
        natural_info = {
            "natural_checkpoint": str(natural.checkpoint),
            "natural_source": describe_source(ckpt_io.read_info(natural.checkpoint)),
        }
    if not args.no_e2e:
        seconds = args.e2e_seconds or (QUICK_E2E_SECONDS if args.quick else E2E_SECONDS)
        repeats = QUICK_E2E_REPEATS if args.quick else E2E_REPEATS
        add_end_to_end(entries, context, seconds, repeats)
        best = best_path(entries)
        if natural is not None and best is not None:  # also on natural frames
            add_end_to_end(entries, natural, seconds, repeats, keys={best["key"]}, field="e2e_natural")
        if best is not None:  # and in HD: guided rendering at the photos' 512 px, on the frames a trained
            # model makes where there is one (the detail's fading depends on them)
            hd_context = natural or context
            add_end_to_end(
                entries, hd_context, seconds, repeats, keys={best["key"]}, field="e2e_hd", size=HD_SIDE
            )
    qualities: list[dict[str, Any]] = []
    if not args.no_quality:
        where = {Path(checkpoint): exports, **({natural.checkpoint: natural.exports} if natural else {})}
        models = list(dict.fromkeys([*where, *args.quality_checkpoint, *([demo] if demo else [])]))
        twins = [lines_lib.line(k).natural_of for k in keys if lines_lib.line(k).natural and k not in skipped]
        cpu_keys = list(
            dict.fromkeys([*(k for k in keys if k in lines_lib.CPU_KEYS and k not in skipped), *twins])
        )
        images = 4 if args.quick else 8
        measured = {}
        for path in models:
            print(f"quality: {path}...", file=sys.stderr, flush=True)
            measured[path] = measure_quality(
                path, where.get(path), keys=cpu_keys, images=images, int8_psnr=args.int8_psnr
            )
        qualities = list(measured.values())
        own = measured[Path(checkpoint)]["lines"]
        fitted = measured[natural.checkpoint]["lines"] if natural else {}  # on its own artifacts
        for entry in entries:
            item = lines_lib.line(entry["key"])
            found = fitted.get(item.natural_of, {}) if item.natural else own.get(item.key, {})
            entry["psnr_db"] = found.get("psnr_db_min")
    machine.load_after = load_average()
    results = {
        "benchmark": "dtvnet fps",
        "command": shlex.join(["python", "benchmarks/fps.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine.to_dict(),
        "matmul_fp32_gflops": peaks,
        "peak_fp32_gflops": peak,
        "int8_conv_gops": int8_peaks,
        "matmul_bf16_gflops": bf16_peaks,
        "peaks_by_precision": by_precision,
        "model": {
            "checkpoint": str(checkpoint),
            "source": describe_source(info),
            "preset_or_source": f"{preset} preset" if random_weights else Path(checkpoint).name,
            "config": cfg.to_dict(),
            "image_size": cfg.image_size,
            "frames": cfg.frames,
            "gflop_per_clip": gflop,
            "exports": str(exports),
            **natural_info,
        },
        "protocol": {**protocol.to_dict(), "batches": list(batches), "quick": args.quick},
        "paper_claim": "31 FPS on one GTX 1080 Ti (frames or clips not stated: both ratios given)",
        "lines": entries,
        "skipped": skipped,
        "summary": summarize(entries, qualities[0] if qualities else None),
        "quality": qualities,
    }
    print(text_table(results))
    for quality in qualities:
        print()
        print(format_quality(quality))
    name = args.machine or results_name(machine.name, args)
    json_path, md_path = write_results(results, args.out, name)
    print(f"\nwrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    from runtime.console import run_cli

    sys.exit(run_cli(main))
