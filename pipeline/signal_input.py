"""External signal-phase input: the phase of a signal group told by the signal controller.

Many e-police installations read the phase from a detector wired to the lamp cables or from the
signal controller instead of from the video. Two ways in, one store:

* :meth:`ExternalPhaseInput.set_phase` — thread-safe; the REST API calls it.
* :class:`UdpPhaseListener` — one UDP datagram per phase change (or periodic status), UTF-8 JSON::

      {"group": "main", "color": "red", "wall_ms": 1664098923456}
      {"group": "main", "color": "green", "pts": 42.5}

  ``group``: signal-group id from the calibration; ``color``: red | amber | green | off | unknown;
  at most one of ``wall_ms`` (UTC epoch ms when the lamp changed) and ``pts`` (stream
  presentation time, seconds). Neither: the receiving host's clock at arrival. Repeating the
  current colour (periodic status) keeps the original start time. Bad datagrams are counted in
  :attr:`UdpPhaseListener.rejected` and logged, never raised.

:class:`pipeline.signal.SignalBoard` asks :meth:`ExternalPhaseInput.state_at` once per frame and
turns the answer into a :class:`sharpeyes.pipeline.types.SignalState` with ``source="external"``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.types import LampColor

log = logging.getLogger(__name__)

_MAX_MESSAGES = 256


class PhaseMessage(BaseModel):
    """One external phase message (the UDP JSON body and the REST body)."""

    model_config = ConfigDict(extra="forbid")

    camera: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Camera id; required when the receiving process runs more than one camera "
        "with external signal groups.",
    )
    group: str = Field(min_length=1, max_length=64, description="Signal-group id.")
    color: LampColor = Field(description="red | amber | green | off | unknown.")
    wall_ms: int | None = Field(None, ge=0, description="UTC epoch ms when the lamp changed.")
    pts: float | None = Field(None, ge=0.0, description="Stream time (s) when the lamp changed.")

    @model_validator(mode="after")
    def _one_time(self) -> PhaseMessage:
        if self.wall_ms is not None and self.pts is not None:
            raise ValueError("give at most one of wall_ms and pts")
        return self


@dataclass(frozen=True, slots=True)
class _Change:
    color: LampColor
    at_pts: float | None
    wall_ms: int | None

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


class ExternalPhaseInput:
    """Thread-safe store of phase messages per signal group."""

    def __init__(self, groups: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._groups = set(groups) if groups is not None else None
        self._messages: dict[str, deque[_Change]] = {}

    def set_phase(
        self,
        group: str,
        color: LampColor | str,
        at_pts: float | None = None,
        wall_ms: int | None = None,
    ) -> None:
        """Record that ``group`` shows ``color`` from ``at_pts`` (stream s) or ``wall_ms``.

        Without either, the time is this host's clock now.

        Raises:
            ConfigError: unknown group or colour, or both times given.
        """
        if self._groups is not None and group not in self._groups:
            raise ConfigError(f"group: unknown signal group {group!r}")
        try:
            c = LampColor(color)
        except ValueError as e:
            raise ConfigError(f"color: {color!r} is not one of red/amber/green/off/unknown") from e
        if at_pts is not None and wall_ms is not None:
            raise ConfigError("give at most one of at_pts and wall_ms")
        if at_pts is None and wall_ms is None:
            wall_ms = int(time.time() * 1000)
        with self._lock:
            q = self._messages.setdefault(group, deque(maxlen=_MAX_MESSAGES))
            q.append(_Change(c, at_pts, wall_ms))

    def apply(self, message: PhaseMessage) -> None:
        """Record a parsed :class:`PhaseMessage`."""
        self.set_phase(message.group, message.color, message.pts, message.wall_ms)

    def known_groups(self) -> set[str] | None:
        """The groups this input accepts (None: any)."""
        return None if self._groups is None else set(self._groups)

    def adopt(self, other: ExternalPhaseInput) -> None:
        """Take over another input's messages (for the groups this one accepts)."""
        with other._lock:
            items = {g: list(q) for g, q in other._messages.items()}
        with self._lock:
            for g, msgs in items.items():
                if self._groups is None or g in self._groups:
                    self._messages[g] = deque(msgs, maxlen=_MAX_MESSAGES)

    def groups(self) -> set[str]:
        with self._lock:
            return set(self._messages)

    def state_at(self, group: str, pts: float, wall_ms: int) -> ExternalPhase | None:
        """The phase in force at frame time (``pts``, ``wall_ms``); None when never told."""
        with self._lock:
            msgs = list(self._messages.get(group, ()))
        timed = sorted(
            ((m.pts_for(pts, wall_ms), i, m.color) for i, m in enumerate(msgs)),
            key=lambda x: (x[0], x[1]),
        )
        past = [(t, c) for t, _, c in timed if t <= pts + 1e-6]
        if not past:
            return None
        heard, color = past[-1]
        since = heard
        for t, c in reversed(past):
            if c is not color:
                break
            since = t
        return ExternalPhase(color=color, since_pts=since, heard_pts=heard)


class PhaseHub:
    """The external phase inputs of every camera of one process, by camera id.

    The composition root asks :meth:`input_for` when it builds a camera whose calibration has
    external signal groups; the REST API and :class:`UdpPhaseListener` deliver messages with
    :meth:`apply`. An input outlives a camera restart, so phases told before are not lost.
    """

    def __init__(self) -> None:
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

    def apply(self, message: PhaseMessage, camera_id: str | None = None) -> None:
        """Route a message to its camera (``camera_id`` or the message's ``camera``).

        Raises:
            ConfigError: no such camera, or no camera named while several take phases.
        """
        cam = camera_id or message.camera
        with self._lock:
            if cam is None:
                if len(self._inputs) != 1:
                    raise ConfigError(
                        "camera: name the camera (this process takes phases for "
                        f"{len(self._inputs)} cameras)"
                    )
                target = next(iter(self._inputs.values()))
            else:
                found = self._inputs.get(cam)
                if found is None:
                    raise ConfigError(f"camera: no camera {cam!r} takes external phases here")
                target = found
        target.apply(message)


class PhaseRouter(Protocol):
    """Takes phase messages for cameras by id: a process's :class:`PhaseHub`, or a cluster
    (which forwards each to the worker that holds the camera's lease)."""

    def takes(self, camera_id: str) -> bool: ...

    def apply(self, message: PhaseMessage, camera_id: str | None = None) -> None:
        """Raises: ConfigError: an unknown camera or group, or no camera named while several
        take phases."""
        ...


class PhaseTarget(Protocol):
    """Where a parsed phase message goes (an input, a hub, or a relay to other processes)."""

    def apply(self, message: PhaseMessage) -> None: ...


class PhaseRelay:
    """Forwards phase messages to the process that runs their camera (a node with worker
    processes: the parent listens on the configured port, each worker on a loopback port).

    ``routes``: camera id → the loopback UDP port of its worker. A message without ``camera``
    is accepted only when one camera takes external phases; the camera is then filled in.
    """

    def __init__(self, routes: dict[str, int]) -> None:
        self.routes = dict(routes)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def apply(self, message: PhaseMessage) -> None:
        """Raises: ConfigError: no camera named while several take phases, or an unknown one."""
        cam = message.camera
        if cam is None:
            if len(self.routes) != 1:
                raise ConfigError(
                    f"camera: name the camera (this node takes phases for {len(self.routes)})"
                )
            cam = next(iter(self.routes))
        port = self.routes.get(cam)
        if port is None:
            raise ConfigError(f"camera: no camera {cam!r} takes external phases here")
        data = message.model_copy(update={"camera": cam}).model_dump_json().encode()
        self._sock.sendto(data, ("127.0.0.1", port))

    def close(self) -> None:
        self._sock.close()


class UdpPhaseListener:
    """Receives :class:`PhaseMessage` datagrams on UDP and applies them to a target."""

    def __init__(self, target: PhaseTarget, host: str = "127.0.0.1", port: int = 0) -> None:
        self._target = target
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
        try:
            self._target.apply(PhaseMessage.model_validate_json(data))
        except (ValidationError, ConfigError) as e:
            self.rejected += 1
            log.warning("rejected phase message from %s: %s", peer, str(e).splitlines()[0])
            return
        self.accepted += 1
