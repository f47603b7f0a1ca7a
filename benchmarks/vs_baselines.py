"""sharpeyes vs what users would pick instead, on the same ONNX file, clip and frames.

Three detect + ByteTrack loops (see :mod:`benchmarks._baseline_workers`):

* ``sharpeyes``  — PyAV → our detector → our ByteTrack;
* ``ultralytics`` — ``YOLO(onnx).track(source, tracker="bytetrack.yaml", stream=True)``;
* ``supervision`` — the supervision + trackers docs' loop with ONNX Runtime as the model
  (``sv.get_video_frames_generator`` → letterbox → ``session.run`` → ``sv.Detections.with_nms``
  → ``trackers.ByteTrackTracker``).

All three use conf 0.25, class-aware NMS IoU 0.7, every class, the first ``--frames`` frames
(every frame). Each run is its own subprocess pinned to the same cores; within a round the
tools alternate (the order rotates every round) so drift in machine load hits each of them;
``/proc/loadavg`` is recorded before and after every run; medians over ``--rounds``.

Per run: steady-state fps and CPU ms per frame (frames ``--warm``..end, so session creation and
warm-up — which Ultralytics does inside its loop — are left out; CPU ms per frame is the less
contention-sensitive number on a shared box), time to the first result, peak RSS of the process
(imports and model included). Agreement: each baseline's boxes before tracking, matched one to
one to ours by class at IoU ≥ 0.5 (F1), and the share of matched pairs at IoU ≥ 0.99.

    python -m benchmarks.vs_baselines --clip ../shared/sample_videos/highway_1280x720.mp4 \\
        --model int8=../shared/models/yolov8n_int8_dynamic.onnx:square:agree \\
        --model yolo11n_random=benchmarks/out/yolo11n_random_dynamic.onnx:square,rect \\
        --frames 100 --rounds 3 --out benchmarks/results/DATE_cpu-2core_vs_baselines.json

Ultralytics and supervision run in the interpreter given by ``--ultralytics-python`` /
``--supervision-python`` (or ``SHARPEYES_ULTRALYTICS_PYTHON`` / ``SHARPEYES_SUPERVISION_PYTHON``),
else in this one when it has them (``pip install 'sharpeyes[bench-baselines]'`` adds supervision
and trackers); a tool with neither is skipped, and the table and JSON say so. Prints a table with
the ratios (ours against each tool, from the medians of the same rounds) and writes JSON
(``--out``, default ``benchmarks/out/vs_baselines.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _cli

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_baseline_workers.py")
TOOLS = ("sharpeyes", "ultralytics", "supervision")
Box = Sequence[float]
FrameDets = dict[str, Any]  # {"xyxy": [[x1, y1, x2, y2], …], "cls": [int, …]}


# --- pure bookkeeping (unit-tested) ----------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    """IoU of two xyxy boxes (0 when the union is empty)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_frame(a: FrameDets, b: FrameDets, min_iou: float = 0.5) -> list[float]:
    """IoUs of the one-to-one same-class pairs, matched greedily from the highest IoU."""
    pairs = sorted(
        (
            (iou(x, y), i, j)
            for i, (x, ca) in enumerate(zip(a["xyxy"], a["cls"], strict=True))
            for j, (y, cb) in enumerate(zip(b["xyxy"], b["cls"], strict=True))
            if ca == cb
        ),
        reverse=True,
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    out: list[float] = []
    for v, i, j in pairs:
        if v < min_iou:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append(v)
    return out


def agreement(ours: Sequence[FrameDets], other: Sequence[FrameDets]) -> dict[str, float]:
    """F1 of ``other``'s boxes against ours over the frames both have, and the share of matched
    pairs with IoU ≥ 0.99."""
    n = min(len(ours), len(other))
    ious = [v for a, b in zip(ours[:n], other[:n], strict=True) for v in match_frame(a, b)]
    n_a = sum(len(f["cls"]) for f in ours[:n])
    n_b = sum(len(f["cls"]) for f in other[:n])
    return {
        "frames": n,
        "ours_boxes": n_a,
        "their_boxes": n_b,
        "matched": len(ious),
        "f1_iou50": round(2 * len(ious) / (n_a + n_b), 4) if n_a + n_b else 1.0,
        "share_matched_iou99": round(sum(v >= 0.99 for v in ious) / len(ious), 4) if ious else 0.0,
    }


def steady(stamps: Sequence[Sequence[float]], warm: int) -> dict[str, float]:
    """Steady-state numbers from per-frame ``(wall_s, cpu_s)`` stamps (since the loop began),
    leaving out the first ``warm`` frames; plus time to the first result."""
    if len(stamps) <= warm:
        raise ValueError(f"{len(stamps)} frames recorded, need more than warm={warm}")
    w0, c0 = (stamps[warm - 1][0], stamps[warm - 1][1]) if warm > 0 else (0.0, 0.0)
    n = len(stamps) - warm
    wall = stamps[-1][0] - w0
    cpu = stamps[-1][1] - c0
    return {
        "fps": round(n / wall, 3) if wall > 0 else 0.0,
        "cpu_ms_per_frame": round(1000 * cpu / n, 2),
        "first_result_s": round(stamps[0][0], 3),
        "wall_s": round(stamps[-1][0], 3),
        "cpu_s": round(stamps[-1][1], 3),
    }


def parse_loadavg(text: str) -> list[float]:
    """``/proc/loadavg`` → [1 min, 5 min, 15 min]."""
    parts = text.split()
    if len(parts) < 3:
        raise ValueError(f"not a loadavg line: {text!r}")
    return [float(p) for p in parts[:3]]


def round_order(tools: Sequence[str], r: int) -> list[str]:
    """Tools in round ``r``'s order: rotated by one each round, so none always runs first."""
    k = r % len(tools) if tools else 0
    return [*tools[k:], *tools[:k]]


def median_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the per-run numbers, and the spread of the two that matter most."""
    keys = ("fps", "cpu_ms_per_frame", "peak_rss_mib", "first_result_s")
    out: dict[str, Any] = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    for k in ("fps", "cpu_ms_per_frame"):
        out[f"{k}_range"] = [min(r[k] for r in runs), max(r[k] for r in runs)]
    out["load1_median"] = round(statistics.median(r["loadavg_before"][0] for r in runs), 2)
    out["rounds"] = len(runs)
    return out


def ratios(summary: dict[str, dict[str, Any]], ours: str = "sharpeyes") -> dict[str, Any]:
    """Ours against each other tool: fps ×, CPU per frame ×, peak RSS share."""
    me = summary[ours]
    out: dict[str, Any] = {}
    for tool, s in summary.items():
        if tool == ours:
            continue
        out[f"vs_{tool}"] = {
            "fps_x": round(me["fps"] / s["fps"], 2) if s["fps"] else None,
            "cpu_per_frame_x": round(s["cpu_ms_per_frame"] / me["cpu_ms_per_frame"], 2)
            if me["cpu_ms_per_frame"]
            else None,
            "peak_rss_share": round(me["peak_rss_mib"] / s["peak_rss_mib"], 2),
        }
    return out


@dataclass(frozen=True, slots=True)
class Case:
    """One model file at one input mode."""

    label: str
    onnx: Path
    mode: str  # "square" | "rect"
    agree: bool  # report agreement (trained weights only)


def parse_model(text: str) -> list[Case]:
    """``LABEL=PATH[:MODES][:agree]`` → one case per mode (MODES: ``square``, ``rect``, comma
    separated; default ``square``)."""
    label, sep, rest = text.partition("=")
    if not sep or not label:
        raise ValueError(f"--model {text!r}: expected LABEL=PATH[:square,rect][:agree]")
    path, *opts = rest.split(":")
    agree = "agree" in opts
    modes = [m for o in opts if o != "agree" for m in o.split(",")] or ["square"]
    bad = [m for m in modes if m not in ("square", "rect")]
    if bad:
        raise ValueError(f"--model {text!r}: unknown input mode(s) {bad}")
    return [Case(label, Path(path), m, agree) for m in modes]


# --- driver ----------------------------------------------------------------------------------


def _loadavg() -> list[float]:
    return parse_loadavg(Path("/proc/loadavg").read_text(encoding="ascii"))


def _run(python: str, tool: str, case: Case, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [python, str(WORKER), tool, "--clip", str(args.clip), "--onnx", str(case.onnx)]
    cmd += ["--frames", str(args.frames), "--size", str(args.size), "--mode", case.mode]
    if args.cores:
        cmd = ["taskset", "-c", args.cores, *cmd]
    env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    before = _loadavg()
    out = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, check=False, timeout=1800, env=env
    )
    after = _loadavg()
    if out.returncode != 0:
        raise RuntimeError(f"{tool} {case.label}: {out.stderr.strip().splitlines()[-5:]}")
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    data.update(steady(data.pop("stamps"), args.warm))
    data["loadavg_before"], data["loadavg_after"] = before, after
    return data


def _progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


TOOL_MODULES = {"ultralytics": ("ultralytics",), "supervision": ("supervision", "trackers")}


def pick_pythons(
    tools: Sequence[str], given: dict[str, str | None], importable: Any = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The interpreter of each tool, and the reason of each tool left out: the one given, else
    this interpreter when it can import the tool's packages."""
    import importlib.util

    if importable is None:

        def importable(name: str) -> bool:
            return importlib.util.find_spec(name) is not None

    pythons: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for tool in tools:
        if tool == "sharpeyes":
            pythons[tool] = sys.executable
        elif given.get(tool):
            pythons[tool] = str(given[tool])
        elif all(importable(m) for m in TOOL_MODULES[tool]):
            pythons[tool] = sys.executable
        else:
            flag = f"--{tool}-python / SHARPEYES_{tool.upper()}_PYTHON"
            need = " and ".join(TOOL_MODULES[tool])
            skipped[tool] = f"no interpreter with {need} ({flag})"
    return pythons, skipped


def run_all(args: argparse.Namespace, cases: list[Case]) -> dict[str, Any]:
    pythons, skipped = pick_pythons(
        args.tools,
        {"ultralytics": args.ultralytics_python, "supervision": args.supervision_python},
    )
    for tool, why in skipped.items():
        _progress(f"skipping {tool}: {why}")
    tools = [t for t in args.tools if t in pythons]
    machine = _cli.machine()
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for ci, case in enumerate(cases):
            for tool in round_order(tools, r + ci):
                res = _run(pythons[tool], tool, case, args)
                runs.setdefault((ci, tool), []).append(res)
                _progress(
                    f"round {r + 1} {case.label}/{case.mode} {tool}: {res['fps']} fps, "
                    f"{res['cpu_ms_per_frame']} CPU ms/frame, {res['peak_rss_mib']} MiB, "
                    f"load {res['loadavg_before'][0]}"
                )
    rows = []
    for ci, case in enumerate(cases):
        per_tool = {t: runs[(ci, t)] for t in tools}
        summary = {t: median_summary(rs) for t, rs in per_tool.items()}
        for t, rs in per_tool.items():
            summary[t].update(
                input_hw=rs[0]["input_hw"],
                version=rs[0]["version"],
                boxes=rs[0]["boxes"],
                tracked_boxes=rs[0]["tracked_boxes"],
                runs=[{k: v for k, v in x.items() if k != "detections"} for x in rs],
            )
        row: dict[str, Any] = {
            "model": case.label,
            "onnx": str(case.onnx),
            "mode": case.mode,
            "tools": summary,
        }
        if "sharpeyes" in summary:
            row["ratios"] = ratios(summary)
        if case.agree and "sharpeyes" in per_tool:
            ours = per_tool["sharpeyes"][0]["detections"]
            row["agreement_with_sharpeyes"] = {
                t: agreement(ours, rs[0]["detections"])
                for t, rs in per_tool.items()
                if t != "sharpeyes"
            }
        rows.append(row)
    return {
        "benchmark": "vs_baselines",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            **machine,
            "cpus_visible": os.cpu_count(),
            "cores_pinned": args.cores or "all",
            "load_avg_after": _cli.load_avg(),
            "note": args.note,
        },
        "tools_skipped": skipped,
        "providers": ["CPUExecutionProvider"],
        "clip": str(args.clip),
        "frames": args.frames,
        "warm_frames_excluded": args.warm,
        "rounds": args.rounds,
        "settings": {"conf": 0.25, "iou": 0.7, "classes": "all", "nms": "class-aware"},
        "cases": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=_cli.existing_file, required=True)
    ap.add_argument(
        "--model",
        action="append",
        required=True,
        type=model_arg,
        help="LABEL=PATH[:MODES][:agree]",
    )
    ap.add_argument("--frames", type=_cli.positive_int, default=100)
    ap.add_argument(
        "--warm", type=_cli.non_negative_int, default=5, help="first frames left out of fps and CPU"
    )
    ap.add_argument("--rounds", type=_cli.positive_int, default=3)
    ap.add_argument(
        "--size", type=_cli.positive_int, default=640, help="long side of the model input"
    )
    ap.add_argument("--cores", default="0,1", help="taskset core list ('' = no pinning)")
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--ultralytics-python", default=os.environ.get("SHARPEYES_ULTRALYTICS_PYTHON"))
    ap.add_argument("--supervision-python", default=os.environ.get("SHARPEYES_SUPERVISION_PYTHON"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/out/vs_baselines.json")
    ap.add_argument("--note", default="", help="free text kept with the machine in the JSON")
    args = ap.parse_args(argv)
    if args.frames <= args.warm:
        ap.error(f"--frames {args.frames} must be more than --warm {args.warm}")
    cases = [c for group in args.model for c in group]
    result = run_all(args, cases)
    text = json.dumps(result, indent=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(format_table(result) + "\n")
    sys.stdout.write(f"JSON: {args.out}\n")
    return 0


def model_arg(text: str) -> list[Case]:
    """argparse type of ``--model``: its cases, the ONNX file checked to exist."""
    try:
        cases = parse_model(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not cases[0].onnx.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: {cases[0].onnx}: no such file")
    return cases


def format_table(result: dict[str, Any]) -> str:
    """Markdown table: tool × model × fps / CPU ms per frame / peak RSS / agreement, with the
    ratios of ours against each tool beside them (medians of the same rounds)."""
    m = result.get("machine", {})
    lines = [
        f"clip {Path(result['clip']).name} · {result['frames']} frames "
        f"({result['warm_frames_excluded']} warm-up left out) · {result['rounds']} rounds "
        f"(medians) · {', '.join(result.get('providers', []))} · cores {m.get('cores_pinned')}",
        f"machine: {_cli.machine_line(m)}",
    ]
    for tool, why in result.get("tools_skipped", {}).items():
        lines.append(f"skipped {tool}: {why}")
    lines += [
        "",
        "| model | input | tool | fps (median) | CPU ms/frame | peak RSS MiB | agreement F1 "
        "| ours: fps × | their CPU/frame ÷ ours | our RSS share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["cases"]:
        agree = row.get("agreement_with_sharpeyes", {})
        for tool, s in row["tools"].items():
            hw = "×".join(str(v) for v in s["input_hw"] or [])
            f1 = "—" if tool == "sharpeyes" else str(agree.get(tool, {}).get("f1_iou50", "—"))
            r = row.get("ratios", {}).get(f"vs_{tool}", {})
            ratio_cells = [
                str(r.get(k, "—")) for k in ("fps_x", "cpu_per_frame_x", "peak_rss_share")
            ]
            lines.append(
                f"| {row['model']} | {hw} ({row['mode']}) | {tool} | {s['fps']} | "
                f"{s['cpu_ms_per_frame']} | {s['peak_rss_mib']} | {f1} | "
                + " | ".join(ratio_cells)
                + " |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
