"""Export a yolov5 ``.pt`` checkpoint to ONNX (optionally with dynamic batch and shape).

Usage: ``python -m models.export.yolov5_onnx --weights yolov5n.pt --out yolov5n_dynamic.onnx
--dynamic``. Needs the optional ``sharpeyes[export]`` dependencies (torch CPU build, yolov5,
onnx). Recipe (shared/models/MODELS.md): fused fp32 eval model, every ``Detect`` module in export
mode with ``inplace=False`` (and ``dynamic=True`` for a dynamic export), legacy TorchScript
exporter, opset 12, input ``images`` and output ``output0``; dynamic axes batch/height/width on
the input and batch/anchors on the output.

The torch part runs in a separate interpreter (``_yolov5_worker.py``, started by file path with
a clean ``sys.path``) because the checkpoint's pickle refers to ``models.yolo`` and sharpeyes'
own top-level package is also named ``models``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sharpeyes.pipeline.errors import ModelError

EXPORTER_VERSION = "1"
WORKER = Path(__file__).with_name("_yolov5_worker.py")


def exporter_available() -> bool:
    """True when torch, onnx and yolov5 can be found (they are not imported here)."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx", "yolov5"))


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export produced."""

    out: Path
    dynamic: bool
    opset: int
    torch_version: str
    seconds: float

    def describe(self) -> str:
        kind = "dynamic" if self.dynamic else "static"
        return (
            f"sharpeyes.models.export.yolov5_onnx v{EXPORTER_VERSION} ({kind}, opset {self.opset}, "
            f"torch {self.torch_version})"
        )


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def export_yolov5_onnx(
    weights: Path,
    out: Path,
    *,
    dynamic: bool = True,
    opset: int = 12,
    python: str | None = None,
    timeout_s: float = 900.0,
) -> ExportResult:
    """Export ``weights`` to ``out`` (written through a temp file and renamed atomically).

    Raises:
        ModelError: the exporter is not installed or the export failed (last error line).
    """
    if not exporter_available():
        raise ModelError(
            "yolov5 export needs torch, onnx and yolov5: pip install 'sharpeyes[export]'"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    cmd = [python or sys.executable, str(WORKER), "--weights", str(weights), "--out", str(tmp)]
    cmd += ["--opset", str(opset)] + (["--dynamic"] if dynamic else [])
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=_clean_env(), check=False
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelError(f"yolov5 export of {weights} failed (exit {proc.returncode}): {last}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        tmp.chmod(0o644)
        os.replace(tmp, out)
    except subprocess.TimeoutExpired as e:
        raise ModelError(f"yolov5 export of {weights} timed out after {timeout_s:.0f} s") from e
    except (ValueError, IndexError) as e:
        raise ModelError(f"yolov5 export of {weights} printed no report: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(
        out=out,
        dynamic=dynamic,
        opset=opset,
        torch_version=str(report.get("torch", "?")),
        seconds=float(report.get("seconds", 0.0)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a yolov5 .pt checkpoint to ONNX.")
    parser.add_argument("--weights", type=Path, required=True, help="yolov5 .pt checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch, height, width")
    parser.add_argument("--opset", type=int, default=12)
    args = parser.parse_args(argv)
    try:
        result = export_yolov5_onnx(args.weights, args.out, dynamic=args.dynamic, opset=args.opset)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {result.out} in {result.seconds:.1f} s: {result.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
