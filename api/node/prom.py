"""Prometheus export of the node's camera health, batcher and latency.

A custom collector reads :meth:`api.node.runtime.NodeRuntime.health` at scrape time, so nothing is
updated on the hot path. Each runtime gets its own :class:`CollectorRegistry` (no global state;
two runtimes in one process — tests — do not collide). Serve it with :func:`render` from the
REST app, or with :func:`serve_metrics` on its own port for ``sharpeyes run``.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sharpeyes.pipeline.batcher import BatcherStats
from sharpeyes.pipeline.signal_input import PhaseCountsSnapshot
from sharpeyes.pipeline.structuring.face_stats import FACE_COUNTERS, FaceStats
from sharpeyes.pipeline.structuring.plate_tally import PlateSizes

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = (
    "connecting",
    "live",
    "degraded",
    "stalled",
    "backoff",
    "failed",
    "stopped",
    "finished",
)


class HealthLike(Protocol):
    """The fields of :class:`sharpeyes.api.node.runtime.CameraHealth` the exporter reads."""

    @property
    def state(self) -> str: ...
    @property
    def input_fps(self) -> float: ...
    @property
    def analysed_fps(self) -> float: ...
    @property
    def drops(self) -> Mapping[str, int]: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def last_frame_age_s(self) -> float | None: ...
    @property
    def decode_errors(self) -> int: ...
    @property
    def skew_ms(self) -> float | None: ...
    @property
    def pts_resets(self) -> int: ...
    @property
    def frames_analysed(self) -> int: ...
    @property
    def frames_repeated(self) -> int: ...
    @property
    def corrupt_frames(self) -> int: ...
    @property
    def corruption_rate(self) -> float: ...
    @property
    def timing_faults(self) -> int: ...
    @property
    def noise_sigma(self) -> float | None: ...
    @property
    def tonal_range(self) -> float | None: ...
    @property
    def frames_deinterlaced(self) -> int: ...
    @property
    def plates(self) -> PlateSizes | None: ...
    @property
    def faces(self) -> FaceStats | None: ...
    @property
    def events(self) -> int: ...
    @property
    def restarts(self) -> int: ...


class RuntimeLike(Protocol):
    def health(self) -> Mapping[str, HealthLike]: ...

    def batcher_stats(self) -> BatcherStats: ...

    def latencies_ms(self) -> dict[str, list[float]]: ...

    def event_counts(self) -> Mapping[str, Mapping[tuple[str, str], int]]: ...

    def flow_latest(self) -> Mapping[str, Mapping[int, Mapping[str, object]]]: ...


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"sharpeyes_{name}", doc, labels=labels)


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(f"sharpeyes_{name}", doc, labels=labels)


class RuntimeCollector(Collector):
    """Reads a runtime's health at scrape time."""

    def __init__(self, runtime: RuntimeLike) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        health = self.runtime.health()
        yield from _stream_metrics(health)
        yield from _batcher_metrics(self.runtime.batcher_stats())
        yield from _latency_metrics(self.runtime.latencies_ms())
        yield from _event_metrics(self.runtime.event_counts())
        yield from _flow_metrics(self.runtime.flow_latest())


def _stream_metrics(health: Mapping[str, HealthLike]) -> Iterator[Metric]:
    cam = ["camera"]
    state = _gauge("stream_state", "1 for the camera's current state.", ["camera", "state"])
    gauges = {
        "input_fps": _gauge("stream_input_fps", "Frames per second received.", cam),
        "analysed_fps": _gauge("stream_analysed_fps", "Frames per second analysed.", cam),
        "age": _gauge("stream_last_frame_age_seconds", "Seconds since the last frame.", cam),
        "skew": _gauge("stream_skew_seconds", "Local clock minus stream wall time.", cam),
        "corruption": _gauge(
            "stream_corruption_ratio", "Share of recent frames corrupt or missing.", cam
        ),
        "noise": _gauge(
            "stream_noise_sigma",
            "Sensor noise of the camera's pictures (σ, 8-bit grey levels); from 3.5 the "
            "detector is shown a filtered picture.",
            cam,
        ),
        "range": _gauge(
            "stream_tonal_range",
            "Grey levels the camera's picture spans (0.5th–99.5th percentile); under 180 the "
            "detector is shown it stretched (haze, fog, a dirty dome, a flare).",
            cam,
        ),
        "plate_width": _gauge(
            "stream_plate_width_pixels",
            "Median width of a checkpoint camera's latest plates (picture pixels); under 50 "
            "they are too small to read: zoom in or move the camera closer.",
            cam,
        ),
    }
    counters = {
        "reconnects": _counter("stream_reconnects", "Reconnects of the source.", cam),
        "decode_errors": _counter("stream_decode_errors", "Packets that failed to decode.", cam),
        "pts_resets": _counter("stream_pts_resets", "Re-anchorings of pts to wall time.", cam),
        "frames": _counter("stream_frames_analysed", "Frames analysed.", cam),
        "repeated": _counter(
            "stream_frames_repeated",
            "Frames not analysed as repeats of the last analysed picture (since the pipeline "
            "started).",
            cam,
        ),
        "events": _counter("stream_events", "Events stored.", cam),
        "restarts": _counter("stream_pipeline_restarts", "Pipeline crashes restarted.", cam),
        "corrupt": _counter("stream_corrupt_frames", "Frames corrupt or lost in short gaps.", cam),
        "timing": _counter("stream_timing_faults", "Frames whose pts did not advance.", cam),
        "deinterlaced": _counter(
            "stream_deinterlaced_frames",
            "Interlaced pictures whose combs were undone before analysis.",
            cam,
        ),
        "plates_found": _counter(
            "stream_plates_found",
            "Plates found by a checkpoint camera's plate reads (since its pipeline started).",
            cam,
        ),
        "plates_read": _counter(
            "stream_plates_read", "Plates whose text was read (since the pipeline started).", cam
        ),
        "plates_too_small": _counter(
            "stream_plates_too_small",
            "Plates not read: narrower than the 50 px a plate needs (since the pipeline started).",
            cam,
        ),
        **{
            name: _counter(f"stream_{name}", f"{help_text[:-1]} (since the pipeline started).", cam)
            for name, help_text, _ in FACE_COUNTERS
        },
    }
    drops = _counter("stream_dropped_frames", "Frames not analysed, by reason.", [*cam, "reason"])
    for cid, h in sorted(health.items()):
        for s in STATES:
            state.add_metric([cid, s], 1.0 if h.state == s else 0.0)
        gauges["input_fps"].add_metric([cid], h.input_fps)
        gauges["analysed_fps"].add_metric([cid], h.analysed_fps)
        if h.last_frame_age_s is not None:
            gauges["age"].add_metric([cid], h.last_frame_age_s)
        if h.skew_ms is not None:
            gauges["skew"].add_metric([cid], h.skew_ms / 1000.0)
        counters["reconnects"].add_metric([cid], h.reconnects)
        counters["decode_errors"].add_metric([cid], h.decode_errors)
        counters["pts_resets"].add_metric([cid], h.pts_resets)
        counters["frames"].add_metric([cid], h.frames_analysed)
        counters["repeated"].add_metric([cid], h.frames_repeated)
        counters["events"].add_metric([cid], h.events)
        counters["restarts"].add_metric([cid], h.restarts)
        counters["corrupt"].add_metric([cid], h.corrupt_frames)
        counters["timing"].add_metric([cid], h.timing_faults)
        counters["deinterlaced"].add_metric([cid], h.frames_deinterlaced)
        gauges["corruption"].add_metric([cid], h.corruption_rate)
        if h.noise_sigma is not None:
            gauges["noise"].add_metric([cid], h.noise_sigma)
        if h.tonal_range is not None:
            gauges["range"].add_metric([cid], h.tonal_range)
        if h.plates is not None:  # a camera reading plates (structuring)
            counters["plates_found"].add_metric([cid], h.plates.seen)
            counters["plates_read"].add_metric([cid], h.plates.read)
            counters["plates_too_small"].add_metric([cid], h.plates.too_small)
            if h.plates.median_px is not None:
                gauges["plate_width"].add_metric([cid], h.plates.median_px)
        if h.faces is not None:  # a face camera (face capture on)
            for name, _, get in FACE_COUNTERS:
                counters[name].add_metric([cid], get(h.faces))
        for reason, n in sorted(h.drops.items()):
            drops.add_metric([cid, reason], n)
    yield state
    yield from gauges.values()
    yield from counters.values()
    yield drops


def _batcher_metrics(stats: BatcherStats) -> Iterator[Metric]:
    batches = _counter("batcher_batches", "Detector calls made by the batcher.", [])
    batches.add_metric([], stats.batches)
    images = _counter("batcher_images", "Images detected through the batcher.", [])
    images.add_metric([], stats.images)
    failed = _counter("batcher_failed_batches", "Detector calls that raised.", [])
    failed.add_metric([], stats.failed_batches)
    mean = _gauge("batcher_mean_batch_size", "Mean images per detector call.", [])
    mean.add_metric([], stats.mean_batch)
    yield from (batches, images, failed, mean)


def _latency_metrics(latencies: Mapping[str, list[float]]) -> Iterator[Metric]:
    g = _gauge(
        "event_latency_seconds",
        "Frame capture → event stored latency over recent events.",
        ["camera", "quantile"],
    )
    for cid, samples in sorted(latencies.items()):
        if len(samples) >= 2:
            q = statistics.quantiles(samples, n=20, method="inclusive")
            g.add_metric([cid, "0.5"], statistics.median(samples) / 1000.0)
            g.add_metric([cid, "0.95"], q[18] / 1000.0)
    yield g


def _event_metrics(counts: Mapping[str, Mapping[tuple[str, str], int]]) -> Iterator[Metric]:
    events = _counter("events", "Events stored, by type.", ["camera", "type"])
    violations = _counter(
        "violations", "Violations stored, by type and violation code.", ["camera", "type", "code"]
    )
    for cid, by in sorted(counts.items()):
        per_type: dict[str, int] = {}
        for (type_, code), n in by.items():
            per_type[type_] = per_type.get(type_, 0) + n
            if code:
                violations.add_metric([cid, type_, code], n)
        for type_, n in sorted(per_type.items()):
            events.add_metric([cid, type_], n)
    yield from (events, violations)


def _flow_metrics(latest: Mapping[str, Mapping[int, Mapping[str, object]]]) -> Iterator[Metric]:
    labels = ["camera", "lane"]
    gauges = {
        "count": _gauge("flow_vehicles", "Vehicles in the last complete interval.", labels),
        "occupancy": _gauge("flow_occupancy_ratio", "Zone time occupancy, last interval.", labels),
        "mean_speed_kmh": _gauge("flow_speed_kmh", "Time-mean speed, last interval.", labels),
        "mean_headway_s": _gauge("flow_headway_seconds", "Mean headway, last interval.", labels),
        "queue_max_vehicles": _gauge(
            "flow_queue_vehicles", "Longest queue, last interval.", labels
        ),
        "interval_s": _gauge("flow_interval_seconds", "Length of the flow interval.", labels),
    }
    for cid, lanes in sorted(latest.items()):
        for lane, fields in sorted(lanes.items()):
            for key, g in gauges.items():
                v = fields.get(key)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    g.add_metric([cid, str(lane)], float(v))
    yield from gauges.values()


def phase_metrics(counts: PhaseCountsSnapshot | None) -> Iterator[Metric]:
    """External signal-phase messages (REST and UDP) received, applied, and rejected by
    reason, by transport (:class:`~sharpeyes.pipeline.signal_input.PhaseCounts`)."""
    received = _counter("phase_messages_received", "Phase messages received.", ["transport"])
    applied = _counter("phase_messages_applied", "Phase messages applied.", ["transport"])
    rejected = _counter(
        "phase_messages_rejected", "Phase messages rejected, by reason.", ["transport", "reason"]
    )
    if counts is not None:
        for transport, n in sorted(counts.received.items()):
            received.add_metric([transport], n)
        for transport, n in sorted(counts.applied.items()):
            applied.add_metric([transport], n)
        for (transport, reason), n in sorted(counts.rejected.items()):
            rejected.add_metric([transport, reason], n)
    yield from (received, applied, rejected)


class PhaseCollector(Collector):
    """Reads a phase intake's counts at scrape time (``counts`` returns None: no intake)."""

    def __init__(self, counts: Callable[[], PhaseCountsSnapshot | None]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        yield from phase_metrics(self._counts())


def build_registry(
    runtime: RuntimeLike, phases: Callable[[], PhaseCountsSnapshot | None] | None = None
) -> CollectorRegistry:
    """A fresh registry exporting ``runtime`` (and its external phase counts, when given)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    if phases is not None:
        registry.register(PhaseCollector(phases))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition (serve with :data:`CONTENT_TYPE`)."""
    return generate_latest(registry)


class MetricsServer:
    """``/metrics`` on its own port (a daemon thread); :meth:`close` shuts it down."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port = int(self._server.server_address[1])
        logger.info("Prometheus metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    return MetricsServer(registry, host, port)
