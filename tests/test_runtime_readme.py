"""The README and docs/generate.md run as written. README: every command block after the set-up one, in
order, in a fresh copy of the repository (one section's outputs feed the next, none clobbers another's),
then its Python example. docs/generate.md's "Generate" section on its own (a tiny model, the Python API
in full). Blocks fenced as ```sh need a GPU, Docker or a download and are not run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GENERATE_DOC = ROOT / "docs" / "generate.md"


def section(title: str, path: Path = README) -> str:
    """The text of one `## title` section of a Markdown file."""
    return path.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def section_blocks(language: str, title: str = "Generate", path: Path = README) -> list[str]:
    """The `language` code blocks of one section, in order."""
    return re.findall(rf"```{language}\n(.*?)```", section(title, path), flags=re.S)


def blocks(language: str, path: Path = README) -> list[str]:
    """Every `language` code block of a Markdown file, in order."""
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def readme_env(tmp_path: Path) -> dict[str, str]:
    """The environment README commands run in: this venv's `dtvnet` first, a private cache."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def run_lines(commands: str, cwd: Path, env: dict[str, str]) -> list[str]:
    """Run each command of a bash block as written (a line ending in a backslash goes on with the next);
    returns their outputs."""
    printed = []
    for line in commands.replace("\\\n", " ").strip().splitlines():
        result = subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{line}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        printed.append(result.stdout)
    return printed


def fresh_copy(dest: Path) -> Path:
    """The repository's tracked files, as a fresh clone has them."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.mark.slow
def test_readme_runs_in_order_on_a_fresh_copy(tmp_path: Path):
    repo = fresh_copy(tmp_path / "repo")
    env = readme_env(tmp_path)
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@test"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fresh copy"]):
        subprocess.run([*git, *command], cwd=repo, check=True, capture_output=True)
    setup, *commands = blocks("bash")
    assert "pip install" in setup  # .ci/run runs the set-up block itself
    for block in commands:
        run_lines(block, repo, env)
    out = repo / "out"
    for made in ("demo/timelapse.mp4", "demo/timelapse_model.mp4", "clip.mp4", "long.mp4", "moved.webm"):
        assert (out / made).is_file(), made
    assert (out / "cpp-frames" / "frame_000.png").is_file() and (repo / "runs/tiny/eval/eval.md").is_file()
    assert list((out / "bench").glob("*.md")) and (repo / "models" / "dtvnet" / "config.pbtxt").is_file()
    (snippet,) = section_blocks("python")
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=repo, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "frames/s end-to-end" in result.stdout and (out / "hd.mp4").is_file()
    # everything the README made is ignored by git, and no tracked file changed
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True)
    assert status.stdout == "", status.stdout


@pytest.mark.slow
def test_generate_doc_runs_as_written(tmp_path: Path):
    env = readme_env(tmp_path)
    (commands,) = section_blocks("bash", "Generate", GENERATE_DOC)
    run_lines(commands, tmp_path, env)
    assert (tmp_path / "out" / "long.mp4").is_file() and (tmp_path / "out" / "sheet.png").is_file()
    (snippet,) = section_blocks("python", "Generate", GENERATE_DOC)
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "frames/s end-to-end" in result.stdout and (tmp_path / "out" / "stream.mp4").is_file()
