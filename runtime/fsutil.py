"""Atomic writes and writable-path checks shared by checkpoints, artifacts and video writers.

A crash or Ctrl-C must never leave a half-written file under its final name: everything is written
to a temporary sibling first and then renamed into place (rename is atomic on one filesystem).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
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


def refuse_overwrite(path: str | os.PathLike[str], force: bool, what: str = "output") -> None:
    """Raise OutputPathError if `path` exists and `force` is not set."""
    if Path(path).exists() and not force:
        raise OutputPathError(f"The {what} {str(path)!r} already exists; pass --force to overwrite it.")


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
