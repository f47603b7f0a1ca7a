"""Multi-stream benchmark: how many live 720p cameras one node sustains at N analysed fps each.

    python -m benchmarks.multistream [--ks 2,4,6,8] [--fps 5] [--model yolov5n]
        [--input 384x640] [--clip highway_1280x720.mp4] [--warmup 10] [--seconds 30]

For each K the node runtime (``api.node.runtime.NodeRuntime``: one detector behind the cross-camera
batcher, per-camera ByteTrack + events, SQLite store) runs K copies of the clip played as live
cameras (paced at stream speed behind a latest-frame queue, looped). After the warm-up it
measures, for ``--seconds``:

- analysed fps per camera and frames dropped because analysis fell behind (``backlog``) —
  K is *sustained* when there are no backlog drops and every camera reaches 95 % of ``--fps``;
- CPU: process CPU (cores), split by thread — decode (one decode thread per camera),
  batcher (preprocess, the ORT calling thread, NMS), camera threads (tracking, events, store),
  ONNX Runtime's own intra-op pool threads, and the rest — and median stage times;
- latency: frame capture (``Frame.wall_time_ms``) → event committed in the store, p50/p95.

Prints a table and writes JSON (``--out``). The machine may be shared: run it on a quiet box.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import _cli
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def shared_dir() -> Path:
    env = os.environ.get("SHARPEYES_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def thread_cpu_s() -> dict[int, float]:
    """CPU seconds (user + system) of every OS thread of this process, by native id."""
    out: dict[int, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def thread_groups() -> dict[int, str]:
    """Native id → group for the Python threads the node starts (others are native)."""
    groups: dict[int, str] = {}
    for t in threading.enumerate():
        if t.native_id is None:
            continue
        name = t.name
        if name == "batcher" or name.startswith("batcher-"):
            groups[t.native_id] = "batcher"
        elif name.startswith("camera-"):
            groups[t.native_id] = "camera"
        elif name in ("file-live",) or name.startswith("rtsp-"):
            groups[t.native_id] = "decode"
        else:
            groups[t.native_id] = "other"
    return groups


class CpuSampler:
    """Samples every thread's CPU time and group twice a second over a measurement window, so
    threads that start and end inside it (a looped file's decode thread) are counted too."""

    def __init__(self, period_s: float = 0.5) -> None:
        self._period_s = period_s
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._group: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _sample(self) -> None:
        groups = thread_groups()
        initial = not self._last
        for tid, cpu in thread_cpu_s().items():
            self._first.setdefault(tid, cpu if initial else 0.0)
            self._last[tid] = cpu
            if tid in groups:
                self._group[tid] = groups[tid]

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def split(self) -> dict[str, float]:
        """CPU seconds per group over the window."""
        out: dict[str, float] = {}
        for tid, cpu in self._last.items():
            group = self._group.get(tid, "native (ORT pool)")
            if group == "other" and tid == self._thread.native_id:
                continue
            out[group] = out.get(group, 0.0) + cpu - self._first.get(tid, 0.0)
        return out


def make_config(k: int, clip: Path, args: argparse.Namespace, out: Path) -> ServiceConfig:
    h, w = args.input
    cams = [
        {"id": f"cam{i}", "url": str(clip), "live": True, "analysis_fps": args.fps}
        for i in range(k)
    ]
    return ServiceConfig.model_validate(
        {
            "cameras": cams,
            "detector": {
                "model": args.model,
                "input_size": [h, w],
                "providers": "cpu",
                "intra_op_threads": args.threads,
            },
            "batch": {
                "max_batch": args.max_batch or max(1, k),
                "max_wait_ms": args.max_wait_ms,
                "workers": args.batch_workers,
            },
            "store": {"url": str(out / "events.db"), "files_root": str(out), "jsonl": False},
        }
    )


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def stage_medians(rt: NodeRuntime) -> dict[str, float]:
    medians = dict(rt.times.median_ms())
    per_cam: dict[str, list[float]] = {}
    for runner in rt.runners().values():
        for stage, ms in runner.summary.times.median_ms().items():
            if stage in ("track", "events"):
                per_cam.setdefault(stage, []).append(ms)
    medians |= {k: statistics.median(v) for k, v in per_cam.items()}
    return {k: round(v, 2) for k, v in medians.items()}


def backlog(rt: NodeRuntime) -> dict[str, int]:
    return {k: int(h.drops.get("backlog", 0)) for k, h in rt.health().items()}


def frames(rt: NodeRuntime) -> dict[str, int]:
    return {k: h.frames_analysed for k, h in rt.health().items()}


def run_k(k: int, clip: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="multistream-") as tmp:
        rt = NodeRuntime(make_config(k, clip, args, Path(tmp))).start()
        try:
            time.sleep(args.warmup)
            f0, b0 = frames(rt), backlog(rt)
            p0 = time.process_time()
            t0 = time.monotonic()
            with CpuSampler() as sampler:
                time.sleep(args.seconds)
            wall = time.monotonic() - t0
            f1, b1 = frames(rt), backlog(rt)
            cpu = time.process_time() - p0
            split = sampler.split()
            lat = [v for vs in rt.latencies_ms().values() for v in vs]
            stages = stage_medians(rt)
            batch = rt.batcher_stats()
        finally:
            rt.stop()
    fps = {cid: (f1[cid] - f0.get(cid, 0)) / wall for cid in f1}
    drops = {cid: b1[cid] - b0.get(cid, 0) for cid in b1}
    sustained = sum(drops.values()) == 0 and min(fps.values()) >= 0.95 * args.fps
    return {
        "k": k,
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "sustained": sustained,
        "analysed_fps_min": round(min(fps.values()), 2),
        "analysed_fps_total": round(sum(fps.values()), 2),
        "backlog_drops": sum(drops.values()),
        "cpu_cores": round(cpu / wall, 2),
        "cpu_split_cores": {g: round(v / wall, 2) for g, v in sorted(split.items())},
        "stage_median_ms": stages,
        "mean_batch": round(batch.mean_batch, 2),
        "latency_p50_ms": percentile(lat, 0.5),
        "latency_p95_ms": percentile(lat, 0.95),
        "events": len(lat),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'K':>3} {'ok':>3} {'fps/cam':>8} {'backlog':>8} {'cores':>6} {'batch':>6} "
        f"{'p50 ms':>8} {'p95 ms':>8}  cpu split (cores)"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        p50 = "-" if r["latency_p50_ms"] is None else f"{r['latency_p50_ms']:.0f}"
        p95 = "-" if r["latency_p95_ms"] is None else f"{r['latency_p95_ms']:.0f}"
        split = " ".join(f"{g}={v}" for g, v in r["cpu_split_cores"].items())
        lines.append(
            f"{r['k']:>3} {'yes' if r['sustained'] else 'no':>3} {r['analysed_fps_min']:>8.2f} "
            f"{r['backlog_drops']:>8} {r['cpu_cores']:>6.2f} {r['mean_batch']:>6.2f} "
            f"{p50:>8} {p95:>8}  {split}"
        )
    return "\n".join(lines)


def _cpu_ms(fn: Any, *a: Any) -> tuple[Any, float]:
    """Run ``fn(*a)``; return its result and the process CPU ms it took."""
    t0 = time.process_time()
    out = fn(*a)
    return out, (time.process_time() - t0) * 1000.0


def profile(clip: Path, args: argparse.Namespace) -> dict[str, float]:
    """CPU ms per frame of each stage, on one thread, without pacing (``--profile``)."""
    import av

    from sharpeyes.models.factory import create_detector
    from sharpeyes.pipeline.runner import StagedDetector
    from sharpeyes.streams.decode import configure_threads, to_bgr

    out: dict[str, float] = {}
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        configure_threads(stream, 1)
        step = max(1, round(float(stream.average_rate or 25) / args.fps))
        decoded, decode_ms = _cpu_ms(lambda: _decode_every(container, stream, step))
    sampled, count = decoded
    out["decode_ms_per_decoded_frame"] = decode_ms / count
    images, bgr_ms = _cpu_ms(lambda: [to_bgr(f) for f in sampled])
    out["bgr_ms"] = bgr_ms / len(sampled)
    h, w = args.input
    det = create_detector(
        args.model, providers="cpu", intra_op_threads=1, input_size=(h, w), warmup=1
    )
    assert isinstance(det, StagedDetector)
    batch_n = args.profile_batch
    pre = inf = post = 0.0
    n = 0
    for i in range(0, len(images) - batch_n + 1, batch_n):
        chunk = images[i : i + batch_n]
        batch, ms = _cpu_ms(det.preprocess, chunk)
        pre += ms
        raw, ms = _cpu_ms(det.infer, batch)
        inf += ms
        _, ms = _cpu_ms(det.postprocess, raw, batch)
        post += ms
        n += len(chunk)
    out |= {"preprocess_ms": pre / n, "inference_ms": inf / n, "postprocess_ms": post / n}
    out["decode_ms_per_analysed_frame"] = out["decode_ms_per_decoded_frame"] * step
    out |= compare_skip(clip, args.fps, args.profile_repeats)
    return {k: round(v, 3) for k, v in out.items()}


def _source_ms(clip: Path, fps: float, skip: bool) -> float:
    """CPU ms per yielded frame of a ``FileSource`` (decode + BGR of the sampled frames)."""
    from sharpeyes.streams.file_source import FileSource

    with FileSource(clip, analysis_fps=fps, decode_threads=1, skip_unsampled=skip) as src:
        n, ms = _cpu_ms(lambda: sum(1 for _ in src.frames()))
    return float(ms / n)


def compare_skip(clip: Path, fps: float, repeats: int) -> dict[str, float]:
    """Source CPU per analysed frame without / with skipping, alternating, medians."""
    runs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for skipping in (False, True):
            runs[skipping].append(_source_ms(clip, fps, skipping))
    full, part = statistics.median(runs[False]), statistics.median(runs[True])
    return {"source_ms_full_decode": full, "source_ms_skip_nonref": part, "skip_ratio": part / full}


def _decode_every(container: Any, stream: Any, step: int) -> tuple[list[Any], int]:
    """Decode every frame; keep every ``step``-th (still YUV); return them and the count."""
    kept: list[Any] = []
    count = 0
    for frame in container.decode(stream):
        if count % step == 0:
            kept.append(frame)
        count += 1
    return kept, count


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ks", type=_cli.int_list, default=[2, 4, 6, 8], help="stream counts to try")
    ap.add_argument("--fps", type=_cli.positive_float, default=5.0, help="analysed fps per camera")
    ap.add_argument("--model", default="yolov5n")
    ap.add_argument("--input", type=_cli.hxw, default=(384, 640), help="detector input HxW")
    ap.add_argument(
        "--threads",
        type=_cli.non_negative_int,
        default=0,
        help="ORT intra-op threads (0 = default)",
    )
    ap.add_argument("--max-wait-ms", type=_cli.non_negative_float, default=20.0)
    ap.add_argument("--max-batch", type=_cli.non_negative_int, default=0, help="batch cap (0 = K)")
    ap.add_argument(
        "--batch-workers",
        type=_cli.positive_int,
        default=1,
        help="batcher threads (with --threads 1)",
    )
    ap.add_argument("--clip", default="highway_1280x720.mp4", help="shared clip name or path")
    ap.add_argument("--warmup", type=_cli.non_negative_float, default=10.0)
    ap.add_argument("--seconds", type=_cli.positive_float, default=30.0)
    ap.add_argument("--profile", action="store_true", help="only the per-stage CPU profile")
    ap.add_argument(
        "--profile-batch", type=_cli.positive_int, default=8, help="batch size of the profile"
    )
    ap.add_argument(
        "--profile-repeats", type=_cli.positive_int, default=5, help="alternating profile runs"
    )
    ap.add_argument("--keep-going", action="store_true", help="try larger K after a failure")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/out/multistream.json")
    args = ap.parse_args(argv)
    name = args.clip
    args.clip = find_clip(name)
    if args.clip is None:
        ap.error(
            f"--clip {name}: no such file (looked for it as a path and in "
            f"{shared_dir() / 'sample_videos'})"
        )
    return args


def find_clip(name: str) -> Path | None:
    """``--clip`` as a path, else as a name in the shared sample videos; None when neither."""
    for path in (Path(name), shared_dir() / "sample_videos" / name):
        if path.is_file():
            return path
    return None


def input_text(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def header(args: argparse.Namespace, machine: dict[str, Any]) -> str:
    """What the table measured: model, input, providers, threads, batching, the machine."""
    threads = args.threads or "default"
    return (
        f"{args.clip.name} as live cameras at {args.fps:g} analysed fps each · model {args.model} "
        f"{input_text(args.input)} · providers CPUExecutionProvider · {threads} intra-op threads "
        f"· {args.batch_workers} batcher worker(s), max batch {args.max_batch or 'K'} · "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s measured per K\n"
        f"machine: {_cli.machine_line(machine)}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clip: Path = args.clip
    if args.profile:
        print(json.dumps({"load_avg": os.getloadavg(), **profile(clip, args)}, indent=1))
        return 0
    machine = _cli.machine()  # its load average is the one before the first K
    print(header(args, machine), flush=True)
    rows: list[dict[str, Any]] = []
    for k in args.ks:
        rows.append(run_k(k, clip, args))
        print(table(rows).splitlines()[-1], flush=True)
        if not rows[-1]["sustained"] and not args.keep_going:
            break
    best = max((r["k"] for r in rows if r["sustained"]), default=0)
    print(table(rows))
    print(
        f"largest K sustained: {best} ({args.model} {input_text(args.input)}, "
        f"{args.fps:g} fps per camera)"
    )
    result = {
        "clip": str(clip),
        "model": args.model,
        "input_size": list(args.input),
        "providers": ["CPUExecutionProvider"],
        "intra_op_threads": args.threads or "default",
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": machine,
        "load_avg_before": machine["load_avg"],
        "load_avg_after": _cli.load_avg(),
        "rows": rows,
        "largest_k_sustained": best,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
