"""Camera workers under the supervisor: restart budget, failed state, loop, stop, add/remove."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest

from sharpeyes.pipeline.config import CameraConfig, EventsConfig, TrackerConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.protocols import DetectorInfo, SourceInfo
from sharpeyes.pipeline.runner import StreamRunner
from sharpeyes.pipeline.supervisor import CameraWorker, RestartPolicy, Supervisor, WorkerState
from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
from sharpeyes.pipeline.types import Detections, Event, Frame, ImageBGR

FAST = RestartPolicy(
    restart_budget=2,
    budget_window_s=60.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.1,
    failed_retry_s=30.0,
    min_run_s=0.0,
)


class CountingSource:
    """``n`` blank frames at ``fps`` (0 = as fast as possible); ``n=None`` blocks until closed."""

    def __init__(self, stream_id: str, n: int | None, fps: float = 0.0) -> None:
        self.stream_id = stream_id
        self.n = n
        self.fps = fps
        self.closed = threading.Event()

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(self.stream_id, "test://", 32, 24, 25.0, "raw")

    def frames(self) -> Iterator[Frame]:
        i = 0
        while not self.closed.is_set() and (self.n is None or i < self.n):
            if self.n is None:
                self.closed.wait(0.05)
                continue
            yield Frame(self.stream_id, i, i / 25.0, 1_700_000_000_000 + i * 40, blank())
            i += 1
            if self.fps:
                time.sleep(1 / self.fps)

    def close(self) -> None:
        self.closed.set()


class NoDetections:
    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo("none", (32, 32), ("CPUExecutionProvider",), 1, None)

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        return [Detections.empty() for _ in images]


class ListSink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def blank() -> ImageBGR:
    return np.zeros((24, 32, 3), dtype=np.uint8)


def make_runner(source: CountingSource) -> StreamRunner:
    return StreamRunner(
        source=source,
        detector=NoDetections(),
        tracker=ByteTracker(TrackerConfig()),
        events=TrackEventBuilder(
            source.stream_id, EventsConfig(), class_names=["car"], class_codes={}
        ),
        sinks=[ListSink()],
        prefetch_depth=0,
    )


Factory = Callable[[CameraConfig], StreamRunner]


def factory_failing(times: int, n: int | None = 5) -> tuple[Factory, list[int]]:
    calls = [0]

    def make(cam: CameraConfig) -> StreamRunner:
        calls[0] += 1
        if calls[0] <= times:
            raise OSError(f"camera {cam.id} unreachable (try {calls[0]})")
        return make_runner(CountingSource(cam.id, n))

    return make, calls


def wait_for(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_crashing_camera_is_restarted_within_budget() -> None:
    make, calls = factory_failing(2)
    w = CameraWorker(CameraConfig(id="a"), make, policy=FAST)
    w.start()
    assert wait_for(lambda: w.status.state is WorkerState.FINISHED, 5.0), w.status
    assert calls[0] == 3 and w.status.restarts == 2 and w.status.runs == 1
    assert w.status.frames_analysed == 5
    assert w.status.last_error == "OSError: camera a unreachable (try 2)"


def test_budget_spent_marks_failed_without_touching_others() -> None:
    bad, bad_calls = factory_failing(100)
    sup = Supervisor(
        lambda cam: bad(cam) if cam.id == "bad" else make_runner(CountingSource(cam.id, 10)),
        policy=FAST,
    )
    try:
        sup.add(CameraConfig(id="bad"))
        sup.add(CameraConfig(id="good"))
        assert wait_for(lambda: sup.statuses()["bad"].state is WorkerState.FAILED, 5.0)
        assert bad_calls[0] == FAST.restart_budget + 1  # then a slow retry (30 s)
        time.sleep(0.2)
        assert bad_calls[0] == FAST.restart_budget + 1
        assert wait_for(lambda: sup.statuses()["good"].state is WorkerState.FINISHED, 5.0)
        assert sup.statuses()["good"].frames_analysed == 10
        assert not sup.all_done()  # the failed camera keeps retrying
    finally:
        sup.stop_all()


def test_loop_files_restarts_at_end_and_calls_on_exit() -> None:
    exits: list[str] = []
    sup = Supervisor(
        lambda cam: make_runner(CountingSource(cam.id, 3)),
        loop_files=True,
        policy=FAST,
        on_exit=lambda cam, runner: exits.append(cam.id),
    )
    sup.add(CameraConfig(id="loop"))
    assert wait_for(lambda: sup.statuses()["loop"].runs >= 3, 5.0)
    sup.stop_all()
    assert len(exits) >= 3 and set(exits) == {"loop"}
    assert sup.camera_ids() == []


def test_stop_wakes_a_runner_waiting_for_frames() -> None:
    sources: list[CountingSource] = []

    def make(cam: CameraConfig) -> StreamRunner:
        sources.append(CountingSource(cam.id, None))  # a camera that sends nothing
        return make_runner(sources[-1])

    sup = Supervisor(make, policy=FAST)
    sup.add(CameraConfig(id="quiet"))
    worker = sup.worker("quiet")
    assert worker is not None
    assert wait_for(lambda: worker.status.state is WorkerState.RUNNING, 5.0)
    t0 = time.monotonic()
    assert sup.remove("quiet")
    assert time.monotonic() - t0 < 2.0 and not worker.alive
    assert worker.status.state is WorkerState.STOPPED and sources[0].closed.is_set()
    assert not sup.remove("quiet")


def test_add_update_remove_while_running() -> None:
    sup = Supervisor(lambda cam: make_runner(CountingSource(cam.id, None)), policy=FAST)
    try:
        sup.add(CameraConfig(id="a"))
        sup.add(CameraConfig(id="b"))
        with pytest.raises(KeyError, match="already runs"):
            sup.add(CameraConfig(id="a"))
        first = sup.worker("a")
        sup.update(CameraConfig(id="a", name="renamed"))
        second = sup.worker("a")
        assert first is not None and second is not None and first is not second
        assert second.cam.name == "renamed" and not first.alive
        sup.remove("b")
        assert sup.camera_ids() == ["a"]
    finally:
        sup.stop_all()


def test_wait_returns_when_all_files_finished() -> None:
    sup = Supervisor(lambda cam: make_runner(CountingSource(cam.id, 4)), policy=FAST)
    for cid in ("x", "y"):
        sup.add(CameraConfig(id=cid))
    stop = threading.Event()
    t0 = time.monotonic()
    sup.wait(poll_s=0.05, stop=stop)
    assert time.monotonic() - t0 < 5.0 and sup.all_done()
