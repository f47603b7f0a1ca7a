"""HTTP Digest authentication (RFC 2617 / RFC 7616: MD5 and SHA-256, qop=auth), both sides (§2.1).

Client side: :func:`parse_challenge` reads a ``WWW-Authenticate: Digest …`` header (realm and
nonce always come from the challenge, never hard-coded) and :func:`authorization_header` builds
the answer. Server side: :class:`DigestVerifier` issues stateless, HMAC-signed, expiring nonces and
checks answers against configured accounts (nonce-count replay is refused per nonce).

    HA1 = H(user:realm:password), HA2 = H(method:uri), H = MD5 or SHA-256 (``algorithm=``)
    response = H(HA1:nonce:nc:cnonce:qop:HA2)   (qop=auth)  or  H(HA1:nonce:HA2)  (no qop)

The verifier checks that the answer's ``uri`` is the request's, and (by default) requires
``qop=auth`` so every answer carries a nonce count that must grow per nonce (no replay).
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


SUPPORTED_ALGORITHMS = ("SHA-256", "MD5")  # preference order when a server offers both


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_algorithm(algorithm: str | None) -> str:
    """``None``/``md5`` → ``MD5``, ``sha-256`` → ``SHA-256``; DigestError for anything else."""
    name = (algorithm or "MD5").strip().upper()
    if name not in SUPPORTED_ALGORITHMS:
        raise DigestError(f"unsupported Digest algorithm {algorithm!r} (MD5, SHA-256)")
    return name


def _hash(algorithm: str | None, text: str) -> str:
    return sha256_hex(text) if normalize_algorithm(algorithm) == "SHA-256" else md5_hex(text)


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
    if algorithm:
        algorithm = normalize_algorithm(algorithm)
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


def _split_challenges(header: str) -> list[str]:
    """One header value may carry several challenges (``Digest …, Digest …``)."""
    parts = re.split(r",\s*(?=[A-Za-z][\w-]*\s+[A-Za-z][\w-]*\s*=)", header)
    out: list[str] = []
    for part in parts:
        if out and not re.match(r"\s*[A-Za-z][\w-]*\s+[A-Za-z][\w-]*\s*=", part):
            out[-1] += ", " + part
        else:
            out.append(part)
    return out


def best_challenge(headers: list[str]) -> DigestChallenge:
    """The strongest supported Digest challenge among ``WWW-Authenticate`` values (RFC 7616 §3.7:
    a server may offer SHA-256 and MD5; we take SHA-256)."""
    found: list[DigestChallenge] = []
    errors: list[str] = []
    for value in headers:
        for one in _split_challenges(value):
            try:
                found.append(parse_challenge(one))
            except DigestError as e:
                errors.append(str(e))
    if not found:
        raise DigestError(errors[0] if errors else "no WWW-Authenticate challenge")
    rank = {a: i for i, a in enumerate(SUPPORTED_ALGORITHMS)}
    return min(found, key=lambda c: rank[normalize_algorithm(c.algorithm)])


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
    algorithm: str | None = None,
) -> str:
    ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    ha2 = _hash(algorithm, f"{method.upper()}:{uri}")
    if qop:
        return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")


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
        algorithm=challenge.algorithm,
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
        algorithm: str = "MD5",
        accept_algorithms: tuple[str, ...] = SUPPORTED_ALGORITHMS,
        require_qop: bool = True,
    ) -> None:
        self.realm = realm
        self.algorithm = normalize_algorithm(algorithm)
        self.accept_algorithms = tuple(normalize_algorithm(a) for a in accept_algorithms)
        self.require_qop = require_qop
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
            f'opaque="{self._opaque}", algorithm={self.algorithm}'
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

    def is_stale(self, header: str | None) -> bool:
        """True when ``header`` answers a nonce we signed that has since expired (→ stale=true)."""
        if not header:
            return False
        try:
            p = parse_params(_split_scheme(header)[1])
            expiry_s, rand, sig = _nonce_parts(p["nonce"])
            expiry = int(expiry_s)
        except (ValueError, UnicodeDecodeError, DigestError, KeyError):
            return False
        body = f"{expiry_s}:{rand}"
        return hmac.compare_digest(sig, self._sign(body)) and expiry < self._clock() * 1000

    def _answer(self, header: str | None, request_uri: str | None) -> dict[str, str] | None:
        """The parsed answer when its shape, realm, uri, algorithm and qop are acceptable."""
        if not header:
            return None
        scheme, rest = _split_scheme(header)
        if scheme != "digest":
            return None
        try:
            p = parse_params(rest)
            p["algorithm"] = normalize_algorithm(p.get("algorithm"))
        except DigestError:
            return None
        if not all(p.get(k) for k in ("username", "nonce", "uri", "response")):
            return None
        if p.get("realm") != self.realm or p["algorithm"] not in self.accept_algorithms:
            return None
        if request_uri is not None and not _same_uri(p["uri"], request_uri):
            return None
        qop = p.get("qop")
        if qop is None:
            return None if self.require_qop else p
        if qop != "auth" or "nc" not in p or "cnonce" not in p:
            return None
        return p

    def verify(self, method: str, header: str | None, uri: str | None = None) -> str | None:
        """Return the authenticated username, or None (wrong password, stale nonce, replay, an
        answer computed for another ``uri`` than the request's, no qop when qop is required)."""
        p = self._answer(header, uri)
        if p is None:
            return None
        user, nonce = p["username"], p["nonce"]
        password = self.accounts.get(user)
        if password is None or not self._nonce_ok(nonce):
            return None
        qop = p.get("qop")
        expected = compute_response(
            username=user,
            password=password,
            realm=self.realm,
            method=method,
            uri=p["uri"],
            nonce=nonce,
            nc=p.get("nc"),
            cnonce=p.get("cnonce"),
            qop=qop,
            algorithm=p["algorithm"],
        )
        if not hmac.compare_digest(expected, p["response"].lower()):
            return None
        if qop is not None and not self._fresh_nc(nonce, p["nc"]):
            return None
        return user


def _nonce_parts(nonce: str) -> tuple[str, str, str]:
    expiry_s, rand, sig = base64.b64decode(nonce, validate=True).decode().split(":")
    return expiry_s, rand, sig


def _same_uri(answered: str, request_uri: str) -> bool:
    """The Digest ``uri`` must name the request's target (an absolute URI: by its path)."""
    if answered == request_uri:
        return True
    if "://" in answered:
        rest = answered.split("://", 1)[1]
        slash = rest.find("/")
        return slash >= 0 and rest[slash:] == request_uri
    return False
