"""The cross-stream batcher in front of the detector.

Stream threads submit one image at a time and wait for its detections; one batcher thread forms
batches of up to ``max_batch`` images, waiting at most ``max_wait_ms`` after the first request,
and runs the detector once per batch (ONNX Runtime releases the GIL). Fairness: requests are
queued per stream and taken round-robin, at most one per stream per batch, so one busy camera
cannot starve the others. Only images of the same shape share a batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from pipeline.errors import SharpeyesError
from pipeline.protocols import Detector, DetectorInfo
from pipeline.stages import StageTimes
from pipeline.types import Detections, ImageBGR

logger = logging.getLogger(__name__)


class BatcherClosedError(SharpeyesError, RuntimeError):
    """The batcher was closed while a request was pending."""


@dataclass
class _Request:
    stream_id: str
    image: ImageBGR
    future: Future[Detections] = field(default_factory=Future)


@dataclass
class BatcherStats:
    batches: int = 0
    images: int = 0
    max_batch_seen: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0


class Batcher:
    """Runs ``detector`` on batches formed from many streams' requests."""

    def __init__(
        self,
        detector: Detector,
        *,
        max_batch: int = 8,
        max_wait_ms: float = 10.0,
        times: StageTimes | None = None,
    ) -> None:
        self.detector = detector
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.times = times
        self.stats = BatcherStats()
        self._queues: OrderedDict[str, deque[_Request]] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
        self._thread.start()

    def submit(self, stream_id: str, image: ImageBGR) -> Future[Detections]:
        req = _Request(stream_id, image)
        with self._cond:
            if self._closed:
                raise BatcherClosedError("the detector batcher is closed")
            self._queues.setdefault(stream_id, deque()).append(req)
            self._cond.notify()
        return req.future

    def for_stream(self, stream_id: str) -> StreamDetector:
        return StreamDetector(self, stream_id)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending = [r for q in self._queues.values() for r in q]
            self._queues.clear()
            self._cond.notify_all()
        for r in pending:
            r.future.set_exception(BatcherClosedError("the detector batcher was closed"))
        self._thread.join(timeout=5)

    def _pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _take_batch(self) -> list[_Request]:
        """Round-robin over streams, one request each, same image shape as the first."""
        batch: list[_Request] = []
        shape: tuple[int, ...] | None = None
        for sid in list(self._queues):
            q = self._queues[sid]
            if not q:
                continue
            if shape is None:
                shape = q[0].image.shape
            if q[0].image.shape != shape:
                continue
            batch.append(q.popleft())
            self._queues.move_to_end(sid)  # this stream goes to the back of the line
            if len(batch) >= self.max_batch:
                break
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._pending() == 0:
                    self._cond.wait()
                if self._closed:
                    return
                deadline = time.monotonic() + self.max_wait_s
                while (
                    not self._closed
                    and self._streams_waiting() < self.max_batch
                    and (left := deadline - time.monotonic()) > 0
                ):
                    self._cond.wait(left)
                batch = self._take_batch()
            if batch:
                self._run(batch)

    def _streams_waiting(self) -> int:
        return sum(1 for q in self._queues.values() if q)

    def _run(self, batch: Sequence[_Request]) -> None:
        t0 = time.perf_counter()
        try:
            results = self.detector.detect([r.image for r in batch])
        except Exception as e:
            logger.exception("detector failed on a batch of %d", len(batch))
            for r in batch:
                r.future.set_exception(e)
            return
        if self.times is not None:
            self.times.add("batch_detect", time.perf_counter() - t0)
        s = self.stats
        s.batches += 1
        s.images += len(batch)
        s.max_batch_seen = max(s.max_batch_seen, len(batch))
        for r, det in zip(batch, results, strict=True):
            s.by_stream[r.stream_id] = s.by_stream.get(r.stream_id, 0) + 1
            r.future.set_result(det)


class StreamDetector:
    """A per-stream :class:`Detector` view of a shared :class:`Batcher`."""

    def __init__(self, batcher: Batcher, stream_id: str) -> None:
        self._batcher = batcher
        self._stream_id = stream_id

    @property
    def info(self) -> DetectorInfo:
        return self._batcher.detector.info

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        futures = [self._batcher.submit(self._stream_id, im) for im in images]
        return [f.result() for f in futures]
