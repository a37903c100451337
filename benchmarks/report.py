"""Results out: a trtexec-style summary on the terminal, JSON and Markdown under benchmarks/results/.

All numbers come from the results dict `benchmarks.fps` builds; nothing here is measured or assumed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.quality import quality_rows
from runtime.fsutil import atomic_file

PAPER_CLAIM = 31.0  # "31 FPS on one GTX 1080 Ti" (DTVNet paper); frames or clips is not stated


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _share(e2e: dict[str, Any] | None) -> str:
    return "-" if not e2e else f"{100 * e2e['vs_engine_alone']:.0f}%"


def _by_round(ratios: list[float] | None) -> str:
    if not ratios:
        return ""
    return f" ({min(ratios):.2f}-{max(ratios):.2f}x round by round)"


def rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per line and batch, as display strings."""
    out = []
    for entry in results["lines"]:
        e2e = entry.get("e2e") or {}
        quality = entry.get("psnr_db")
        out.append(
            {
                "line": entry["label"] + (" *" if entry.get("reference") else ""),
                "batch": str(entry["batch"]),
                "clips/s": _num(entry["clips_per_s"], 2),
                "frames/s": _num(entry["frames_per_s"]),
                "p50 ms": _num(entry["latency_ms"]["p50"]),
                "p90 ms": _num(entry["latency_ms"]["p90"]),
                "p99 ms": _num(entry["latency_ms"]["p99"]),
                "GFLOP/s": _num(entry["gflops"], 0),
                "% fp32 peak": _num(entry["pct_fp32_peak"], 0),
                "% ceiling": _num(entry.get("pct_ceiling"), 0),
                "x ref": _ratio(entry["vs_reference"]),
                "x 31 fps": _ratio(entry["vs_paper_frames"]),
                "x 31 clips/s": _ratio(entry["vs_paper_clips"]),
                "e2e frames/s": _num(e2e.get("frames_per_s")),
                "e2e / engine": _share(e2e),
                "e2e / engine, natural frames": _share(entry.get("e2e_natural")),
                "e2e / engine, 512 px guided": _share(entry.get("e2e_hd")),
                "first frame ms": _num(e2e.get("first_frame_ms")),
                "PSNR dB": "-" if quality is None else _num(quality, 1),
            }
        )
    return out


def _columns(table: list[dict[str, str]]) -> list[str]:
    return list(table[0]) if table else []


def text_table(results: dict[str, Any]) -> str:
    """The summary as fixed-width text (trtexec's "Performance summary" spirit)."""
    table = rows(results)
    cols = _columns(table)
    widths = {c: max(len(c), *(len(r[c]) for r in table)) for c in cols}
    lines = [headline(results), ""]
    lines.append("  ".join(c.rjust(widths[c]) if i else c.ljust(widths[c]) for i, c in enumerate(cols)))
    for r in table:
        lines.append(
            "  ".join(r[c].rjust(widths[c]) if i else r[c].ljust(widths[c]) for i, c in enumerate(cols))
        )
    lines += ["", *footnotes(results)]
    return "\n".join(lines)


def markdown_table(results: dict[str, Any]) -> str:
    table = rows(results)
    cols = _columns(table)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    out += ["| " + " | ".join(r[c] for c in cols) + " |" for r in table]
    return "\n".join(out)


def headline(results: dict[str, Any]) -> str:
    m, model = results["machine"], results["model"]
    return (
        f"=== dtvnet fps: {model['preset_or_source']} ({model['image_size']}x{model['image_size']}, "
        f"{model['frames']} frames, {model['gflop_per_clip']:.2f} GFLOP/clip) on {m['cpu']} "
        f"({m['cores']} cores{', ' + m['gpu'] if m['gpu'] else ''}), {m['date']} ==="
    )


def footnotes(results: dict[str, Any]) -> list[str]:
    m, best = results["machine"], results["summary"]
    notes = [
        "* reference: the generator as the reference code runs it (PyTorch eager fp32, no batch "
        "standardization); 'x ref' is against the reference at the same batch, measured in the same run.",
        f"fp32 matmul peak {results['peak_fp32_gflops']:.0f} GFLOP/s (best of "
        + ", ".join(f"{k} {v:.0f}" for k, v in results["matmul_fp32_gflops"].items())
        + "); GFLOP/s = clips/s x GFLOP per clip.",
        *_ceiling_notes(results),
        f"load average before {m['load_before']}, after {m['load_after']}; {m['threads']} threads; "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()),
        "e2e: 512 px JPEG photo files in, mp4 file out through runtime.Generator (batch 1: stream of "
        "chained clips, 31 new frames per clip after the first; larger batches: run_many, one photo per "
        "clip); e2e / engine: against the engine alone on as many clips (batched calls, no I/O), timed "
        "just before each e2e run. PSNR: worst clip vs float32 "
        "frames on fresh procedural landscapes.",
    ]
    natural = [e for e in results["lines"] if e.get("e2e_natural")]
    if natural:
        first = natural[0]
        speeds = ", ".join(
            f"batch {e['batch']} {e['e2e_natural']['engine_alone_frames_per_s']:.1f}" for e in natural
        )
        notes.append(
            f"e2e / engine, natural frames ({first['label']}): the same measurement on the artifacts of "
            f"{results['model'].get('natural_source', 'a generator fitted to time-lapses')}, exported "
            "like any checkpoint (its own int8 layers), against its own engine alone (frames/s: "
            f"{speeds}). Random weights make per-pixel noise, new in every frame: the video encoder's "
            f"worst case. Encoder CPU per frame, alone: {first['e2e']['encode_ms_per_frame']:.3f} ms "
            f"for the random weights' frames, {first['e2e_natural']['encode_ms_per_frame']:.3f} ms for "
            "the natural ones."
        )
    hd = [e for e in results["lines"] if e.get("e2e_hd")]
    if hd:
        notes.append(
            f"e2e / engine, 512 px guided ({hd[0]['label']}): the same end-to-end run with frames at the "
            "photos' 512 px (`size=512`: guided HD rendering of the model's frames and flows, then H.264 at "
            "512 px) on the natural frames' artifacts where there are some, against that engine alone ("
            + ", ".join(
                f"batch {e['batch']}: {e['e2e_hd']['frames_per_s']:.1f} of "
                f"{e['e2e_hd']['engine_alone_frames_per_s']:.1f} frames/s"
                for e in hd
            )
            + "); goal: at least 60%. CPU time per frame ("
            + ", ".join(
                f"batch {e['batch']}: engine {e['e2e_hd']['engine_cpu_ms_per_frame']:.2f} ms, the rest of "
                f"making the frame (photo, guided rendering) {e['e2e_hd']['post_cpu_ms_per_frame']:.2f} ms, "
                f"H.264 {e['e2e_hd']['encode_ms_per_frame']:.2f} ms: with all {e['e2e_hd']['cores']} cores "
                f"busy all the time at most {e['e2e_hd']['ceiling_frames_per_s']:.1f} frames/s, "
                f"{100 * e['e2e_hd']['ceiling_vs_engine_alone']:.0f}% of the engine alone"
                for e in hd
                if "ceiling_frames_per_s" in e["e2e_hd"]
            )
            + ")."
        )
    if best:
        notes.append(
            f"best CPU path: {best['best_label']} batch {best['best_batch']}, {best['best_fps']:.1f} "
            f"frames/s = {best['best_vs_reference_best']:.2f}x the reference's best "
            f"({best['reference_best_fps']:.1f} frames/s at batch {best['reference_best_batch']})"
            f"{_by_round(best.get('best_vs_reference_best_by_round'))}; "
            f"{best['best_vs_fastest_reference']:.2f}x the fastest reference layout "
            f"({best['fastest_reference_layout']}, {best['fastest_reference_fps']:.1f} frames/s)."
        )
    if best.get("fitted_key"):
        psnr = best["fitted_psnr_db_min"]
        notes.append(
            f"fitted weights ({best['fitted_key']}): the int8 export of "
            f"{results['model'].get('natural_source', 'a generator fitted to time-lapses')}, timed in the "
            f"same rounds: batch {best['fitted_batch']}, {best['fitted_fps']:.1f} frames/s = "
            f"{best['fitted_vs_reference_best']:.2f}x the reference's best"
            + _by_round(best.get("fitted_vs_reference_best_by_round"))
            + (f", PSNR {psnr:.1f} dB against its own float32 frames" if psnr is not None else "")
            + ". Speed does not depend on the weights, but the int8 layer choice does: random weights let "
            "fewer layers into int8 than a model with natural frames."
        )
    load = m["load_before"][0] if m["load_before"] else 0.0
    if load > 0.5 * m["cores"]:
        notes.append(
            f"BUSY MACHINE: load average {load} on {m['cores']} cores when the run began. Every number is "
            "lower than on an idle machine, and the reference (OpenMP spin-waiting) the most: compare "
            "with the OMP-passive reference line; rerun when idle for the real ratios."
        )
    for key, reason in results.get("skipped", {}).items():
        notes.append(f"not available here: {key} ({reason})")
    return notes


def _ceiling_notes(results: dict[str, Any]) -> list[str]:
    """The other precisions' peaks, what a line's ceiling is, and the best paths' ceilings."""
    peaks = [f"{k} {v:.0f} GOP/s" for k, v in results.get("int8_conv_gops", {}).items()]
    peaks += [f"{k} {v:.0f} GFLOP/s" for k, v in results.get("matmul_bf16_gflops", {}).items()]
    if not peaks:
        return []
    summary = results["summary"]
    notes = [
        f"other peaks: {', '.join(peaks)} ({_peaks_ratio(results)}). % ceiling: frames/s against the "
        "line's compute ceiling, the frames/s it would reach if each FLOP ran at the peak of the "
        "precision it runs in (an int8 artifact's int8 share from its manifest, the rest at its float "
        "precision's peak) and nothing else took time; in practice no line reaches it."
    ]
    for prefix, name in (("best", "best CPU path"), ("fitted", "fitted weights")):
        if f"{prefix}_ceiling_fps" in summary:
            notes.append(
                f"ceiling of the {name}: {_num(summary[f'{prefix}_ceiling_fps'])} frames/s = "
                f"{summary[f'{prefix}_ceiling_vs_reference_best']:.2f}x the reference's best; it runs at "
                f"{summary[f'{prefix}_pct_ceiling']:.0f}% of it."
            )
    return notes


def _peaks_ratio(results: dict[str, Any]) -> str:
    """Each measured peak over the fp32 peak ("int8 2.08x fp32, bf16 -"): what lower precision buys here."""
    by_precision = results.get("peaks_by_precision", {})
    fp32 = by_precision.get("fp32")
    return ", ".join(
        f"{name} {by_precision[name] / fp32:.2f}x fp32" if fp32 and by_precision.get(name) else f"{name} -"
        for name in ("int8", "bf16")
    )


def best_batch_table(results: dict[str, Any]) -> str:
    """One Markdown row per line at its fastest batch: the table README.md quotes."""
    best: dict[str, dict[str, Any]] = {}
    for entry in results["lines"]:
        if entry["key"] not in best or entry["frames_per_s"] > best[entry["key"]]["frames_per_s"]:
            best[entry["key"]] = entry
    reference = best.get("reference")
    cols = ["line", "batch", "frames/s", "clips/s", "x reference", "GFLOP/s", "% fp32 peak", "% ceiling"]
    cols += ["PSNR dB"]
    cols += ["e2e frames/s", "e2e / engine", "e2e / engine, natural frames", "e2e / engine, 512 px guided"]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for entry in best.values():
        e2e = entry.get("e2e") or {}
        ratio = entry["frames_per_s"] / reference["frames_per_s"] if reference else None
        cells = [
            entry["label"],
            str(entry["batch"]),
            _num(entry["frames_per_s"]),
            _num(entry["clips_per_s"], 2),
            _ratio(ratio),
            _num(entry["gflops"], 0),
            _num(entry["pct_fp32_peak"], 0),
            _num(entry.get("pct_ceiling"), 0),
            "-" if entry.get("psnr_db") is None else _num(entry["psnr_db"], 1),
            _num(e2e.get("frames_per_s")),
            _share(e2e),
            _share(entry.get("e2e_natural")),
            _share(entry.get("e2e_hd")),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def markdown(results: dict[str, Any]) -> str:
    """The results file in Markdown: headline, tables, notes, quality and command."""
    parts = [f"# {headline(results).strip('= ')}", "", "Each line at its fastest batch (x reference: "]
    parts[-1] += "against the reference at its own fastest batch):"
    parts += ["", best_batch_table(results), "", "Every line and batch:", "", markdown_table(results), ""]
    parts += [f"- {note}" for note in footnotes(results)]
    for quality in results.get("quality", []):
        parts += [
            "",
            f"## Quality: {quality['checkpoint']}",
            "",
            f"{quality['source']} ({quality['inputs']})",
            "",
        ]
        parts += ["| line | PSNR min dB | PSNR mean dB | max abs |", "| --- | --- | --- | --- |"]
        parts += ["| " + " | ".join(row) + " |" for row in quality_rows(quality)]
    parts += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(parts)


def write_results(results: dict[str, Any], folder: Path, name: str) -> tuple[Path, Path]:
    """`folder`/<name>.json and .md, each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / f"{name}.json", folder / f"{name}.md")
    with atomic_file(paths[0]) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    with atomic_file(paths[1]) as tmp:
        tmp.write_text(markdown(results))
    return paths
