"""Shared helpers for the model-layer tests (data location, frame decoding, box matching)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, NoReturn

import av
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from sharpeyes.models.nms import iou_one_to_many
from sharpeyes.pipeline.errors import ModelNotFoundError

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "yolov5n_golden.json"


def shared_dir() -> Path:
    env = os.environ.get("SHARPEYES_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip locally; fail when CI sets SHARPEYES_REQUIRE_ALL=1 (same rule as conftest.need)."""
    if os.environ.get("SHARPEYES_REQUIRE_ALL") == "1":
        pytest.fail(f"required dependency missing: {reason}")
    pytest.skip(reason)


def require_shared(rel: str) -> Path:
    path = shared_dir() / rel
    if not path.exists():
        skip_or_fail(f"shared data {path} not available")
    return path


@functools.cache
def load_image(rel: str, frame: int | None = None) -> NDArray[np.uint8]:
    """A shared still image (``frame`` None) or frame ``frame`` of a shared video, BGR."""
    path = require_shared(rel)
    if frame is None:
        img = cv2.imread(str(path))
        assert img is not None, path
        return np.asarray(img, dtype=np.uint8)
    with av.open(str(path)) as container:
        for i, f in enumerate(container.decode(video=0)):
            if i == frame:
                return np.ascontiguousarray(f.to_ndarray(format="bgr24"))
    raise IndexError(f"{path}: no frame {frame}")


@functools.cache
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


def detector_or_skip(model: str, **kwargs: Any) -> Any:
    """``create_detector`` that skips the test when the model cannot be resolved here."""
    from sharpeyes.models.factory import create_detector

    try:
        return create_detector(model, **kwargs)
    except ModelNotFoundError as e:
        skip_or_fail(str(e))


def match_boxes(
    ours_xyxy: NDArray[np.float32],
    ours_cls: NDArray[np.int64],
    ref_xyxy: NDArray[np.float32],
    ref_cls: NDArray[np.int64],
) -> tuple[list[tuple[int, int, float]], list[int], list[int]]:
    """Greedy one-to-one matching of same-class boxes by IoU.

    Returns (pairs (ref index, our index, IoU), unmatched ref indices, unmatched our indices).
    """
    pairs: list[tuple[int, int, float]] = []
    free = set(range(len(ours_xyxy)))
    for r in range(len(ref_xyxy)):
        cands = [o for o in free if ours_cls[o] == ref_cls[r]]
        if not cands:
            continue
        ious = iou_one_to_many(ref_xyxy[r], ours_xyxy[cands])
        best = int(np.argmax(ious))
        if ious[best] > 0.5:
            pairs.append((r, cands[best], float(ious[best])))
            free.discard(cands[best])
    matched_ref = {p[0] for p in pairs}
    return pairs, [r for r in range(len(ref_xyxy)) if r not in matched_ref], sorted(free)
