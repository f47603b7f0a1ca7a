"""GA/T 1400 client session (GAT1400.md §2, §9): register with Digest, keepalive, post batches.

State machine::

    OFFLINE --register ok--> ONLINE --401 on any call / N keepalive failures--> OFFLINE
    OFFLINE --register fails--> OFFLINE (next attempt after jittered exponential back-off)

Every call carries ``User-Identify``; a 401 (or a 200 whose StatusString says "register first",
also per object in a ResponseStatusList) on any call drops the session, re-registers and
replays the call once. ``keepalive_max_failures`` data requests in a row without an HTTP answer
drop the session too (the link is down, §9); while a Register is in back-off
:meth:`ViidClient.register_wait_s` says how long nothing can be sent. A 401 whose challenge says
``stale=true`` is answered with the new nonce only (no re-register); the nonce count restarts at 1
for every new nonce. Digest MD5 and SHA-256 (RFC 7616) are supported; SHA-256 is preferred when a
server offers both.

Per-object StatusCodes are classified by the table in :mod:`sharpeyes.api.viid.outcomes`:
delivered, explicit duplicate id (= delivered), transient (retry with back-off) or permanent
(dead letter). A request refused as a whole with a 4xx raises :class:`PermanentRequestError`;
transport errors, timeouts and 5xx raise :class:`DeliveryError` (transient).

Every failed handshake logs its cause at warning level once per change of cause, and
:meth:`ViidClient.health` exposes it.
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
from sharpeyes.api.viid.digest import (
    DigestChallenge,
    DigestError,
    authorization_header,
    best_challenge,
)
from sharpeyes.api.viid.ids import parse_local_time
from sharpeyes.api.viid.outcomes import Outcome, classify_status, http_outcome
from sharpeyes.api.viid.resources import CollectionSpec
from sharpeyes.api.viid.schemas import (
    ResponseStatus,
    ResponseStatusEnvelope,
    ResponseStatusListEnvelope,
)
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import DeliveryError

log = logging.getLogger(__name__)


class SessionState(enum.StrEnum):
    OFFLINE = "offline"
    ONLINE = "online"


class SessionLostError(DeliveryError):
    """The platform no longer knows our session (401 / 'please register')."""


class PermanentRequestError(DeliveryError):
    """The platform refused the request as a whole (4xx) without per-object answers."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass
class BatchResult:
    """Per-object outcome of one POST: ``failed`` is transient, ``rejected`` permanent."""

    delivered: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

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
    stale_nonces: int = 0


@dataclass
class ClientHealth:
    """What an operator needs to see when delivery does not work (``Delivery.health()``)."""

    state: str
    base_url: str
    last_error: str | None
    last_error_at_ms: int | None
    consecutive_register_failures: int
    last_register_ok_at_ms: int | None
    digest_algorithm: str | None
    registers: int
    register_failures: int
    session_losses: int
    stale_nonces: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


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
        self._unanswered = 0  # data requests in a row without an HTTP answer
        self._register_failures = 0
        self._next_register_at = 0.0
        self._last_keepalive = 0.0
        self._last_time_sync: float | None = None
        self._nc = 0
        self._nonce: str | None = None
        self._challenge: DigestChallenge | None = None
        self._last_error: str | None = None
        self._last_error_at_ms: int | None = None
        self._last_register_ok_ms: int | None = None
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

    def _authorization(self, challenge: DigestChallenge, method: str, uri: str) -> str:
        """Answer ``challenge``; the nonce count restarts at 1 for every new nonce."""
        if challenge.nonce != self._nonce:
            self._nonce = challenge.nonce
            self._nc = 0
        self._nc += 1
        self._challenge = challenge
        return authorization_header(
            challenge,
            username=self.config.username,
            password=self.config.password,
            method=method,
            uri=uri,
            nc=self._nc,
        )

    @staticmethod
    def _challenge_of(resp: httpx.Response) -> DigestChallenge:
        values = resp.headers.get_list("www-authenticate")
        if not values:
            raise DigestError(f"HTTP 401 without WWW-Authenticate from {resp.request.url.path}")
        return best_challenge(values)

    def register(self) -> None:
        """Two-step Digest register; raises :class:`DeliveryError` when refused.

        A second 401 whose challenge says ``stale=true`` is answered once more with the new
        nonce (the password was right, the nonce had expired)."""
        with self._lock:
            path = "/VIID/System/Register"
            body = self._encode({"RegisterObject": {"DeviceID": self.config.device_id}})
            headers = self._headers(register=True)
            resp = self._send("POST", path, body, headers)
            for answered in (0, 1, 2):
                if resp.status_code != 401:
                    break
                try:
                    challenge = self._challenge_of(resp)
                except DigestError as e:
                    self.stats.register_failures += 1
                    raise DeliveryError(f"register: bad challenge: {e}") from e
                if answered and not challenge.stale:
                    break  # our answer was refused: wrong account or password
                if answered:
                    self.stats.stale_nonces += 1
                auth = self._authorization(challenge, "POST", path)
                resp = self._send("POST", path, body, {**headers, "Authorization": auth})
            if not resp.is_success:
                self.stats.register_failures += 1
                why = " (wrong username or password?)" if resp.status_code == 401 else ""
                raise DeliveryError(f"register refused: HTTP {resp.status_code}{why}")
            status = _single_status(resp)
            if status is not None and status.code != 0:
                self.stats.register_failures += 1
                raise DeliveryError(
                    f"register refused: StatusCode {status.StatusCode} {status.StatusString or ''}"
                )
            self.state = SessionState.ONLINE
            self._last_register_ok_ms = clock.now_ms()
            if self._last_error is not None:
                log.warning("GA/T 1400 handshake with %s recovered", self.config.base_url)
            self._last_error = None
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
            except DeliveryError as e:
                self._note_failure(str(e))
                self._register_failures += 1
                delay = min(
                    self.config.register_backoff_max_s,
                    self.config.register_backoff_initial_s * 2 ** (self._register_failures - 1),
                )
                self._next_register_at = now + delay * random.uniform(0.5, 1.0)
                raise
            self._maybe_sync_time()

    def register_wait_s(self) -> float:
        """Seconds until the next Register attempt while the session is down and in back-off
        (0 when online or when an attempt is due): nothing can be sent before then."""
        with self._lock:
            if self.state is SessionState.ONLINE:
                return 0.0
            return max(0.0, self._next_register_at - self._clock())

    def _note_failure(self, cause: str) -> None:
        """Log a handshake failure at warning level once per change of cause; keep it for
        :meth:`health`."""
        if cause != self._last_error:
            log.warning(
                "GA/T 1400 register with %s as %s failed: %s",
                self.config.base_url,
                self.config.device_id,
                cause,
            )
        self._last_error = cause
        self._last_error_at_ms = clock.now_ms()

    def health(self) -> ClientHealth:
        """Session state and the last handshake failure (None once registered again)."""
        with self._lock:
            ch = self._challenge
            return ClientHealth(
                state=self.state.value,
                base_url=self.config.base_url,
                last_error=self._last_error,
                last_error_at_ms=self._last_error_at_ms,
                consecutive_register_failures=self._register_failures,
                last_register_ok_at_ms=self._last_register_ok_ms,
                digest_algorithm=(ch.algorithm or "MD5") if ch is not None else None,
                registers=self.stats.registers,
                register_failures=self.stats.register_failures,
                session_losses=self.stats.session_losses,
                stale_nonces=self.stats.stale_nonces,
            )

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
                resp = self._send_stale_aware(
                    "POST", "/VIID/System/Keepalive", body, self._headers()
                )
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
        self.clock_offset_ms = platform_ms - clock.now_ms()
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
            try:
                resp = self._send_stale_aware("POST", url, body, self._headers())
            except DeliveryError:
                self._no_answer(url)
                raise
            self._unanswered = 0
            try:
                return self._results(resp, ids)
            except SessionLostError:
                self.drop_session()
                if attempt == 2:
                    raise
                log.info("session lost on %s; re-registering and replaying", url)
        raise DeliveryError("unreachable")  # pragma: no cover

    def _no_answer(self, url: str) -> None:
        """A data request got no HTTP answer (refused, reset, timed out). Like keepalives,
        ``keepalive_max_failures`` in a row mean the link is down (GAT1400.md §9): the session
        is dropped, so the next call registers again (with back-off) instead of posting into a
        dead link until the keepalive notices."""
        with self._lock:
            self._unanswered += 1
            if (
                self._unanswered >= self.config.keepalive_max_failures
                and self.state is SessionState.ONLINE
            ):
                log.warning(
                    "%d requests in a row to %s got no answer (last %s): registering again",
                    self._unanswered,
                    self.config.base_url,
                    url,
                )
                self._unanswered = 0
                self.drop_session()

    def _send_stale_aware(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        """Send; a 401 with ``stale=true`` is answered with the new nonce once (no re-register)."""
        resp = self._send(method, url, body, headers)
        if resp.status_code != 401:
            return resp
        try:
            challenge = self._challenge_of(resp)
        except DigestError:
            return resp
        if not challenge.stale:
            return resp
        with self._lock:
            self.stats.stale_nonces += 1
            auth = self._authorization(challenge, method, resp.request.url.raw_path.decode())
        log.info("stale nonce on %s; answering the new nonce", url)
        return self._send(method, url, body, {**headers, "Authorization": auth})

    def _results(self, resp: httpx.Response, ids: Sequence[str]) -> BatchResult:
        path = resp.request.url.path
        if resp.status_code == 401:
            raise SessionLostError(f"HTTP 401 from {path}")
        statuses = _list_statuses(resp)
        if not resp.is_success:
            if statuses is not None and resp.status_code < 500:
                return self._classify(statuses, ids)  # a 4xx that still answers per object
            single = _single_status(resp)
            why = f": {single.StatusString}" if single and single.StatusString else ""
            msg = f"HTTP {resp.status_code} from {path}{why}"
            if http_outcome(resp.status_code) is Outcome.PERMANENT:
                raise PermanentRequestError(msg[:500], resp.status_code)
            raise DeliveryError(msg[:500])
        if statuses is not None:
            lost = next((s for s in statuses if self._relogin(s)), None)
            if lost is not None:  # the session is gone for the whole call, not one object
                raise SessionLostError(lost.StatusString or "register first")
        else:
            single = _single_status(resp)
            if single is None:
                raise DeliveryError("unparsable reply body")
            if self._relogin(single):
                raise SessionLostError(single.StatusString or "register first")
            outcome = classify_status(single, self.config.platform)
            if outcome is Outcome.PERMANENT and len(ids) > 1:
                # one answer for the whole batch: which object is bad is unknown
                msg = f"StatusCode {single.StatusCode}: {single.StatusString} (whole request)"
                raise PermanentRequestError(msg[:500], resp.status_code)
            statuses = [single.model_copy(update={"Id": i}) for i in ids]
        return self._classify(statuses, ids)

    def _classify(self, statuses: list[ResponseStatus], ids: Sequence[str]) -> BatchResult:
        """One outcome per object: the answer whose ``Id`` names it, else the answer at its
        position — but only an answer that names none of the objects sent (no ``Id``, or the
        platform's own id). An answer for another object is never applied to this one: a
        platform answering only for some objects must not get an unanswered object marked
        delivered (or dead) on another's StatusCode; the unanswered one is retried."""
        by_id = {s.Id: s for s in statuses if s.Id}
        sent = set(ids)
        result = BatchResult()
        platform = self.config.platform
        for index, oid in enumerate(ids):
            status = by_id.get(oid)
            if status is None and index < len(statuses) and statuses[index].Id not in sent:
                status = statuses[index]
            if status is None:
                result.failed[oid] = "no status for object"
                continue
            outcome = classify_status(status, platform)
            reason = f"StatusCode {status.StatusCode}: {status.StatusString}"[:500]
            if outcome is Outcome.DELIVERED:
                result.delivered.append(oid)
            elif outcome is Outcome.DUPLICATE:
                result.duplicates.append(oid)
            elif outcome is Outcome.PERMANENT:
                result.rejected[oid] = reason
            else:  # transient, or a per-object 'register first' (the whole call is replayed)
                result.failed[oid] = reason
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
