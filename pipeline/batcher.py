"""The cross-stream batcher in front of the one detector of a node.

Stream threads submit one image at a time and wait for its detections; one batcher thread forms
batches of up to ``max_batch`` images and runs the detector once per batch (ONNX Runtime releases
the GIL, so stream threads keep tracking meanwhile). A batch is sent when it is full, when every
registered stream already has a request waiting, or ``max_wait_ms`` after its first request —
whichever comes first. ``workers`` threads form and run batches concurrently (default one): on a
CPU, two workers over one single-threaded ONNX Runtime session run two smaller batches on two
cores, which costs less CPU per image than one batch on a two-thread session.

Fairness: requests are queued per stream and taken round-robin, at most one per stream per
batch, and a stream that was served moves to the back of the line, so one busy camera cannot
starve the others. Only images of the same shape share a batch (the letterbox canvas is shared).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sharpeyes.pipeline.errors import ModelError, SharpeyesError
from sharpeyes.pipeline.protocols import Detector, DetectorInfo
from sharpeyes.pipeline.runner import detect_timed
from sharpeyes.pipeline.stages import StageTimes, Stopwatch
from sharpeyes.pipeline.types import Detections, ImageBGR

logger = logging.getLogger(__name__)


class BatcherClosedError(SharpeyesError, RuntimeError):
    """The batcher was closed while a request was pending."""


@dataclass
class _Request:
    stream_id: str
    image: ImageBGR
    queued: float = field(default_factory=time.perf_counter)
    future: Future[Detections] = field(default_factory=Future)


@dataclass
class BatcherStats:
    """Counters of the batcher thread (read from other threads without a lock: ints only)."""

    batches: int = 0
    images: int = 0
    failed_batches: int = 0
    max_batch_seen: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)
    batch_sizes: dict[int, int] = field(default_factory=dict)

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0


class Batcher:
    """Runs ``detector`` on batches formed from many streams' requests (see module docstring).

    ``times`` (optional) receives ``queue_wait`` (submit → batch start, per image) and the
    detector's ``preprocess`` / ``inference`` / ``postprocess`` durations per batch. With
    ``workers`` > 1 the detector is called from several threads at once (ONNX Runtime sessions
    allow it).
    """

    def __init__(
        self,
        detector: Detector,
        *,
        max_batch: int = 8,
        max_wait_ms: float = 10.0,
        times: StageTimes | None = None,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.detector = detector
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.times = times
        self.stats = BatcherStats()
        self._queues: OrderedDict[str, deque[_Request]] = OrderedDict()
        self._active: dict[str, int] = {}  # stream id → number of live StreamDetector views
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(
                target=self._loop, name="batcher" if i == 0 else f"batcher-{i}", daemon=True
            )
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # -- stream side -----------------------------------------------------------------------

    def submit(self, stream_id: str, image: ImageBGR) -> Future[Detections]:
        """Queue one image; the future resolves to its detections (or the detector's error).

        Raises:
            BatcherClosedError: the batcher is closed.
        """
        req = _Request(stream_id, image)
        with self._cond:
            if self._closed:
                raise BatcherClosedError("the detector batcher is closed")
            self._queues.setdefault(stream_id, deque()).append(req)
            self._cond.notify()
        return req.future

    def for_stream(self, stream_id: str) -> StreamDetector:
        """A :class:`Detector` view for one stream; it counts as active until released."""
        with self._cond:
            self._active[stream_id] = self._active.get(stream_id, 0) + 1
        return StreamDetector(self, stream_id)

    def release(self, stream_id: str) -> None:
        """One view of ``stream_id`` is gone; the last one also drops its empty queue."""
        with self._cond:
            left = self._active.get(stream_id, 0) - 1
            if left > 0:
                self._active[stream_id] = left
                return
            self._active.pop(stream_id, None)
            q = self._queues.get(stream_id)
            if q is not None and not q:
                del self._queues[stream_id]
            self._cond.notify()

    def active_streams(self) -> list[str]:
        with self._cond:
            return sorted(self._active)

    def close(self) -> None:
        """Stop the thread; pending requests fail with :class:`BatcherClosedError`."""
        with self._cond:
            self._closed = True
            pending = [r for q in self._queues.values() for r in q]
            self._queues.clear()
            self._cond.notify_all()
        for r in pending:
            r.future.set_exception(BatcherClosedError("the detector batcher was closed"))
        for thread in self._threads:
            thread.join(timeout=5)

    # -- batcher thread --------------------------------------------------------------------

    def _streams_waiting(self) -> int:
        return sum(1 for q in self._queues.values() if q)

    def _enough(self) -> bool:
        """Send now: the batch is full, or every registered stream has a request in."""
        waiting = self._streams_waiting()
        return waiting >= self.max_batch or (bool(self._active) and waiting >= len(self._active))

    def _take_batch(self) -> list[_Request]:
        """Round-robin over streams, one request each, same image shape as the first."""
        batch: list[_Request] = []
        shape: tuple[int, ...] | None = None
        for sid in list(self._queues):
            q = self._queues[sid]
            if not q:
                if sid not in self._active:
                    del self._queues[sid]
                continue
            if shape is None:
                shape = q[0].image.shape
            if q[0].image.shape != shape:
                continue
            batch.append(q.popleft())
            self._queues.move_to_end(sid)  # served: this stream goes to the back of the line
            if len(batch) >= self.max_batch:
                break
        return batch

    def _next_batch(self) -> list[_Request] | None:
        """Wait for work and form a batch; None once closed."""
        with self._cond:
            while not self._closed and self._streams_waiting() == 0:
                self._cond.wait()
            if self._closed:
                return None
            deadline = time.monotonic() + self.max_wait_s
            while not self._closed and not self._enough():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._take_batch()

    def _loop(self) -> None:
        """The batcher thread. Nothing may end it but :meth:`close`: a failure of one batch is
        that batch's failure (every request in it gets the error), never a dead thread that
        leaves every camera waiting."""
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                try:
                    self._run(batch)
                except BaseException as e:  # _run hands detector errors over itself
                    logger.exception("batcher failed on a batch of %d", len(batch))
                    self._count_failure()
                    for r in batch:
                        if not r.future.done():
                            r.future.set_exception(e)

    def _run(self, batch: Sequence[_Request]) -> None:
        start = time.perf_counter()
        if self.times is not None:
            for r in batch:
                self.times.add("queue_wait", start - r.queued)
        try:
            results = detect_timed(self.detector, [r.image for r in batch], Stopwatch(self.times))
        except Exception as e:  # handed to every waiting stream; the batcher carries on
            logger.exception("detector failed on a batch of %d", len(batch))
            self._count_failure()
            for r in batch:
                r.future.set_exception(e)
            return
        if len(results) != len(batch):
            error = DetectorContractError(
                f"detector returned {len(results)} results for a batch of {len(batch)}"
            )
            logger.error("%s", error)
            self._count_failure()
            for r in batch:
                r.future.set_exception(error)
            return
        self._count(batch)
        for r, det in zip(batch, results, strict=True):
            r.future.set_result(det)

    def _count_failure(self) -> None:
        with self._cond:
            self.stats.failed_batches += 1

    def _count(self, batch: Sequence[_Request]) -> None:
        s = self.stats
        n = len(batch)
        with self._cond:  # several workers may count at once
            s.batches += 1
            s.images += n
            s.max_batch_seen = max(s.max_batch_seen, n)
            s.batch_sizes[n] = s.batch_sizes.get(n, 0) + 1
            for r in batch:
                s.by_stream[r.stream_id] = s.by_stream.get(r.stream_id, 0) + 1


class DetectorContractError(ModelError):
    """A detector broke its contract (e.g. not one result per image)."""


class StreamDetector:
    """A per-stream :class:`Detector` view of a shared :class:`Batcher`.

    ``detect`` blocks the stream's thread until its images were detected. Call :meth:`close`
    when the stream goes away, so the batcher stops counting it as active.
    """

    def __init__(self, batcher: Batcher, stream_id: str) -> None:
        self._batcher = batcher
        self._stream_id = stream_id
        self._closed = False

    @property
    def info(self) -> DetectorInfo:
        return self._batcher.detector.info

    @property
    def stream_id(self) -> str:
        return self._stream_id

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        futures = [self._batcher.submit(self._stream_id, im) for im in images]
        return [f.result() for f in futures]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._batcher.release(self._stream_id)
