"""int8 export: QDQ insertion, FLOP accounting, accuracy-aware layer choice, parity, and the runtime's
choice of OpenVINO for it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from export.calibration import (
    CALIBRATION_SEEDS,
    CHECK_SEED_OFFSET,
    SELECTION_SEEDS,
    check_seeds,
    landscape,
    landscape_batch,
)
from export.graph import conv_transpose_to_subpixel, op_histogram, with_outputs
from export.int8 import (
    MIN_FLOP_SHARE,
    PEAK_TO_PEAK,
    RECIPE,
    candidate_sites,
    change_starts,
    channel_ranges,
    clip_mse,
    conv_sites,
    export_int8,
    quantize_convs,
    quantize_generator,
    select_layers,
    tensor_ranges,
    uint8_params,
)
from export.parity import (
    default_batches,
    default_inputs,
    landscape_inputs,
    onnxruntime_outputs,
    onnxruntime_runner,
)
from export.suffix import FloatCut, reached_nodes
from runtime.errors import ExportError
from runtime.manifest import resolve_artifact
from training.model import generator_flops, preset
from training.model.flops import generator_macs

openvino = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def fp32_model(tiny_exports: Path) -> onnx.ModelProto:
    return onnx.load(str(tiny_exports / "onnx-fp32" / "model.onnx"))


@pytest.fixture(scope="module")
def int8_dir(realistic_tiny: Path, tiny_exports: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8")
    shutil.copytree(tiny_exports / "onnx-fp32", out / "onnx-fp32")
    return export_int8(realistic_tiny, out, seed=0)


def test_conv_flops_match_the_analytic_count(fp32_model):
    config = preset("tiny")
    macs = generator_macs(config)
    linear = config.motion_dim**2 * (config.mapping_layers + config.motion_blocks * config.style_layers)
    linear += config.motion_blocks * config.motion_dim * 2 * config.ngf
    sites = conv_sites(fp32_model)
    assert len(sites) == 2 + 1 + 2 * config.content_blocks + 1 + 2 * config.motion_blocks + 1 + 4
    assert sum(s.flops for s in sites) == generator_flops(config) - 2 * linear
    assert sum(s.flops for s in sites if "content" in s.weight) == 2 * macs["content"]


def test_uint8_parameters_cover_the_range_and_zero():
    scale, zero = uint8_params(-1.0, 3.0)
    assert scale == pytest.approx(4 / 255) and zero == round(1 / scale)
    assert uint8_params(0.5, 2.0) == (pytest.approx(2 / 255), 0)  # zero stays representable
    assert uint8_params(-2.0, -1.0) == (pytest.approx(2 / 255), 255)
    assert uint8_params(0.0, 0.0) == (1.0, 0)  # a dead tensor still gets a valid scale


def test_quantize_convs_rewires_only_the_chosen_layers(fp32_model):
    sites = conv_sites(fp32_model)
    feeds = [landscape_batch(list(CALIBRATION_SEEDS)[:4], 32, 32)]
    ranges = tensor_ranges(channel_ranges(fp32_model, [s.activation for s in sites], feeds))
    chosen = [sites[3], next(s for s in sites if s.op == "ConvTranspose"), sites[-1]]
    model8 = quantize_convs(fp32_model, chosen, ranges)
    onnx.checker.check_model(model8, full_check=True)
    nodes = {n.name: n for n in model8.graph.node}
    inits = {i.name: i for i in model8.graph.initializer}
    producers = {o: n for n in model8.graph.node for o in n.output}
    for site in sites:
        node = nodes[site.node]
        if site in chosen:
            pad = producers.get(node.input[0])
            read = pad.input[0] if pad is not None and pad.op_type == "Pad" else node.input[0]
            assert read.endswith(".x_dq") and node.input[1].endswith(".w_dq")
            assert inits[f"{site.node}.w_q"].data_type == TensorProto.INT8
            if site.bias is not None:
                assert inits[f"{site.node}.b_q"].data_type == TensorProto.INT32
            assert site.weight not in inits  # the float weight is gone
        else:
            assert node.input[1] == site.weight and site.weight in inits
    assert sum(n.op_type == "QuantizeLinear" for n in model8.graph.node) == len(chosen)
    exact, quantized = (onnxruntime_runner(m.SerializeToString()) for m in (fp32_model, model8))
    check = landscape_batch(check_seeds(np.random.default_rng(0), 2), 32, 32)
    error = np.abs(exact(check) - quantized(check))
    assert 0 < error.mean() < 0.02  # quantized, and close


def test_quantizing_before_a_reflection_pad_is_the_same_arithmetic(fp32_model):
    """The pad then copies uint8; unless something else reads the padded floats, which must stay exact."""
    sites = [s for s in conv_sites(fp32_model) if "content.blocks" in s.weight]
    feeds = [landscape_batch(list(CALIBRATION_SEEDS)[:4], 32, 32)]
    ranges = tensor_ranges(channel_ranges(fp32_model, [s.activation for s in sites], feeds))
    hoisted = quantize_convs(fp32_model, sites, ranges)
    pads = [n for n in hoisted.graph.node if n.op_type == "Pad"]
    assert len([p for p in pads if p.input[0].endswith(".x_dq")]) == len(sites)  # every block conv
    probe = with_outputs(fp32_model, [s.activation for s in sites])  # the padded floats also an output
    in_place = quantize_convs(probe, sites, ranges)
    assert not any(n.input[0].endswith(".x_dq") for n in in_place.graph.node if n.op_type == "Pad")
    check = landscape_batch(check_seeds(np.random.default_rng(1), 2), 32, 32)
    a, b = (onnxruntime_runner(m.SerializeToString())(check) for m in (hoisted, in_place))
    assert np.abs(a - b).max() < 1e-5


def test_upsampling_as_subpixel_convolution_is_the_same_arithmetic(fp32_model):
    subpixel, count = conv_transpose_to_subpixel(fp32_model)
    onnx.checker.check_model(subpixel, full_check=True)
    ops = op_histogram(subpixel)
    assert count == 1 and "ConvTranspose" not in ops and ops["DepthToSpace"] == 1
    before, after = conv_sites(fp32_model), conv_sites(subpixel)
    assert [s.weight for s in before] == [s.weight for s in after]  # same layers, same names
    assert [s.flops for s in before] == [s.flops for s in after]  # the zero taps are not counted
    check = landscape_batch(check_seeds(np.random.default_rng(2), 2), 32, 32)
    a, b = (onnxruntime_runner(m.SerializeToString())(check) for m in (fp32_model, subpixel))
    assert np.abs(a - b).max() < 1e-5


def test_selection_fills_the_room_its_measurement_leaves(fp32_model):
    """Layers alone cost e each, together half the sum: the prediction (the sum) stops at 3 layers; the
    measured errors leave room, and the fill pass adds layers while measurements stay within budget."""
    sites = conv_sites(fp32_model)
    ranges = dict.fromkeys({s.activation for s in sites}, (0.0, 1.0))
    budget = PEAK_TO_PEAK**2 / 10**4  # 40 dB
    each = budget / 3.6
    reference = [np.zeros((2, 8), np.float32)]
    measured: list[int] = []

    def make_runner(model: bytes):
        quantized = sum(n.name.endswith(".q") for n in onnx.ModelProto.FromString(model).graph.node)
        mse = each if quantized == 1 else each * quantized / 2
        measured.append(quantized)
        return lambda feed: reference[0] + np.float32(np.sqrt(mse))

    chosen, _, base, worst = select_layers(fp32_model, sites, ranges, make_runner, [{}], reference, 40.0)
    assert base == 0 and len(chosen) == 6 and worst <= budget
    assert measured[-4:] == [3, 4, 5, 6]  # the greedy choice, then one measured try per added layer
    candidates = sum(s.flops >= MIN_FLOP_SHARE * sum(x.flops for x in sites) for s in sites)
    assert len(measured) == 1 + candidates + 1 + 3  # float only, each alone, greedy, fill


def test_a_model_cut_down_to_what_its_int8_layers_reach_measures_the_same(fp32_model):
    """The selection runs each measured model from the float32 tensors where its changes begin: the same
    per-clip errors as the whole model, from less of the graph."""
    model, _ = conv_transpose_to_subpixel(fp32_model)
    sites = conv_sites(model)
    feeds = [landscape_batch(list(SELECTION_SEEDS)[i : i + 2], 32, 32) for i in (0, 2)]
    ranges = tensor_ranges(channel_ranges(model, [s.activation for s in sites], feeds))
    reference = [onnxruntime_runner(model.SerializeToString())(f) for f in feeds]
    candidates = candidate_sites(sites)
    cut = FloatCut(model, change_starts(model, candidates), feeds, onnxruntime_outputs)
    float_nodes = {n.name for n in model.graph.node}
    decoder = [s for s in candidates if "decoder" in s.weight]
    for chosen in ([candidates[0]], [decoder[-1]], [candidates[3], decoder[0]]):
        quantized = quantize_convs(model, chosen, ranges)
        changed = {n.name for n in quantized.graph.node} - float_nodes
        part = cut.downstream(quantized)
        assert part is not None
        downstream, downstream_feeds = part
        assert len(downstream.graph.node) == len(reached_nodes(quantized.graph, changed))
        whole = clip_mse(onnxruntime_runner(quantized.SerializeToString()), feeds, reference)
        cut_down = clip_mse(onnxruntime_runner(downstream.SerializeToString()), downstream_feeds, reference)
        assert whole.max() > 0
        np.testing.assert_allclose(cut_down, whole, rtol=1e-4)
    last = change_starts(model, decoder[-1:])
    assert len(reached_nodes(model.graph, last)) < len(model.graph.node) / 4  # the end of the graph only
    only_last = FloatCut(model, last, feeds, onnxruntime_outputs)  # holds no tensor the first layer reads
    quantized = quantize_convs(model, candidates[:1], ranges)
    assert only_last.downstream(quantized) is None
    starts = change_starts(model, candidates)  # over a memory budget, the largest tensors are let go
    smaller = FloatCut(model, starts, feeds, onnxruntime_outputs, max_bytes=cut.nbytes - 1)
    assert 0 < smaller.nbytes < cut.nbytes and len(smaller.values[0]) < len(cut.values[0])
    nothing = FloatCut(model, starts, feeds, onnxruntime_outputs, max_bytes=0)
    assert nothing.nbytes == 0 and nothing.downstream(quantized) is None


def test_an_unreachable_target_is_an_error(fp32_model):
    with pytest.raises(ExportError, match="No convolution can be int8 while the frames keep 200 dB"):
        quantize_generator(fp32_model, 32, 32, target_psnr=200.0)


def test_int8_artifact_is_verified_on_landscapes_with_both_engines(int8_dir: Path):
    manifest, model_path = resolve_artifact(int8_dir)
    report = manifest.extra["int8"]
    assert manifest.precision == "int8" and manifest.engine == "onnx"
    from runtime.backends.openvino import bf16_supported

    precision = "bf16" if bf16_supported() else "f32"  # what this CPU computes, as verified
    assert (
        manifest.extra["openvino"] == {"inference_precision": precision}
        and report["float_precision"] == precision
    )
    assert report["int8_layers"] and report["float_layers"]  # tiny: quality allows some, not all
    assert 0 < report["int8_flop_share"] < 1
    assert report["selection_psnr_db"] >= report["target_psnr"]
    parity = manifest.parity
    assert parity["passed"] and parity["inputs"] == "landscape_inputs" and parity["batches"] == [4, 8]
    assert parity["psnr_db"] >= 35.0
    (ov_label,) = parity["extra_checks"]
    assert ov_label.startswith("openvino") and parity["extra_checks"][ov_label]["psnr_db"] >= 35.0
    model = onnx.load(str(model_path))
    int8_weights = {i.name for i in model.graph.initializer if i.data_type == TensorProto.INT8}
    assert len([n for n in int8_weights if n.endswith(".w_q")]) == len(report["int8_layers"])
    assert json.loads((int8_dir / "manifest.json").read_text())["precision"] == "int8"


def test_int8_parity_defaults(int8_dir: Path, tiny_exports: Path):
    int8_manifest, _ = resolve_artifact(int8_dir)
    fp32_manifest, _ = resolve_artifact(tiny_exports / "onnx-fp32")
    assert default_inputs(int8_manifest) is landscape_inputs and default_batches(int8_manifest) == (4, 8)
    assert default_inputs(fp32_manifest).__name__ == "random_inputs" and default_batches(fp32_manifest) == (
        1,
        4,
    )


def test_landscapes_are_deterministic_and_never_calibration_images(tiny_exports: Path):
    a, b = landscape(3), landscape(3)
    landscape.cache_clear()  # and rendered again: the same image
    assert np.array_equal(a, landscape(3)) and not a.flags.writeable
    assert a.dtype == np.uint8 and a.shape == (256, 256, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, landscape(4))
    seeds = check_seeds(np.random.default_rng(1), 50)
    assert min(seeds) >= CHECK_SEED_OFFSET > max(CALIBRATION_SEEDS.stop, SELECTION_SEEDS.stop)
    assert set(CALIBRATION_SEEDS).isdisjoint(SELECTION_SEEDS)
    manifest, _ = resolve_artifact(tiny_exports / "onnx-fp32")
    one = landscape_inputs(manifest, 2, np.random.default_rng(5))
    assert one["image"].shape == (2, 3, 32, 32) and one["motion"].shape == (2, 32)
    assert one["image"].min() >= -1 and one["image"].max() <= 1 and one["image"].std() > 0.1
    assert np.array_equal(one["image"], landscape_inputs(manifest, 2, np.random.default_rng(5))["image"])


def test_runtime_runs_int8_on_openvino_and_onnxruntime(int8_dir: Path, tiny_exports: Path):
    from runtime import Generator

    photo = landscape(9, 64)
    with Generator(int8_dir) as fast, Generator(int8_dir, backend="onnxruntime") as ort_gen:
        assert fast.backend.name == "openvino" and fast.backend.device.endswith(f"{fast.backend.precision})")
        assert ort_gen.backend.name == "onnxruntime"
        frames = np.stack(list(fast.run(photo, seed=3)))
        reference = np.stack(list(ort_gen.run(photo, seed=3)))
    with Generator(tiny_exports / "onnx-fp32") as exact:
        float_frames = np.stack(list(exact.run(photo, seed=3)))
    assert frames.shape == float_frames.shape == (8, 32, 32, 3)
    mse = np.mean((frames.astype(float) - float_frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 33  # uint8 frames, int8 + bf16 against float32
    assert np.abs(reference.astype(int) - float_frames).max() < 64


def test_profiler_times_every_convolution_of_an_int8_artifact(int8_dir: Path, tiny_exports: Path, capsys):
    from benchmarks import layer_profile as profile

    result = profile.profile_artifact(int8_dir, batch=2, runs=1)
    convs = [n for n in result.nodes if n.gflop_per_clip]
    # every convolution's FLOPs are found through the float source graph, int8 ones included
    sites = conv_sites(onnx.load(str(tiny_exports / "onnx-fp32" / "model.onnx")))
    assert sum(n.gflop_per_clip for n in convs) == pytest.approx(sum(s.flops for s in sites) / 1e9)
    assert len(convs) == len(sites) and all(n.gops and n.gops > 0 for n in convs) and result.ms_per_clip > 0
    assert sum(ms for *_, ms in result.by_kernel()) == pytest.approx(sum(n.ms_per_clip for n in result.nodes))
    assert profile.main([str(int8_dir), "--batch", "1", "--runs", "1", "--top", "3"]) == 0
    assert "GOP/s" in capsys.readouterr().out
    assert profile.main([str(int8_dir.parent)]) == 2  # not an artifact: one sentence, no traceback
    assert "error:" in capsys.readouterr().err


def test_benchmark_cache_reexports_int8_made_by_an_older_recipe(int8_dir: Path, tmp_path: Path):
    from benchmarks.artifacts import _current

    manifest, _ = resolve_artifact(int8_dir)
    target = manifest.extra["int8"]["target_psnr"]
    assert manifest.extra["int8"]["recipe"] == RECIPE
    assert _current(int8_dir, manifest.source_sha256, target)
    assert not _current(int8_dir, manifest.source_sha256, target + 1)
    old = tmp_path / "onnx-int8"
    shutil.copytree(int8_dir, old)
    data = json.loads((old / "manifest.json").read_text())
    for recipe, current in ((RECIPE, True), (RECIPE - 1, False)):  # a rewritten manifest still reads
        data["extra"]["int8"]["recipe"] = recipe
        (old / "manifest.json").write_text(json.dumps(data))
        assert _current(old, manifest.source_sha256, target) is current
