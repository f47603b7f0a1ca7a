"""Prepare a clean interpreter for running the *upstream* yolov5 code (export, golden files).

This module is standalone on purpose (stdlib only at import time, never imports sharpeyes):
yolov5 checkpoints pickle their classes as ``sharpeyes.models.yolo.*`` and sharpeyes' own top-level
package is also called ``models``. Scripts that need upstream code run in a subprocess, load this
file by path and call :func:`prepare` first; it

* removes sharpeyes' repository root from ``sys.path`` and puts the installed ``yolov5`` package
  directory first, so ``sharpeyes.models.yolo`` resolves to the upstream module;
* installs import-time stand-ins for ``torchvision`` (not installable against the CPU torch
  build here; ``torchvision.ops.nms`` is replaced by a plain-torch greedy NMS) and for
  ``ultralytics.utils.checks`` (yolov5 7.0.14 imports only ``check_requirements`` from it),
  unless the real packages import cleanly.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

STANDIN_NOTE = (
    "torchvision stand-in: ops.nms is a pure-torch greedy NMS (IoU > threshold suppresses, "
    "scores sorted descending), equivalent to torchvision.ops.nms on CPU"
)


def yolov5_dir() -> Path:
    """Directory of the installed ``yolov5`` package (raises ImportError when missing)."""
    spec = importlib.util.find_spec("yolov5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'yolov5' package is not installed (pip install 'sharpeyes[export]')")
    return Path(next(iter(spec.submodule_search_locations)))


def _is_sharpeyes_root(entry: str) -> bool:
    root = Path(entry or ".").resolve()
    return (root / "models" / "registry.py").is_file() and (root / "pipeline").is_dir()


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # a broken install counts as missing
        return False
    return True


class _Placeholder(type):
    """A class standing in for any missing attribute: subclassable, attributes are placeholders."""

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder(attr, (), {})


def _unavailable(module: str) -> Any:
    def module_getattr(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(f"module {module!r} has no attribute {attr!r}")
        return _Placeholder(attr, (), {"__module__": module})

    return module_getattr


def torch_nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy NMS in plain torch with torchvision.ops.nms semantics; returns kept indices."""
    import torch

    order = torch.argsort(scores, descending=True, stable=True)
    b = boxes[order].double()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    iou = inter / (area[:, None] + area[None, :] - inter)
    suppressed = torch.zeros(len(b), dtype=torch.bool)
    keep: list[int] = []
    for i in range(len(b)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def _install_module(name: str, attrs: dict[str, Any]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__getattr__ = _unavailable(name)  # type: ignore[method-assign]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _install_torchvision_standin() -> None:
    _install_module("torchvision", {"__version__": "0.0+sharpeyes-standin"})
    _install_module("torchvision.transforms", {})
    _install_module("torchvision.transforms.functional", {})
    _install_module("torchvision.ops", {"nms": torch_nms})


def _install_ultralytics_standin() -> None:
    def check_requirements(*_args: Any, **_kwargs: Any) -> None:
        return None

    _install_module("ultralytics", {"__version__": "0.0+sharpeyes-standin"})
    _install_module("ultralytics.utils", {})
    _install_module("ultralytics.utils.checks", {"check_requirements": check_requirements})


def prepare() -> dict[str, str]:
    """Set up ``sys.path`` and stand-ins; returns what was done (for provenance records)."""
    if "models" in sys.modules:
        raise RuntimeError("a 'models' package is already imported; run in a fresh interpreter")
    ydir = yolov5_dir()
    sys.path[:] = [str(ydir)] + [p for p in sys.path if not _is_sharpeyes_root(p)]
    done = {"yolov5_dir": str(ydir)}
    if not _importable("torchvision"):
        _install_torchvision_standin()
        done["torchvision"] = STANDIN_NOTE
    if not _importable("ultralytics.utils.checks"):
        _install_ultralytics_standin()
        done["ultralytics"] = "stand-in: ultralytics.utils.checks.check_requirements is a no-op"
    return done


def load_checkpoint(weights: Path) -> Any:
    """Load a yolov5 ``.pt`` as a fused fp32 eval model (what yolov5's attempt_load does)."""
    import torch
    from torch import nn

    ckpt = torch.load(str(weights), map_location="cpu", weights_only=False)
    model = (ckpt.get("ema") or ckpt["model"]).float()
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    if isinstance(getattr(model, "names", None), list | tuple):
        model.names = dict(enumerate(model.names))
    model = model.fuse().eval()
    for m in model.modules():
        kind = type(m).__name__
        if kind == "Detect" and not isinstance(m.anchor_grid, list):
            delattr(m, "anchor_grid")
            m.anchor_grid = [torch.zeros(1)] * m.nl
        elif isinstance(m, nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None
    module_file = getattr(sys.modules.get("models.yolo"), "__file__", "") or ""
    if not module_file.startswith(str(yolov5_dir())):
        raise RuntimeError(f"models.yolo resolved to {module_file!r}, not the yolov5 package")
    return model
