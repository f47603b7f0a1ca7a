"""GA/T 1400 delivery under faults: every object ends delivered exactly once or dead-lettered.

Usage: ``python -m benchmarks.viid_faults [--records 2000] [--outage-s 60]``.

The outbox sender delivers ``--records`` vehicle records to the local receiver through a TCP
proxy while a script injects, over the whole run:

- per object (decided by the object id): StatusCode 1 "other error" twice then OK (transient),
  4 "TollgateID not exists" (permanent), 2 "device busy" forever (transient until the sender
  gives up), and objects the receiver already holds (its answer: 4 "ID already exists");
- per request: 401 mid-session, 401 ``stale=true``, HTTP 500, a hanging request (longer than the
  client timeout), connections dropped before the request reaches the receiver and after it was
  stored (answer lost), and an outage of ``--outage-s`` seconds during which every connection is
  reset.

At the end it checks, per object: delivered ⇔ stored by the receiver exactly once (or held before
the run), dead-lettered ⇔ refused with a reason, nothing pending, nothing silently lost. Prints
a table and writes ``benchmarks/out/viid_faults.json``. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from sharpeyes.api.store import EventStore, Outbox, open_store
from sharpeyes.api.viid.client import ViidClient
from sharpeyes.api.viid.config import ViidClientConfig, ViidMappingConfig
from sharpeyes.api.viid.dead_letters import list_dead_letters
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import (
    FaultMode,
    FaultPlan,
    ReceivedObject,
    ReceiverConfig,
    ReceiverState,
)
from sharpeyes.api.viid.sender import OutboxSender, SenderOptions
from sharpeyes.pipeline.types import Box, Event, EventType, ObjectKind, Plate

DEVICE = "34020000001190000001"
OUT = Path(__file__).resolve().parent / "out" / "viid_faults.json"


# -- a TCP proxy that can drop connections and simulate an outage ---------------------------


class FaultProxy:
    """Forwards 127.0.0.1:port → target; drops requests on demand; resets everything in an
    outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.lock = threading.Lock()
        self.drop_before = 0  # next N requests: close before forwarding (never reaches receiver)
        self.drop_after = 0  # next N requests: forward, then close instead of answering
        self.outage = False
        self.dropped = Counter[str]()
        self._conns: set[socket.socket] = set()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(64)
        self._srv.settimeout(0.2)
        self.port = int(self._srv.getsockname()[1])
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def _close(self, *socks: socket.socket) -> None:
        for s in socks:
            with self.lock:
                self._conns.discard(s)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except OSError:
                continue
            if self.outage:
                self.dropped["outage"] += 1
                client.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                client.close()  # RST
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self._conns.update((client, upstream))
            state = {"drop_answer": False}
            threading.Thread(target=self._up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._down, args=(client, upstream, state), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, state: dict[str, bool]) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if data.startswith(b"POST /VIID/MotorVehicles"):
                    with self.lock:
                        if self.drop_before > 0:
                            self.drop_before -= 1
                            self.dropped["before_request"] += 1
                            break
                        if self.drop_after > 0:
                            self.drop_after -= 1
                            self.dropped["after_request"] += 1
                            state["drop_answer"] = True
                upstream.sendall(data)
        except OSError:
            pass
        self._close(client, upstream)

    def _down(self, client: socket.socket, upstream: socket.socket, state: dict[str, bool]) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data or state["drop_answer"]:
                    break
                client.sendall(data)
        except OSError:
            pass
        self._close(client, upstream)

    def start_outage(self) -> None:
        self.outage = True
        with self.lock:
            conns = list(self._conns)
        for s in conns:
            self._close(s)

    def end_outage(self) -> None:
        self.outage = False

    def stop(self) -> None:
        self._stop.set()
        self._srv.close()


# -- records and the per-object script --------------------------------------------------------


def _jpeg(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(buf)


def _events(n: int) -> list[Event]:
    crops = [_jpeg(i) for i in range(8)]
    t0 = 1_704_081_600_000
    return [
        Event(
            event_id=f"fault-{i}",
            type=EventType.VEHICLE_PASS,
            stream_id="cam1",
            first_seen_ms=t0 + i * 40,
            last_seen_ms=t0 + i * 40 + 1500,
            first_pts=0.0,
            last_pts=1.5,
            kind=ObjectKind.MOTOR_VEHICLE,
            class_name="car",
            track_id=i,
            confidence=0.9,
            best_box=Box(10, 20, 300, 260, 1920, 1080),
            best_pts=0.5,
            crop_jpeg=crops[i % 8],
            plate=Plate("京A12345", "blue", 0.9),
        )
        for i in range(n)
    ]


def category(object_id: str) -> str:
    h = int(hashlib.sha256(object_id.encode()).hexdigest()[:8], 16) % 1000
    if h < 30:
        return "permanent"  # 3 %: 4 "TollgateID not exists"
    if h < 80:
        return "transient"  # 5 %: 1 "other error" twice, then OK
    if h < 110:
        return "duplicate"  # 3 %: already held by the receiver
    if h < 115:
        return "busy_forever"  # 0.5 %: 2 "device busy" on every try → dead after max_attempts
    return "normal"


class Script:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers = Counter[str]()
        self.seen = Counter[str]()

    def __call__(self, _collection: str, oid: str) -> tuple[int, str] | None:
        cat = category(oid)
        with self.lock:
            self.seen[oid] += 1
            n = self.seen[oid]
            if cat == "permanent":
                self.answers["4 TollgateID not exists"] += 1
                return 4, "TollgateID not exists"
            if cat == "transient" and n <= 2:
                self.answers["1 other error"] += 1
                return 1, "other error"
            if cat == "busy_forever":
                self.answers["2 device busy"] += 1
                return 2, "device busy"
        return None


# -- the run ----------------------------------------------------------------------------------


def unfired_faults(state: ReceiverState) -> list[str]:
    """The receiver fault still armed and not (fully) taken by a request: ``MODE xN``."""
    with state.lock:
        plan = state.faults
    if plan.mode is FaultMode.NONE or plan.count <= 0:
        return []
    return [f"{plan.mode.name} x{plan.count}"]


def _request_faults(
    state: ReceiverState,
    proxy: FaultProxy,
    stop: threading.Event,
    plan: tuple[float, int],
    log: list[str],
) -> None:
    """``cycles`` rounds of request-level faults; one outage of ``outage_s`` after the first."""
    outage_s, cycles = plan
    steps: list[tuple[str, float]] = [
        ("401", 1.0),
        ("stale", 1.0),
        ("500x3", 1.0),
        ("hang", 2.0),
        ("drop_before x2", 1.0),
        ("drop_after x2", 1.0),
    ]
    cycle = 0
    while not stop.is_set() and cycle < cycles:
        for name, pause in steps:
            if stop.wait(pause):
                return
            if name in ("401", "stale", "500x3", "hang"):
                log.extend(f"not fired: {m}" for m in unfired_faults(state))  # replaced below
            if name == "401":
                state.set_faults(FaultPlan(FaultMode.UNAUTHORIZED, count=1))
            elif name == "stale":
                state.set_faults(FaultPlan(FaultMode.STALE, count=1))
            elif name == "500x3":
                state.set_faults(FaultPlan(FaultMode.ERROR_500, count=3))
            elif name == "hang":
                state.set_faults(FaultPlan(FaultMode.HANG, count=1, delay_s=2.5))
            elif name == "drop_before x2":
                with proxy.lock:
                    proxy.drop_before += 2
            else:
                with proxy.lock:
                    proxy.drop_after += 2
            log.append(name)
        cycle += 1
        if cycle == 1 and outage_s > 0:
            log.append(f"outage {outage_s:.0f}s")
            proxy.start_outage()
            if stop.wait(outage_s):
                proxy.end_outage()
                return
            proxy.end_outage()


def _expected(
    store: EventStore, sender: OutboxSender, mapper: EventMapper, n: int
) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(n):
        stored = store.get_event(f"fault-{i}")
        assert stored is not None
        obj = mapper.map(stored.event, sender.images_for(stored), stored.device_id)
        assert obj is not None
        out[stored.event.event_id] = obj.object_id
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--deadline-s", type=float, default=600.0)
    ap.add_argument("--fault-cycles", type=int, default=6, help="rounds of request faults")
    a = ap.parse_args()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/f.db", Path(tmp) / "files")
        store.add_events(_events(a.records), outbox_destinations=["viid"])
        state = ReceiverState()
        script = Script()
        state.answer_hook = script
        rcfg = ReceiverConfig(accounts={"u": "p"}, duplicate_answer="error")
        with ReceiverServer(config=rcfg, state=state) as srv:
            proxy = FaultProxy(srv.port)
            ccfg = ViidClientConfig(
                base_url=f"http://127.0.0.1:{proxy.port}",
                device_id=DEVICE,
                username="u",
                password="p",
                request_timeout_s=1.0,
                connect_timeout_s=0.5,
                register_backoff_initial_s=0.2,
                register_backoff_max_s=2.0,
                keepalive_interval_s=5.0,
                batch_max_objects=10,
            )
            mapper = EventMapper(ViidMappingConfig(device_ids={"cam1": DEVICE}))
            opts = SenderOptions(
                claim_limit=100,
                lease_ms=5_000,
                backoff_initial_s=0.2,
                backoff_max_s=2.0,
                idle_sleep_s=0.1,
                max_attempts=6,
            )
            client = ViidClient(ccfg)
            sender = OutboxSender(store, client, mapper, options=opts)
            expected = _expected(store, sender, mapper, a.records)
            cats = {oid: category(oid) for oid in expected.values()}
            preseeded = {oid for oid, c in cats.items() if c == "duplicate"}
            for oid in preseeded:
                state.add_object(ReceivedObject("MotorVehicle", oid, DEVICE, 0, 0))
            stop = threading.Event()
            fault_log: list[str] = []
            faults = threading.Thread(
                target=_request_faults,
                args=(state, proxy, stop, (a.outage_s, a.fault_cycles), fault_log),
                daemon=True,
            )
            run_stop = threading.Event()
            loop = threading.Thread(target=sender.run, args=(run_stop,), daemon=True)
            t0 = time.perf_counter()
            faults.start()
            loop.start()
            deadline = time.monotonic() + a.deadline_s
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if not faults.is_alive() and sender.backlog().backlog == 0:
                    break
            elapsed = time.perf_counter() - t0
            stop.set()
            run_stop.set()
            loop.join(timeout=10)
            faults.join(timeout=10)
            fault_log.extend(f"not fired: {m}" for m in unfired_faults(state))
            with proxy.lock:
                if proxy.drop_before:
                    fault_log.append(f"not fired: drop_before x{proxy.drop_before}")
                if proxy.drop_after:
                    fault_log.append(f"not fired: drop_after x{proxy.drop_after}")
            state.set_faults(FaultPlan())
            proxy.stop()
            client.close()
            stats = Outbox(store.db).stats("viid")
            dead = {d.event_id: d.reason for d in list_dead_letters(store.db, limit=100_000)}
            with store.db.transaction(readonly=True) as conn:
                rows = conn.fetchall(
                    "SELECT object_id, state FROM outbox WHERE destination = 'viid'"
                )
            row_state = {str(r[0]): str(r[1]) for r in rows}
            stored = set(state.ids())
            receiver = state.stats()
    # -- checks per object
    lost: list[str] = []
    wrong: list[str] = []
    outcome = Counter[str]()
    for event_id, oid in expected.items():
        st = row_state.get(event_id, "missing")
        cat = cats[oid]
        outcome[f"{cat}:{st}"] += 1
        if st == "delivered" and oid not in stored:
            lost.append(oid)  # marked delivered, never stored: silently lost
        if st == "failed" and (oid in stored or not dead.get(event_id)):
            wrong.append(oid)  # dead-lettered but stored, or without a reason
        if cat in ("permanent", "busy_forever") and st != "failed":
            wrong.append(oid)
        if cat in ("normal", "transient", "duplicate") and st != "delivered":
            wrong.append(oid)
    delivered = sum(1 for s in row_state.values() if s == "delivered")
    dead_n = sum(1 for s in row_state.values() if s == "failed")
    pending = sum(1 for s in row_state.values() if s == "pending")
    reasons = Counter(r.split(":")[0] + ": " + r.rsplit(":", 1)[-1].strip() for r in dead.values())
    result = {
        "records": a.records,
        "seconds": round(elapsed, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "outage_s": a.outage_s,
        "delivered": delivered,
        "dead_lettered": dead_n,
        "pending": pending,
        "silently_lost": len(lost),
        "misclassified": len(set(wrong)),
        "stored_by_receiver": len(stored),
        "preseeded_duplicates": len(preseeded),
        "stored_exactly_once": len(stored) == len(set(stored)),
        "categories": dict(Counter(cats.values())),
        "outcome_by_category": dict(sorted(outcome.items())),
        "dead_reasons": dict(reasons),
        "scripted_object_answers": dict(script.answers),
        "request_faults_injected": dict(Counter(f for f in fault_log if ":" not in f)),
        # armed but never met by a request (replaced by the next fault, or the run ended first)
        "request_faults_not_fired": [f.split(": ", 1)[1] for f in fault_log if ":" in f],
        "proxy_drops": dict(proxy.dropped),
        "receiver": receiver,
        "client": {
            "registers": client.stats.registers,
            "session_losses": client.stats.session_losses,
            "stale_nonces": client.stats.stale_nonces,
            "requests": client.stats.requests,
        },
        "sender": {
            "requests": sender.totals.requests,
            "duplicates_answered": sender.totals.duplicates,
            "transient_failures": sender.totals.failed,
            "dead": sender.totals.dead,
        },
        "outbox": {"delivered": stats.delivered, "dead": stats.failed, "backlog": stats.backlog},
    }
    ok = (
        delivered + dead_n == a.records
        and pending == 0
        and not lost
        and not wrong
        and delivered == len(stored)
    )
    result["ok"] = ok
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{'records':>8} {'delivered':>9} {'dead':>6} {'pending':>7} {'lost':>5} {'seconds':>8}")
    print(f"{a.records:>8} {delivered:>9} {dead_n:>6} {pending:>7} {len(lost):>5} {elapsed:>8.1f}")
    print(json.dumps(result, ensure_ascii=False))
    if result["request_faults_not_fired"]:
        print(
            "warning: request faults armed but never met by a request: "
            + ", ".join(result["request_faults_not_fired"])
            + " (more --records keep the sender busy for the whole fault script)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
