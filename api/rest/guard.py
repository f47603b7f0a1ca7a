"""ASGI guards that run before any route reads a request: body limits, auth before parsing,
and security headers.

:class:`RequestGuardMiddleware` is framework-neutral (plain ASGI) so that other HTTP servers of
sharpeyes — e.g. the GA/T 1400 receiver — can reuse it with their own ``authenticate``:

* a declared ``Content-Length`` above the route's limit is answered 413 at once; a chunked body
  is counted as it streams and cut off with 413 when it passes the limit;
* a request that carries a body is authenticated first (``authenticate(scope)``); when that
  fails the app sees an *empty* body, so its own auth answers 401/429 (and audits it) while the
  client's bytes are never read.

:class:`SecurityHeadersMiddleware` adds CSP, ``X-Content-Type-Options``, ``X-Frame-Options``
(and CSP ``frame-ancestors``) and ``Referrer-Policy`` to every response.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DEFAULT_BODY_LIMIT = 1024 * 1024
Authenticate = Callable[[Scope], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """``max_bytes`` for requests whose path starts with ``prefix`` (and ``method``, if set)."""

    prefix: str
    max_bytes: int
    method: str | None = None


class _BodyTooLargeError(Exception):
    pass


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return bytes(v)
    return None


async def _send_json(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _empty_body(_receive: Receive) -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class RequestGuardMiddleware:
    """Body-size limits (per route) and authentication before the body is read."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int = DEFAULT_BODY_LIMIT,
        limits: Sequence[BodyLimit] = (),
        authenticate: Authenticate | None = None,
        public_prefixes: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        # longest prefix first, method-specific before generic
        self.limits = sorted(limits, key=lambda b: (-len(b.prefix), b.method is None))
        self.authenticate = authenticate
        self.public_prefixes = tuple(public_prefixes)

    def limit_for(self, method: str, path: str) -> int:
        for b in self.limits:
            if path.startswith(b.prefix) and (b.method is None or b.method == method):
                return b.max_bytes
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = str(scope["method"]), str(scope["path"])
        limit = self.limit_for(method, path)
        declared = _header(scope, b"content-length")
        chunked = b"chunked" in (_header(scope, b"transfer-encoding") or b"").lower()
        length = -1
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_json(send, 400, "invalid Content-Length")
                return
            if length > limit:
                await _send_json(send, 413, f"request body larger than {limit} bytes")
                return
        has_body = chunked or length > 0
        if (
            has_body
            and self.authenticate is not None
            and not path.startswith(self.public_prefixes)
            and not await self.authenticate(scope)
        ):
            await self.app(scope, _empty_body_receiver(receive), send)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen = 0
        started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused, started
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if started:
                        raise _BodyTooLargeError
                    # answer 413 now; the app sees a client that went away (frameworks turn
                    # errors raised here into their own 400s)
                    refused = started = True
                    await _send_json(send, 413, f"request body larger than {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not refused:
                raise


def _empty_body_receiver(receive: Receive) -> Receive:
    sent = False

    async def _receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return await _empty_body(receive)
        return await receive()  # after the body: only http.disconnect can come

    return _receive


def bearer_token(scope: Scope) -> str | None:
    """The ``Authorization: Bearer`` token of a request, if any."""
    raw = _header(scope, b"authorization")
    if raw is None:
        return None
    try:
        scheme, _, token = raw.decode("latin-1").partition(" ")
    except UnicodeDecodeError:
        return None
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI / ReDoc load their bundle from a CDN and start it with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; worker-src blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    """CSP, nosniff, no framing and no referrer on every HTTP response."""

    def __init__(self, app: ASGIApp, *, docs_paths: Sequence[str] = DOCS_PATHS) -> None:
        self.app = app
        self.docs_paths = tuple(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if str(scope["path"]).startswith(self.docs_paths) else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                for name, value in (
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
