"""Prometheus metrics of the API, on a registry owned by the app (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sharpeyes.api.node.prom import PhaseCollector
from sharpeyes.api.rest.schemas import StreamHealthPublic
from sharpeyes.pipeline.signal_input import PhaseCountsSnapshot


class _LiveCollector(Collector):
    """Reads stream health and feed state at scrape time."""

    def __init__(
        self,
        health: Callable[[], Mapping[str, StreamHealthPublic]],
        feed_state: Callable[[], tuple[int, int]],
    ) -> None:
        self._health = health
        self._feed = feed_state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        subs, last = self._feed()
        yield GaugeMetricFamily("sharpeyes_feed_subscribers", "Live feed subscribers.", subs)
        yield GaugeMetricFamily("sharpeyes_feed_last_seq", "Last live feed sequence.", last)
        fps_in = GaugeMetricFamily(
            "sharpeyes_stream_input_fps", "Frames/s received.", labels=["camera"]
        )
        fps_an = GaugeMetricFamily(
            "sharpeyes_stream_analysed_fps", "Frames/s analysed.", labels=["camera"]
        )
        drops = GaugeMetricFamily(
            "sharpeyes_stream_drops", "Frames dropped, by reason.", labels=["camera", "reason"]
        )
        reconn = GaugeMetricFamily("sharpeyes_stream_reconnects", "Reconnects.", labels=["camera"])
        for cam, h in sorted(self._health().items()):
            fps_in.add_metric([cam], h.input_fps)
            fps_an.add_metric([cam], h.analysed_fps)
            reconn.add_metric([cam], h.reconnects)
            for reason, n in sorted(h.drops_by_reason.items()):
                drops.add_metric([cam, reason], n)
        yield from (fps_in, fps_an, drops, reconn)


class ApiMetrics:
    """Request counters and latency histograms plus live gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sharpeyes_api_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sharpeyes_api_request_seconds",
            "HTTP request latency (time to response start for streams).",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.auth_failures = Counter(
            "sharpeyes_api_auth_failures",
            "Authentication failures by outcome.",
            ["outcome"],
            registry=self.registry,
        )

    def attach_live(
        self,
        health: Callable[[], Mapping[str, StreamHealthPublic]],
        feed_state: Callable[[], tuple[int, int]],
        phases: Callable[[], PhaseCountsSnapshot | None] | None = None,
    ) -> None:
        """Live gauges, and the external phase message counters of ``phases`` (read at scrape
        time: the service's phase intake may be plugged in after the app is built)."""
        self.registry.register(_LiveCollector(health, feed_state))
        if phases is not None:
            self.registry.register(PhaseCollector(phases))

    def render(self) -> bytes:
        return generate_latest(self.registry)
