"""INT8 static quantisation of the yolov5n ONNX detector (QDQ, per-channel weights, opset 13),
calibrated on frames of the sample clips, checked against FP32 on the golden frames.

    python -m sharpeyes.models.export.quantize [--out PATH] [--frames-per-clip 16]
        [--float-head-convs] [--register yolov5n_int8]

The detection head's box decoding (``/model.24/*`` except its three 1x1 convolutions) and the
shape arithmetic stay in float: quantising pixel coordinates up to 640 to 8 bits would move
boxes by pixels, and a quantised upsampling size would be frozen to the calibration shape. The
result is an *opt-in* model, registered (``--register NAME``, user registry) only when its
boxes agree with FP32 on the golden frames (F1 >= 0.97, same class, IoU >= 0.5). Measured
2026-12-03 on the 2-core box: F1 0.94 (MinMax; 0.94 with float head convs) and only ~11 % less
inference CPU than FP32 (ONNX Runtime 1.32, AVX-512 VNNI), so it is not the default.
Export tool only: nothing imports it at run time.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from sharpeyes.models.yolo import YoloV5Detector
from sharpeyes.pipeline.types import Detections
from sharpeyes.streams.file_source import FileSource

log = logging.getLogger(__name__)

HEAD_PREFIX = "/model.24/"
CALIBRATION_CLIPS = (
    "highway_1280x720.mp4",
    "pedestrians_crossing_1280x720.mp4",
    "intersection_hanoi_b_640x480.mp4",
    "intersection_topview_640x480.mp4",
    "urban_buses_596x336.mp4",
    "plates_closeup_beijing_640x360.mp4",
)
# Histogram calibrators (entropy, percentile) need one input shape; the clips give several.
METHODS = {"minmax": CalibrationMethod.MinMax}
MIN_OPSET = 13  # per-channel QuantizeLinear needs the axis attribute of opset 13


class TensorReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds preprocessed NCHW tensors to the calibrator, one per call."""

    def __init__(self, input_name: str, tensors: Sequence[NDArray[np.float32]]) -> None:
        self._input_name = input_name
        self._items: Iterator[NDArray[np.float32]] = iter(tensors)

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        tensor = next(self._items, None)
        return None if tensor is None else {self._input_name: tensor}


def sample_images(clip: Path, count: int) -> list[NDArray[np.uint8]]:
    """``count`` frames spread evenly over a clip (BGR)."""
    with FileSource(clip) as src:
        total = src.info.frame_count or 300
        step = max(1, total // count)
        return [f.image for f in src.frames() if f.seq % step == 0][:count]


def calibration_tensors(
    detector: YoloV5Detector, clips: Sequence[Path], per_clip: int
) -> list[NDArray[np.float32]]:
    """Each sampled frame preprocessed exactly as at run time (batch of one)."""
    return [
        detector.preprocess([image]).tensor
        for clip in clips
        for image in sample_images(clip, per_clip)
    ]


def float_nodes(model: onnx.ModelProto, *, head_convs: bool = False) -> list[str]:
    """Nodes to keep in float: the detection head's decoding (all but its convolutions) and
    every node computing a shape (downstream of a ``Shape``, e.g. the upsampling sizes: the
    calibration would freeze them to the calibration input size), except ``Resize`` itself;
    ``head_convs`` also keeps the head's convolutions (its logits) in float."""
    shape_values: set[str] = set()
    keep: list[str] = []
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        from_shape = node.op_type == "Shape" or any(i in shape_values for i in node.input)
        if from_shape and node.op_type != "Resize":
            shape_values.update(node.output)
            keep.append(node.name)
        elif node.name.startswith(HEAD_PREFIX) and (head_convs or node.op_type != "Conv"):
            keep.append(node.name)
    return keep


def with_opset(src: Path, dst: Path, opset: int = MIN_OPSET) -> onnx.ModelProto:
    """``src`` converted to at least ``opset`` (written to ``dst``)."""
    model = onnx.load(str(src))
    current = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if current < opset:
        model = version_converter.convert_version(model, opset)
    onnx.save(model, str(dst))
    return model


def quantize_detector(
    src: Path,
    dst: Path,
    tensors: Sequence[NDArray[np.float32]],
    *,
    input_name: str,
    method: str = "minmax",
    float_head_convs: bool = False,
) -> Path:
    """Write the QDQ INT8 model of ``src`` to ``dst`` (uint8 activations, int8 per-channel
    weights), calibrated on ``tensors``."""
    with tempfile.TemporaryDirectory(prefix="sharpeyes-quant-") as tmp:
        float_path = Path(tmp) / "float_opset13.onnx"
        model = with_opset(src, float_path)
        quantize_static(
            str(float_path),
            str(dst),
            TensorReader(input_name, tensors),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=METHODS[method],
            nodes_to_exclude=float_nodes(model, head_convs=float_head_convs),
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    log.info("wrote %s (%d bytes)", dst, dst.stat().st_size)
    return dst


# --- agreement with FP32 -----------------------------------------------------------------------


def _iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def matched_ious(ours: Detections, ref: Detections, min_iou: float) -> list[float]:
    """IoUs of greedy one-to-one matches of same-class boxes with IoU ≥ ``min_iou``."""
    if not len(ours) or not len(ref):
        return []
    m = _iou(ours.xyxy, ref.xyxy)
    m[ours.class_id[:, None] != ref.class_id[None, :]] = 0.0
    out: list[float] = []
    while m.size:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        if m[i, j] < min_iou:
            break
        out.append(float(m[i, j]))
        m[i, :] = 0.0
        m[:, j] = 0.0
    return out


@dataclass(frozen=True, slots=True)
class Agreement:
    """Boxes of a model against the FP32 reference over a set of frames."""

    f1: float
    matched: int
    ours: int
    reference: int
    worst_iou: float
    median_iou: float


def agreement(
    ours: Sequence[Detections], ref: Sequence[Detections], min_iou: float = 0.5
) -> Agreement:
    """F1 of IoU-matched, same-class boxes over frames, with the matched IoUs."""
    ious = [iou for a, b in zip(ours, ref, strict=True) for iou in matched_ious(a, b, min_iou)]
    n_ours, n_ref = sum(len(a) for a in ours), sum(len(b) for b in ref)
    f1 = 2 * len(ious) / (n_ours + n_ref) if n_ours + n_ref else 1.0
    return Agreement(
        f1=f1,
        matched=len(ious),
        ours=n_ours,
        reference=n_ref,
        worst_iou=min(ious, default=1.0),
        median_iou=float(np.median(ious)) if ious else 1.0,
    )


# --- command line ------------------------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "yolov5n_golden.json"
MIN_AGREEMENT = 0.97


def golden_images(shared: Path) -> list[NDArray[np.uint8]]:
    """The golden frames (tests/golden/yolov5n_golden.json) from the shared data folder."""
    import cv2

    images: list[NDArray[np.uint8]] = []
    for entry in json.loads(GOLDEN.read_text())["images"]:
        path = shared / entry["source"]
        if entry.get("frame") is None:
            images.append(np.asarray(cv2.imread(str(path)), dtype=np.uint8))
            continue
        with FileSource(path) as src:
            images.append(next(f.image for f in src.frames() if f.seq == entry["frame"]))
    return images


def check_agreement(fp32: YoloV5Detector, int8: YoloV5Detector, shared: Path) -> Agreement:
    """Boxes of ``int8`` against ``fp32`` on the golden frames."""
    images = golden_images(shared)
    return agreement(
        [int8.detect([im])[0] for im in images], [fp32.detect([im])[0] for im in images]
    )


def main(argv: list[str] | None = None) -> int:
    from sharpeyes.models.factory import build_onnx_detector
    from sharpeyes.models.onnx_session import SessionConfig
    from sharpeyes.models.registry import get_model_spec
    from sharpeyes.models.resolve import resolve_model
    from sharpeyes.models.user_registry import add_user_model
    from sharpeyes.models.yolo import DetectorOptions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared")
    ap.add_argument("--out", type=Path, default=Path("yolov5n_int8_qdq.onnx"))
    ap.add_argument("--frames-per-clip", type=int, default=16)
    ap.add_argument("--method", choices=sorted(METHODS), default="minmax")
    ap.add_argument("--float-head-convs", action="store_true")
    ap.add_argument("--register", metavar="NAME", help="add to the user registry if it agrees")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    session = SessionConfig(providers="cpu", intra_op_threads=1)
    options = DetectorOptions(keep_other_classes=True, merge_vehicle_nms=False)
    fp32 = build_onnx_detector(model="yolov5n", model_path=None, session=session, options=options)
    assert isinstance(fp32, YoloV5Detector)
    clips = [args.shared / "sample_videos" / c for c in CALIBRATION_CLIPS]
    tensors = calibration_tensors(fp32, clips, args.frames_per_clip)
    quantize_detector(
        resolve_model(get_model_spec("yolov5n")),
        args.out,
        tensors,
        input_name=fp32.model.input_name,
        method=args.method,
        float_head_convs=args.float_head_convs,
    )
    int8 = build_onnx_detector(model=None, model_path=args.out, session=session, options=options)
    assert isinstance(int8, YoloV5Detector)
    found = check_agreement(fp32, int8, args.shared)
    log.info("agreement with FP32 on the golden frames: %s", found)
    if found.f1 < MIN_AGREEMENT:
        log.error("F1 %.3f < %.2f: not registered", found.f1, MIN_AGREEMENT)
        return 1
    if args.register:
        add_user_model(args.out, name=args.register, licence="AGPL-3.0 (derived from yolov5n.pt)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
