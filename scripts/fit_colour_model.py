"""Fit the vehicle colour model (``pipeline/structuring/colour_model.json``) from the labels.

    python scripts/fit_colour_model.py [--labels PATH] [--videos DIR] [--out PATH] [--check]

Takes every view of the labelled vehicle tracks (not ``unknown``) of the clips of the ``tune``
split of ``tests/data/colour_labels.json`` (the ``held_out`` clips are never used, so
``benchmarks/colour_eval.py`` scores them honestly), computes
:func:`~sharpeyes.pipeline.structuring.lab_colour.colour_features` exactly as the structuring
stage does (backdrop ring, vehicle region) and fits
:func:`~sharpeyes.pipeline.structuring.lab_colour.fit_colour_model` (deterministic gradient
descent, parameters rounded to 6 significant digits), so the JSON is re-made byte for byte.
``--check`` writes nothing and fails when the committed file differs from a fresh fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: the repository's `benchmarks` package

from benchmarks.colour_eval import DEFAULT_LABELS, DEFAULT_VIDEOS, UNKNOWN, collect, fit_views  # noqa: E402
from sharpeyes.pipeline.structuring.lab_colour import MODEL_PATH  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    ap.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = ap.parse_args(argv)
    views = [
        v
        for v in collect(args.labels, args.videos)
        if v.task == "vehicle" and v.split == "tune" and v.label != UNKNOWN
    ]
    model = fit_views(views)
    text = json.dumps(model.to_json(), indent=1) + "\n"
    counts = Counter(v.label for v in views if v.region is not None)
    sys.stdout.write(f"fitted on {sum(counts.values())} views: {dict(sorted(counts.items()))}\n")
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        sys.stdout.write("identical\n" if same else f"DIFFERS from {args.out}\n")
        return 0 if same else 1
    args.out.write_text(text)
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
