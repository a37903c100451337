"""Every TensorRT API our code calls exists in TensorRT's published Python API (tensorrt-stubs)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.trt_api import (
    INSTALL,
    declared_api,
    patch_stub_text,
    patched_stubs,
    run_mypy,
    stub_dirs,
    tensorrt_references,
    unresolved_references,
)

ROOT = Path(__file__).resolve().parents[1]
# Modules that touch TensorRT; add each new one here (e.g. runtime/backends/tensorrt.py).
TRT_MODULES = ["export/trt/__init__.py", "runtime/backends/tensorrt.py"]

MISSPELT = """
from __future__ import annotations
import tensorrt as trt

def build(path: str) -> bytes:
    logger = trt.Logger(trt.Logger.WARNNG)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(path):
        raise RuntimeError(parser.get_error(0).desc() + str(parser.num_erors))
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    return bytes(builder.build_serialised_network(network, config))
"""


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if set(stub_dirs()) != {"tensorrt", "tensorrt_bindings"}:
        pytest.skip(f"tensorrt-stubs is not installed ({INSTALL})")
    return patched_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.mark.parametrize("module", TRT_MODULES)
def test_every_tensorrt_name_is_declared(module: str, stubs: Path):
    path = ROOT / module
    assert tensorrt_references(path.read_text()), f"{module} uses no trt. names; is it in the right list?"
    assert unresolved_references(path, declared_api(stubs)) == []


@pytest.mark.parametrize("module", TRT_MODULES)
def test_mypy_against_the_published_api(module: str, stubs: Path, tmp_path: Path):
    result = run_mypy([ROOT / module], stubs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checks_catch_misspelt_calls(stubs: Path, tmp_path: Path):
    bad = tmp_path / "bad_trt.py"
    bad.write_text(MISSPELT)
    assert unresolved_references(bad, declared_api(stubs)) == ["bad_trt.py:6 trt.Logger.WARNNG"]
    out = run_mypy([bad], stubs, tmp_path).stdout
    assert '"OnnxParser" has no attribute "num_erors"' in out  # only checked once `bool` is patched
    assert '"Builder" has no attribute "build_serialised_network"' in out


def test_stub_patches_make_the_stubs_parse():
    originals = {f: f.read_text() for d in stub_dirs().values() for f in d.glob("*.pyi")}
    if not originals:
        pytest.skip(f"tensorrt-stubs is not installed ({INSTALL})")
    broken = [f.name for f, text in originals.items() if not _parses(text)]
    assert broken, "the stubs parse unpatched now: drop the patches that are no longer needed"
    assert all(_parses(patch_stub_text(text)) for text in originals.values())
    patched = patch_stub_text("bool: DataType\ndef f(self, in: list, a: int = 1, b: int) -> bool: ...\n")
    assert "def f(self, in_: list, a: int = 1, b: int = ...) -> builtins.bool:" in patched
    assert "\nbool: DataType\n" in patched


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True
