"""State of the conformant test receiver: config, sessions, stored objects, fault plan."""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sharpeyes.api.viid.ids import require_device_id


class ReceiverConfig(BaseModel):
    """How ``sharpeyes viid-server`` behaves; variants of GAT1400.md §11 are switches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_id: str = Field("34020000005030000001", description="Our VIIDServerID (20 digits).")
    realm: str = Field("sharpeyes-viid", description="Digest realm announced in challenges.")
    accounts: dict[str, str] = Field(
        default_factory=lambda: {"admin": "admin"}, description="Digest username → password."
    )
    session_ttl_s: float = Field(300.0, gt=0, description="Session expiry without traffic.")
    nonce_ttl_s: float = Field(300.0, gt=0, description="Digest nonce validity.")
    validate_payloads: bool = Field(True, description="Check bodies against the MEGVII template.")
    template_path: str | None = Field(None, description="Rule template (default: shared copy).")
    status_code_type: Literal["int", "string"] = Field("int", description="StatusCode JSON type.")
    create_http_status: int = Field(200, description="HTTP status of a batch create (MEGVII 201).")
    wrong_digest_status: Literal[400, 401] = Field(401, description="Answer to a bad password.")
    duplicate_answer: Literal["ok", "error"] = Field(
        "ok", description="Known object id: StatusCode 0 'duplicate' or 4 'already exists'."
    )
    time_format: Literal["local14", "epoch_ms"] = Field(
        "local14", description="LocalTime format of GET /VIID/System/Time."
    )
    max_body_bytes: int = Field(
        64_000_000, ge=1024, description="Largest accepted request body (413 before reading)."
    )
    digest_algorithm: Literal["MD5", "SHA-256"] = Field(
        "MD5", description="Algorithm announced in challenges (answers in MD5 or SHA-256 pass)."
    )
    require_qop: bool = Field(
        True, description="Refuse Digest answers without qop=auth (no nonce count: replayable)."
    )
    test_faults: bool = Field(
        False,
        description="Serve the /_receiver/* fault-injection and inspection endpoints (tests only; "
        "`sharpeyes viid-server --test-faults`).",
    )

    @field_validator("server_id")
    @classmethod
    def _sid(cls, v: str) -> str:
        return require_device_id(v, "server_id")


class FaultMode(enum.StrEnum):
    NONE = "none"
    UNAUTHORIZED = "unauthorized"  # drop every session, answer 401 + challenge
    ERROR_500 = "error500"
    HANG = "hang"  # hold the request for delay_s (default: an hour)
    GARBAGE = "garbage"  # 200 with a body that is not JSON
    SLOW = "slow"  # wait delay_s, then answer normally
    STALE = "stale"  # 401 + a fresh challenge with stale=true; the session is kept


@dataclass
class FaultPlan:
    """A fault applied to the next ``count`` requests (-1: until cleared), Register excluded."""

    mode: FaultMode = FaultMode.NONE
    count: int = -1
    delay_s: float = 3600.0
    include_register: bool = False

    def take(self, path: str) -> FaultPlan | None:
        if self.mode is FaultMode.NONE or self.count == 0:
            return None
        if path.endswith("/System/Register") and not self.include_register:
            return None
        if self.count > 0:
            self.count -= 1
        return FaultPlan(self.mode, 1, self.delay_s)


@dataclass
class ReceivedObject:
    collection: str
    object_id: str
    device_id: str | None
    received_ms: int
    size_bytes: int


@dataclass
class ReceiverState:
    """Thread-safe counters and stores (the app runs handlers on several threads)."""

    clock: Callable[[], float] = time.time
    sessions: dict[str, float] = field(default_factory=dict)
    objects: OrderedDict[str, ReceivedObject] = field(default_factory=OrderedDict)
    notifications: OrderedDict[str, str] = field(default_factory=OrderedDict)
    registers: int = 0
    keepalives: int = 0
    requests: int = 0
    duplicates: int = 0
    rejected: int = 0
    faults: FaultPlan = field(default_factory=FaultPlan)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # scripted per-object answers for fault benchmarks: (collection, object id) → (code, text)
    # to answer instead of storing, or None to store normally
    answer_hook: Callable[[str, str], tuple[int, str] | None] | None = None

    def open_session(self, device_id: str, *, register: bool = True) -> None:
        """Start (or, with ``register=False``: refresh on a Digest-authenticated call) a session."""
        with self.lock:
            self.sessions[device_id] = self.clock()
            if register:
                self.registers += 1

    def touch(self, device_id: str | None, ttl_s: float) -> bool:
        """Refresh a live session; False when unknown or expired (it is then removed)."""
        if not device_id:
            return False
        with self.lock:
            seen = self.sessions.get(device_id)
            if seen is None:
                return False
            now = self.clock()
            if now - seen > ttl_s:
                del self.sessions[device_id]
                return False
            self.sessions[device_id] = now
            return True

    def close_session(self, device_id: str) -> None:
        with self.lock:
            self.sessions.pop(device_id, None)

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def add_object(self, obj: ReceivedObject) -> bool:
        """Store; False when the id is already known (a duplicate)."""
        with self.lock:
            if obj.object_id in self.objects:
                self.duplicates += 1
                return False
            self.objects[obj.object_id] = obj
            return True

    def set_faults(self, plan: FaultPlan) -> None:
        with self.lock:
            self.faults = plan

    def take_fault(self, path: str) -> FaultPlan | None:
        with self.lock:
            return self.faults.take(path)

    def ids(self, collection: str | None = None) -> list[str]:
        with self.lock:
            return [
                k
                for k, v in self.objects.items()
                if collection is None or v.collection == collection
            ]

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "objects": len(self.objects),
                "duplicates": self.duplicates,
                "rejected": self.rejected,
                "registers": self.registers,
                "keepalives": self.keepalives,
                "requests": self.requests,
                "sessions": len(self.sessions),
                "notifications": len(self.notifications),
            }
