"""Where an artifact's time goes on OpenVINO's CPU runtime, layer by layer.

    python -m benchmarks.layer_profile ARTIFACT [--batch 4] [--runs 3] [--top 20]

The frames/s of `benchmarks/fps.py` say how fast a line is; this says why: OpenVINO's performance
counters per compiled node (the kernel it picked, e.g. `jit_avx2_I8` or `brgconv_avx2_f32`), summed per
operation and kernel, and the achieved GOP/s of every convolution (its FLOPs from the source ONNX graph,
as `export.int8.conv_sites` counts them). It shows, for instance, which int8 layers run in float on this
CPU and how far int8 convolutions outrun float ones. One stream on all cores, the manifest's precision.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from export.calibration import landscape_batch
from export.int8 import conv_sites
from runtime.backends.openvino import compile_model, core, cpu_threads, inference_precision
from runtime.errors import BackendUnavailableError, DTVNetError
from runtime.manifest import resolve_artifact


@dataclass(frozen=True)
class NodeTime:
    """One compiled node: what it is, the kernel that ran it, its time per clip."""

    name: str
    op: str
    kernel: str
    ms_per_clip: float
    gflop_per_clip: float | None  # nodes holding a convolution

    @property
    def gops(self) -> float | None:
        if not self.gflop_per_clip or self.ms_per_clip <= 0:
            return None
        return self.gflop_per_clip / self.ms_per_clip * 1e3


@dataclass(frozen=True)
class Profile:
    artifact: str
    precision: str
    batch: int
    threads: int
    ms_per_clip: float  # wall clock of the timed calls
    nodes: list[NodeTime]

    def by_kernel(self) -> list[tuple[str, str, int, float]]:
        """(op, kernel, nodes, ms per clip), most time first."""
        total: dict[tuple[str, str], float] = collections.defaultdict(float)
        count: collections.Counter[tuple[str, str]] = collections.Counter()
        for node in self.nodes:
            total[node.op, node.kernel] += node.ms_per_clip
            count[node.op, node.kernel] += 1
        return sorted(((op, k, count[op, k], ms) for (op, k), ms in total.items()), key=lambda r: -r[3])


def _conv_flops(model_path: Path, source: str | None) -> dict[str, float]:
    """ONNX node name -> GFLOP per clip of its convolution. An int8 artifact's weights sit behind
    DequantizeLinear, so its float source graph (same node names) is counted instead."""
    path = (model_path.parent / source / model_path.name).resolve() if source else model_path
    if not path.is_file():
        path = model_path
    return {site.node: site.flops / 1e9 for site in conv_sites(onnx.load(str(path)))}


def profile_artifact(path: Path, batch: int = 4, runs: int = 3, threads: int | None = None) -> Profile:
    """Time `runs` calls of `batch` clips after two warm-up calls, with performance counters on."""
    manifest, model_path = resolve_artifact(path)
    if model_path.suffix != ".onnx":
        raise BackendUnavailableError(
            f"{model_path} is not an ONNX artifact: the profiler runs .onnx files on OpenVINO; give it an "
            "onnx-fp32 or onnx-int8 folder."
        )
    precision = inference_precision(manifest)
    threads = threads or cpu_threads()
    model = core().read_model(str(model_path))
    size, motion_dim = manifest.image_size, manifest.motion_dim
    model.reshape({"image": [batch, 3, size, size], "motion": [batch, motion_dim]})
    compiled = compile_model(model, precision, threads, properties={"PERF_COUNT": True})
    request = compiled.create_infer_request()
    feeds = landscape_batch(list(range(batch)), size, motion_dim)
    for _ in range(2):
        request.infer(feeds)
    start = time.perf_counter()
    for _ in range(runs):
        request.infer(feeds)
    wall = (time.perf_counter() - start) / runs / batch * 1e3
    flops = _conv_flops(model_path, manifest.extra.get("source_onnx"))
    origins = {  # compiled node -> the ONNX nodes fused into it (a deconvolution gets a new name)
        op.get_friendly_name(): op.get_rt_info()["originalLayersNames"].astype(str).split(",")
        for op in compiled.get_runtime_model().get_ordered_ops()
    }
    nodes = []
    for info in request.profiling_info:  # counters of the last call
        ms = info.real_time.total_seconds() * 1e3 / batch
        if ms <= 0:
            continue  # fused into another node
        gflop = sum(flops.get(name, 0.0) for name in origins.get(info.node_name, [info.node_name]))
        nodes.append(NodeTime(info.node_name, info.node_type, info.exec_type, ms, gflop or None))
    return Profile(str(path), precision, batch, threads, wall, nodes)


def format_profile(profile: Profile, top: int = 20) -> str:
    counted = sum(n.ms_per_clip for n in profile.nodes)
    lines = [
        f"{profile.artifact}: {profile.ms_per_clip:.1f} ms per clip at batch {profile.batch}, "
        f"{profile.threads} threads, float parts in {profile.precision} "
        f"({counted:.1f} ms per clip in the counters)",
        "",
        f"{'operation':<26} {'kernel':<24} {'nodes':>5} {'ms/clip':>8} {'share':>6}",
    ]
    for op, kernel, n, ms in profile.by_kernel():
        lines.append(f"{op:<26} {kernel:<24} {n:>5} {ms:>8.2f} {100 * ms / counted:>5.1f}%")
    lines += ["", f"{'node':<44} {'operation':<26} {'kernel':<24} {'ms/clip':>8} {'GOP/s':>7}"]
    for node in sorted(profile.nodes, key=lambda n: -n.ms_per_clip)[:top]:
        gops = "-" if node.gops is None else f"{node.gops:.0f}"
        lines.append(
            f"{node.name[:44]:<44} {node.op:<26} {node.kernel:<24} {node.ms_per_clip:>8.2f} {gops:>7}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.layer_profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("artifact", type=Path, help="an ONNX artifact folder (onnx-fp32, onnx-int8, ...)")
    parser.add_argument("--batch", type=int, default=4, help="clips per call (default 4)")
    parser.add_argument("--runs", type=int, default=3, help="timed calls (default 3)")
    parser.add_argument("--threads", type=int, help="threads (default: every core)")
    parser.add_argument("--top", type=int, default=20, help="slowest nodes to list (default 20)")
    args = parser.parse_args(argv)
    try:
        profile = profile_artifact(args.artifact, args.batch, args.runs, args.threads)
    except DTVNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_profile(profile, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
