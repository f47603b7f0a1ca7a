"""Scenario model: a synthetic signalised intersection with scripted actors and signal phases.

Everything is in relative (0–1) coordinates of a ``frame_size`` frame; an actor's position is
its anchor (bottom centre of its box), linearly interpolated between waypoints.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from sharpeyes.pipeline.types import EventType, LampColor, ObjectKind

FRAME_SIZE = (640, 360)
WALL_T0_MS = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC; wall time = this + pts


@dataclass(frozen=True, slots=True)
class Phase:
    """From ``start_s`` on, the group shows ``color``."""

    start_s: float
    color: LampColor


def color_at(phases: tuple[Phase, ...], t: float) -> tuple[LampColor, float]:
    """(colour, since) of a phase list at time ``t``."""
    cur = phases[0]
    for p in phases:
        if p.start_s <= t + 1e-9:
            cur = p
    return cur.color, cur.start_s


@dataclass(frozen=True, slots=True)
class Actor:
    """A scripted object: waypoints ``(t, x, y)`` of its anchor, box size, occlusion gaps."""

    track_id: int
    kind: ObjectKind
    class_id: int
    waypoints: tuple[tuple[float, float, float], ...]
    size: tuple[float, float] = (0.09, 0.13)
    gaps: tuple[tuple[float, float], ...] = ()
    color_bgr: tuple[int, int, int] = (200, 200, 205)

    def anchor_at(self, t: float) -> tuple[float, float] | None:
        """Anchor at ``t`` (None before the first / after the last waypoint or in a gap)."""
        w = self.waypoints
        if t < w[0][0] or t > w[-1][0] or any(a <= t < b for a, b in self.gaps):
            return None
        for (t0, x0, y0), (t1, x1, y1) in itertools.pairwise(w):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return w[-1][1], w[-1][2]

    def box_at(self, t: float) -> tuple[float, float, float, float] | None:
        """Relative box ``(x1, y1, x2, y2)`` at ``t``; boxes grow towards the camera."""
        a = self.anchor_at(t)
        if a is None:
            return None
        scale = 0.6 + 0.6 * a[1]
        w, h = self.size[0] * scale, self.size[1] * scale
        return a[0] - w / 2, a[1] - h, a[0] + w / 2, a[1]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One named case with its ground truth (which tracks must raise which event)."""

    name: str
    fps: float
    duration_s: float
    phases: tuple[Phase, ...]
    actors: tuple[Actor, ...]
    expected: tuple[tuple[int, EventType], ...]
    ped_phases: tuple[Phase, ...] = (Phase(0.0, LampColor.GREEN),)
    jitter_px: float = 0.0
    flicker_every: int = 0  # lamp reads/draws dark every Nth frame (LED flicker); 0 = steady
    night: bool = False
    description: str = ""
    seed: int = 7
    tags: tuple[str, ...] = field(default=())

    @property
    def n_frames(self) -> int:
        return round(self.duration_s * self.fps)

    def pts(self, i: int) -> float:
        return i / self.fps

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)
