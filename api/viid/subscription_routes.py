"""``/VIID/Subscribes`` for upper platforms (GAT1400.md §7): create, list, cancel, delete.

Mount it on the service app: ``app.include_router(create_subscription_router(registry, ...))``.
Upper platforms do not carry the service's bearer tokens; these routes check the caller on
their own (:class:`SubscriberAuth`: a ``User-Identify`` allow-list and/or HTTP Digest).

- ``POST /VIID/Subscribes`` — SubscribeListObject; each object is checked against the MEGVII
  ``Subscribes`` template and our rules (33-digit SubscribeID, SubscribeDetail naming 11–14,
  every ResourceURI id one of ours, an http(s) ReceiveAddr, EndTime in the future) and gets its
  own ResponseStatusObject (``Id`` = SubscribeID). ``OperateType`` 1 cancels.
- ``PUT /VIID/Subscribes/<ID>`` with ``OperateType`` 1 (and SubscribeCancelOrg/Person,
  CancelReason) cancels — so does a body without OperateType —, with 0 replaces;
  ``PUT /VIID/Subscribes`` does the same in batch.
- ``DELETE /VIID/Subscribes?IDList=a,b`` and ``DELETE /VIID/Subscribes/<ID>`` cancel too (the
  rows stay for the audit log). ``GET /VIID/Subscribes[/<ID>]`` lists them with their status
  (refused on an open node, see :class:`SubscriberAuth`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sharpeyes.api.viid import ids
from sharpeyes.api.viid.codes import OperateType, StatusCode, SubscribeStatus
from sharpeyes.api.viid.conformance import RuleTemplate
from sharpeyes.api.viid.digest import DigestVerifier
from sharpeyes.api.viid.schemas import Subscribe, dump
from sharpeyes.api.viid.subscriptions import (
    SUPPORTED_DETAILS,
    ResourceResolver,
    Subscription,
    SubscriptionRegistry,
)
from sharpeyes.pipeline.errors import SharpeyesError

log = logging.getLogger(__name__)

VIID_JSON = "application/VIID+JSON;charset=UTF-8"
PATH = "/VIID/Subscribes"
_INDEX = re.compile(r"^\$\.SubscribeListObject\.SubscribeObject\[(\d+)\]")


class SubscriptionRefusedError(SharpeyesError, ValueError):
    """A SubscribeObject we do not accept; the message says why (sent as StatusString)."""


@dataclass(frozen=True)
class SubscriberAuth:
    """Who may subscribe: ``allowed_ids`` (User-Identify) and/or Digest ``accounts``.

    Both empty ("open"): anyone on the network may subscribe (demo and tests only; a warning
    at start), but nobody may list or read subscriptions (``GET`` answers 403: the list names
    every subscriber's ReceiveAddr), and an existing subscription can be replaced or cancelled
    only with the ``User-Identify`` it was created with.
    """

    allowed_ids: frozenset[str] = frozenset()
    accounts: Mapping[str, str] = field(default_factory=dict)
    realm: str = "sharpeyes-viid"

    @property
    def is_open(self) -> bool:
        return not (self.allowed_ids or self.accounts)


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _time(value: str | None, what: str, resolver: ResourceResolver) -> int | None:
    if not value:
        return None
    try:
        return ids.parse_local_time(value, resolver.tz)
    except ValueError as e:
        raise SubscriptionRefusedError(f"{what}: {e}") from e


def _details(text: str | None) -> frozenset[int]:
    try:
        details = frozenset(int(p) for p in _split(text))
    except ValueError as e:
        raise SubscriptionRefusedError(
            f"SubscribeDetail must be comma-separated codes: {text!r}"
        ) from e
    if not details & SUPPORTED_DETAILS:
        raise SubscriptionRefusedError(
            f"SubscribeDetail {text!r} names none of 11, 12, 13, 14 (the records we collect)"
        )
    return details


def parse_subscription(
    obj: Subscribe, *, resolver: ResourceResolver, subscriber: str | None, now_ms: int
) -> Subscription:
    """Check one SubscribeObject and build the :class:`Subscription` to store.

    Raises:
        SubscriptionRefusedError: a field is missing or names something we do not have.
    """
    if not ids.is_subscribe_id(obj.SubscribeID):
        raise SubscriptionRefusedError(f"SubscribeID must be 33 digits, got {obj.SubscribeID!r}")
    details = _details(obj.SubscribeDetail)
    resources = frozenset(_split(obj.ResourceURI))
    if not resources:
        raise SubscriptionRefusedError("ResourceURI is empty")
    unknown = sorted(resources - resolver.known_ids())
    if unknown:
        raise SubscriptionRefusedError(
            f"ResourceURI names ids that are not ours: {','.join(unknown)}"
        )
    addr = (obj.ReceiveAddr or "").strip()
    if not addr.startswith(("http://", "https://")) or "/" not in addr.split("://", 1)[1]:
        raise SubscriptionRefusedError(
            f"ReceiveAddr must be an http(s) URL with a path, got {addr!r}"
        )
    begin = _time(obj.BeginTime, "BeginTime", resolver)
    end = _time(obj.EndTime, "EndTime", resolver)
    if end is not None and end < now_ms:
        raise SubscriptionRefusedError(f"EndTime {obj.EndTime} is in the past")
    return Subscription(
        subscribe_id=obj.SubscribeID,
        details=details,
        resource_ids=resources,
        receive_addr=addr,
        title=obj.Title,
        begin_ms=begin,
        end_ms=end,
        report_interval_s=max(0, min(3600, obj.ReportInterval or 0)),
        image_declare=obj.ResultImageDeclare,
        status=SubscribeStatus.ACTIVE,
        subscriber=subscriber,
        body=dump(obj),
        created_ms=now_ms,
        updated_ms=now_ms,
    )


class _Handlers:
    def __init__(
        self,
        registry: SubscriptionRegistry,
        auth: SubscriberAuth,
        template: RuleTemplate | None,
        clock: Callable[[], float],
    ) -> None:
        self.registry = registry
        self.auth = auth
        self.template = template
        self.clock = clock
        self.digest = DigestVerifier(auth.realm, auth.accounts) if auth.accounts else None

    # -- replies ---------------------------------------------------------------------------

    def status(self, url: str, code: int, text: str, id_: str | None) -> dict[str, Any]:
        now = int(self.clock() * 1000)
        return {
            "RequestURL": url,
            "StatusCode": code,
            "StatusString": text[:500],
            "Id": id_ or "",
            "LocalTime": ids.local_time_str(now, self.registry.resolver.tz),
        }

    def single(self, url: str, code: int, text: str, id_: str | None, http: int = 200) -> Response:
        return _json({"ResponseStatusObject": self.status(url, code, text, id_)}, http)

    def many(self, statuses: list[dict[str, Any]]) -> Response:
        return _json({"ResponseStatusListObject": {"ResponseStatusObject": statuses}})

    # -- checks ----------------------------------------------------------------------------

    def refuse(self, request: Request) -> Response | None:
        """A reply when the caller may not subscribe, else None."""
        url = request.url.path
        who = request.headers.get("user-identify")
        if self.auth.allowed_ids and who not in self.auth.allowed_ids:
            return self.single(url, int(StatusCode.INVALID_OPERATION), "not allowed", who, 403)
        header = request.headers.get("authorization")
        query = request.url.query
        target = f"{url}?{query}" if query else url  # the answer must be for this request
        if self.digest is not None and self.digest.verify(request.method, header, target) is None:
            code = int(StatusCode.INVALID_OPERATION)
            resp = self.single(url, code, "unauthorized", None, 401)
            resp.headers["WWW-Authenticate"] = self.digest.challenge(
                stale=self.digest.is_stale(header)
            )
            return resp
        return None

    def refuse_read(self, request: Request) -> Response | None:
        """:meth:`refuse`, and on an open node (no allow-list, no account) every read."""
        if self.auth.is_open:
            code = int(StatusCode.INVALID_OPERATION)
            why = "reading subscriptions needs allowed_subscribers or a subscriber account"
            return self.single(request.url.path, code, why, None, 403)
        return self.refuse(request)

    def not_owner(self, sid: str, who: str | None) -> bool:
        """On an open node: does ``sid`` exist and belong to another caller than ``who``?"""
        if not self.auth.is_open:
            return False
        sub = self.registry.get(sid)
        return sub is not None and (sub.subscriber or None) != (who or None)

    async def body(self, request: Request) -> tuple[object | None, Response | None]:
        raw = await request.body()
        try:
            return json.loads(raw.decode("utf-8")), None
        except (UnicodeDecodeError, ValueError):
            code = int(StatusCode.INVALID_JSON_FORMAT)
            return None, self.single(request.url.path, code, "invalid JSON format", None, 400)

    def bad_indices(self, body: object) -> dict[int, str]:
        if self.template is None:
            return {}
        out: dict[int, str] = {}
        for v in self.template.validate("Subscribes", body).violations:
            m = _INDEX.match(v.path)
            out.setdefault(int(m.group(1)) if m else -1, str(v))
        return out

    # -- one object --------------------------------------------------------------------------

    def apply(self, url: str, raw: object, who: str | None, problem: str | None) -> dict[str, Any]:
        """Create, replace or cancel one SubscribeObject; its ResponseStatusObject."""
        sid = raw.get("SubscribeID") if isinstance(raw, dict) else None
        sid_s = sid if isinstance(sid, str) else None
        bad = int(StatusCode.INVALID_JSON_CONTENT)
        if problem is not None:
            return self.status(url, bad, problem, sid_s)
        try:
            obj = Subscribe.model_validate(raw)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            return self.status(url, bad, f"{loc}: {first['msg']}", sid_s)
        now = int(self.clock() * 1000)
        if self.not_owner(obj.SubscribeID, who):
            code = int(StatusCode.INVALID_OPERATION)
            return self.status(url, code, "subscribed by another caller", obj.SubscribeID)
        if obj.OperateType == int(OperateType.CANCEL):
            return self.cancel(url, obj.SubscribeID, who, _cancel_reason(obj), "cancel")
        try:
            sub = parse_subscription(
                obj, resolver=self.registry.resolver, subscriber=who, now_ms=now
            )
        except SubscriptionRefusedError as e:
            return self.status(url, int(StatusCode.INVALID_OPERATION), str(e), obj.SubscribeID)
        self.registry.put(sub, actor=who)
        return self.status(url, int(StatusCode.OK), "OK", obj.SubscribeID)

    def cancel(
        self, url: str, sid: str, who: str | None, reason: str, action: str
    ) -> dict[str, Any]:
        if self.not_owner(sid, who):
            code = int(StatusCode.INVALID_OPERATION)
            return self.status(url, code, "subscribed by another caller", sid)
        if self.registry.cancel(sid, actor=who, reason=reason, action=action):
            return self.status(url, int(StatusCode.OK), "OK", sid)
        return self.status(url, int(StatusCode.INVALID_OPERATION), "unknown SubscribeID", sid)

    async def batch(self, request: Request) -> Response:
        if (refused := self.refuse(request)) is not None:
            return refused
        body, err = await self.body(request)
        if err is not None:
            return err
        url = request.url.path
        items = _subscribe_items(body)
        if items is None:
            code = int(StatusCode.INVALID_JSON_CONTENT)
            return self.single(url, code, "expected SubscribeListObject.SubscribeObject", None, 400)
        bad = self.bad_indices(body)
        if -1 in bad:
            return self.single(url, int(StatusCode.INVALID_JSON_CONTENT), bad[-1], None, 400)
        who = request.headers.get("user-identify")
        statuses = [
            await run_in_threadpool(self.apply, url, it, who, bad.get(i))
            for i, it in enumerate(items)
        ]
        return self.many(statuses)


def _cancel_reason(obj: Subscribe) -> str:
    parts = [obj.CancelReason, obj.SubscribeCancelOrg, obj.SubscribeCancelPerson]
    return " / ".join(p for p in parts if p) or "cancelled by subscriber"


def _subscribe_items(body: object) -> list[object] | None:
    if not isinstance(body, dict) or not isinstance(body.get("SubscribeListObject"), dict):
        return None
    items = body["SubscribeListObject"].get("SubscribeObject")
    if isinstance(items, dict):
        return [items]
    return items if isinstance(items, list) else None


def _single_item(body: object) -> object | None:
    """``{"SubscribeObject": {...}}``, a bare object, or a one-element list envelope."""
    if isinstance(body, dict) and isinstance(body.get("SubscribeObject"), dict):
        inner: object = body["SubscribeObject"]
        return inner
    items = _subscribe_items(body)
    if items is not None:
        return items[0] if len(items) == 1 else None
    return body if isinstance(body, dict) and "OperateType" in body else None


def _json(body: object, status: int = 200) -> Response:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return Response(content=data, status_code=status, media_type=VIID_JSON)


def create_subscription_router(
    registry: SubscriptionRegistry,
    *,
    auth: SubscriberAuth | None = None,
    template: RuleTemplate | None = None,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """The ``/VIID/Subscribes`` routes on ``registry``; ``template`` adds MEGVII checks."""
    h = _Handlers(registry, auth or SubscriberAuth(), template, clock)
    if h.auth.is_open:
        log.warning(
            "/VIID/Subscribes accepts subscriptions from anyone: set "
            "delivery.subscriptions.allowed_subscribers (User-Identify) and/or "
            "subscriber_username; until then nobody may list subscriptions (GET answers 403)"
        )
    router = APIRouter(tags=["GA/T 1400 subscriptions"])
    _register_writes(router, h)
    _register_reads(router, h)
    return router


def _register_writes(router: APIRouter, h: _Handlers) -> None:
    @router.post(PATH)
    async def create(request: Request) -> Response:
        return await h.batch(request)

    @router.put(PATH)
    async def update_many(request: Request) -> Response:
        return await h.batch(request)

    @router.put(PATH + "/{subscribe_id}")
    async def update_one(subscribe_id: str, request: Request) -> Response:
        if (refused := h.refuse(request)) is not None:
            return refused
        body, err = await h.body(request)
        if err is not None:
            return err
        item = _single_item(body)
        url = request.url.path
        if not isinstance(item, dict):
            code = int(StatusCode.INVALID_JSON_CONTENT)
            return h.single(url, code, "expected SubscribeObject", subscribe_id, 400)
        item = {**item, "SubscribeID": subscribe_id}
        item.setdefault("OperateType", int(OperateType.CANCEL))
        who = request.headers.get("user-identify")
        status = await run_in_threadpool(h.apply, url, item, who, None)
        return _json({"ResponseStatusObject": status})

    @router.delete(PATH)
    async def delete_many(request: Request, IDList: str = "") -> Response:  # noqa: N803
        if (refused := h.refuse(request)) is not None:
            return refused
        who = request.headers.get("user-identify")
        url = request.url.path
        statuses = [
            await run_in_threadpool(h.cancel, url, sid, who, "deleted", "delete")
            for sid in _split(IDList)
        ]
        return h.many(statuses)

    @router.delete(PATH + "/{subscribe_id}")
    async def delete_one(subscribe_id: str, request: Request) -> Response:
        if (refused := h.refuse(request)) is not None:
            return refused
        who = request.headers.get("user-identify")
        url = request.url.path
        status = await run_in_threadpool(h.cancel, url, subscribe_id, who, "deleted", "delete")
        return _json({"ResponseStatusObject": status})


def _register_reads(router: APIRouter, h: _Handlers) -> None:
    registry = h.registry

    @router.get(PATH)
    async def list_all(request: Request) -> Response:
        if (refused := h.refuse_read(request)) is not None:
            return refused
        subs = [s.public() for s in await run_in_threadpool(registry.list_all)]
        return _json({"SubscribeListObject": {"SubscribeObject": subs}})

    @router.get(PATH + "/{subscribe_id}")
    async def get_one(subscribe_id: str, request: Request) -> Response:
        if (refused := h.refuse_read(request)) is not None:
            return refused
        sub = await run_in_threadpool(registry.get, subscribe_id)
        if sub is None:
            code = int(StatusCode.INVALID_OPERATION)
            return h.single(request.url.path, code, "unknown SubscribeID", subscribe_id, 404)
        return _json({"SubscribeObject": sub.public()})
