"""Subprocess worker: export an Ultralytics checkpoint (or a model YAML) to ONNX.

Run by :mod:`sharpeyes.models.export.ultralytics_onnx` with an interpreter that has the
``ultralytics`` package; never imports sharpeyes. Argument: one JSON object
``{"source", "out", "imgsz", "dynamic", "opset", "names", "seed"}``; prints one JSON line
``{"out", "ultralytics", "torch", "random_weights"}``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def main() -> int:
    args = json.loads(sys.argv[1])
    import torch
    import ultralytics
    from ultralytics import YOLO

    source = str(args["source"])
    random_weights = source.endswith((".yaml", ".yml"))
    if random_weights:
        torch.manual_seed(int(args.get("seed", 0)))
    model = YOLO(source)
    names = args.get("names")
    if names:
        model.model.names = {i: n for i, n in enumerate(names)}
    kwargs = {
        "format": "onnx",
        "imgsz": args.get("imgsz", 640),
        "dynamic": bool(args.get("dynamic", True)),
        "simplify": True,
        "batch": 1,
    }
    if args.get("opset"):
        kwargs["opset"] = int(args["opset"])
    produced = Path(str(model.export(**kwargs)))
    out = Path(args["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(produced), str(out))
    result = {
        "out": str(out),
        "ultralytics": ultralytics.__version__,
        "torch": torch.__version__,
        "random_weights": random_weights,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
