"""YOLOv5 detector on ONNX Runtime: letterbox → model → NMS → :class:`Detections`.

Pre/post-processing follows upstream yolov5 inference (``letterbox``, ``non_max_suppression``,
``scale_boxes``): with a dynamic-shape model the letterbox is rectangular (``auto=True``): the
long side is scaled to the input size and the short side padded to the next multiple of 32,
centred, pad value 114 — 1280×720 video becomes a 384×640 input. A static model gets the square
input it was exported with. Images of a batch share one input shape (the largest rectangle among
them), so frames of equal size from many streams run as one dynamic batch.

The three stages are public so a benchmark can time them separately:
``detect(images) == postprocess(infer(preprocess(images)), batch)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.models.classes import COCO80_NAMES, ClassMap
from sharpeyes.models.nms import NmsParams, Selected, select_boxes
from sharpeyes.models.onnx_session import OnnxModel
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.types import Detections, ImageBGR, ObjectKind

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]
PAD_VALUE = 114
STRIDE = 32


@dataclass(frozen=True, slots=True)
class LetterboxGeometry:
    """Where a source image sits inside the model input (all sizes are (height, width))."""

    src_hw: tuple[int, int]
    in_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    top: int
    left: int
    centred: bool = True

    @property
    def gain(self) -> float:
        """Scale from source to input pixels (yolov5 ``scale_boxes`` definition)."""
        return min(self.in_hw[0] / self.src_hw[0], self.in_hw[1] / self.src_hw[1])

    @property
    def pad(self) -> tuple[float, float]:
        """(x, y) padding as ``scale_boxes`` computes it; (0, 0) for a top-left letterbox."""
        if not self.centred:
            return 0.0, 0.0
        g = self.gain
        return (self.in_hw[1] - self.src_hw[1] * g) / 2, (self.in_hw[0] - self.src_hw[0] * g) / 2

    def to_source(self, xyxy: FloatArray) -> FloatArray:
        """Input-pixel boxes → source-pixel boxes, clipped to the image."""
        px, py = self.pad
        out = (xyxy - np.array([px, py, px, py], np.float32)) / np.float32(self.gain)
        h, w = self.src_hw
        np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
        return out.astype(np.float32)

    def to_input(self, xyxy: FloatArray) -> FloatArray:
        """Source-pixel boxes → input-pixel boxes (inverse of :meth:`to_source`)."""
        px, py = self.pad
        return (xyxy * np.float32(self.gain) + np.array([px, py, px, py], np.float32)).astype(
            np.float32
        )


def rect_shape(
    src_hw: tuple[int, int], new_hw: tuple[int, int], stride: int = STRIDE
) -> tuple[int, int]:
    """Input (h, w) of yolov5's ``letterbox(auto=True)``: fit, then pad to a stride multiple."""
    r = min(new_hw[0] / src_hw[0], new_hw[1] / src_hw[1])
    rh, rw = round(src_hw[0] * r), round(src_hw[1] * r)
    return rh + (new_hw[0] - rh) % stride, rw + (new_hw[1] - rw) % stride


def plan_letterbox(
    src_hw: tuple[int, int], in_hw: tuple[int, int], *, centre: bool = True
) -> LetterboxGeometry:
    """Fit ``src_hw`` into exactly ``in_hw`` (scale, then pad centred or at bottom-right)."""
    r = min(in_hw[0] / src_hw[0], in_hw[1] / src_hw[1])
    rh, rw = round(src_hw[0] * r), round(src_hw[1] * r)
    if not centre:
        return LetterboxGeometry(src_hw, in_hw, (rh, rw), 0, 0, centred=False)
    # yolov5: top = round(dh - 0.1) with dh = half the padding (odd padding → extra at bottom)
    top = round((in_hw[0] - rh) / 2 - 0.1)
    left = round((in_hw[1] - rw) / 2 - 0.1)
    return LetterboxGeometry(src_hw, in_hw, (rh, rw), top, left)


def round_up(value: int, multiple: int = STRIDE) -> int:
    return int(math.ceil(value / multiple) * multiple)


def letterbox_into(img: ImageBGR, geo: LetterboxGeometry, dst: NDArray[np.uint8]) -> None:
    """Resize ``img`` straight into its place in ``dst`` (an HxWx3 canvas, padding already
    filled), with the interpolation of ``cv2.resize``'s default (bilinear)."""
    rh, rw = geo.resized_hw
    place = dst[geo.top : geo.top + rh, geo.left : geo.left + rw]
    if img.shape[:2] == (rh, rw):
        place[...] = img
        return
    out = cv2.resize(img, (rw, rh), dst=place)
    if out is not place:  # OpenCV chose its own buffer (never seen): copy it in
        place[...] = out


def nchw_float(canvas: NDArray[np.uint8], *, scale: float, swap_rb: bool) -> FloatArray:
    """NHWC uint8 → NCHW float32 ``value * scale`` (channels reversed when ``swap_rb``) in one
    pass; bit-identical to ``cv2.dnn.blobFromImages(canvas, scale, swapRB=swap_rb)``."""
    n, h, w, c = canvas.shape
    src = canvas[..., ::-1] if swap_rb else canvas
    out = np.empty((n, c, h, w), dtype=np.float32)
    np.multiply(src.transpose(0, 3, 1, 2), np.float32(scale), out=out)
    return out


@dataclass(frozen=True, slots=True)
class DetectorOptions:
    """Thresholds and class handling shared by the YOLO detectors."""

    confidence_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    motorcycle_is_non_motor: bool = True
    merge_vehicle_nms: bool = True
    keep_other_classes: bool = False
    input_size: tuple[int, int] | None = None  # (h, w); None = the model's default
    kind_overrides: Mapping[str, ObjectKind] = field(default_factory=dict)  # class name → kind
    other_kind: ObjectKind = ObjectKind.OTHER  # kind of a class name we do not know


@dataclass(frozen=True, slots=True)
class Batch:
    """Preprocessed images: one NCHW float32 tensor and each image's letterbox geometry."""

    tensor: FloatArray
    geometry: tuple[LetterboxGeometry, ...]

    def __len__(self) -> int:
        return len(self.geometry)


class YoloV5Detector:
    """YOLOv5 (anchor-based, decoded output ``[B, N, 5 + nc]``) implementing ``Detector``."""

    centre_letterbox = True

    def __init__(
        self,
        model: OnnxModel,
        *,
        name: str,
        options: DetectorOptions | None = None,
        default_size: tuple[int, int] = (640, 640),
        class_names: Sequence[str] | None = None,
        stride: int = STRIDE,
    ) -> None:
        self.model = model
        self.name = name
        self.options = options or DetectorOptions()
        self.stride = stride
        self.classes = ClassMap(
            motorcycle_is_non_motor=self.options.motorcycle_is_non_motor,
            merge_vehicle_nms=self.options.merge_vehicle_nms,
            names=tuple(class_names) if class_names else COCO80_NAMES,
            kind_overrides=self.options.kind_overrides,
            other_kind=self.options.other_kind,
        )
        self._allowed = None if self.options.keep_other_classes else self.classes.allowed
        self._params = NmsParams(
            conf_threshold=self.options.confidence_threshold,
            iou_threshold=self.options.iou_threshold,
            max_det=self.options.max_detections,
        )
        fixed = model.fixed_hw
        self.dynamic = fixed is None
        size = fixed or self.options.input_size or default_size
        if fixed and self.options.input_size and tuple(self.options.input_size) != fixed:
            raise ModelError(
                f"{name}: input size {self.options.input_size} requested but the model is static "
                f"{fixed[0]}x{fixed[1]}"
            )
        self.input_hw = (
            (round_up(size[0], stride), round_up(size[1], stride)) if self.dynamic else size
        )

    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo(
            model=self.name,
            input_size=self.input_hw,
            providers=self.model.providers,
            intra_op_threads=self.model.config.intra_op_threads,
            batch=self.model.fixed_batch,
            class_names=self.classes.names,
        )

    # --- preprocessing -------------------------------------------------------------------

    def input_shape_for(self, src_hw: tuple[int, int]) -> tuple[int, int]:
        """Model input (h, w) used for one image of size ``src_hw`` on its own."""
        return rect_shape(src_hw, self.input_hw, self.stride) if self.dynamic else self.input_hw

    def plan(self, images: Sequence[ImageBGR]) -> tuple[LetterboxGeometry, ...]:
        """Letterbox geometry of each image inside the batch's shared input shape."""
        for im in images:
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise ValueError(
                    f"{self.name}: expected BGR uint8 HxWx3 images, got {im.dtype} {im.shape}"
                )
        shapes = [self.input_shape_for(im.shape[:2]) for im in images]
        in_hw = (max(s[0] for s in shapes), max(s[1] for s in shapes))
        return tuple(
            plan_letterbox(im.shape[:2], in_hw, centre=self.centre_letterbox) for im in images
        )

    def preprocess(self, images: Sequence[ImageBGR]) -> Batch:
        """Letterbox every image into one uint8 canvas (resized straight into its place), then
        one pass to NCHW float."""
        if not images:
            raise ValueError("preprocess needs at least one image")
        geometry = self.plan(images)
        h, w = geometry[0].in_hw
        canvas = np.full((len(images), h, w, 3), PAD_VALUE, dtype=np.uint8)
        for img, geo, dst in zip(images, geometry, canvas, strict=True):
            letterbox_into(img, geo, dst)
        return Batch(tensor=self.to_tensor(canvas), geometry=geometry)

    def to_tensor(self, canvas: NDArray[np.uint8]) -> FloatArray:
        """NHWC BGR uint8 → NCHW RGB float32 in 0..1."""
        return nchw_float(canvas, scale=1 / 255.0, swap_rb=True)

    # --- inference -----------------------------------------------------------------------

    def infer(self, batch: Batch) -> FloatArray:
        """Run the model; returns ``[B, N, C]`` (a fixed-batch-1 model runs image by image)."""
        if self.model.fixed_batch == 1 and len(batch) > 1:
            parts = [self.model.run(batch.tensor[i : i + 1])[0] for i in range(len(batch))]
            return np.concatenate(parts, axis=0)
        return self.model.run(batch.tensor)[0]

    # --- postprocessing ------------------------------------------------------------------

    def decode(self, raw: FloatArray, batch: Batch) -> FloatArray:
        """Model output → rows ``cx, cy, w, h, obj, cls...`` in input pixels (YOLOv5: as is)."""
        return raw

    def postprocess(self, raw: FloatArray, batch: Batch) -> list[Detections]:
        """NMS per image, undo the letterbox, map classes to kinds."""
        pred = self.decode(raw, batch)
        return [
            self._to_detections(
                select_boxes(p, self._params, self.classes.nms_group, self._allowed), g
            )
            for p, g in zip(pred, batch.geometry, strict=True)
        ]

    def _to_detections(self, sel: Selected, geo: LetterboxGeometry) -> Detections:
        return Detections(
            xyxy=geo.to_source(sel.xyxy),
            confidence=sel.score.astype(np.float32),
            class_id=sel.class_id,
            kind=self.classes.kind_of[sel.class_id],
        )

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        """Detect objects in each image (BGR uint8); one :class:`Detections` per image."""
        if not images:
            return []
        batch = self.preprocess(images)
        return self.postprocess(self.infer(batch), batch)

    def warmup(self, n: int = 1, image_hw: tuple[int, int] | None = None) -> None:
        """Run ``n`` full detections on a grey image (``image_hw``, default the input size)."""
        h, w = image_hw or self.input_hw
        dummy = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
        for _ in range(max(0, n)):
            self.detect([dummy])
