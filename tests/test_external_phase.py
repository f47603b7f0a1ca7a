"""External signal phases reach the rules in every mode: over UDP (``phase_input.udp_port`` of
the node, ``--phase-udp`` of ``analyze``) and over REST (``POST /cameras/{id}/signal-phases``).

The rendered ``clean_violation`` scene with its main signal head removed from the calibration
and the main group set to ``source: external``: the video cannot tell the phase, so a violation
is charged only when the phases told from outside arrive.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.pipeline.config import CameraConfig
from tests.equivalence import outcome, stamp_clip, via_analyze, wait_for
from tests.scenarios import SCENARIOS, render_scenario, scene_calibration

pytestmark = pytest.mark.integration
NAME = "clean_violation"
TOKEN = "se_0123456789ab.phase-test-admin-secret"


def external_camera(clip: Path) -> CameraConfig:
    cal = scene_calibration().model_dump(mode="json")
    cal["signal_groups"][0]["source"] = "external"
    cal["signal_heads"] = [h for h in cal["signal_heads"] if h["group"] != "main"]
    return CameraConfig.model_validate(
        {
            "id": "ext",
            "url": str(clip),
            "detector": {"model": f"scenario:{NAME}"},
            "tracker": {"min_hits": 2},
            "intersection": cal,
        }
    )


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    s = SCENARIOS[NAME]
    gt = render_scenario(NAME, tmp_path / "raw.mp4")
    out = tmp_path / "ext.mp4"
    stamp_clip(gt.path, out, s.fps)
    return out


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def phase_messages(camera: str) -> list[dict[str, object]]:
    s = SCENARIOS[NAME]
    return [
        {"camera": camera, "group": "main", "color": str(p.color), "pts": p.start_s}
        for p in s.phases
    ]


def test_without_phases_nothing_is_charged(clip: Path, tmp_path: Path) -> None:
    out = via_analyze(external_camera(clip), tmp_path / "none")
    assert out.violations == ()


def test_analyze_says_an_external_group_got_no_phase(clip: Path, tmp_path: Path) -> None:
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video

    cam = external_camera(clip)
    result = analyze_video(AnalyzeOptions(clip, out=tmp_path / "a", progress=False, camera=cam))
    assert (
        "group main (external): no phase received — its red-light rule did not run "
        "(send phases with --phase-udp)" in result.summary_lines()
    )


def test_analyze_phase_udp_says_a_timeless_phase_missed_an_old_recording(
    clip: Path, tmp_path: Path
) -> None:
    """``analyze --phase-udp`` on a file whose clock is years old (its creation_time; here
    --start-time): a phase sent without a time is dated on arrival, outside the recording —
    the summary says so instead of staying silent."""
    import threading

    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video

    cam = external_camera(clip).model_copy(update={"live": True})  # paced: messages arrive
    port = free_udp_port()

    def send() -> None:
        time.sleep(0.5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b'{"group": "main", "color": "red"}', ("127.0.0.1", port))
            sock.sendto(b'{"group": "main", "colour": "red"}', ("127.0.0.1", port))

    t = threading.Thread(target=send)
    t.start()
    result = analyze_video(
        AnalyzeOptions(
            clip,
            out=tmp_path / "a",
            progress=False,
            camera=cam,
            phase_udp=f"127.0.0.1:{port}",
            start_time_ms=1_600_000_000_000,  # 2020
        )
    )
    t.join()
    lines = result.summary_lines()
    assert (
        "phase messages: 2 received, 1 applied, 1 ignored (dated outside the recording), "
        "1 rejected (invalid 1)" in lines
    ), lines
    assert (
        "group main (external): no phase received was in force on any analysed frame — its "
        "red-light rule did not run" in lines
    ), lines
    assert outcome(tmp_path / "a" / "events.db", cam.id).violations == ()


def test_udp_phases_charge_on_the_live_node(clip: Path, tmp_path: Path) -> None:
    cam = external_camera(clip)
    port = free_udp_port()
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam.model_copy(update={"live": True}).model_dump(mode="json")],
            "detector": cam.detector.model_dump(mode="json"),
            "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
            "loop_files": False,
            "phase_input": {"udp_port": port},
        }
    )
    runtime = NodeRuntime(config).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for msg in phase_messages(cam.id):
                sock.sendto(json.dumps(msg).encode(), ("127.0.0.1", port))
        wait_for(runtime.all_finished, 90, "the camera to finish")
    finally:
        runtime.stop()
    got = outcome(tmp_path / "events.db", cam.id)
    assert len(got.violations) == 1, got


def test_udp_phases_charge_in_analyze(clip: Path, tmp_path: Path) -> None:
    """``analyze --phase-udp``: phases sent before the frames they apply to are analysed."""
    import threading

    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video

    cam = external_camera(clip).model_copy(update={"live": False})
    port = free_udp_port()

    def send() -> None:
        time.sleep(0.3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for msg in phase_messages(cam.id):
                sock.sendto(json.dumps(msg).encode(), ("127.0.0.1", port))

    # a live-paced file, so the messages arrive while the clip plays
    cam = cam.model_copy(update={"live": True})
    t = threading.Thread(target=send)
    t.start()
    analyze_video(
        AnalyzeOptions(
            clip, out=tmp_path / "a", progress=False, camera=cam, phase_udp=f"127.0.0.1:{port}"
        )
    )
    t.join()
    got = outcome(tmp_path / "a" / "events.db", cam.id)
    assert len(got.violations) == 1, got


def test_rest_phases_charge_on_the_served_node(clip: Path, tmp_path: Path) -> None:
    """``sharpeyes serve``: phases POSTed to ``/api/v1/cameras/{id}/signal-phases`` (admin) reach
    the camera's signal board through the runtime's phase hub."""
    from fastapi.testclient import TestClient

    from sharpeyes.api.commands.serve import attach_runtime, build_service
    from sharpeyes.api.rest.app import create_app
    from sharpeyes.api.rest.auth import Role
    from sharpeyes.api.rest.context import ApiSettings

    cam = external_camera(clip)
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam.model_copy(update={"live": True}).model_dump(mode="json")],
            "detector": cam.detector.model_dump(mode="json"),
            "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
            "loop_files": False,
        }
    )
    service = build_service(config)
    _, token = service.tokens.issue("controller", Role.ADMIN)
    _, viewer = service.tokens.issue("viewer", Role.VIEWER)
    runtime = NodeRuntime(config, store=service.events, feed=True).start()
    try:
        attach_runtime(service, runtime)
        with TestClient(create_app(ApiSettings(), service)) as client:
            url = f"/api/v1/cameras/{cam.id}/signal-phases"
            first = phase_messages(cam.id)[0]
            denied = client.post(url, json=first, headers={"Authorization": f"Bearer {viewer}"})
            assert denied.status_code == 403
            unknown = client.post(
                "/api/v1/cameras/nope/signal-phases",
                json=first,
                headers={"Authorization": f"Bearer {token}"},
            )
            assert unknown.status_code == 404
            for msg in phase_messages(cam.id):
                r = client.post(url, json=msg, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 204, r.text
            # the installer reads back what the camera took (viewer role), and /metrics counts it
            r = client.get(url, headers={"Authorization": f"Bearer {viewer}"})
            assert r.status_code == 200, r.text
            (group,) = r.json()["groups"]
            assert group["group"] == "main" and group["last_message"]["source"] == "rest"
            assert group["messages"] == len(phase_messages(cam.id))
            applied = len(phase_messages(cam.id))
            metrics = client.get("/metrics").text
            assert (
                f'sharpeyes_phase_messages_applied_total{{transport="rest"}} {applied}.0' in metrics
            )
        wait_for(runtime.all_finished, 90, "the camera to finish")
    finally:
        runtime.stop()
    got = outcome(tmp_path / "events.db", cam.id)
    assert len(got.violations) == 1, got


def test_worker_processes_get_their_cameras_phases_through_the_parent(tmp_path: Path) -> None:
    """``run --workers N``: the parent listens on the configured port and relays each message to
    the worker that runs its camera (each worker's runtime listens on its own loopback port)."""
    from sharpeyes.api.node.plan import phase_routes, plan_workers
    from sharpeyes.pipeline.signal_input import PhaseHub, PhaseRelay, UdpPhaseListener

    base = external_camera(tmp_path / "x.mp4")
    cams = [base.model_copy(update={"id": f"ext{i}"}).model_dump(mode="json") for i in range(3)]
    port = free_udp_port()
    config = ServiceConfig.model_validate({"cameras": cams, "phase_input": {"udp_port": port}})
    plans = plan_workers(config, 2, 0)
    routes = phase_routes(plans)
    assert set(routes) == {"ext0", "ext1", "ext2"}
    worker_ports = {p.config.phase_input.udp_port for p in plans}
    assert len(worker_ports) == 2 and port not in worker_ports  # one loopback port per worker

    hubs, listeners = [], []
    for plan in plans:  # what each worker's runtime does with its config
        hub = PhaseHub()
        for cam in plan.config.cameras:
            hub.input_for(cam.id, ["main"])
        p = plan.config.phase_input
        assert p.udp_port is not None
        listeners.append(UdpPhaseListener(hub, p.udp_host, p.udp_port).start())
        hubs.append(hub)
    relay = PhaseRelay(routes)
    parent = UdpPhaseListener(relay, "127.0.0.1", port).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(3):
                msg = {"camera": f"ext{i}", "group": "main", "color": "red", "pts": 1.0 + i}
                sock.sendto(json.dumps(msg).encode(), ("127.0.0.1", port))
            sock.sendto(b'{"group": "main", "color": "red"}', ("127.0.0.1", port))  # no camera

        def delivered() -> bool:
            got = [h.get(f"ext{i}") for h in hubs for i in range(3)]
            return sum(1 for g in got if g is not None and g.state_at("main", 9.0, 0)) == 3

        wait_for(delivered, 10, "each camera's phase in its own worker")
        wait_for(lambda: parent.rejected == 1, 10, "the camera-less message refused")
        for hub in hubs:  # nobody got another worker's camera
            assert set(hub.cameras()) <= {"ext0", "ext1", "ext2"}
        owner = {cam.id: i for i, plan in enumerate(plans) for cam in plan.config.cameras}
        for i in range(3):
            phase = hubs[owner[f"ext{i}"]].get(f"ext{i}")
            assert phase is not None
            state = phase.state_at("main", 9.0, 0)
            assert state is not None and state.since_pts == 1.0 + i
    finally:
        parent.close()
        relay.close()
        for listener in listeners:
            listener.close()


def _bound(port: int) -> bool:
    """Whether something listens on UDP ``port`` (we cannot bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_udp_and_rest_phases_reach_the_cluster(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` with ``cluster:``: the node's UDP listener and REST route hand each phase to the
    coordinator, which forwards it to the worker holding the camera's lease — and the camera,
    whose video cannot tell the phase, charges the runner."""
    import threading

    import httpx

    from sharpeyes.api.commands.run import run_cluster
    from sharpeyes.api.commands.serve import DEMO_TOKEN_ENV
    from tests._api_fixtures import free_port

    monkeypatch.setenv(DEMO_TOKEN_ENV, TOKEN)
    cam = external_camera(clip).model_copy(update={"live": True})
    udp, http = free_udp_port(), free_port()
    db = tmp_path / "cluster.db"
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam.model_dump(mode="json")],
            "detector": cam.detector.model_dump(mode="json"),
            "store": {"url": str(tmp_path / "node.db"), "files_root": str(tmp_path)},
            "loop_files": False,
            "phase_input": {"udp_port": udp},
            "cluster": {"db_url": str(db), "files_root": str(tmp_path), "tick_s": 0.05},
        }
    )
    stop = threading.Event()
    node = threading.Thread(
        target=run_cluster, args=(config, stop), kwargs={"api": ("127.0.0.1", http)}, daemon=True
    )
    node.start()
    try:
        wait_for(lambda: _bound(udp), 30, "the cluster's UDP phase listener")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for msg in phase_messages(cam.id):
                sock.sendto(json.dumps(msg).encode(), ("127.0.0.1", udp))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        base = f"http://127.0.0.1:{http}/api/v1/cameras"

        def served() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(served, 60, "the API of the cluster node")
        first = phase_messages(cam.id)[0]
        r = httpx.post(f"{base}/{cam.id}/signal-phases", json=first, headers=auth, timeout=10)
        assert r.status_code == 204, r.text  # the same phase again: accepted by the coordinator
        bad = dict(first, group="side")
        r = httpx.post(f"{base}/{cam.id}/signal-phases", json=bad, headers=auth, timeout=10)
        assert r.status_code == 400 and "external signal group" in r.text
        r = httpx.post(f"{base}/nope/signal-phases", json=first, headers=auth, timeout=10)
        assert r.status_code == 404

        def charged() -> bool:
            return db.exists() and bool(outcome(db, cam.id).violations)

        wait_for(charged, 90, "the violation charged in the cluster")
    finally:
        stop.set()
        node.join(timeout=30)
    got = outcome(db, cam.id)
    assert len(got.violations) == 1, got
