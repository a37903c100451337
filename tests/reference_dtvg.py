"""The reference DTVNet generator applied by hand to a reference-format state_dict.

Written with functional ops against the reference code's key names (ARCHITECTURE.md), independent
of `training.model`, so that converter tests compare two separate implementations.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

FIXTURE = Path(__file__).parent / "fixtures" / "official_dtvg_state_dict.tsv"


def reference_keys() -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, dtype) for every row of the reference state_dict listing."""
    rows = []
    for line in FIXTURE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        rows.append((key, dims, dtype))
    return rows


def random_reference_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values of plausible scale for every reference key and shape."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape, dtype in reference_keys():
        if dtype == "torch.int64":
            state[key] = torch.tensor(1000, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith("weight_orig"):
            state[key] = torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # BN weight/bias, running mean, conv/linear bias
            base = 1.0 if key.endswith(".weight") else 0.0
            state[key] = base + 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return state


def reference_forward(sd: dict[str, torch.Tensor], image: torch.Tensor, z: torch.Tensor, frames: int = 32):
    """Eval-mode forward of the reference DTVG (motion vector given already normalized)."""

    def bn(x, p):
        return F.batch_norm(
            x,
            sd[f"{p}.running_mean"],
            sd[f"{p}.running_var"],
            sd[f"{p}.weight"],
            sd[f"{p}.bias"],
            False,
            0.0,
            1e-5,
        )

    def eql(x, p):
        w = sd[f"{p}.linear.weight_orig"]
        return F.linear(x, w * math.sqrt(2.0 / w.shape[1]), sd[f"{p}.linear.bias"])

    def res(x, p):
        y = F.relu(
            bn(
                F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), sd[f"{p}.conv_block.1.weight"]),
                f"{p}.conv_block.2",
            )
        )
        y = bn(
            F.conv2d(F.pad(y, (1, 1, 1, 1), mode="reflect"), sd[f"{p}.conv_block.5.weight"]),
            f"{p}.conv_block.6",
        )
        return x + y

    x = F.relu(bn(F.conv2d(F.pad(image, (2, 2, 2, 2), mode="reflect"), sd["share.1.weight"]), "share.2"))
    x = F.relu(bn(F.conv2d(x, sd["share.4.weight"], stride=2, padding=1), "share.5"))
    shared = F.relu(bn(F.conv2d(x, sd["share.7.weight"], padding=1), "share.8"))
    content = shared
    for i in range(9):
        content = res(content, f"img_path.{i}")
    m = F.relu(bn(F.conv2d(shared, sd["opt_path.conv.0.weight"], padding=1), "opt_path.conv.1"))
    w = z
    for i in (0, 2, 4):
        w = F.leaky_relu(eql(w, f"opt_path.opt.{i}"), 0.2)
    for i in range(6):
        m = res(m, f"opt_path.model_img.{i}")
        s = w
        for j in (0, 2):
            s = F.leaky_relu(eql(s, f"opt_path.model_A.{i}.{j}"), 0.2)
        gamma, beta = eql(s, f"opt_path.model_AdaIN.{i}.style").chunk(2, dim=1)
        m = gamma[..., None, None] * F.instance_norm(m) + beta[..., None, None]
    flows = F.leaky_relu(
        F.conv2d(m, sd["opt_path.model_opt.0.weight"], sd["opt_path.model_opt.0.bias"], padding=1), 0.1
    )
    x = torch.cat([content, flows], dim=1)
    x = F.relu(bn(F.conv2d(x, sd["decoder.0.weight"], padding=1), "decoder.1"))
    x = F.relu(bn(F.conv2d(x, sd["decoder.3.weight"], padding=1), "decoder.4"))
    x = F.relu(
        bn(F.conv_transpose2d(x, sd["decoder.6.weight"], stride=2, padding=1, output_padding=1), "decoder.7")
    )
    x = torch.tanh(
        F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), sd["decoder.10.weight"], sd["decoder.10.bias"])
    )
    b, _, h, wd = x.shape
    return x.view(b, 3, frames, h, wd), flows
