"""Cost of the violation suite: time the rules add per analysed frame per camera.

    python -m benchmarks.rules_cost [--frames 3000] [--tracks 30] [--repeats 3] [--json PATH]

One camera of the synthetic intersection (``tests/scenarios/scene.py``) with every violation
rule configured (wrong-way with a travel zone, lane direction, no-turn, solid line, parking,
yield to pedestrians) and ``--tracks`` live tracks in every frame: vehicles driving up the three
lanes (some turning, some changing lanes over the solid line, one driving the wrong way), cars
parked in the no-parking zone and pedestrians on the zebra; a track that leaves is replaced by
a new id, so the state machines see arrivals, decisions and evictions all the time.

Per frame it times the baseline rules (red-light + pedestrian red-light) and each added rule
separately, over the same tracks and signals, both as CPU time of the thread
(``thread_time_ns``: what the rules cost, robust on a shared machine) and as wall time
(``perf_counter_ns``: what a loaded machine adds on top), and reports the median, p90 and mean
of each and of all added rules together (the budget: < 1 ms at 30 tracks, on the CPU median).
With several ``--repeats`` the run whose added-total CPU median is the median of the runs is
reported (BENCHMARKS.md: medians over several runs), each run's added-total median beside it.
Prints a table (milliseconds per analysed frame) and one JSON object with the machine, also
written to ``--json`` (default ``benchmarks/out/rules_cost.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _cli
from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.rules import RULES
from sharpeyes.pipeline.types import Frame, LampColor, ObjectKind, SignalState, Tracks
from tests.scenarios.scene import LANE_CENTRES, LANE_X, STOP_Y, scene_calibration

REPO = Path(__file__).resolve().parents[1]

W, H = 640, 360
FPS = 10.0
BASELINE = ("red_light", "pedestrian_red_light")
ADDED = ("wrong_way", "movement", "solid_line", "illegal_parking", "yield_pedestrian")
"""The registry entries of the suite ("movement" judges lane direction and no-turn together)."""


def full_calibration() -> IntersectionCalibration:
    """The synthetic scene with every rule of the suite configured."""
    curb = [[0.72, 0.20], [0.95, 0.20], [0.95, 0.98], [0.72, 0.98]]
    return scene_calibration(
        wrong_way={
            "zones": [
                {
                    "id": "exit",
                    "polygon": [[0.30, 0.08], [0.70, 0.08], [0.70, 0.50], [0.30, 0.50]],
                    "travel": [[0.5, 0.45], [0.5, 0.15]],
                }
            ]
        },
        lane_direction={},
        no_turn={"prohibited": [{"movement": "left", "approach": "south"}]},
        solid_lines={
            "lines": [{"id": "s", "points": [[LANE_X[1], STOP_Y + 0.01], [LANE_X[1], 1]]}]
        },
        # three cars park along the curb: not a jam (that needs four standing and none moving)
        parking={"zones": [{"id": "curb", "polygon": curb}], "dwell_s": 20.0, "jam_min_stopped": 4},
        yield_to_pedestrians={},
    )


class Traffic:
    """``n`` tracks alive in every frame; each follows a scripted motion and is replaced by a
    fresh id when it ends."""

    def __init__(self, n: int, seed: int = 3) -> None:
        self.rng = np.random.default_rng(seed)
        self.next_id = 1
        # the first ones start part-way along their paths, so arrivals are spread out
        self.tracks: list[dict[str, Any]] = [self._spawn(-0.3 * (i % 7), i) for i in range(n)]

    def _spawn(self, t: float, slot: int) -> dict[str, Any]:
        tid, self.next_id = self.next_id, self.next_id + 1
        r = slot % 10
        if r in (0, 1):
            return {"id": tid, "kind": ObjectKind.PERSON, "t0": t, "mode": "walk", "slot": slot}
        if r == 2:
            return {"id": tid, "kind": ObjectKind.MOTOR_VEHICLE, "t0": t, "mode": "park",
                    "slot": slot}  # fmt: skip
        mode = ("straight", "left", "right", "change", "wrong", "straight", "straight")[r - 3]
        return {"id": tid, "kind": ObjectKind.MOTOR_VEHICLE, "t0": t, "mode": mode, "slot": slot}

    def _position(self, tr: dict[str, Any], t: float) -> tuple[float, float] | None:
        dt = t - tr["t0"]
        lane = LANE_CENTRES[tr["slot"] % 3]
        mode = tr["mode"]
        if mode == "walk":
            x = 0.22 + 0.06 * dt
            return (x, 0.63) if x < 0.78 else None
        if mode == "park":
            y = max(0.35 + 0.2 * (tr["slot"] // 10), 1.02 - 0.2 * dt)
            return (0.84, y) if dt < 40 else None
        if mode == "wrong":
            y = 0.72 + 0.1 * dt
            return (lane, y) if y < 1.02 else None
        y = 1.02 - 0.25 * dt
        if mode == "change" and y < 0.96:  # from lane 2 over the solid line into lane 1
            lane = LANE_CENTRES[1] - min(0.1333, 0.96 - y)
        if mode in ("left", "right") and y < 0.64:
            k = 0.64 - y
            return (
                (lane + (3 * k if mode == "right" else -3 * k), 0.64 - k / 2) if k < 0.3 else None
            )
        return (lane, y) if y > 0.1 else None

    def at(self, t: float) -> Tracks:
        rows = []
        for i, old in enumerate(self.tracks):
            tr, p = old, self._position(old, t)
            if p is None:
                tr = self.tracks[i] = self._spawn(t, old["slot"])
                p = self._position(tr, t) or (0.5, 0.99)
            w = 0.03 if tr["kind"] is ObjectKind.PERSON else 0.07
            h = 0.10 if tr["kind"] is ObjectKind.PERSON else 0.09
            jx, jy = self.rng.normal(0.0, 1.5, 2)
            x, y = p[0] * W + jx, p[1] * H + jy
            rows.append((tr["id"], int(tr["kind"]), x - w * W / 2, y - h * H, x + w * W / 2, y))
        n = len(rows)
        return Tracks(
            xyxy=np.array([r[2:] for r in rows], np.float32).reshape(-1, 4),
            confidence=np.full(n, 0.8, np.float32),
            class_id=np.array([0 if r[1] == int(ObjectKind.PERSON) else 2 for r in rows]),
            kind=np.array([r[1] for r in rows], np.int8),
            track_id=np.array([r[0] for r in rows], np.int64),
            detected=np.ones(n, np.bool_),
        )


def run(frames: int, n_tracks: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(CPU ms, wall ms) per rule per frame, and the events each rule raised (``_events``)."""
    calib = full_calibration()
    rules = {name: RULES[name].build("bench", calib, (W, H)) for name in (*BASELINE, *ADDED)}
    assert all(RULES[name].wanted(calib) for name in rules)
    traffic = Traffic(n_tracks)
    image = np.zeros((1, 1, 3), np.uint8)
    times: dict[str, list[float]] = {name: [] for name in rules}
    walls: dict[str, list[float]] = {name: [] for name in rules}
    events: dict[str, int] = dict.fromkeys(rules, 0)
    for i in range(frames):
        pts = i / FPS
        frame = Frame("bench", i, pts, 1_700_000_000_000 + round(pts * 1000), image)
        tracks = traffic.at(pts)
        signals = {
            "main": SignalState("main", LampColor.GREEN, 1.0, 0.0, pts),
            "ped": SignalState("ped", LampColor.GREEN, 1.0, 0.0, pts),
        }
        for name, rule in rules.items():
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            events[name] += len(rule.update(frame, tracks, signals))
            times[name].append((time.thread_time_ns() - c0) / 1e6)
            walls[name].append((time.perf_counter_ns() - w0) / 1e6)
    times["_events"] = [float(events[n]) for n in rules]
    return times, walls


def summarise(times: dict[str, list[float]], warmup: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    added = [sum(x) for x in zip(*(times[n][warmup:] for n in ADDED), strict=True)]
    base = [sum(x) for x in zip(*(times[n][warmup:] for n in BASELINE), strict=True)]
    series = {**{n: times[n][warmup:] for n in (*BASELINE, *ADDED)}, "baseline_total": base,
              "added_total": added}  # fmt: skip
    for name, xs in series.items():
        q = statistics.quantiles(xs, n=10, method="inclusive")
        out[name] = {
            "median_ms": round(statistics.median(xs), 4),
            "p90_ms": round(q[-1], 4),
            "mean_ms": round(statistics.fmean(xs), 4),
        }
    return out


RunSummary = tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]


def median_run(runs: list[RunSummary]) -> RunSummary:
    """The run whose added-total CPU median is the median of the runs (the lower middle one of
    an even number), so every rule's row comes from one and the same run."""
    ordered = sorted(runs, key=lambda r: r[0]["added_total"]["median_ms"])
    return ordered[(len(ordered) - 1) // 2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=_cli.positive_int, default=3000)
    ap.add_argument("--tracks", type=_cli.positive_int, default=30)
    ap.add_argument(
        "--repeats", type=_cli.positive_int, default=3, help="runs; the median run is reported"
    )
    ap.add_argument(
        "--json", type=Path, default=REPO / "benchmarks/out/rules_cost.json", help="JSON path"
    )
    args = ap.parse_args(argv)
    if args.frames < 20:
        ap.error(f"--frames {args.frames}: at least 20 (a tenth is warm-up; p90 needs more)")
    warmup = min(100, args.frames // 10)
    runs: list[RunSummary] = []
    events: list[float] = []
    for _ in range(args.repeats):
        times, walls = run(args.frames, args.tracks)
        events = times.pop("_events")
        runs.append((summarise(times, warmup), summarise(walls, warmup)))
    best, best_wall = median_run(runs)
    machine = _cli.machine()
    print(f"rules cost per analysed frame (ms), {args.tracks} tracks, {args.frames} frames "
          f"(median of {args.repeats} runs) · machine: {_cli.machine_line(machine)}")  # fmt: skip
    print(f"{'rule':<22} {'cpu median':>10} {'cpu p90':>8} {'cpu mean':>8} {'wall median':>11}")
    for name, st in best.items():
        print(
            f"{name:<22} {st['median_ms']:>10.4f} {st['p90_ms']:>8.4f} {st['mean_ms']:>8.4f} "
            f"{best_wall[name]['median_ms']:>11.4f}"
        )
    result = {
        "benchmark": "rules_cost",
        "frames": args.frames,
        "tracks": args.tracks,
        "repeats": args.repeats,
        "machine": machine,
        "python": platform.python_version(),
        "budget_ms": 1.0,
        "load_average": list(os.getloadavg()),
        "added_cpu_median_ms": best["added_total"]["median_ms"],
        "added_cpu_median_ms_per_run": [r[0]["added_total"]["median_ms"] for r in runs],
        "added_wall_median_ms": best_wall["added_total"]["median_ms"],
        "within_budget": best["added_total"]["median_ms"] < 1.0,
        "events_last_run": dict(zip((*BASELINE, *ADDED), events, strict=True)),
        "per_rule_cpu": best,
        "per_rule_wall": best_wall,
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
