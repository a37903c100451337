"""Checkpoints: our format, and conversion of the reference code's `DTV_G.pth`.

A checkpoint is a folder, written atomically (built beside its final name, then renamed):

    ckpt/
      config.json          format tag, model config, step, components, sha256 of the weights
      model.safetensors    weights of each component, keys prefixed "generator.", "flow_encoder.", ...
      training_state.pt    optional: optimizer/scheduler/RNG state for resuming (torch.save)

Usage:
    python -m training.checkpoint init OUT [--preset paper] [--seed 0]
    python -m training.checkpoint convert DTV_G.pth OUT
    python -m training.checkpoint info CKPT
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from runtime.errors import CheckpointError
from runtime.fsutil import atomic_dir, recover_dir, refuse_overwrite, sha256_file
from training.model import Discriminator, DTVNetConfig, FlowEncoder, Generator, build_models, preset

log = logging.getLogger(__name__)

FORMAT = "dtvnet-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_STATE_FILE = "training_state.pt"
COMPONENTS: dict[str, type[nn.Module]] = {
    "generator": Generator,
    "flow_encoder": FlowEncoder,
    "discriminator": Discriminator,
}


@dataclass
class Checkpoint:
    """A loaded checkpoint: config, step and the state_dict of each component it holds."""

    path: Path
    config: DTVNetConfig
    step: int
    state: dict[str, dict[str, torch.Tensor]]
    metadata: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""

    @property
    def components(self) -> list[str]:
        return list(self.state)

    def build(self, component: str, device: str | torch.device = "cpu") -> nn.Module:
        """Instantiate one component with its weights, in eval mode."""
        if component not in self.state:
            raise CheckpointError(
                f"Checkpoint {str(self.path)!r} has no {component} (it holds {', '.join(self.state)}); "
                "use a checkpoint written by `dtvnet train`."
            )
        module = COMPONENTS[component](self.config)
        _load_state(module, self.state[component], f"{component} of {str(self.path)!r}")
        return module.to(device).eval()

    def generator(self, device: str | torch.device = "cpu") -> Generator:
        return self.build("generator", device)  # type: ignore[return-value]

    def flow_encoder(self, device: str | torch.device = "cpu") -> FlowEncoder:
        return self.build("flow_encoder", device)  # type: ignore[return-value]

    def discriminator(self, device: str | torch.device = "cpu") -> Discriminator:
        return self.build("discriminator", device)  # type: ignore[return-value]


def save(
    path: str | Path,
    config: DTVNetConfig,
    *,
    generator: nn.Module,
    flow_encoder: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    step: int = 0,
    metadata: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically; an existing folder at `path` is replaced."""
    modules = {"generator": generator, "flow_encoder": flow_encoder, "discriminator": discriminator}
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        if module is None:
            continue
        module = getattr(module, "module", module)  # unwrap DistributedDataParallel
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu").contiguous()
    components = [name for name, module in modules.items() if module is not None]
    final = Path(path)
    with atomic_dir(final) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        if training_state is not None:
            torch.save(dict(training_state), tmp / TRAINING_STATE_FILE)
        info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "step": int(step),
            "components": components,
            "weights_sha256": sha256_file(tmp / WEIGHTS_FILE),
            "torch_version": torch.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "metadata": dict(metadata or {}),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return final


def checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder for `path` (the folder itself, or its config.json / model.safetensors)."""
    p = Path(path)
    if p.name in {CONFIG_FILE, WEIGHTS_FILE, TRAINING_STATE_FILE} and p.parent.is_dir():
        p = p.parent
    if not p.exists() and recover_dir(p):
        log.warning("recovered %s from an interrupted save", p)
    if not p.exists():
        raise CheckpointError(f"Checkpoint {str(p)!r} does not exist; check the path.")
    if p.is_file():
        hint = (
            f"it looks like a reference PyTorch file: convert it with `dtvnet checkpoint convert {p} OUT_DIR`"
            if p.suffix in {".pth", ".pt"}
            else f"a dtvnet checkpoint is a folder with {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
        raise CheckpointError(f"{str(p)!r} is not a dtvnet checkpoint; {hint}.")
    if not (p / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{str(p)!r} is not a dtvnet checkpoint (no {CONFIG_FILE}); a checkpoint folder holds "
            f"{CONFIG_FILE} and {WEIGHTS_FILE}."
        )
    return p


def read_info(path: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint, validated (format tag, version, config fields)."""
    folder = checkpoint_dir(path)
    where = str(folder / CONFIG_FILE)
    try:
        info = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{where!r} is not readable JSON ({exc}); the checkpoint is damaged.") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{where!r} is not a dtvnet checkpoint config (no format tag {FORMAT!r}).")
    if info.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{where!r} has checkpoint format_version {info.get('format_version')!r}; this dtvnet reads "
            f"{FORMAT_VERSION}."
        )
    try:
        info["config"] = DTVNetConfig.from_dict(info["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where!r} has an invalid model config ({exc}).") from None
    return info


def load(
    path: str | Path,
    *,
    expect_config: DTVNetConfig | None = None,
    components: Sequence[str] | None = None,
) -> Checkpoint:
    """Load a checkpoint folder (weights on CPU). Raises CheckpointError / ConfigMismatchError."""
    folder = checkpoint_dir(path)
    info = read_info(folder)
    config: DTVNetConfig = info["config"]
    if expect_config is not None:
        expect_config.check_same(config, f"Checkpoint {str(folder)!r}")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(
            f"Checkpoint {str(folder)!r} has no {WEIGHTS_FILE}; the checkpoint is incomplete."
        )
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{str(weights)!r} is not a readable safetensors file ({exc}); the checkpoint is damaged."
        ) from None
    wanted = list(components) if components is not None else list(info.get("components", []))
    state: dict[str, dict[str, torch.Tensor]] = {}
    for name in wanted:
        prefix = f"{name}."
        part = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not part:
            raise CheckpointError(
                f"Checkpoint {str(folder)!r} has no {name} weights (it holds "
                f"{', '.join(info.get('components', []))})."
            )
        state[name] = part
    return Checkpoint(
        path=folder,
        config=config,
        step=int(info.get("step", 0)),
        state=state,
        metadata=info.get("metadata", {}),
        weights_sha256=info.get("weights_sha256", ""),
    )


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The generator of a checkpoint folder, in eval mode on `device`."""
    return load(path, components=["generator"]).generator(device)


def load_training_state(path: str | Path) -> dict[str, Any] | None:
    """Optimizer/scheduler/RNG state saved for resuming, or None if the checkpoint has none."""
    file = checkpoint_dir(path) / TRAINING_STATE_FILE
    if not file.is_file():
        return None
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on foreign or malformed files
        raise CheckpointError(f"{str(file)!r} is not a readable training state ({exc}).") from None


def _load_state(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """load_state_dict with a one-sentence error listing missing, unexpected and misshapen keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or misshapen:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if items:
                more = f" and {len(items) - 3} more" if len(items) > 3 else ""
                parts.append(f"{label}: {', '.join(items[:3])}{more}")
        raise CheckpointError(
            f"The weights of {where} do not fit its model configuration ({'; '.join(parts)})."
        )
    module.load_state_dict(state)


# ---------------------------------------------------------------------------------------------
# Reference DTV_G.pth -> our generator
# ---------------------------------------------------------------------------------------------

_RES = {"1": "conv1", "2": "bn1", "5": "conv2", "6": "bn2"}
_ENC = {"1": "conv1", "2": "bn1", "4": "conv2", "5": "bn2", "7": "conv3", "8": "bn3"}
_DEC = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "up", "7": "bn3", "10": "out_conv"}
_RULES: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"share\.(\d+)\.(.+)"), lambda m: f"encoder.{_ENC[m[1]]}.{m[2]}"),
    (
        re.compile(r"img_path\.(\d+)\.conv_block\.(\d+)\.(.+)"),
        lambda m: f"content.blocks.{m[1]}.{_RES[m[2]]}.{m[3]}",
    ),
    (re.compile(r"opt_path\.conv\.0\.(.+)"), lambda m: f"motion.image_conv.{m[1]}"),
    (re.compile(r"opt_path\.conv\.1\.(.+)"), lambda m: f"motion.image_bn.{m[1]}"),
    (re.compile(r"opt_path\.opt\.(\d+)\.linear\.(.+)"), lambda m: f"motion.mapping.{m[1]}.{m[2]}"),
    (
        re.compile(r"opt_path\.model_img\.(\d+)\.conv_block\.(\d+)\.(.+)"),
        lambda m: f"motion.blocks.{m[1]}.{_RES[m[2]]}.{m[3]}",
    ),
    (
        re.compile(r"opt_path\.model_A\.(\d+)\.(\d+)\.linear\.(.+)"),
        lambda m: f"motion.styles.{m[1]}.{m[2]}.{m[3]}",
    ),
    (
        re.compile(r"opt_path\.model_AdaIN\.(\d+)\.style\.linear\.(.+)"),
        lambda m: f"motion.adains.{m[1]}.affine.{m[2]}",
    ),
    (re.compile(r"opt_path\.model_opt\.0\.(.+)"), lambda m: f"motion.flow_head.{m[1]}"),
    (re.compile(r"decoder\.(\d+)\.(.+)"), lambda m: f"decoder.{_DEC[m[1]]}.{m[2]}"),
]


def reference_key(key: str) -> str:
    """Our generator's key for a reference DTVG key (EqualLinear `weight_orig` becomes `weight`)."""
    for pattern, target in _RULES:
        match = pattern.fullmatch(key)
        if match:
            try:
                return re.sub(r"\.weight_orig$", ".weight", target(match))
            except KeyError:
                break
    raise KeyError(key)


def read_reference_state_dict(pth: str | Path) -> dict[str, torch.Tensor]:
    """A reference `DTV_G.pth` as a flat state_dict, loaded with weights_only=True."""
    p = Path(pth)
    if not p.is_file():
        raise CheckpointError(f"Reference checkpoint {str(p)!r} does not exist; check the path.")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on foreign or malformed files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{str(p)!r} is not a PyTorch state_dict that can be loaded safely ({first[:200]}); "
            "save the reference generator with torch.save(model.state_dict(), path)."
        ) from None
    for wrapper in ("state_dict", "model", "netG", "G", "generator"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{str(p)!r} does not hold a generator state_dict (a dict of tensors).")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def infer_reference_config(state: Mapping[str, torch.Tensor]) -> DTVNetConfig:
    """The generator configuration implied by reference weights (paper values for the rest)."""
    try:
        ngf = state["share.1.weight"].shape[0]
        motion_dim = state["opt_path.opt.0.linear.weight_orig"].shape[0]
        frames = state["decoder.10.weight"].shape[0] // 3
    except KeyError as exc:
        raise CheckpointError(f"Reference state_dict lacks {exc}; it is not a DTVNet generator.") from None

    def count(pattern: str) -> int:
        return len({m[1] for k in state if (m := re.match(pattern, k))})

    base = DTVNetConfig()
    return DTVNetConfig(
        image_size=base.image_size,
        frames=frames,
        ngf=ngf,
        motion_dim=motion_dim,
        content_blocks=count(r"img_path\.(\d+)\."),
        motion_blocks=count(r"opt_path\.model_img\.(\d+)\."),
        mapping_layers=count(r"opt_path\.opt\.(\d+)\."),
        style_layers=count(r"opt_path\.model_A\.0\.(\d+)\."),
    )


def convert_reference_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename every reference key to ours; unknown keys are an error, not silently dropped."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        try:
            converted[reference_key(key)] = value
        except KeyError:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"Reference state_dict has {len(unknown)} key(s) that are not DTVNet generator weights "
            f"({', '.join(unknown[:3])}); is it the generator (DTV_G.pth)?"
        )
    return converted


def convert_reference(
    pth: str | Path, out: str | Path, *, force: bool = False, image_size: int = 128
) -> Path:
    """Convert a reference DTV_G.pth into a dtvnet checkpoint folder holding the generator."""
    refuse_overwrite(out, force, "checkpoint folder")
    state = read_reference_state_dict(pth)
    config = infer_reference_config(state)
    if image_size != config.image_size:
        config = DTVNetConfig.from_dict({**config.to_dict(), "image_size": image_size})
    generator = Generator(config)
    _load_state(generator, convert_reference_state_dict(state), f"reference checkpoint {str(pth)!r}")
    return save(
        out,
        config,
        generator=generator,
        metadata={
            "source": "reference DTV_G.pth",
            "source_file": Path(pth).name,
            "source_sha256": sha256_file(pth),
        },
    )


def init_checkpoint(out: str | Path, config: DTVNetConfig, *, seed: int = 0, force: bool = False) -> Path:
    """A freshly initialized (untrained) checkpoint with all three components."""
    refuse_overwrite(out, force, "checkpoint folder")
    generator, flow_encoder, discriminator = build_models(config, seed=seed)
    return save(
        out,
        config,
        generator=generator,
        flow_encoder=flow_encoder,
        discriminator=discriminator,
        metadata={"source": f"random init, seed {seed}"},
    )


INFERENCE_COMPONENTS = ("generator", "flow_encoder")
# --force replaces only a checkpoint folder (runtime.fsutil.refuse_overwrite): never a training run,
# an artifact or a folder of the user's.
FORCE_HELP = "replace a checkpoint folder already at OUT (any other folder is refused)"


def strip_checkpoint(
    path: str | Path,
    out: str | Path,
    *,
    components: Sequence[str] = INFERENCE_COMPONENTS,
    force: bool = False,
) -> Path:
    """A copy of a checkpoint with only `components` (by default what inference needs: no
    discriminator, no optimizer state), for shipping; config, step and metadata are kept."""
    refuse_overwrite(out, force, "checkpoint folder")
    ckpt = load(path, components=[c for c in components if c in read_info(path).get("components", [])])
    modules = {name: ckpt.build(name) for name in ckpt.components}
    metadata = {
        **ckpt.metadata,
        "stripped_from": str(ckpt.path),
        "source_weights_sha256": ckpt.weights_sha256,
    }
    return save(out, ckpt.config, step=ckpt.step, metadata=metadata, **modules)  # type: ignore[arg-type]


def describe(path: str | Path) -> str:
    """Human-readable summary of a checkpoint."""
    ckpt = load(path)
    lines = [f"checkpoint  {ckpt.path}", f"step        {ckpt.step}"]
    for name, state in ckpt.state.items():
        params = sum(v.numel() for k, v in state.items() if v.is_floating_point() and "running_" not in k)
        lines.append(f"{name:<12}{len(state)} tensors, {params:,} values")
    lines.append(f"sha256      {ckpt.weights_sha256}")
    lines.append("config      " + json.dumps(ckpt.config.to_dict()))
    if ckpt.metadata:
        lines.append("metadata    " + json.dumps(ckpt.metadata))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtvnet checkpoint", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="write a freshly initialized checkpoint")
    p_init.add_argument("out", type=Path)
    p_init.add_argument("--preset", default="paper", help="model preset: paper, small, tiny")
    p_init.add_argument("--seed", type=int, default=0)
    p_init.add_argument("--force", action="store_true", help=FORCE_HELP)
    p_conv = sub.add_parser("convert", help="convert a reference DTV_G.pth into a dtvnet checkpoint")
    p_conv.add_argument("pth", type=Path)
    p_conv.add_argument("out", type=Path)
    p_conv.add_argument("--image-size", type=int, default=128, help="resolution the weights were trained at")
    p_conv.add_argument("--force", action="store_true", help=FORCE_HELP)
    p_strip = sub.add_parser("strip", help="copy a checkpoint with only what inference needs (for shipping)")
    p_strip.add_argument("path", type=Path)
    p_strip.add_argument("out", type=Path)
    p_strip.add_argument("--force", action="store_true", help=FORCE_HELP)
    p_info = sub.add_parser("info", help="describe a checkpoint")
    p_info.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    if args.command == "init":
        try:
            config = preset(args.preset)
        except ValueError as exc:
            parser.error(str(exc))
        print(f"wrote {init_checkpoint(args.out, config, seed=args.seed, force=args.force)}")
    elif args.command == "convert":
        print(f"wrote {convert_reference(args.pth, args.out, force=args.force, image_size=args.image_size)}")
    elif args.command == "strip":
        print(f"wrote {strip_checkpoint(args.path, args.out, force=args.force)}")
    else:
        print(describe(args.path))
    return 0


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
