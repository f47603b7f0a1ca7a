"""Export Ultralytics checkpoints (YOLOv8 / YOLO11 / YOLOv10 / YOLO26 ``.pt``, or a model YAML
for random weights) to ONNX with dynamic batch and shape, using the ``ultralytics`` package
itself (``model.export(format="onnx", dynamic=True)``).

The export runs in a subprocess (:mod:`._ultralytics_worker`) so the Ultralytics stack (its own
torch/torchvision) never loads into sharpeyes: the interpreter is ``$SHARPEYES_ULTRALYTICS_PYTHON``
when set, else this interpreter when it can import ``ultralytics`` (extra ``export-ultralytics``).
The exported file carries Ultralytics' metadata (names, stride, imgsz, task), from which
:func:`sharpeyes.models.ultralytics.inspect_detector` picks the head.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sharpeyes.pipeline.errors import ModelError

PYTHON_ENV = "SHARPEYES_ULTRALYTICS_PYTHON"
_WORKER = Path(__file__).with_name("_ultralytics_worker.py")
_HINT = (
    "install it with `pip install 'sharpeyes[export-ultralytics]'` or point "
    f"${PYTHON_ENV} at a Python that has ultralytics"
)


def ultralytics_python() -> str | None:
    """The interpreter that runs the export, or None when none has ``ultralytics``."""
    env = os.environ.get(PYTHON_ENV)
    if env:
        return env
    if importlib.util.find_spec("ultralytics") is not None:
        return sys.executable
    return None


@dataclass(frozen=True, slots=True)
class UltralyticsExport:
    """What an export produced."""

    out: Path
    ultralytics_version: str
    torch_version: str
    random_weights: bool

    def describe(self) -> str:
        weights = "random weights (model YAML)" if self.random_weights else "checkpoint weights"
        return (
            f"ultralytics {self.ultralytics_version} (torch {self.torch_version}) ONNX export, "
            f"dynamic batch/shape, {weights}"
        )


def export_ultralytics_onnx(
    source: Path | str,
    out: Path,
    *,
    imgsz: int = 640,
    dynamic: bool = True,
    opset: int | None = None,
    names: list[str] | None = None,
    seed: int = 0,
    python: str | None = None,
    timeout_s: float = 600.0,
) -> UltralyticsExport:
    """Export ``source`` (a ``.pt`` checkpoint, or a model YAML such as ``yolo11n.yaml``) to
    ``out``. ``names`` replaces the model's class names (e.g. COCO-80 for a YAML model).

    Raises:
        ModelError: no interpreter with ultralytics, or the export failed (last error line).
    """
    exe = python or ultralytics_python()
    if exe is None:
        raise ModelError(f"ultralytics export: the 'ultralytics' package is missing; {_HINT}")
    args = {
        "source": str(source),
        "out": str(Path(out).resolve()),
        "imgsz": imgsz,
        "dynamic": dynamic,
        "opset": opset,
        "names": names,
        "seed": seed,
    }
    work = Path(out).resolve().parent
    work.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [exe, str(_WORKER), json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=work,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ModelError(f"ultralytics export of {source} could not run: {e}") from e
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise ModelError(
            f"ultralytics export of {source} failed: {lines[-1] if lines else proc.returncode}"
        )
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    data = json.loads(last)
    return UltralyticsExport(
        out=Path(data["out"]),
        ultralytics_version=str(data["ultralytics"]),
        torch_version=str(data["torch"]),
        random_weights=bool(data["random_weights"]),
    )
