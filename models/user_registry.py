"""Models the user registers with ``sharpeyes models add PATH`` (a JSON file in the cache dir).

Each entry pins the file's absolute path and sha256, states a licence, and records the family,
class names and input size read from the file
(:func:`sharpeyes.models.ultralytics.inspect_detector`).
A registered user model resolves like a built-in one (the path is absolute, so the shared/cache
search finds it in place; a changed file is a :class:`ModelIntegrityError`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sharpeyes.models.registry import MODEL_SPECS, Family, InputFacts, ModelSpec
from sharpeyes.pipeline.errors import ModelError

log = logging.getLogger(__name__)

USER_REGISTRY_FILE = "user_models.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FAMILIES: frozenset[str] = frozenset({"yolov5", "yolov8", "yolo11", "yolov10"})


def user_registry_path() -> Path:
    """``<model cache>/user_models.json``."""
    from sharpeyes.models.resolve import cache_dir

    return cache_dir() / USER_REGISTRY_FILE


def _read() -> dict[str, dict[str, Any]]:
    path = user_registry_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable user model registry %s: %s", path, e)
        return {}
    models = data.get("models", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in models.items() if isinstance(v, dict)}


def _spec(name: str, entry: dict[str, Any]) -> ModelSpec | None:
    try:
        family = str(entry["family"])
        if family not in _FAMILIES:
            return None
        size = entry.get("input_size") or [640, 640]
        fam: Family = family  # type: ignore[assignment]  # checked against _FAMILIES above
        return ModelSpec(
            name=name,
            filename=str(entry["path"]),
            sha256=str(entry["sha256"]),
            url=None,
            family=fam,
            input=InputFacts(size=(int(size[0]), int(size[1])), dynamic=bool(entry["dynamic"])),
            licence=str(entry.get("licence", "unknown")),
            notes=str(entry.get("notes", "user model")),
            size_bytes=int(entry["size_bytes"]),
        )
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def load_user_specs() -> dict[str, ModelSpec]:
    """Every valid user entry as a :class:`ModelSpec` (invalid entries are skipped)."""
    out: dict[str, ModelSpec] = {}
    for name, entry in _read().items():
        spec = _spec(name, entry)
        if spec is not None:
            out[name] = spec
    return out


def user_entry(name: str) -> dict[str, Any] | None:
    """The raw JSON entry of a user model (class names, output shape, …)."""
    return _read().get(name)


def add_user_model(
    path: Path, *, name: str | None = None, licence: str = "unknown", notes: str = ""
) -> tuple[str, dict[str, Any]]:
    """Inspect ``path`` (family, classes, input) and register it; returns (name, entry).

    Raises:
        ModelError: not a usable detector (one line from the inspection), a bad or built-in name.
    """
    from sharpeyes.models.onnx_session import OnnxModel, SessionConfig
    from sharpeyes.models.ultralytics import inspect_detector
    from sharpeyes.pipeline.data import sha256_file

    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ModelError(f"{path} does not exist")
    name = name or path.stem
    if not _NAME_RE.match(name):
        raise ModelError(f"model name {name!r} must be 1-64 letters, digits, '_', '-' or '.'")
    if name in MODEL_SPECS:
        raise ModelError(f"{name!r} is a built-in model name; pass --name")
    found = inspect_detector(OnnxModel(path, SessionConfig(providers="cpu", intra_op_threads=1)))
    entry: dict[str, Any] = {
        "path": str(path),
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "licence": licence,
        "family": found.family,
        "class_names": list(found.names) if found.names else None,
        "input_size": list(found.input_size),
        "dynamic": found.dynamic,
        "stride": found.stride,
        "output_shape": list(found.output_shape),
        "notes": notes or f"added from {path.name}",
    }
    models = _read()
    models[name] = entry
    reg = user_registry_path()
    reg.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=reg.parent, prefix=f".{reg.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"version": 1, "models": models}, fh, indent=2)
    os.replace(tmp, reg)
    return name, entry
