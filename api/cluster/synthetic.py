"""A deterministic fake camera and a fake GA/T 1400 receiver, for tests and the benchmark.

:class:`SyntheticCamera` models a *replayable* source (``docs/SCALE_OUT.md`` §2.3): position
``p`` is frame ``p`` of a clock that started at ``t0_ms``, and it yields exactly one event with
the id ``<camera>:<p>``. Every ``cadence_s`` it commits the positions up to live (at most
``backfill`` × its normal batch when behind, so a new owner catches up at 4× real time), through
the fenced commit. A stale lease stops it (state FENCED).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from dataclasses import dataclass

from sharpeyes.api.cluster.backend import ProgramContext
from sharpeyes.api.cluster.health import CameraState, CameraStatus
from sharpeyes.api.cluster.leases import CameraSpec, Lease, StaleLeaseError
from sharpeyes.api.cluster.storage import evidence_key
from sharpeyes.pipeline.clock import now_ms
from sharpeyes.pipeline.errors import SharpeyesError
from sharpeyes.pipeline.types import Event, EventType

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    t0_ms: int
    rate: float = 10.0  # positions (frames with one event each) per second
    cadence_s: float = 0.5
    backfill: int = 4
    evidence: bool = False

    @classmethod
    def parse(cls, text: str) -> SyntheticConfig:
        raw = json.loads(text or "{}")
        return cls(
            t0_ms=int(raw.get("t0_ms", now_ms())),
            rate=float(raw.get("rate", 10.0)),
            cadence_s=float(raw.get("cadence_s", 0.5)),
            backfill=int(raw.get("backfill", 4)),
            evidence=bool(raw.get("evidence", False)),
        )


def synthetic_spec(camera_id: str, *, cost: float = 1.0, **config: object) -> CameraSpec:
    """A spec for a synthetic camera whose clock starts now (``t0_ms``) unless given."""
    config.setdefault("t0_ms", now_ms())
    return CameraSpec(camera_id, cost=cost, kind="synthetic", config=json.dumps(config))


def synthetic_event(camera_id: str, pos: int, cfg: SyntheticConfig) -> Event:
    t_ms = cfg.t0_ms + int(pos * 1000 / cfg.rate)
    pts = pos / cfg.rate
    return Event(
        event_id=f"{camera_id}:{pos:09d}",
        type=EventType.VEHICLE_PASS,
        stream_id=camera_id,
        first_seen_ms=t_ms,
        last_seen_ms=t_ms,
        first_pts=pts,
        last_pts=pts,
        confidence=0.9,
    )


class SyntheticCamera:
    """One synthetic camera under one lease; a :class:`~api.cluster.backend.CameraProgram`."""

    def __init__(self, spec: CameraSpec, lease: Lease, ctx: ProgramContext) -> None:
        self.spec = spec
        self.cfg = SyntheticConfig.parse(spec.config)
        self.lease = lease
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"cam-{spec.camera_id}", daemon=True
        )
        self._state = CameraState.STARTING
        self._error: str | None = None
        self._commits = 0
        self._rejected = 0
        self._last_commit_ms: int | None = None
        self._recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=20)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _live_pos(self) -> int:
        return int((now_ms() - self.cfg.t0_ms) / 1000 * self.cfg.rate)

    def _loop(self) -> None:
        batch = max(1, round(self.cfg.rate * self.cfg.cadence_s))
        while not self._stop.is_set():
            n = min(self._live_pos() - self.lease.pos, batch * self.cfg.backfill)
            if n > 0 and not self._commit(n):
                return
            self._stop.wait(self.cfg.cadence_s)

    def _commit(self, n: int) -> bool:
        cam, pos = self.spec.camera_id, self.lease.pos
        events = [synthetic_event(cam, p, self.cfg) for p in range(pos + 1, pos + n + 1)]
        try:
            if self.cfg.evidence and self.ctx.storage is not None:
                for e in events:
                    self.ctx.storage.put(
                        evidence_key(e.event_id, "event.json"), e.event_id.encode()
                    )
            self.lease = self.ctx.leases.commit(
                self.lease, pos + n, events, outbox_destinations=self.ctx.outbox_destinations
            )
        except StaleLeaseError as e:
            self._rejected += 1
            self._state, self._error = CameraState.FENCED, str(e)
            log.warning("%s: %s; camera stopped", self.ctx.worker, e)
            return False
        except SharpeyesError as e:  # database or storage down: keep the lease, retry
            self._state, self._error = CameraState.STALLED, str(e)
            log.warning("%s: commit of %s failed: %s", self.ctx.worker, cam, e)
            return True
        self._commits += 1
        self._last_commit_ms = now_ms()
        self._recent.append((time.monotonic(), self.lease.pos))
        self._state, self._error = CameraState.RUNNING, None
        return True

    def status(self) -> CameraStatus:
        fps = 0.0
        if len(self._recent) >= 2:
            (t1, p1), (t2, p2) = self._recent[0], self._recent[-1]
            fps = (p2 - p1) / max(t2 - t1, 1e-6)
        return CameraStatus(
            camera_id=self.spec.camera_id,
            epoch=self.lease.epoch,
            state=self._state,
            pos=self.lease.pos,
            fps=fps,
            lag_s=max(0.0, (self._live_pos() - self.lease.pos) / self.cfg.rate),
            last_commit_ms=self._last_commit_ms,
            commits=self._commits,
            rejected=self._rejected,
            error=self._error,
        )


class CountingReceiver:
    """A fake upper platform: counts deliveries per object id (a known id is a success)."""

    def __init__(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self.posts = 0

    def post(self, object_ids: list[str]) -> int:
        with self._lock:
            self.posts += 1
            self._counts.update(object_ids)
            return len(object_ids)

    def stats(self) -> tuple[int, int]:
        """(unique ids received, duplicate deliveries)."""
        with self._lock:
            unique = len(self._counts)
            return unique, sum(self._counts.values()) - unique

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._counts)
