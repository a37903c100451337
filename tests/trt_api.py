"""Static checks of TensorRT-touching modules against TensorRT's published Python API (tensorrt-stubs).

No GPU and no TensorRT needed: a misspelt or removed API fails CI here, not on a user's GPU machine.

Two checks, used by tests/test_trt_api.py for every module in its TRT_MODULES list:
- `unresolved_references`: every `trt.X[.Y[.Z]]` chain in the module (module functions, classes,
  enum members, nested classes, inherited members) is declared by the stubs;
- `run_mypy`: mypy against a patched temporary copy of the stubs, which checks the methods and
  attributes used on TensorRT objects (builder, network, parser, engine, context...).

The stubs need patches before mypy can read them; each is listed in `patch_stub_text`.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

STUB_PACKAGES = ("tensorrt", "tensorrt_bindings")
INSTALL = 'pip install --no-deps "tensorrt-stubs==10.13.0.35.1"'


def stub_dirs() -> dict[str, Path]:
    """package -> installed folder holding its .pyi files; missing packages are left out."""
    found = {}
    for package in STUB_PACKAGES:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            if (Path(location) / "__init__.pyi").is_file():
                found[package] = Path(location)
                break
    return found


_IN_PARAM = re.compile(r"([(,]\s*)in(\s*:)")
_BOOL = re.compile(r"(?<![\w.])bool\b")
_SIGNATURE = re.compile(r"^(\s*def \w+\()(.*?)(\)\s*->.*)$")


def _compiles(def_line: str) -> bool:
    text = def_line.strip()
    try:
        ast.parse(text + " ..." if text.endswith(":") else text)
    except SyntaxError:
        return False
    return True


def _defaults_in_order(line: str) -> str:
    """Give `= ...` to parameters that follow one with a default (a syntax error otherwise).

    Only lines that do not compile are touched, and only if the fix makes them compile.
    """
    match = _SIGNATURE.match(line)
    if not match or _compiles(line):
        return line
    params, seen_default = [], False
    for param in match.group(2).split(", "):
        if "=" in param:
            seen_default = True
        elif seen_default and not param.startswith("*") and param != "/":
            param += " = ..."
        params.append(param)
    fixed = match.group(1) + ", ".join(params) + match.group(3)
    return fixed if _compiles(fixed) else line


def patch_stub_text(text: str) -> str:
    """The stub fixes mypy needs, none of which changes the declared API:

    1. parameters named `in` (a keyword) become `in_`;
    2. parameters without a default after one with a default get `= ...` (add_scale_nd);
    3. annotations `bool` become `builtins.bool`: the stubs declare a module-level `bool` (the
       DataType trt.bool), which shadows the builtin, turns every `-> bool` method into an unknown
       type and makes mypy treat `if not parser.parse(...)` branches as unreachable (unchecked).
    """
    lines = []
    for line in text.splitlines():
        line = _defaults_in_order(_IN_PARAM.sub(r"\1in_\2", line))
        if not re.match(r"^bool\s*:", line):
            line = _BOOL.sub("builtins.bool", line)
        lines.append(line)
    return "import builtins\n" + "\n".join(lines) + "\n"


def patched_stubs(dest: Path) -> Path:
    """Copy the installed stubs into `dest`, patched; returns `dest` (use it as mypy_path)."""
    dirs = stub_dirs()
    for package, folder in dirs.items():
        for stub in folder.glob("*.pyi"):
            target = dest / package / stub.name
            target.parent.mkdir(parents=True, exist_ok=True)
            text = patch_stub_text(stub.read_text())
            ast.parse(text, filename=str(target))  # a patch that leaves a syntax error fails here
            target.write_text(text)
    return dest


@dataclass
class Api:
    """Names the stubs declare: `tensorrt` module names, and members of each class by dotted name."""

    module: set[str] = field(default_factory=set)
    classes: dict[str, set[str]] = field(default_factory=dict)
    bases: dict[str, list[str]] = field(default_factory=dict)

    def members(self, cls: str) -> set[str]:
        names = set(self.classes.get(cls, set()))
        for base in self.bases.get(cls, []):
            names |= self.members(base)
        return names


def _class_members(node: ast.ClassDef, prefix: str, api: Api) -> None:
    name = f"{prefix}{node.name}"
    members = api.classes.setdefault(name, set())
    api.bases[name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            members.add(item.name)
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members.add(item.target.id)
        if isinstance(item, ast.Assign):
            members.update(t.id for t in item.targets if isinstance(t, ast.Name))
        if isinstance(item, ast.ClassDef):
            _class_members(item, f"{name}.", api)


def declared_api(stub_root: Path) -> Api:
    """Parse the (patched or installed) stubs under `stub_root/<package>/`."""
    api = Api()
    for item in ast.parse((stub_root / "tensorrt" / "__init__.pyi").read_text()).body:
        if isinstance(item, ast.ImportFrom | ast.Import):
            api.module.update((a.asname or a.name).split(".")[0] for a in item.names)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            api.module.add(item.target.id)
        elif isinstance(item, ast.Assign):
            api.module.update(t.id for t in item.targets if isinstance(t, ast.Name))
    for item in ast.parse((stub_root / "tensorrt_bindings" / "tensorrt.pyi").read_text()).body:
        if isinstance(item, ast.ClassDef):
            _class_members(item, "", api)
    return api


def tensorrt_aliases(tree: ast.AST) -> set[str]:
    """Names the module binds to the tensorrt package (`import tensorrt as trt`, anywhere)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update(a.asname or a.name for a in node.names if a.name == "tensorrt")
    return aliases


def tensorrt_references(source: str) -> list[tuple[int, list[str]]]:
    """(line, [X, Y, ...]) for every outermost attribute chain `trt.X.Y...` in the source."""
    tree = ast.parse(source)
    aliases = tensorrt_aliases(tree)
    inner: set[int] = set()
    refs = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        chain, cur = [], node
        while isinstance(cur, ast.Attribute):
            chain.append(cur.attr)
            inner.add(id(cur.value))
            cur = cur.value
        if isinstance(cur, ast.Name) and cur.id in aliases:
            refs.append((node.lineno, chain[::-1]))
    return sorted(refs)


def unresolved_references(module_path: Path, api: Api) -> list[str]:
    """`trt.` chains in the module that the stubs do not declare, as 'file:line trt.X.Y'."""
    problems = []
    for line, chain in tensorrt_references(module_path.read_text()):
        head, rest = chain[0], chain[1:]
        ok = head in api.module
        cls = head if head in api.classes else None
        for name in rest:
            if not ok or cls is None:
                break  # an attribute of a function or value: mypy checks those
            ok = name in api.members(cls)
            cls = f"{cls}.{name}" if f"{cls}.{name}" in api.classes else _base_class(api, cls, name)
        if not ok:
            problems.append(f"{module_path.name}:{line} trt.{'.'.join(chain)}")
    return problems


def _base_class(api: Api, cls: str, name: str) -> str | None:
    """The nested class `name` as declared on `cls` or one of its bases, if it is a class."""
    for owner in [cls, *api.bases.get(cls, [])]:
        if f"{owner}.{name}" in api.classes:
            return f"{owner}.{name}"
    return None


def run_mypy(module_paths: list[Path], stub_root: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """mypy on the modules, with only TensorRT followed (torch and the rest become Any, for speed)."""
    config = workdir / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        "python_version = 3.11\n"
        f"mypy_path = {stub_root}\n"
        "follow_imports = skip\n"
        "ignore_missing_imports = True\n"
        "check_untyped_defs = True\n"
        "warn_unreachable = True\n"
        "cache_dir = " + str(workdir / ".mypy_cache") + "\n"
        "[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]\n"
        "follow_imports = normal\n"
        "ignore_errors = True\n"
    )
    command = [sys.executable, "-m", "mypy", "--config-file", str(config), *map(str, module_paths)]
    return subprocess.run(command, capture_output=True, text=True, check=False)
