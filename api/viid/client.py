"""GA/T 1400 client session (GAT1400.md §2, §9): register with Digest, keepalive, post batches.

State machine::

    OFFLINE --register ok--> ONLINE --401 on any call / N keepalive failures--> OFFLINE
    OFFLINE --register fails--> OFFLINE (next attempt after jittered exponential back-off)

Every call carries ``User-Identify``; a 401 (or a 200 whose StatusString says "register first")
on any call drops the session, re-registers and replays the call once. Per-object StatusCodes are
returned to the caller: only failed objects need a retry, and an "already exists" answer counts as
delivered (object ids are deterministic, so a replay is a duplicate by id). Any 2xx is accepted.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from sharpeyes.api.viid.config import ViidClientConfig
from sharpeyes.api.viid.digest import DigestError, authorization_header, parse_challenge
from sharpeyes.api.viid.ids import parse_local_time
from sharpeyes.api.viid.resources import CollectionSpec
from sharpeyes.api.viid.schemas import (
    ResponseStatus,
    ResponseStatusEnvelope,
    ResponseStatusListEnvelope,
)
from sharpeyes.pipeline.errors import DeliveryError

log = logging.getLogger(__name__)


class SessionState(enum.StrEnum):
    OFFLINE = "offline"
    ONLINE = "online"


class SessionLostError(DeliveryError):
    """The platform no longer knows our session (401 / 'please register')."""


@dataclass
class BatchResult:
    """Per-object outcome of one POST."""

    delivered: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok_ids(self) -> list[str]:
        return self.delivered + self.duplicates


@dataclass
class ClientStats:
    registers: int = 0
    register_failures: int = 0
    keepalives: int = 0
    keepalive_failures: int = 0
    session_losses: int = 0
    requests: int = 0


class ViidClient:
    """One session with one upper platform. Thread-safe; at most one keepalive thread."""

    def __init__(
        self,
        config: ViidClientConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.state = SessionState.OFFLINE
        self.stats = ClientStats()
        self.clock_offset_ms: int | None = None
        self._clock = clock
        self._content_type = config.platform.content_type
        self._lock = threading.RLock()
        self._failures = 0
        self._register_failures = 0
        self._next_register_at = 0.0
        self._last_keepalive = 0.0
        self._last_time_sync: float | None = None
        self._nc = 0
        timeout = httpx.Timeout(config.request_timeout_s, connect=config.connect_timeout_s)
        self._http = httpx.Client(
            base_url=config.base_url,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            trust_env=False,
        )
        self._ka_thread: threading.Thread | None = None
        self._ka_stop = threading.Event()

    # -- low level ----------------------------------------------------------------------------

    def _headers(self, *, register: bool = False) -> dict[str, str]:
        h = {"Content-Type": self._content_type, "Accept": "application/json,application/*+json"}
        if not register or self.config.platform.user_identify_on_register:
            h["User-Identify"] = self.config.device_id
        return h

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        self.stats.requests += 1
        try:
            resp = self._http.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise DeliveryError(f"{method} {url}: {type(e).__name__}: {e}") from e
        if (
            resp.status_code == 415
            and self._content_type != self.config.platform.fallback_content_type
        ):
            log.warning(
                "platform refused %s; falling back to %s",
                self._content_type,
                self.config.platform.fallback_content_type,
            )
            self._content_type = self.config.platform.fallback_content_type
            headers = {**headers, "Content-Type": self._content_type}
            return self._send(method, url, body, headers)
        return resp

    @staticmethod
    def _encode(body: object) -> bytes:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    # -- session ------------------------------------------------------------------------------

    def register(self) -> None:
        """Two-step Digest register; raises :class:`DeliveryError` when refused."""
        with self._lock:
            path = "/VIID/System/Register"
            body = self._encode({"RegisterObject": {"DeviceID": self.config.device_id}})
            headers = self._headers(register=True)
            resp = self._send("POST", path, body, headers)
            if resp.status_code == 401:
                challenge_header = resp.headers.get("www-authenticate", "")
                try:
                    challenge = parse_challenge(challenge_header)
                except DigestError as e:
                    raise DeliveryError(f"register: bad challenge: {e}") from e
                self._nc += 1
                auth = authorization_header(
                    challenge,
                    username=self.config.username,
                    password=self.config.password,
                    method="POST",
                    uri=path,
                    nc=self._nc,
                )
                resp = self._send("POST", path, body, {**headers, "Authorization": auth})
            if not resp.is_success:
                self.stats.register_failures += 1
                raise DeliveryError(f"register refused: HTTP {resp.status_code}")
            status = _single_status(resp)
            if status is not None and status.code != 0:
                raise DeliveryError(f"register refused: StatusCode {status.StatusCode}")
            self.state = SessionState.ONLINE
            self._failures = 0
            self._register_failures = 0
            self._last_keepalive = self._clock()
            self.stats.registers += 1
            log.info("registered with %s as %s", self.config.base_url, self.config.device_id)

    def ensure_session(self) -> None:
        """Register when offline, honouring the back-off; raises DeliveryError when not online."""
        with self._lock:
            if self.state is SessionState.ONLINE:
                return
            now = self._clock()
            if now < self._next_register_at:
                raise DeliveryError("register back-off in progress")
            try:
                self.register()
            except DeliveryError:
                self._register_failures += 1
                delay = min(
                    self.config.register_backoff_max_s,
                    self.config.register_backoff_initial_s * 2 ** (self._register_failures - 1),
                )
                self._next_register_at = now + delay * random.uniform(0.5, 1.0)
                raise
            self._maybe_sync_time()

    def drop_session(self) -> None:
        with self._lock:
            if self.state is SessionState.ONLINE:
                self.stats.session_losses += 1
            self.state = SessionState.OFFLINE
            self._next_register_at = 0.0

    def keepalive(self) -> bool:
        """One keepalive; a 401 or the N-th consecutive failure drops the session."""
        with self._lock:
            if self.state is not SessionState.ONLINE:
                return False
            self._last_keepalive = self._clock()
            body = self._encode({"KeepaliveObject": {"DeviceID": self.config.device_id}})
            try:
                resp = self._send("POST", "/VIID/System/Keepalive", body, self._headers())
                ok = resp.is_success and self._status_ok(resp)
                if resp.status_code == 401:
                    self.drop_session()
                    return False
            except DeliveryError as e:
                log.warning("keepalive failed: %s", e)
                ok = False
            if ok:
                self._failures = 0
                self.stats.keepalives += 1
                return True
            self._failures += 1
            self.stats.keepalive_failures += 1
            if self._failures >= self.config.keepalive_max_failures:
                log.warning("%d keepalives failed; re-registering", self._failures)
                self.drop_session()
            return False

    def _status_ok(self, resp: httpx.Response) -> bool:
        status = _single_status(resp)
        if status is None:
            return True
        if self._relogin(status):
            self.drop_session()
            return False
        return status.code == 0

    def _relogin(self, status: ResponseStatus) -> bool:
        text = (status.StatusString or "").lower()
        return status.code != 0 and any(
            m.lower() in text for m in self.config.platform.relogin_markers
        )

    def tick(self) -> None:
        """Do what is due: register when offline, keepalive, time sync. Never raises."""
        try:
            self.ensure_session()
            if self._clock() - self._last_keepalive >= self.config.keepalive_interval_s:
                self.keepalive()
            self._maybe_sync_time()
        except DeliveryError as e:
            log.debug("tick: %s", e)

    def start_keepalive(self) -> None:
        """Start the (single) background thread that calls :meth:`tick`."""
        if self._ka_thread is not None and self._ka_thread.is_alive():
            return
        self._ka_stop.clear()
        period = min(1.0, self.config.keepalive_interval_s / 4)

        def loop() -> None:
            while not self._ka_stop.wait(period):
                self.tick()

        self._ka_thread = threading.Thread(target=loop, name="viid-keepalive", daemon=True)
        self._ka_thread.start()

    # -- time ---------------------------------------------------------------------------------

    def sync_time(self) -> int:
        """GET /VIID/System/Time → platform clock minus ours (ms); 14-digit or epoch-ms."""
        resp = self._send("GET", "/VIID/System/Time", None, self._headers())
        if not resp.is_success:
            raise DeliveryError(f"time sync: HTTP {resp.status_code}")
        try:
            local = str(resp.json()["SystemTimeObject"]["LocalTime"])
            platform_ms = parse_local_time(local)
        except (ValueError, KeyError, TypeError) as e:
            raise DeliveryError(f"time sync: unparsable answer: {e}") from e
        self.clock_offset_ms = platform_ms - int(time.time() * 1000)
        self._last_time_sync = self._clock()
        if abs(self.clock_offset_ms) > 2000:
            log.warning("platform clock differs from ours by %d ms", self.clock_offset_ms)
        return self.clock_offset_ms

    def _maybe_sync_time(self) -> None:
        due = self._last_time_sync is None or (
            self._clock() - self._last_time_sync >= self.config.time_sync_interval_s
        )
        if due and self.state is SessionState.ONLINE:
            try:
                self.sync_time()
            except DeliveryError as e:
                self._last_time_sync = self._clock()
                log.warning("time sync failed: %s", e)

    # -- data ---------------------------------------------------------------------------------

    def post_objects(self, spec: CollectionSpec, items: Sequence[dict[str, Any]]) -> BatchResult:
        """POST one batch to a collection; re-registers and replays once on a lost session."""
        body = self._encode(spec.envelope(list(items)))
        ids = [str(i.get(spec.id_field, "")) for i in items]
        return self.post_json(spec.path, body, ids)

    def post_json(self, url: str, body: bytes, ids: Sequence[str]) -> BatchResult:
        """POST a prepared body whose objects have ``ids``; ``url`` may be absolute."""
        for attempt in (1, 2):
            self.ensure_session()
            resp = self._send("POST", url, body, self._headers())
            try:
                return self._results(resp, ids)
            except SessionLostError:
                self.drop_session()
                if attempt == 2:
                    raise
                log.info("session lost on %s; re-registering and replaying", url)
        raise DeliveryError("unreachable")  # pragma: no cover

    def _results(self, resp: httpx.Response, ids: Sequence[str]) -> BatchResult:
        if resp.status_code == 401:
            raise SessionLostError(f"HTTP 401 from {resp.request.url.path}")
        if not resp.is_success:
            raise DeliveryError(f"HTTP {resp.status_code} from {resp.request.url.path}")
        statuses = _list_statuses(resp)
        if statuses is None:
            single = _single_status(resp)
            if single is None:
                raise DeliveryError("unparsable reply body")
            if self._relogin(single):
                raise SessionLostError(single.StatusString or "register first")
            statuses = [single.model_copy(update={"Id": i}) for i in ids]
        return self._classify(statuses, ids)

    def _classify(self, statuses: list[ResponseStatus], ids: Sequence[str]) -> BatchResult:
        by_id = {s.Id: s for s in statuses if s.Id}
        result = BatchResult()
        markers = [m.lower() for m in self.config.platform.duplicate_markers]
        for index, oid in enumerate(ids):
            status = by_id.get(oid) or (statuses[index] if index < len(statuses) else None)
            if status is None:
                result.failed[oid] = "no status for object"
            elif status.code == 0:
                result.delivered.append(oid)
            elif any(m in (status.StatusString or "").lower() for m in markers):
                result.duplicates.append(oid)
            else:
                result.failed[oid] = f"StatusCode {status.StatusCode}: {status.StatusString}"
        return result

    def unregister(self) -> None:
        p = self.config.platform
        body = self._encode({p.unregister_key: {"DeviceID": self.config.device_id}})
        try:
            self._send("POST", p.unregister_path, body, self._headers())
        except DeliveryError as e:
            log.info("unregister failed: %s", e)
        self.state = SessionState.OFFLINE

    def close(self) -> None:
        self._ka_stop.set()
        if self._ka_thread is not None:
            self._ka_thread.join(timeout=5)
        self._http.close()

    def __enter__(self) -> ViidClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_body(resp: httpx.Response) -> object | None:
    try:
        body: object = resp.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body


def _single_status(resp: httpx.Response) -> ResponseStatus | None:
    body = _json_body(resp)
    if not isinstance(body, dict) or "ResponseStatusObject" not in body:
        return None
    try:
        return ResponseStatusEnvelope.model_validate(body).ResponseStatusObject
    except ValidationError:
        return None


def _list_statuses(resp: httpx.Response) -> list[ResponseStatus] | None:
    body = _json_body(resp)
    if not isinstance(body, dict) or "ResponseStatusListObject" not in body:
        return None
    try:
        return ResponseStatusListEnvelope.model_validate(
            body
        ).ResponseStatusListObject.ResponseStatusObject
    except ValidationError:
        return None
