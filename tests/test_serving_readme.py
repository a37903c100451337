"""docs/generate.md's "Serving and large jobs" section runs as written: the local commands directly,
the client commands and Python example against the fake Triton server (tests/fake_triton.py) in place of
127.0.0.1:8000; the docker line is the one `python -m export.triton` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from export.triton import docker_command
from tests.fake_triton import FakeTriton
from tests.test_runtime_readme import GENERATE_DOC, readme_env, run_lines, section, section_blocks

TITLE = "Serving and large jobs"
README_SERVER = "127.0.0.1:8000"


@pytest.mark.slow
def test_serving_section_runs_as_written(tmp_path: Path):
    env = readme_env(tmp_path)
    local, clients = section_blocks("bash", TITLE, GENERATE_DOC)
    printed = run_lines(local, tmp_path, env)
    assert "wrote models/dtvnet " in printed[1] and (tmp_path / "models" / "dtvnet_ofe" / "1").is_dir()
    assert "2 clip(s) written to out/clips" in printed[3] and (tmp_path / "out/clips/landscape.mp4").is_file()
    assert "0 clip(s) written to out/clips, 2 already finished" in printed[4]  # the resumed run

    (docker,) = [line for line in section(TITLE, GENERATE_DOC).splitlines() if line.startswith("docker run")]
    assert docker == docker_command(tmp_path / "models").replace(str(tmp_path), "$PWD")

    with FakeTriton(tmp_path / "models") as server:
        run_lines(clients.replace(README_SERVER, server.address), tmp_path, env)
        (snippet,) = section_blocks("python", TITLE, GENERATE_DOC)
        result = subprocess.run(
            [sys.executable, "-c", snippet.replace(README_SERVER, server.address)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "3 (8, 32, 32, 3)"
    assert (tmp_path / "out/served.mp4").is_file() and (tmp_path / "out/served.gif").is_file()
    assert len(list((tmp_path / "out/served-clips").glob("*.mp4"))) == 2
