"""The bundled demo model: a small DTVNet trained on this project's procedural time-lapses.

`dtvnet demo` runs it on a user's photo without any download. The checkpoint ships as package data in
`training/demo_model/` (our checkpoint folder format: config.json + model.safetensors, generator and
flow encoder). How it was trained and how well it does: `training/MODEL_CARD.md`. Torch-free, so the
runtime can locate the checkpoint without importing torch.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from runtime.errors import CheckpointError

DEMO_MODEL_DIR = "demo_model"


def demo_checkpoint() -> Path:
    """Folder of the bundled demo checkpoint; CheckpointError if the installation lacks it."""
    folder = Path(str(resources.files("training") / DEMO_MODEL_DIR))
    missing = [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"The bundled demo model in {str(folder)!r} lacks {', '.join(missing)}; reinstall dtvnet "
            "(pip install -e .) or pass a checkpoint of your own."
        )
    return folder


if __name__ == "__main__":  # `python -m training.demo`: the folder, for commands that take a checkpoint
    print(demo_checkpoint())
