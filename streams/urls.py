"""Camera source URLs: one masking function for every log line and response, and an allow-list.

FFmpeg opens whatever protocol a URL names (``file:``, ``concat:``, ``subfile,``, ``tcp:``,
``http:``, ``gopher:`` …), so an admin-supplied URL could read local files or reach internal
services. :func:`check_source_url` accepts only ``rtsp``/``rtsps`` network cameras and video
files under configured roots; :data:`RTSP_PROTOCOL_WHITELIST` is the ``protocol_whitelist``
option the RTSP opener passes so nested protocols stay limited too.

:func:`mask_url` hides userinfo passwords (also ones containing ``#``, ``?`` or ``@``) and secret
query parameters for any scheme, including malformed ``rtsp:/host`` single-slash URLs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

from sharpeyes.pipeline.errors import ConfigError

MASK = "***"
NETWORK_SCHEMES = frozenset({"rtsp", "rtsps"})
FILE_SCHEME = "file"
RTSP_PROTOCOL_WHITELIST = "rtsp,rtsps,rtp,srtp,udp,tcp,tls,crypto"
"""``av_open(url, options={"protocol_whitelist": RTSP_PROTOCOL_WHITELIST, ...})``."""

SECRET_QUERY_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "token",
        "access_token",
        "auth",
        "authorization",
        "secret",
        "key",
        "apikey",
        "api_key",
        "sig",
        "signature",
        "sign",
        "credential",
        "credentials",
    }
)
# FFmpeg's idea of a protocol prefix: scheme characters followed by ':' (or 'subfile,').
_FFMPEG_PROTO = re.compile(r"^[A-Za-z0-9+.-]+[:,]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SourceUrlError(ConfigError, ValueError):
    """A camera URL uses a protocol or location that is not allowed."""


def _mask_query(query: str) -> str:
    out = []
    for pair in query.split("&"):
        name, eq, _value = pair.partition("=")
        if eq and unquote(name).strip().lower() in SECRET_QUERY_KEYS:
            out.append(f"{name}={MASK}")
        else:
            out.append(pair)
    return "&".join(out)


def mask_url(url: str | None) -> str | None:
    """``url`` with the userinfo password and secret query values replaced by ``***``.

    Works on any scheme and on malformed URLs; never raises. The authority ends at the LAST
    ``@`` before the path, so passwords containing ``#``, ``?`` or ``@`` are hidden entirely.
    """
    if not url:
        return url
    m = _SCHEME.match(url)
    if m is None:
        # a plain path (or garbage): still hide anything that looks like a query secret
        head, q, query = url.partition("?")
        return f"{head}?{_mask_query(query)}" if q else url
    scheme = m.group(1)
    rest = url[m.end() :]
    slashes = len(rest) - len(rest.lstrip("/"))
    body = rest[slashes:]
    # the authority: up to the first '/' after the last '@' (passwords may hold '/', '#', '?')
    at = body.rfind("@")
    if at >= 0:
        cut = body.find("/", at)
        authority, tail = (body, "") if cut < 0 else (body[:cut], body[cut:])
        userinfo, _, hostport = authority.rpartition("@")
        user, colon, _pw = userinfo.partition(":")
        authority = f"{user}:{MASK}@{hostport}" if colon else authority
    else:
        cut = len(body)
        for sep in ("/", "?", "#"):
            i = body.find(sep)
            if 0 <= i < cut:
                cut = i
        authority, tail = body[:cut], body[cut:]
    path, q, query = tail.partition("?")
    if q:
        query, h, frag = query.partition("#")
        tail = f"{path}?{_mask_query(query)}{h}{frag}"
    return f"{scheme}:{rest[:slashes]}{authority}{tail}"


def _within(path: Path, roots: Sequence[Path]) -> bool:
    for root in roots:
        r = root.resolve()
        if path == r or r in path.parents:
            return True
    return False


def check_source_url(url: str, *, file_roots: Sequence[Path]) -> str:
    """Return ``url`` if a camera may use it, else raise :class:`SourceUrlError`.

    Allowed: ``rtsp://host…`` and ``rtsps://host…`` (network cameras), and local video files
    (a path or ``file:`` URL) that resolve under one of ``file_roots``. Everything else FFmpeg
    would open — ``concat:``, ``subfile,``, ``tcp:``, ``http:``, ``gopher:``, ``pipe:`` … — and
    any control character is refused. Messages never contain the URL's secrets.
    """
    if not isinstance(url, str) or not url.strip():
        raise SourceUrlError("a camera needs a url")
    if _CONTROL.search(url):
        raise SourceUrlError("the camera url contains control characters")
    m = _SCHEME.match(url)
    scheme = m.group(1).lower() if m else ""
    if scheme in NETWORK_SCHEMES:
        rest = url[m.end() :] if m else ""
        if not rest.startswith("//") or len(rest) <= 2 or rest[2] in "/?#":
            raise SourceUrlError(f"a {scheme} url must be {scheme}://host[:port]/path")
        return url
    if scheme == FILE_SCHEME:
        raw = unquote(url[len("file:") :])
        if raw.startswith("//"):
            raw = raw[2:]
            if not raw.startswith("/"):
                raise SourceUrlError("file urls must name a local absolute path")
        path_text = raw
    elif _FFMPEG_PROTO.match(url) and not re.match(r"^[A-Za-z]:[\\/]", url):
        shown = scheme or url.split(":", 1)[0].split(",", 1)[0]
        raise SourceUrlError(
            f"protocol {shown[:16]!r} is not allowed for cameras (rtsp, rtsps or a video file)"
        )
    else:
        path_text = url
    if not file_roots:
        raise SourceUrlError("video files are not allowed as camera sources here")
    try:
        path = Path(path_text).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise SourceUrlError("the camera file path is not usable") from e
    if not _within(path, file_roots):
        raise SourceUrlError("camera video files must lie under the configured media folders")
    return url


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/{1,2}[^\s'\"<>]+")
_QUERY_SECRET_IN_TEXT = re.compile(
    r"([?&](?:" + "|".join(sorted(SECRET_QUERY_KEYS)) + r")=)[^&\s'\"<>#]+", re.IGNORECASE
)


def mask_text(text: str | None) -> str | None:
    """``text`` (an error message, a log line) with every URL in it masked."""
    if not text:
        return text
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)) or "", text)
    return _QUERY_SECRET_IN_TEXT.sub(lambda m: m.group(1) + MASK, text)
