"""Vectorised non-maximum suppression and YOLO candidate selection (numpy only).

Semantics follow yolov5's ``non_max_suppression`` (v7.0) with ``multi_label=False``:
candidates with objectness > conf, score = obj × cls, best class per box, score > conf, sort by
score (at most ``max_nms``), greedy NMS where IoU > threshold suppresses, groups kept apart by
offsetting boxes by ``group × 7680`` px (as upstream does with class ids), at most ``max_det``.
The only difference is the group: upstream uses the class id; :class:`models.classes.ClassMap`
may put several vehicle classes in one group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
IndexArray = NDArray[np.intp]

MAX_WH = 7680.0  # yolov5's class offset (pixels): larger than any input side


def iou_one_to_many(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one xyxy box against (N, 4) boxes (areas without the +1 of old VOC code)."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IndexArray:
    """Greedy NMS; returns kept indices in descending score order.

    One vectorised IoU row per *kept* box (never a Python loop per candidate box).
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        order = rest[iou_one_to_many(boxes[i], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def batched_nms(
    boxes: FloatArray, scores: FloatArray, groups: NDArray[np.int64], iou_threshold: float
) -> IndexArray:
    """NMS within each group only (boxes of different groups never suppress each other)."""
    if boxes.size == 0:
        return np.zeros(0, dtype=np.intp)
    offset = (groups.astype(np.float32) * np.float32(MAX_WH))[:, None]
    return nms((boxes + offset).astype(np.float32), scores, iou_threshold)


def xywh_to_xyxy(xywh: FloatArray) -> FloatArray:
    out = np.empty_like(xywh)
    half = xywh[:, 2:4] / 2
    out[:, :2] = xywh[:, :2] - half
    out[:, 2:] = xywh[:, :2] + half
    return out


@dataclass(frozen=True, slots=True)
class Selected:
    """Boxes kept for one image: xyxy in model-input pixels, score, class id."""

    xyxy: FloatArray
    score: FloatArray
    class_id: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class NmsParams:
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_det: int = 300
    max_nms: int = 30000


def select_boxes(
    pred: FloatArray,
    params: NmsParams,
    class_group: NDArray[np.int64],
    class_allowed: NDArray[np.bool_] | None = None,
) -> Selected:
    """Pick final boxes from one image's (N, 5 + nc) rows ``cx, cy, w, h, obj, cls...``.

    ``class_group[c]`` is the NMS group of class ``c``; ``class_allowed[c]`` False drops boxes
    whose best class is ``c`` (before NMS, which cannot change the result of other groups).
    """
    cand = pred[pred[:, 4] > params.conf_threshold]
    if not len(cand):
        return empty_selection()
    cls_scores = cand[:, 5:] * cand[:, 4:5]
    cls = cls_scores.argmax(axis=1)
    score = cls_scores[np.arange(len(cls)), cls]
    mask = score > params.conf_threshold
    if class_allowed is not None:
        mask &= class_allowed[cls]
    if not mask.any():
        return empty_selection()
    return nms_best_class(cand[mask, :4], cls[mask], score[mask], class_group, params)


def nms_best_class(
    xywh: FloatArray,
    cls: NDArray[np.integer],
    score: FloatArray,
    class_group: NDArray[np.int64],
    params: NmsParams,
) -> Selected:
    """Candidates (their best class and its score) → final boxes: the ``max_nms`` best, greedy
    NMS within each class group, at most ``max_det`` — shared by every detector head."""
    order = np.argsort(-score, kind="stable")[: params.max_nms]
    xyxy = xywh_to_xyxy(xywh[order].astype(np.float32, copy=False))
    cls_i, sc = cls[order].astype(np.int64), score[order].astype(np.float32, copy=False)
    keep = batched_nms(xyxy, sc, class_group[cls_i], params.iou_threshold)[: params.max_det]
    return Selected(xyxy=xyxy[keep], score=sc[keep], class_id=cls_i[keep])


def empty_selection() -> Selected:
    """No box."""
    return Selected(
        xyxy=np.zeros((0, 4), np.float32),
        score=np.zeros(0, np.float32),
        class_id=np.zeros(0, np.int64),
    )
