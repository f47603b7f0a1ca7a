"""``sharpeyes models``: list, add, bench and export detector models.

=========================  ===================================================================
``models [--resolve]``     the registered models (same as ``models list``)
``models list``            built-in and user models: family, licence, detector?, where found
``models add PATH``        register a user ONNX detector (sha256, licence, family from the file)
``models bench CLIP``      every detector available locally on CLIP: fps and agreement with
                           the default detector (IoU-matched boxes of the same object kind)
``models export SRC``      Ultralytics ``.pt`` (or model YAML) → ONNX, dynamic batch and shape
``models publish DIR``     copy every built-in model found locally into DIR (a mirror for
                           ``$SHARPEYES_MODEL_MIRROR`` or a release) with ``SHA256SUMS``; a
                           derived model only when its bytes are the published artefact
=========================  ===================================================================

Wire it with ``add_parser(subparsers)``; ``run(args)`` returns the exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.errors import SharpeyesError
from sharpeyes.pipeline.geometry import iou_matrix

EXIT_OK = 0
EXIT_ERROR = 1


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``models`` command (and its actions) to a ``add_subparsers()`` object."""
    m: argparse.ArgumentParser = subparsers.add_parser(
        "models", help="list, add, benchmark and export detector models"
    )
    m.add_argument("--resolve", action="store_true", help="also show where each is found")
    m.set_defaults(func=run, models_action="list")
    sub = m.add_subparsers(dest="models_action", metavar="ACTION")

    ls = sub.add_parser("list", help="registered models (built-in and user)")
    ls.add_argument("--resolve", action="store_true", help="also show where each is found")

    add = sub.add_parser("add", help="register a user ONNX detector")
    add.add_argument("path", help="ONNX file")
    add.add_argument("--name", help="registry name (default: the file name without suffix)")
    add.add_argument("--licence", default="unknown", help="licence of the weights")
    add.add_argument("--notes", default="", help="free text")

    bench = sub.add_parser("bench", help="fps and agreement of every local detector on a clip")
    bench.add_argument("clip", help="video file")
    bench.add_argument("--frames", type=_positive, default=60, help="frames to run (default 60)")
    bench.add_argument("--threads", type=_positive, default=2, help="onnxruntime intra-op threads")
    bench.add_argument(
        "--rounds",
        type=_positive,
        default=3,
        help="alternating rounds over the models; fps is the median (default 3)",
    )
    bench.add_argument("--models", nargs="*", help="only these models (default: all local)")
    bench.add_argument("--reference", help="reference model (default: the default detector)")
    bench.add_argument("--iou", type=_unit, default=0.5, help="IoU of a matched box")
    bench.add_argument("--json", dest="json_out", help="also write the results here (JSON)")

    ex = sub.add_parser("export", help="Ultralytics .pt (or model YAML) → dynamic ONNX")
    ex.add_argument("source", help="checkpoint .pt, or a model YAML (random weights)")
    ex.add_argument("--out", required=True, help="output .onnx")
    ex.add_argument("--imgsz", type=int, default=640)
    ex.add_argument("--static", action="store_true", help="fixed 1x3ximgszximgsz input")
    ex.add_argument("--coco-names", action="store_true", help="set COCO-80 class names")
    ex.add_argument("--add", action="store_true", help="register the result as a user model")
    ex.add_argument("--licence", default="AGPL-3.0 (Ultralytics)", help="licence for --add")
    pub = sub.add_parser("publish", help="fill a model mirror directory (with SHA256SUMS)")
    pub.add_argument("dir", help="output directory (created)")
    for p in (ls, add, bench, ex, pub):
        p.set_defaults(func=run)
    return m


def run(args: argparse.Namespace) -> int:
    """Run the ``models`` action in ``args``; returns the exit status."""
    action = getattr(args, "models_action", None) or "list"
    return _ACTIONS[action](args)


# --- list ------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from sharpeyes.models.factory import detector_models
    from sharpeyes.models.registry import MODEL_SPECS, all_model_specs
    from sharpeyes.models.resolve import resolve_model

    detectors = set(detector_models())
    for name, spec in sorted(all_model_specs().items()):
        where = "—"
        if getattr(args, "resolve", False):
            try:
                where = str(resolve_model(spec, download=False))
            except SharpeyesError as e:
                where = f"missing ({e})"
        origin = "built-in" if name in MODEL_SPECS else "user"
        det = "detector" if name in detectors else "-"
        _out(f"{name:20s} {spec.family:10s} {det:8s} {origin:8s} {spec.licence:18s} {where}")
    return EXIT_OK


# --- add -------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    from sharpeyes.models.user_registry import add_user_model, user_registry_path

    name, entry = add_user_model(
        Path(args.path), name=args.name, licence=args.licence, notes=args.notes
    )
    names = entry["class_names"] or []
    shown = ", ".join(names[:8]) + (" …" if len(names) > 8 else "")
    n_cls = len(names) or 80
    _out(
        f"added {name}: family {entry['family']}, {n_cls} classes ({shown or 'COCO-80'}),"
        f" input {entry['input_size'][0]}x{entry['input_size'][1]}"
        f"{' dynamic' if entry['dynamic'] else ''}, sha256 {entry['sha256'][:16]}…,"
        f" licence {entry['licence']} → {user_registry_path()}"
    )
    return EXIT_OK


# --- bench -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One detector on the clip."""

    model: str
    family: str
    fps: float  # median over the rounds
    boxes_per_frame: float
    agreement: float | None  # F1 of IoU-matched boxes vs the reference; None for itself
    note: str = ""
    input_size: tuple[int, int] | None = None  # (height, width)
    providers: tuple[str, ...] = ()
    fps_rounds: tuple[float, ...] = ()


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _unit(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < x <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {x}")
    return x


def machine_text() -> str:
    """The CPU model and its cores (what the fps were measured on)."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, load {os.getloadavg()[0]:.1f}"


def match_count(
    a_xyxy: NDArray[np.float32],
    a_kind: NDArray[Any],
    b_xyxy: NDArray[np.float32],
    b_kind: NDArray[Any],
    iou: float,
) -> int:
    """Greedy one-to-one matches of same-kind boxes with IoU ≥ ``iou``."""
    m = iou_matrix(a_xyxy, b_xyxy)
    if not m.size:
        return 0
    m = np.where(np.asarray(a_kind)[:, None] == np.asarray(b_kind)[None, :], m, 0.0)
    n = 0
    while True:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        if m[i, j] < iou:
            return n
        n += 1
        m[i, :] = 0
        m[:, j] = 0


def agreement_f1(ours: Sequence[Any], ref: Sequence[Any], iou: float) -> float:
    """F1 over frames of IoU-matched, same-kind boxes (Detections-like: xyxy, kind)."""
    matched = total_a = total_b = 0
    for a, b in zip(ours, ref, strict=True):
        matched += match_count(a.xyxy, a.kind, b.xyxy, b.kind, iou)
        total_a += len(a.xyxy)
        total_b += len(b.xyxy)
    if total_a + total_b == 0:
        return 1.0
    return 2 * matched / (total_a + total_b)


def _frames(clip: Path, n: int) -> list[NDArray[np.uint8]]:
    import av

    if not clip.is_file():
        raise SharpeyesError(f"{clip}: no such video file")
    out: list[NDArray[np.uint8]] = []
    try:
        with av.open(str(clip)) as container:
            for f in container.decode(video=0):
                out.append(np.ascontiguousarray(f.to_ndarray(format="bgr24")))
                if len(out) >= n:
                    break
    except av.FFmpegError as e:
        raise SharpeyesError(f"{clip}: cannot decode: {e}") from e
    if not out:
        raise SharpeyesError(f"{clip}: no frames decoded")
    return out


def bench_models(
    clip: Path,
    *,
    frames: int = 60,
    threads: int = 2,
    models: Sequence[str] | None = None,
    reference: str | None = None,
    iou: float = 0.5,
    rounds: int = 1,
) -> list[BenchRow]:
    """Run every locally available detector (or ``models``) on ``frames`` frames of ``clip``,
    ``rounds`` times in alternating order (A B C A B C …: the machine's load drifts alike for
    all); fps is each model's median round, agreement from the first round's boxes."""
    from statistics import median

    from sharpeyes.models.factory import create_detector, detector_models
    from sharpeyes.models.registry import DEFAULT_DETECTOR, get_model_spec
    from sharpeyes.pipeline.config import OnnxRuntimeDetectorConfig

    images = _frames(clip, frames)
    ref_name = reference or DEFAULT_DETECTOR
    names = list(models) if models else list(detector_models())
    if ref_name in names:
        names.remove(ref_name)
    names.insert(0, ref_name)
    loaded: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in names:
        cfg = OnnxRuntimeDetectorConfig(
            model=name, providers="cpu", intra_op_threads=threads, download=False, warmup=2
        )
        try:
            loaded[name] = create_detector(cfg).detector
        except SharpeyesError as e:
            skipped[name] = f"skipped: {e}"
    results: dict[str, list[Any]] = {}
    times: dict[str, list[float]] = {name: [] for name in loaded}
    for _ in range(rounds):
        for name, det in loaded.items():
            t0 = time.perf_counter()
            dets = [det.detect([im])[0] for im in images]
            times[name].append(len(images) / (time.perf_counter() - t0))
            results.setdefault(name, dets)
    rows: list[BenchRow] = []
    for name in names:
        family = get_model_spec(name).family
        if name in skipped:
            rows.append(BenchRow(name, family, 0.0, 0.0, None, skipped[name]))
            continue
        dets = results[name]
        agree = None
        if name != ref_name and ref_name in results:
            agree = agreement_f1(dets, results[ref_name], iou)
        info = loaded[name].info
        rows.append(
            BenchRow(
                name,
                family,
                float(median(times[name])),
                sum(len(d.xyxy) for d in dets) / len(dets),
                agree,
                input_size=info.input_size,
                providers=info.providers,
                fps_rounds=tuple(round(x, 2) for x in times[name]),
            )
        )
    return rows


def format_bench(rows: Sequence[BenchRow], reference: str) -> list[str]:
    """The table ``models bench`` prints."""
    head = (
        f"{'model':22s} {'family':8s} {'input':>9s} {'fps':>7s} {'boxes/frame':>11s}  "
        f"agreement vs {reference}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.note:
            lines.append(f"{r.model:22s} {r.family:8s} {'-':>9s} {'-':>7s} {'-':>11s}  {r.note}")
            continue
        agree = "(reference)" if r.agreement is None else f"F1 {r.agreement:.3f}"
        size = f"{r.input_size[0]}x{r.input_size[1]}" if r.input_size else "-"
        per_frame = f"{r.boxes_per_frame:11.1f}"
        lines.append(f"{r.model:22s} {r.family:8s} {size:>9s} {r.fps:7.1f} {per_frame}  {agree}")
    return lines


def _bench(args: argparse.Namespace) -> int:
    import json

    from sharpeyes.models.registry import DEFAULT_DETECTOR

    ref = args.reference or DEFAULT_DETECTOR
    try:
        rows = bench_models(
            Path(args.clip),
            frames=args.frames,
            threads=args.threads,
            models=args.models,
            reference=ref,
            iou=args.iou,
            rounds=args.rounds,
        )
    except SharpeyesError as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_ERROR
    machine = machine_text()
    providers = sorted({p for r in rows for p in r.providers})
    _out(
        f"{args.clip}: {args.frames} frames, {args.rounds} alternating rounds (fps = median), "
        f"{args.threads} intra-op threads, {', '.join(providers) or '-'}; {machine}"
    )
    for line in format_bench(rows, ref):
        _out(line)
    if args.json_out:
        doc = {
            "clip": str(args.clip),
            "frames": args.frames,
            "rounds": args.rounds,
            "threads": args.threads,
            "reference": ref,
            "machine": machine,
            "models": [dataclasses.asdict(r) for r in rows],
        }
        Path(args.json_out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        _out(f"wrote {args.json_out}")
    return EXIT_OK


# --- export ----------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from sharpeyes.models.classes import COCO80_NAMES
    from sharpeyes.models.export.ultralytics_onnx import export_ultralytics_onnx

    result = export_ultralytics_onnx(
        args.source,
        Path(args.out),
        imgsz=args.imgsz,
        dynamic=not args.static,
        names=list(COCO80_NAMES) if args.coco_names else None,
    )
    _out(f"exported {args.source} → {result.out}: {result.describe()}")
    if args.add:
        from sharpeyes.models.user_registry import add_user_model

        name, entry = add_user_model(result.out, licence=args.licence, notes=result.describe())
        _out(f"added {name}: family {entry['family']}")
    return EXIT_OK


# --- publish ---------------------------------------------------------------------------------


def publish_models(out: Path) -> tuple[list[str], list[str]]:
    """Copy every built-in model resolvable here (no downloads, no exports) into ``out``.

    A pinned model is copied as verified; a derived one only when its bytes are the published
    artefact (``published_sha256``), so a mirror never serves an unpinned export. Writes
    ``SHA256SUMS`` (``sha256sum -c`` format). Returns (published filenames, skipped: reasons).
    """
    import shutil

    from sharpeyes.models.registry import MODEL_SPECS
    from sharpeyes.models.resolve import cached_sha256, resolve_model

    done: list[str] = []
    skipped: list[str] = []
    sums: list[str] = []
    for name, spec in sorted(MODEL_SPECS.items()):
        try:
            src = resolve_model(spec, download=False, export=False)
        except SharpeyesError as e:
            skipped.append(f"{name}: {e}")
            continue
        digest = cached_sha256(src)
        if spec.is_derived and digest != spec.published_sha256:
            skipped.append(f"{name}: local export {digest[:16]}… is not the published artefact")
            continue
        dest = out / spec.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        sums.append(f"{digest}  {spec.filename}")
        done.append(spec.filename)
    out.mkdir(parents=True, exist_ok=True)
    (out / "SHA256SUMS").write_text("".join(line + "\n" for line in sums))
    return done, skipped


def _publish(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    done, skipped = publish_models(out)
    for line in skipped:
        _out(f"skipped {line}")
    _out(f"published {len(done)} files into {out} (SHA256SUMS written)")
    return EXIT_OK if done else EXIT_ERROR


_ACTIONS = {
    "list": _list,
    "add": _add,
    "bench": _bench,
    "export": _export,
    "publish": _publish,
}
