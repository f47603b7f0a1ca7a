"""Several batcher workers: batches run concurrently, every request still gets its own result,
stats add up, close stops every worker."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from sharpeyes.pipeline.batcher import Batcher, BatcherClosedError
from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.types import Detections, ImageBGR


class BarrierDetector:
    """Returns one box whose confidence encodes the image's fill value; with ``barrier`` each
    call waits until that many calls are in flight at once (BrokenBarrierError otherwise)."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.barrier = barrier
        self.calls: list[list[int]] = []
        self.lock = threading.Lock()

    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo("fake", (64, 64), ("CPUExecutionProvider",), 1, None)

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        values = [int(im[0, 0, 0]) for im in images]
        with self.lock:
            self.calls.append(values)
        if self.barrier is not None:
            self.barrier.wait()
        return [Detections.create([[0, 0, 1, 1]], [v / 255.0], [2], [1]) for v in values]


def img(value: int) -> ImageBGR:
    return np.full((8, 8, 3), value, dtype=np.uint8)


def test_two_workers_run_two_batches_at_once() -> None:
    det = BarrierDetector(threading.Barrier(2, timeout=10))
    b = Batcher(det, max_batch=1, max_wait_ms=0, workers=2)
    try:
        f1, f2 = b.submit("a", img(10)), b.submit("b", img(20))
        # each call blocks until the other is in flight: one worker alone would never finish
        assert f1.result(timeout=15).confidence[0] == pytest.approx(10 / 255)
        assert f2.result(timeout=15).confidence[0] == pytest.approx(20 / 255)
    finally:
        b.close()
    assert sorted(v for call in det.calls for v in call) == [10, 20]
    assert b.stats.batches == 2 and b.stats.images == 2 and b.stats.failed_batches == 0


def test_many_streams_each_request_gets_its_own_result() -> None:
    det = BarrierDetector()
    b = Batcher(det, max_batch=3, max_wait_ms=2, workers=3)
    try:
        views = [b.for_stream(f"s{i}") for i in range(6)]
        results: dict[int, float] = {}
        lock = threading.Lock()

        def stream(i: int) -> None:
            for k in range(20):
                value = (i * 20 + k) % 250 + 1
                conf = float(views[i].detect([img(value)])[0].confidence[0])
                with lock:
                    results[i * 100 + k] = conf - value / 255.0

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        b.close()
    assert len(results) == 120
    assert max(abs(d) for d in results.values()) < 1e-6
    assert b.stats.images == 120 == sum(b.stats.by_stream.values())
    assert sum(n * c for n, c in b.stats.batch_sizes.items()) == 120


def test_close_stops_every_worker_and_fails_new_requests() -> None:
    b = Batcher(BarrierDetector(), workers=3)
    b.close()
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("batcher"))
    with pytest.raises(BatcherClosedError):
        b.submit("a", img(1))


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        Batcher(BarrierDetector(), workers=0)
