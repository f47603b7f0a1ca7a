"""Node layout without processes: worker planning, config of decoder/detector backends, the
parent's aggregation and restart bookkeeping, and the runtime's backend choice on CPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from sharpeyes.api.node.health import CameraHealth
from sharpeyes.api.node.plan import count_gpus, partition, plan_workers, resolve_workers
from sharpeyes.api.node.process_metrics import node_registry, sum_batcher_stats
from sharpeyes.api.node.processes import NodeFacade, WorkerHandle
from sharpeyes.api.node.prom import render
from sharpeyes.api.node.settings import ServiceConfig, load_service_config
from sharpeyes.api.node.worker import WorkerReport
from sharpeyes.pipeline.batcher import BatcherStats
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.streams.config import RtspConfig
from sharpeyes.streams.factory import LiveFileSource, make_source
from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.gpu_decode import DecoderConfig, DecoderUnavailableError, GpuDecodeSource


def cam(cid: str, fps: float | None = None, url: str = "/clips/x.mp4") -> CameraConfig:
    return CameraConfig.model_validate({"id": cid, "url": url, "analysis_fps": fps})


def service(cams: list[CameraConfig], **kw: object) -> ServiceConfig:
    data = {"cameras": [c.model_dump(mode="json", exclude_none=True) for c in cams], **kw}
    return ServiceConfig.model_validate(data)


# -- planning ------------------------------------------------------------------------------


def test_round_robin_partition_keeps_config_order() -> None:
    cams = [cam(f"c{i}") for i in range(5)]
    groups = partition(cams, 2)
    assert [[c.id for c in g] for g in groups] == [["c0", "c2", "c4"], ["c1", "c3"]]
    with pytest.raises(ValueError, match="≥ 1"):
        partition(cams, 0)


def test_cost_partition_balances_declared_and_rate_costs() -> None:
    cams = [cam("big", 5), cam("a", 5), cam("b", 5), cam("fast", 20), cam("c", 5)]
    groups = partition(cams, 2, by="cost", costs={"big": 30.0})
    ids = [[c.id for c in g] for g in groups]
    assert ids == [["big", "c"], ["a", "b", "fast"]]  # costliest first: 30+5 vs 20+5+5
    loads = [sum({"big": 30.0}.get(c.id, c.analysis_fps or 5) for c in g) for g in groups]
    assert abs(loads[0] - loads[1]) <= 5
    even = partition([cam(f"e{i}") for i in range(4)], 2, by="cost")  # unset fps costs 5
    assert [len(g) for g in even] == [2, 2]


def test_plan_per_gpu_pins_each_worker_to_its_device() -> None:
    cfg = service(
        [cam("a"), cam("b"), cam("c")],
        decoder={"backend": "nvdec", "device_id": 0},
        detector_backend={"backend": "torch", "device": "cuda:0"},
        metrics={"port": 9100},
    )
    plans = plan_workers(cfg, "per-gpu", gpus=2)
    assert [(p.index, p.gpu, p.camera_ids) for p in plans] == [(0, 0, ("a", "c")), (1, 1, ("b",))]
    second = plans[1].config
    assert second.decoder.device_id == 1 and second.decoder.backend == "nvdec"
    assert second.detector_backend is not None and second.detector_backend.device == "cuda:1"
    assert second.metrics.port is None and cfg.metrics.port == 9100  # the parent serves it
    assert [c.id for c in second.cameras] == ["b"]


def test_plan_on_cpu_and_with_more_workers_than_cameras() -> None:
    cfg = service([cam("a"), cam("b")])
    assert [p.gpu for p in plan_workers(cfg, "per-gpu", gpus=0)] == [None]
    plans = plan_workers(cfg, 4, gpus=0)
    assert [p.camera_ids for p in plans] == [("a",), ("b",)]  # no idle processes
    assert plan_workers(service([]), 3, gpus=0) == []
    assert resolve_workers(3, gpus=8) == 3 and resolve_workers("per-gpu", gpus=8) == 8
    with pytest.raises(ConfigError, match="workers must be"):
        resolve_workers(0, gpus=0)


def test_count_gpus_reads_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    assert count_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert count_gpus() == 0
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert count_gpus() == 0  # no nvidia-smi


# -- config --------------------------------------------------------------------------------


def test_service_config_gpu_fields(tmp_path: Path) -> None:
    data = {
        "cameras": [{"id": "a", "url": "a.mp4"}],
        "decoder": {"backend": "pyav-cuda", "fallback": "fail"},
        "detector_backend": {"backend": "torch", "model_path": "m/yolov5n.pt", "fallback": "cpu"},
        "node": {"workers": "per-gpu", "partition": "cost", "costs": {"a": 2.0}},
    }
    (tmp_path / "svc.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    cfg = load_service_config(tmp_path / "svc.yaml")
    assert cfg.decoder.backend == "pyav-cuda" and cfg.decoder.fallback == "fail"
    assert cfg.detector_backend is not None
    assert cfg.detector_backend.model_path == tmp_path / "m/yolov5n.pt"  # relative to the file
    assert cfg.node.workers == "per-gpu" and cfg.node.costs == {"a": 2.0}
    defaults = ServiceConfig()
    assert defaults.decoder.backend == "cpu" and defaults.detector_backend is None
    assert defaults.node.workers == 1
    for model in (ServiceConfig, type(defaults.node)):
        assert all(f.description for f in model.model_fields.values())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"decoder": {"backend": "vaapi"}}, "decoder.backend"),
        ({"detector_backend": {"backend": "tensorflow"}}, "detector_backend.backend"),
        ({"node": {"workers": 0}}, "node.workers"),
        ({"node": {"costs": {"ghost": 1.0}}}, "node.costs names unknown cameras: ghost"),
    ],
)
def test_bad_gpu_config_names_the_field(tmp_path: Path, data: object, message: str) -> None:
    (tmp_path / "svc.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_service_config(tmp_path / "svc.yaml")


# -- sources -------------------------------------------------------------------------------


def test_make_source_gpu_decoder_falls_back_or_fails(sample_videos: Path) -> None:
    clip = str(sample_videos / "highway_640x360.mp4")
    live = CameraConfig.model_validate({"id": "g", "url": clip, "live": True, "analysis_fps": 5})
    nvdec = DecoderConfig(backend="nvdec", fallback="cpu")
    src = make_source(live, RtspConfig(), decoder=nvdec)
    assert isinstance(src, LiveFileSource) and isinstance(src.inner, GpuDecodeSource)
    assert src.inner.fallback_reason is not None and "nvdec" in src.inner.fallback_reason
    assert src.decoder is not None and "pyav cpu" in src.decoder
    assert not src.inner.config.keep_on_device  # the runner detects on host frames
    frame = next(iter(src.frames()))
    assert frame.image.shape == (360, 640, 3) and frame.device_image is None
    src.close()
    plain = make_source(live.model_copy(update={"live": False}), RtspConfig(), decoder=nvdec)
    assert isinstance(plain, GpuDecodeSource)
    plain.close()
    with pytest.raises(DecoderUnavailableError, match="nvdec"):
        make_source(live, RtspConfig(), decoder=nvdec.model_copy(update={"fallback": "fail"}))
    cpu = make_source(live, RtspConfig(), decoder=DecoderConfig())
    assert isinstance(cpu, LiveFileSource) and isinstance(cpu.inner, FileSource)
    assert cpu.decoder == "pyav-cpu"


def test_red_light_camera_keeps_the_cpu_decoder(sample_videos: Path) -> None:
    from sharpeyes.streams.packet_ring import PacketRing

    clip = str(sample_videos / "highway_640x360.mp4")
    live = CameraConfig.model_validate({"id": "r", "url": clip, "live": True})
    ring = PacketRing(max_seconds=5.0, max_bytes=1 << 20)
    src = make_source(live, RtspConfig(), ring=ring, decoder=DecoderConfig(backend="nvdec"))
    assert isinstance(src, LiveFileSource) and isinstance(src.inner, FileSource)
    src.close()


# -- the parent's view ---------------------------------------------------------------------


def health(cid: str, state: str = "live", frames: int = 10, restarts: int = 0) -> CameraHealth:
    return CameraHealth(
        camera_id=cid,
        url=f"/clips/{cid}.mp4",
        state=state,
        input_fps=5.0,
        analysed_fps=5.0,
        drops={"backlog": 0},
        reconnects=0,
        last_frame_age_s=0.1,
        decode_errors=0,
        skew_ms=10.0,
        frames_analysed=frames,
        restarts=restarts,
    )


def report(index: int, gen: int, cams: dict[str, CameraHealth], **kw: object) -> WorkerReport:
    stats = BatcherStats(batches=2, images=4, by_stream={k: 2 for k in cams}, batch_sizes={2: 2})
    return WorkerReport(index, gen, 1000 + index, cams, stats, {k: [1.0, 2.0] for k in cams}, **kw)  # type: ignore[arg-type]


def facade_of(cfg: ServiceConfig, n: int) -> NodeFacade:
    facade = NodeFacade(cfg, plan_workers(cfg, n, gpus=0))
    for h in facade.handles:
        h.generation = 1
    return facade


def test_facade_aggregates_reports_and_marks_down_workers() -> None:
    cfg = service([cam("a"), cam("b"), cam("c")])
    facade = facade_of(cfg, 2)
    w0, w1 = facade.handles
    assert {k: h.state for k, h in facade.health().items()} == dict.fromkeys("abc", "connecting")
    facade._accept(w0, report(0, 1, {"a": health("a"), "c": health("c", restarts=1)}))
    facade._accept(w1, report(1, 1, {"b": health("b", frames=7)}))
    facade._accept(w1, report(1, 0, {"b": health("b", frames=999)}))  # stale generation
    assert w0.state == w1.state == "running"
    h = facade.health()
    assert list(h) == ["a", "b", "c"] and h["b"].frames_analysed == 7 and h["c"].restarts == 1
    stats = facade.batcher_stats()
    assert (stats.batches, stats.images, stats.by_stream) == (4, 8, {"a": 2, "c": 2, "b": 2})
    assert set(facade.latencies_ms()) == {"a", "b", "c"}
    now = time.monotonic()
    w1.report = None  # worker 1 died: its cameras keep their last values, state forced
    facade._crashed(w1, -9, now)
    b = facade.health()["b"]
    assert b.state == "backoff" and b.restarts == 1 and b.frames_analysed == 7
    assert b.analysed_fps == 0.0 and b.last_error is not None and "code -9" in b.last_error
    assert w1.next_start is not None and w1.next_start - now == pytest.approx(1.0)
    text = render(node_registry(facade)).decode()
    assert 'sharpeyes_node_worker_up{gpu="",worker="0"} 1.0' in text
    assert 'sharpeyes_node_worker_restarts_total{gpu="",worker="1"} 1.0' in text
    assert 'sharpeyes_stream_state{camera="b",state="backoff"} 1.0' in text
    assert "sharpeyes_batcher_images_total 4.0" in text  # the live workers only


def test_crash_budget_then_failed_and_finished_workers() -> None:
    cfg = service([cam("a")], node={"restart_budget": 2, "restart_backoff_s": 0.5})
    facade = facade_of(cfg, 1)
    (w,) = facade.handles
    now = time.monotonic()
    delays = []
    for _ in range(3):
        facade._crashed(w, 1, now)
        assert w.next_start is not None
        delays.append((w.state, round(w.next_start - now, 2)))
    assert delays == [("backoff", 0.5), ("backoff", 1.0), ("failed", 60.0)]
    assert facade.health()["a"].state == "failed" and facade.health()["a"].restarts == 3
    assert not facade.all_finished()
    w.state = "finished"
    assert facade.all_finished()
    assert not NodeFacade(cfg, []).all_finished()


def test_sum_of_batcher_stats() -> None:
    a = BatcherStats(1, 3, 0, 3, {"x": 3}, {3: 1})
    b = BatcherStats(2, 2, 1, 1, {"x": 1, "y": 1}, {1: 2})
    total = sum_batcher_stats([a, b])
    assert (total.batches, total.images, total.failed_batches, total.max_batch_seen) == (3, 5, 1, 3)
    assert total.by_stream == {"x": 4, "y": 1} and total.batch_sizes == {3: 1, 1: 2}
    assert isinstance(WorkerHandle(plan_workers(service([cam("a")]), 1, 0)[0]).pid, type(None))


# -- the runtime reports the backends actually in use --------------------------------------


def test_runtime_reports_decoder_and_detector_fallbacks(
    tmp_path: Path, sample_videos: Path
) -> None:
    from sharpeyes.api.node.runtime import NodeRuntime

    clip = str(sample_videos / "highway_640x360.mp4")
    cfg = ServiceConfig.model_validate(
        {
            "cameras": [{"id": "g", "url": clip, "live": True, "analysis_fps": 5}],
            "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
            "decoder": {"backend": "nvdec", "fallback": "cpu"},
            "detector_backend": {
                "backend": "torch",
                "device": "cuda:0",
                "model": "yolov5n",
                "input_size": [384, 640],
                "fallback": "cpu",
                "warmup": 0,
            },
        }
    )
    rt = NodeRuntime(cfg).start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and rt.health()["g"].frames_analysed < 5:
            time.sleep(0.1)
        h = rt.health()["g"]
    finally:
        rt.stop()
    assert h.state == "live" and h.frames_analysed >= 5 and (h.width, h.height) == (640, 360)
    assert h.decoder is not None and "pyav cpu" in h.decoder
    assert h.detector_backend is not None
    assert h.detector_backend.startswith("onnxruntime (CPUExecutionProvider)")
    assert "fallback from torch" in h.detector_backend
    assert h.drops["sampling"] > h.frames_analysed  # 29.97 fps clip, 5 analysed


def test_each_gpu_worker_puts_its_detector_on_its_own_gpu() -> None:
    """Per-GPU workers: the decoder and the detector (under either key) use that worker's GPU,
    not all GPU 0."""
    from sharpeyes.api.node.plan import worker_config

    cfg = ServiceConfig.model_validate({"detector": {"providers": "cuda", "device": "cuda:0"}})
    for gpu in (0, 1, 3):
        w = worker_config(cfg, [], gpu)
        assert w.detector.device == f"cuda:{gpu}"
        assert w.decoder.device_id == gpu
