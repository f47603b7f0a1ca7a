"""The cross-stream batcher: batch formation, early dispatch, fairness, shapes, errors, close."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from sharpeyes.pipeline.batcher import Batcher, BatcherClosedError
from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.stages import StageTimes
from sharpeyes.pipeline.types import Detections, ImageBGR


class RecordingDetector:
    """A detector that returns one box whose confidence encodes the image's fill value, records
    each call's batch, and can be slowed down or made to fail."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.lock = threading.Lock()

    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo("fake", (64, 64), ("CPUExecutionProvider",), 1, None)

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        values = [int(im[0, 0, 0]) for im in images]
        with self.lock:
            self.calls.append(values)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in values:
            raise RuntimeError(f"bad image {self.fail_on}")
        return [Detections.create([[0, 0, 1, 1]], [v / 255.0], [2], [1]) for v in values]


def img(value: int, shape: tuple[int, int] = (8, 8)) -> ImageBGR:
    return np.full((*shape, 3), value, dtype=np.uint8)


@pytest.fixture
def closing() -> Iterator[list[Batcher]]:
    made: list[Batcher] = []
    yield made
    for b in made:
        b.close()


def test_results_go_back_to_their_own_request(closing: list[Batcher]) -> None:
    det = RecordingDetector()
    b = Batcher(det, max_batch=4, max_wait_ms=50)
    closing.append(b)
    futures = {v: b.submit(f"s{v}", img(v)) for v in (10, 20, 30)}
    for v, f in futures.items():
        got = f.result(timeout=5)
        assert got.confidence[0] == pytest.approx(v / 255.0, abs=1e-6)
    assert b.stats.images == 3


def test_batch_waits_up_to_max_wait_and_groups_streams(closing: list[Batcher]) -> None:
    det = RecordingDetector()
    b = Batcher(det, max_batch=8, max_wait_ms=300)
    closing.append(b)
    t0 = time.monotonic()
    f1 = b.submit("a", img(1))
    time.sleep(0.05)
    f2 = b.submit("b", img(2))
    f1.result(timeout=5)
    f2.result(timeout=5)
    assert det.calls == [[1, 2]]  # one batch: the second came within max_wait
    assert 0.25 <= time.monotonic() - t0 < 2.0  # and it waited for more (no active streams)


def test_sends_early_when_every_active_stream_is_in(closing: list[Batcher]) -> None:
    det = RecordingDetector()
    b = Batcher(det, max_batch=8, max_wait_ms=2000)
    closing.append(b)
    views = [b.for_stream(s) for s in ("a", "b")]
    t0 = time.monotonic()
    results: list[list[Detections]] = []
    threads = [
        threading.Thread(target=lambda v=v, i=i: results.append(v.detect([img(i)])))
        for i, v in enumerate(views)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(results) == 2 and time.monotonic() - t0 < 1.0  # not the 2 s max wait
    assert sorted(det.calls[0]) == [0, 1]
    views[1].close()
    assert b.active_streams() == ["a"]


def test_max_batch_caps_each_call(closing: list[Batcher]) -> None:
    det = RecordingDetector(delay_s=0.05)
    b = Batcher(det, max_batch=3, max_wait_ms=100)
    closing.append(b)
    futures = [b.submit(f"s{i}", img(i)) for i in range(7)]
    for f in futures:
        f.result(timeout=5)
    assert all(len(c) <= 3 for c in det.calls)
    assert sum(len(c) for c in det.calls) == 7 and b.stats.max_batch_seen == 3


def test_fairness_one_busy_stream_cannot_starve_others(closing: list[Batcher]) -> None:
    det = RecordingDetector(delay_s=0.05)
    b = Batcher(det, max_batch=2, max_wait_ms=0)
    closing.append(b)
    busy = [b.submit("busy", img(100)) for _ in range(20)]  # a camera flooding the batcher
    time.sleep(0.02)
    quiet = [b.submit("quiet", img(i + 1)) for i in range(3)]
    for f in quiet:
        f.result(timeout=5)
    served_busy_before_quiet_done = sum(1 for f in busy if f.done())
    # round-robin, one request per stream per batch: the quiet stream is in every batch
    assert served_busy_before_quiet_done <= 6, det.calls
    for call in det.calls[1:4]:
        assert any(v != 100 for v in call), det.calls
    for f in busy:
        f.result(timeout=5)
    assert b.stats.by_stream == {"busy": 20, "quiet": 3}


def test_only_same_shapes_share_a_batch(closing: list[Batcher]) -> None:
    det = RecordingDetector()
    b = Batcher(det, max_batch=8, max_wait_ms=100)
    closing.append(b)
    fs = [
        b.submit("a", img(1, (8, 8))),
        b.submit("b", img(2, (16, 8))),
        b.submit("c", img(3, (8, 8))),
    ]
    for f in fs:
        f.result(timeout=5)
    assert sorted(map(sorted, det.calls)) == [[1, 3], [2]]


def test_detector_error_reaches_the_batch_and_batcher_survives(closing: list[Batcher]) -> None:
    det = RecordingDetector(fail_on=66)
    b = Batcher(det, max_batch=1, max_wait_ms=0)
    closing.append(b)
    with pytest.raises(RuntimeError, match="bad image 66"):
        b.submit("a", img(66)).result(timeout=5)
    assert b.submit("a", img(5)).result(timeout=5).confidence[0] == pytest.approx(5 / 255)
    assert b.stats.failed_batches == 1 and b.stats.batches == 1


def test_close_fails_pending_and_refuses_new(closing: list[Batcher]) -> None:
    det = RecordingDetector(delay_s=0.3)
    b = Batcher(det, max_batch=1, max_wait_ms=0)
    first = b.submit("a", img(1))
    time.sleep(0.05)  # first is running
    pending = b.submit("b", img(2))
    b.close()
    assert first.result(timeout=5).confidence.size == 1
    with pytest.raises(BatcherClosedError):
        pending.result(timeout=5)
    with pytest.raises(BatcherClosedError):
        b.submit("c", img(3))


def test_stage_times_recorded(closing: list[Batcher]) -> None:
    times = StageTimes()
    b = Batcher(RecordingDetector(), max_batch=2, max_wait_ms=0, times=times)
    closing.append(b)
    b.submit("a", img(1)).result(timeout=5)
    assert times.count("queue_wait") == 1 and times.count("inference") == 1


def test_wrong_result_count_fails_the_batch_and_the_batcher_carries_on() -> None:
    """A detector returning the wrong number of results fails that batch (every waiting stream
    gets the error) — the batcher thread stays alive and serves the next batch."""
    import numpy as np
    import pytest

    from sharpeyes.pipeline.batcher import Batcher, DetectorContractError
    from sharpeyes.pipeline.protocols import DetectorInfo
    from sharpeyes.pipeline.types import Detections

    class Flaky:
        calls = 0

        @property
        def info(self) -> DetectorInfo:
            return DetectorInfo("flaky", (32, 32), ("cpu",), 0, None)

        def detect(self, images: object) -> list[Detections]:
            Flaky.calls += 1
            n = len(images)  # type: ignore[arg-type]
            return [Detections.empty()] * (n + 1 if Flaky.calls == 1 else n)

    batcher = Batcher(Flaky(), max_batch=1, max_wait_ms=1)
    try:
        view = batcher.for_stream("a")
        img = np.zeros((32, 32, 3), np.uint8)
        with pytest.raises(DetectorContractError):
            view.detect([img])
        assert len(view.detect([img])[0]) == 0  # the thread is alive
        assert batcher.stats.failed_batches == 1
    finally:
        batcher.close()
