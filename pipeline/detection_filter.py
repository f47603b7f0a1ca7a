"""What one camera makes of a shared detector's output: kinds, thresholds, classes kept.

A node runs one batched detector for all its cameras, so the detector cannot know a camera's
settings. It returns every box it found (model class ids and raw scores, NMS done once for all
cameras) and each camera applies :class:`CameraDetectionFilter` after it — the same filter in
``analyze``, ``run``/``serve``, worker processes and the cluster, so a camera sees the same
detections whichever entry point runs it.

Class ids are mapped to :class:`ObjectKind` by class *name* with the model layer's one table
(:func:`sharpeyes.models.classes.kind_for_name`; the detector reports its class list in
:attr:`DetectorInfo.class_names`, empty means COCO-80), so a custom model works too. A
motorcycle is a non-motor vehicle or a motor vehicle per camera (``motorcycle_is_non_motor``;
under Chinese law a 摩托车 is a motor vehicle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.types import Detections, ObjectKind

TWO_WHEELER_SAME_IOU = 0.6  # a bicycle and a motorcycle box this alike are one two-wheeler
BICYCLE_NAMES = frozenset({"bicycle"})
MOTORCYCLE_NAMES = frozenset({"motorcycle", "motorbike", "motor"})


def _iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
    """IoU of every box of ``a`` with every box of ``b`` (xyxy), shape (len(a), len(b))."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0), np.float64)


@dataclass(frozen=True, slots=True)
class DetectionPolicy:
    """The per-camera part of detection (from the camera's ``detector`` section)."""

    confidence_threshold: float = 0.25
    motorcycle_is_non_motor: bool = True
    keep_other_classes: bool = False
    class_kinds: tuple[tuple[str, str], ...] = ()  # (class name, kind name) overrides
    other_class_kind: str = "other"


@dataclass(frozen=True, slots=True)
class CameraDetectionFilter:
    """Detections of the shared detector → this camera's detections (see module docstring)."""

    policy: DetectionPolicy
    class_names: tuple[str, ...]
    kind_table: NDArray[np.int8] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from sharpeyes.models.classes import kind_table

        p = self.policy
        table = kind_table(
            p.motorcycle_is_non_motor,
            self.class_names,
            {name: ObjectKind[kind.upper()] for name, kind in p.class_kinds},
            ObjectKind[p.other_class_kind.upper()],
        )
        object.__setattr__(self, "kind_table", table)

    @classmethod
    def for_names(cls, policy: DetectionPolicy, names: Sequence[str]) -> CameraDetectionFilter:
        """A filter for a detector's class list (empty → COCO-80)."""
        if not names:
            from sharpeyes.models.classes import COCO80_NAMES

            names = COCO80_NAMES
        return cls(policy, tuple(names))

    def _two_wheeler_duplicates(
        self, dets: Detections, keep: NDArray[np.bool_]
    ) -> NDArray[np.bool_]:
        """Boxes that are one two-wheeler seen as both a bicycle and a motorcycle: the lower
        scoring box of every such pair overlapping by IoU ≥ :data:`TWO_WHEELER_SAME_IOU`. The
        detector's NMS runs per class, so it keeps both, and the same bike then became two
        tracks and two records of different kinds (a rear view of a motorbike also called a
        bicycle; 4 of the 8 mistyped two-wheelers of hanoi_b)."""
        dup = np.zeros(len(dets), dtype=bool)
        ids = dets.class_id
        bikes = np.flatnonzero(keep & np.isin(ids, self.bicycle_ids))
        motos = np.flatnonzero(keep & np.isin(ids, self.motorcycle_ids))
        if len(bikes) == 0 or len(motos) == 0:
            return dup
        iou = _iou(dets.xyxy[bikes], dets.xyxy[motos])
        for i, j in zip(*np.nonzero(iou >= TWO_WHEELER_SAME_IOU), strict=True):
            b, m = bikes[i], motos[j]
            dup[b if dets.confidence[b] < dets.confidence[m] else m] = True
        return dup

    @property
    def bicycle_ids(self) -> NDArray[np.int64]:
        return np.array(
            [i for i, n in enumerate(self.class_names) if n.lower() in BICYCLE_NAMES], np.int64
        )

    @property
    def motorcycle_ids(self) -> NDArray[np.int64]:
        return np.array(
            [i for i, n in enumerate(self.class_names) if n.lower() in MOTORCYCLE_NAMES],
            np.int64,
        )

    def describe(self) -> str:
        p = self.policy
        moto = "non-motor" if p.motorcycle_is_non_motor else "motor vehicle"
        return f"score ≥ {p.confidence_threshold:g}, motorcycle = {moto}"

    def __call__(self, dets: Detections) -> Detections:
        if len(dets) == 0:
            return dets
        ids = dets.class_id
        inside = (ids >= 0) & (ids < len(self.kind_table))
        kinds = np.full(len(dets), int(ObjectKind.OTHER), dtype=np.int8)
        kinds[inside] = self.kind_table[ids[inside]]
        keep = dets.confidence >= self.policy.confidence_threshold
        if not self.policy.keep_other_classes:
            keep &= kinds != int(ObjectKind.OTHER)
        keep &= ~self._two_wheeler_duplicates(dets, keep)
        return Detections(
            xyxy=dets.xyxy[keep],
            confidence=dets.confidence[keep],
            class_id=dets.class_id[keep],
            kind=kinds[keep],
        )
