"""Make tests/golden/ultralytics_golden.json: Ultralytics' own predictions on golden images.

Run with an interpreter that has ``ultralytics`` (never imports sharpeyes), e.g.::

    YOLO_OFFLINE=1 /work/venv-ultralytics/bin/python tests/tools/make_ultralytics_golden.py \
        --model yolov8n_int8=../shared/models/yolov8n_int8_dynamic.onnx

``YOLO(path, task="detect").predict(image, conf, iou, imgsz)`` runs the ONNX file with
onnxruntime on the CPU; the boxes (source pixels), scores and class ids are stored per image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGES = (
    "images/bus.jpg",
    "images/zidane.jpg",
    "images/highway_1280x720_f0.jpg",
    "images/intersection_hanoi_b_f127_redlight.jpg",
    "images/intersection_topview_f302.jpg",
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", action="append", required=True, help="name=path.onnx")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--out", default=str(REPO / "tests" / "golden" / "ultralytics_golden.json"))
    args = ap.parse_args()

    import ultralytics
    from ultralytics import YOLO

    shared = Path(args.shared)
    out: dict[str, object] = {
        "tool": f"ultralytics {ultralytics.__version__} YOLO(path, task='detect').predict",
        "conf": args.conf,
        "iou": args.iou,
        "imgsz": args.imgsz,
        "models": {},
    }
    for item in args.model:
        name, _, path_text = item.partition("=")
        path = Path(path_text)
        model = YOLO(str(path), task="detect")
        images = []
        for rel in IMAGES:
            img = shared / rel
            r = model.predict(
                str(img), conf=args.conf, iou=args.iou, imgsz=args.imgsz, verbose=False
            )[0]
            b = r.boxes
            images.append(
                {
                    "source": rel,
                    "sha256": sha256(img),
                    "xyxy": [[round(float(v), 3) for v in row] for row in b.xyxy.tolist()],
                    "conf": [round(float(v), 5) for v in b.conf.tolist()],
                    "cls": [int(v) for v in b.cls.tolist()],
                }
            )
        out["models"][name] = {  # type: ignore[index]
            "file": path.name,
            "sha256": sha256(path),
            "images": images,
        }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
