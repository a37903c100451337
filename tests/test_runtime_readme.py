"""README's "Generate" section runs exactly as written (in a scratch folder, with a private cache)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section_blocks(language: str) -> list[str]:
    section = README.read_text().split("\n## Generate\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_generate_section_runs_as_written(tmp_path: Path):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    (commands,) = section_blocks("bash")
    for line in commands.strip().splitlines():
        result = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
    assert (tmp_path / "out" / "long.mp4").is_file() and (tmp_path / "out" / "sheet.png").is_file()
    (snippet,) = section_blocks("python")
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "frames/s end-to-end" in result.stdout and (tmp_path / "out" / "stream.mp4").is_file()
