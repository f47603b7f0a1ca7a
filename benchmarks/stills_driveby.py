"""Checkpoint plates on cars the project was never tuned on: labelled stills driven past a camera.

    python -m benchmarks.stills_driveby --out DIR [--config CONFIG] [--stills DIR] [--json]

The only checkpoint footage in ``../shared/sample_videos`` is the Beijing clip, whose labels the
checkpoint settings were chosen on, and it holds no new-energy (green, eight-character) plate
and no double-layer one. ``../shared/images/plates`` holds labelled photographs of other cars
(CCPD-style phone pictures, HyperLPR's street photo, a van with a double-layer yellow plate;
``SOURCES.md`` there). This benchmark renders them into a checkpoint-style clip: each still
comes down a grey road towards the camera in ``--seconds`` (its plate growing from ``far_px``
to ``near_px`` wide, its centre from the top of the picture to the bottom, as a car driving
under a checkpoint camera), one after the other with empty road between. It writes the clip,
its labels in :mod:`benchmarks.eval_plates`' format (the plate, the body colour by eye, the
frames each car is in the picture), runs ``sharpeyes analyze`` on it with ``--config`` (the
Beijing checkpoint's by default) and scores the events with :func:`benchmarks.eval_plates.
evaluate`: exact plates, false plates, duplicates, missed cars, body colours — plus the plate
colour and layers the events state against the labels'.

A still is a flat picture: no parallax, no motion blur, the car's own background moves with
it. What it measures is the plate path — detection on a body the detector has not seen, plate
tracking, reading a plate that is readable for a second or so, fusion of eight-character and
double-layer plates — not the vehicle detector on real traffic.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from benchmarks import _cli
from benchmarks.eval_plates import evaluate, labels_from, load_events, load_labels, match
from sharpeyes.pipeline.structuring.plate_fusion import REASON_NONE_VISIBLE
from sharpeyes.pipeline.types import ImageBGR

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STILLS = ROOT.parent / "shared" / "images" / "plates"
DEFAULT_CONFIG = ROOT / "sample_videos" / "plates_closeup_beijing.yaml"
NO_PLATE = REASON_NONE_VISIBLE


@dataclass(frozen=True)
class Still:
    """One labelled photograph: its plate (text, colour, layers: ``labels.csv`` there), the
    plate's box in the picture (px, measured with ``plate_det_640`` on the still and checked by
    eye), the part of the picture that is driven (fractions x1, y1, x2, y2: the car, without a
    second car's plate) and the body colour (by eye)."""

    file: str
    plate: str
    plate_colour: str
    layers: int
    plate_box: tuple[int, int, int, int]
    body: str
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    plateless: bool = False  # the plate painted out (inpainted from the bumper around it)


STILLS: tuple[Still, ...] = (
    Still("ccpd_01.jpg", "皖AD07098", "green", 1, (223, 481, 593, 594), "white"),
    Still("ccpd_02.jpg", "皖AD09340", "green", 1, (160, 475, 563, 583), "white"),
    Still("ccpd_03.jpg", "皖MD15666", "green", 1, (151, 428, 474, 538), "white"),
    Still("ccpd_04.jpg", "皖AD02281", "green", 1, (203, 426, 531, 556), "white"),
    Still("ccpd_05.jpg", "皖AD09533", "green", 1, (249, 457, 467, 522), "white"),
    # the parked car to the left shows part of another plate (皖ATV005): left out
    Still("ccpd_06.jpg", "皖AQ5000", "blue", 1, (309, 371, 509, 438), "white", (0.25, 0, 1, 1)),
    # without the lorry behind (07) and the scooters beside (08)
    Still("ccpd_07.jpg", "湘D8XW63", "blue", 1, (260, 493, 452, 555), "grey", (0, 0.17, 1, 1)),
    Still("ccpd_08.jpg", "皖AD5D13", "blue", 1, (356, 417, 533, 482), "grey", (0.2, 0.18, 1, 1)),
    Still("ccpd_09.jpg", "甘MBH558", "blue", 1, (221, 523, 407, 586), "white"),
    Still("ccpd_10.jpg", "皖A8A503", "blue", 1, (279, 511, 481, 594), "black"),
    # the van without the cars parked along the street
    Still(
        "we_double_yellow.jpg",
        "京EA5331",
        "yellow",
        2,
        (212, 230, 286, 272),
        "white",
        (0.19, 0.0, 0.74, 1.0),
    ),
    # the white car on the right of the street photo, without the scooter and the van
    Still(
        "hyperlpr_test_img.jpg",
        "苏ED51712",
        "green",
        1,
        (1749, 740, 1869, 857),
        "white",
        (0.36, 0.3, 1.0, 0.95),
    ),
)


PLATELESS: tuple[Still, ...] = (
    # ccpd_09's car again, its plate painted out: a vehicle without a plate (无牌)
    Still("ccpd_09.jpg", "甘MBH558", "blue", 1, (221, 523, 407, 586), "white", plateless=True),
)
"""Driven after :data:`STILLS`: by then the camera has found plates on twelve cars, and a car
the same size and shape with none is one it can say is plateless (``no_plate_visible``)."""
DRIVE: tuple[Still, ...] = STILLS + PLATELESS


@dataclass(frozen=True)
class Drive:
    """How the stills are driven: picture size, frame rate, seconds each car is in the picture
    and of empty road before each, and the plate's width far and near (px)."""

    width: int = 640
    height: int = 360
    fps: int = 25
    seconds: float = 2.4
    gap: float = 0.8
    far_px: float = 32.0
    near_px: float = 110.0


def road(drive: Drive) -> ImageBGR:
    """An empty grey road with two lane lines converging upwards and a little sensor noise."""
    w, h = drive.width, drive.height
    rng = np.random.default_rng(0)
    img = np.full((h, w, 3), (92, 96, 98), np.int16) + rng.integers(-8, 9, (h, w, 1))
    out: ImageBGR = np.clip(img, 0, 255).astype(np.uint8)
    for x in (w * 0.23, w * 0.77):
        bottom = x + (x - w / 2) / 3
        cv2.line(out, (round(x), 0), (round(bottom), h), (220, 220, 220), 4)
    return out


def place(
    frame: ImageBGR,
    photo: ImageBGR,
    plate: tuple[float, float, float, float],
    *,
    centre: tuple[float, float],
    plate_w: float,
) -> None:
    """Paste ``photo`` scaled so that its ``plate`` box is ``plate_w`` px wide and centred on
    ``centre`` (clipped by the frame)."""
    scale = plate_w / (plate[2] - plate[0])
    ph, pw = photo.shape[:2]
    size = (max(1, round(pw * scale)), max(1, round(ph * scale)))
    img = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    x0 = round(centre[0] - scale * (plate[0] + plate[2]) / 2)
    y0 = round(centre[1] - scale * (plate[1] + plate[3]) / 2)
    h, w = frame.shape[:2]
    xs, ys, xe, ye = max(0, x0), max(0, y0), min(w, x0 + size[0]), min(h, y0 + size[1])
    if xe > xs and ye > ys:
        frame[ys:ye, xs:xe] = img[ys - y0 : ye - y0, xs - x0 : xe - x0]


def _photo(still: Still, stills: Path) -> tuple[ImageBGR, tuple[float, float, float, float]]:
    """The driven part of the still and its plate box in that part's pixels."""
    image = cv2.imread(str(stills / still.file))
    if image is None:
        raise FileNotFoundError(f"{stills / still.file}: not found or not a picture")
    h, w = image.shape[:2]
    x1, y1 = round(still.crop[0] * w), round(still.crop[1] * h)
    x2, y2 = round(still.crop[2] * w), round(still.crop[3] * h)
    b = still.plate_box
    if still.plateless:
        # the plate's frame and screws too (a narrower mask leaves a blue smear the detector
        # takes for a plate at 0.35–0.6)
        mx, my = round((b[2] - b[0]) * 0.15), round((b[3] - b[1]) * 0.5)
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[max(0, b[1] - my) : b[3] + my, max(0, b[0] - mx) : b[2] + mx] = 255
        image = cv2.inpaint(image, mask, 9, cv2.INPAINT_TELEA)
    return np.asarray(image[y1:y2, x1:x2]), (b[0] - x1, b[1] - y1, b[2] - x1, b[3] - y1)


def render(
    out: Path, stills: Path, cars: Sequence[Still] = DRIVE, drive: Drive = Drive()
) -> dict[str, Any]:
    """Write the clip to ``out`` (H.264, CRF 20) and return its labels
    (:func:`benchmarks.eval_plates.load_labels`' format, plus each car's plate colour and
    layers)."""
    background = road(drive)
    per, gap = round(drive.seconds * drive.fps), round(drive.gap * drive.fps)
    vehicles: list[dict[str, Any]] = []
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=drive.fps)
        stream.width, stream.height, stream.pix_fmt = drive.width, drive.height, "yuv420p"
        stream.options = {"crf": "20", "g": str(2 * drive.fps)}

        def emit(img: ImageBGR) -> None:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))

        index = 0
        for n, still in enumerate(cars):
            photo, plate = _photo(still, stills)
            for _ in range(gap):
                emit(background)
                index += 1
            first = index
            for k in range(per):
                t = k / max(per - 1, 1)
                frame = background.copy()
                centre = (drive.width / 2, drive.height * (0.12 + 0.8 * t))
                width = drive.far_px + (drive.near_px - drive.far_px) * t
                place(frame, photo, plate, centre=centre, plate_w=width)
                emit(frame)
                index += 1
            vehicles.append(
                {
                    "id": n + 1,
                    "still": still.file,
                    "plate": None if still.plateless else still.plate,
                    "plateless": still.plateless,
                    "plate_colour": None if still.plateless else still.plate_colour,
                    "layers": None if still.plateless else still.layers,
                    "body_color": still.body,
                    "vehicle_frames": [first, index - 1],
                    "plate_frames": None if still.plateless else [first, index - 1],
                }
            )
        for _ in range(gap):
            emit(background)
        container.mux(stream.encode(None))
    return {"fps": drive.fps, "source": "benchmarks/stills_driveby.py", "vehicles": vehicles}


def plate_attributes(events_path: Path, labels: dict[str, Any]) -> dict[str, str]:
    """Per labelled plate that some event states exactly: whether that event's plate colour
    and layers are the label's (``ok`` or what was stated instead)."""
    stated: dict[str, dict[str, Any]] = {}
    for line in events_path.read_text(encoding="utf-8").splitlines():
        e = json.loads(line) if line.strip() else {}
        plate = e.get("plate") or {}
        if e.get("type") == "vehicle_pass" and plate.get("text"):
            stated.setdefault(plate["text"], plate)
    out: dict[str, str] = {}
    for v in labels["vehicles"]:
        p = stated.get(v["plate"])
        if p is not None:
            ok = p.get("color") == v["plate_colour"] and p.get("layers", 1) == v["layers"]
            out[v["plate"]] = "ok" if ok else f"{p.get('color')}, {p.get('layers', 1)} layer(s)"
    return out


def plateless_said(events_path: Path, labels: dict[str, Any]) -> list[str]:
    """The ``plate_status`` of the event matched to each plateless car (``no_plate_visible``:
    said to have no plate; "no event" where none was matched)."""
    fps, vehicles = labels_from(labels)
    matched, _ = match(vehicles, load_events(events_path, fps))
    plateless = {v["id"] for v in labels["vehicles"] if v.get("plateless")}
    return [
        (evs[0].status if evs else None) or "no event"
        for vid, evs in sorted(matched.items())
        if vid in plateless
    ]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="a new folder for clip and results")
    ap.add_argument("--config", type=_cli.existing_file, default=DEFAULT_CONFIG)
    ap.add_argument("--stills", type=_cli.existing_dir, default=DEFAULT_STILLS)
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    args = ap.parse_args(argv)
    if args.out.exists():
        ap.error(f"--out {args.out} exists: give a new folder")
    args.out.mkdir(parents=True)
    clip, labels_path = args.out / "driveby.mp4", args.out / "labels.json"
    labels = render(clip, args.stills)
    labels_path.write_text(json.dumps(labels, ensure_ascii=False, indent=1), encoding="utf-8")
    start = ("--start-time", "2026-12-01T10:00:00")
    events_path = _cli.analyze(clip, args.config, args.out / "analysis", *start)
    fps, vehicles = load_labels(labels_path)
    report = evaluate(vehicles, load_events(events_path, fps))
    attributes = plate_attributes(events_path, labels)
    plateless = plateless_said(events_path, labels)
    r = report.to_json()
    lines = [
        f"clip                     {clip} ({len(vehicles)} cars)",
        f"exact-plate accuracy     {r['plates_exact']}/{r['readable_plates']}",
        f"false plates             {len(r['false_plates'])} {r['false_plates'] or ''}",
        f"duplicate events         {r['duplicates']}",
        f"missed cars              {len(r['missed_vehicles'])} {r['missed_vehicles'] or ''}",
        f"plate colour and layers  {sum(a == 'ok' for a in attributes.values())}/"
        f"{len(attributes)} of the plates read"
        + "".join(f"; {k}: {a}" for k, a in attributes.items() if a != "ok"),
        f"body colour              {r['color_ok']}",
        f"plateless cars, 无牌     {plateless.count(NO_PLATE)}/{len(plateless)}"
        + (f" ({', '.join(plateless)})" if set(plateless) - {NO_PLATE} else ""),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        doc = {**r, "plate_attributes": attributes, "plateless": plateless}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False))
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
