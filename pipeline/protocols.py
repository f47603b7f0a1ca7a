"""One ``typing.Protocol`` per stage. Implementations live in their own modules and are chosen
by registries in the composition root, never by if/elif chains."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sharpeyes.pipeline.types import Detections, Event, Frame, ImageBGR, SignalState, Tracks


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source knows about its stream once opened."""

    stream_id: str
    url: str
    width: int
    height: int
    fps: float
    codec: str
    frame_count: int | None = None
    duration_s: float | None = None


@runtime_checkable
class FrameSource(Protocol):
    """A video source: a file now, RTSP later — both implement this.

    ``frames()`` yields decoded frames in presentation order; it ends at end of stream and
    raises :class:`sharpeyes.pipeline.errors.StreamError` subclasses on unrecoverable input.
    """

    @property
    def info(self) -> SourceInfo: ...

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DetectorInfo:
    """What a detector reports about itself (shown in health and benchmarks)."""

    model: str
    input_size: tuple[int, int]  # (height, width)
    providers: tuple[str, ...]
    intra_op_threads: int
    batch: int | None  # fixed batch size, or None when dynamic
    class_names: tuple[str, ...] = ()  # the model's class list by class id; () = COCO-80


@runtime_checkable
class Detector(Protocol):
    """Turns a batch of BGR images into one :class:`Detections` per image."""

    @property
    def info(self) -> DetectorInfo: ...

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]: ...


@runtime_checkable
class Tracker(Protocol):
    """Per-stream multi-object tracker; one instance per stream with its own id counter.

    ``pts`` is the frame's presentation time; the tracker uses time deltas, so frames the
    detector skipped are accounted for. ``frames_skipped`` tells it how many frames were not
    analysed since the previous call (for statistics and period-aware matching). ``image`` is
    the frame itself where the caller has it (a tracker may look at what its boxes hold).
    """

    def update(
        self,
        detections: Detections,
        pts: float,
        frames_skipped: int = 0,
        image: ImageBGR | None = None,
    ) -> Tracks: ...

    def reset(self) -> None: ...


@runtime_checkable
class Rule(Protocol):
    """A pure per-stream state machine: frame time in, events out, no I/O, no wall clock."""

    def update(
        self, frame: Frame, tracks: Tracks, signals: Mapping[str, SignalState]
    ) -> list[Event]: ...

    def end_of_stream(self) -> list[Event]: ...


@runtime_checkable
class Sink(Protocol):
    """Receives finished events (store, GA/T 1400 outbox, live feed, webhook)."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...
