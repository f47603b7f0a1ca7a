"""Memory of intersection cameras: peak RSS with K red-light cameras on one node.

    python -m benchmarks.intersection_memory [--ks 1,3] [--seconds 40] [--clip NAME]

Runs the node runtime with K copies of the hanoi_b intersection camera (calibration from
``sample_videos/intersection_hanoi_b.yaml``) played as live cameras, samples the process RSS
and the frames each camera holds for evidence, and reports RSS per added intersection camera.
Works on the tree before the "house" restructuring too (bare ``api.*`` imports), so before and
after can be measured with the same script (``PYTHONPATH=<old checkout>``).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _runtime_classes(old: bool = False) -> tuple[Any, Any, Any]:
    """NodeRuntime, ServiceConfig, load_camera_config — from this tree or the one before the
    namespace (module names as strings: the old tree's bare names are banned as imports)."""
    import importlib

    layouts = (
        ("sharpeyes.api.node.runtime", "sharpeyes.api.node.settings", "sharpeyes.pipeline.config"),
        ("api.runtime", "api.settings", "pipeline.config"),
    )
    for runtime, settings, config in layouts[1:] if old else layouts:
        try:
            return (
                importlib.import_module(runtime).NodeRuntime,
                importlib.import_module(settings).ServiceConfig,
                importlib.import_module(config).load_camera_config,
            )
        except ImportError:
            continue
    raise ImportError("no sharpeyes runtime found")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def run_k(k: int, clip: Path, seconds: float, calib: Path, old: bool) -> dict[str, Any]:
    node_runtime, service_config, load_camera_config = _runtime_classes(old)
    base = load_camera_config(calib)
    cams = []
    for i in range(k):
        c = base.model_copy(update={"id": f"x{i}", "url": str(clip), "live": True})
        cams.append(c.model_dump(mode="json"))
    peak, held = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        cfg = service_config.model_validate(
            {
                "cameras": cams,
                "detector": base.detector.model_dump(mode="json"),
                "store": {"url": str(Path(tmp) / "e.db"), "files_root": tmp},
                "loop_files": True,
            }
        )
        rt = node_runtime(cfg).start()
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak, held
            while not stop.wait(0.5):
                peak = max(peak, rss_mb())
                for r in rt.runners().values():
                    h = getattr(r, "history", None)
                    n = len(h._frames) if h is not None else 0
                    held = max(held, n)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            time.sleep(seconds)
        finally:
            stop.set()
            t.join()
            rt.stop()
    return {"k": k, "peak_rss_mb": round(peak, 1), "max_frames_held_per_camera": held}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ks", default="1,3")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--clip", default="intersection_hanoi_b_640x480.mp4")
    ap.add_argument("--old", action="store_true", help="the tree before the namespace")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/out/intersection_memory.json")
    args = ap.parse_args()
    clip = REPO.parent / "shared" / "sample_videos" / args.clip
    calib = REPO / "sample_videos" / "intersection_hanoi_b.yaml"
    rows = [run_k(int(k), clip, args.seconds, calib, args.old) for k in args.ks.split(",")]
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        per = (b["peak_rss_mb"] - a["peak_rss_mb"]) / max(1, b["k"] - a["k"])
        summary = {"rss_mb_per_intersection_camera": round(per, 1)}
    else:
        summary = {}
    print(f"{'K':>3} {'peak RSS MB':>12} {'frames held/camera':>19}")
    for r in rows:
        print(f"{r['k']:>3} {r['peak_rss_mb']:>12} {r['max_frames_held_per_camera']:>19}")
    print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = {
        "rows": rows,
        **summary,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
