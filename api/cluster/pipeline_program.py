"""The ``pipeline`` camera kind: a real sharpeyes camera running under a cluster lease.

``CameraSpec.config`` is a :class:`~pipeline.config.CameraConfig` as JSON. The program builds
the same per-camera pipeline as ``sharpeyes.api.node.camera`` (source → detector → ByteTrack → track
events, + signal board, red-light rules and evidence when the camera has an intersection) and
replaces the store sinks with a :class:`LeaseCommitter`: events are batched and committed with
the camera position through :meth:`~api.cluster.leases.LeaseStore.commit`, so a fenced owner
(:class:`~sharpeyes.api.cluster.leases.StaleLeaseError`) writes nothing and stops the camera.

Positions: for a file, position ``p`` means "frames with ``seq < p`` are done" (``seq`` is the
decoded-frame index), and the end of the file is one extra position (``last seq + 2``). A new
owner re-analyses the frames before ``p`` with emission suppressed (all of them by default, or
``replay_s`` of them) so its tracker is in the state the old owner's was, then commits from
``p`` on; with a full replay it reproduces the old owner's event ids exactly, and the ids
already committed are skipped by ``ON CONFLICT DO NOTHING`` anyway. A live (RTSP) camera cannot
be rewound: its position counts analysed frames, and a failover is a coverage gap
(``docs/SCALE_OUT.md`` §2.3).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from sharpeyes.api.cluster.backend import ProgramContext
from sharpeyes.api.cluster.health import CameraState, CameraStatus
from sharpeyes.api.cluster.leases import CameraSpec, Lease, LeaseStore, StaleLeaseError
from sharpeyes.api.cluster.storage import (
    CROP_NAME,
    PLATE_NAME,
    SCENE_NAME,
    EvidenceStorage,
    evidence_key,
)
from sharpeyes.api.node.health import face_counts, plate_sizes
from sharpeyes.pipeline.clock import now_ms
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError, SharpeyesError
from sharpeyes.pipeline.protocols import FrameSource, SourceInfo
from sharpeyes.pipeline.runner import StreamRunner
from sharpeyes.pipeline.signal_input import PhaseHub

if TYPE_CHECKING:
    from sharpeyes.api.node.camera import Camera
from sharpeyes.pipeline.types import Event, Frame

log = logging.getLogger(__name__)


def parse_camera(spec: CameraSpec) -> CameraConfig:
    """The spec's :class:`CameraConfig`, with the spec's camera id.

    Raises:
        ConfigError: the config is not a valid camera or has no url.
    """
    try:
        cam = CameraConfig.model_validate_json(spec.config or "{}")
    except ValidationError as e:
        raise ConfigError(f"camera {spec.camera_id}: {e.errors()[0]['msg']}") from e
    if cam.url is None:
        raise ConfigError(f"camera {spec.camera_id}: a pipeline camera needs a url")
    return cam.model_copy(update={"id": spec.camera_id})


def pipeline_spec(
    cam: CameraConfig, *, cost: float = 1.0, resource: str | None = None
) -> CameraSpec:
    """A ``pipeline`` camera of the desired set from a camera config."""
    return CameraSpec(
        cam.id,
        cost=cost,
        resource=resource,
        kind="pipeline",
        config=cam.model_dump_json(exclude_none=True),
    )


class SkipSource:
    """A :class:`FrameSource` that drops frames with ``seq < skip_below`` (not analysed)."""

    def __init__(self, inner: FrameSource, skip_below: int) -> None:
        self.inner = inner
        self.skip_below = skip_below

    @property
    def info(self) -> SourceInfo:
        return self.inner.info

    def frames(self) -> Iterator[Frame]:
        return (f for f in self.inner.frames() if f.seq >= self.skip_below)

    def close(self) -> None:
        self.inner.close()


@dataclass
class LeaseCommitter:
    """A :class:`~sharpeyes.pipeline.protocols.Sink` committing events + position under one lease.

    The runner calls :meth:`on_frame` after each analysed frame's events were emitted; events
    of frames before the lease's position are dropped (a replay), the rest are committed at
    most every ``commit_every_s``. :class:`StaleLeaseError` propagates (the caller stops).
    """

    leases: LeaseStore
    lease: Lease
    replayable: bool = True
    commit_every_s: float = 0.5
    storage: EvidenceStorage | None = None
    files_root: Path | None = None
    destinations: tuple[str, ...] = ()
    device_id: str | None = None
    clock: Callable[[], float] = time.monotonic
    commits: int = 0
    last_commit_ms: int | None = None
    last_seq: int | None = None
    _events: list[Event] = field(default_factory=list)
    _pending_pos: int | None = None
    _last_try: float = 0.0
    _closed: bool = False

    def emit(self, event: Event) -> None:
        if not self._closed:
            self._events.append(event)

    def close(self) -> None:
        self._closed = True
        self._events.clear()

    def on_frame(self, frame: Frame) -> None:
        self.last_seq = frame.seq
        if self._closed:
            return
        if self.replayable:
            if frame.seq < self.lease.pos:
                self._events.clear()  # committed by an earlier owner
                return
            self._pending_pos = frame.seq + 1
        else:
            self._pending_pos = (self._pending_pos or self.lease.pos) + 1
        if self.clock() - self._last_try >= self.commit_every_s:
            self.flush()

    def end_position(self) -> int:
        """The position that marks the end of a file (one past the last frame's)."""
        last = -1 if self.last_seq is None else self.last_seq
        return max(last + 2, (self._pending_pos or 0) + 1)

    def flush(self, new_pos: int | None = None) -> bool:
        """Commit what is pending (up to ``new_pos`` if given); False on a transient failure.

        Raises:
            StaleLeaseError: this owner is fenced; nothing was written.
        """
        pos = new_pos if new_pos is not None else self._pending_pos
        if self._closed or pos is None:
            return True
        if pos <= self.lease.pos:  # already committed (by an earlier owner)
            self._events.clear()
            return True
        self._last_try = self.clock()
        events = list(self._events)
        try:
            self._put_evidence(events)
            self.lease = self.leases.commit(
                self.lease,
                pos,
                events,
                files_root=self.files_root,
                outbox_destinations=self.destinations,
                device_id=self.device_id,
            )
        except StaleLeaseError:
            self.close()
            raise
        except SharpeyesError as e:  # database or storage down: keep the batch, retry
            log.warning("commit of %s up to %d failed: %s", self.lease.camera_id, pos, e)
            return False
        del self._events[: len(events)]
        self.commits += 1
        self.last_commit_ms = now_ms()
        return True

    def _put_evidence(self, events: list[Event]) -> None:
        """Crops and evidence folders to shared storage, before the commit (§2.3), under the
        names the REST API serves (:mod:`sharpeyes.api.rest.evidence`): ``crop.jpg``,
        ``scene.jpg``, every file of the evidence folder and, for an event without one (a
        checkpoint read), its plate picture as ``plate.jpg`` (a record's ``plate.jpg`` is its
        own close-up)."""
        if self.storage is None:
            return
        for e in events:
            folder = Path(e.evidence_path) if e.evidence_path is not None else None
            files = sorted(folder.iterdir()) if folder is not None and folder.is_dir() else None
            pictures = {CROP_NAME: e.crop_jpeg, SCENE_NAME: e.scene_jpeg}
            if files is None:
                pictures[PLATE_NAME] = e.plate_jpeg
            for name, data in pictures.items():
                if data is not None:
                    self.storage.put(evidence_key(e.event_id, name), data)
            for f in files or ():
                if f.is_file():
                    self.storage.put(evidence_key(e.event_id, f.name), f.read_bytes())


def file_origin_ms(url: str, fallback_ms: int) -> int:
    """The file's ``creation_time`` (what a single node uses), else ``fallback_ms``: a clock
    origin every owner agrees on, so event times and ids do not depend on who runs it."""
    import av

    from sharpeyes.streams.file_source import creation_time_ms

    try:
        with av.open(url) as container:
            meta = creation_time_ms(dict(container.metadata))
    except (OSError, av.FFmpegError):
        return fallback_ms  # the source itself reports the error when it opens
    return meta if meta is not None else fallback_ms


def external_phase_groups(spec: CameraSpec) -> list[str]:
    """A pipeline camera's signal groups that take external phases ([] for other kinds or an
    invalid config)."""
    from sharpeyes.api.node.camera import external_groups

    if spec.kind != "pipeline":
        return []
    try:
        return external_groups(parse_camera(spec))
    except ConfigError:
        return []


def build_runner(
    cam: CameraConfig,
    committer: LeaseCommitter,
    out: Path,
    *,
    replay_s: float | None,
    origin_ms: int,
    phases: PhaseHub | None = None,
) -> Camera:
    """One camera from the node's composition root
    (:func:`sharpeyes.api.node.camera.build_camera`) feeding ``committer``; a file source
    skips the frames a replay does not need."""
    from sharpeyes.api.node.camera import CameraEnv, build_camera, build_detector

    assert cam.url is not None
    live = is_live_url(cam.url)

    def skip(source: FrameSource) -> FrameSource:
        if live or replay_s is None:
            return source
        return SkipSource(source, committer.lease.pos - round(replay_s * source.info.fps))

    env = CameraEnv(
        files_root=out,
        phases=phases,
        start_wall_ms=None if live else origin_ms,
        wrap_source=skip,
    )
    return build_camera(cam, env, detector=build_detector(cam), sinks=[committer])


class PipelineCamera:
    """One real camera under one lease; a :class:`~sharpeyes.api.cluster.backend.CameraProgram`."""

    def __init__(self, spec: CameraSpec, lease: Lease, ctx: ProgramContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self._halt = threading.Event()
        self._runner: StreamRunner | None = None
        self.camera: Camera | None = None  # what the composition root built
        self._state = CameraState.STARTING
        self._error: str | None = None
        self._rejected = 0
        self._recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=30)
        self._analysed = 0
        self._lag_s = 0.0
        root = ctx.options.files_root
        self.committer = LeaseCommitter(
            ctx.leases,
            lease,
            commit_every_s=ctx.options.commit_every_s,
            storage=ctx.storage,
            files_root=Path(root) if root else None,
            destinations=ctx.outbox_destinations,
        )
        self._thread = threading.Thread(
            target=self._main, name=f"cam-{spec.camera_id}", daemon=True
        )
        groups = external_phase_groups(spec)
        if groups:  # phases told from the assignment on reach the camera, even before it is built
            ctx.phases.input_for(spec.camera_id, groups)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop without committing anything more (open tracks are not flushed as events)."""
        self._halt.set()
        self.committer.close()
        if self._runner is not None:
            self._runner.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)

    def _main(self) -> None:
        try:
            cam = parse_camera(self.spec)
            assert cam.url is not None
            self.committer.replayable = not is_live_url(cam.url)
            self.committer.device_id = cam.device_id
            origin = self.ctx.leases.first_grant_ms(self.spec.camera_id) or 0
            if self.committer.replayable:
                origin = file_origin_ms(cam.url, origin)
            out = Path(self.ctx.options.files_root or ".") / "cluster" / cam.id
            self.camera = build_runner(
                cam,
                self.committer,
                out,
                replay_s=self.ctx.options.replay_s,
                origin_ms=origin,
                phases=self.ctx.phases,
            )
            self._runner = self.camera.runner
            if self._halt.is_set():
                self._runner.source.close()
                return
            self._runner.run(progress=self._on_frame)
            if not self._halt.is_set():
                self._finish()
        except StaleLeaseError as e:
            self._fenced(e)
        except (SharpeyesError, OSError, ValueError) as e:
            self._state, self._error = CameraState.FAILED, str(e)
            log.error("%s: camera %s failed: %s", self.ctx.worker, self.spec.camera_id, e)

    def _on_frame(self, frame: Frame) -> None:
        if self._halt.is_set():
            return
        self._analysed += 1
        self._recent.append((time.monotonic(), self._analysed))
        self._lag_s = (
            max(0.0, (now_ms() - frame.wall_time_ms) / 1e3)
            if not self.committer.replayable
            else 0.0
        )
        try:
            before = self.committer.commits
            self.committer.on_frame(frame)
        except StaleLeaseError as e:
            self._fenced(e)
            return
        if self.committer.commits > before:
            self._state, self._error = CameraState.RUNNING, None

    def _finish(self) -> None:
        """End of a file: commit the flushed tracks at the end position, retrying."""
        if not self.committer.replayable:
            return
        end = self.committer.end_position()
        while not self._halt.is_set() and not self.committer.flush(end):
            self._state = CameraState.STALLED
            self._halt.wait(1.0)
        if not self._halt.is_set():
            self._state, self._error = CameraState.FINISHED, None
            log.info(
                "%s: camera %s finished at position %d",
                self.ctx.worker,
                self.spec.camera_id,
                self.committer.lease.pos,
            )

    def _fenced(self, e: StaleLeaseError) -> None:
        self._rejected += 1
        self._state, self._error = CameraState.FENCED, str(e)
        self._halt.set()
        self.committer.close()
        if self._runner is not None:
            self._runner.stop()
        log.warning("%s: %s; camera stopped", self.ctx.worker, e)

    def status(self) -> CameraStatus:
        fps = 0.0
        if len(self._recent) >= 2:
            (t1, n1), (t2, n2) = self._recent[0], self._recent[-1]
            fps = (n2 - n1) / max(t2 - t1, 1e-6)
        lease = self.committer.lease
        return CameraStatus(
            camera_id=self.spec.camera_id,
            epoch=lease.epoch,
            state=self._state,
            pos=lease.pos,
            fps=fps,
            lag_s=self._lag_s,
            last_commit_ms=self.committer.last_commit_ms,
            commits=self.committer.commits,
            rejected=self._rejected,
            error=self._error,
            plates=plate_sizes(self._runner),
            faces=face_counts(self._runner),
        )


def is_live_url(url: str) -> bool:
    """A network stream URL (RTSP and friends) rather than a file (see ``api.node.settings``)."""
    from sharpeyes.streams.config import is_live_url as _is_live

    return _is_live(url)
