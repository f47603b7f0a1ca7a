"""Prometheus: events per camera and type, violations per type and code (issue 17's "count
violations per type and camera"), counted as the node hands them to its writer."""

from __future__ import annotations

from collections.abc import Mapping

from sharpeyes.api.node.health import CameraStats, MeteredSink
from sharpeyes.api.node.prom import build_registry, render
from sharpeyes.pipeline.batcher import BatcherStats
from sharpeyes.pipeline.types import Event, EventType, LampColor, ObjectKind, Violation


class NullSink:
    def emit(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass


class FakeRuntime:
    def __init__(self, stats: Mapping[str, CameraStats]) -> None:
        self.stats = stats

    def health(self) -> dict[str, object]:
        return {}

    def batcher_stats(self) -> BatcherStats:
        return BatcherStats()

    def latencies_ms(self) -> dict[str, list[float]]:
        return {}

    def event_counts(self) -> dict[str, dict[tuple[str, str], int]]:
        return {k: dict(s.by_type) for k, s in self.stats.items()}

    def flow_latest(self) -> dict[str, dict[int, dict[str, object]]]:
        return {}


def event(i: int, type_: EventType, code: str | None = None) -> Event:
    v = None
    if code is not None:
        v = Violation(code, "main", LampColor.RED, 1.0, 1, "straight", "south", 2.0)
    return Event(f"e{i}", type_, "cam", 0, 0, 0.0, 0.0, kind=ObjectKind.MOTOR_VEHICLE, violation=v)


def test_events_and_violations_by_type_and_code() -> None:
    stats = CameraStats()
    sink = MeteredSink(NullSink(), stats)
    for i in range(3):
        sink.emit(event(i, EventType.VEHICLE_PASS))
    sink.emit(event(10, EventType.RED_LIGHT_VIOLATION, "1625"))
    sink.emit(event(11, EventType.RED_LIGHT_VIOLATION, "1625"))
    sink.emit(event(12, EventType.RED_LIGHT_VIOLATION, "1302"))
    text = render(build_registry(FakeRuntime({"cam": stats}))).decode()  # type: ignore[arg-type]
    assert 'sharpeyes_events_total{camera="cam",type="vehicle_pass"} 3.0' in text
    assert 'sharpeyes_events_total{camera="cam",type="red_light_violation"} 3.0' in text
    line = 'sharpeyes_violations_total{camera="cam",code="1625",type="red_light_violation"} 2.0'
    assert line in text
    assert 'code="1302",type="red_light_violation"} 1.0' in text


def test_violations_of_the_suite_count_by_their_own_type() -> None:
    stats = CameraStats()
    sink = MeteredSink(NullSink(), stats)
    sink.emit(event(1, EventType.RED_LIGHT_VIOLATION, "1301").with_(
        extra=(("violation_type", "wrong_way"),)
    ))  # fmt: skip
    text = render(build_registry(FakeRuntime({"cam": stats}))).decode()  # type: ignore[arg-type]
    assert 'sharpeyes_violations_total{camera="cam",code="1301",type="wrong_way"} 1.0' in text
