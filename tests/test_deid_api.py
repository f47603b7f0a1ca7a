"""The de-identified export route, mounted on the app of tests/_api_fixtures.py (SQLite).

One violation's evidence is replaced by real images (we_multi_plates.jpg, zidane.jpg, a
half-size copy, the subject's plate close-up) and a record.json naming the subject; the ZIP is
checked by re-reading plates and re-detecting faces in what comes back. Then by a real hanoi_b
frame whose helmeted riders and motorbike plates no face or plate detector finds.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.routes.export import DeidProvider, record_subjects
from sharpeyes.models.plate import PlateReader
from sharpeyes.pipeline.errors import ModelNotFoundError
from sharpeyes.pipeline.evidence.deid import DeidDetectors, Subject, default_detectors, iou
from sharpeyes.pipeline.evidence.plate_closeup import plate_closeup
from sharpeyes.pipeline.types import Box, ImageBGR
from tests._api_fixtures import Seeded, api_settings, seed_service

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SUBJECT = "粤B556SA"
ZIDANE_FACES = (Box(917, 99, 1054, 273, 1280, 720), Box(555, 260, 657, 420, 1280, 720))
CAR = [1560.0, 560.0, 2016.0, 1000.0]  # the white car whose plate is 粤B556SA


def load(path: Path) -> ImageBGR:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.asarray(image, np.uint8)


def decode(data: bytes) -> ImageBGR:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, np.uint8)


def jpeg(image: ImageBGR) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return bytes(buf.tobytes())


@pytest.fixture(scope="module")
def detectors(shared: Path) -> DeidDetectors:
    return default_detectors()


@pytest.fixture(scope="module")
def reader(shared: Path) -> PlateReader:
    return PlateReader("plate_det_640", threads=1)


def readable(reader: PlateReader, image: ImageBGR) -> set[str]:
    return {p.text for p in reader.read(image) if p.text is not None}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=2, passes=1)
    yield s
    s.service.db.close()


def real_evidence(seeded: Seeded, shared: Path, reader: PlateReader) -> Path:
    """Replace violation 0's images and record.json with real ones; return its directory."""
    event_id = seeded.violations[0].event_id
    d = seeded.service.evidence_file(event_id, "1.jpg").path.parent
    multi = load(shared / "images" / "plates" / "we_multi_plates.jpg")
    half = np.asarray(cv2.resize(multi, (1008, 756), interpolation=cv2.INTER_AREA), np.uint8)
    subject = next(r for r in reader.read(multi) if r.text == SUBJECT)
    (d / "1.jpg").write_bytes(jpeg(multi))
    (d / "2.jpg").write_bytes((shared / "images" / "zidane.jpg").read_bytes())
    (d / "3.jpg").write_bytes(jpeg(half))
    (d / "plate.jpg").write_bytes(jpeg(plate_closeup(multi, subject.box, None)))
    images = [
        {"file": "1.jpg", "width": 2016, "height": 1512, "vehicle_box": CAR},
        {"file": "2.jpg", "width": 1280, "height": 720, "vehicle_box": None},
        # boxes are in the frame's pixels; the stored image is half size: they get scaled
        {"file": "3.jpg", "width": 2016, "height": 1512, "vehicle_box": CAR},
    ]
    doc = {"event_id": event_id, "plate": {"text": SUBJECT, "image": 1}, "images": images}
    (d / "record.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return d


def client_for(seeded: Seeded, provider: DeidProvider) -> TestClient:
    app = create_app(api_settings(), seeded.service, export_provider=provider)
    return TestClient(app)


def test_export_blurs_bystanders_and_keeps_the_subject_plate(
    seeded: Seeded, shared: Path, detectors: DeidDetectors, reader: PlateReader
) -> None:
    d = real_evidence(seeded, shared, reader)
    client = client_for(seeded, DeidProvider(lambda: detectors))
    event_id = seeded.violations[0].event_id
    r = client.get(f"/api/v1/violations/{event_id}/export", headers=seeded.auth("reviewer"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert f'filename="{event_id}_deid.zip"' in r.headers["content-disposition"]
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    files = {n: zf.read(n) for n in zf.namelist()}
    expected = {"1.jpg", "2.jpg", "3.jpg", "plate.jpg", "composite.jpg", "record.json", "deid.json"}
    assert set(files) == expected  # clip.mp4 is left out
    assert files["record.json"] == (d / "record.json").read_bytes()

    assert readable(reader, load(d / "1.jpg")) >= {SUBJECT, "粤B989HW"}  # precondition
    assert readable(reader, decode(files["1.jpg"])) == {SUBJECT}
    assert readable(reader, load(d / "3.jpg")) - {SUBJECT}  # others readable before
    assert readable(reader, decode(files["3.jpg"])) <= {SUBJECT}
    assert readable(reader, decode(files["plate.jpg"])) == {SUBJECT}
    faces = detectors.faces.detect_faces(decode(files["2.jpg"]))
    assert not any(iou(f.box, z) > 0.2 for f in faces for z in ZIDANE_FACES)

    composite = decode(files["composite.jpg"])
    assert composite.shape[:2] == (720, 960)  # 2×2 cells at the original's 480/2016 scale
    cell = cv2.resize(decode(files["1.jpg"]), (480, 360), interpolation=cv2.INTER_AREA)
    assert float(np.abs(composite[:360, :480].astype(float) - cell).mean()) < 6.0

    manifest = json.loads(files["deid.json"])
    assert manifest["event_id"] == event_id and manifest["method"] == "gaussian"
    assert "clip.mp4" in manifest["omitted"]
    entries = {e["name"]: e for e in manifest["files"]}
    for name, entry in entries.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest()
    source = hashlib.sha256((d / "1.jpg").read_bytes()).hexdigest()
    assert entries["1.jpg"]["source_sha256"] == source
    assert entries["1.jpg"]["deid"]["plates_blurred"] == 4
    assert entries["1.jpg"]["deid"]["subject_plate_kept"] is True
    assert entries["2.jpg"]["deid"]["faces_blurred"] >= 2
    assert "粤B989HW" not in files["deid.json"].decode()

    trail = seeded.service.auth_audit.recent(50)
    mine = [a for a in trail if a.path.endswith(f"{event_id}/export")]
    assert len(mine) == 1 and mine[0].name == "reviewer-user"
    assert mine[0].detail.startswith("deid_export method=gaussian faces=")


# The motorbike on the right of hanoi_b frame 127 (see tests/test_deid.py): the subject.
HANOI_BIKE = [441.0, 349.0, 478.0, 392.0]


def test_export_blurs_helmeted_riders_and_motorbike_plates(
    seeded: Seeded, shared: Path, detectors: DeidDetectors
) -> None:
    """A real hanoi_b frame as 1.jpg: heads and motorbike plate regions blurred, the subject's
    plate region kept; deid.json says what and why."""
    event_id = seeded.violations[0].event_id
    d = seeded.service.evidence_file(event_id, "1.jpg").path.parent
    frame = load(shared / "images" / "intersection_hanoi_b_f127_redlight.jpg")
    (d / "1.jpg").write_bytes(jpeg(frame))
    doc = {
        "event_id": event_id,
        "plate": {"text": None, "image": None},
        "images": [{"file": "1.jpg", "width": 640, "height": 480, "vehicle_box": HANOI_BIKE}],
    }
    (d / "record.json").write_text(json.dumps(doc), encoding="utf-8")
    client = client_for(seeded, DeidProvider(lambda: detectors))
    r = client.get(f"/api/v1/violations/{event_id}/export", headers=seeded.auth("reviewer"))
    assert r.status_code == 200, r.text
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(zf.read("deid.json"))
    deid = {e["name"]: e for e in manifest["files"]}["1.jpg"]["deid"]
    assert deid["faces_blurred"] == 0 and deid["plates_blurred"] == 2  # the two cars' plates
    assert deid["heads_blurred"] >= 5 and deid["plate_regions_blurred"] >= 6
    assert deid["subject_plate_region_kept"] is True and deid["object_detector"] == "yolov5n"
    heads = [g for g in deid["regions"] if g["kind"] == "head"]
    assert all(g["object"]["class"] == "person" and g["why"] for g in heads)
    bikes = [g for g in deid["regions"] if g["kind"] == "plate_region" and g["action"] == "blurred"]
    assert sum(g["object"]["class"] == "motorcycle" for g in bikes) >= 6
    (kept,) = [g for g in deid["regions"] if g["action"] == "kept"]
    assert kept["kind"] == "plate_region" and kept["object"]["class"] == "motorcycle"

    out = decode(zf.read("1.jpg")).astype(float)
    src = load(d / "1.jpg").astype(float)
    x1, y1, x2, y2 = (round(v) for v in kept["box"])
    assert np.abs(out[y1:y2, x1:x2] - src[y1:y2, x1:x2]).mean() < 3  # as sharp as before
    for g in heads:
        x1, y1, x2, y2 = (round(v) for v in g["box"])
        assert out[y1:y2, x1:x2].std(axis=(0, 1)).max() < 0.5 * src[y1:y2, x1:x2].std(), g

    trail = seeded.service.auth_audit.recent(50)
    (mine,) = [a for a in trail if a.path.endswith(f"{event_id}/export")]
    reports = [e["deid"] for e in manifest["files"] if isinstance(e["deid"], dict)]
    assert f"heads={sum(e['heads_blurred'] for e in reports)} " in mine.detail  # all files
    assert f"plate_regions={sum(e['plate_regions_blurred'] for e in reports)} " in mine.detail


def test_export_roles_and_errors(seeded: Seeded, detectors: DeidDetectors) -> None:
    client = client_for(seeded, DeidProvider(lambda: detectors))
    v = seeded.violations[1].event_id  # fixture evidence: synthetic images, nothing to blur
    url = f"/api/v1/violations/{v}/export"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=seeded.auth("viewer")).status_code == 403
    r = client.get(url, params={"method": "pixelate"}, headers=seeded.auth("admin"))
    assert r.status_code == 200, r.text
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(r.content)).read("deid.json"))
    assert manifest["method"] == "pixelate"
    bad = client.get(url, params={"method": "smudge"}, headers=seeded.auth("admin"))
    assert bad.status_code == 422
    not_violation = f"/api/v1/violations/{seeded.passes[0].event_id}/export"
    assert client.get(not_violation, headers=seeded.auth("admin")).status_code == 404
    missing = "/api/v1/violations/nope123/export"
    assert client.get(missing, headers=seeded.auth("admin")).status_code == 404


def test_missing_models_answer_503(seeded: Seeded, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> DeidDetectors:
        raise ModelNotFoundError("yunet_face not found")

    client = client_for(seeded, DeidProvider(broken))
    v = seeded.violations[0].event_id
    r = client.get(f"/api/v1/violations/{v}/export", headers=seeded.auth("reviewer"))
    assert r.status_code == 503  # the app answers 5xx generically; the cause is logged
    assert "de-identification models unavailable" in caplog.text
    assert not any(a.path.endswith("/export") for a in seeded.service.auth_audit.recent(50))


def test_record_subjects_reads_boxes_and_survives_garbage() -> None:
    doc = {
        "plate": {"text": SUBJECT, "image": 2, "box": [10, 20, 50, 30]},
        "images": [
            {"file": "1.jpg", "width": 200, "height": 100, "vehicle_box": [1, 2, 3, 4]},
            {"file": "2.jpg", "width": 200, "height": 100, "vehicle_box": None},
            {"file": "../etc.jpg", "width": 200, "height": 100, "vehicle_box": [1, 2, 3, 4]},
            {"file": "3.jpg", "vehicle_box": ["a", 2, 3, 4]},
        ],
    }
    text, subjects = record_subjects(doc)
    assert text == SUBJECT and set(subjects) == {"1.jpg", "2.jpg", "3.jpg"}
    assert subjects["1.jpg"].vehicle_box == Box(1, 2, 3, 4, 200, 100)
    assert subjects["1.jpg"].plate_box is None
    assert subjects["2.jpg"].plate_box == Box(10, 20, 50, 30, 200, 100)
    assert subjects["3.jpg"] == Subject(None, None, SUBJECT)
    garbage: tuple[object, ...] = (None, [], "x", {"plate": "x", "images": {"a": 1}})
    for bad in garbage:
        assert record_subjects(bad) == (None, {})
