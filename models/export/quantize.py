"""INT8 static quantisation of the yolov5n ONNX detector (QDQ, per-channel weights, opset 13),
calibrated on frames of the sample clips, checked against FP32 on the golden frames.

    python -m sharpeyes.models.export.quantize [--out PATH] [--frames-per-clip 24]
        [--method minmax|entropy|percentile] [--register yolov5n_int8]

The detection head's box decoding (``/model.24/*`` except its three 1x1 convolutions) stays in
float: quantising pixel coordinates up to 640 to 8 bits would move boxes by pixels. The
result is an *opt-in* model: ``--register NAME`` adds it to the user registry
(:mod:`sharpeyes.models.user_registry`), after which ``detector.model: NAME`` selects it.
Export tool only: nothing imports it at run time.
"""

from __future__ import annotations

import argparse
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
METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
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


def agreement(ours: Sequence[Detections], ref: Sequence[Detections], min_iou: float = 0.5) -> Agreement:
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
