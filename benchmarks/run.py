"""Throughput benchmark: our pipeline vs detector-only vs the YOLOv5 user's baseline, side by side.

    python -m benchmarks.run [--clip PATH] [--model yolov5n] [--repeats 3] [--threads 2]

In each repeat, in alternating order on the same clip and weights:
  e2e       sharpeyes end to end (decode → detect → track → events → store), analysed fps and the
            median time per stage;
  detector  preprocess + inference + NMS on frames already decoded, at the same input size;
  baseline  the upstream YOLOv5 inference path (``DetectMultiBackend`` + ``non_max_suppression``
            on the same ONNX file, frames read with OpenCV, letterbox at its default 640, plus the
            same tracker) — or the naive loop of BENCHMARKS.md when the yolov5 package is missing.
Ratios are computed per repeat and the medians reported. Prints a table and writes JSON
(``--out``, default ``benchmarks/out/run.json``) with the model, input sizes, providers, threads
and the machine (CPU, cores, GPU, load average before and after). ``--quick`` shortens the
detector and baseline runs to 30 frames and one repeat; end to end always analyses the whole
clip (the frame counts are in the table).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks import _cli
from benchmarks.baseline import BaselineResult, run_baseline
from sharpeyes.pipeline.runner import StagedDetector
from sharpeyes.pipeline.types import ImageBGR

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    env = os.environ.get("SHARPEYES_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def decode_frames(clip: Path, limit: int) -> list[ImageBGR]:
    import av

    frames: list[ImageBGR] = []
    with av.open(str(clip)) as c:
        for f in c.decode(video=0):
            frames.append(np.asarray(f.to_ndarray(format="bgr24"), dtype=np.uint8))
            if len(frames) >= limit:
                break
    return frames


def run_e2e(clip: Path, model: str, threads: int) -> dict[str, Any]:
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from sharpeyes.pipeline.config import CameraConfig

    cam = CameraConfig.model_validate(
        {"url": str(clip), "detector": {"model": model, "intra_op_threads": threads}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        res = analyze_video(AnalyzeOptions(clip, out=Path(tmp), progress=False, camera=cam))
    s = res.summary
    info = res.detector_info
    assert info is not None
    return {
        "fps": s.analysed_fps,
        "frames": s.frames_analysed,
        # repeated pictures are decoded and compared, not analysed (pipeline/repeats.py): the
        # clip's frames per second of wall time, beside the analysed ones
        "frames_repeated": s.frames_repeated,
        "clip_fps": (s.frames_analysed + s.frames_repeated + s.frames_skipped) / s.wall_s
        if s.wall_s > 0
        else 0.0,
        "events": s.events_total,
        "stage_median_ms": s.times.median_ms(),
        "detector": res.detector_desc,
        "input_size": list(info.input_size),
        "providers": list(info.providers),
    }


def run_detector_only(frames: list[ImageBGR], model: str, threads: int) -> dict[str, Any]:
    from sharpeyes.api.node.camera import build_detector
    from sharpeyes.pipeline.config import CameraConfig

    cam = CameraConfig.model_validate({"detector": {"model": model, "intra_op_threads": threads}})
    det = build_detector(cam)
    t0 = time.perf_counter()
    n_boxes = 0
    for img in frames:
        n_boxes += len(det.detect([img])[0])
    dt = time.perf_counter() - t0
    shape = list(det.info.input_size)
    if isinstance(det, StagedDetector):  # the shape really used (rectangular for 16:9)
        shape = [int(v) for v in det.preprocess(frames[:1]).tensor.shape[2:]]
    return {"fps": len(frames) / dt, "frames": len(frames), "boxes": n_boxes, "input": shape}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict[str, Any]:
    import onnxruntime as ort

    return {
        **_cli.machine(),
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }


def check_model(name: str) -> str:
    """argparse type: a registered model name (the error lists the known ones)."""
    from sharpeyes.models.registry import get_model_spec
    from sharpeyes.pipeline.errors import SharpeyesError

    try:
        get_model_spec(name)
    except SharpeyesError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--clip",
        type=_cli.existing_file,
        default=shared_dir() / "sample_videos/highway_1280x720.mp4",
    )
    ap.add_argument("--model", type=check_model, default="yolov5n")
    ap.add_argument("--repeats", type=_cli.positive_int, default=3)
    ap.add_argument(
        "--threads",
        type=_cli.positive_int,
        default=2,
        help="ONNX Runtime intra-op threads of sharpeyes (the baseline keeps its own defaults)",
    )
    ap.add_argument("--detector-frames", type=_cli.positive_int, default=150)
    ap.add_argument("--baseline-frames", type=_cli.positive_int, default=150)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/out/run.json")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="1 repeat, 30 detector/baseline frames (smoke test; end to end runs the whole clip)",
    )
    args = ap.parse_args(argv)
    if not Path(args.clip).is_file():  # the default, when the shared clip is not there
        ap.error(f"--clip {args.clip}: no such file (set SHARPEYES_SHARED or pass --clip)")
    load_before = _cli.load_avg()
    if args.quick:
        args.repeats, args.detector_frames, args.baseline_frames = 1, 30, 30

    frames = decode_frames(args.clip, args.detector_frames)
    e2e: list[dict[str, Any]] = []
    det: list[dict[str, Any]] = []
    base: list[BaselineResult] = []
    rss_after_e2e = 0.0
    for r in range(args.repeats):
        order = ["e2e", "det", "base"] if r % 2 == 0 else ["base", "det", "e2e"]
        for what in order:
            if what == "e2e":
                e2e.append(run_e2e(args.clip, args.model, args.threads))
                rss_after_e2e = max(rss_after_e2e, peak_rss_mb())
            elif what == "det":
                det.append(run_detector_only(frames, args.model, args.threads))
            else:
                base.append(run_baseline(args.clip, args.model, args.threads, args.baseline_frames))
            sys.stderr.write(f"repeat {r + 1}/{args.repeats}: {what} done\n")

    ratio_det = [e["fps"] / d["fps"] for e, d in zip(e2e, det, strict=True)]
    ratio_base = [e["fps"] / b.fps for e, b in zip(e2e, base, strict=True)]
    stages: dict[str, float] = {}
    for k in e2e[0]["stage_median_ms"]:
        stages[k] = statistics.median(x["stage_median_ms"].get(k, 0.0) for x in e2e)
    result = {
        "clip": str(args.clip.name),
        "model": args.model,
        "input_size": det[0]["input"],
        "providers": e2e[0]["providers"],
        "threads": args.threads,
        "repeats": args.repeats,
        "e2e_fps_median": statistics.median(x["fps"] for x in e2e),
        "e2e_clip_fps_median": statistics.median(x["clip_fps"] for x in e2e),
        "e2e_frames_repeated": [x["frames_repeated"] for x in e2e],
        "detector_only_fps_median": statistics.median(x["fps"] for x in det),
        "baseline_fps_median": statistics.median(b.fps for b in base),
        "baseline_kind": base[0].kind,
        "baseline_input_size": base[0].input_size,
        "baseline_threads": "its own defaults (ONNX Runtime and torch)",
        "baseline_note": base[0].note,
        "baseline_nms_time_limit_hits": [b.nms_time_limit_hits for b in base],
        "frames": {
            "e2e": [x["frames"] for x in e2e],
            "detector": det[0]["frames"],
            "baseline": base[0].frames,
        },
        "ratio_e2e_over_detector": statistics.median(ratio_det),
        "ratio_e2e_over_baseline": statistics.median(ratio_base),
        "stage_median_ms": stages,
        "events_per_run": [x["events"] for x in e2e],
        "peak_rss_mb_after_e2e": round(rss_after_e2e, 1),
        "peak_rss_mb_total": round(peak_rss_mb(), 1),
        "machine": {**machine(), "load_avg_before": load_before, "load_avg_after": _cli.load_avg()},
        "runs": {"e2e": e2e, "detector": det, "baseline": [b.__dict__ for b in base]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(format_table(result))
    print(f"JSON: {args.out}")
    return 0


def format_table(r: dict[str, Any]) -> str:
    size = "x".join(str(v) for v in r["input_size"])
    bsize = "x".join(str(v) for v in r["baseline_input_size"])
    m = r["machine"]
    before = "/".join(f"{v:g}" for v in m.get("load_avg_before") or []) or "n/a"
    after = "/".join(f"{v:g}" for v in m.get("load_avg_after") or []) or "n/a"
    frames = r["frames"]
    e2e_frames = "/".join(str(v) for v in sorted(set(frames["e2e"])))
    lines = [
        f"clip {r['clip']} · model {r['model']} · providers {','.join(r['providers'])} · "
        f"{r['threads']} threads · {r['repeats']} repeats (medians)",
        f"machine: {m['cores']} cores ({m['cpu']}) · {', '.join(m.get('gpus') or []) or 'no GPU'}"
        f" · load {before} before, {after} after",
        "",
        f"| {'measure':46s} | {'value':>10s} |",
        f"|{'-' * 48}|{'-' * 12}|",
    ]
    rows = [
        (f"end-to-end analysed fps ({size}, {e2e_frames} fr)", f"{r['e2e_fps_median']:.1f}"),
        (
            f"end-to-end clip fps ({max(r['e2e_frames_repeated'])} repeats not analysed)",
            f"{r['e2e_clip_fps_median']:.1f}",
        ),
        (
            f"detector-only fps ({size}, {frames['detector']} fr)",
            f"{r['detector_only_fps_median']:.1f}",
        ),
        (
            f"baseline fps ({r['baseline_kind']}, {bsize}, {frames['baseline']} fr)",
            f"{r['baseline_fps_median']:.1f}",
        ),
        ("ratio e2e / detector-only", f"{r['ratio_e2e_over_detector']:.2f}"),
        ("ratio e2e / baseline", f"{r['ratio_e2e_over_baseline']:.2f}"),
        ("peak RSS after e2e runs (MB)", f"{r['peak_rss_mb_after_e2e']:.0f}"),
    ]
    rows += [(f"median {k} ms/frame", f"{v:.2f}") for k, v in r["stage_median_ms"].items()]
    lines += [f"| {a:46s} | {b:>10s} |" for a, b in rows]
    lines.append("")
    lines.append(f"baseline: {r['baseline_threads']} threads; {r['baseline_note']}")
    load = (m.get("load_avg_before") or [0.0])[0]
    if m.get("cores") and load > m["cores"]:
        lines.append(
            f"warning: load average {load:g} on {m['cores']} cores before the run: the ratio to "
            "the baseline is not reliable on a busy machine (on this project's 2-core box it "
            "read 1.9 at load 2.7 and 7-11 at load 7-15; the baseline keeps ONNX Runtime's "
            "spin-waiting threads, ours do not)"
        )
    hits = sum(r["baseline_nms_time_limit_hits"])
    if hits:
        lines.append(
            f"warning: the baseline's NMS hit its time limit {hits} times (upstream then keeps "
            "the boxes found so far): the box is too loaded for its numbers"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
