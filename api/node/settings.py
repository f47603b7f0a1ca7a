"""The node's service configuration: one YAML file for ``sharpeyes run`` / ``sharpeyes serve``.

Pydantic, ``extra="forbid"``, a description on every field. Relative paths (file camera URLs,
the store and files root) are relative to the config file's folder, and ``$VARS`` in them are
expanded (e.g. ``$SHARPEYES_SHARED/sample_videos/highway_1280x720.mp4``).
``load_service_config`` turns every problem into a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from sharpeyes.api.cluster.service import ClusterSettings
from sharpeyes.api.rest.routes.console import ConsoleConfig
from sharpeyes.api.sinks.kafka import KafkaSinkConfig
from sharpeyes.api.sinks.mqtt import MqttSinkConfig
from sharpeyes.api.viid.delivery import DeliveryConfig
from sharpeyes.pipeline.config import (
    CameraConfig,
    DetectorSettings,
    OnnxRuntimeDetectorConfig,
    StrictModel,
    format_validation_error,
    read_yaml,
)
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.streams.config import RtspConfig, is_live_url
from sharpeyes.streams.gpu_decode import DecoderConfig

__all__ = [
    "RtspConfig",
    "ServiceConfig",
    "is_live_url",
    "load_service_config",
]


class BatchConfig(StrictModel):
    max_batch: int = Field(8, ge=1, le=256, description="Most images in one detector call.")
    max_wait_ms: float = Field(
        10.0,
        ge=0.0,
        le=1000.0,
        description="Longest wait after the first queued image before a batch is sent; a batch "
        "also goes as soon as every camera has an image in.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=16,
        description="Threads sending batches to the one detector concurrently (smaller batches "
        "in parallel; pair with detector threads=1 on small CPUs). 1 = one batch at a time.",
    )


class StoreConfig(StrictModel):
    url: str = Field(
        "out/service/events.db",
        description="Event store: a SQLite file path, sqlite:///path or postgresql://…",
    )
    files_root: Path = Field(
        Path("out/service"), description="Folder for crops, evidence and events.jsonl."
    )
    jsonl: bool = Field(True, description="Also append every event to files_root/events.jsonl.")


class ApiConfig(StrictModel):
    host: str = Field("127.0.0.1", description="Address the REST API listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port of the REST API.")


class MetricsConfig(StrictModel):
    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics on this port at /metrics (0 = any free port); "
        "None = not served (the REST API exports them instead).",
    )
    host: str = Field("127.0.0.1", description="Address of the metrics endpoint.")
    log_every_s: float = Field(
        30.0, ge=0.0, description="Log a one-line health summary this often; 0 = never."
    )


class PhaseInputConfig(StrictModel):
    """External signal phases over UDP (one JSON datagram per change; see
    ``sharpeyes.pipeline.signal_input``). The REST route takes them whenever the API runs."""

    udp_port: int | None = Field(
        None, ge=0, le=65535, description="UDP port for phase messages; None = no UDP listener."
    )
    udp_host: str = Field(
        "127.0.0.1",
        description="Address the UDP listener binds: 127.0.0.1 = senders on this machine only; "
        "0.0.0.0 (every interface) or the address of the interface facing the signal controller "
        "to take its messages over the network (UDP has no authentication: firewall the port).",
    )


class NodeConfig(StrictModel):
    """How ``sharpeyes run --workers`` spreads cameras over worker processes."""

    workers: Annotated[int, Field(ge=1, le=256)] | Literal["per-gpu"] = Field(
        1,
        description="Worker processes, each running its share of the cameras end to end with "
        "its own detector; 'per-gpu' = one per visible GPU (one on a machine without GPU). "
        "The command line's --workers overrides it.",
    )
    partition: Literal["round-robin", "cost"] = Field(
        "round-robin",
        description="Cameras to workers in config order round-robin, or by cost: the costliest "
        "camera first to the least loaded worker.",
    )
    costs: dict[str, float] = Field(
        default_factory=dict,
        description="Declared relative cost per camera id for partition 'cost' (e.g. a 4K "
        "camera 4.0); a camera not listed costs its analysis_fps (5 when unset).",
    )
    report_every_s: float = Field(
        0.5, gt=0.0, le=60.0, description="How often a worker sends its health to the parent."
    )
    restart_backoff_s: float = Field(
        1.0, ge=0.0, le=600.0, description="Wait before restarting a dead worker (doubles)."
    )
    restart_budget: int = Field(
        5,
        ge=0,
        le=1000,
        description="Worker restarts allowed per 5 minutes; beyond it the worker's cameras are "
        "reported failed and it is retried every 60 s.",
    )
    stop_timeout_s: float = Field(
        30.0,
        gt=0.0,
        le=600.0,
        description="Time a worker gets to flush its cameras on stop before it is killed.",
    )


class ServiceConfig(StrictModel):
    """Everything one node runs: its cameras, the shared detector, store, API and metrics."""

    cameras: list[CameraConfig] = Field(
        default_factory=list, description="Cameras to run (RTSP URLs or files played as live)."
    )
    detector: DetectorSettings = Field(
        default_factory=OnnxRuntimeDetectorConfig,
        description="The detector the cameras share (model, runtime, input size; each "
        "camera still applies its own confidence threshold, motorcycle kind and class kinds "
        "from its `detector` section; a camera whose section sets another model, model_path "
        "or input_size gets a detector of that kind with these runtime settings, shared with "
        "the cameras asking for the same): `backend` onnxruntime (default), onnxruntime-gpu or "
        "torch, with that backend's fields and `fallback` ('cpu' or 'fail'). The backend "
        "actually in use is shown in camera health.",
    )
    detector_backend: DetectorSettings | None = Field(
        None,
        description="Deprecated: the same detector config under its former key; when set it "
        "replaces `detector`.",
    )
    decoder: DecoderConfig = Field(
        default_factory=DecoderConfig,
        description="Video decoder of every camera: cpu, pyav-cuda or nvdec, with fallback "
        "'cpu' (decode on the CPU when the GPU decoder cannot run here) or 'fail'. The decoder "
        "in use is shown in camera health; red-light cameras always decode on the CPU.",
    )
    node: NodeConfig = Field(
        default_factory=NodeConfig,
        description="Worker processes of the node (sharpeyes run --workers).",
    )
    batch: BatchConfig = Field(
        default_factory=BatchConfig, description="Cross-camera batching in front of the detector."
    )
    store: StoreConfig = Field(default_factory=StoreConfig, description="Where events go.")
    api: ApiConfig = Field(default_factory=ApiConfig, description="REST API (sharpeyes serve).")
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="Prometheus endpoint and health logging."
    )
    rtsp: RtspConfig = Field(
        default_factory=RtspConfig, description="Connection settings of RTSP cameras."
    )
    phase_input: PhaseInputConfig = Field(
        default_factory=PhaseInputConfig,
        description="External signal-phase input (signal controller) for groups with "
        "source: external.",
    )
    loop_files: bool = Field(
        True, description="Restart a file camera at its end, so a clip stands in for a camera."
    )
    delivery: DeliveryConfig | None = Field(
        None,
        description="GA/T 1400 delivery to an upper view library; None = events are only "
        "stored (no outbox rows).",
    )
    console: ConsoleConfig = Field(
        default_factory=ConsoleConfig,
        description="Per-unit settings of the review console and the operator screen: preset "
        "reject reasons (废片 reasons), the camera map's tile server.",
    )
    mqtt: MqttSinkConfig | None = Field(
        None,
        description="Publish every stored event to an MQTT broker (QoS 1, at-least-once through "
        "the durable outbox, destination 'mqtt'); None = no MQTT.",
    )
    kafka: KafkaSinkConfig | None = Field(
        None,
        description="Produce every stored event to Kafka (idempotent producer, acks=all, "
        "at-least-once through the durable outbox, destination 'kafka'); None = no Kafka.",
    )
    cluster: ClusterSettings | None = Field(
        None,
        description="Shard the cameras over workers/nodes (local threads or Ray) with leases "
        "and epoch fencing; None = this node runs them itself.",
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> ServiceConfig:
        seen: set[str] = set()
        for cam in self.cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} is used twice")
            seen.add(cam.id)
        return self

    @model_validator(mode="after")
    def _one_device_per_camera(self) -> ServiceConfig:
        """With GA/T 1400 delivery and 2+ cameras each camera needs its own capture device id
        (``delivery.device_ids[camera]``, else the camera's ``device_id``).

        GA/T object ids are unique per (device, second, serial) and our serials come from the
        camera's track ids (:mod:`sharpeyes.api.viid.ids`): two cameras under one device id
        (e.g. both left on the built-in default) send the same MotorVehicleID for their track 3
        in one second, and the platform keeps one of them (the other is answered "duplicate").
        The serials have no room left for a camera number, so distinct device ids are the fix.
        """
        d = self.delivery
        if d is None or len(self.cameras) < 2:
            return self
        problems = shared_device_ids(d, self.cameras)
        if problems:
            raise ValueError(
                "GA/T 1400 delivery with several cameras needs one 20-digit device id per camera "
                "(the camera's device_id or delivery.device_ids) — object ids are unique only "
                "per device, so two cameras under one id send the same MotorVehicleID and the "
                "platform keeps one: " + "; ".join(problems)
            )
        return self

    @model_validator(mode="after")
    def _costs_name_cameras(self) -> ServiceConfig:
        ids = {cam.id for cam in self.cameras}
        unknown = sorted(set(self.node.costs) - ids)
        if unknown:
            raise ValueError(f"node.costs names unknown cameras: {', '.join(unknown)}")
        return self


def shared_device_ids(delivery: DeliveryConfig, cameras: Sequence[CameraConfig]) -> list[str]:
    """Cameras that GA/T 1400 delivery would send under one capture device id, in words (empty
    when every camera has its own): ``delivery.device_ids[camera]``, else its ``device_id``."""
    default = CameraConfig.model_fields["device_id"].default
    users: dict[str, list[str]] = {}
    for cam in cameras:
        users.setdefault(delivery.device_ids.get(cam.id) or cam.device_id, []).append(cam.id)
    return [
        f"cameras without their own device_id (all on the default {dev}): {', '.join(c)}"
        if dev == default
        else f"device id {dev} is shared by {', '.join(c)}"
        for dev, c in users.items()
        if len(c) > 1
    ]


def _resolve(text: str, base: Path) -> str:
    expanded = os.path.expandvars(os.path.expanduser(text))
    if is_live_url(expanded) or "://" in expanded or Path(expanded).is_absolute():
        return expanded
    return str((base / expanded).resolve())


def resolve_paths(config: ServiceConfig, base: Path) -> ServiceConfig:
    """Make file URLs, the store path, files_root and the detector backend's model and engine
    cache paths absolute against ``base``."""
    cams = [
        c if c.url is None else c.model_copy(update={"url": _resolve(c.url, base)})
        for c in config.cameras
    ]
    store = config.store.model_copy(
        update={
            "url": _resolve(config.store.url, base),
            "files_root": Path(_resolve(str(config.store.files_root), base)),
        }
    )
    update: dict[str, object] = {"cameras": cams, "store": store}
    if config.cluster is not None:
        cl = config.cluster
        cl_update: dict[str, object] = {"db_url": _resolve(cl.db_url, base)}
        if cl.files_root is not None:
            cl_update["files_root"] = _resolve(cl.files_root, base)
        update["cluster"] = cl.model_copy(update=cl_update)
    for key in ("detector", "detector_backend"):
        det = getattr(config, key)
        if det is None:
            continue
        paths = {
            "model_path": det.model_path,
            "engine_cache_dir": getattr(det, "engine_cache_dir", None),
        }
        resolved = {k: Path(_resolve(str(v), base)) for k, v in paths.items() if v is not None}
        if resolved:
            update[key] = det.model_copy(update=resolved)
    return config.model_copy(update=update)


def load_service_config(path: Path) -> ServiceConfig:
    """Load and validate a service YAML file.

    Raises:
        ConfigError: unreadable file, invalid YAML, or an invalid field (one line naming it).
    """
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (cameras, detector, …)")
    try:
        config = ServiceConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path), ServiceConfig)) from e
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from e
    for cam in config.cameras:
        if cam.url is None:
            raise ConfigError(f"{path}: cameras.{cam.id}.url: a camera needs a url")
    return resolve_paths(config, path.resolve().parent)
