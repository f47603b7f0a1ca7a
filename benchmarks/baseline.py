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
import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.types import Detections

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BaselineResult:
    kind: str
    fps: float
    frames: int
    input_size: list[int]
    boxes: int
    note: str
    nms_time_limit_hits: int = 0  # upstream NMS gave up early (keeps the boxes found so far)


def run_baseline(clip: Path, model: str, threads: int, frames: int) -> BaselineResult:
    """Run the baseline in a subprocess and return its measurement."""
    from sharpeyes.models.resolve import resolve_model

    cmd = [sys.executable, "-m", "benchmarks.baseline", "--clip", str(clip)]
    cmd += ["--onnx", str(resolve_model(model)), "--frames", str(frames)]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"baseline failed: {out.stderr.strip().splitlines()[-5:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["nms_time_limit_hits"] = nms_time_limit_hits(out.stderr + out.stdout)
    return BaselineResult(**data)


def nms_time_limit_hits(log: str) -> int:
    """How often upstream ``non_max_suppression`` warned that it ran out of time: it then
    returns the boxes kept so far, so the baseline's boxes (and its speed) are not what a quiet
    machine gives."""
    return log.count("NMS time limit")


def _prepare_upstream() -> dict[str, str]:
    """Load ``models/export/upstream_env.py`` by path (it never imports our ``models``)."""
    path = REPO / "models" / "export" / "upstream_env.py"
    spec = importlib.util.spec_from_file_location("sharpeyes_upstream_env", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    done: dict[str, str] = module.prepare()
    return done


def _tracker_and_kinds() -> tuple[Any, NDArray[np.int8]]:
    """Our ByteTrack and a COCO → kind table (no import of our ``models`` package here)."""
    from sharpeyes.pipeline.config import TrackerConfig
    from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
    from sharpeyes.pipeline.types import ObjectKind

    kinds = np.zeros(80, dtype=np.int8)
    kinds[0] = ObjectKind.PERSON
    kinds[[1, 3]] = ObjectKind.NON_MOTOR
    kinds[[2, 5, 7]] = ObjectKind.MOTOR_VEHICLE
    kinds[9] = ObjectKind.TRAFFIC_LIGHT
    return ByteTracker(TrackerConfig()), kinds


def _upstream(clip: Path, onnx_path: Path, limit: int) -> BaselineResult:
    import cv2

    tracker, kinds = _tracker_and_kinds()
    standins = _prepare_upstream()
    import torch
    import yolov5.models.common as upstream_common
    import yolov5.utils.downloads as upstream_downloads
    from yolov5.models.common import DetectMultiBackend
    from yolov5.utils.augmentations import letterbox
    from yolov5.utils.general import non_max_suppression, scale_boxes

    # DetectMultiBackend first asks the Hugging Face hub whether `weights` names a hub repo; that
    # import/lookup cannot work offline, so the hub lookup answers "not a hub model" here.
    upstream_common.attempt_download_from_hub = lambda *_a, **_k: None
    upstream_downloads.attempt_download_from_hub = lambda *_a, **_k: None
    standins["hub"] = "attempt_download_from_hub disabled (offline)"
    model = DetectMultiBackend(str(onnx_path), device=torch.device("cpu"))
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
    note = "upstream yolov5 7.0.14 path; stand-ins: " + "; ".join(
        f"{k}: {v}" for k, v in standins.items() if k != "yolov5_dir"
    )
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
        keep_idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        xyxy = (xyxy[keep_idx] - [left, top, left, top]) / r
        cls_k = cl[keep_idx]
        dets = Detections.create(xyxy, c[keep_idx], cls_k, kinds[cls_k])
        tracker.update(dets[dets.kind > 0], n / fps_clip)
        boxes += len(keep_idx)
        n += 1
    dt = time.perf_counter() - t0
    return BaselineResult("naive-loop", n / dt, n, [640, 640], boxes, "OpenCV + ORT + ByteTrack")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--onnx", type=Path, required=True, help="the ONNX file both sides run")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--kind", choices=["auto", "upstream", "naive"], default="auto")
    args = ap.parse_args(argv)
    onnx_path = args.onnx
    kind = args.kind
    if kind == "auto":
        found = all(importlib.util.find_spec(m) is not None for m in ("torch", "yolov5"))
        kind = "upstream" if found else "naive"
    fn = _upstream if kind == "upstream" else _naive
    res = fn(args.clip, onnx_path, args.frames)
    print(json.dumps(res.__dict__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
