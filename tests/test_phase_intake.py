"""The one path of an external phase message (REST and UDP, every entry point): routing by
group, impossible ``wall_ms`` refused with the likely mistake named, every refusal counted and
(UDP) logged with its fields, the read-back route and the Prometheus counters.

REST goes through the real app (``TestClient`` of ``create_app`` over the service ``serve``
builds, with the phase hub ``serve`` plugs in); UDP through a real socket. The same rules are
checked on the worker-process relay (``run --workers``) and the cluster coordinator.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.context import ApiSettings
from sharpeyes.api.rest.service import StoreService, build_store_service
from sharpeyes.pipeline.signal_input import PhaseHub, PhaseRelay, UdpPhaseListener
from sharpeyes.pipeline.types import LampColor

# two cameras taking external phases: "main" on both, "sw_through" and "side" on one each
GROUPS = {"north": ["main", "sw_through"], "south": ["main", "side"]}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def hub_with_cameras(**kwargs: bool) -> PhaseHub:
    hub = PhaseHub(**kwargs)
    for cam, groups in GROUPS.items():
        hub.input_for(cam, groups)
    return hub


def wait_until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


@pytest.fixture
def udp_hub() -> Iterator[tuple[PhaseHub, UdpPhaseListener, socket.socket]]:
    hub = hub_with_cameras()
    listener = UdpPhaseListener(hub, "127.0.0.1", 0).start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        yield hub, listener, tx
    finally:
        tx.close()
        listener.close()


def send(
    listener: UdpPhaseListener, tx: socket.socket, *messages: dict[str, object] | bytes
) -> None:
    before = listener.accepted + listener.rejected
    for m in messages:
        tx.sendto(m if isinstance(m, bytes) else json.dumps(m).encode(), listener.address)
    wait_until(lambda: listener.accepted + listener.rejected >= before + len(messages))


def color_of(hub: PhaseHub, cam: str, group: str) -> LampColor | None:
    ext = hub.get(cam)
    assert ext is not None
    st = ext.state_at(group, 0.0, now_ms() + 1000)
    return None if st is None else st.color


# -- 1. routing ---------------------------------------------------------------------------------


def test_udp_without_camera_goes_to_the_one_camera_with_the_group(
    udp_hub: tuple[PhaseHub, UdpPhaseListener, socket.socket],
) -> None:
    hub, listener, tx = udp_hub
    send(listener, tx, {"group": "sw_through", "color": "red"}, {"group": "side", "color": "green"})
    assert (listener.accepted, listener.rejected) == (2, 0)
    assert color_of(hub, "north", "sw_through") is LampColor.RED
    assert color_of(hub, "south", "side") is LampColor.GREEN
    assert color_of(hub, "south", "sw_through") is None


def test_a_group_on_two_cameras_must_name_the_camera_and_the_refusal_is_counted(
    udp_hub: tuple[PhaseHub, UdpPhaseListener, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    hub, listener, tx = udp_hub
    with caplog.at_level(logging.WARNING):
        send(listener, tx, {"group": "main", "color": "red"}, {"group": "nope", "color": "red"})
    assert listener.rejected == 2
    assert "group 'main' is on 2 cameras (north, south): name the camera" in caplog.text
    assert "no camera here has the external signal group 'nope'" in caplog.text
    send(listener, tx, {"camera": "south", "group": "main", "color": "red"})
    assert color_of(hub, "south", "main") is LampColor.RED
    assert color_of(hub, "north", "main") is None
    counts = hub.counts.snapshot()
    assert counts.received == {"udp": 3} and counts.applied == {"udp": 1}
    assert counts.rejected == {("udp", "ambiguous_group"): 1, ("udp", "unknown_group"): 1}


def test_worker_process_relay_routes_by_group_too() -> None:
    """``run --workers``: the parent's relay applies the same rule before forwarding."""
    worker = hub_with_cameras()
    inner = UdpPhaseListener(worker, "127.0.0.1", 0).start()
    relay = PhaseRelay({"north": inner.address[1], "south": inner.address[1]}, GROUPS)
    parent = UdpPhaseListener(relay, "127.0.0.1", 0).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            send(
                parent,
                tx,
                {"group": "sw_through", "color": "red"},
                {"group": "main", "color": "red"},
            )
        wait_until(lambda: inner.accepted == 1)
    finally:
        parent.close()
        inner.close()
        relay.close()
    assert (parent.accepted, parent.rejected) == (1, 1)
    assert color_of(worker, "north", "sw_through") is LampColor.RED
    assert relay.counts.snapshot().rejected == {("udp", "ambiguous_group"): 1}


def test_cluster_coordinator_routes_by_group_too(tmp_path: Path) -> None:
    from sharpeyes.api.cluster.coordinator import Coordinator
    from sharpeyes.api.cluster.leases import CameraSpec, LeaseStore
    from sharpeyes.api.store.db import open_database
    from sharpeyes.pipeline.signal_input import PhaseMessage, PhaseRejectedError
    from tests.test_cluster import FakeBackend

    leases = LeaseStore(open_database(f"sqlite:///{tmp_path / 'c.db'}"))
    coord = Coordinator(leases, FakeBackend({"n1": 1}, capacity=4.0))
    for cam, groups in GROUPS.items():
        config = {
            "id": cam,
            "url": "rtsp://192.0.2.1/live",
            "intersection": {"signal_groups": [{"id": g, "source": "external"} for g in groups]},
        }
        coord.add_camera(CameraSpec(cam, kind="pipeline", config=json.dumps(config)))
    assert coord.tell_phase(PhaseMessage(group="sw_through", color="red")) == "north"
    with pytest.raises(PhaseRejectedError, match="on 2 cameras") as e:
        coord.tell_phase(PhaseMessage(group="main", color="red"))
    assert e.value.reason == "ambiguous_group"
    status = coord.phase_status("north")
    assert status is not None
    by_group = {g.group: g for g in status}
    assert by_group["sw_through"].color is LampColor.RED
    assert by_group["main"].last is None and by_group["main"].color is LampColor.UNKNOWN
    leases.db.close()


def test_ray_cluster_handle_carries_the_coordinators_refusal_and_reason(tmp_path: Path) -> None:
    """The Ray driver's handle: the actor answers (camera, reason, text); a refusal comes back
    as the same PhaseRejectedError (and is counted under its reason) as in the local cluster."""
    pytest.importorskip("ray")
    from typing import Any

    from sharpeyes.api.cluster.coordinator import Coordinator
    from sharpeyes.api.cluster.leases import CameraSpec, LeaseStore
    from sharpeyes.api.cluster.ray_backend import CoordinatorActor
    from sharpeyes.api.cluster.service import ClusterSettings, RayClusterHandle
    from sharpeyes.api.store.db import open_database
    from sharpeyes.pipeline.signal_input import PhaseMessage, PhaseRejectedError
    from tests.test_cluster import FakeBackend

    leases = LeaseStore(open_database(f"sqlite:///{tmp_path / 'c.db'}"))
    body = object.__new__(CoordinatorActor)  # the actor's body, without Ray
    body.coordinator = Coordinator(leases, FakeBackend({"n1": 1}, capacity=4.0))
    for cam, groups in GROUPS.items():
        config = {
            "id": cam,
            "url": "rtsp://192.0.2.1/live",
            "intersection": {"signal_groups": [{"id": g, "source": "external"} for g in groups]},
        }
        body.coordinator.add_camera(CameraSpec(cam, kind="pipeline", config=json.dumps(config)))

    class Remote:
        def __init__(self, fn: Callable[..., Any]) -> None:
            self.remote = fn

    class Actor:
        tell_phase = Remote(body.tell_phase)
        phase_status = Remote(body.phase_status)

    handle = RayClusterHandle(ClusterSettings.model_validate({"backend": "ray"}), Actor())
    handle._get = lambda ref: ref  # type: ignore[method-assign]
    assert handle.receive(PhaseMessage(group="side", color="red"), "udp") == "south"
    with pytest.raises(PhaseRejectedError, match="on 2 cameras") as e:
        handle.receive(PhaseMessage(group="main", color="red"), "udp")
    assert e.value.reason == "ambiguous_group"
    assert handle.counts.snapshot().rejected == {("udp", "ambiguous_group"): 1}
    status = handle.status("south")
    assert status is not None and {g.group: g.color for g in status}["side"] is LampColor.RED
    leases.db.close()


# -- REST (serve) ---------------------------------------------------------------------------------


@dataclass
class Api:
    client: TestClient
    hub: PhaseHub
    service: StoreService
    admin: dict[str, str]
    viewer: dict[str, str]

    def post(self, cam: str, body: dict[str, object]) -> tuple[int, str]:
        r = self.client.post(f"/api/v1/cameras/{cam}/signal-phases", json=body, headers=self.admin)
        return r.status_code, r.text


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    service = build_store_service(
        f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files", token_key=b"pepper"
    )
    _, admin = service.tokens.issue("controller", Role.ADMIN)
    _, viewer = service.tokens.issue("installer", Role.VIEWER)
    hub = hub_with_cameras()
    service.set_phase_hub(hub)  # what serve's attach_runtime does with runtime.phases
    with TestClient(create_app(ApiSettings(), service)) as client:
        yield Api(
            client,
            hub,
            service,
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {viewer}"},
        )
    service.db.close()


# -- 3. impossible wall_ms ------------------------------------------------------------------------


def test_rest_refuses_impossible_wall_ms_naming_the_mistake(api: Api) -> None:
    now = now_ms()
    code, text = api.post("north", {"group": "main", "color": "red", "wall_ms": now // 1000})
    assert code == 400 and "looks like seconds, not milliseconds" in text
    code, text = api.post("north", {"group": "main", "color": "red", "wall_ms": now + 3_600_000})
    assert code == 400 and "ahead of this host's clock" in text
    code, text = api.post("north", {"group": "main", "color": "red", "wall_ms": 1000})
    assert code == 400 and "1970-01-01" in text and "old" in text
    code, text = api.post("north", {"group": "main", "color": "red", "wall_ms": now * 1000})
    assert code == 400 and "microseconds" in text
    assert color_of(api.hub, "north", "main") is None  # none of them applied
    code, _ = api.post("north", {"group": "main", "color": "red", "wall_ms": now - 2000})
    assert code == 204
    assert color_of(api.hub, "north", "main") is LampColor.RED
    rejected = api.hub.counts.snapshot().rejected
    assert rejected == {
        ("rest", "wall_ms_seconds"): 1,
        ("rest", "wall_ms_future"): 2,
        ("rest", "wall_ms_past"): 1,
    }


def test_udp_refuses_seconds_and_logs_why(
    udp_hub: tuple[PhaseHub, UdpPhaseListener, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    hub, listener, tx = udp_hub
    secs = int(time.time())
    with caplog.at_level(logging.WARNING):
        send(listener, tx, {"camera": "north", "group": "main", "color": "red", "wall_ms": secs})
    assert listener.rejected == 1 and color_of(hub, "north", "main") is None
    assert f"wall_ms: {secs} looks like seconds, not milliseconds" in caplog.text
    assert hub.counts.snapshot().rejected == {("udp", "wall_ms_seconds"): 1}


def test_analyze_takes_a_recordings_old_clock() -> None:
    """``analyze`` (``live=False``): a file's clock may be years old — no wall_ms check."""
    hub = hub_with_cameras(live=False)
    from sharpeyes.pipeline.signal_input import PhaseMessage

    hub.receive(PhaseMessage(camera="north", group="main", color="red", wall_ms=1000), "udp")
    assert hub.counts.snapshot().applied == {"udp": 1}


def test_rest_routes_by_group_and_counts_refusals(api: Api) -> None:
    code, text = api.post("south", {"group": "sw_through", "color": "red"})
    assert code == 400 and "not an external signal group of 'south'" in text
    code, text = api.post("south", {"camera": "north", "group": "main", "color": "red"})
    assert code == 400 and "differs from the camera in the path" in text
    code, _ = api.post("nope", {"group": "main", "color": "red"})
    assert code == 404
    code, _ = api.post("north", {"group": "sw_through", "color": "yellow"})  # alias of amber
    assert code == 204 and color_of(api.hub, "north", "sw_through") is LampColor.AMBER
    counts = api.hub.counts.snapshot()
    assert counts.received == {"rest": 4} and counts.applied == {"rest": 1}
    assert counts.rejected == {
        ("rest", "unknown_group"): 1,
        ("rest", "camera_mismatch"): 1,
        ("rest", "unknown_camera"): 1,
    }


# -- 4. read-back and metrics ---------------------------------------------------------------------


def test_read_back_what_the_camera_believes(
    api: Api, udp_hub: tuple[PhaseHub, UdpPhaseListener, socket.socket]
) -> None:
    now = now_ms()
    assert api.post("north", {"group": "main", "color": "red", "wall_ms": now - 5000})[0] == 204
    r = api.client.get("/api/v1/cameras/north/signal-phases", headers=api.viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["camera"] == "north"
    groups = {g["group"]: g for g in body["groups"]}
    assert set(groups) == {"main", "sw_through"}
    main = groups["main"]
    assert (main["color"], main["since_ms"], main["stale"]) == ("red", now - 5000, False)
    assert main["last_message"]["source"] == "rest"
    assert main["last_message"]["wall_ms"] == now - 5000
    assert main["timeout_s"] == 300.0 and main["as_of_ms"] is None and main["messages"] == 1
    quiet = groups["sw_through"]
    assert (quiet["color"], quiet["last_message"], quiet["stale"]) == ("unknown", None, False)
    missing = api.client.get("/api/v1/cameras/nope/signal-phases", headers=api.viewer)
    assert missing.status_code == 404
    assert api.client.get("/api/v1/cameras/north/signal-phases").status_code == 401

    # a UDP message to the same hub shows its source
    hub, listener, tx = udp_hub
    api.service.set_phase_hub(hub)
    send(listener, tx, {"group": "sw_through", "color": "green"})
    r = api.client.get("/api/v1/cameras/north/signal-phases", headers=api.viewer)
    got = {g["group"]: g for g in r.json()["groups"]}["sw_through"]
    assert got["color"] == "green" and got["last_message"]["source"] == "udp"


def test_metrics_count_phase_messages_by_transport_and_reason(
    api: Api, udp_hub: tuple[PhaseHub, UdpPhaseListener, socket.socket]
) -> None:
    assert api.post("north", {"group": "sw_through", "color": "red"})[0] == 204
    assert api.post("north", {"group": "main", "color": "red", "wall_ms": 1})[0] == 400
    text = api.client.get("/metrics").text
    assert 'sharpeyes_phase_messages_received_total{transport="rest"} 2.0' in text
    assert 'sharpeyes_phase_messages_applied_total{transport="rest"} 1.0' in text
    assert (
        'sharpeyes_phase_messages_rejected_total{reason="wall_ms_past",transport="rest"} 1.0'
        in text
    )


# -- 5. UDP log lines say what was wrong ----------------------------------------------------------


def test_udp_log_names_the_fields_or_says_not_json(
    udp_hub: tuple[PhaseHub, UdpPhaseListener, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    hub, listener, tx = udp_hub
    with caplog.at_level(logging.WARNING):
        send(
            listener,
            tx,
            b"not json",
            b'{"group": "main", "colour": "red"}',
            b'{"group": "main", "color": "purple", "pts": -1}',
        )
    assert listener.rejected == 3
    assert "validation error" not in caplog.text
    assert "not JSON" in caplog.text
    assert "color: Field required" in caplog.text and "colour: Extra inputs" in caplog.text
    assert "color: Input should be 'red', 'amber'" in caplog.text
    assert "pts: Input should be greater than or equal to 0" in caplog.text
    assert hub.counts.snapshot().rejected == {("udp", "not_json"): 1, ("udp", "invalid"): 2}


def test_refused_datagrams_are_logged_without_flooding(caplog: pytest.LogCaptureFixture) -> None:
    """A controller sending a bad message ten times a second writes one line, then one line a
    minute saying how many more were refused; another sender or reason is logged at once."""
    from sharpeyes.pipeline.signal_input import RefusalLog

    t = [0.0]
    refusals = RefusalLog(every_s=60.0, clock=lambda: t[0])
    with caplog.at_level(logging.WARNING):
        written = []
        for i in range(600):  # one minute at 10 Hz
            t[0] = i / 10.0
            text = f"wall_ms: {1_700_000_000 + i} looks like seconds"  # numbers vary: one kind
            written.append(refusals.warn("10.0.0.5:4000", "bad_time", text))
        assert refusals.warn("10.0.0.6:4000", "bad_time", "wall_ms: 5 looks like seconds")
        assert refusals.warn("10.0.0.5:4000", "not_json", "not JSON")
        t[0] = 60.0
        assert refusals.warn("10.0.0.5:4000", "bad_time", "wall_ms: 7 looks like seconds")
    assert sum(written) == 1 and written[0]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[-1].endswith("(599 more like it since the last line)"), lines[-1]
