"""HTTP Digest authentication (RFC 2617, MD5, qop=auth), both sides, as GA/T 1400 uses it (§2.1).

Client side: :func:`parse_challenge` reads a ``WWW-Authenticate: Digest …`` header (realm and
nonce always come from the challenge, never hard-coded) and :func:`authorization_header` builds
the answer. Server side: :class:`DigestVerifier` issues stateless, HMAC-signed, expiring nonces and
checks answers against configured accounts (nonce-count replay is refused per nonce).

    HA1 = MD5(user:realm:password), HA2 = MD5(method:uri)
    response = MD5(HA1:nonce:nc:cnonce:qop:HA2)   (qop=auth)  or  MD5(HA1:nonce:HA2)  (no qop)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sharpeyes.pipeline.errors import DeliveryError

_PARAM = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*(?:,|$)')


class DigestError(DeliveryError):
    """A challenge or an Authorization header cannot be parsed."""


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_params(text: str) -> dict[str, str]:
    """``k=v, k2="v, with comma"`` → dict (keys lower-cased, quotes and escapes removed)."""
    out: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _PARAM.match(text, pos)
        if m is None:
            raise DigestError(f"malformed Digest parameters near {text[pos : pos + 30]!r}")
        quoted, bare = m.group(2), m.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        out[m.group(1).lower()] = value
        pos = m.end()
    return out


def _split_scheme(header: str) -> tuple[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), rest


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    realm: str
    nonce: str
    qop: str | None = "auth"
    opaque: str | None = None
    algorithm: str | None = None
    stale: bool = False


def parse_challenge(header: str) -> DigestChallenge:
    """Parse ``WWW-Authenticate: Digest realm=…, nonce=…, qop=…``."""
    scheme, rest = _split_scheme(header)
    if scheme != "digest":
        raise DigestError(f"not a Digest challenge: {header[:60]!r}")
    p = parse_params(rest)
    if "nonce" not in p or "realm" not in p:
        raise DigestError(f"Digest challenge without realm/nonce: {header[:80]!r}")
    algorithm = p.get("algorithm")
    if algorithm and algorithm.upper() != "MD5":
        raise DigestError(f"unsupported Digest algorithm {algorithm!r} (only MD5)")
    qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
    if qops and "auth" not in qops:
        raise DigestError(f"unsupported qop {p['qop']!r} (only auth)")
    return DigestChallenge(
        realm=p["realm"],
        nonce=p["nonce"],
        qop="auth" if qops else None,
        opaque=p.get("opaque"),
        algorithm=algorithm,
        stale=p.get("stale", "").lower() == "true",
    )


def compute_response(
    *,
    username: str,
    password: str,
    realm: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str | None,
    cnonce: str | None,
    qop: str | None,
) -> str:
    ha1 = md5_hex(f"{username}:{realm}:{password}")
    ha2 = md5_hex(f"{method.upper()}:{uri}")
    if qop:
        return md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5_hex(f"{ha1}:{nonce}:{ha2}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization_header(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization: Digest …`` value answering ``challenge`` for ``method uri``."""
    cn = cnonce or secrets.token_hex(8)
    nc_s = f"{nc:08x}"
    resp = compute_response(
        username=username,
        password=password,
        realm=challenge.realm,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        nc=nc_s if challenge.qop else None,
        cnonce=cn if challenge.qop else None,
        qop=challenge.qop,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(resp)}",
    ]
    if challenge.qop:
        parts += [f"qop={challenge.qop}", f"nc={nc_s}", f"cnonce={_quote(cn)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if challenge.algorithm:
        parts.append(f"algorithm={challenge.algorithm}")
    return "Digest " + ", ".join(parts)


class DigestVerifier:
    """Server side: challenges and verification for a set of accounts.

    Nonces are ``base64(expiry_ms:random:hmac)`` so they need no server table; the last nonce
    counts seen per nonce are kept (bounded LRU) to refuse replays.
    """

    def __init__(
        self,
        realm: str,
        accounts: Mapping[str, str],
        *,
        nonce_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        max_tracked_nonces: int = 10_000,
    ) -> None:
        self.realm = realm
        self.accounts = dict(accounts)
        self.nonce_ttl_s = nonce_ttl_s
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._opaque = secrets.token_hex(8)
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._max = max_tracked_nonces
        self._lock = threading.Lock()

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        expiry = int((self._clock() + self.nonce_ttl_s) * 1000)
        body = f"{expiry}:{secrets.token_hex(8)}"
        return base64.b64encode(f"{body}:{self._sign(body)}".encode()).decode("ascii")

    def challenge(self, stale: bool = False) -> str:
        """The ``WWW-Authenticate`` header value for a 401."""
        value = (
            f'Digest realm="{self.realm}", qop="auth", nonce="{self.new_nonce()}", '
            f'opaque="{self._opaque}", algorithm=MD5'
        )
        return value + (", stale=true" if stale else "")

    def _nonce_ok(self, nonce: str) -> bool:
        try:
            expiry_s, rand, sig = base64.b64decode(nonce, validate=True).decode().split(":")
        except (ValueError, UnicodeDecodeError):
            return False
        body = f"{expiry_s}:{rand}"
        if not hmac.compare_digest(sig, self._sign(body)):
            return False
        return int(expiry_s) >= self._clock() * 1000

    def _fresh_nc(self, nonce: str, nc: str) -> bool:
        try:
            count = int(nc, 16)
        except ValueError:
            return False
        with self._lock:
            last = self._seen.get(nonce, 0)
            if count <= last:
                return False
            self._seen[nonce] = count
            self._seen.move_to_end(nonce)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
        return True

    def verify(self, method: str, header: str | None) -> str | None:
        """Return the authenticated username, or None (wrong password, stale nonce, replay)."""
        if not header:
            return None
        scheme, rest = _split_scheme(header)
        if scheme != "digest":
            return None
        try:
            p = parse_params(rest)
        except DigestError:
            return None
        user, nonce, uri, resp = p.get("username"), p.get("nonce"), p.get("uri"), p.get("response")
        if not (user and nonce and uri and resp) or p.get("realm") != self.realm:
            return None
        password = self.accounts.get(user)
        if password is None or not self._nonce_ok(nonce):
            return None
        qop = p.get("qop")
        if qop is not None and (qop != "auth" or "nc" not in p or "cnonce" not in p):
            return None
        expected = compute_response(
            username=user,
            password=password,
            realm=self.realm,
            method=method,
            uri=uri,
            nonce=nonce,
            nc=p.get("nc"),
            cnonce=p.get("cnonce"),
            qop=qop,
        )
        if not hmac.compare_digest(expected, resp.lower()):
            return None
        if qop is not None and not self._fresh_nc(nonce, p["nc"]):
            return None
        return user
