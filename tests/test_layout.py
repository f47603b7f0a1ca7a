"""The house: one installed namespace, the folder tree is the package tree, imports point one way.

* Every folder of ``api/ pipeline/ models/ streams/ sample_videos/`` holding Python code is a
  package under ``sharpeyes.`` (``sharpeyes/<folder>`` links to it), and the wheel's only
  top-level package is ``sharpeyes``.
* No module imports a bare ``api``/``pipeline``/… (ruff bans it too, TID251).
* The layering of docs/LAYOUT.md: ``streams`` and ``models`` never import ``sharpeyes.api``;
  ``pipeline`` never imports ``sharpeyes.api``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("api", "pipeline", "models", "streams", "sample_videos")


def source_packages() -> set[str]:
    out = set()
    for top in FOLDERS:
        for d, _, files in os.walk(REPO / top):
            if "__pycache__" in d:
                continue
            if "__init__.py" in files:
                rel = Path(d).relative_to(REPO)
                out.add("sharpeyes." + ".".join(rel.parts))
    return out


def test_every_folder_is_linked_under_the_namespace() -> None:
    for top in FOLDERS:
        link = REPO / "sharpeyes" / top
        assert link.is_symlink() and link.resolve() == (REPO / top).resolve(), link


def test_every_code_folder_is_a_package() -> None:
    for top in FOLDERS:
        for d, _, files in os.walk(REPO / top):
            if "__pycache__" in d or not any(f.endswith(".py") for f in files):
                continue
            assert "__init__.py" in files, f"{d} holds Python code but is not a package"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_imports_use_the_namespace_and_point_one_way() -> None:
    bad: list[str] = []
    for top in (*FOLDERS, "tests", "benchmarks"):
        for path in (REPO / top).rglob("*.py"):
            for name in _imports(path):
                root = name.split(".")[0]
                if root in FOLDERS:
                    bad.append(f"{path.relative_to(REPO)}: bare import {name}")
                if top in ("streams", "models", "pipeline") and name.startswith("sharpeyes.api"):
                    bad.append(f"{path.relative_to(REPO)}: {top} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.integration
def test_wheel_has_one_top_level_package_and_every_package(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(tmp_path.glob("sharpeyes-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = next(n for n in names if n.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top).decode().split() == ["sharpeyes"]
    assert {n.split("/")[0] for n in names} == {
        "sharpeyes",
        wheel.name.split("-py")[0].replace(".whl", "") + ".dist-info",
    } or all(n.startswith(("sharpeyes/", "sharpeyes-")) for n in names)
    in_wheel = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert source_packages() <= in_wheel, source_packages() - in_wheel
    for data in (
        "sharpeyes/api/rest/web/index.html",
        "sharpeyes/api/store/migrations/0001_events.sql",
    ):
        assert data in names
