"""Make ``tests/golden/yolov5n_golden.json`` with the UPSTREAM yolov5 code.

Runs the yolov5 package's own ``letterbox``, ``non_max_suppression`` and ``scale_boxes`` on the
PyTorch model loaded from ``yolov5n.pt`` (the weights our default ``yolov5n`` ONNX is exported
from), at conf 0.25 / IoU 0.45 / all 80 classes / max_det 300, on still images and decoded video
frames from the shared data folder, in two modes:

* ``rect``: ``letterbox(auto=True)`` (the rectangular input of the dynamic yolov5n, e.g. 384x640
  for 1280x720) — compared with our dynamic model;
* ``square``: ``letterbox(auto=False)`` 640x640 — compared with the static shared yolov5n.onnx.

Usage (from the repository root, needs ``sharpeyes[export]``: torch CPU, yolov5, onnx)::

    .venv/bin/python tests/tools/make_golden.py [--out tests/golden/yolov5n_golden.json]

It must not import sharpeyes' ``models`` package (yolov5 pickles refer to ``models.yolo``), so
it loads ``models/export/upstream_env.py`` by file path. torchvision cannot be installed next to
the CPU torch here; ``upstream_env`` then provides a stand-in whose ``ops.nms`` is a pure-torch
greedy NMS (recorded in the JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARPEYES_SHARED") or REPO.parent / "shared")
WEIGHTS_SHA256 = "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3"
PARAMS = {
    "conf_thres": 0.25,
    "iou_thres": 0.45,
    "classes": None,
    "agnostic": False,
    "multi_label": False,
    "max_det": 300,
    "img_size": 640,
    "stride": 32,
}
# (id, shared-relative path, frame index or None for a still image)
INPUTS: tuple[tuple[str, str, int | None], ...] = (
    ("bus", "images/bus.jpg", None),
    ("zidane", "images/zidane.jpg", None),
    ("highway_f0", "sample_videos/highway_1280x720.mp4", 0),
    ("highway_f200", "sample_videos/highway_1280x720.mp4", 200),
    ("hanoi_b_f127", "sample_videos/intersection_hanoi_b_640x480.mp4", 127),
    # frames where a vehicle is reported under two classes (our merged-vehicle NMS drops one)
    ("highway_f360", "sample_videos/highway_1280x720.mp4", 360),
    ("urban_buses_f340", "sample_videos/urban_buses_596x336.mp4", 340),
)


def read_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based, decode order = presentation order here) as BGR via PyAV."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return np.ascontiguousarray(frame.to_ndarray(format="bgr24"))
    raise IndexError(f"{path} has fewer than {index + 1} frames")


def load_image(rel: str, frame: int | None) -> np.ndarray:
    path = SHARED / rel
    if frame is None:
        img = cv2.imread(str(path))
        if img is None:
            raise FileNotFoundError(path)
        return img
    return read_frame(path, frame)


def _load_upstream_env() -> ModuleType:
    path = REPO / "models" / "export" / "upstream_env.py"
    spec = importlib.util.spec_from_file_location("sharpeyes_upstream_env", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_upstream(model: Any, im0: np.ndarray, auto: bool) -> dict[str, Any]:
    import torch
    from yolov5.utils.augmentations import letterbox
    from yolov5.utils.general import non_max_suppression, scale_boxes

    im = letterbox(im0, PARAMS["img_size"], stride=PARAMS["stride"], auto=auto)[0]
    im = np.ascontiguousarray(im.transpose((2, 0, 1))[::-1])  # HWC→CHW, BGR→RGB (detect.py)
    x = torch.from_numpy(im).float()[None] / 255
    with torch.no_grad():
        pred = model(x)[0]
    det = non_max_suppression(
        pred,
        PARAMS["conf_thres"],
        PARAMS["iou_thres"],
        classes=PARAMS["classes"],
        agnostic=PARAMS["agnostic"],
        multi_label=PARAMS["multi_label"],
        max_det=PARAMS["max_det"],
    )[0]
    det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], im0.shape).round(decimals=3)
    boxes = [
        [*(round(float(v), 3) for v in row[:4]), round(float(row[4]), 5), int(row[5])]
        for row in det.tolist()
    ]
    return {"input_hw": list(x.shape[2:]), "boxes": boxes}


def _python() -> str:
    """The interpreter as typed from the repository root (``.venv/bin/python`` here)."""
    exe = Path(sys.executable)
    try:
        return str(exe.parent.resolve().relative_to(REPO) / exe.name)
    except ValueError:
        return exe.name


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "yolov5": version("yolov5"),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "av": av.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/golden/yolov5n_golden.json")
    parser.add_argument("--weights", type=Path, default=SHARED / "models/yolov5n.pt")
    args = parser.parse_args(argv)
    weights_sha = hashlib.sha256(args.weights.read_bytes()).hexdigest()
    if weights_sha != WEIGHTS_SHA256:
        raise SystemExit(
            f"{args.weights}: sha256 {weights_sha} is not yolov5n.pt's {WEIGHTS_SHA256}"
        )
    env = _load_upstream_env()
    standins = env.prepare()
    model = env.load_checkpoint(args.weights)
    images: list[dict[str, Any]] = []
    for image_id, rel, frame in INPUTS:
        im0 = load_image(rel, frame)
        images.append(
            {
                "id": image_id,
                "source": rel,
                "frame": frame,
                "shape_hw": list(im0.shape[:2]),
                "pixels_sha256": hashlib.sha256(im0.tobytes()).hexdigest(),
                "modes": {
                    "rect": run_upstream(model, im0, True),
                    "square": run_upstream(model, im0, False),
                },
            }
        )
    golden = {
        "what": "upstream yolov5 (letterbox, non_max_suppression, scale_boxes) on yolov5n.pt",
        "command": " ".join([_python(), "tests/tools/make_golden.py", *(argv or sys.argv[1:])]),
        "made_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": versions(),
        "weights": {"file": "models/yolov5n.pt", "sha256": weights_sha},
        "params": PARAMS,
        "box_format": "x1, y1, x2, y2 (source pixels), confidence, COCO class id",
        "modes": {
            "rect": "letterbox(auto=True): compare with the dynamic yolov5n export",
            "square": "letterbox(auto=False) 640x640: compare with the static yolov5n.onnx",
        },
        "upstream_environment": standins,
        "images": images,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")
    n_boxes = sum(len(mode["rect"]["boxes"]) for mode in (i["modes"] for i in images))
    print(f"wrote {args.out}: {n_boxes} rect boxes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
