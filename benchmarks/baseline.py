"""The baseline a YOLOv5 user would run, for side-by-side comparison with sharpeyes.

``upstream``: the `yolov5` package's own inference path on the same ONNX file —
``DetectMultiBackend`` (ONNX Runtime, its default session settings), ``letterbox`` at its default
640 (``auto=False`` for ONNX, as its ``LoadImages`` does), ``non_max_suppression`` and
``scale_boxes`` — with frames read by OpenCV ``VideoCapture`` and our ByteTrack on the result.
`yolov5.utils.general` imports torchvision, whose CPU wheels do not install beside the torch on
this machine; a stand-in module providing ``torchvision.ops.nms`` in pure torch is injected, and
the result says so. Its ``detect`` entry point is not used: it calls a model hub and fails offline.

``naive``: the naive loop of BENCHMARKS.md (OpenCV ``VideoCapture`` + ONNX Runtime per frame at
640×640 + the same tracker), used when torch or the yolov5 package is missing.

Runs in a subprocess (``python -m benchmarks.baseline …``) so the yolov5 package's own top-level
``models``/``utils`` imports cannot collide with ours and its memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.types import Detections

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BaselineResult:
    kind: str
    fps: float
    frames: int
    input_size: list[int]
    boxes: int
    note: str


def run_baseline(clip: Path, model: str, threads: int, frames: int) -> BaselineResult:
    """Run the baseline in a subprocess and return its measurement."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.baseline",
        "--clip",
        str(clip),
        "--model",
        model,
        "--frames",
        str(frames),
    ]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"baseline failed: {out.stderr.strip().splitlines()[-5:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return BaselineResult(**data)


def _install_torchvision_standin() -> None:
    import torch

    def nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
        order = scores.argsort(descending=True)
        keep: list[int] = []
        x1, y1, x2, y2 = boxes.unbind(1)
        areas = (x2 - x1) * (y2 - y1)
        while order.numel() > 0:
            i = int(order[0])
            keep.append(i)
            rest = order[1:]
            xx1 = torch.maximum(x1[i], x1[rest])
            yy1 = torch.maximum(y1[i], y1[rest])
            xx2 = torch.minimum(x2[i], x2[rest])
            yy2 = torch.minimum(y2[i], y2[rest])
            inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
            iou = inter / (areas[i] + areas[rest] - inter)
            order = rest[iou <= iou_threshold]
        return torch.tensor(keep, dtype=torch.long)

    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = nms  # type: ignore[attr-defined]
    tv.ops = ops  # type: ignore[attr-defined]
    tv.__version__ = "0.0-standin"  # type: ignore[attr-defined]
    sys.modules.setdefault("torchvision", tv)
    sys.modules.setdefault("torchvision.ops", ops)


def _tracker_and_kinds() -> tuple[Any, Any]:
    from models.classes import coco_kinds
    from pipeline.config import TrackerConfig
    from pipeline.tracking.bytetrack import ByteTracker

    kinds = np.array(coco_kinds(motorcycle_is_non_motor=True), dtype=np.int8)
    return ByteTracker(TrackerConfig()), kinds


def _upstream(clip: Path, onnx_path: Path, limit: int) -> BaselineResult:
    import cv2

    _install_torchvision_standin()
    import torch
    from yolov5.models.common import DetectMultiBackend
    from yolov5.utils.augmentations import letterbox
    from yolov5.utils.general import non_max_suppression, scale_boxes

    model = DetectMultiBackend(str(onnx_path), device=torch.device("cpu"))
    tracker, kinds = _tracker_and_kinds()
    cap = cv2.VideoCapture(str(clip))
    n = boxes = 0
    fps_clip = cap.get(cv2.CAP_PROP_FPS) or 30.0
    t0 = time.perf_counter()
    while n < limit:
        ok, im0 = cap.read()
        if not ok:
            break
        im = letterbox(im0, 640, stride=32, auto=False)[0]
        im = np.ascontiguousarray(im.transpose((2, 0, 1))[::-1])
        t = torch.from_numpy(im).float()[None] / 255.0
        pred = non_max_suppression(model(t), 0.25, 0.45, None, False, max_det=1000)[0]
        pred[:, :4] = scale_boxes(t.shape[2:], pred[:, :4], im0.shape).round()
        p = pred.numpy()
        cls = p[:, 5].astype(np.int64)
        dets = Detections.create(p[:, :4], p[:, 4], cls, kinds[cls])
        tracker.update(dets[dets.kind > 0], n / fps_clip)
        boxes += len(p)
        n += 1
    dt = time.perf_counter() - t0
    cap.release()
    note = "upstream yolov5 7.0.14 path; torchvision.ops.nms replaced by a pure-torch stand-in"
    return BaselineResult("upstream-yolov5", n / dt, n, [640, 640], boxes, note)


def _naive(clip: Path, onnx_path: Path, limit: int) -> BaselineResult:
    import cv2
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    tracker, kinds = _tracker_and_kinds()
    cap = cv2.VideoCapture(str(clip))
    fps_clip = cap.get(cv2.CAP_PROP_FPS) or 30.0
    n = boxes = 0
    t0 = time.perf_counter()
    while n < limit:
        ok, im0 = cap.read()
        if not ok:
            break
        h, w = im0.shape[:2]
        r = 640 / max(h, w)
        nh, nw = round(h * r), round(w * r)
        canvas = np.full((640, 640, 3), 114, np.uint8)
        top, left = (640 - nh) // 2, (640 - nw) // 2
        canvas[top : top + nh, left : left + nw] = cv2.resize(im0, (nw, nh))
        x = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        out = sess.run(None, {name: x})[0][0]
        scores = out[:, 4:5] * out[:, 5:]
        cls = scores.argmax(1)
        conf = scores.max(1)
        keep = conf > 0.25
        b, c, cl = out[keep, :4], conf[keep], cls[keep]
        xyxy = np.stack(
            [
                b[:, 0] - b[:, 2] / 2,
                b[:, 1] - b[:, 3] / 2,
                b[:, 0] + b[:, 2] / 2,
                b[:, 1] + b[:, 3] / 2,
            ],
            1,
        )
        idx = cv2.dnn.NMSBoxesBatched(xyxy.tolist(), c.tolist(), cl.tolist(), 0.25, 0.45)
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        xyxy = (xyxy[idx] - [left, top, left, top]) / r
        dets = Detections.create(xyxy, c[idx], cl[idx], kinds[cl[idx]])
        tracker.update(dets[dets.kind > 0], n / fps_clip)
        boxes += len(idx)
        n += 1
    dt = time.perf_counter() - t0
    return BaselineResult("naive-loop", n / dt, n, [640, 640], boxes, "OpenCV + ORT + ByteTrack")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--model", default="yolov5n")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--kind", choices=["auto", "upstream", "naive"], default="auto")
    args = ap.parse_args(argv)
    from models.resolve import resolve_model

    onnx_path = resolve_model(args.model)
    kind = args.kind
    if kind == "auto":
        try:
            import torch  # noqa: F401
            import yolov5  # noqa: F401

            kind = "upstream"
        except ImportError:
            kind = "naive"
    fn = _upstream if kind == "upstream" else _naive
    res = fn(args.clip, onnx_path, args.frames)
    print(json.dumps(res.__dict__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
