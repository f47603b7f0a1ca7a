"""GA/T 1400 delivery throughput: outbox → sender → local receiver, records/s with images.

Usage: ``python -m benchmarks.viid_throughput [--records 1000] [--batch 10] [--crop-kb 30]``.
Prints a table and a JSON line, and writes the JSON with the machine to ``--out`` (default
``benchmarks/out/viid_throughput.json``). Target: ≥ 200 records/s with images on one CPU box.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks import _cli
from sharpeyes.api.store import open_store
from sharpeyes.api.viid.client import ViidClient
from sharpeyes.api.viid.config import ViidClientConfig, ViidMappingConfig
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig
from sharpeyes.api.viid.sender import OutboxSender, SenderOptions
from sharpeyes.pipeline.types import Box, Event, EventType, ObjectKind, Plate

DEVICE = "34020000001190000001"
REPO = Path(__file__).resolve().parents[1]


def _jpeg(seed: int, kb: int) -> bytes:
    side = int((kb * 1024 / 0.35) ** 0.5 / 1.7)
    img = np.random.default_rng(seed).integers(0, 255, (side, int(side * 1.7), 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.GaussianBlur(img, (3, 3), 0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(buf)


def _events(n: int, kb: int) -> list[Event]:
    crops = [_jpeg(i, kb) for i in range(8)]
    t0 = 1_704_081_600_000
    return [
        Event(
            event_id=f"bench-{i}",
            type=EventType.VEHICLE_PASS,
            stream_id="cam1",
            first_seen_ms=t0 + i * 40,
            last_seen_ms=t0 + i * 40 + 1500,
            first_pts=0.0,
            last_pts=1.5,
            kind=ObjectKind.MOTOR_VEHICLE,
            track_id=i,
            confidence=0.9,
            best_box=Box(10, 20, 300, 260, 1920, 1080),
            best_pts=0.5,
            crop_jpeg=crops[i % 8],
            plate=Plate("京A12345", "blue", 0.9),
        )
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=_cli.positive_int, default=1000)
    ap.add_argument("--batch", type=_cli.positive_int, default=10)
    ap.add_argument("--crop-kb", type=_cli.positive_int, default=30)
    ap.add_argument("--no-validate", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/out/viid_throughput.json")
    a = ap.parse_args(argv)
    machine = _cli.machine()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/b.db", Path(tmp) / "files")
        store.add_events(_events(a.records, a.crop_kb), outbox_destinations=["viid"])
        rcfg = ReceiverConfig(accounts={"u": "p"}, validate_payloads=not a.no_validate)
        with ReceiverServer(config=rcfg) as srv:
            ccfg = ViidClientConfig(
                base_url=srv.url,
                device_id=DEVICE,
                username="u",
                password="p",
                batch_max_objects=a.batch,
            )
            mcfg = ViidMappingConfig(device_ids={"cam1": DEVICE})
            with ViidClient(ccfg) as client:
                sender = OutboxSender(
                    store, client, EventMapper(mcfg), options=SenderOptions(claim_limit=100)
                )
                client.ensure_session()
                t0 = time.perf_counter()
                while sender.backlog().backlog:
                    sender.run_once()
                elapsed = time.perf_counter() - t0
            received = len(srv.state.ids())
    rate = a.records / elapsed
    result = {
        "records": a.records,
        "received": received,
        "batch": a.batch,
        "crop_kb": a.crop_kb,
        "validate": not a.no_validate,
        "seconds": round(elapsed, 3),
        "records_per_s": round(rate, 1),
        "machine": machine,
    }
    print(f"machine: {_cli.machine_line(machine)}")
    print(f"{'records':>8} {'batch':>6} {'crop_kB':>8} {'validate':>9} {'seconds':>8} {'rec/s':>8}")
    print(
        f"{a.records:>8} {a.batch:>6} {a.crop_kb:>8} {not a.no_validate!s:>9} "
        f"{elapsed:>8.2f} {rate:>8.1f}"
    )
    print(json.dumps(result))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"JSON: {a.out}")


if __name__ == "__main__":
    main()
