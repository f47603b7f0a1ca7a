"""Small helpers shared by runners and benchmarks: stage timing and background prefetch."""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

STAGES = ("decode", "preprocess", "inference", "postprocess", "track", "signal", "rules", "events")


@dataclass
class StageTimes:
    """Per-stage durations in seconds, bounded to the newest ``max_samples`` per stage."""

    max_samples: int = 100_000
    samples: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def add(self, stage: str, seconds: float) -> None:
        d = self.samples[stage]
        d.append(seconds)
        if len(d) > self.max_samples:
            d.popleft()

    def median_ms(self) -> dict[str, float]:
        return {k: statistics.median(v) * 1000.0 for k, v in self.samples.items() if v}

    def total_s(self) -> dict[str, float]:
        return {k: float(sum(v)) for k, v in self.samples.items()}

    def count(self, stage: str) -> int:
        return len(self.samples.get(stage, ()))


class Stopwatch:
    """``with sw("stage"):`` adds the block's duration to a :class:`StageTimes`."""

    def __init__(self, times: StageTimes | None) -> None:
        self._times = times
        self._stage = ""
        self._t0 = 0.0

    def __call__(self, stage: str) -> Stopwatch:
        self._stage = stage
        return self

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._times is not None:
            self._times.add(self._stage, time.perf_counter() - self._t0)


_END = object()


class Prefetcher(Generic[T]):
    """Runs an iterator on a background thread, ``depth`` items ahead, timing each ``next``.

    Decoding (PyAV) and inference (ONNX Runtime) both release the GIL, so prefetching frames lets
    decode overlap inference. Exceptions raised by the iterator are re-raised in the consumer.
    The queue is bounded and blocking (a file source must not drop frames).
    """

    def __init__(
        self,
        make_iter: Callable[[], Iterator[T]],
        depth: int = 4,
        times: StageTimes | None = None,
        stage: str = "decode",
    ) -> None:
        self._q: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._times = times
        self._stage = stage
        self._thread = threading.Thread(
            target=self._work, args=(make_iter,), name=f"prefetch-{stage}", daemon=True
        )
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, make_iter: Callable[[], Iterator[T]]) -> None:
        try:
            it = make_iter()
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                if self._times is not None:
                    self._times.add(self._stage, time.perf_counter() - t0)
                if not self._put(item):
                    return
        except BaseException as e:  # handed to the consumer, re-raised there
            self._put(_Failure(e))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class _Failure:
    error: BaseException
