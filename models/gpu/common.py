"""What the GPU detectors share: batch planning, device batches, candidate extraction on the
device, and the yolov5 postprocess of :mod:`models.yolo` (same NMS, classes and letterbox undo).

A backend subclasses :class:`YoloGpuBase` and implements ``_forward(tensor) -> device output``
(``[B, N, 5 + nc]`` rows ``cx, cy, w, h, obj, cls…`` in input pixels). Rows whose objectness is
not above the confidence threshold are dropped *on the device* before the copy to the host —
``select_boxes`` drops them first anyway, so the result is identical while the copy shrinks from
megabytes to kilobytes per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sharpeyes.models.classes import ClassMap
from sharpeyes.models.gpu.preprocess import Preprocessor, image_hw, plan_batch
from sharpeyes.models.nms import NmsParams, select_boxes
from sharpeyes.models.yolo import DetectorOptions, FloatArray, LetterboxGeometry, round_up
from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.types import Detections


@dataclass(frozen=True, slots=True)
class DeviceBatch:
    """A preprocessed batch on the backend's device and each image's letterbox geometry."""

    tensor: Any
    geometry: tuple[LetterboxGeometry, ...]

    def __len__(self) -> int:
        return len(self.geometry)


def to_host(array: Any) -> FloatArray:
    """A NumPy, CuPy or torch array → float32 NumPy (copies from the device)."""
    if isinstance(array, np.ndarray):
        return array.astype(np.float32, copy=False)
    if hasattr(array, "detach"):  # torch
        return np.asarray(array.detach().float().cpu().numpy(), dtype=np.float32)
    if hasattr(array, "get"):  # cupy
        return np.asarray(array.get(), dtype=np.float32)
    return np.asarray(array, dtype=np.float32)


def candidate_rows(raw: Any, conf: float, batch: int) -> list[FloatArray]:
    """Per image, the output rows with objectness > ``conf`` (as float32 host arrays)."""
    if isinstance(raw, np.ndarray):
        return [raw[i][raw[i, :, 4] > conf].astype(np.float32) for i in range(batch)]
    mask = raw[:batch, :, 4] > conf
    idx = mask.nonzero()
    if isinstance(idx, tuple):  # cupy returns a tuple of index arrays
        img, row = idx
    else:  # torch returns an (M, 2) index tensor
        img, row = idx[:, 0], idx[:, 1]
    rows = to_host(raw[img, row])
    owner = to_host(img).astype(np.int64)
    return [rows[owner == i] for i in range(batch)]


class YoloGpuBase:
    """Plan → preprocess (on the device) → forward → device filter → NMS → :class:`Detections`."""

    centre_letterbox = True

    def __init__(
        self,
        *,
        name: str,
        options: DetectorOptions,
        preprocessor: Preprocessor,
        default_size: tuple[int, int] = (640, 640),
        fixed_hw: tuple[int, int] | None = None,
        providers: tuple[str, ...] = (),
        threads: int = 0,
        fixed_batch: int | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.preprocessor = preprocessor
        self.classes = ClassMap(
            motorcycle_is_non_motor=options.motorcycle_is_non_motor,
            merge_vehicle_nms=options.merge_vehicle_nms,
        )
        self._allowed = None if options.keep_other_classes else self.classes.kind_of != 0
        self._params = NmsParams(
            conf_threshold=options.confidence_threshold,
            iou_threshold=options.iou_threshold,
            max_det=options.max_detections,
        )
        self.dynamic = fixed_hw is None
        size = fixed_hw or options.input_size or default_size
        self.input_hw = (round_up(size[0]), round_up(size[1])) if self.dynamic else size
        self._providers = providers
        self._threads = threads
        self._fixed_batch = fixed_batch

    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo(
            model=self.name,
            input_size=self.input_hw,
            providers=self._providers,
            intra_op_threads=self._threads,
            batch=self._fixed_batch,
        )

    def plan(self, images: Sequence[Any]) -> tuple[LetterboxGeometry, ...]:
        hws = [image_hw(im) for im in images]
        return plan_batch(hws, self.input_hw, dynamic=self.dynamic, centre=self.centre_letterbox)

    def preprocess(self, images: Sequence[Any]) -> DeviceBatch:
        if not images:
            raise ValueError("preprocess needs at least one image")
        geometry = self.plan(images)
        return DeviceBatch(self.preprocessor(images, geometry), geometry)

    def _forward(self, tensor: Any) -> Any:
        raise NotImplementedError

    def infer(self, batch: DeviceBatch) -> FloatArray:
        """The full raw output ``[B, N, C]`` on the host (for stage timing and parity checks)."""
        return to_host(self._forward(batch.tensor)[: len(batch)])

    def postprocess(self, raw: FloatArray, batch: DeviceBatch) -> list[Detections]:
        conf = self._params.conf_threshold
        return self._detections(candidate_rows(raw, conf, len(batch)), batch.geometry)

    def _detections(
        self, rows: Sequence[FloatArray], geometry: Sequence[LetterboxGeometry]
    ) -> list[Detections]:
        out = []
        for pred, geo in zip(rows, geometry, strict=True):
            sel = select_boxes(pred, self._params, self.classes.nms_group, self._allowed)
            out.append(
                Detections(
                    xyxy=geo.to_source(sel.xyxy),
                    confidence=sel.score.astype(np.float32),
                    class_id=sel.class_id,
                    kind=self.classes.kind_of[sel.class_id],
                )
            )
        return out

    def detect(self, images: Sequence[Any]) -> list[Detections]:
        """One :class:`Detections` per image (BGR host arrays or device BGR/NV12 arrays)."""
        if not images:
            return []
        batch = self.preprocess(images)
        raw = self._forward(batch.tensor)
        rows = candidate_rows(raw, self._params.conf_threshold, len(batch))
        return self._detections(rows, batch.geometry)

    def warmup(self, n: int = 1, image_hw: tuple[int, int] | None = None) -> None:
        h, w = image_hw or self.input_hw
        dummy = np.full((h, w, 3), 114, dtype=np.uint8)
        for _ in range(max(0, n)):
            self.detect([dummy])
