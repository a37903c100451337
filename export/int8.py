"""int8 ONNX: static quantization (QDQ) of the convolutions that cost the least quality per FLOP saved.

The generator is ~40 convolutions deep, and every int8 layer adds its rounding noise to the frames:
quantizing all of them costs ~15 dB of PSNR (about 25 dB against float32 on realistic weights), far
from the 35 dB a time-lapse needs. So the export measures, chooses and verifies:

1. calibrate: run the float32 ONNX over procedural landscapes (`export.calibration`) and record the
   range of every convolution's input.
2. select: for each convolution large enough to matter (>= MIN_FLOP_SHARE of the clip), build the model
   with only that layer in int8 and measure the extra error of each clip on other landscapes, with the
   engine and float precision the artifact will run with. Then take layers in order of FLOPs saved per
   unit of error while the predicted PSNR of the worst clip stays >= `target_psnr` (errors of separate
   layers add up closely); build that model, measure it, and drop the last layers taken until the
   measurement agrees. Where it leaves room, try up to FILL_TRIES more layers one at a time against the
   measured errors, each kept only if its measurement stays within the target. Each measured model runs
   only the part of the graph its int8 layers reach, fed with the float32 tensors where that part
   begins (`export.suffix.FloatCut`: the same numbers from about half the work), where the float parts
   compute in float32.
3. verify: parity against PyTorch on fresh landscapes (not calibration or selection ones) with every
   runner (ONNX Runtime CPU in float32 elsewhere; OpenVINO with its recorded float precision),
   bound BOUNDS[("onnx", "int8")].

Quantization: QuantizeLinear/DequantizeLinear on each chosen convolution's input (uint8, asymmetric, per
tensor, calibrated min/max), int8 weights per output channel (symmetric, [-127, 127]) and int32 biases.
Before calibration, convolutions that feed each other through ReLUs and pads are rescaled per channel
(`export.equalize`, the same function) so that one uint8 scale fits every channel. Outputs stay float:
OpenVINO folds the dequantization into the int8 convolution, and the residual stream, instance norms,
mapping network, tanh and graph I/O never leave float. Where a reflection pad feeds the convolution, the
quantization sits before the pad (same arithmetic), so the pad copies uint8 and the engine fuses the
quantization into the layer before. The decoder's upsampling ConvTranspose becomes a sub-pixel Conv +
DepthToSpace first (`export.graph`), since engines run a quantized ConvTranspose in float.

On OpenVINO (the backend `runtime` picks for int8 on the CPU) the float parts run in bfloat16 where the
CPU has it (`extra.openvino.inference_precision`), which is what the selection and the parity check use.

Without VNNI (AVX2 CPUs), OpenVINO's int8 convolution sums each pair of adjacent input channels' u8 x s8
products in saturating 16-bit arithmetic (vpmaddubsw) before widening them; ONNX Runtime's sums are exact
(tests/test_runtime_openvino.py pins both). On the paper preset with realistic random weights, all
candidates in int8 measure 27.8 dB on OpenVINO against 29.2 dB with exact sums; 7-bit weights, which
cannot saturate (ONNX Runtime's `reduce_range`), measure 26.4 dB, and shrinking only the weight pairs
that could saturate 17.7 dB (they are the largest weights). So weights stay 8-bit, and the selection,
measured on the deployment engine, counts the saturation as error like any other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.calibration import CALIBRATION_SEEDS, SELECTION_SEEDS, SOURCE, landscape_feeds
from export.equalize import ALPHA as EQUALIZE_ALPHA
from export.equalize import equalizable_pairs, equalize, equalized_ranges
from export.graph import (
    COPYING_PAD_MODES,
    conv_groups,
    conv_transpose_to_subpixel,
    ensure_node_names,
    output_channel_axis,
    pad_mode,
    refresh_value_info,
    tensor_readers,
    with_outputs,
)
from export.suffix import FloatCut
from runtime.errors import ExportError

if TYPE_CHECKING:
    from export.parity import Runner, TensorsRunner
    from export.progress import Steps

log = logging.getLogger(__name__)

INT8_DIR = "onnx-int8"
STEPS = 3  # calibrate, select, verify
QUANTIZED_OPS = ("Conv", "ConvTranspose")
DEFAULT_TARGET_PSNR = 36.0  # dB on selection landscapes; the parity bound (35 dB) leaves 1 dB of margin
MIN_FLOP_SHARE = 0.005  # smaller ones save too little time to spend quality on (motion convs: 0.8%)
PEAK_TO_PEAK = 2.0  # frames live in [-1, 1]
BATCH = 4  # calibration and selection batch
FILL_TRIES = 4  # measured tries to add layers after the greedy choice
RECIPE = 4  # bump when what an export makes changes: caches of int8 artifacts (benchmarks) re-export


@dataclass(frozen=True)
class ConvSite:
    """One convolution: its node, the tensors it reads and its cost per clip."""

    node: str
    op: str
    activation: str
    weight: str
    bias: str | None
    flops: int


@dataclass
class Int8Report:
    """How the int8 model was made, for the manifest."""

    engine: str
    float_precision: str
    target_psnr: float
    calibration: dict[str, Any]
    int8_layers: list[str]
    float_layers: list[str]
    int8_flop_share: float
    selection_psnr_db: float  # worst selection clip, chosen int8 layers
    float_only_psnr_db: float  # worst selection clip, no int8 layer (the float precision's own error)
    sensitivity: dict[str, float] = field(default_factory=dict)  # weight name -> extra MSE when int8 alone
    subpixel_upsamplings: int = 0  # ConvTransposes run as Conv + DepthToSpace (export.graph)
    equalized_layers: list[str] = field(default_factory=list)  # inputs rescaled per channel (export.equalize)
    recipe: int = RECIPE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conv_sites(model: onnx.ModelProto) -> list[ConvSite]:
    """Every Conv / ConvTranspose with a constant weight, with its FLOPs per sample (2 per MAC)."""
    model = refresh_value_info(onnx.ModelProto.FromString(model.SerializeToString()))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    inits = {i.name: i for i in model.graph.initializer}
    sites = []
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OPS or node.input[1] not in inits:
            continue
        w = list(inits[node.input[1]].dims)
        groups = conv_groups(node)
        if node.op_type == "Conv":  # weight [Cout, Cin/g, kh, kw]; every output pixel meets the kernel
            out = shapes[node.output[0]]
            taps = kernel_taps(numpy_helper.to_array(inits[node.input[1]]))
            macs = taps * w[1] * out[2] * out[3]
        else:  # ConvTranspose weight [Cin, Cout/g, kh, kw]; every input pixel meets the kernel
            inp = shapes[node.input[0]]
            macs = w[0] * w[1] * w[2] * w[3] * inp[2] * inp[3]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        sites.append(
            ConvSite(node.name, node.op_type, node.input[0], node.input[1], bias, 2 * macs // groups)
        )
    return sites


def kernel_taps(weight: np.ndarray) -> int:
    """(output channel, kernel position) pairs that read anything: all of them, except in a sub-pixel
    upsampling (`export.graph.conv_transpose_to_subpixel`), whose phases leave 7 positions in 16 zero;
    counting those would inflate its FLOPs from the ConvTranspose's 9 taps to 16."""
    return int(np.any(weight != 0, axis=1).sum())


def quantization_point(
    node: onnx.NodeProto, producers: Mapping[str, onnx.NodeProto], readers: Mapping[str, int]
) -> onnx.NodeProto | None:
    """The Pad in front of a convolution that copies values only (reflect, edge), if the convolution is
    its only reader: quantizing before it is the same arithmetic (rounding commutes with copying), and
    lets the engine pad uint8 data and fuse the quantization into the layer that produced the tensor
    (OpenVINO on AVX2: 7 ms of float pads and 14 ms of separate quantizations a paper clip, before)."""
    pad = producers.get(node.input[0])
    if pad is None or pad.op_type != "Pad" or readers[pad.output[0]] != 1:
        return None
    return pad if pad_mode(pad) in COPYING_PAD_MODES else None


def quantization_starts(graph: onnx.GraphProto, sites: Sequence[ConvSite]) -> list[onnx.NodeProto]:
    """Per site, the node its input quantization goes in front of: the copying pad before it
    (`quantization_point`), or the convolution itself."""
    nodes = {n.name: n for n in graph.node}
    producers = {o: n for n in graph.node for o in n.output}
    readers = tensor_readers(graph)  # a pad whose floats something else reads keeps them
    return [quantization_point(nodes[s.node], producers, readers) or nodes[s.node] for s in sites]


def channel_ranges(
    model: onnx.ModelProto, tensors: Sequence[str], feeds: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel (axis 1) min / max of each named tensor over `feeds`, from the float32 model on ONNX
    Runtime CPU."""
    import onnxruntime as ort

    probe = with_outputs(model, tensors)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for feed in feeds:
        for name, value in zip(tensors, session.run(list(tensors), dict(feed)), strict=True):
            axes = tuple(d for d in range(value.ndim) if d != 1)
            lo, hi = value.min(axis=axes), value.max(axis=axes)
            if name in ranges:
                lo, hi = np.minimum(ranges[name][0], lo), np.maximum(ranges[name][1], hi)
            ranges[name] = (lo, hi)
    return ranges


def tensor_ranges(ranges: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """Per-tensor min / max from per-channel ones."""
    return {name: (float(lo.min()), float(hi.max())) for name, (lo, hi) in ranges.items()}


def uint8_params(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point of an asymmetric uint8 quantization covering [lo, hi] and 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def quantize_convs(
    model: onnx.ModelProto, sites: Sequence[ConvSite], ranges: Mapping[str, tuple[float, float]]
) -> onnx.ModelProto:
    """A copy of `model` in which each of `sites` reads QDQ int8 activations, weights and biases."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    new_inits: list[TensorProto] = []
    for site, start in zip(sites, quantization_starts(graph, sites), strict=True):
        node = nodes[site.node]
        p = site.node
        scale, zero = uint8_params(*ranges[site.activation])  # a copying pad keeps its input's range
        new_inits += [
            numpy_helper.from_array(np.array(scale, np.float32), f"{p}.x_scale"),
            numpy_helper.from_array(np.array(zero, np.uint8), f"{p}.x_zero"),
        ]
        axis = output_channel_axis(site.op)
        weight = numpy_helper.to_array(inits[site.weight]).astype(np.float32)
        reduce = tuple(d for d in range(weight.ndim) if d != axis)
        w_scale = np.abs(weight).max(axis=reduce) / 127.0
        w_scale[w_scale == 0] = 1.0
        shape = [-1 if d == axis else 1 for d in range(weight.ndim)]
        w_q = np.clip(np.round(weight / w_scale.reshape(shape)), -127, 127).astype(np.int8)
        new_inits += [
            numpy_helper.from_array(w_q, f"{p}.w_q"),
            numpy_helper.from_array(w_scale.astype(np.float32), f"{p}.w_scale"),
            numpy_helper.from_array(np.zeros_like(w_scale, np.int8), f"{p}.w_zero"),
        ]
        dq = [
            helper.make_node(
                "QuantizeLinear",
                [start.input[0], f"{p}.x_scale", f"{p}.x_zero"],
                [f"{p}.x_q"],
                name=f"{p}.q",
            ),
            helper.make_node(
                "DequantizeLinear", [f"{p}.x_q", f"{p}.x_scale", f"{p}.x_zero"], [f"{p}.x_dq"], name=f"{p}.dq"
            ),
            helper.make_node(
                "DequantizeLinear",
                [f"{p}.w_q", f"{p}.w_scale", f"{p}.w_zero"],
                [f"{p}.w_dq"],
                name=f"{p}.w_dq",
                axis=axis,
            ),
        ]
        start.input[0] = f"{p}.x_dq"
        node.input[1] = f"{p}.w_dq"
        if site.bias is not None:
            b_scale = (w_scale * scale).astype(np.float32)
            bias = numpy_helper.to_array(inits[site.bias]).astype(np.float64)
            b_q = np.clip(np.round(bias / b_scale), -(2**31) + 1, 2**31 - 1).astype(np.int32)
            new_inits += [
                numpy_helper.from_array(b_q, f"{p}.b_q"),
                numpy_helper.from_array(b_scale, f"{p}.b_scale"),
                numpy_helper.from_array(np.zeros_like(b_q), f"{p}.b_zero"),
            ]
            dq.append(
                helper.make_node(
                    "DequantizeLinear",
                    [f"{p}.b_q", f"{p}.b_scale", f"{p}.b_zero"],
                    [f"{p}.b_dq"],
                    name=f"{p}.b_dq",
                    axis=0,
                )
            )
            node.input[2] = f"{p}.b_dq"
        position = list(graph.node).index(start)
        for offset, new in enumerate(dq):
            graph.node.insert(position + offset, new)
    graph.initializer.extend(new_inits)
    used = {name for n in graph.node for name in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return out


def clip_mse(
    run: Runner, feeds: Sequence[Mapping[str, np.ndarray]], reference: Sequence[np.ndarray]
) -> np.ndarray:
    """Mean squared error of each clip `run` makes against its float32 clip, over all feeds."""
    errors = [
        np.mean((run(f).astype(np.float64) - r) ** 2, axis=tuple(range(1, r.ndim)))
        for f, r in zip(feeds, reference, strict=True)
    ]
    return np.concatenate(errors)


def psnr(mse: float) -> float:
    return 10 * math.log10(PEAK_TO_PEAK**2 / mse) if mse > 0 else math.inf


def deployment_runner() -> tuple[str, str, Callable[[bytes], TensorsRunner]]:
    """(engine, float precision, model bytes -> runner of every output) the int8 artifact will run on
    here: OpenVINO, with bfloat16 float parts if this CPU has them, where OpenVINO is installed; else
    ONNX Runtime.

    The precision chosen here is the one recorded and verified, so export on a CPU like the deployment
    one: an artifact exported without bfloat16 runs in float32 everywhere (slower, more exact)."""
    from export.parity import onnxruntime_outputs, openvino_outputs

    try:
        from runtime.backends.openvino import bf16_supported
    except ImportError:
        return "onnxruntime", "fp32", onnxruntime_outputs
    precision = "bf16" if bf16_supported() else "f32"
    return "openvino", precision, lambda model: openvino_outputs(model, precision)


def candidate_sites(sites: Sequence[ConvSite]) -> list[ConvSite]:
    """The convolutions large enough to be worth quality: >= MIN_FLOP_SHARE of the clip."""
    total = sum(s.flops for s in sites)
    return [s for s in sites if s.flops >= MIN_FLOP_SHARE * total]


def change_starts(model: onnx.ModelProto, sites: Sequence[ConvSite]) -> list[str]:
    """The node at which quantizing each site changes `model`: the copying pad before it, or itself."""
    return [start.name for start in quantization_starts(model.graph, sites)]


def select_layers(
    model: onnx.ModelProto,
    sites: Sequence[ConvSite],
    ranges: Mapping[str, tuple[float, float]],
    make_runner: Callable[[bytes], Runner],
    feeds: Sequence[Mapping[str, np.ndarray]],
    reference: Sequence[np.ndarray],
    target_psnr: float,
    cut: FloatCut | None = None,
) -> tuple[list[ConvSite], dict[str, float], float, float]:
    """Greedy choice of int8 layers under a PSNR target for every clip (see module docstring).

    Errors are tracked per clip, since clips differ by several dB: a layer is taken only if the predicted
    error of the worst clip stays within the budget. Returns the chosen sites, each candidate's extra
    MSE alone (mean over clips), and the worst clip's MSE float-only and with the chosen layers. With
    `cut` (the float32 model's tensors on `feeds`), each model runs only the part its int8 layers reach.
    """

    def mse_of(chosen: Sequence[ConvSite]) -> np.ndarray:
        measured, measured_feeds = model, feeds
        if chosen:
            measured = quantize_convs(model, chosen, ranges)
            part = cut.downstream(measured) if cut is not None else None
            measured, measured_feeds = part or (measured, feeds)
        return clip_mse(make_runner(measured.SerializeToString()), measured_feeds, reference)

    candidates = candidate_sites(sites)
    base = mse_of([])
    budget = PEAK_TO_PEAK**2 / 10 ** (target_psnr / 10)
    if base.max() > budget:  # the float parts alone miss the target: no layer can be int8
        return [], {}, float(base.max()), float(base.max())
    extra = {s.node: np.maximum(mse_of([s]) - base, 0.0) for s in candidates}
    chosen: list[ConvSite] = []
    predicted = base.copy()
    order = sorted(candidates, key=lambda s: (extra[s.node].mean() + 1e-12) / s.flops)
    for site in order:
        if (predicted + extra[site.node]).max() <= budget:
            chosen.append(site)
            predicted += extra[site.node]
    measured = mse_of(chosen)
    while chosen and measured.max() > budget:
        chosen.pop()
        measured = mse_of(chosen)
    # Errors do not add up exactly: a measurement can leave room the prediction did not, so try the next
    # layers against the measured errors (a few measurements, each a model build and run).
    tries = 0
    for site in order:
        if tries == FILL_TRIES:
            break
        if site in chosen or (measured + extra[site.node]).max() > budget:
            continue
        tries += 1
        trial = mse_of([*chosen, site])
        if trial.max() <= budget:
            chosen.append(site)
            measured = trial
    log.debug(
        "int8: %d layers, worst clip predicted %.2f dB, measured %.2f dB",
        len(chosen),
        psnr(float(predicted.max())),
        psnr(float(measured.max())),
    )
    sensitivity = {s.weight: float(extra[s.node].mean()) for s in candidates}
    return chosen, sensitivity, float(base.max()), float(measured.max())


def quantize_generator(
    model: onnx.ModelProto,
    image_size: int,
    motion_dim: int,
    *,
    target_psnr: float = DEFAULT_TARGET_PSNR,
) -> tuple[onnx.ModelProto, Int8Report]:
    """float32 generator ONNX -> int8 QDQ model with the layers `select_layers` picks, and its report."""
    from export.parity import first_output, onnxruntime_runner

    named = onnx.ModelProto.FromString(model.SerializeToString())
    ensure_node_names(named)  # pairs, sites and reports refer to nodes by name
    calibration = landscape_feeds(CALIBRATION_SEEDS, image_size, motion_dim, BATCH)
    channels = channel_ranges(named, sorted({s.activation for s in conv_sites(named)}), calibration)
    pairs = equalizable_pairs(named)
    equalized, scales = equalize(named, pairs, channels)
    model, upsamplings = conv_transpose_to_subpixel(equalized)
    sites = conv_sites(model)
    ranges = tensor_ranges(equalized_ranges(channels, scales))
    selection = landscape_feeds(SELECTION_SEEDS, image_size, motion_dim, BATCH)
    exact = onnxruntime_runner(named.SerializeToString())  # equalization's own rounding counts too
    reference = [exact(f) for f in selection]
    engine, float_precision, make_tensors_runner = deployment_runner()
    # Models cut down to what their int8 layers reach measure the same where the float parts compute in
    # float32; a bfloat16 run of a tensor made an output need not round as it does inside the graph.
    cut = (
        FloatCut(model, change_starts(model, candidate_sites(sites)), selection, make_tensors_runner)
        if float_precision in ("f32", "fp32")
        else None
    )
    chosen, sensitivity, base, measured = select_layers(
        model,
        sites,
        ranges,
        lambda m: first_output(make_tensors_runner(m)),
        selection,
        reference,
        target_psnr,
        cut,
    )
    if not chosen:
        raise ExportError(
            f"No convolution can be int8 while the frames keep {target_psnr:g} dB PSNR against float32 "
            f"({engine}, {float_precision} elsewhere: {psnr(base):.1f} dB before any int8); lower "
            "--int8-psnr or deploy the fp32 artifact."
        )
    quantized = quantize_convs(model, chosen, ranges)
    total = sum(s.flops for s in sites)
    weights = {s.node: s.weight for s in sites}
    names = {s.node for s in chosen}
    report = Int8Report(
        engine=engine,
        float_precision=float_precision,
        target_psnr=target_psnr,
        calibration={
            "source": SOURCE,
            "images": len(CALIBRATION_SEEDS),
            "seeds": [CALIBRATION_SEEDS.start, CALIBRATION_SEEDS.stop],
            "selection_seeds": [SELECTION_SEEDS.start, SELECTION_SEEDS.stop],
            "method": "min/max of each int8 convolution's input (uint8, per tensor), after cross-layer "
            f"equalization (export.equalize, alpha {EQUALIZE_ALPHA:g}); weights int8 per output channel, "
            "symmetric; biases int32",
        },
        int8_layers=[s.weight for s in sites if s.node in names],
        float_layers=[s.weight for s in sites if s.node not in names],
        int8_flop_share=round(sum(s.flops for s in chosen) / total, 4),
        selection_psnr_db=round(psnr(measured), 2),
        float_only_psnr_db=round(psnr(base), 2),
        sensitivity={k: float(f"{v:.3g}") for k, v in sensitivity.items()},
        subpixel_upsamplings=upsamplings,
        equalized_layers=[weights[p.consumer] for p in pairs],
    )
    return quantized, report


def export_int8(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    target_psnr: float = DEFAULT_TARGET_PSNR,
    force: bool = False,
    steps: Steps | None = None,
    seed: int | None = None,
) -> Path:
    """Write `out_dir/onnx-int8/` from the verified `out_dir/onnx-fp32/` artifact of the same checkpoint."""
    from export.onnx import GENERATOR_DIR, MODEL_FILE, derived_source, reference_module
    from export.parity import landscape_inputs, module_runner, write_verified
    from export.progress import steps_or_new
    from runtime.fsutil import atomic_dir, ensure_writable_dir, refuse_overwrite, sha256_file
    from training import checkpoint as ckpt_io

    source = ckpt_io.load(checkpoint, components=["generator"])
    fp32_manifest, fp32_model = derived_source(source, out_dir, GENERATOR_DIR)
    folder = Path(out_dir) / INT8_DIR
    refuse_overwrite(folder, force, "artifact folder")
    ensure_writable_dir(out_dir)
    cfg = source.config
    timings: dict[str, float] = {}
    with steps_or_new(steps, STEPS, INT8_DIR) as bar, atomic_dir(folder) as tmp:
        with bar.step("calibrate and select", timings, INT8_DIR):
            model8, report = quantize_generator(
                onnx.load(str(fp32_model)), cfg.image_size, cfg.motion_dim, target_psnr=target_psnr
            )
            onnx.save(model8, str(tmp / MODEL_FILE))
        with bar.step("check", timings, INT8_DIR):
            onnx.checker.check_model(str(tmp / MODEL_FILE), full_check=True)
        manifest = replace(
            fp32_manifest,
            precision="int8",
            model_sha256=sha256_file(tmp / MODEL_FILE),
            parity=None,
            extra={
                "source_onnx": f"../{GENERATOR_DIR}",
                "int8": report.to_dict(),
                "openvino": {"inference_precision": report.float_precision},
            },
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        module = reference_module(source, "generator")
        write_verified(
            tmp, manifest, module_runner(module), bar, timings, INT8_DIR, seed=seed, inputs=landscape_inputs
        )
    log.debug("wrote %s", folder)
    return folder
