"""`sharpeyes demo`: the checkpoint lines it prints, and a shared node's detector mismatch."""

from __future__ import annotations

import json
from pathlib import Path

from sharpeyes.api.commands.demo import checkpoint_lines
from sharpeyes.api.node.camera import asked_detector, detector_mismatch
from sharpeyes.pipeline.config import CameraConfig, OnnxRuntimeDetectorConfig


def test_checkpoint_lines_say_what_was_read_and_why_not(tmp_path: Path) -> None:
    rows = [
        {
            "type": "vehicle_pass",
            "plate": {"text": "京GPL768"},
            "extra": {"plate_status": "read", "vehicle_color": "green"},
        },
        {
            "type": "vehicle_pass",
            "plate": None,
            "extra": {"plate_status": "no_plate_visible", "vehicle_color": "white"},
        },
        {
            "type": "vehicle_pass",
            "plate": {"text": None},
            "extra": {"plate_status": "unreadable", "vehicle_color": "white"},
        },
        {"type": "vehicle_pass", "plate": None, "extra": {}},  # never read
        {"type": "person_seen", "extra": {"coat_color": "red"}},
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    plates, colours = checkpoint_lines(events)
    assert plates == (
        "plates read: 1 of 4 vehicles (京GPL768); "
        "not read: no_plate_visible 1, not_read 1, unreadable 1"
    )
    assert colours == "body colours: white 2, green 1"


def test_a_camera_asking_for_another_detector_input_is_told_the_node_runs_its_own() -> None:
    node = OnnxRuntimeDetectorConfig()
    plain = CameraConfig.model_validate({"id": "a", "url": "x.mp4"})
    assert detector_mismatch(plain, node) is None  # nothing asked: nothing to say
    same = CameraConfig.model_validate(
        {"id": "b", "url": "x.mp4", "detector": {"model": node.model}}
    )
    assert detector_mismatch(same, node) is None
    small = CameraConfig.model_validate(
        {"id": "c", "url": "x.mp4", "detector": {"input_size": [192, 320]}}
    )
    msg = detector_mismatch(small, node)
    assert msg is not None and "'c'" in msg and "input_size (192, 320)" in msg
    assert "the node runs the model's default" in msg
    # a config dumped and read back sets every field; its defaults ask for nothing
    again = CameraConfig.model_validate(plain.model_dump())
    assert "input_size" in again.detector.model_fields_set
    assert asked_detector(again) == {} and detector_mismatch(again, node) is None
    assert asked_detector(CameraConfig.model_validate(small.model_dump())) == {
        "input_size": (192, 320)
    }


def test_the_demo_service_config_is_written_for_users_and_serve(tmp_path: Path) -> None:
    from sharpeyes.api.commands.demo import demo_service_config, write_service_config
    from sharpeyes.api.node.settings import load_service_config
    from sharpeyes.pipeline.data import samples_dir

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    config = demo_service_config(
        tmp_path / "service", [(clip, samples_dir() / "intersection_hanoi_b.yaml")]
    )
    path = write_service_config(config, tmp_path / "service" / "service.yaml")
    back = load_service_config(path)
    # `sharpeyes users --config` on this file opens the store the demo serves
    assert back.store.url == str(tmp_path / "service" / "events.db")
    assert back.model_dump() == config.model_dump()
