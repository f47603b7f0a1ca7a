"""RTSP soak under server restarts (issue 18): does a node leak while its cameras reconnect?

    .venv/bin/python -m benchmarks.soak_rtsp [--minutes 30] [--cameras 3] [--restart-every 60]
        [--detector yolov5n|none] [--mount pattern:640x360:15] [--json benchmarks/out/soak.json]

The node runtime (``NodeRuntime``, SQLite store) analyses ``--cameras`` live cameras from the
real GStreamer RTSP server of the tests (``tests/rtsp_server.py``, Debian's ``/usr/bin/python3``
with the GStreamer packages of ``/work/shared/docs/TESTING.md``). Every ``--restart-every``
seconds the server is killed and started again on the same port (0: never, the baseline).
Every ``--sample-every`` seconds it records the process RSS, thread count (``/proc/self/task``)
and open file handles (``/proc/self/fd``). After ``--warmup`` seconds it reports the RSS slope
(least squares, MiB/min), the first/last/max thread and handle counts, and per camera the
reconnects, frames analysed and final state. Prints a table and writes JSON.

The issue's 30-minute soak measured +0.65 MiB/min under restarts and 0.07 without. Run it on a
quiet machine; ``--detector none`` leaves the model out (stream layer and runtime only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.pipeline.protocols import Detector, DetectorInfo
from sharpeyes.pipeline.types import Detections, ImageBGR
from tests._rtsp_fixtures import RtspServer, gstreamer_missing

RTSP = {
    "open_timeout_s": 2.0,
    "read_timeout_s": 2.0,
    "stall_timeout_s": 2.0,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 1.0,
    "restart_budget": 1000,
}


@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float  # since start
    rss_mib: float
    threads: int
    fds: int


class _NoObjects:
    """``--detector none``: the stream layer and runtime without a model."""

    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo("none", (32, 32), ("cpu",), 1, None)

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        return [Detections.empty() for _ in images]


def sample(t0: float) -> Sample:
    rss = 0.0
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
    return Sample(
        t_s=round(time.monotonic() - t0, 1),
        rss_mib=round(rss, 2),
        threads=len(os.listdir("/proc/self/task")),
        fds=len(os.listdir("/proc/self/fd")),
    )


def slope_per_min(samples: Sequence[Sample]) -> float:
    """Least-squares slope of RSS over time, MiB per minute (0 with fewer than 2 samples)."""
    if len(samples) < 2:
        return 0.0
    xs = [s.t_s / 60.0 for s in samples]
    ys = [s.rss_mib for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return cov / var if var else 0.0


def make_detector(name: str) -> Detector:
    if name == "none":
        return _NoObjects()
    from sharpeyes.models.factory import create_detector

    return create_detector(name, providers="cpu", input_size=(384, 640), download=False)


def run(args: argparse.Namespace) -> dict[str, Any]:
    missing = gstreamer_missing()
    if missing is not None:
        raise SystemExit(f"soak_rtsp: {missing}")
    names = [f"cam{i}" for i in range(args.cameras)]
    server = RtspServer(dict.fromkeys(names, args.mount)).start()
    out = Path(tempfile.mkdtemp(prefix="soak_rtsp_"))
    config = ServiceConfig.model_validate(
        {
            "cameras": [{"id": n, "url": server.url(n), "analysis_fps": args.fps} for n in names],
            "store": {"url": str(out / "events.db"), "files_root": str(out)},
            "rtsp": RTSP,
        }
    )
    runtime = NodeRuntime(config, detector=make_detector(args.detector)).start()
    t0 = time.monotonic()
    end = t0 + args.minutes * 60.0
    next_restart = t0 + args.restart_every if args.restart_every > 0 else float("inf")
    samples: list[Sample] = []
    restarts = 0
    try:
        while (now := time.monotonic()) < end:
            if now >= next_restart:
                server.kill()
                time.sleep(1.0)
                server.start()
                restarts += 1
                next_restart += args.restart_every
            samples.append(sample(t0))
            time.sleep(min(args.sample_every, max(end - time.monotonic(), 0.0)))
        samples.append(sample(t0))
        health = runtime.health()
    finally:
        runtime.stop()
        server.kill()
    steady = [s for s in samples if s.t_s >= args.warmup] or samples
    return {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "restarts": restarts,
        "rss_slope_mib_per_min": round(slope_per_min(steady), 3),
        "rss_mib": {"first": steady[0].rss_mib, "last": steady[-1].rss_mib},
        "threads": {"first": steady[0].threads, "last": steady[-1].threads},
        "fds": {"first": steady[0].fds, "last": steady[-1].fds},
        "max": {
            "rss_mib": max(s.rss_mib for s in steady),
            "threads": max(s.threads for s in steady),
            "fds": max(s.fds for s in steady),
        },
        "cameras": {
            n: {
                "state": h.state,
                "reconnects": h.reconnects,
                "frames_analysed": h.frames_analysed,
                "restarts": h.restarts,
            }
            for n, h in health.items()
        },
        "samples": [asdict(s) for s in samples],
    }


def table(report: dict[str, Any]) -> str:
    a = report["args"]
    lines = [
        f"soak_rtsp: {a['cameras']} cameras, {a['minutes']:g} min, restart every "
        f"{a['restart_every']:g}s ({report['restarts']} restarts), detector {a['detector']}",
        f"{'metric':<28}{'first':>10}{'last':>10}{'max':>10}",
    ]
    for key, label in (("rss_mib", "RSS MiB"), ("threads", "threads"), ("fds", "file handles")):
        lines.append(
            f"{label:<28}{report[key]['first']:>10}{report[key]['last']:>10}"
            f"{report['max'][key]:>10}"
        )
    lines.append(f"{'RSS slope MiB/min':<28}{report['rss_slope_mib_per_min']:>10}")
    for name, cam in sorted(report["cameras"].items()):
        lines.append(
            f"{name:<10} {cam['state']:<12} reconnects {cam['reconnects']:>4}  "
            f"frames {cam['frames_analysed']:>7}  pipeline restarts {cam['restarts']}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--cameras", type=int, default=3)
    p.add_argument("--restart-every", type=float, default=60.0, help="seconds; 0: never")
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the slope")
    p.add_argument("--detector", default="yolov5n", help="a model name, or 'none'")
    p.add_argument("--fps", type=float, default=5.0, help="analysis fps per camera")
    p.add_argument("--mount", default="pattern:640x360:15", help="tests/rtsp_server.py spec")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    report = run(args)
    sys.stdout.write(table(report) + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
