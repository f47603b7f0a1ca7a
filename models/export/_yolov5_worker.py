"""Torch side of the yolov5 → ONNX export. Run as a *script file* in a fresh interpreter.

``python _yolov5_worker.py --weights PT --out ONNX [--dynamic] [--opset 12]``. It never imports
sharpeyes (see ``upstream_env``); it prints one JSON line with what it did on stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any


def _load_upstream_env() -> ModuleType:
    path = Path(__file__).with_name("upstream_env.py")
    spec = importlib.util.spec_from_file_location("sharpeyes_upstream_env", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(model: Any, out: Path, dynamic: bool, opset: int) -> None:
    import torch

    for m in model.modules():
        # isinstance fails across the two import paths of yolov5, so match the class name.
        if type(m).__name__ == "Detect":
            m.inplace = False
            m.export = True
            m.dynamic = dynamic
    im = torch.zeros(1, 3, 640, 640)
    with torch.no_grad():
        for _ in range(2):
            model(im)  # dry runs build the grids
    axes = None
    if dynamic:
        axes = {
            "images": {0: "batch", 2: "height", 3: "width"},
            "output0": {0: "batch", 1: "anchors"},
        }
    torch.onnx.export(
        model,
        (im,),
        str(out),
        opset_version=opset,
        do_constant_folding=True,
        input_names=["images"],
        output_names=["output0"],
        dynamic_axes=axes,
        dynamo=False,
    )


def _add_metadata(out: Path, model: Any) -> None:
    import onnx

    proto = onnx.load(str(out))
    names = dict(model.names) if hasattr(model, "names") else {}
    for key, value in {"stride": int(max(model.stride)), "names": names}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, str(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dynamic", action="store_true")
    parser.add_argument("--opset", type=int, default=12)
    args = parser.parse_args(argv)
    env = _load_upstream_env()
    done = env.prepare()
    import torch

    t0 = time.perf_counter()
    model = env.load_checkpoint(args.weights)
    _export(model, args.out, args.dynamic, args.opset)
    _add_metadata(args.out, model)
    report = {
        "torch": torch.__version__,
        "opset": args.opset,
        "dynamic": args.dynamic,
        "seconds": round(time.perf_counter() - t0, 2),
        "env": done,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
