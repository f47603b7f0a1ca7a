"""Draw detections, tracks, signal states and events on a copy of a frame (annotated video)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from sharpeyes.pipeline.types import (
    Detections,
    Event,
    Frame,
    ImageBGR,
    LampColor,
    ObjectKind,
    SignalState,
    Tracks,
)

KIND_COLOURS: dict[int, tuple[int, int, int]] = {
    int(ObjectKind.MOTOR_VEHICLE): (255, 160, 0),
    int(ObjectKind.NON_MOTOR): (0, 200, 255),
    int(ObjectKind.PERSON): (80, 220, 80),
    int(ObjectKind.TRAFFIC_LIGHT): (200, 0, 200),
}
LAMP_COLOURS: dict[LampColor, tuple[int, int, int]] = {
    LampColor.RED: (0, 0, 255),
    LampColor.AMBER: (0, 191, 255),
    LampColor.GREEN: (0, 200, 0),
    LampColor.OFF: (90, 90, 90),
    LampColor.UNKNOWN: (200, 200, 200),
}
SHORT_KIND = {
    int(ObjectKind.MOTOR_VEHICLE): "veh",
    int(ObjectKind.NON_MOTOR): "nmv",
    int(ObjectKind.PERSON): "per",
    int(ObjectKind.TRAFFIC_LIGHT): "tl",
}


def _label(img: ImageBGR, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    y0 = max(th + 4, y)
    cv2.rectangle(img, (x, y0 - th - 4), (x + tw + 4, y0), colour, -1)
    cv2.putText(img, text, (x + 2, y0 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)


def annotate(
    frame: Frame,
    detections: Detections,
    tracks: Tracks,
    signals: Mapping[str, SignalState],
    events: Sequence[Event],
) -> ImageBGR:
    """Return an annotated copy: track boxes with id and kind, traffic lights, signal states."""
    img = frame.image.copy()
    lights = detections.of_kind(ObjectKind.TRAFFIC_LIGHT)
    for box in lights.xyxy.astype(np.int32):
        cv2.rectangle(img, (box[0], box[1]), (box[2], box[3]), KIND_COLOURS[4], 1)
    for i in range(len(tracks)):
        x1, y1, x2, y2 = (int(v) for v in tracks.xyxy[i])
        kind = int(tracks.kind[i])
        colour = KIND_COLOURS.get(kind, (255, 255, 255))
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        _label(img, f"#{int(tracks.track_id[i])} {SHORT_KIND.get(kind, '?')}", x1, y1, colour)
    y = 22
    for name, state in sorted(signals.items()):
        colour = LAMP_COLOURS[state.color]
        cv2.circle(img, (14, y - 5), 7, colour, -1)
        _label(img, f"{name}: {state.color.value} {state.duration:.1f}s", 26, y, colour)
        y += 22
    for ev in events:
        if ev.violation is not None and ev.best_box is not None:
            b = ev.best_box
            cv2.rectangle(img, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), (0, 0, 255), 3)
            _label(img, f"VIOLATION {ev.violation.code}", int(b.x1), int(b.y2) + 16, (0, 0, 255))
    _label(img, f"{frame.stream_id} pts {frame.pts:.2f}s", 4, frame.height - 4, (255, 255, 255))
    return img
