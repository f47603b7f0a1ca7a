"""Prometheus export of a multi-process node: the single-runtime metrics of :mod:`api.node.prom`
over the aggregated view, plus one gauge family per worker process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sharpeyes.pipeline.batcher import BatcherStats

if TYPE_CHECKING:
    from sharpeyes.api.node.processes import NodeFacade


def sum_batcher_stats(stats: Sequence[BatcherStats]) -> BatcherStats:
    out = BatcherStats()
    for s in stats:
        out.batches += s.batches
        out.images += s.images
        out.failed_batches += s.failed_batches
        out.max_batch_seen = max(out.max_batch_seen, s.max_batch_seen)
        for k, n in s.by_stream.items():
            out.by_stream[k] = out.by_stream.get(k, 0) + n
        for size, n in s.batch_sizes.items():
            out.batch_sizes[size] = out.batch_sizes.get(size, 0) + n
    return out


class WorkerCollector(Collector):
    """Per-worker gauges: up, restarts, cameras, generation."""

    def __init__(self, facade: NodeFacade) -> None:
        self.facade = facade

    def collect(self) -> Iterator[Metric]:
        labels = ["worker", "gpu"]
        up = GaugeMetricFamily(
            "sharpeyes_node_worker_up", "1 while the worker runs.", labels=labels
        )
        restarts = CounterMetricFamily(
            "sharpeyes_node_worker_restarts", "Worker process restarts.", labels=labels
        )
        cams = GaugeMetricFamily(
            "sharpeyes_node_worker_cameras", "Cameras owned by the worker.", labels=labels
        )
        for h in self.facade.workers():
            key = [str(h.plan.index), "" if h.plan.gpu is None else str(h.plan.gpu)]
            up.add_metric(key, 1.0 if h.state == "running" else 0.0)
            restarts.add_metric(key, h.restarts)
            cams.add_metric(key, len(h.plan.camera_ids))
        yield from (up, restarts, cams)


def node_registry(facade: NodeFacade) -> CollectorRegistry:
    """The node's Prometheus registry: the camera/batcher/latency metrics plus the workers'."""
    from sharpeyes.api.node.prom import build_registry

    registry = build_registry(facade)
    registry.register(WorkerCollector(facade))
    return registry
