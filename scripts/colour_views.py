"""Candidate tracks and contact sheets for labelling colours by eye (tests/data/colour_labels.json).

    python scripts/colour_views.py VIDEO OUT_DIR [--config YAML] [--kind person|motor_vehicle]
                                   [--views 3] [--min-side 24] [--gap-s 0.3] [--per-sheet 12]

Runs the clip through the camera the config builds (the defaults when no config is given), with
an observer on the runner that records every *detected* box of every track. Per track of the
wanted kind it keeps up to ``--views`` best views (:func:`pipeline.events.box_quality`, at least
``--gap-s`` apart, shorter box side at least ``--min-side`` px) and writes

* ``OUT_DIR/tracks.json``: per track its views (``frame``: 0-based decode index of the clip,
  ``time_s``, ``box`` x1,y1,x2,y2 px) in the format of the label file's objects, without labels;
* ``OUT_DIR/sheet_NN.png``: contact sheets, one row per track: its number in ``tracks.json``,
  the best view's crop enlarged, the crop with its surroundings and the box drawn, and the other
  views. Nothing the product predicts (colour, class) is shown: a labeller reads the pictures
  only.

The frame index is checked against the decode order of OpenCV (what ``benchmarks.colour_eval``
reads): the observer's frame sequence numbers must be decode indices, so the clip must be
analysed in full (no ``--fps``) and repeated pictures are analysed too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from sharpeyes.api.node.camera import CameraEnv, build_camera, build_detector
from sharpeyes.pipeline.config import load_camera_config
from sharpeyes.pipeline.events import box_quality
from sharpeyes.pipeline.types import ObjectKind

Row = tuple[int, float, tuple[float, float, float, float], float]  # frame, pts, box, quality


def record(video: Path, config: Path | None, kind: ObjectKind) -> dict[int, list[Row]]:
    """Every detected box of every track of ``kind``, per track id."""
    cam = load_camera_config(config)
    update: dict[str, object] = {"url": str(video), "skip_repeated_frames": False}
    cam = cam.model_copy(update=update)
    seen: dict[int, list[Row]] = {}

    def observe(frame, dets, tracks, signals, events) -> None:  # type: ignore[no-untyped-def]
        h, w = frame.image.shape[:2]
        q = box_quality(tracks.xyxy, tracks.confidence, w, h)
        for i, tid in enumerate(tracks.track_id):
            if int(tracks.kind[i]) != int(kind) or not bool(tracks.detected[i]):
                continue
            x1, y1, x2, y2 = (round(float(v), 1) for v in tracks.xyxy[i])
            seen.setdefault(int(tid), []).append(
                (frame.seq, frame.pts, (x1, y1, x2, y2), float(q[i]))
            )

    out = Path("/tmp/colour_views_files")
    camera = build_camera(
        cam, CameraEnv(files_root=out), detector=build_detector(cam), sinks=[], observer=observe
    )
    try:
        camera.runner.run()
    finally:
        camera.close()
    return seen


def best_views(rows: list[Row], n: int, min_side: float, gap_s: float) -> list[Row]:
    ok = [r for r in rows if min(r[2][2] - r[2][0], r[2][3] - r[2][1]) >= min_side]
    chosen: list[Row] = []
    for r in sorted(ok, key=lambda r: -r[3]):
        if all(abs(r[1] - c[1]) >= gap_s for c in chosen):
            chosen.append(r)
        if len(chosen) == n:
            break
    return sorted(chosen, key=lambda r: r[0])


def frames_of(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out: dict[int, np.ndarray] = {}
    i = 0
    while i <= max(wanted, default=-1):
        if not cap.grab():
            break
        if i in wanted:
            ok, img = cap.retrieve()
            if ok:
                out[i] = img
        i += 1
    cap.release()
    return out


def tile(img: np.ndarray, box: tuple[float, float, float, float], height: int) -> list[np.ndarray]:
    """The box's crop and the crop with its surroundings (box drawn), both ``height`` px tall."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box)
    crop = img[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
    mx, my = (x2 - x1), (y2 - y1) // 2
    ctx = img[max(0, y1 - my) : min(h, y2 + my), max(0, x1 - mx) : min(w, x2 + mx)].copy()
    cv2.rectangle(
        ctx,
        (x1 - max(0, x1 - mx), y1 - max(0, y1 - my)),
        (x2 - max(0, x1 - mx), y2 - max(0, y1 - my)),
        (0, 255, 255),
        1,
    )
    return [
        cv2.resize(c, (max(1, c.shape[1] * height // max(c.shape[0], 1)), height))
        for c in (crop, ctx)
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--config", type=Path)
    ap.add_argument("--kind", choices=("person", "motor_vehicle", "non_motor"), default="person")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--min-side", type=float, default=24.0)
    ap.add_argument("--gap-s", type=float, default=0.3)
    ap.add_argument("--per-sheet", type=int, default=12)
    ap.add_argument("--height", type=int, default=160)
    a = ap.parse_args(argv)
    kind = ObjectKind[a.kind.upper()]
    seen = record(a.video, a.config, kind)
    tracks = [
        (tid, v)
        for tid in sorted(seen)
        if (v := best_views(seen[tid], a.views, a.min_side, a.gap_s))
    ]
    a.out.mkdir(parents=True, exist_ok=True)
    doc = [
        {
            "track": tid,
            "views": [{"frame": f, "time_s": round(t, 4), "box": list(b)} for f, t, b, _ in views],
        }
        for tid, views in tracks
    ]
    (a.out / "tracks.json").write_text(json.dumps(doc, indent=1))
    frames = frames_of(a.video, {r[0] for _, views in tracks for r in views})
    for s in range(0, len(tracks), a.per_sheet):
        rows = []
        for n, (_, views) in enumerate(tracks[s : s + a.per_sheet], start=s):
            parts: list[np.ndarray] = []
            for j, (f, _, b, _) in enumerate(views):
                pair = tile(frames[f], b, a.height)
                parts += pair if j == 0 else pair[:1]
            label = np.full((a.height, 70, 3), 255, np.uint8)
            cv2.putText(label, f"#{n}", (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 2)
            rows.append(np.hstack([label, *[np.pad(p, ((0, 0), (0, 6), (0, 0))) for p in parts]]))
        width = max(r.shape[1] for r in rows)
        sheet = np.vstack([np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0))) for r in rows])
        cv2.imwrite(str(a.out / f"sheet_{s // a.per_sheet:02d}.png"), sheet)
    sys.stdout.write(f"{len(tracks)} tracks with views → {a.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
