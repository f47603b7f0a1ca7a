"""The GPU node check: versions, decode sessions, detector batches, streams per GPU — one run.

    python -m benchmarks.gpu_check [--out DIR] [--clip CLIP] [--budget-s 420]
    python -m benchmarks.gpu_check --dry      # CPU, tiny sizes: every code path that can run

Parts (each skipped with its reason when a library or the GPU is missing):
  a  environment: GPU, driver, CUDA, library versions, usable decoders and detector backends;
  b  raw decode throughput of the 1080p H.264 clip with 1, 4, 7, 14 parallel sessions;
  c  detector throughput at batch 1, 8, 32, 64 (from frames already on the device);
  d  K file-as-live streams at 5 analysed fps each (decode → batcher → detector → tracker) for
     increasing K: the largest K with zero backlog drops, p50/p95 frame→tracks latency,
     GPU and decoder utilisation from ``nvidia-smi dmon``;
  d2 the same with the K streams spread over ``--procs`` worker processes, each with its own
     decoders, batcher and detector on the same GPU (one process is host-bound: H200, 2026-12-04);
  e  ``gpu_check.json`` and ``gpu_check.md`` (a table) in ``--out`` (default ``$OUT``).
A time budget (default 420 s) is shared by the parts; a part that runs out stops early.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LIBS = ("torch", "cupy", "onnxruntime", "av", "PyNvVideoCodec", "cv2", "numpy", "pydantic")


@dataclass(frozen=True)
class Plan:
    sessions: tuple[int, ...]
    batches: tuple[int, ...]
    streams: tuple[int, ...]
    part_s: float
    trial_s: float
    device: str
    analysis_fps: float = 5.0
    settle_s: float = 3.0
    streams_procs: tuple[int, ...] = (50, 100, 150, 200, 250, 300)
    procs: int = 4


FULL = Plan(
    (1, 4, 7, 14), (1, 8, 32, 64), (25, 50, 75, 100, 125, 150, 200, 250), 6.0, 10.0, "cuda:0"
)
DRY = Plan((1, 2), (1, 2), (1, 2), 1.5, 2.5, "cpu", settle_s=0.5, streams_procs=(2,), procs=2)


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=20, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _version(name: str) -> str | None:
    try:
        module = importlib.import_module(name)
    except Exception:
        return None
    return str(getattr(module, "__version__", "?"))


def environment() -> dict[str, Any]:
    """Part a: machine, GPU, libraries, usable decoders and detector backends."""
    from sharpeyes.models.gpu.registry import probe_backends
    from sharpeyes.streams.gpu_decode import probe_decoders

    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "libraries": {lib: _version(lib) for lib in LIBS},
        "nvidia_smi": _run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        ),
    }
    with contextlib.suppress(Exception):
        import torch

        env["torch_cuda"] = torch.version.cuda
        env["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
            env["cudnn"] = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
    with contextlib.suppress(Exception):
        import av

        env["av_cuvid_decoders"] = sorted(c for c in av.codecs_available if c.endswith("_cuvid"))
    env["decoders"] = {k: v or "usable" for k, v in probe_decoders().items()}
    env["backends"] = {
        p.name: ("usable: " if p.usable else "no: ") + p.detail for p in probe_backends()
    }
    return env


class Dmon:
    """``nvidia-smi dmon -s u`` in the background; mean sm/mem/enc/dec utilisation (%)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                ["nvidia-smi", "dmon", "-s", "u", "-d", "1"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )

    def stop(self) -> dict[str, float] | str:
        if self.proc is None:
            return "nvidia-smi not available"
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=5)
        lines = [ln.split() for ln in out.splitlines() if ln.strip()]
        header = next((ln[1:] for ln in lines if ln[0] == "#" and "sm" in ln), None)
        rows = [ln for ln in lines if ln[0] != "#"]
        if header is None or not rows:
            return "dmon gave no samples"
        result = {}
        for i, col in enumerate(header[1:], start=1):
            vals = [float(r[i]) for r in rows if i < len(r) and r[i].replace(".", "").isdigit()]
            if vals:
                result[col] = round(statistics.fmean(vals), 1)
        return result


def pick_decoder(dry: bool) -> Any:
    """The best usable decoder: nvdec, then pyav-cuda, else cpu (dry runs use cpu)."""
    from sharpeyes.streams.gpu_decode import DecoderConfig, probe_decoders

    usable = [k for k, v in probe_decoders().items() if v is None]
    for name in ("nvdec", "pyav-cuda"):
        if name in usable and not dry:
            return DecoderConfig(backend=name, fallback="fail")
    return DecoderConfig(backend="cpu")


def decode_throughput(
    clip: Path,
    plan: Plan,
    deadline: float,
    dry: bool,
    *,
    backend: str | None = None,
    sessions: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Part b: frames/s decoded by n parallel sessions (no colour conversion, frames dropped).

    ``backend`` measures that decoder instead of the best usable one (the comparison rows).
    """
    from sharpeyes.streams.gpu_decode import DecoderConfig, open_session, probe_source

    cfg = DecoderConfig(backend=backend, fallback="fail") if backend else pick_decoder(dry)
    fps = probe_source(str(clip), "probe").fps
    points = []
    for n in sessions or plan.sessions:
        if time.monotonic() + plan.part_s > deadline:
            points.append({"sessions": n, "skipped": "time budget"})
            continue
        counts = [0] * n
        stop = time.monotonic() + plan.part_s

        def work(i: int, stop: float = stop, counts: list[int] = counts) -> None:
            while time.monotonic() < stop:
                session = open_session(str(clip), cfg, fps)
                for _ in session.pictures(lambda _pts: False):
                    counts[i] += 1
                    if time.monotonic() >= stop:
                        break
                session.close()

        dmon = Dmon()
        t0 = time.monotonic()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        total = sum(counts) / wall
        points.append(
            {
                "sessions": n,
                "fps_total": round(total, 1),
                "fps_per_session": round(total / n, 1),
                "streams_at_25fps": round(total / 25, 1),
                "utilisation": dmon.stop(),
            }
        )
    return {"decoder": cfg.backend, "clip": str(clip), "points": points}


def pick_detector(dry: bool, weights: Path | None) -> Any:
    from sharpeyes.models.gpu.registry import (
        DetectorBackendConfig,
        create_backend_detector,
        probe_backends,
    )

    usable = {p.name for p in probe_backends() if p.usable}
    extra: dict[str, Any] = {"model_path": weights} if weights else {}
    if dry:
        cfg = DetectorBackendConfig(
            backend="torch", device="cpu", warmup=1, input_size=(320, 320), **extra
        )
    elif "torch" in usable:
        cfg = DetectorBackendConfig(backend="torch", warmup=2, **extra)
    elif "onnxruntime-gpu" in usable:
        cfg = DetectorBackendConfig(backend="onnxruntime-gpu", warmup=2)
    else:
        raise RuntimeError("no GPU detector backend is usable here: " + ", ".join(usable))
    return create_backend_detector(cfg)


def sample_frames(clip: Path, n: int) -> list[Any]:
    import av

    out = []
    with av.open(str(clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 5 == 0:
                out.append(f.to_ndarray(format="bgr24"))
            if len(out) >= n:
                break
    return out


def _sync(detector: Any) -> None:
    device = getattr(detector, "device", None)
    if device is not None and getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.synchronize(device)


def detector_throughput(detector: Any, clip: Path, plan: Plan, deadline: float) -> dict[str, Any]:
    """Part c: images/s of preprocess + forward + NMS at each batch size."""
    host = sample_frames(clip, 16)
    frames = host
    with contextlib.suppress(Exception):
        frames = [detector.preprocessor.as_tensor(im) for im in host]  # device-resident frames
    points = []
    for b in plan.batches:
        if time.monotonic() + plan.part_s > deadline:
            points.append({"batch": b, "skipped": "time budget"})
            continue
        batch = [frames[i % len(frames)] for i in range(b)]
        detector.detect(batch)  # warm-up (captures a CUDA graph for this shape)
        times: list[float] = []
        stop = time.monotonic() + plan.part_s
        while time.monotonic() < stop or len(times) < 2:
            t0 = time.perf_counter()
            detector.detect(batch)
            _sync(detector)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        points.append(
            {"batch": b, "ms_per_batch": round(med * 1000, 2), "images_per_s": round(b / med, 1)}
        )
    return {
        "detector": detector.info.model,
        "providers": list(detector.info.providers),
        "input_hw": list(detector.info.input_size),
        "points": points,
    }


@dataclass
class _StreamStats:
    analysed: int = 0
    lag_s: float = 0.0
    startup_lag_s: float = 0.0


@dataclass
class _Trial:
    batcher: Any
    drops: Any
    latencies: list[float]
    stop: float
    settled: float


def _stream_worker(src: Any, stats: _StreamStats, trial: _Trial) -> None:
    from sharpeyes.pipeline.config import TrackerConfig
    from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
    from sharpeyes.streams.latest import LatestQueue

    queue: LatestQueue[tuple[Any, float]] = LatestQueue(maxsize=2, drops=trial.drops)
    tracker = ByteTracker(TrackerConfig())
    t_start = time.monotonic()

    def decode() -> None:
        for frame in src.frames():
            now = time.monotonic()
            queue.put((frame, now))
            lag = now - t_start - frame.pts
            if now < trial.settled:
                stats.startup_lag_s = max(stats.startup_lag_s, lag)
            else:
                stats.lag_s = max(stats.lag_s, lag)
            if now >= trial.stop:
                break
        queue.close()

    thread = threading.Thread(target=decode, daemon=True)
    thread.start()
    while (item := queue.get(timeout=5.0)) is not None:
        frame, due = item
        image = frame.device_image if frame.device_image is not None else frame.image
        dets = trial.batcher.submit(frame.stream_id, image).result()
        tracker.update(dets, frame.pts)
        if due >= trial.settled:
            trial.latencies.append(time.monotonic() - due)
            stats.analysed += 1
    src.close()
    thread.join(timeout=5)


@dataclass
class _Raw:
    """One process's share of a trial, before it is summarised (picklable across processes)."""

    decoder: str
    fps: list[float]
    latencies: list[float]
    drops: int
    lag_s: float
    startup_lag_s: float
    mean_batch: float
    graphs: dict[str, Any]


def _run_streams(
    detector: Any, clip: Path, k: int, plan: Plan, dry: bool, *, start_at: float | None = None
) -> _Raw:
    """K live-paced streams through one batcher in this process (``start_at``: monotonic)."""
    from sharpeyes.pipeline.batcher import Batcher
    from sharpeyes.streams.gpu_decode import GpuDecodeSource
    from sharpeyes.streams.health import DropCounter

    cfg = pick_decoder(dry)
    batcher = Batcher(detector, max_batch=64, max_wait_ms=20)
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.monotonic()))
    start = time.monotonic()
    trial = _Trial(batcher, DropCounter(), [], start + plan.trial_s, start + plan.settle_s)
    stats = [_StreamStats() for _ in range(k)]
    sources = [
        GpuDecodeSource(clip, f"cam{i}", decoder=cfg, realtime=True, analysis_fps=plan.analysis_fps)
        for i in range(k)
    ]
    threads = [
        threading.Thread(target=_stream_worker, args=(s, st, trial))
        for s, st in zip(sources, stats, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=plan.trial_s + 30)
    batcher.close()
    return _Raw(
        decoder=str(sources[0].decoder_in_use) if sources else "",
        fps=[s.analysed / (plan.trial_s - plan.settle_s) for s in stats],
        latencies=trial.latencies,
        drops=sum(trial.drops.snapshot().values()),
        lag_s=max((s.lag_s for s in stats), default=0.0),
        startup_lag_s=max((s.startup_lag_s for s in stats), default=0.0),
        mean_batch=batcher.stats.mean_batch,
        graphs=_graph_stats(detector),
    )


def _summary(k: int, raws: list[_Raw], plan: Plan, utilisation: Any) -> dict[str, Any]:
    fps = [f for r in raws for f in r.fps] or [0.0]
    lat = sorted(x for r in raws for x in r.latencies) or [float("nan")]
    lag = max(r.lag_s for r in raws)
    dropped = sum(r.drops for r in raws)
    return {
        "streams": k,
        "decoder": raws[0].decoder,
        "backlog_drops": dropped,
        "analysed_fps_min": round(min(fps), 2),
        "decode_lag_s": round(lag, 2),
        "startup_lag_s": round(max(r.startup_lag_s for r in raws), 2),
        "latency_p50_ms": round(1000 * lat[len(lat) // 2], 1),
        "latency_p95_ms": round(1000 * lat[int(len(lat) * 0.95)], 1),
        "mean_batch": round(statistics.fmean(r.mean_batch for r in raws), 1),
        **raws[0].graphs,
        "utilisation": utilisation,
        "ok": dropped == 0 and lag < 1.0 and min(fps) >= 0.8 * plan.analysis_fps,
    }


def pipeline_trial(detector: Any, clip: Path, k: int, plan: Plan, dry: bool) -> dict[str, Any]:
    """K live-paced streams for ``trial_s``: drops, analysed fps, latency, utilisation.

    The first ``settle_s`` (K decoders opening at once) are reported as ``startup_lag_s`` and
    left out of the steady-state figures: fps, lag and latency count frames after it.
    """
    dmon = Dmon()
    raw = _run_streams(detector, clip, k, plan, dry)
    return _summary(k, [raw], plan, dmon.stop())


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process of part d2 needs (picklable)."""

    clip: Path
    plan: Plan
    dry: bool
    weights: Path | None


def _worker_process(spec: WorkerSpec, inbox: Any, outbox: Any) -> None:
    """A worker process of part d2: its own detector; runs the stream counts it is sent."""
    clip, plan, dry = spec.clip, spec.plan, spec.dry
    try:
        detector = pick_detector(dry, spec.weights).detector
    except Exception as e:
        outbox.put(f"{type(e).__name__}: {e}")
        return
    outbox.put("ready")
    while (job := inbox.get()) is not None:
        k, start_at = job
        outbox.put(_run_streams(detector, clip, k, plan, dry, start_at=start_at))


class WorkerPool:
    """``n`` spawned worker processes, each with its own detector on the same GPU."""

    def __init__(self, n: int, spec: WorkerSpec) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(n)]
        self.procs = [
            ctx.Process(
                target=_worker_process,
                args=(spec, q, self.outbox),
                daemon=True,
            )
            for q in self.inboxes
        ]
        for proc in self.procs:
            proc.start()
        answers = [self.outbox.get(timeout=180) for _ in self.procs]
        failed = [a for a in answers if a != "ready"]
        if failed:
            self.close()
            raise RuntimeError(f"worker process failed to start: {failed[0]}")

    def trial(self, k: int, plan: Plan) -> dict[str, Any]:
        """K streams split over the workers, all starting at the same instant."""
        n = len(self.procs)
        shares = [k // n + (1 if i < k % n else 0) for i in range(n)]
        start_at = time.monotonic() + 2.0
        dmon = Dmon()
        for q, share in zip(self.inboxes, shares, strict=True):
            q.put((share, start_at))
        raws = [self.outbox.get(timeout=plan.trial_s + 90) for _ in self.procs]
        result = _summary(k, [r for r in raws if r.fps], plan, dmon.stop())
        result["processes"] = n
        return result

    def close(self) -> None:
        for q in self.inboxes:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def streams_per_gpu_procs(spec: WorkerSpec, deadline: float, procs: int) -> dict[str, Any]:
    """Part d2: the same trials with the streams spread over ``procs`` worker processes."""
    pool = WorkerPool(procs, spec)
    try:
        ladder = _ladder(pool.trial, spec.plan, spec.plan.streams_procs, deadline)
        return ladder | {"processes": procs}
    finally:
        pool.close()


def _graph_stats(detector: Any) -> dict[str, Any]:
    """CUDA graphs captured so far and shapes that fell back to eager runs (torch backend)."""
    graphs = getattr(detector, "graphs", None)
    if graphs is None:
        return {}
    return {"graph_captures": graphs.captures, "graph_eager_shapes": sorted(graphs.eager)}


def _ladder(run: Any, plan: Plan, ladder: tuple[int, ...], deadline: float) -> dict[str, Any]:
    """Increasing K until a trial fails or the budget ends."""
    trials, best = [], 0
    for k in ladder:
        if time.monotonic() + plan.trial_s + 5 > deadline:
            trials.append({"streams": k, "skipped": "time budget"})
            break
        trial = run(k, plan)
        trials.append(trial)
        if not trial["ok"]:
            break
        best = k
    return {"analysis_fps": plan.analysis_fps, "largest_k_zero_drops": best, "trials": trials}


def streams_per_gpu(
    detector: Any, clip: Path, plan: Plan, deadline: float, dry: bool
) -> dict[str, Any]:
    """Part d: increasing K in this one process until a trial fails or the budget ends."""

    def run(k: int, plan: Plan) -> dict[str, Any]:
        return pipeline_trial(detector, clip, k, plan, dry)

    return _ladder(run, plan, plan.streams, deadline)


_SAVE: list[Path] = []  # where ``_part`` saves the results so far (set by ``main``)


def _save(results: dict[str, Any], path: Path) -> None:
    """Write the results so far: a run killed later (a wrapper's timeout) keeps its parts."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=_json_default))
    tmp.replace(path)


def _json_default(value: Any) -> str:
    return str(value)


def _part(results: dict[str, Any], key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one part; a failure becomes ``{"skipped": reason}`` and the check goes on. The
    results so far are saved after every part (``"complete": false`` until the end)."""
    t0 = time.monotonic()
    try:
        value = fn(*args, **kwargs)
    except Exception as e:
        value = {"skipped": f"{type(e).__name__}: {e}"}
    if isinstance(value, dict):
        value["seconds"] = round(time.monotonic() - t0, 1)
    results[key] = value
    shown = (
        {k: v for k, v in value.items() if not k.startswith("_")}
        if isinstance(value, dict)
        else value
    )
    print(f"[gpu_check] {key}: {json.dumps(shown, default=str)[:400]}", flush=True)
    for path in _SAVE:
        public = {k: v for k, v in results.items() if not k.startswith("_")}
        if isinstance(public.get(key), dict):
            public[key] = {k: v for k, v in public[key].items() if not k.startswith("_")}
        _save({**public, "complete": False}, path)
    return value


def _rows(results: dict[str, Any]) -> Iterator[str]:
    yield "| part | setting | result |"
    yield "|---|---|---|"
    if results.get("dry"):
        yield (
            "| – | dry run | CPU, tiny clip and input: it checks that every part runs; its "
            "numbers measure nothing |"
        )
    env = results.get("environment", {})
    yield f"| a | GPU | {env.get('gpu') or env.get('nvidia_smi') or 'none'} |"
    if env.get("cpu_count"):
        yield f"| a | host | {env['cpu_count']} cores, {env.get('platform', '?')} |"
    for name, state in {**env.get("decoders", {}), **env.get("backends", {})}.items():
        yield f"| a | {name} | {state} |"
    for key in [k for k in results if k.startswith("decode")]:
        dec = results[key]
        for p in dec.get("points", []):
            yield (
                f"| b | {dec.get('decoder')} × {p['sessions']} sessions | "
                + (
                    p.get("skipped")
                    or f"{p['fps_total']} fps ({p['streams_at_25fps']} streams at 25 fps)"
                )
                + " |"
            )
    det = results.get("detector", {})
    if det.get("detector"):
        hw = "×".join(str(v) for v in det.get("input_hw", []))
        yield f"| c | model | {det['detector']} {hw} on {', '.join(det.get('providers', []))} |"
    for p in det.get("points", []):
        yield (
            f"| c | batch {p['batch']} | "
            + (p.get("skipped") or f"{p['images_per_s']} img/s, {p['ms_per_batch']} ms/batch")
            + " |"
        )
    for part, key in (("d", "pipeline"), ("d2", "pipeline_procs")):
        yield from _trial_rows(part, results.get(key, {}))
    for key in ("decode", "detector", "pipeline", "pipeline_procs"):
        if "skipped" in results.get(key, {}):
            yield f"| – | {key} skipped | {results[key]['skipped']} |"


def _trial_rows(part: str, pipe: dict[str, Any]) -> Iterator[str]:
    where = f" in {pipe['processes']} processes" if "processes" in pipe else ""
    for t in pipe.get("trials", []):
        yield (
            f"| {part} | K={t['streams']}{where} | "
            + (
                t.get("skipped")
                or f"ok={t['ok']} drops={t['backlog_drops']} p50={t['latency_p50_ms']} ms "
                f"p95={t['latency_p95_ms']} ms min fps={t['analysed_fps_min']}"
            )
            + " |"
        )
    if "largest_k_zero_drops" in pipe:
        yield f"| {part} | largest K{where} | {pipe['largest_k_zero_drops']} |"


def default_out() -> Path:
    return Path(os.environ.get("OUT") or REPO / "benchmarks" / "out" / "gpu_check")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--clip", type=Path, default=None, help="1080p H.264 clip (made if missing)")
    p.add_argument("--weights", type=Path, default=None, help="yolov5 .pt for the torch backend")
    p.add_argument("--budget-s", type=float, default=420.0)
    p.add_argument("--dry", action="store_true", help="CPU only, tiny sizes")
    p.add_argument(
        "--procs", type=int, default=None, help="worker processes of part d2 (0: skip d2)"
    )
    a = p.parse_args(argv)
    out = a.out or default_out()
    out.mkdir(parents=True, exist_ok=True)
    plan = DRY if a.dry else FULL
    t0 = time.monotonic()
    deadline = t0 + a.budget_s
    results: dict[str, Any] = {
        "dry": a.dry,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "budget_s": a.budget_s,
    }
    _SAVE[:] = [out / "gpu_check.json"]
    _part(results, "environment", environment)
    clip = a.clip or _ensure_clip(out, a.dry)
    results["clip"] = str(clip)
    best = _part(results, "decode", decode_throughput, clip, plan, deadline, a.dry)
    if not a.dry:
        for name in _other_decoders(best.get("decoder")):
            _part(
                results,
                f"decode_{name}",
                decode_throughput,
                clip,
                plan,
                deadline,
                False,
                backend=name,
                sessions=(1, 7, 14),
            )
    choice = _part(results, "detector_backend", _detector_choice, a.dry, a.weights)
    detector = choice.pop("_detector", None) if isinstance(choice, dict) else None
    if detector is None:
        results["detector"] = results["pipeline"] = {"skipped": "no detector backend"}
    else:
        _part(results, "detector", detector_throughput, detector, clip, plan, deadline)
        _part(results, "pipeline", streams_per_gpu, detector, clip, plan, deadline, a.dry)
    procs = plan.procs if a.procs is None else a.procs
    if procs > 0 and detector is not None:
        _part(
            results,
            "pipeline_procs",
            streams_per_gpu_procs,
            WorkerSpec(clip, plan, a.dry, a.weights),
            deadline,
            procs,
        )
    results["total_s"] = round(time.monotonic() - t0, 1)
    results["complete"] = True
    _save(results, out / "gpu_check.json")
    table = "\n".join(_rows(results)) + "\n"
    (out / "gpu_check.md").write_text(table)
    print(table)
    print(f"[gpu_check] wrote {out / 'gpu_check.json'} in {results['total_s']} s")
    return 0


def _other_decoders(chosen: str | None) -> list[str]:
    """Usable decoders other than ``chosen``, measured side by side with it."""
    from sharpeyes.streams.gpu_decode import probe_decoders

    return [k for k, v in probe_decoders().items() if v is None and k != chosen]


def _detector_choice(dry: bool, weights: Path | None) -> dict[str, Any]:
    choice = pick_detector(dry, weights)
    return {
        "_detector": choice.detector,
        "backend": choice.backend,
        "fallback_reason": choice.fallback_reason,
        "providers": list(choice.detector.info.providers),
    }


def _ensure_clip(out: Path, dry: bool) -> Path:
    from benchmarks.make_gpu_clip import DEFAULT_OUT, make_clip, shared_dir

    if dry:
        clip = out / "dry_clip.mp4"
        source = shared_dir() / "sample_videos" / "highway_640x360.mp4"
        make_clip(clip, width=320, height=192, fps=25, seconds=4, source=source)
        return clip
    if not DEFAULT_OUT.is_file():
        make_clip(DEFAULT_OUT, source=shared_dir() / "sample_videos" / "highway_1280x720.mp4")
    return DEFAULT_OUT


if __name__ == "__main__":
    raise SystemExit(main())
