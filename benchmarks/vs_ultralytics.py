"""sharpeyes vs Ultralytics on the same ONNX file and clip: detect + ByteTrack, alternating.

``ultralytics``: what an Ultralytics user runs —
``YOLO(onnx, task="detect").track(source=clip, tracker="bytetrack.yaml", stream=True)`` (its own
video reader, letterbox, ONNX Runtime session with its default settings, NMS and ByteTrack).

``sharpeyes``: PyAV decode → :func:`sharpeyes.models.factory.create_detector` (host ONNX
Runtime, ``intra_op_threads`` = the cores given) → our ByteTrack, with Ultralytics' NMS settings
(conf 0.25, IoU 0.7, class-aware, every class kept) so the detections can be compared.

Each run is its own subprocess pinned to the same cores (``taskset``), so CPU seconds
(user + sys of the loop) and peak RSS (``ru_maxrss`` of the process, imports and model
included) are its own; the two alternate for ``--rounds`` rounds and the median is reported.
Detection agreement: per frame, the detector's boxes *before* tracking (Ultralytics: captured by
an ``on_predict_postprocess_end`` callback registered ahead of its tracker's) matched one-to-one
by class at IoU ≥ 0.5; F1 over the clip, and the share of matched pairs with IoU ≥ 0.99.
(Ultralytics' ``r.boxes`` after ``track`` are the tracker's Kalman boxes of its confirmed
tracks, so they are not compared.) The number of tracked boxes each side outputs is reported too.

The Ultralytics side runs under another interpreter (``--ultralytics-python``, default
``$SHARPEYES_ULTRALYTICS_PYTHON``) because its torch/torchvision stack does not install beside
our CPU torch; its worker (``--worker ultralytics``) imports only the stdlib and ultralytics.

    python -m benchmarks.vs_ultralytics --clip ../shared/sample_videos/highway_1280x720.mp4 \\
        --onnx ../shared/models/yolov8n_int8_dynamic.onnx --frames 150 --cores 0,1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONF, IOU = 0.25, 0.7


def _usage() -> tuple[float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def _finish(
    kind: str, t0: float, cpu0: float, frames: list[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, Any]:
    wall = time.perf_counter() - t0
    cpu1, rss_kib = _usage()
    return {
        "kind": kind,
        "frames": len(frames),
        "wall_s": round(wall, 3),
        "fps": round(len(frames) / wall, 2),
        "cpu_s": round(cpu1 - cpu0, 2),
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "boxes": sum(len(f["cls"]) for f in frames),
        **extra,
        "detections": frames,
    }


def worker_ultralytics(clip: Path, onnx: Path, limit: int) -> dict[str, Any]:
    """Ultralytics' own track loop (imports only ultralytics)."""
    import ultralytics
    from ultralytics import YOLO

    model = YOLO(str(onnx), task="detect")
    frames: list[dict[str, Any]] = []
    tracked: list[int] = []

    def raw_detections(predictor: Any) -> None:  # runs before the tracker replaces the boxes
        b = predictor.results[0].boxes
        frames.append({"xyxy": b.xyxy.tolist(), "cls": [int(c) for c in b.cls.tolist()]})

    model.add_callback("on_predict_postprocess_end", raw_detections)
    cpu0, _ = _usage()
    t0 = time.perf_counter()
    stream = model.track(
        source=str(clip),
        tracker="bytetrack.yaml",
        stream=True,
        conf=CONF,
        iou=IOU,
        imgsz=640,
        verbose=False,
    )
    for r in stream:
        tracked.append(len(r.boxes))
        if len(tracked) >= limit:
            break
    del frames[len(tracked) :]
    extra = {"version": f"ultralytics {ultralytics.__version__}", "tracked_boxes": sum(tracked)}
    return _finish("ultralytics", t0, cpu0, frames, extra)


def worker_sharpeyes(clip: Path, onnx: Path, limit: int, threads: int) -> dict[str, Any]:
    """PyAV → our detector (the one factory) → our ByteTrack."""
    import av
    import numpy as np

    from sharpeyes.models.factory import create_detector
    from sharpeyes.pipeline.config import OnnxRuntimeDetectorConfig, TrackerConfig
    from sharpeyes.pipeline.tracking.bytetrack import ByteTracker

    cfg = OnnxRuntimeDetectorConfig(
        model_path=onnx,
        providers="cpu",
        intra_op_threads=threads,
        confidence_threshold=CONF,
        iou_threshold=IOU,
        keep_other_classes=True,
    )
    choice = create_detector(cfg)
    det = choice.detector
    tracker = ByteTracker(TrackerConfig())
    frames: list[dict[str, Any]] = []
    tracked = 0
    cpu0, _ = _usage()
    t0 = time.perf_counter()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or 30)
        for n, f in enumerate(container.decode(stream)):
            img = np.ascontiguousarray(f.to_ndarray(format="bgr24"))
            d = det.detect([img])[0]
            tracks = tracker.update(d[d.kind > 0], n / fps)
            tracked += len(tracks)
            frames.append({"xyxy": d.xyxy.tolist(), "cls": d.class_id.tolist()})
            if len(frames) >= limit:
                break
    extra = {
        "version": "sharpeyes",
        "backend": choice.backend_text,
        "model": det.info.model,
        "tracked_boxes": tracked,
    }
    return _finish("sharpeyes", t0, cpu0, frames, extra)


# --- driver ----------------------------------------------------------------------------------


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def agreement(ours: list[dict[str, Any]], ref: list[dict[str, Any]]) -> dict[str, float]:
    """F1 of same-class boxes matched greedily at IoU ≥ 0.5, and the share matched at ≥ 0.99."""
    matched = tight = total_a = total_b = 0
    for a, b in zip(ours, ref, strict=False):
        total_a += len(a["cls"])
        total_b += len(b["cls"])
        pairs = sorted(
            (
                (_iou(x, y), i, j)
                for i, (x, ca) in enumerate(zip(a["xyxy"], a["cls"], strict=True))
                for j, (y, cb) in enumerate(zip(b["xyxy"], b["cls"], strict=True))
                if ca == cb
            ),
            reverse=True,
        )
        used_a: set[int] = set()
        used_b: set[int] = set()
        for iou, i, j in pairs:
            if iou < 0.5:
                break
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            matched += 1
            tight += iou >= 0.99
    f1 = 2 * matched / (total_a + total_b) if total_a + total_b else 1.0
    return {
        "f1_iou50": round(f1, 4),
        "matched": matched,
        "ours_boxes": total_a,
        "ultralytics_boxes": total_b,
        "share_matched_iou99": round(tight / matched, 4) if matched else 0.0,
    }


def _run(cmd: list[str], cores: str | None) -> dict[str, Any]:
    full = (["taskset", "-c", cores] if cores else []) + cmd
    env = {**os.environ, "YOLO_OFFLINE": "1", "OMP_NUM_THREADS": str(_ncores(cores))}
    out = subprocess.run(
        full, cwd=REPO, capture_output=True, text=True, check=False, timeout=1800, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {out.stderr.strip().splitlines()[-5:]}")
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def _ncores(cores: str | None) -> int:
    if not cores:
        return os.cpu_count() or 1
    return sum(
        (int(b) - int(a) + 1) if "-" in part else 1
        for part in cores.split(",")
        for a, _, b in [part.partition("-")]
    )


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("fps", "cpu_s", "peak_rss_mib", "wall_s")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    return {
        **med,
        "frames": runs[0]["frames"],
        "cpu_s_per_frame": round(med["cpu_s"] / runs[0]["frames"], 4),
        "runs": [{k: r[k] for k in (*keys, "boxes", "tracked_boxes")} for r in runs],
        "version": runs[0].get("version"),
        "backend": runs[0].get("backend"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cores", default="0,1", help="taskset core list for both sides ('' = all)")
    ap.add_argument("--ultralytics-python", default=os.environ.get("SHARPEYES_ULTRALYTICS_PYTHON"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", choices=("sharpeyes", "ultralytics"))
    args = ap.parse_args(argv)
    clip, onnx = args.clip.resolve(), args.onnx.resolve()
    threads = _ncores(args.cores or None)
    if args.worker == "ultralytics":
        sys.stdout.write(json.dumps(worker_ultralytics(clip, onnx, args.frames)) + "\n")
        return 0
    if args.worker == "sharpeyes":
        sys.stdout.write(json.dumps(worker_sharpeyes(clip, onnx, args.frames, threads)) + "\n")
        return 0
    # the driver only (the Ultralytics worker runs under another interpreter, stdlib only)
    from benchmarks import _cli

    for name, path in (("--clip", clip), ("--onnx", onnx)):
        if not path.is_file():
            ap.error(f"{name} {path}: no such file")
    if args.frames < 1 or args.rounds < 1:
        ap.error("--frames and --rounds must be at least 1")
    if not args.ultralytics_python:
        ap.error(
            "--ultralytics-python (or $SHARPEYES_ULTRALYTICS_PYTHON) is required: an interpreter "
            "with ultralytics installed"
        )
    machine = _cli.machine()
    base = ["--clip", str(clip), "--onnx", str(onnx), "--frames", str(args.frames)]
    base += ["--cores", args.cores]
    ours_cmd = [sys.executable, "-m", "benchmarks.vs_ultralytics", "--worker", "sharpeyes", *base]
    ultra_cmd = [args.ultralytics_python, str(Path(__file__).resolve())]
    ultra_cmd += ["--worker", "ultralytics", *base]
    ours: list[dict[str, Any]] = []
    ultra: list[dict[str, Any]] = []
    for _ in range(args.rounds):  # alternate so drift in machine load hits both
        ours.append(_run(ours_cmd, args.cores or None))
        ultra.append(_run(ultra_cmd, args.cores or None))
    result = {
        "benchmark": "vs_ultralytics",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            **machine,
            "cpus_visible": os.cpu_count(),
            "cores_pinned": args.cores or "all",
            "load_avg_after": _cli.load_avg(),
        },
        "clip": str(args.clip),
        "onnx": str(args.onnx),
        "frames": args.frames,
        "rounds": args.rounds,
        "settings": {"conf": CONF, "iou": IOU, "imgsz": 640, "tracker": "bytetrack"},
        "sharpeyes": _summary(ours),
        "ultralytics": _summary(ultra),
        "agreement": agreement(ours[0]["detections"], ultra[0]["detections"]),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    sys.stdout.write(format_table(result) + "\n")
    return 0


def format_table(result: dict[str, Any]) -> str:
    """Medians side by side with the ratios, and what was measured on what."""
    from benchmarks import _cli

    ours, theirs = result["sharpeyes"], result["ultralytics"]
    lines = [
        f"{Path(result['clip']).name} · {Path(result['onnx']).name} · {result['frames']} frames · "
        f"{result['rounds']} alternating rounds (medians) · "
        f"cores {result['machine']['cores_pinned']}",
        f"machine: {_cli.machine_line(result['machine'])}",
        "",
        "| tool | fps | CPU s/frame | peak RSS MiB |",
        "|---|---|---|---|",
    ]
    for name, s in (("sharpeyes", ours), ("ultralytics", theirs)):
        lines.append(
            f"| {name} | {s['fps']:.2f} | {s['cpu_s_per_frame']:.3f} | {s['peak_rss_mib']:.0f} |"
        )

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "—"

    lines.append(
        f"| ours ÷ theirs | {ratio(ours['fps'], theirs['fps'])} | "
        f"{ratio(ours['cpu_s_per_frame'], theirs['cpu_s_per_frame'])} | "
        f"{ratio(ours['peak_rss_mib'], theirs['peak_rss_mib'])} |"
    )
    agree = result.get("agreement", {})
    if agree:
        lines.append(f"agreement: {json.dumps(agree)}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
