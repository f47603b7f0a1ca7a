"""External signal-phase input: the phase of a signal group told by the signal controller.

Many e-police installations read the phase from a detector wired to the lamp cables or from the
signal controller instead of from the video. Two ways in (REST and UDP), one way through:

* :class:`PhaseIntake` — the one path of a phase message in every entry point (``serve``/``run``,
  worker processes, the cluster, ``analyze --phase-udp``): parse, check its time, route it to its
  camera, apply it, count it by transport and outcome (:class:`PhaseCounts`, exported on
  ``/metrics``) and — for UDP, which has nobody to answer — log why a message was refused.
  :class:`PhaseHub` (one process's cameras), :class:`PhaseRelay` (a node's worker processes) and
  the cluster handles are intakes.
* :class:`UdpPhaseListener` — one UDP datagram per phase change (or periodic status), UTF-8 JSON::

      {"group": "main", "color": "red", "wall_ms": 1664098923456}
      {"group": "main", "color": "green", "pts": 42.5, "camera": "north"}

  ``group``: signal-group id from the calibration; ``color``: red | amber | green | off |
  unknown (``yellow`` is taken as ``amber``); at most one of ``wall_ms`` (UTC epoch ms when the
  lamp changed) and ``pts`` (stream presentation time, seconds). Neither: the receiving host's
  clock at arrival. Repeating the current colour (periodic status) keeps the original start time.

Routing (:func:`route_phase`): a message naming its ``camera`` goes there; one without goes to
the one camera that has its group id; a group on several cameras must name the camera.

Live services (``PhaseIntake(live=True)``) refuse a ``wall_ms`` more than
:data:`MAX_FUTURE_MS` ahead of this host's clock or older than :data:`MAX_AGE_MS`, naming the
likely mistake (seconds instead of milliseconds). ``analyze`` takes any time: a recording's clock
may be years old.

:class:`pipeline.signal.SignalBoard` asks :meth:`ExternalPhaseInput.state_at` once per frame,
turns the answer into a :class:`sharpeyes.pipeline.types.SignalState` with
``source="external"`` and tells the input what it decided (:meth:`ExternalPhaseInput.note`), so
:meth:`PhaseHub.status` can say which phase the camera believes.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sharpeyes.pipeline.calibration import SignalGroup
from sharpeyes.pipeline.clock import now_ms
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.types import LampColor

log = logging.getLogger(__name__)

_MAX_MESSAGES = 256

DEFAULT_EXTERNAL_TIMEOUT_S: float = SignalGroup.model_fields["external_timeout_s"].default
"""Seconds without a controller message after which an external phase is stale (the group is
UNKNOWN and no red-light rule runs on it), unless the calibration's ``external_timeout_s`` says
otherwise (0 = never stale): 300 s. A controller that reports changes only sends at least one
message per signal cycle, and cycles are a few minutes at most; 300 s leaves a margin."""

MAX_FUTURE_MS = 60_000
"""A live service refuses a ``wall_ms`` more than this ahead of its own clock."""

MAX_AGE_MS = 3_600_000
"""A live service refuses a ``wall_ms`` older than this (one hour): no live frame is that far
behind, and with the default staleness such a phase would be stale on arrival."""

TRANSPORTS = ("rest", "udp")

COLOR_ALIASES = {"yellow": "amber"}
"""Other names taken for a colour (REST and UDP alike)."""

_DAY_MS = 86_400_000


class PhaseMessage(BaseModel):
    """One external phase message (the UDP JSON body and the REST body)."""

    model_config = ConfigDict(extra="forbid")

    camera: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Camera id; needed only when the signal group id is on several cameras of "
        "the receiving process (REST: the camera in the path, if given, must match).",
    )
    group: str = Field(min_length=1, max_length=64, description="Signal-group id.")
    color: LampColor = Field(
        description="red | amber | green | off | unknown ('yellow' is taken as amber)."
    )
    wall_ms: int | None = Field(
        None,
        ge=0,
        description="UTC epoch milliseconds when the lamp changed (not seconds). A live service "
        "refuses one more than 60 s ahead of its clock or more than an hour old.",
    )
    pts: float | None = Field(None, ge=0.0, description="Stream time (s) when the lamp changed.")

    @field_validator("color", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        if isinstance(value, str):
            return COLOR_ALIASES.get(value.strip().lower(), value.strip().lower())
        return value

    @model_validator(mode="after")
    def _one_time(self) -> PhaseMessage:
        if self.wall_ms is not None and self.pts is not None:
            raise ValueError("give at most one of wall_ms and pts")
        return self


class PhaseRejectedError(ConfigError):
    """A phase message refused; ``reason`` is its metric label (``not_json``, ``invalid``,
    ``unknown_camera``, ``unknown_group``, ``ambiguous_group``, ``camera_mismatch``,
    ``wall_ms_seconds``, ``wall_ms_future``, ``wall_ms_past``, ``refused``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def describe_invalid(error: ValidationError) -> str:
    """A validation error as the REST 422 lists it: ``field: message`` for each problem."""
    parts = []
    for e in error.errors():
        where = ".".join(str(x) for x in e.get("loc", ())) or "message"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid message"


def parse_phase(data: bytes) -> PhaseMessage:
    """A datagram as a :class:`PhaseMessage`.

    Raises:
        PhaseRejectedError: ``not_json`` (not UTF-8 JSON) or ``invalid`` (fields named).
    """
    try:
        return PhaseMessage.model_validate_json(data)
    except ValidationError as e:
        if any(err.get("type") == "json_invalid" for err in e.errors()):
            raise PhaseRejectedError(
                "not_json", "not JSON (one UTF-8 JSON object a datagram)"
            ) from e
        raise PhaseRejectedError("invalid", describe_invalid(e)) from e


def _iso(ms: int) -> str:
    try:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def check_wall_ms(wall_ms: int, now: int) -> None:
    """Refuse a ``wall_ms`` a live service cannot use: more than :data:`MAX_FUTURE_MS` ahead of
    ``now`` or older than :data:`MAX_AGE_MS`, naming the likely mistake.

    Raises:
        PhaseRejectedError: ``wall_ms_seconds``, ``wall_ms_future`` or ``wall_ms_past``.
    """
    if abs(wall_ms * 1000 - now) < _DAY_MS:
        raise PhaseRejectedError(
            "wall_ms_seconds",
            f"wall_ms: {wall_ms} looks like seconds, not milliseconds (send {wall_ms * 1000})",
        )
    if wall_ms > now + MAX_FUTURE_MS:
        hint = (
            " — it looks like microseconds, not milliseconds"
            if abs(wall_ms // 1000 - now) < _DAY_MS
            else " — is the controller's clock set (NTP)?"
        )
        raise PhaseRejectedError(
            "wall_ms_future",
            f"wall_ms: {wall_ms} ({_iso(wall_ms)}) is {(wall_ms - now) / 1000:.0f} s ahead of this "
            f"host's clock (at most {MAX_FUTURE_MS // 1000} s){hint}",
        )
    if wall_ms < now - MAX_AGE_MS:
        raise PhaseRejectedError(
            "wall_ms_past",
            f"wall_ms: {wall_ms} ({_iso(wall_ms)}) is {(now - wall_ms) / 1000:.0f} s old (at most "
            f"{MAX_AGE_MS // 1000} s) — UTC epoch milliseconds when the lamp changed, or leave it "
            "out to use the time of arrival",
        )


def route_phase(
    message: PhaseMessage,
    camera_id: str | None,
    takers: Mapping[str, Collection[str] | None],
) -> str:
    """The camera a message is for: ``camera_id`` or the message's ``camera``; without either,
    the one camera that has the message's group (``takers``: camera → its external groups, None
    = any group).

    Raises:
        PhaseRejectedError: ``camera_mismatch``, ``unknown_camera``, ``unknown_group`` or
            ``ambiguous_group`` (the group is on several cameras: name the camera).
    """
    if camera_id is not None and message.camera is not None and message.camera != camera_id:
        raise PhaseRejectedError("camera_mismatch", "camera: differs from the camera in the path")
    cam = camera_id or message.camera
    if cam is not None:
        if cam not in takers:
            raise PhaseRejectedError(
                "unknown_camera", f"camera: no camera {cam!r} takes external phases here"
            )
        groups = takers[cam]
        if groups is not None and message.group not in groups:
            raise PhaseRejectedError(
                "unknown_group",
                f"group: {message.group!r} is not an external signal group of {cam!r} "
                f"{sorted(groups)}",
            )
        return cam
    owners = sorted(c for c, gs in takers.items() if gs is None or message.group in gs)
    if len(owners) == 1:
        return owners[0]
    if not owners:
        known = sorted({g for gs in takers.values() if gs is not None for g in gs})
        raise PhaseRejectedError(
            "unknown_group",
            f"group: no camera here has the external signal group {message.group!r} "
            f"(external groups: {known})",
        )
    raise PhaseRejectedError(
        "ambiguous_group",
        f"camera: group {message.group!r} is on {len(owners)} cameras ({', '.join(owners)}): "
        "name the camera",
    )


class PhaseCounts:
    """Phase messages by transport: received, applied, and rejected by reason (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: dict[str, int] = {}
        self._applied: dict[str, int] = {}
        self._rejected: dict[tuple[str, str], int] = {}

    def received(self, transport: str) -> None:
        with self._lock:
            self._received[transport] = self._received.get(transport, 0) + 1

    def applied(self, transport: str) -> None:
        with self._lock:
            self._applied[transport] = self._applied.get(transport, 0) + 1

    def rejected(self, transport: str, reason: str) -> None:
        with self._lock:
            key = (transport, reason)
            self._rejected[key] = self._rejected.get(key, 0) + 1

    def snapshot(self) -> PhaseCountsSnapshot:
        with self._lock:
            return PhaseCountsSnapshot(
                dict(self._received), dict(self._applied), dict(self._rejected)
            )


@dataclass(frozen=True, slots=True)
class PhaseCountsSnapshot:
    received: dict[str, int]
    applied: dict[str, int]
    rejected: dict[tuple[str, str], int]  # (transport, reason) → count

    def total(self, kind: str) -> int:
        values: dict[Any, int] = getattr(self, kind)
        return sum(values.values())


@dataclass(frozen=True, slots=True)
class _Change:
    seq: int
    color: LampColor
    at_pts: float | None
    wall_ms: int | None
    received_ms: int
    transport: str

    def pts_for(self, frame_pts: float, frame_wall_ms: int) -> float:
        if self.at_pts is not None:
            return self.at_pts
        assert self.wall_ms is not None
        return frame_pts + (self.wall_ms - frame_wall_ms) / 1000.0


@dataclass(frozen=True, slots=True)
class ExternalPhase:
    """The phase of one group at a frame time: colour, since when, and when last heard."""

    color: LampColor
    since_pts: float
    heard_pts: float


@dataclass(frozen=True, slots=True)
class HeardPhase:
    """The last message of a group: its colour, its time, when and how it arrived."""

    color: LampColor
    wall_ms: int | None  # the lamp change the message names (None: given as pts only)
    pts: float | None
    received_ms: int
    transport: str


@dataclass(frozen=True, slots=True)
class GroupPhase:
    """What a camera believes of one external group (:meth:`PhaseHub.status`)."""

    group: str
    color: LampColor
    since_ms: int | None  # wall ms since when (None: not known yet)
    stale: bool
    timeout_s: float  # staleness after this many seconds without a message (0 = never)
    as_of_ms: int | None  # the frame time of the signal board's last decision (None: no frame)
    messages: int
    last: HeardPhase | None


@dataclass(frozen=True, slots=True)
class _Belief:
    color: LampColor
    since_pts: float
    stale: bool
    frame_pts: float
    frame_wall_ms: int

    def wall_of(self, pts: float) -> int:
        return self.frame_wall_ms + round((pts - self.frame_pts) * 1000)


@dataclass(frozen=True, slots=True)
class PhaseUsage:
    """How the messages applied to a camera's input were used by its frames (``analyze``)."""

    applied: int
    ignored: int  # dated where no analysed frame could use them (outside the recording)
    silent_groups: tuple[str, ...]  # external groups that got no message at all
    unused_groups: tuple[str, ...] = ()  # groups whose messages no analysed frame used


class ExternalPhaseInput:
    """Thread-safe store of phase messages per signal group."""

    def __init__(self, groups: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._groups = set(groups) if groups is not None else None
        self._messages: dict[str, deque[_Change]] = {}
        self._seq = 0
        self._counts: dict[str, int] = {}
        self._timeouts: dict[str, float] = {}
        self._beliefs: dict[str, _Belief] = {}
        self._first_pts: float | None = None
        self._used: set[int] = set()
        self._evicted_unused = 0

    def set_phase(
        self,
        group: str,
        color: LampColor | str,
        at_pts: float | None = None,
        wall_ms: int | None = None,
        *,
        transport: str = "api",
        received_ms: int | None = None,
    ) -> None:
        """Record that ``group`` shows ``color`` from ``at_pts`` (stream s) or ``wall_ms``.

        Without either, the time is this host's clock now.

        Raises:
            ConfigError: unknown group or colour, or both times given.
        """
        if self._groups is not None and group not in self._groups:
            raise PhaseRejectedError("unknown_group", f"group: unknown signal group {group!r}")
        try:
            c = LampColor(COLOR_ALIASES.get(str(color), color))
        except ValueError as e:
            raise PhaseRejectedError(
                "invalid", f"color: {color!r} is not one of red/amber/green/off/unknown"
            ) from e
        if at_pts is not None and wall_ms is not None:
            raise PhaseRejectedError("invalid", "give at most one of at_pts and wall_ms")
        arrived = now_ms() if received_ms is None else received_ms
        if at_pts is None and wall_ms is None:
            wall_ms = arrived
        with self._lock:
            self._seq += 1
            q = self._messages.setdefault(group, deque(maxlen=_MAX_MESSAGES))
            if len(q) == q.maxlen:  # the oldest leaves the history
                if q[0].seq in self._used:
                    self._used.discard(q[0].seq)
                else:
                    self._evicted_unused += 1
            q.append(_Change(self._seq, c, at_pts, wall_ms, arrived, transport))
            self._counts[group] = self._counts.get(group, 0) + 1

    def apply(
        self, message: PhaseMessage, transport: str = "api", received_ms: int | None = None
    ) -> None:
        """Record a parsed :class:`PhaseMessage`."""
        self.set_phase(
            message.group,
            message.color,
            message.pts,
            message.wall_ms,
            transport=transport,
            received_ms=received_ms,
        )

    def known_groups(self) -> set[str] | None:
        """The groups this input accepts (None: any)."""
        return None if self._groups is None else set(self._groups)

    def adopt(self, other: ExternalPhaseInput) -> None:
        """Take over another input's messages (for the groups this one accepts)."""
        with other._lock:
            items = {g: list(q) for g, q in other._messages.items()}
            counts = dict(other._counts)
            timeouts = dict(other._timeouts)
            seq = other._seq
        with self._lock:
            self._seq = max(self._seq, seq)
            for g, msgs in items.items():
                if self._groups is None or g in self._groups:
                    self._messages[g] = deque(msgs, maxlen=_MAX_MESSAGES)
                    self._counts[g] = counts.get(g, len(msgs))
            self._timeouts.update(timeouts)

    def groups(self) -> set[str]:
        with self._lock:
            return set(self._messages)

    def set_timeouts(self, timeouts: Mapping[str, float]) -> None:
        """The staleness of each group (``external_timeout_s``; the signal board tells it)."""
        with self._lock:
            self._timeouts.update(timeouts)

    def timeout_s(self, group: str) -> float:
        with self._lock:
            return self._timeouts.get(group, DEFAULT_EXTERNAL_TIMEOUT_S)

    def state_at(self, group: str, pts: float, wall_ms: int) -> ExternalPhase | None:
        """The phase in force at frame time (``pts``, ``wall_ms``); None when never told."""
        with self._lock:
            msgs = list(self._messages.get(group, ()))
            if self._first_pts is None:
                self._first_pts = pts
            first = self._first_pts
        timed = sorted(
            ((m.pts_for(pts, wall_ms), i, m) for i, m in enumerate(msgs)),
            key=lambda x: (x[0], x[1]),
        )
        past = [(t, m) for t, _, m in timed if t <= pts + 1e-6]
        if not past:
            return None
        used = {m.seq for t, m in past if t >= first - 1e-6}
        used.add(past[-1][1].seq)  # in force at this frame
        with self._lock:
            self._used |= used
        heard, last = past[-1]
        color = last.color
        since = heard
        for t, m in reversed(past):
            if m.color is not color:
                break
            since = t
        return ExternalPhase(color=color, since_pts=since, heard_pts=heard)

    def note(
        self,
        group: str,
        color: LampColor,
        *,
        since_pts: float,
        stale: bool,
        frame_pts: float,
        frame_wall_ms: int,
    ) -> None:
        """What the signal board decided for ``group`` on this frame (for :meth:`status`)."""
        belief = _Belief(color, since_pts, stale, frame_pts, frame_wall_ms)
        with self._lock:
            self._beliefs[group] = belief

    def status(self, now: int | None = None) -> list[GroupPhase]:
        """Each group's believed phase: the signal board's decision on the camera's last frame,
        or — before its first frame — the last message's colour (UNKNOWN once stale)."""
        at = now_ms() if now is None else now
        with self._lock:
            names = sorted(self._groups if self._groups is not None else self._messages)
            msgs = {g: list(self._messages.get(g, ())) for g in names}
            counts = dict(self._counts)
            beliefs = dict(self._beliefs)
            timeouts = dict(self._timeouts)
        out = []
        for g in names:
            timeout = timeouts.get(g, DEFAULT_EXTERNAL_TIMEOUT_S)
            last = msgs[g][-1] if msgs[g] else None
            heard = (
                None
                if last is None
                else HeardPhase(
                    last.color, last.wall_ms, last.at_pts, last.received_ms, last.transport
                )
            )
            belief = beliefs.get(g)
            if belief is not None:
                out.append(
                    GroupPhase(
                        g,
                        belief.color,
                        None
                        if belief.color is LampColor.UNKNOWN
                        else belief.wall_of(belief.since_pts),
                        belief.stale,
                        timeout,
                        belief.frame_wall_ms,
                        counts.get(g, 0),
                        heard,
                    )
                )
                continue
            since: int | None = None
            color = LampColor.UNKNOWN
            stale = False
            if last is not None:
                told = last.wall_ms if last.wall_ms is not None else last.received_ms
                stale = timeout > 0 and at - max(told, 0) > timeout * 1000
                if not stale:
                    color = last.color
                    run = [m for m in msgs[g] if m.wall_ms is not None]
                    since = last.wall_ms
                    for m in reversed(run):
                        if m.color is not color:
                            break
                        since = m.wall_ms
            out.append(GroupPhase(g, color, since, stale, timeout, None, counts.get(g, 0), heard))
        return out

    def usage(self) -> PhaseUsage:
        """Messages applied, those no analysed frame could use, and groups never told."""
        with self._lock:
            applied = sum(self._counts.values())
            unused = self._evicted_unused + sum(
                1 for q in self._messages.values() for m in q if m.seq not in self._used
            )
            silent = tuple(sorted((self._groups or set()) - set(self._messages)))
            idle = tuple(
                sorted(
                    g for g, q in self._messages.items() if not any(m.seq in self._used for m in q)
                )
            )
        return PhaseUsage(applied, unused, silent, idle)


class PhaseIntake:
    """The one path of a phase message into a process (REST and UDP alike): check its time on
    a live service, route it to its camera, apply it, and count it by transport and outcome.
    Subclasses say how a routed message is delivered (:meth:`_deliver`)."""

    def __init__(self, *, live: bool = True) -> None:
        self.live = live
        self.counts = PhaseCounts()
        self._refusals = RefusalLog()

    def _deliver(
        self, message: PhaseMessage, camera_id: str | None, transport: str, at: int
    ) -> str:
        """Route and apply; returns the camera. Raises: ConfigError (PhaseRejectedError)."""
        raise NotImplementedError

    def receive(self, message: PhaseMessage, transport: str, camera_id: str | None = None) -> str:
        """Take one parsed message that came over ``transport`` (``rest``/``udp``); returns the
        camera it went to.

        Raises:
            PhaseRejectedError: refused (counted under its reason).
        """
        at = now_ms()
        self.counts.received(transport)
        try:
            if self.live and message.wall_ms is not None:
                check_wall_ms(message.wall_ms, at)
            cam = self._deliver(message, camera_id, transport, at)
        except PhaseRejectedError as e:
            self.counts.rejected(transport, e.reason)
            raise
        except ConfigError as e:
            self.counts.rejected(transport, "refused")
            raise PhaseRejectedError("refused", str(e)) from e
        self.counts.applied(transport)
        return cam

    def receive_datagram(self, data: bytes, peer: object, transport: str = "udp") -> str | None:
        """Take one datagram; a refused one is counted and logged (field names and messages, or
        "not JSON"), never raised. Returns the camera it went to, or None when refused."""
        try:
            message = parse_phase(data)
        except PhaseRejectedError as e:
            self.counts.received(transport)
            self.counts.rejected(transport, e.reason)
            self._refusals.warn(_peer(peer), e.reason, f"{e}")
            return None
        try:
            return self.receive(message, transport)
        except PhaseRejectedError as e:
            self._refusals.warn(_peer(peer), e.reason, f"group {message.group!r}: {e}")
            return None


_DIGITS = re.compile(r"\d+")


class RefusalLog:
    """Warns of refused datagrams without flooding the log: the first refusal of a kind (sender,
    reason and text with its numbers ignored) is logged, then at most one line per ``every_s``
    saying how many more there were (a controller misconfigured at 10 messages a second would
    otherwise write 36,000 lines an hour). Every refusal is still counted (:class:`PhaseCounts`).
    """

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}  # → (logged, held back)

    def warn(self, peer: str, reason: str, text: str) -> bool:
        """Log ``text`` for this refusal unless one of the same kind was logged within
        ``every_s``; returns whether a line was written."""
        key, t = (peer, reason, _DIGITS.sub("#", text)), self._clock()
        last = self._seen.get(key)
        if last is not None and t - last[0] < self.every_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        more = f" ({last[1]} more like it since the last line)" if last and last[1] else ""
        log.warning("rejected phase message from %s: %s%s", peer, text, more)
        self._seen[key] = (t, 0)
        if len(self._seen) > 1024:  # senders come and go: forget the oldest
            del self._seen[next(iter(self._seen))]
        return True


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class PhaseHub(PhaseIntake):
    """The external phase inputs of every camera of one process, by camera id.

    The composition root asks :meth:`input_for` when it builds a camera whose calibration has
    external signal groups; the REST API and :class:`UdpPhaseListener` deliver messages through
    :meth:`receive` (counted), a cluster worker through :meth:`apply`. An input outlives a camera
    restart, so phases told before are not lost. ``live=False`` (``analyze``): any ``wall_ms``
    is taken, the recording's clock may be years old.
    """

    def __init__(self, *, live: bool = True) -> None:
        super().__init__(live=live)
        self._lock = threading.Lock()
        self._inputs: dict[str, ExternalPhaseInput] = {}

    def input_for(self, camera_id: str, groups: list[str]) -> ExternalPhaseInput:
        """The camera's input (created on first use; its groups updated on a config change)."""
        with self._lock:
            current = self._inputs.get(camera_id)
            if current is None or current.known_groups() != set(groups):
                fresh = ExternalPhaseInput(groups)
                if current is not None:
                    fresh.adopt(current)
                self._inputs[camera_id] = fresh
            return self._inputs[camera_id]

    def remove(self, camera_id: str) -> None:
        with self._lock:
            self._inputs.pop(camera_id, None)

    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(self._inputs)

    def get(self, camera_id: str) -> ExternalPhaseInput | None:
        with self._lock:
            return self._inputs.get(camera_id)

    def takes(self, camera_id: str) -> bool:
        """Whether ``camera_id`` takes external phases here."""
        return self.get(camera_id) is not None

    def takers(self) -> dict[str, frozenset[str] | None]:
        """Camera → its external groups (None: any)."""
        with self._lock:
            inputs = dict(self._inputs)
        out: dict[str, frozenset[str] | None] = {}
        for cam, ext in inputs.items():
            groups = ext.known_groups()
            out[cam] = None if groups is None else frozenset(groups)
        return out

    def apply(
        self,
        message: PhaseMessage,
        camera_id: str | None = None,
        transport: str = "relay",
        received_ms: int | None = None,
    ) -> str:
        """Route a message to its camera (:func:`route_phase`) and record it there, uncounted
        (a message already counted where it came in: a cluster worker's); returns the camera.

        Raises:
            PhaseRejectedError: no such camera or group, or a group on several cameras unnamed.
        """
        cam = route_phase(message, camera_id, self.takers())
        target = self.get(cam)
        if target is None:  # removed meanwhile
            raise PhaseRejectedError(
                "unknown_camera", f"camera: no camera {cam!r} takes external phases here"
            )
        target.apply(message, transport, received_ms)
        return cam

    def _deliver(
        self, message: PhaseMessage, camera_id: str | None, transport: str, at: int
    ) -> str:
        return self.apply(message, camera_id, transport, at)

    def status(self, camera_id: str, now: int | None = None) -> list[GroupPhase] | None:
        """What the camera believes of each external group; None when it takes none here."""
        ext = self.get(camera_id)
        return None if ext is None else ext.status(now)


class PhaseRouter(Protocol):
    """Takes phase messages for cameras by id: a process's :class:`PhaseHub`, or a cluster
    (which forwards each to the worker that holds the camera's lease)."""

    counts: PhaseCounts

    def takes(self, camera_id: str) -> bool: ...

    def receive(self, message: PhaseMessage, transport: str, camera_id: str | None = None) -> str:
        """Raises: PhaseRejectedError: refused (an unknown camera or group, a group on several
        cameras unnamed, an impossible ``wall_ms``)."""
        ...

    def status(self, camera_id: str, now: int | None = None) -> list[GroupPhase] | None: ...

    def receive_datagram(self, data: bytes, peer: object, transport: str = "udp") -> str | None: ...


class DatagramSink(Protocol):
    """Takes raw phase datagrams (a :class:`PhaseIntake`, or a cluster handle)."""

    def receive_datagram(self, data: bytes, peer: object, transport: str = "udp") -> str | None: ...


class _Direct(PhaseIntake):
    """An intake in front of one input (no routing)."""

    def __init__(self, target: ExternalPhaseInput) -> None:
        super().__init__()
        self._target = target

    def _deliver(
        self, message: PhaseMessage, camera_id: str | None, transport: str, at: int
    ) -> str:
        self._target.apply(message)
        return camera_id or message.camera or ""


class PhaseRelay(PhaseIntake):
    """Forwards phase messages to the process that runs their camera (a node with worker
    processes: the parent listens on the configured port, each worker on a loopback port).

    ``routes``: camera id → the loopback UDP port of its worker; ``groups``: camera id → its
    external signal groups (routing a message without ``camera``, :func:`route_phase`; a camera
    not listed takes any group). The camera is filled in before the message is forwarded.
    """

    def __init__(
        self, routes: dict[str, int], groups: Mapping[str, Collection[str]] | None = None
    ) -> None:
        super().__init__()
        self.routes = dict(routes)
        self.groups = {c: frozenset(g) for c, g in (groups or {}).items()}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def takes(self, camera_id: str) -> bool:
        return camera_id in self.routes

    def takers(self) -> dict[str, frozenset[str] | None]:
        return {c: self.groups.get(c) for c in self.routes}

    def _deliver(
        self, message: PhaseMessage, camera_id: str | None, transport: str, at: int
    ) -> str:
        cam = route_phase(message, camera_id, self.takers())
        if message.wall_ms is None and message.pts is None:  # the arrival here, not at the worker
            message = message.model_copy(update={"wall_ms": at})
        data = message.model_copy(update={"camera": cam}).model_dump_json().encode()
        self._sock.sendto(data, ("127.0.0.1", self.routes[cam]))
        return cam

    def apply(self, message: PhaseMessage) -> str:
        """Forward one message, uncounted. Raises: PhaseRejectedError."""
        return self._deliver(message, None, "relay", now_ms())

    def close(self) -> None:
        self._sock.close()


class UdpPhaseListener:
    """Receives :class:`PhaseMessage` datagrams on UDP and gives them to an intake (a
    :class:`PhaseHub`, :class:`PhaseRelay` or cluster handle; a bare input is wrapped)."""

    def __init__(
        self, target: DatagramSink | ExternalPhaseInput, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.intake: DatagramSink = (
            _Direct(target) if isinstance(target, ExternalPhaseInput) else target
        )
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as e:
            self._sock.close()
            raise ConfigError(f"cannot listen for phase messages on {host}:{port}: {e}") from e
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="phase-udp", daemon=True)
        self.accepted = 0
        self.rejected = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> UdpPhaseListener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self._handle(data, peer)

    def _handle(self, data: bytes, peer: object) -> None:
        if self.intake.receive_datagram(data, peer) is None:
            self.rejected += 1
        else:
            self.accepted += 1
