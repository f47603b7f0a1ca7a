"""What every benchmark shares: argument checks that fail with a clear message, and the machine
record written next to the numbers (``../shared/docs/BENCHMARKS.md``: model, input size,
providers, threads and the machine — cores, CPU, GPU, load — beside every result)."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must not be negative")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must not be negative")
    return value


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated integers ≥ 1 (``2,4,6``)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 2,4")
    return [positive_int(p) for p in parts]


def hxw(text: str) -> tuple[int, int]:
    """argparse type: ``HxW`` (``384x640``), both ≥ 1."""
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HxW, e.g. 384x640")
    h, w = (positive_int(p) for p in parts)
    return h, w


def existing_file(text: str) -> Path:
    """argparse type: a path to a file that exists."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def existing_dir(text: str) -> Path:
    """argparse type: a path to a folder that exists."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return path


def load_avg() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what ``platform`` knows."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    """GPU names from ``nvidia-smi`` (empty when there is none)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def machine() -> dict[str, Any]:
    """The machine the numbers came from: cores (visible and usable), CPU, GPUs, load, versions."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "gpus": gpus(),
        "load_avg": load_avg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def machine_line(m: dict[str, Any]) -> str:
    """One line for a table header: ``2 cores (Intel …) · no GPU · load 1.2/0.9/0.8``."""
    gpu = ", ".join(m.get("gpus") or []) or "no GPU"
    load = "/".join(f"{v:g}" for v in m.get("load_avg") or []) or "n/a"
    return f"{m.get('cores')} cores ({m.get('cpu')}) · {gpu} · load {load}"


def analyze(video: Path, config: Path, out: Path, *extra: str) -> Path:
    """``sharpeyes analyze VIDEO --config CONFIG --out OUT --no-progress [EXTRA…]`` as a user
    runs it, from the repository; the events file (its summary, what it printed, beside it as
    ``analyze.txt``). Fails with the command's last words."""
    cmd = [sys.executable, "-m", "sharpeyes.api.commands.cli", "analyze", str(video)]
    cmd += ["--config", str(config), "--out", str(out), "--no-progress", *extra]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"analyze failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    (out / "analyze.txt").write_text(proc.stdout, encoding="utf-8")
    return out / "events.jsonl"
