"""README's "Generate" section runs exactly as written (in a scratch folder, with a private cache)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    """The text of one `## title` section of the README."""
    return README.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def section_blocks(language: str, title: str = "Generate") -> list[str]:
    """The `language` code blocks of one README section, in order."""
    return re.findall(rf"```{language}\n(.*?)```", section(title), flags=re.S)


def readme_env(tmp_path: Path) -> dict[str, str]:
    """The environment README commands run in: this venv's `dtvnet` first, a private cache."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def run_lines(commands: str, cwd: Path, env: dict[str, str]) -> list[str]:
    """Run each line of a bash block as written; returns their outputs."""
    printed = []
    for line in commands.strip().splitlines():
        result = subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        printed.append(result.stdout)
    return printed


@pytest.mark.slow
def test_generate_section_runs_as_written(tmp_path: Path):
    env = readme_env(tmp_path)
    (commands,) = section_blocks("bash")
    run_lines(commands, tmp_path, env)
    assert (tmp_path / "out" / "long.mp4").is_file() and (tmp_path / "out" / "sheet.png").is_file()
    (snippet,) = section_blocks("python")
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "frames/s end-to-end" in result.stdout and (tmp_path / "out" / "stream.mp4").is_file()
