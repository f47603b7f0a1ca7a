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
        return Detections(
            xyxy=dets.xyxy[keep],
            confidence=dets.confidence[keep],
            class_id=dets.class_id[keep],
            kind=kinds[keep],
        )
