"""A small conformant GA/T 1400 view library (``sharpeyes viid-server``).

Digest register with configurable accounts, keepalive and session expiry, ``/VIID/System/Time``,
the data endpoints (MotorVehicles, NonMotorVehicles, Persons, Faces) and SubscribeNotifications.
Every incoming body is checked against the MEGVII rule template with our own interpreter
(:mod:`api.viid.conformance`); a broken object gets StatusCode 8 while its siblings are stored
(also when the broken rule is an array-level InfoKind dependency). A known object id is answered
as delivered (``duplicate_answer``), so at-least-once senders are safe.

Authentication: Register needs a Digest answer (MD5 or SHA-256, ``qop=auth`` required, the
answer's ``uri`` must be the request's, nonce counts must grow); an expired nonce is answered
``401`` with ``stale=true``. Keepalive, UnRegister and data calls need a live session of the
``User-Identify`` caller (Keepalive/UnRegister: for the DeviceID of the body) or a valid Digest
answer. Fault modes (401 mid-session, stale nonce, 500, hang, garbage, slow) are set with
:meth:`ReceiverState.set_faults`; the HTTP endpoints ``/_receiver/*`` exist only with
``ReceiverConfig(test_faults=True)`` (``sharpeyes viid-server --test-faults``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sharpeyes.api.rest.guard import RequestGuardMiddleware
from sharpeyes.api.viid.codes import StatusCode
from sharpeyes.api.viid.conformance import ConformanceReport, RuleTemplate, load_default_template
from sharpeyes.api.viid.digest import DigestVerifier
from sharpeyes.api.viid.ids import is_device_id, local_time_str
from sharpeyes.api.viid.receiver.state import (
    FaultMode,
    FaultPlan,
    ReceivedObject,
    ReceiverConfig,
    ReceiverState,
)
from sharpeyes.api.viid.resources import COLLECTIONS, CollectionSpec
from sharpeyes.pipeline import clock

log = logging.getLogger(__name__)

VIID_JSON = "application/VIID+JSON;charset=UTF-8"
_INDEX = re.compile(r"^\$\.[^.]+\.[^.\[]+\[(\d+)\]")


class _Ctx:
    def __init__(self, config: ReceiverConfig, state: ReceiverState) -> None:
        self.config = config
        self.state = state
        self.digest = DigestVerifier(
            config.realm,
            config.accounts,
            nonce_ttl_s=config.nonce_ttl_s,
            algorithm=config.digest_algorithm,
            require_qop=config.require_qop,
        )
        self.template: RuleTemplate | None = None
        if config.validate_payloads:
            self.template = (
                RuleTemplate.load(_path(config.template_path))
                if config.template_path
                else load_default_template()
            )

    def status(self, url: str, code: int, text: str, id_: str | None) -> dict[str, Any]:
        return {
            "RequestURL": url,
            "StatusCode": str(code) if self.config.status_code_type == "string" else code,
            "StatusString": text,
            "Id": id_ or "",
            "LocalTime": local_time_str(clock.now_ms()),
        }

    def single(self, url: str, code: int, text: str, id_: str | None, http: int = 200) -> Response:
        body = {"ResponseStatusObject": self.status(url, code, text, id_)}
        return _json(body, http)

    def challenge(
        self, url: str, text: str = "please register", *, stale: bool = False
    ) -> Response:
        resp = self.single(url, int(StatusCode.INVALID_OPERATION), text, None, 401)
        resp.headers["WWW-Authenticate"] = self.digest.challenge(stale=stale)
        return resp

    def digest_user(self, request: Request) -> str | None:
        """The account of a valid Digest answer for this very request (method and uri)."""
        return self.digest.verify(
            request.method, request.headers.get("authorization"), _target(request)
        )

    def refuse(self, request: Request, text: str) -> Response:
        """401 + challenge; ``stale=true`` when the answer was right but its nonce expired."""
        stale = self.digest.is_stale(request.headers.get("authorization"))
        return self.challenge(request.url.path, "nonce expired" if stale else text, stale=stale)

    def caller_ok(self, request: Request, device: str | None) -> bool:
        """A live session of the User-Identify caller (for ``device`` when given), or Digest."""
        ident = request.headers.get("user-identify")
        if self.digest_user(request) is not None:
            who = ident or device
            if who:
                self.state.open_session(who, register=False)
            return True
        if device is not None and ident is not None and ident != device:
            return False
        return self.state.touch(ident or None, self.config.session_ttl_s)


def _target(request: Request) -> str:
    """The request-target a Digest ``uri`` must equal: path plus query string if any."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    query = request.url.query
    return f"{path}?{query}" if query else path


def _path(p: str) -> Any:
    from pathlib import Path

    return Path(p)


def _json(body: object, status: int = 200) -> Response:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return Response(content=data, status_code=status, media_type=VIID_JSON)


class _FaultMiddleware:
    """Applies the state's fault plan before the app sees a request."""

    def __init__(self, app: ASGIApp, ctx: _Ctx) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith("/VIID"):
            await self.app(scope, receive, send)
            return
        with self.ctx.state.lock:
            self.ctx.state.requests += 1
        plan = self.ctx.state.take_fault(path)
        if plan is None:
            await self.app(scope, receive, send)
            return
        await self._apply(plan, path, scope, receive, send)

    async def _apply(
        self, plan: FaultPlan, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if plan.mode is FaultMode.SLOW:
            await asyncio.sleep(plan.delay_s)
            await self.app(scope, receive, send)
            return
        if plan.mode is FaultMode.HANG:
            await asyncio.sleep(plan.delay_s)
            response: Response = Response(b"", status_code=504)
        elif plan.mode is FaultMode.ERROR_500:
            response = Response(b"Internal Server Error", status_code=500)
        elif plan.mode is FaultMode.GARBAGE:
            response = Response(b"\x00\xffnot json<html>", status_code=200, media_type=VIID_JSON)
        elif plan.mode is FaultMode.STALE:
            response = self.ctx.challenge(path, "nonce expired", stale=True)
        else:  # UNAUTHORIZED
            self.ctx.state.expire_sessions()
            response = self.ctx.challenge(path, "session expired")
        await response(scope, receive, send)


async def _body_json(request: Request, ctx: _Ctx) -> tuple[object | None, Response | None]:
    raw = await request.body()
    url = request.url.path
    if len(raw) > ctx.config.max_body_bytes:
        return None, ctx.single(url, int(StatusCode.INVALID_OPERATION), "body too large", None, 413)
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError):
        code = int(StatusCode.INVALID_JSON_FORMAT)
        return None, ctx.single(url, code, "invalid JSON format", None, 400)


def _device_of(body: object, key: str) -> str | None:
    if isinstance(body, dict) and isinstance(body.get(key), dict):
        dev = body[key].get("DeviceID")
        return dev if isinstance(dev, str) else None
    return None


def _bad_indices(report: ConformanceReport) -> tuple[dict[int, str], list[str]]:
    """Violations per object index, and those that are not inside one object."""
    per: dict[int, str] = {}
    envelope: list[str] = []
    for v in report.violations:
        m = _INDEX.match(v.path)
        if m:
            per.setdefault(int(m.group(1)), str(v))
        else:
            envelope.append(str(v))
    return per, envelope


def _register_routes(app: FastAPI, ctx: _Ctx) -> None:
    cfg = ctx.config

    @app.post("/VIID/System/Register")
    async def register(request: Request) -> Response:
        body, err = await _body_json(request, ctx)
        if err is not None:
            return err
        url = request.url.path
        device = _device_of(body, "RegisterObject")
        if device is None or not is_device_id(device):
            return ctx.single(url, int(StatusCode.INVALID_JSON_CONTENT), "bad DeviceID", None, 400)
        auth = request.headers.get("authorization")
        if ctx.digest_user(request) is None:
            if auth and ctx.digest.is_stale(auth):
                return ctx.refuse(request, "unauthorized")
            if auth and cfg.wrong_digest_status == 400:
                return Response(b"", status_code=400)
            return ctx.challenge(url, "unauthorized")
        ctx.state.open_session(device)
        log.info("registered %s", device)
        return ctx.single(url, int(StatusCode.OK), "OK", device)

    @app.post("/VIID/System/Keepalive")
    async def keepalive(request: Request) -> Response:
        body, err = await _body_json(request, ctx)
        if err is not None:
            return err
        device = _device_of(body, "KeepaliveObject") or request.headers.get("user-identify")
        if device is None or not ctx.caller_ok(request, device):
            return ctx.refuse(request, "please register")
        with ctx.state.lock:
            ctx.state.keepalives += 1
        return ctx.single(request.url.path, int(StatusCode.OK), "OK", device)


def _register_more_routes(app: FastAPI, ctx: _Ctx) -> None:
    cfg = ctx.config

    async def unregister(request: Request) -> Response:
        body, err = await _body_json(request, ctx)
        if err is not None:
            return err
        device = _device_of(body, "UnRegisterObject") or _device_of(body, "UnregisterObject")
        if device is None:
            code = int(StatusCode.INVALID_JSON_CONTENT)
            return ctx.single(request.url.path, code, "no DeviceID", None, 400)
        if not ctx.caller_ok(request, device):
            return ctx.refuse(request, "unauthorized")
        ctx.state.close_session(device)
        return ctx.single(request.url.path, int(StatusCode.OK), "OK", device)

    app.add_api_route("/VIID/System/UnRegister", unregister, methods=["POST"])
    app.add_api_route("/VIID/System/Unregister", unregister, methods=["POST"])

    @app.get("/VIID/System/Time")
    async def system_time() -> Response:
        now_ms = clock.now_ms()
        local = str(now_ms) if cfg.time_format == "epoch_ms" else local_time_str(now_ms)
        obj = {
            "VIIDServerID": cfg.server_id,
            "TimeMode": "1",
            "LocalTime": local,
            "TimeZone": "UTC/GMT+08:00",
        }
        return _json({"SystemTimeObject": obj})

    for spec in COLLECTIONS.values():
        app.add_api_route(spec.path, _collection_handler(ctx, spec), methods=["POST"])

    @app.post("/VIID/SubscribeNotifications")
    async def notifications(request: Request) -> Response:
        return await _handle_notifications(ctx, request)


def _collection_handler(ctx: _Ctx, spec: CollectionSpec) -> Any:
    async def handler(request: Request) -> Response:
        url = request.url.path
        if not ctx.caller_ok(request, None):
            return ctx.refuse(request, "please register")
        body, err = await _body_json(request, ctx)
        if err is not None:
            return err
        items = _items(body, spec.list_key, spec.item_key)
        if items is None:
            code = int(StatusCode.INVALID_JSON_CONTENT)
            return ctx.single(url, code, f"expected {spec.list_key}.{spec.item_key}", None, 400)
        bad: dict[int, str] = {}
        if ctx.template is not None:
            bad, envelope = _validate_per_object(ctx.template, spec, body, items)
            if envelope:
                code = int(StatusCode.INVALID_JSON_CONTENT)
                return ctx.single(url, code, envelope[0][:500], None, 400)
        statuses = [
            _store(ctx, spec, url, i, item, problem=bad.get(i)) for i, item in enumerate(items)
        ]
        out = {"ResponseStatusListObject": {"ResponseStatusObject": statuses}}
        return _json(out, ctx.config.create_http_status)

    return handler


def _validate_per_object(
    template: RuleTemplate, spec: CollectionSpec, body: object, items: list[object]
) -> tuple[dict[int, str], list[str]]:
    """Violations per object index, and those of the envelope itself.

    A rule on the whole array (e.g. MEGVII's InfoKind dependency, funcType 23) is reported at the
    array's path; such a violation is pinned to the objects that break it by checking each object
    alone, so one bad object never gets its siblings refused.
    """
    interface, list_key, item_key = spec.interface, spec.list_key, spec.item_key
    bad, envelope = _bad_indices(template.validate(interface, body))
    if not envelope:
        return bad, envelope
    for i, item in enumerate(items):
        if i in bad:
            continue
        alone = {list_key: {item_key: [item]}}
        own, own_env = _bad_indices(template.validate(interface, alone))
        msgs = list(own.values()) + own_env
        if msgs:
            bad[i] = msgs[0]
    if bad:
        # what remains at envelope level when every bad object is left out is a real envelope
        # problem (e.g. a missing list wrapper); with per-object faults nothing remains
        good = [it for i, it in enumerate(items) if i not in bad]
        if good:
            _, envelope = _bad_indices(template.validate(interface, {list_key: {item_key: good}}))
        else:
            envelope = []
    return bad, envelope


def _items(body: object, list_key: str, item_key: str) -> list[object] | None:
    if not isinstance(body, dict) or not isinstance(body.get(list_key), dict):
        return None
    items = body[list_key].get(item_key)
    if isinstance(items, dict):
        return [items]
    return items if isinstance(items, list) else None


def _store(
    ctx: _Ctx, spec: CollectionSpec, url: str, index: int, item: object, *, problem: str | None
) -> dict[str, Any]:
    oid = item.get(spec.id_field) if isinstance(item, dict) else None
    oid_s = oid if isinstance(oid, str) else None
    if problem is not None or oid_s is None or not isinstance(item, dict):
        with ctx.state.lock:
            ctx.state.rejected += 1
        text = problem or f"object {index} has no {spec.id_field}"
        return ctx.status(url, int(StatusCode.INVALID_JSON_CONTENT), text[:500], oid_s)
    hook = ctx.state.answer_hook
    scripted = hook(spec.collection.value, oid_s) if hook is not None else None
    if scripted is not None:
        return ctx.status(url, scripted[0], scripted[1], oid_s)
    size = len(json.dumps(item, ensure_ascii=False))
    device = item.get("DeviceID")
    rec = ReceivedObject(
        spec.collection.value,
        oid_s,
        device if isinstance(device, str) else None,
        clock.now_ms(),
        size,
    )
    if ctx.state.add_object(rec):
        return ctx.status(url, int(StatusCode.OK), "OK", oid_s)
    if ctx.config.duplicate_answer == "ok":
        return ctx.status(url, int(StatusCode.OK), "OK (duplicate)", oid_s)
    return ctx.status(url, int(StatusCode.INVALID_OPERATION), "ID already exists", oid_s)


async def _handle_notifications(ctx: _Ctx, request: Request) -> Response:
    url = request.url.path
    if not ctx.caller_ok(request, None):
        return ctx.refuse(request, "please register")
    body, err = await _body_json(request, ctx)
    if err is not None:
        return err
    notes = _items(body, "SubscribeNotificationListObject", "SubscribeNotificationObject")
    if notes is None:
        code = int(StatusCode.INVALID_JSON_CONTENT)
        return ctx.single(url, code, "expected SubscribeNotificationListObject", None, 400)
    bad: dict[int, str] = {}
    if ctx.template is not None:
        bad, envelope = _bad_indices(ctx.template.validate("SubscribeNotifications", body))
        if envelope:
            return ctx.single(url, int(StatusCode.INVALID_JSON_CONTENT), envelope[0], None, 400)
    statuses = []
    for i, note in enumerate(notes):
        nid = note.get("NotificationID") if isinstance(note, dict) else None
        if i in bad or not isinstance(note, dict) or not isinstance(nid, str):
            statuses.append(
                ctx.status(url, int(StatusCode.INVALID_JSON_CONTENT), bad.get(i, "bad"), None)
            )
            continue
        for spec in COLLECTIONS.values():
            for item in _items(note, spec.notification_key, spec.item_key) or []:
                _store(ctx, spec, url, 0, item, problem=None)
        with ctx.state.lock:
            ctx.state.notifications[nid] = str(note.get("SubscribeID", ""))
        statuses.append(ctx.status(url, int(StatusCode.OK), "OK", nid))
    return _json({"ResponseStatusListObject": {"ResponseStatusObject": statuses}})


def _register_admin(app: FastAPI, ctx: _Ctx) -> None:
    """Inspection and fault injection over HTTP: only with ``test_faults`` (never in service)."""
    if not ctx.config.test_faults:
        return

    @app.get("/_receiver/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(ctx.state.stats())

    @app.get("/_receiver/ids")
    async def ids(collection: str | None = None) -> JSONResponse:
        return JSONResponse(ctx.state.ids(collection))

    @app.post("/_receiver/faults")
    async def faults(request: Request) -> JSONResponse:
        try:
            raw = json.loads(await request.body())
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            plan = FaultPlan(
                mode=FaultMode(raw.get("mode", "none")),
                count=int(raw.get("count", -1)),
                delay_s=min(3600.0, max(0.0, float(raw.get("delay_s", 3600.0)))),
            )
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            return JSONResponse({"error": str(e)[:200]}, status_code=400)
        ctx.state.set_faults(plan)
        return JSONResponse({"mode": plan.mode.value, "count": plan.count})

    @app.post("/_receiver/expire-sessions")
    async def expire() -> JSONResponse:
        ctx.state.expire_sessions()
        return JSONResponse({"ok": True})


def create_receiver_app(
    config: ReceiverConfig | None = None, state: ReceiverState | None = None
) -> FastAPI:
    """Build the receiver app; pass ``state`` to inspect or drive it from a test."""
    ctx = _Ctx(config or ReceiverConfig(), state or ReceiverState())
    app = FastAPI(title="sharpeyes GA/T 1400 receiver", docs_url=None, redoc_url=None)
    app.state.viid = ctx.state
    _register_routes(app, ctx)
    _register_more_routes(app, ctx)
    _register_admin(app, ctx)
    app.add_middleware(_FaultMiddleware, ctx=ctx)
    # bodies over the limit are refused (413) before they are read, so an unauthenticated
    # client cannot make the receiver buffer hundreds of MB
    app.add_middleware(RequestGuardMiddleware, default_limit=ctx.config.max_body_bytes)
    return app


class ReceiverServer:
    """uvicorn in a background thread (tests, benchmarks, the demo's local receiver)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        config: ReceiverConfig | None = None,
        state: ReceiverState | None = None,
    ) -> None:
        import uvicorn

        self.state = state or ReceiverState()
        app = create_receiver_app(config, self.state)
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1
            )
        )
        self._thread: threading.Thread | None = None
        self.host = host

    @property
    def port(self) -> int:
        servers = getattr(self._server, "servers", [])
        for srv in servers:
            for sock in srv.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("receiver is not started")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ReceiverServer:
        self._thread = threading.Thread(target=self._server.run, name="viid-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("receiver did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_receiver(host: str, port: int, config: ReceiverConfig | None = None) -> None:
    """Serve the receiver until interrupted (``sharpeyes viid-server``)."""
    import uvicorn

    uvicorn.run(create_receiver_app(config), host=host, port=port, log_level="info")
