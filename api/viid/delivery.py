"""GA/T 1400 delivery wiring: one YAML config → client + mapper + outbox sender on a thread.

The CLI (``sharpeyes analyze VIDEO --deliver delivery.yaml``) and the service use it the same way::

    config = load_delivery_config(Path("delivery.yaml"))
    delivery = start_delivery(store, config, files_root=out_dir)
    ... store.add_events(events, outbox_destinations=["viid"]) ...   # same transaction
    delivery.drain(timeout_s=60)      # True when the outbox is empty
    delivery.stop()

Secrets come from the environment (``password_env``); a literal ``password`` is accepted for
tests and demos. Neither is ever logged or shown in a ``repr``. Pictures: the event's crop from
the store, and for violations ``1.jpg`` (scene), ``plate.jpg`` and ``composite.jpg`` from the
event's evidence directory when present; in a cluster with object storage, what is not under the
files root is read from there (:class:`EvidenceImages`). With subscriptions enabled, a second
thread pushes SubscribeNotifications (:mod:`sharpeyes.api.viid.subscriptions`) through the same
durable outbox.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sharpeyes.api.cluster.storage import (
    CROP_NAME,
    PLATE_NAME,
    SCENE_NAME,
    EvidenceReader,
    StorageUnavailableError,
    evidence_key,
)
from sharpeyes.api.store import EventStore, OutboxStats, StoredEvent
from sharpeyes.api.store.files import plate_path, scene_path
from sharpeyes.api.viid.client import SessionState, ViidClient
from sharpeyes.api.viid.config import (
    ViidClientConfig,
    ViidMappingConfig,
    ViidPlatform,
    require_http_url,
)
from sharpeyes.api.viid.dead_letters import (
    DeadLetter,
    list_dead_letters,
    retry_all_dead_letters,
    retry_dead_letter,
)
from sharpeyes.api.viid.ids import require_device_id, require_org_code
from sharpeyes.api.viid.mapping import EventImages, EventMapper, ImageRef
from sharpeyes.api.viid.notifier import NotifierOptions, SubscriptionNotifier
from sharpeyes.api.viid.sender import OutboxSender, SenderOptions
from sharpeyes.api.viid.subscription_routes import SubscriberAuth
from sharpeyes.api.viid.subscriptions import (
    CameraDeviceIds,
    ResourceResolver,
    SubscriptionRegistry,
    no_cameras,
)
from sharpeyes.pipeline.config import format_validation_error, read_yaml
from sharpeyes.pipeline.errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)

DESTINATION = "viid"
EVIDENCE_SCENE = "1.jpg"
EVIDENCE_PLATE = "plate.jpg"
EVIDENCE_COMPOSITE = "composite.jpg"
EVIDENCE_RECORD = "record.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret(
    literal: SecretStr | None, env_name: str | None, what: str, env: Mapping[str, str]
) -> str:
    if literal is not None:
        return literal.get_secret_value()
    if env_name is None:
        raise ConfigError(f"{what}: set password_env (or password)")
    value = env.get(env_name)
    if value is None:
        raise ConfigError(f"{what}: environment variable {env_name} is not set")
    return value


class SubscriptionSettings(_Strict):
    """We as the lower platform: upper platforms subscribe to our records (GAT1400.md §7)."""

    enabled: bool = Field(
        False, description="Run the SubscribeNotification sender (and accept subscriptions)."
    )
    org_code: str | None = Field(
        None, description="12-digit organisation code of NotificationIDs (default: device_id[:12])."
    )
    username: str | None = Field(
        None, description="Account to register with a subscriber (default: the top-level user)."
    )
    password: SecretStr | None = Field(
        None, description="Password of that account (prefer password_env)."
    )
    password_env: str | None = Field(
        None, description="Environment variable holding that password."
    )
    register_with_subscriber: bool = Field(
        True, description="Register (Digest) with the subscriber before posting notifications."
    )
    allowed_subscribers: tuple[str, ...] = Field(
        (), description="User-Identify values allowed to subscribe (empty: anyone)."
    )
    subscriber_username: str | None = Field(
        None, description="Digest account subscribers must use on /VIID/Subscribes (optional)."
    )
    subscriber_password_env: str | None = Field(
        None, description="Environment variable holding the subscriber account's password."
    )
    max_objects: int = Field(
        20, ge=1, le=20, description="Objects per notification (InfoIDs ≤ 1024 chars → ≤ 20)."
    )
    extra_resource_ids: tuple[str, ...] = Field(
        (), description="More 20-digit ids a ResourceURI may name (besides mapped ones)."
    )

    @model_validator(mode="after")
    def _check(self) -> SubscriptionSettings:
        if self.org_code is not None:
            require_org_code(self.org_code)
        for rid in self.extra_resource_ids:
            require_device_id(rid, "extra_resource_ids")
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        return self


class DeliveryConfig(ViidMappingConfig):
    """Delivery to one upper view library; every platform variant is a switch (§11).

    The mapping fields (device and tollgate ids, images, violation code field, time zone,
    vehicle class codes) are :class:`ViidMappingConfig`'s, inherited — declared once."""

    base_url: str = Field(description="Upper platform root, e.g. http://10.0.0.5:8080 (no /VIID).")
    device_id: str = Field(description="Our 20-digit system id (User-Identify, Register).")
    username: str = Field(description="Digest account issued by the platform.")
    password: SecretStr | None = Field(
        None, description="Digest password (tests/demo only; prefer password_env)."
    )
    password_env: str | None = Field(
        None, description="Name of the environment variable holding the Digest password."
    )
    platform: ViidPlatform = Field(
        default_factory=ViidPlatform, description="Platform variants (GAT1400.md §11)."
    )
    batch_max_objects: int = Field(10, ge=1, le=1000, description="Objects per POST at most.")
    batch_max_bytes: int = Field(4_000_000, ge=10_000, description="JSON bytes per POST at most.")
    claim_limit: int = Field(100, ge=1, le=10_000, description="Outbox rows claimed per round.")
    keepalive_interval_s: float = Field(30.0, gt=0, le=300, description="Keepalive period.")
    keepalive_max_failures: int = Field(3, ge=1, description="Failed keepalives → re-register.")
    connect_timeout_s: float = Field(3.0, gt=0, description="TCP connect timeout per request.")
    request_timeout_s: float = Field(10.0, gt=0, description="Read/write timeout per request.")
    register_backoff_initial_s: float = Field(1.0, gt=0, description="First register retry.")
    register_backoff_max_s: float = Field(300.0, gt=0, description="Register back-off cap.")
    retry_backoff_initial_s: float = Field(2.0, gt=0, description="First retry of a record.")
    retry_backoff_max_s: float = Field(300.0, gt=0, description="Record retry back-off cap.")
    retry_max_transient_answers: int = Field(
        20,
        ge=0,
        description="Transient refusals of one record (StatusCode 1/2/3/9…) before it becomes a "
        "dead letter; 0 = retry forever. Transport failures and outages do not count.",
    )
    lease_s: float = Field(60.0, gt=0, description="Claimed rows come back after this (crash).")
    idle_sleep_s: float = Field(0.5, gt=0, le=60, description="Sender sleep when idle.")
    time_sync_interval_s: float = Field(3600.0, gt=0, description="GET /VIID/System/Time period.")
    subscriptions: SubscriptionSettings = Field(
        default_factory=SubscriptionSettings, description="Subscriptions from upper platforms."
    )

    @model_validator(mode="after")
    def _check(self) -> DeliveryConfig:
        if (self.password is None) == (self.password_env is None):
            raise ValueError("give exactly one of password_env or password")
        if self.images != "inline" and not self.image_base_url:
            raise ValueError(f"images={self.images!r} needs image_base_url")
        return self

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return require_http_url(v)

    @field_validator("device_id", "default_device_id")
    @classmethod
    def _device(cls, v: str | None) -> str | None:
        return None if v is None else require_device_id(v, "id")

    @field_validator("device_ids", "tollgate_ids")
    @classmethod
    def _ids(cls, v: dict[str, str]) -> dict[str, str]:
        for stream, code in v.items():
            require_device_id(code, f"id of stream {stream!r}")
        return v

    def resolve_password(self, env: Mapping[str, str] | None = None) -> str:
        """The Digest password; raises ConfigError when ``password_env`` is not set."""
        return _secret(self.password, self.password_env, "delivery", env or os.environ)

    def subscriber_client_password(self, env: Mapping[str, str] | None = None) -> str:
        s = self.subscriptions
        if s.password is None and s.password_env is None:
            return self.resolve_password(env)
        return _secret(s.password, s.password_env, "subscriptions", env or os.environ)

    def client_config(self, password: str, base_url: str | None = None) -> ViidClientConfig:
        return ViidClientConfig(
            base_url=base_url or self.base_url,
            device_id=self.device_id,
            username=self.username,
            password=password,
            keepalive_interval_s=self.keepalive_interval_s,
            keepalive_max_failures=self.keepalive_max_failures,
            connect_timeout_s=self.connect_timeout_s,
            request_timeout_s=self.request_timeout_s,
            register_backoff_initial_s=self.register_backoff_initial_s,
            register_backoff_max_s=self.register_backoff_max_s,
            time_sync_interval_s=self.time_sync_interval_s,
            batch_max_objects=self.batch_max_objects,
            batch_max_bytes=self.batch_max_bytes,
            platform=self.platform,
        )

    def mapping_config(self) -> ViidMappingConfig:
        """The mapping part; a stream without its own device id uses our ``device_id``."""
        fields = {k: getattr(self, k) for k in ViidMappingConfig.model_fields}
        fields["default_device_id"] = self.default_device_id or self.device_id
        return ViidMappingConfig(**fields)

    def sender_options(self) -> SenderOptions:
        return SenderOptions(
            destination=DESTINATION,
            claim_limit=self.claim_limit,
            lease_ms=int(self.lease_s * 1000),
            backoff_initial_s=self.retry_backoff_initial_s,
            backoff_max_s=self.retry_backoff_max_s,
            idle_sleep_s=self.idle_sleep_s,
            max_attempts=self.retry_max_transient_answers,
        )

    def resolver(self, cameras: CameraDeviceIds = no_cameras) -> ResourceResolver:
        """The ids a subscription's ResourceURI may name, and the ids of each event.

        ``cameras`` gives the device ids of the cameras the service has now (its camera
        registry: config cameras and those added over REST; in cluster mode the desired set):
        asked at every subscription, so a camera added or removed at run time counts at once."""
        return ResourceResolver(
            platform_id=self.device_id,
            mapping=self.mapping_config(),
            extra_ids=frozenset(self.subscriptions.extra_resource_ids),
            cameras=cameras,
        )

    def subscriber_auth(self, env: Mapping[str, str] | None = None) -> SubscriberAuth:
        """Who may call ``/VIID/Subscribes``: the allow-list and the optional Digest account."""
        s = self.subscriptions
        accounts: dict[str, str] = {}
        if s.subscriber_username is not None:
            secret = _secret(
                None, s.subscriber_password_env, "subscriber account", env or os.environ
            )
            accounts[s.subscriber_username] = secret
        return SubscriberAuth(allowed_ids=frozenset(s.allowed_subscribers), accounts=accounts)

    def notifier_options(self) -> NotifierOptions:
        s = self.subscriptions
        return NotifierOptions(
            org_code=s.org_code or self.device_id[:12],
            max_objects=min(s.max_objects, self.batch_max_objects),
            claim_limit=self.claim_limit,
            lease_ms=int(self.lease_s * 1000),
            backoff_initial_s=self.retry_backoff_initial_s,
            backoff_max_s=self.retry_backoff_max_s,
            idle_sleep_s=self.idle_sleep_s,
            register_with_subscriber=s.register_with_subscriber,
        )


def load_delivery_config(path: Path) -> DeliveryConfig:
    """Load and validate a delivery YAML file.

    Raises:
        ConfigError: unreadable file, bad YAML, or a bad field (the one-line message names it).
    """
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of delivery fields")
    try:
        return DeliveryConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path), DeliveryConfig)) from e


# -- pictures ------------------------------------------------------------------------------


_BESIDE_CROP: dict[str, Callable[[Path], Path]] = {
    CROP_NAME: lambda crop: crop,
    PLATE_NAME: plate_path,
    SCENE_NAME: scene_path,
}


class EvidenceImages:
    """Finds an event's pictures: the crop in the store, evidence files next to it; what is not
    under ``files_root``, in the cluster's evidence storage (``remote``, by event id and the
    names the workers put).

    With a ``base_url`` each picture also gets a URL the platform can fetch: the base plus the
    file's path under ``files_root``, or, for a picture in the cluster's storage, plus its
    storage key (``evidence/<2 hex>/<event id>/<name>``: the base is then the bucket's address,
    e.g. ``http://minio:9000/sharpeyes-evidence``)."""

    def __init__(
        self,
        store: EventStore,
        files_root: Path,
        base_url: str | None,
        remote: EvidenceReader | None = None,
    ) -> None:
        self.store = store
        self.files_root = Path(files_root)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.remote = remote

    def _stored(
        self,
        event_id: str,
        name: str,
        times: tuple[int | None, float | None] = (None, None),
    ) -> ImageRef | None:
        """The picture ``name`` from the cluster's storage (None without one, or when it has
        none).

        Raises:
            DeliveryError: the storage cannot answer now — the record is retried later, not
                sent without its pictures.
        """
        if self.remote is None:
            return None
        try:
            data = self.remote.read(event_id, name)
        except StorageUnavailableError as e:
            raise DeliveryError(f"evidence storage unavailable ({name} of {event_id}): {e}") from e
        if data is None:
            return None
        url = f"{self.base_url}/{quote(evidence_key(event_id, name))}" if self.base_url else None
        return ImageRef(data=data, url=url, time_ms=times[0], pts=times[1])

    def _record(
        self, stored: StoredEvent, folder: Path
    ) -> tuple[dict[str, tuple[int | None, float | None]], str | None, bool]:
        """(times, plate file, whether the folder is local) of the event's evidence record:
        the local folder's, else the one in storage."""
        if folder.is_dir() or self.remote is None:
            return (*record_times(folder / EVIDENCE_RECORD), True)
        doc = self._stored(stored.event_id, EVIDENCE_RECORD)
        return (*record_times_of(doc.data if doc is not None else None), False)

    def _ref(
        self, path: Path | None, times: tuple[int | None, float | None] = (None, None)
    ) -> ImageRef | None:
        if path is None or not path.is_file():
            return None
        url = None
        if self.base_url is not None:
            try:
                rel = path.resolve().relative_to(self.files_root.resolve()).as_posix()
            except ValueError:
                rel = path.name
            url = f"{self.base_url}/{quote(rel)}"
        return ImageRef(path=path, url=url, time_ms=times[0], pts=times[1])

    def _beside_crop(self, crop: Path | None, event_id: str, name: str) -> ImageRef | None:
        """A picture stored beside the event's crop (None without a crop): the local file,
        else the one in storage."""
        if crop is None:
            return None
        local = self._ref(_BESIDE_CROP[name](crop))
        return local if local is not None else self._stored(event_id, name)

    def __call__(self, stored: StoredEvent) -> EventImages:
        crop = self.store.crop_file(stored)
        eid, event = stored.event_id, stored.event
        closeup = self._beside_crop(crop, eid, CROP_NAME)
        if closeup is None and event.crop_jpeg:
            closeup = ImageRef(data=event.crop_jpeg)
        if not stored.evidence_dir:  # a checkpoint read's plate and scene lie beside the crop
            plate = self._beside_crop(crop, eid, PLATE_NAME)
            if plate is None and event.plate_jpeg:
                plate = ImageRef(data=event.plate_jpeg)
            scene = self._beside_crop(crop, eid, SCENE_NAME)
            if scene is None and event.scene_jpeg:
                scene = ImageRef(data=event.scene_jpeg)
            return EventImages(scene=scene, closeup=closeup, plate=plate)
        folder = Path(stored.evidence_dir)
        if not folder.is_absolute():
            folder = self.files_root / folder
        times, plate_file, local = self._record(stored, folder)
        no_time: tuple[int | None, float | None] = (None, None)

        def picture(name: str, shown: str) -> ImageRef | None:
            when = times.get(shown, no_time)
            return self._ref(folder / name, when) if local else self._stored(eid, name, when)

        return EventImages(
            scene=picture(EVIDENCE_SCENE, EVIDENCE_SCENE),
            closeup=closeup,
            # plate.jpg is a plate picture (SubImage 02) only when a plate was located; else it
            # shows the lower vehicle, where a plate would be, and is not sent as one
            plate=picture(EVIDENCE_PLATE, plate_file) if plate_file else None,
            composite=picture(EVIDENCE_COMPOSITE, EVIDENCE_COMPOSITE),
        )


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _float(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def record_times(
    path: Path,
) -> tuple[dict[str, tuple[int | None, float | None]], str | None]:
    """Per evidence file, (UTC ms, pts) of the frame it shows, from ``record.json``'s
    ``images[]`` (``file``, ``time_ms`` — or the older ``wall_time_ms`` — and ``pts``); and the
    file the plate was read from (``plate.image``, 1-based). Empty when there is no record."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}, None
    return record_times_of(data)


def record_times_of(
    data: bytes | None,
) -> tuple[dict[str, tuple[int | None, float | None]], str | None]:
    """:func:`record_times` of a ``record.json``'s bytes (None: there is no record)."""
    try:
        doc = json.loads(data.decode("utf-8")) if data is not None else None
    except ValueError:  # UnicodeDecodeError too
        return {}, None
    if not isinstance(doc, dict):
        return {}, None
    out: dict[str, tuple[int | None, float | None]] = {}
    images = doc.get("images")
    for im in images if isinstance(images, list) else []:
        if isinstance(im, dict) and isinstance(im.get("file"), str):
            ms = _int(im.get("time_ms"))
            ms = ms if ms is not None else _int(im.get("wall_time_ms"))
            out[im["file"]] = (ms, _float(im.get("pts")))
    plate = doc.get("plate")
    index = _int(plate.get("image")) if isinstance(plate, dict) else None
    plate_file = f"{index}.jpg" if index else None
    return out, plate_file


# -- the running delivery ------------------------------------------------------------------


class Delivery:
    """The sender (and optionally the notifier) running on background threads."""

    def __init__(
        self,
        store: EventStore,
        sender: OutboxSender,
        notifier: SubscriptionNotifier | None = None,
        registry: SubscriptionRegistry | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.notifier = notifier
        self.subscriptions = registry
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Delivery:
        if self._threads:
            return self
        self._stop.clear()
        self._threads.append(
            threading.Thread(target=self._run_sender, name="viid-sender", daemon=True)
        )
        if self.notifier is not None:
            self._threads.append(
                threading.Thread(target=self.notifier.run, args=(self._stop,), name="viid-notify")
            )
            self._threads[-1].daemon = True
        for t in self._threads:
            t.start()
        return self

    def _run_sender(self) -> None:
        try:
            self.sender.run(self._stop)
        except Exception:  # pragma: no cover - the sender loop already catches per round
            log.exception("GA/T 1400 sender stopped")

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def backlog(self) -> OutboxStats:
        """Backlog of the upper-platform destination: size, age, retrying, delivered, failed."""
        return self.sender.backlog()

    def health(self) -> dict[str, object]:
        """Session state, the last handshake failure (cause and time), backlog and dead letters:
        what a status page / ``/readyz`` shows when records do not arrive."""
        b = self.backlog()
        out = self.sender.client.health().as_dict()
        out.update(
            running=self.running,
            backlog=b.backlog,
            retrying=b.retrying,
            oldest_pending_age_ms=b.oldest_pending_age_ms,
            delivered=b.delivered,
            dead_letters=b.failed,
        )
        return out

    def dead_letters(self, limit: int = 100, after_id: int = 0) -> list[DeadLetter]:
        return list_dead_letters(
            self.store.db, self.sender.options.destination, limit=limit, after_id=after_id
        )

    def retry_dead_letters(self, row_id: int | None = None) -> int:
        """Queue one dead letter (``row_id``) or all of them again; returns how many."""
        now = int(time.time() * 1000)
        dest = self.sender.options.destination
        if row_id is None:
            return retry_all_dead_letters(self.store.db, now, dest)
        return int(retry_dead_letter(self.store.db, row_id, now, dest))

    def subscription_backlog(self) -> int:
        """Pending notification rows over every subscription."""
        return 0 if self.notifier is None else self.notifier.backlog()

    def pending(self) -> int:
        """Rows still to deliver: the upper platform's and every subscription's."""
        return self.backlog().backlog + self.subscription_backlog()

    def drain(self, timeout_s: float) -> bool:
        """Wait until no row is pending (rows given up on do not count); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.backlog().backlog == 0 and self.subscription_backlog() == 0:
                return True
            if time.monotonic() >= deadline or not self.running:
                return False
            time.sleep(0.05)

    def stop(self, drain_timeout_s: float = 0.0) -> bool:
        """Optionally drain, then stop the threads, unregister and close; True when drained."""
        drained = self.drain(drain_timeout_s) if drain_timeout_s > 0 else False
        self._stop.set()
        join_s = self.sender.client.config.request_timeout_s * 2 + 5
        for t in self._threads:
            t.join(timeout=join_s)
            if t.is_alive():
                log.warning("thread %s did not stop within %.0f s", t.name, join_s)
        self._threads = []
        if self.sender.client.state is SessionState.ONLINE:
            self.sender.client.unregister()
        self.sender.client.close()
        if self.notifier is not None:
            self.notifier.close()
        return drained

    def __enter__(self) -> Delivery:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_delivery(
    store: EventStore,
    config: DeliveryConfig,
    *,
    files_root: Path,
    registry: SubscriptionRegistry | None = None,
    env: Mapping[str, str] | None = None,
    evidence: EvidenceReader | None = None,
) -> Delivery:
    """Build client, mapper and sender from ``config`` and start delivering in the background.

    ``registry`` shares the subscriptions with the service's ``/VIID/Subscribes`` router; when
    subscriptions are enabled and none is given, one is built on the store's database.
    ``evidence``: the cluster's evidence storage, read for pictures not under ``files_root``
    (while it cannot be read, the records wait in the outbox and are retried).

    Raises:
        ConfigError: a secret named by ``password_env`` is not in the environment.
    """
    password = config.resolve_password(env)
    client = ViidClient(config.client_config(password))
    mapper = EventMapper(config.mapping_config(), config.platform)
    images = EvidenceImages(store, files_root, config.image_base_url, evidence)
    sender = OutboxSender(store, client, mapper, options=config.sender_options(), images_for=images)
    notifier = None
    if config.subscriptions.enabled:
        registry = registry or SubscriptionRegistry(store.db, config.resolver())
        if changed := registry.refresh_routing():  # this node's device / tollgate ids
            log.info("GA/T 1400 subscriptions: routing of %d re-resolved", changed)
        sub_password = config.subscriber_client_password(env)
        notifier = SubscriptionNotifier(
            store,
            registry,
            mapper,
            images_for=images,
            client_for=lambda origin: ViidClient(config.client_config(sub_password, origin)),
            options=config.notifier_options(),
        )
    log.info(
        "GA/T 1400 delivery to %s as %s (images %s)",
        config.base_url,
        config.device_id,
        config.images,
    )
    return Delivery(store, sender, notifier, registry).start()
