"""Atomic writes and writable-path checks shared by checkpoints, artifacts and video writers.

A crash or Ctrl-C must never leave a half-written file under its final name: everything is written
to a temporary sibling first and then renamed into place (rename is atomic on one filesystem).
And nothing a user made is deleted by surprise: `refuse_overwrite` lets --force replace only a folder
of the kind the command itself writes (`FolderKind`), recognised by its marker file and its names.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import OutputPathError


def ensure_writable_dir(directory: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create `directory` if needed and prove it is writable, or raise OutputPathError."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OutputPathError(
            f"The {what} {str(path)!r} is not writable ({exc.strerror or exc}); choose another folder."
        ) from None
    return path


@dataclass(frozen=True)
class FolderKind:
    """A kind of folder a dtvnet command writes, recognised by what it holds: --force replaces a folder
    only when it is of the kind the command makes, so a training run, a data set or a user's own files
    are never deleted by a command that happens to be pointed at them."""

    label: str  # with its article, as a sentence names it: "a checkpoint folder"
    marker: str | None = None  # the file that says what the folder is
    tag: tuple[str, str] | None = None  # (key, value) the marker's JSON object must hold
    entries: tuple[str, ...] = ()  # glob patterns of every other name it may hold at its top level

    def holds(self, folder: Path) -> bool:
        """True if `folder` is one of this kind: its marker (and tag) present, nothing foreign beside it."""
        if self.marker is not None and not _marker_matches(folder / self.marker, self.tag):
            return False
        return not self.foreign(folder)

    def foreign(self, folder: Path) -> list[str]:
        """The names in `folder` that a folder of this kind never holds (sorted)."""
        allowed = (*(() if self.marker is None else (self.marker,)), *self.entries, *_TEMPORARIES)
        return sorted(
            entry.name + ("/" if entry.is_dir() else "")
            for entry in folder.iterdir()
            if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in allowed)
        )


# Names our atomic writers and writability checks leave behind when a process is killed.
_TEMPORARIES = (".*.tmp-*", ".*.old-*", ".write-test-*")

CHECKPOINT_FOLDER = FolderKind(
    "a checkpoint folder",
    "config.json",
    ("format", "dtvnet-checkpoint"),
    ("model.safetensors", "training_state.pt"),
)
TRAINING_RUN = FolderKind(
    "a training run",
    "train_config.json",
    None,
    ("checkpoints", "latest", "metrics.csv", "tensorboard", "eval"),
)
ARTIFACT_FOLDER = FolderKind(
    "an artifact folder", "manifest.json", ("format", "dtvnet-artifact"), ("model.*",)
)
DATA_FOLDER = FolderKind(
    "a synthetic data set",
    "synth.json",
    ("generator", "training.data.synth"),
    ("sky_train", "sky_test", ".flowcache"),
)
FRAMES_FOLDER = FolderKind("a folder of frames", None, None, ("frame_*.png",))
# Every kind, most specific first: what `describe_folder` recognises in a refusal.
FOLDER_KINDS = (CHECKPOINT_FOLDER, TRAINING_RUN, ARTIFACT_FOLDER, DATA_FOLDER, FRAMES_FOLDER)
# The `what` of `refuse_overwrite` that names a folder, and the kind of folder it is.
_KIND_OF_OUTPUT = {
    "checkpoint folder": CHECKPOINT_FOLDER,
    "run folder": TRAINING_RUN,
    "artifact folder": ARTIFACT_FOLDER,
    "Triton model version": ARTIFACT_FOLDER,
    "data folder": DATA_FOLDER,
    "frames folder": FRAMES_FOLDER,
}


def _marker_matches(marker: Path, tag: tuple[str, str] | None) -> bool:
    if not marker.is_file():
        return False
    if tag is None:
        return True
    try:
        data = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get(tag[0]) == tag[1]


def describe_folder(folder: Path, limit: int = 4) -> str:
    """What a folder holds, for a refusal: "a training run (checkpoints/, latest, metrics.csv ...)"."""
    names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir())
    listed = ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")
    found = next((kind for kind in FOLDER_KINDS if kind.holds(folder)), None)
    return f"{found.label} ({listed})" if found is not None else f"files of its own ({listed})"


def refuse_overwrite(
    path: str | os.PathLike[str], force: bool, what: str = "output", kind: FolderKind | None = None
) -> None:
    """Refuse, before any work, to write `path` where that would delete something unasked.

    A file output is replaced only with `force`, never a folder standing at its name. A folder output
    (`kind`, or a `what` that names one: "checkpoint folder", "artifact folder", ...) may be written
    where nothing is or an empty folder is; with `force` it replaces a folder of its own kind, and
    nothing else: a training run, a data set or a user's folder is refused with what it holds.
    """
    target = Path(path)
    kind = kind or _KIND_OF_OUTPUT.get(what)
    if not target.exists() and not target.is_symlink():
        return
    name = str(target)
    if kind is None:
        if target.is_dir():
            raise OutputPathError(
                f"The {what} {name!r} is a folder holding {describe_folder(target)}; pick another path or "
                "delete it yourself."
            )
        if not force:
            raise OutputPathError(f"The {what} {name!r} already exists; pass --force to overwrite it.")
        return
    if target.is_symlink():  # replacing it would move the link, not the folder it points to
        raise OutputPathError(
            f"{name!r} is a symbolic link, not {kind.label}; pick another path or remove the link yourself."
        )
    if not target.is_dir():
        raise OutputPathError(
            f"{name!r} is a file, not {kind.label}; pick another path or delete it yourself."
        )
    if not any(target.iterdir()):
        return  # an empty folder: nothing to lose
    if kind.holds(target):
        if not force:
            raise OutputPathError(f"The {what} {name!r} already exists; pass --force to overwrite it.")
        return
    raise OutputPathError(
        f"{name!r} holds {describe_folder(target)}; --force only replaces {kind.label}; pick another path "
        "or delete it yourself."
    )


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `suffix` defaults to the final file's suffix so that writers which pick a format by extension
    (OpenCV, PIL) see the right one.
    """
    final = Path(path)
    ensure_writable_dir(final.parent)
    fd, tmp_name = tempfile.mkstemp(
        dir=final.parent, prefix=f".{final.name}.tmp-", suffix=final.suffix if suffix is None else suffix
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _default_mode(tmp, 0o666)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; swap it into place only if the block succeeds.

    An existing directory at `path` is replaced. Between the two renames a crash can leave
    `path` missing but `<path>.old-*` present; `recover_dir` puts it back.
    """
    final = Path(path)
    ensure_writable_dir(final.parent)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        yield tmp
        _default_mode(tmp, 0o777)
        if final.exists():
            old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
            old.rmdir()
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _default_mode(path: Path, mode: int) -> None:
    """Give a temporary file or folder the permissions a plain open()/mkdir() would have had
    (mkstemp/mkdtemp make them private to the owner)."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def recover_dir(path: str | os.PathLike[str]) -> bool:
    """If an interrupted `atomic_dir` swap left only `<path>.old-*`, rename it back. True if done."""
    final = Path(path)
    if final.exists():
        return False
    olds = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not olds:
        return False
    os.rename(olds[-1], final)
    return True


def user_cache_dir() -> Path:
    """Where dtvnet caches what it can rebuild (demo exports, engine caches): $XDG_CACHE_HOME/dtvnet,
    else ~/.cache/dtvnet."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dtvnet"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large engines do not load into memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
