"""One detect + track loop per process, for :mod:`benchmarks.vs_baselines`.

Each worker reads the first ``frames`` frames of the clip, runs the ONNX file through its own
tool's pipeline (decode → letterbox → ONNX Runtime → NMS → ByteTrack) and writes one JSON line:
per-frame wall and CPU stamps, peak RSS, the input size it actually fed the model and the
detector's boxes *before* tracking (so the three tools' detections can be matched).

This file imports only the standard library at the top: the Ultralytics and supervision workers
run under their own interpreters (their stacks do not install beside ours) as
``python benchmarks/_baseline_workers.py WORKER ...``; the sharpeyes worker runs in our venv.

Input modes: ``square`` feeds ``size × size`` (every tool can); ``rect`` feeds the rectangular
letterbox (long side ``size``, short side padded to a multiple of 32: 384×640 for 720p), which
needs a dynamic-shape file. Defaults of the tools on a dynamic file: sharpeyes ``rect``,
Ultralytics ``rect`` (``predict``/``track`` default ``rect=True`` for a dynamic ONNX), a
hand-written supervision loop ``square`` (the input size every ONNX example uses).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import resource
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

CONF, IOU = 0.25, 0.7
STRIDE = 32
PAD = 114


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rect_hw(src_hw: tuple[int, int], size: int, stride: int = STRIDE) -> tuple[int, int]:
    """Rectangular letterbox input (h, w): long side ``size``, short side padded to ``stride``."""
    r = min(size / src_hw[0], size / src_hw[1])
    h, w = round(src_hw[0] * r), round(src_hw[1] * r)
    return int(math.ceil(h / stride) * stride), int(math.ceil(w / stride) * stride)


class Recorder:
    """Per-frame stamps and detections of one loop."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.cpu0 = _cpu_s()
        self.stamps: list[tuple[float, float]] = []
        self.detections: list[dict[str, Any]] = []
        self.tracked = 0
        self.input_hw: list[int] | None = None

    def frame(self, xyxy: list[list[float]], cls: list[int], tracked: int) -> None:
        self.detections.append({"xyxy": [[round(v, 2) for v in b] for b in xyxy], "cls": cls})
        self.tracked += tracked
        self.stamps.append((time.perf_counter() - self.t0, _cpu_s() - self.cpu0))

    def result(self, tool: str, **extra: Any) -> dict[str, Any]:
        return {
            "tool": tool,
            "frames": len(self.stamps),
            "stamps": [[round(w, 4), round(c, 3)] for w, c in self.stamps],
            "peak_rss_mib": _peak_rss_mib(),
            "input_hw": self.input_hw,
            "boxes": sum(len(d["cls"]) for d in self.detections),
            "tracked_boxes": self.tracked,
            **extra,
            "detections": self.detections,
        }


# --- sharpeyes -------------------------------------------------------------------------------


def run_sharpeyes(clip: Path, onnx: Path, frames: int, size: int, mode: str) -> dict[str, Any]:
    """PyAV → our detector (as the factory builds it) → our ByteTrack."""
    import av
    import numpy as np

    from sharpeyes.models.factory import build_onnx_detector
    from sharpeyes.models.onnx_session import SessionConfig
    from sharpeyes.models.yolo import DetectorOptions, YoloV5Detector
    from sharpeyes.pipeline.config import OnnxRuntimeDetectorConfig, TrackerConfig
    from sharpeyes.pipeline.tracking.bytetrack import ByteTracker

    cfg = OnnxRuntimeDetectorConfig(model_path=onnx, providers="cpu", intra_op_threads=2)
    session = SessionConfig(
        providers="cpu",
        intra_op_threads=cfg.intra_op_threads,
        inter_op_threads=cfg.inter_op_threads,
        allow_spinning=cfg.allow_spinning,
    )
    # Ultralytics' NMS: class-aware per class (no merged vehicle group), every class kept.
    options = DetectorOptions(
        confidence_threshold=CONF,
        iou_threshold=IOU,
        keep_other_classes=True,
        merge_vehicle_nms=False,
        input_size=(size, size),
    )
    det = build_onnx_detector(model=None, model_path=onnx, session=session, options=options)
    if not isinstance(det, YoloV5Detector):
        raise TypeError(f"{onnx.name}: not a YOLO-family detector ({type(det).__name__})")
    if mode == "square" and det.dynamic:  # benchmark knob: feed the square input as a static file
        det.dynamic = False
    tracker = ByteTracker(TrackerConfig())
    rec = Recorder()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or 30)
        for n, f in enumerate(container.decode(stream)):
            img = np.ascontiguousarray(f.to_ndarray(format="bgr24"), dtype=np.uint8)
            if rec.input_hw is None:
                rec.input_hw = list(det.input_shape_for(img.shape[:2]))
            d = det.detect([img])[0]
            tracks = tracker.update(d[d.kind > 0], n / fps)
            rec.frame(d.xyxy.tolist(), d.class_id.tolist(), len(tracks))
            if len(rec.stamps) >= frames:
                break
    return rec.result(
        "sharpeyes",
        version="sharpeyes",
        ort_threads=session.intra_op_threads,
        spinning=session.allow_spinning,
    )


# --- Ultralytics -----------------------------------------------------------------------------


def run_ultralytics(clip: Path, onnx: Path, frames: int, size: int, mode: str) -> dict[str, Any]:
    """``YOLO(onnx).track(source, tracker="bytetrack.yaml", stream=True)`` — its reader,
    letterbox, ONNX Runtime session (its default options), NMS and ByteTrack."""
    ultralytics = importlib.import_module("ultralytics")
    model = ultralytics.YOLO(str(onnx), task="detect")
    pending: list[tuple[list[list[float]], list[int]]] = []

    def capture_input(predictor: Any) -> None:
        inner: Callable[[Any], Any] = predictor.preprocess

        def preprocess(im: Any) -> Any:
            out = inner(im)
            if rec.input_hw is None:
                rec.input_hw = [int(out.shape[2]), int(out.shape[3])]
            return out

        predictor.preprocess = preprocess

    def raw_detections(predictor: Any) -> None:  # runs before the tracker replaces the boxes
        b = predictor.results[0].boxes
        pending.append((b.xyxy.tolist(), [int(c) for c in b.cls.tolist()]))

    model.add_callback("on_predict_start", capture_input)
    model.add_callback("on_predict_postprocess_end", raw_detections)
    rec = Recorder()  # the clock starts before track(): session creation and warm-up included
    stream = model.track(
        source=str(clip),
        tracker="bytetrack.yaml",
        stream=True,
        conf=CONF,
        iou=IOU,
        imgsz=size,
        rect=mode == "rect",
        verbose=False,
    )
    for r in stream:
        xyxy, cls = pending.pop(0)
        rec.frame(xyxy, cls, len(r.boxes))
        if len(rec.stamps) >= frames:
            break
    ort = importlib.import_module("onnxruntime")
    return rec.result(
        "ultralytics",
        version=f"ultralytics {ultralytics.__version__}, onnxruntime {ort.__version__}",
    )


# --- supervision + trackers ------------------------------------------------------------------


def run_supervision(clip: Path, onnx: Path, frames: int, size: int, mode: str) -> dict[str, Any]:
    """The loop the supervision / trackers docs show, with ONNX Runtime as the model:
    ``sv.get_video_frames_generator`` → letterbox → ``session.run`` → ``sv.Detections`` →
    ``with_nms`` → ``trackers.ByteTrackTracker.update``."""
    import cv2
    import numpy as np

    ort = importlib.import_module("onnxruntime")
    sv = importlib.import_module("supervision")
    trackers = importlib.import_module("trackers")

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    info = sv.VideoInfo.from_video_path(str(clip))
    tracker = trackers.ByteTrackTracker(frame_rate=info.fps)
    hw = rect_hw((info.height, info.width), size) if mode == "rect" else (size, size)
    gain = min(hw[0] / info.height, hw[1] / info.width)
    rh, rw = round(info.height * gain), round(info.width * gain)
    top, left = (hw[0] - rh) // 2, (hw[1] - rw) // 2
    pad = np.array([left, top, left, top], dtype=np.float32)
    rec = Recorder()
    rec.input_hw = list(hw)
    for frame in sv.get_video_frames_generator(str(clip), end=frames):
        resized = cv2.resize(frame, (rw, rh))
        padded = cv2.copyMakeBorder(
            resized,
            top,
            hw[0] - rh - top,
            left,
            hw[1] - rw - left,
            cv2.BORDER_CONSTANT,
            value=(PAD, PAD, PAD),
        )
        blob = cv2.dnn.blobFromImage(padded, 1 / 255.0, swapRB=True)
        out = session.run(None, {input_name: blob})[0][0].T  # [N, 4 + nc]
        scores = out[:, 4:]
        class_id = scores.argmax(axis=1)
        confidence = scores[np.arange(len(class_id)), class_id]
        keep = confidence > CONF
        cx, cy, w, h = out[keep, :4].T
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        xyxy = (xyxy - pad) / gain
        np.clip(xyxy[:, 0::2], 0, info.width, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, info.height, out=xyxy[:, 1::2])
        detections = sv.Detections(
            xyxy=xyxy, confidence=confidence[keep], class_id=class_id[keep]
        ).with_nms(threshold=IOU, class_agnostic=False)
        tracked = tracker.update(detections)
        n_tracked = int((tracked.tracker_id != -1).sum()) if len(tracked) else 0
        rec.frame(detections.xyxy.tolist(), detections.class_id.tolist(), n_tracked)
    return rec.result(
        "supervision",
        version=f"supervision {sv.__version__}, trackers {metadata.version('trackers')}, "
        f"onnxruntime {ort.__version__}",
    )


WORKERS: dict[str, Callable[[Path, Path, int, int, str], dict[str, Any]]] = {
    "sharpeyes": run_sharpeyes,
    "ultralytics": run_ultralytics,
    "supervision": run_supervision,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("worker", choices=sorted(WORKERS))
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--mode", choices=("square", "rect"), default="square")
    a = ap.parse_args(argv)
    result = WORKERS[a.worker](a.clip.resolve(), a.onnx.resolve(), a.frames, a.size, a.mode)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
