"""The PyTorch DTVNet: parameter counts, shapes, determinism, batch independence, export-friendliness."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.model import (
    Discriminator,
    DTVNetConfig,
    FlowEncoder,
    Generator,
    batch_standardize,
    build_models,
    generator_flops,
    preset,
)
from training.model.flops import generator_macs
from training.model.layers import AdaIN, EqualLinear, instance_norm


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def paper_models():
    return build_models(preset("paper"), seed=0)


def test_paper_parameter_counts(paper_models):
    generator, flow_encoder, discriminator = paper_models
    assert n_params(generator) == 8_336_800
    assert n_params(flow_encoder) == 19_797_376
    assert n_params(discriminator) == 11_162_112


def test_paper_is_the_default_config():
    assert DTVNetConfig() == preset("paper")
    assert Generator().config == preset("paper")


def test_paper_shapes(paper_models):
    generator, flow_encoder, discriminator = (m.eval() for m in paper_models)
    with torch.no_grad():
        out = generator(torch.rand(1, 3, 128, 128) * 2 - 1, torch.randn(1, 512))
        assert out.video.shape == (1, 3, 32, 128, 128)
        assert out.flows.shape == (1, 2, 32, 64, 64)
        assert out.video.abs().max() <= 1.0
        assert flow_encoder(torch.randn(1, 2, 32, 128, 128)).shape == (1, 512)
        assert discriminator(out.video).shape == (1,)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_preset_shapes(name):
    cfg = preset(name)
    g, o, d = (m.eval() for m in build_models(cfg, seed=1))
    s, t = cfg.image_size, cfg.frames
    with torch.no_grad():
        out = g(torch.zeros(3, 3, s, s), torch.randn(3, cfg.motion_dim))
        assert out.video.shape == (3, 3, t, s, s)
        assert out.flows.shape == (3, 2, t, s // 2, s // 2)
        assert o(torch.randn(3, 2, t, s, s)).shape == (3, cfg.motion_dim)
        assert d(out.video).shape == (3,)


def test_video_channel_layout_is_colour_major():
    """Decoder channel c*T + t is colour c of frame t (ARCHITECTURE.md, step 4)."""
    cfg = preset("tiny")
    g = Generator(cfg).eval()
    captured = {}
    g.decoder.register_forward_hook(lambda _m, _i, out: captured.setdefault("x", out))
    with torch.no_grad():
        video = g(torch.zeros(1, 3, 32, 32), torch.randn(1, cfg.motion_dim)).video
    raw = captured["x"]
    for colour in range(3):
        for t in (0, cfg.frames - 1):
            assert torch.equal(video[0, colour, t], raw[0, colour * cfg.frames + t])


def test_flows_layout_matches_flow_head_channels():
    """Flow-head channels 2t and 2t+1 are (u, v) of frame t."""
    cfg = preset("tiny")
    g = Generator(cfg).eval()
    captured = {}
    g.motion.register_forward_hook(lambda _m, _i, out: captured.setdefault("x", out))
    with torch.no_grad():
        flows = g(torch.zeros(1, 3, 32, 32), torch.randn(1, cfg.motion_dim)).flows
    raw = captured["x"]
    assert torch.equal(flows[0, 0, 3], raw[0, 6]) and torch.equal(flows[0, 1, 3], raw[0, 7])


def test_same_seed_same_model_and_output():
    cfg = preset("tiny")
    a = build_models(cfg, seed=7)[0].eval()
    b = build_models(cfg, seed=7)[0].eval()
    c = build_models(cfg, seed=8)[0].eval()
    image, motion = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, cfg.motion_dim)
    with torch.no_grad():
        assert torch.equal(a(image, motion).video, b(image, motion).video)
        assert torch.equal(a(image, motion).video, a(image, motion).video)
        assert not torch.equal(a(image, motion).video, c(image, motion).video)


def _with_trained_norms(module: nn.Module) -> nn.Module:
    """Move BN statistics away from their (0, 1) init so that eval mode is a real test."""
    gen = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
            m.running_mean.normal_(0.0, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
    return module.eval()


@pytest.mark.parametrize("name", ["tiny", "paper"])
def test_each_sample_is_independent_of_its_batch(name):
    # float64, so that kernel rounding (which varies with batch size) stays far below the bound.
    cfg = preset(name)
    g = _with_trained_norms(Generator(cfg)).double()
    s = cfg.image_size
    image = torch.rand(3, 3, s, s, dtype=torch.float64) * 2 - 1
    motion = torch.randn(3, cfg.motion_dim, dtype=torch.float64)
    with torch.no_grad():
        batch = g(image, motion)
        for i in range(3):
            alone = g(image[i : i + 1], motion[i : i + 1])
            torch.testing.assert_close(batch.video[i : i + 1], alone.video, atol=1e-9, rtol=0)
            torch.testing.assert_close(batch.flows[i : i + 1], alone.flows, atol=1e-9, rtol=0)
        # Changing one sample's motion leaves the others untouched.
        other = motion.clone()
        other[0] = torch.randn(cfg.motion_dim, dtype=torch.float64)
        changed = g(image, other).video
    torch.testing.assert_close(changed[1:], batch.video[1:], atol=1e-9, rtol=0)
    assert not torch.allclose(changed[0], batch.video[0])


def test_motion_vector_changes_the_video_at_batch_one():
    """The reference's in-model batch standardization zeroed the vector at batch 1; ours must not."""
    cfg = preset("tiny")
    g = Generator(cfg).eval()
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        a = g(image, torch.randn(1, cfg.motion_dim)).video
        b = g(image, torch.randn(1, cfg.motion_dim)).video
    assert (a - b).abs().max() > 1e-4


def test_batch_standardize_is_training_side_and_standardizes():
    f = torch.randn(16, 8) * 3 + 5
    z = batch_standardize(f)
    torch.testing.assert_close(z.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(8), atol=1e-3, rtol=0)
    assert torch.equal(batch_standardize(f[:1]), torch.zeros(1, 8))  # the reference's batch-1 collapse


def test_flow_encoder_normalize_is_per_sample_and_uses_stored_moments():
    cfg = preset("tiny")
    enc = FlowEncoder(cfg)
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(8000, cfg.motion_dim, generator=gen) * 2.0 + 3.0
    for chunk in data.split(8):  # default momentum 0.01: an average over about 1,600 samples
        enc.update_motion_stats(chunk)
    torch.testing.assert_close(enc.motion_mean, torch.full((cfg.motion_dim,), 3.0), atol=0.25, rtol=0)
    torch.testing.assert_close(enc.motion_var, torch.full((cfg.motion_dim,), 4.0), atol=0.8, rtol=0)
    x = torch.randn(5, cfg.motion_dim)
    torch.testing.assert_close(enc.normalize(x)[2:3], enc.normalize(x[2:3]))
    enc.eval()
    flows = torch.randn(3, 2, cfg.frames, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc.encode(flows)[1:2], enc.encode(flows[1:2]), atol=1e-5, rtol=0)


def test_instance_norm_matches_torch():
    x = torch.randn(3, 5, 9, 7) * 4 + 2
    torch.testing.assert_close(instance_norm(x), F.instance_norm(x), atol=1e-5, rtol=1e-5)


def test_adain_starts_as_plain_instance_norm():
    adain = AdaIN(6, 16)
    nn.init.zeros_(adain.affine.weight)
    x = torch.randn(2, 6, 5, 5)
    torch.testing.assert_close(adain(x, torch.randn(2, 16)), instance_norm(x))


def test_equal_linear_scale_and_fold():
    layer = EqualLinear(64, 8)
    x = torch.randn(4, 64)
    expected = F.linear(x, layer.weight * (2.0 / 64) ** 0.5, layer.bias)
    torch.testing.assert_close(layer(x), expected)
    g = Generator(preset("tiny")).eval()
    image, motion = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 32)
    with torch.no_grad():
        before = g(image, motion).video
        after = g.fold_equalized_lr()(image, motion).video
    torch.testing.assert_close(before, after, atol=1e-5, rtol=0)
    assert all(m.scale == 1.0 for m in g.modules() if isinstance(m, EqualLinear))


def _hook_macs(model: Generator, cfg: DTVNetConfig) -> int:
    """Count conv/linear multiply-adds by running the model with hooks."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.ConvTranspose2d):
            total += inputs[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Conv2d):
            total += out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, EqualLinear):
            total += out.numel() * m.weight.shape[1]

    for m in model.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, cfg.image_size, cfg.image_size), torch.zeros(1, cfg.motion_dim))
    return total


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_analytic_flops_match_a_counted_forward(name):
    cfg = preset(name)
    assert sum(generator_macs(cfg).values()) == _hook_macs(Generator(cfg), cfg)


def test_paper_flops_and_content_share():
    cfg = preset("paper")
    assert 38.4e9 < generator_flops(cfg) < 38.7e9  # ARCHITECTURE.md: about 38.6 GFLOP
    macs = generator_macs(cfg)
    assert 0.55 < macs["content"] / sum(macs.values()) < 0.57  # "about 56%"


@pytest.mark.parametrize(
    "kwargs",
    [{"frames": 24}, {"image_size": 100}, {"ngf": 0}, {"motion_blocks": -1}],
)
def test_invalid_configs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        DTVNetConfig(**kwargs)


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="paper"):
        preset("huge")
    with pytest.raises(ValueError, match="bogus"):
        DTVNetConfig.from_dict({"bogus": 1})


def test_discriminator_uses_instance_norm_without_params():
    d = Discriminator(preset("paper"))
    norms = [m for m in d.modules() if isinstance(m, nn.InstanceNorm3d)]
    assert len(norms) == 4 and all(not m.affine for m in norms)
    slopes = [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2, 0.2, 0.2, 0.2, 0.01]
