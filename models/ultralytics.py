"""Model families read from the ONNX file itself: metadata + output layout → detector head.

Ultralytics exports write ``names``, ``stride``, ``imgsz``, ``task`` (and ``end2end``) into the
ONNX ``metadata_props``; our yolov5 export writes ``names`` and ``stride``. The output layout
tells the head:

===============  =====================  ==================================================
family           output                 rows
===============  =====================  ==================================================
``yolov5``       ``[B, N, 5 + nc]``     ``cx, cy, w, h, obj, cls…`` (sigmoid applied)
``yolov8``       ``[B, 4 + nc, N]``     ``cx, cy, w, h, cls…`` — YOLOv8 / YOLO11 Detect, no obj
``yolov10``      ``[B, N, 6]``          ``x1, y1, x2, y2, score, class`` — NMS-free (v10, 26)
===============  =====================  ==================================================

All of them take RGB/255 NCHW input with a centred letterbox (pad 114), so they share
:class:`sharpeyes.models.yolo.YoloV5Detector`'s preprocessing and only differ in ``postprocess``.
A layout we do not know, an input that is not NCHW or a file onnxruntime cannot open is a
one-line :class:`ModelError` naming what was found.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sharpeyes.models.nms import NmsParams, Selected, empty_selection, nms_best_class
from sharpeyes.models.onnx_session import OnnxModel
from sharpeyes.models.yolo import Batch, FloatArray, YoloV5Detector
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.types import Detections

log = logging.getLogger(__name__)

HeadFamily = Literal["yolov5", "yolov8", "yolov10"]
HEAD_FAMILIES: tuple[HeadFamily, ...] = ("yolov5", "yolov8", "yolov10")


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """What an ONNX detector says about itself (metadata_props) and its input/output shapes."""

    names: tuple[str, ...] | None
    stride: int | None
    imgsz: tuple[int, int] | None
    task: str | None
    end2end: bool | None
    author: str | None
    input_shape: tuple[int | None, ...]
    output_shapes: tuple[tuple[int | None, ...], ...]

    @property
    def dynamic(self) -> bool:
        """True when height and width of the input are not fixed."""
        return len(self.input_shape) == 4 and None in self.input_shape[2:]


def _literal(text: str | None) -> object:
    if text is None:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_names(text: str | None) -> tuple[str, ...] | None:
    """Ultralytics ``names`` (``"{0: 'person', …}"`` or a list) → names by class id."""
    value = _literal(text)
    if isinstance(value, dict):
        try:
            ids = sorted(int(k) for k in value)
        except (TypeError, ValueError):
            return None
        if ids != list(range(len(ids))):
            return None
        return tuple(str(value.get(i, value.get(str(i)))) for i in ids)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return None


def _imgsz(text: str | None) -> tuple[int, int] | None:
    value = _literal(text)
    if isinstance(value, int):
        return value, value
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def _stride(text: str | None) -> int | None:
    value = _literal(text)
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple) and value:
        return int(max(value))
    return None


def read_metadata(model: OnnxModel) -> ModelMetadata:
    """Metadata and shapes of an opened model (no inference)."""
    meta = model.metadata
    outs = tuple(
        tuple(d if isinstance(d, int) and d > 0 else None for d in o.shape)
        for o in model.session.get_outputs()
    )
    task = meta.get("task")
    e2e = meta.get("end2end")
    return ModelMetadata(
        names=parse_names(meta.get("names")),
        stride=_stride(meta.get("stride")),
        imgsz=_imgsz(meta.get("imgsz")),
        task=task,
        end2end=None if e2e is None else e2e.strip().lower() == "true",
        author=meta.get("author"),
        input_shape=model.input_shape,
        output_shapes=outs,
    )


def _fmt(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def check_input(model: OnnxModel) -> None:
    """A detector needs one NCHW image input with 3 channels.

    Raises:
        ModelError: wrong rank or channel count (names the shape found).
    """
    shape = model.input_shape
    if len(shape) != 4:
        raise ModelError(
            f"{model.path.name}: input {model.input_name!r} has rank {len(shape)} {_fmt(shape)}; "
            "a detector needs an NCHW image input of rank 4 [B, 3, H, W]"
        )
    if shape[1] not in (None, 3):
        raise ModelError(
            f"{model.path.name}: input {model.input_name!r} {_fmt(shape)} has {shape[1]} "
            "channels; a detector needs 3 (NCHW)"
        )


def probe_output_shape(model: OnnxModel, hw: tuple[int, int]) -> tuple[int, ...]:
    """Shape of the first output for one dummy image of size ``hw`` (resolves dynamic dims)."""
    h, w = model.fixed_hw or hw
    dummy = np.zeros((model.fixed_batch or 1, 3, h, w), dtype=np.float32)
    try:
        out = model.run(dummy)[0]
    except Exception as e:  # onnxruntime raises its own untyped errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(
            f"{model.path.name}: inference on a {h}x{w} dummy input failed: {first}"
        ) from e
    return tuple(int(d) for d in out.shape)


def detect_family(meta: ModelMetadata, out_shape: Sequence[int], path_name: str) -> HeadFamily:
    """Which head decodes ``out_shape`` (a concrete ``[B, ·, ·]``), using ``meta`` when present.

    Raises:
        ModelError: a layout none of the heads knows (names the shape and the metadata found).
    """
    nc = len(meta.names) if meta.names else None
    found = f"output {_fmt(out_shape)}" + (f", {nc} class names in metadata" if nc else "")
    if meta.task not in (None, "detect"):
        raise ModelError(
            f"{path_name}: metadata task {meta.task!r} ({found}); only 'detect' models are "
            "detectors"
        )
    if len(out_shape) != 3:
        raise ModelError(
            f"{path_name}: unknown detector layout: {found}; expected [B, 4+nc, N] (YOLOv8/11), "
            "[B, N, 5+nc] (YOLOv5) or [B, N, 6] (YOLOv10/26)"
        )
    _, a, b = out_shape
    if meta.end2end and b == 6:
        return "yolov10"
    if nc is not None:
        if a == 4 + nc:
            return "yolov8"
        if b == 5 + nc:
            return "yolov5"
        if b == 6 and a != 4 + nc:
            return "yolov10"
    else:
        if b == 6 and a > b:
            return "yolov10"
        if 4 < a < b:  # channels first: few rows of many anchors
            return "yolov8"
        if 5 < b < a:
            return "yolov5"
    raise ModelError(
        f"{path_name}: unknown detector layout: {found}; expected [B, 4+nc, N] (YOLOv8/11), "
        "[B, N, 5+nc] (YOLOv5) or [B, N, 6] (YOLOv10/26)"
    )


def num_classes(family: HeadFamily, out_shape: Sequence[int]) -> int | None:
    """Class count implied by the layout (None for the NMS-free layout)."""
    if family == "yolov8":
        return int(out_shape[1]) - 4
    if family == "yolov5":
        return int(out_shape[2]) - 5
    return None


def select_class_scores(
    boxes_xywh: FloatArray,
    scores: FloatArray,
    params: NmsParams,
    class_group: np.ndarray,
    class_allowed: np.ndarray | None = None,
) -> Selected:
    """Ultralytics ``non_max_suppression`` (``multi_label=False``) for rows without objectness:
    best class per box, score > conf, sort (at most ``max_nms``), class-aware greedy NMS (our
    ``class_group`` may merge vehicle classes), at most ``max_det``."""
    best = scores.max(axis=1)
    keep = best > params.conf_threshold
    if not keep.any():
        return empty_selection()
    sc = scores[keep]
    cls = sc.argmax(axis=1)
    score = sc[np.arange(len(cls)), cls]
    xywh = boxes_xywh[keep]
    if class_allowed is not None:
        ok = class_allowed[cls]
        if not ok.any():
            return empty_selection()
        cls, score, xywh = cls[ok], score[ok], xywh[ok]
    return nms_best_class(xywh, cls, score, class_group, params)


def select_channels_first(
    pred: FloatArray,
    params: NmsParams,
    class_group: np.ndarray,
    class_allowed: np.ndarray | None = None,
) -> Selected:
    """:func:`select_class_scores` on one image's channels-first ``[4 + nc, N]`` output.

    The best score of every anchor is a reduction over the contiguous class rows; only the
    anchors above the threshold (tens of 8400) are then transposed and decoded, instead of
    walking the whole ``[N, nc]`` transposed view twice (max, then argmax)."""
    keep = pred[4:].max(axis=0) > params.conf_threshold
    if not keep.any():
        return empty_selection()
    rows = pred[:, keep].T  # [k, 4 + nc], a small contiguous copy
    return select_class_scores(rows[:, :4], rows[:, 4:], params, class_group, class_allowed)


class UltralyticsDetector(YoloV5Detector):
    """YOLOv8 / YOLO11 Detect exports: output ``[B, 4 + nc, N]``, no objectness."""

    def postprocess(self, raw: FloatArray, batch: Batch) -> list[Detections]:
        out = []
        for p, g in zip(raw, batch.geometry, strict=True):
            sel = select_channels_first(p, self._params, self.classes.nms_group, self._allowed)
            out.append(self._to_detections(sel, g))
        return out


class EndToEndDetector(YoloV5Detector):
    """NMS-free exports (YOLOv10, YOLO26): output ``[B, N, 6]`` = ``x1, y1, x2, y2, score, cls``
    in input pixels; boxes are only filtered by score, allowed class and ``max_det``."""

    def postprocess(self, raw: FloatArray, batch: Batch) -> list[Detections]:
        out = []
        n_cls = self.classes.num_classes
        for p, g in zip(raw, batch.geometry, strict=True):
            keep = p[:, 4] > self._params.conf_threshold
            rows = p[keep]
            cls = rows[:, 5].astype(np.int64)
            valid = (cls >= 0) & (cls < n_cls)
            if self._allowed is not None:
                valid &= self._allowed[np.clip(cls, 0, n_cls - 1)]
            rows, cls = rows[valid], cls[valid]
            order = np.argsort(-rows[:, 4], kind="stable")[: self._params.max_det]
            sel = Selected(
                xyxy=rows[order, :4].astype(np.float32),
                score=rows[order, 4].astype(np.float32),
                class_id=cls[order],
            )
            out.append(self._to_detections(sel, g))
        return out


HEAD_CLASSES: Mapping[HeadFamily, type[YoloV5Detector]] = {
    "yolov5": YoloV5Detector,
    "yolov8": UltralyticsDetector,
    "yolov10": EndToEndDetector,
}


@dataclass(frozen=True, slots=True)
class DetectedFamily:
    """The outcome of inspecting an ONNX detector."""

    family: HeadFamily
    names: tuple[str, ...] | None
    stride: int
    input_size: tuple[int, int]
    dynamic: bool
    output_shape: tuple[int, ...]
    metadata: ModelMetadata


def inspect_detector(
    model: OnnxModel, default_size: tuple[int, int] = (640, 640)
) -> DetectedFamily:
    """Family, class names, stride, input size and dynamic axes of an opened ONNX detector.

    Raises:
        ModelError: the input is not NCHW, or the output layout is unknown.
    """
    check_input(model)
    meta = read_metadata(model)
    size = model.fixed_hw or meta.imgsz or default_size
    out_shape = probe_output_shape(model, size)
    family = detect_family(meta, out_shape, model.path.name)
    names = meta.names
    nc = num_classes(family, out_shape)
    if names is not None and nc is not None and len(names) != nc:
        raise ModelError(
            f"{model.path.name}: metadata names {len(names)} classes but output "
            f"{_fmt(out_shape)} ({family} layout) has {nc}"
        )
    if names is None and nc is not None and nc != 80:
        names = tuple(f"class_{i}" for i in range(nc))
    return DetectedFamily(
        family=family,
        names=names,
        stride=meta.stride or 32,
        input_size=size,
        dynamic=model.fixed_hw is None,
        output_shape=out_shape,
        metadata=meta,
    )
