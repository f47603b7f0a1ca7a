"""De-identification: faces and non-subject plates blurred on real images,
the subject's plate still readable; subject choice and blurring on tiny builders."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from sharpeyes.models.plate import PlateReader
from sharpeyes.pipeline.evidence.deid import (
    BlurMethod,
    DeidDetectors,
    Found,
    Subject,
    blur_region,
    choose_subject_plate,
    default_detectors,
    deidentify,
    iou,
    scale_box,
)
from sharpeyes.pipeline.types import Box, ImageBGR

SUBJECT = "粤B556SA"
OTHERS = {"粤B989HW", "粤S62XF5", "京QFN577", "赣E68T91"}
# Faces of zidane.jpg (x, y, w, h as YuNet gives them), checked by eye.
ZIDANE_FACES = (Box(917, 99, 1054, 273, 1280, 720), Box(555, 260, 657, 420, 1280, 720))
# The white car on the right of we_multi_plates.jpg, whose plate is 粤B556SA.
SUBJECT_CAR = Box(1560, 560, 2016, 1000, 2016, 1512)


def load(path: Path) -> ImageBGR:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.asarray(image, np.uint8)


@pytest.fixture(scope="module")
def detectors(shared: Path) -> Iterator[DeidDetectors]:
    yield default_detectors()


@pytest.fixture(scope="module")
def readers(shared: Path) -> tuple[PlateReader, PlateReader]:
    """Two independent readers (both detector sizes) to re-read the output."""
    return PlateReader("plate_det_320", threads=1), PlateReader("plate_det_640", threads=1)


@pytest.fixture(scope="module")
def multi(shared: Path) -> ImageBGR:
    return load(shared / "images" / "plates" / "we_multi_plates.jpg")


@pytest.fixture(scope="module")
def zidane(shared: Path) -> ImageBGR:
    return load(shared / "images" / "zidane.jpg")


def readable(readers: tuple[PlateReader, ...], image: ImageBGR) -> set[str]:
    out: set[str] = set()
    for r in readers:
        out |= {p.text for p in r.read(image) if p.text is not None}
    return out


def raw_texts(readers: tuple[PlateReader, ...], image: ImageBGR) -> set[str]:
    return {p.raw_text for r in readers for p in r.read(image)}


def sharpness(image: ImageBGR, box: Box) -> float:
    crop = image[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)]
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


# -- real images --------------------------------------------------------------------------------


def test_zidane_both_faces_blurred_without_subject(
    detectors: DeidDetectors, zidane: ImageBGR
) -> None:
    result = deidentify(zidane, detectors)
    rep = result.report
    assert rep.faces_blurred >= 2 and rep.plates_blurred == 0
    blurred = [r.box for r in rep.regions if r.kind == "face" and r.action == "blurred"]
    for face in ZIDANE_FACES:
        assert max(iou(face, b) for b in blurred) > 0.6, face
        assert sharpness(result.image, face) < 0.05 * sharpness(zidane, face)
    again = detectors.faces.detect_faces(result.image)
    assert not any(iou(f.box, face) > 0.2 for f in again for face in ZIDANE_FACES), again
    assert result.image is not zidane and not np.shares_memory(result.image, zidane)


def test_zidane_pixels_outside_faces_untouched(detectors: DeidDetectors, zidane: ImageBGR) -> None:
    result = deidentify(zidane, detectors, method="pixelate")
    changed = np.any(result.image != zidane, axis=2)
    assert changed.sum() > 0
    mask = np.zeros(changed.shape, bool)
    for r in result.report.regions:  # the padded regions (15 % each side)
        b = r.box
        px, py = (b.x2 - b.x1) * 0.15 + 1, (b.y2 - b.y1) * 0.15 + 1
        mask[max(0, int(b.y1 - py)) : int(b.y2 + py), max(0, int(b.x1 - px)) : int(b.x2 + px)] = 1
    assert not changed[~mask].any()


@pytest.mark.parametrize("method", ["gaussian", "pixelate"])
def test_multi_plates_only_subject_stays_readable(
    detectors: DeidDetectors,
    readers: tuple[PlateReader, PlateReader],
    multi: ImageBGR,
    method: BlurMethod,
) -> None:
    assert readable(readers, multi) == {SUBJECT, *OTHERS}  # precondition: all 5 readable before
    result = deidentify(multi, detectors, Subject(plate_text=SUBJECT), method)
    rep = result.report
    assert (rep.plates_blurred, rep.count("plate", "kept")) == (4, 1)
    assert rep.subject_plate_kept
    assert readable(readers, result.image) == {SUBJECT}
    assert not raw_texts(readers, result.image) & OTHERS
    assert "text" not in str(rep.to_json())  # the report never carries plate texts


@pytest.mark.parametrize(
    "subject",
    [
        Subject(vehicle_box=SUBJECT_CAR),
        # plate box given in a half-resolution frame: scaled to the image
        Subject(plate_box=Box(910, 416, 972, 439, 1008, 756)),
        # wrong text (a misread): falls back to the vehicle box
        Subject(vehicle_box=SUBJECT_CAR, plate_text="粤B556S4"),
    ],
    ids=["vehicle-box", "plate-box-scaled", "misread-text"],
)
def test_subject_found_without_matching_text(
    detectors: DeidDetectors,
    readers: tuple[PlateReader, PlateReader],
    multi: ImageBGR,
    subject: Subject,
) -> None:
    result = deidentify(multi, detectors, subject)
    assert result.report.plates_blurred == 4
    assert readable(readers, result.image) == {SUBJECT}


def test_no_subject_blurs_every_plate(
    detectors: DeidDetectors, readers: tuple[PlateReader, PlateReader], multi: ImageBGR
) -> None:
    result = deidentify(multi, detectors)
    assert result.report.plates_blurred == 5 and not result.report.subject_plate_kept
    assert readable(readers, result.image) == set()
    assert not raw_texts(readers, result.image) & {SUBJECT, *OTHERS}


# -- logic on builders ----------------------------------------------------------------------------


def box(x1: float, y1: float, x2: float, y2: float) -> Box:
    return Box(x1, y1, x2, y2, 400, 300)


@dataclass
class Fixed:
    """A detector that returns fixed regions."""

    faces: list[Found]
    plates: list[Found]

    def detect_faces(self, image: ImageBGR) -> list[Found]:
        return list(self.faces)

    def detect_plates(self, image: ImageBGR) -> list[Found]:
        return list(self.plates)


def fixed(faces: list[Found], plates: list[Found]) -> DeidDetectors:
    d = Fixed(faces, plates)
    return DeidDetectors(faces=d, plates=d)


def noise(h: int = 300, w: int = 400) -> ImageBGR:
    return np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)


P_LEFT = Found(box(10, 200, 70, 220), 0.9, "京A11111")
P_MID = Found(box(150, 200, 210, 220), 0.8, None)
P_RIGHT = Found(box(300, 250, 360, 270), 0.7, "京A22222")


def test_choose_subject_prefers_text_then_plate_box_then_vehicle_box() -> None:
    plates = [P_LEFT, P_MID, P_RIGHT]
    assert choose_subject_plate(plates, Subject(plate_text="京A22222")) == 2
    assert choose_subject_plate(plates, Subject(plate_box=box(152, 201, 212, 221))) == 1
    assert choose_subject_plate(plates, Subject(plate_box=box(190, 200, 250, 220))) is None
    car = box(120, 100, 240, 230)
    assert choose_subject_plate(plates, Subject(vehicle_box=car)) == 1
    # two plates inside the car's box: the one nearest its bottom centre is the car's own
    big = box(100, 0, 400, 280)
    assert choose_subject_plate(plates, Subject(vehicle_box=big)) == 2
    assert choose_subject_plate(plates, Subject(vehicle_box=box(0, 0, 5, 5))) is None
    assert choose_subject_plate(plates, Subject()) is None
    assert choose_subject_plate([], Subject(plate_text="京A11111")) is None


def test_same_text_twice_picks_the_one_in_the_vehicle_box() -> None:
    twin = Found(P_RIGHT.box, 0.5, "京A11111")
    plates = [P_LEFT, twin]
    assert choose_subject_plate(plates, Subject(plate_text="京A11111")) == 0
    car = box(280, 150, 380, 290)
    assert choose_subject_plate(plates, Subject(car, None, "京A11111")) == 1


def test_kept_plate_is_byte_identical_even_next_to_a_blurred_one() -> None:
    img = noise()
    subject = Found(box(100, 100, 160, 120), 0.9, "京A11111")
    neighbour = Found(box(162, 100, 222, 120), 0.9, None)  # its padding overlaps the subject
    face = Found(box(20, 20, 60, 70), 0.9)
    out = deidentify(img, fixed([face], [subject, neighbour]), Subject(plate_text="京A11111"))
    assert np.array_equal(out.image[100:120, 100:160], img[100:120, 100:160])
    for b in (neighbour.box, face.box):
        crop_in = img[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)].astype(float)
        crop_out = out.image[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)].astype(float)
        assert crop_out.std() < 0.25 * crop_in.std()
    assert [r.action for r in out.report.regions] == ["kept", "blurred", "blurred"]
    assert out.report.to_json()["faces_blurred"] == 1


def test_pixelate_leaves_eight_blocks_across() -> None:
    img = noise()
    b = box(100, 100, 180, 140)
    blur_region(img, b, "pixelate", pad=0.0)
    row = img[120, 100:180, 0]
    assert 6 <= len(np.unique(row)) <= 8
    assert np.array_equal(noise()[0:100], img[0:100])


def test_bad_input_is_rejected() -> None:
    d = fixed([], [])
    with pytest.raises(ValueError, match="method"):
        deidentify(noise(), d, method="smudge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="BGR"):
        deidentify(np.zeros((10, 10), np.uint8), d)
    with pytest.raises(ValueError, match="method"):
        blur_region(noise(), box(0, 0, 50, 50), "smudge")  # type: ignore[arg-type]
    edge = noise()
    blur_region(edge, box(399, 299, 400, 300), "gaussian", pad=0.0)  # degenerate: no-op
    assert np.array_equal(edge, noise())


def test_scale_box_maps_between_frame_sizes() -> None:
    b = scale_box(Box(100, 50, 200, 150, 1000, 500), 500, 250)
    assert (b.x1, b.y1, b.x2, b.y2, b.frame_w, b.frame_h) == (50, 25, 100, 75, 500, 250)
    same = scale_box(Box(1, 2, 3, 4, 0, 0), 640, 480)
    assert (same.x1, same.y2, same.frame_w) == (1, 4, 640)
