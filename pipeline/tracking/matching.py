"""Association for the tracker: IoU cost with kind gating, solved as a linear assignment."""

from __future__ import annotations

from dataclasses import dataclass

import lap
import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.geometry import iou_matrix

BLOCKED_COST = 1e6
"""Cost of a forbidden pair (different object kinds); far above any usable threshold."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """Result of one association: matched (row, col) pairs and the leftovers on each side."""

    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    unmatched_rows: NDArray[np.intp]
    unmatched_cols: NDArray[np.intp]


def iou_cost(
    track_xyxy: NDArray[np.floating],
    track_kind: NDArray[np.integer],
    det_xyxy: NDArray[np.floating],
    det_kind: NDArray[np.integer],
    *,
    min_iou: float,
    det_score: NDArray[np.floating] | None = None,
) -> NDArray[np.float64]:
    """(T, D) association cost ``1 − IoU`` (or ``1 − IoU·score`` when ``det_score`` is given).

    The score fusion (ByteTrack's ``fuse_score``) only ranks candidates: the gate is on the raw
    IoU, and pairs below ``min_iou`` get :data:`BLOCKED_COST`. So do pairs whose object kinds
    differ: a person never continues a car's track, while model classes of the same kind
    (bus / truck / car are all motor vehicles) do.
    """
    iou = iou_matrix(track_xyxy, det_xyxy).astype(np.float64)
    sim = iou if det_score is None else iou * np.asarray(det_score, dtype=np.float64)[None, :]
    same_kind = np.asarray(track_kind)[:, None] == np.asarray(det_kind)[None, :]
    allowed = same_kind & (iou >= min_iou) & (iou > 0.0)
    return np.where(allowed, 1.0 - sim, BLOCKED_COST)


def assign(cost: NDArray[np.float64], max_cost: float) -> Assignment:
    """Minimum-cost one-to-one assignment keeping only pairs with ``cost <= max_cost``.

    Uses ``lap.lapjv`` (Jonker–Volgenant) on the rectangular matrix with ``cost_limit``, so rows
    and columns that would only match above the limit stay unmatched.
    """
    n_rows, n_cols = cost.shape
    all_rows = np.arange(n_rows, dtype=np.intp)
    all_cols = np.arange(n_cols, dtype=np.intp)
    empty = np.zeros(0, dtype=np.intp)
    if n_rows == 0 or n_cols == 0:
        return Assignment(empty, empty, all_rows, all_cols)
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=max_cost)
    x = np.asarray(x, dtype=np.intp)
    rows = np.flatnonzero(x >= 0).astype(np.intp)
    cols = x[rows]
    keep = cost[rows, cols] <= max_cost
    rows, cols = rows[keep], cols[keep]
    row_matched = np.zeros(n_rows, dtype=np.bool_)
    row_matched[rows] = True
    col_matched = np.zeros(n_cols, dtype=np.bool_)
    col_matched[cols] = True
    return Assignment(rows, cols, all_rows[~row_matched], all_cols[~col_matched])
