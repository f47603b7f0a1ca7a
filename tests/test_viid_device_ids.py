"""GA/T 1400 object ids are unique only per capture device (api/viid/ids.py): with delivery on
and 2+ cameras, a camera without its own device id (the built-in default, the same for all) or
two cameras sharing one would send the same MotorVehicleID for different vehicles, and the
platform keeps one. Such a service config is refused at load, naming the cameras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sharpeyes.api.commands.cli import main
from sharpeyes.api.commands.demo import demo_service_config, write_service_config
from sharpeyes.api.node.settings import load_service_config
from sharpeyes.pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def delivery() -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load((REPO / "sample_videos" / "viid_delivery.yaml").read_text())
    d["device_ids"] = {}
    d["tollgate_ids"] = {}
    return d


def write(tmp_path: Path, cameras: list[dict[str, Any]], **extra: Any) -> Path:
    path = tmp_path / "svc.yaml"
    data = {
        "cameras": cameras,
        "store": {"url": "events.db", "files_root": "."},
        "delivery": delivery(),
        **extra,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def cam(id_: str, **kw: Any) -> dict[str, Any]:
    return {"id": id_, "url": "rtsp://10.0.0.1/x", **kw}


def test_two_cameras_without_their_own_device_id_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [cam("north"), cam("south"), cam("east", device_id="3" * 20)])
    with pytest.raises(ConfigError) as e:
        load_service_config(path)
    assert "north, south" in str(e.value) and "device_id" in str(e.value)
    assert "east" not in str(e.value).split("without their own device_id")[1]


def test_two_cameras_sharing_a_device_id_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [cam("a", device_id="1" * 20), cam("b", device_id="2" * 20)])
    d = delivery()
    d["device_ids"] = {"b": "1" * 20}
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "delivery": d}))
    with pytest.raises(ConfigError, match=r"device id 1{20} is shared by a, b"):
        load_service_config(path)


def test_the_run_command_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, [cam("north"), cam("south")])
    assert main(["run", "--config", str(path)]) != 0
    err = capsys.readouterr().err
    assert "north, south" in err, err


@pytest.mark.parametrize(
    "cameras",
    [
        [cam("only")],  # one camera: the fallback id is its own
        [cam("a", device_id="1" * 20), cam("b", device_id="2" * 20)],
        [cam("a", device_id="1" * 20), cam("b")],  # one left on the default: still unique
    ],
)
def test_distinct_or_single_cameras_load(tmp_path: Path, cameras: list[dict[str, Any]]) -> None:
    load_service_config(write(tmp_path, cameras))


def test_listed_device_ids_count_as_own(tmp_path: Path) -> None:
    path = write(tmp_path, [cam("a"), cam("b")])
    d = delivery()
    d["device_ids"] = {"a": "1" * 20, "b": "2" * 20}
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "delivery": d}))
    load_service_config(path)


def test_without_delivery_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text(yaml.safe_dump({"cameras": [cam("a"), cam("b")]}))
    load_service_config(path)


def test_shipped_configs_still_load(tmp_path: Path) -> None:
    load_service_config(REPO / "sample_videos" / "service_demo.yaml")
    clips = [tmp_path / "c1.mp4", tmp_path / "c2.mp4"]
    for clip in clips:
        clip.write_bytes(b"")
    generated = demo_service_config(tmp_path, [(clip, None) for clip in clips])
    path = write_service_config(
        generated.model_copy(update={"delivery": None}), tmp_path / "demo.yaml"
    )
    load_service_config(path)
    # the demo's cameras have their own ids, so they may deliver too
    data = yaml.safe_load(path.read_text())
    data["delivery"] = delivery()
    path.write_text(yaml.safe_dump(data))
    load_service_config(path)


@pytest.mark.integration
def test_a_camera_added_at_run_time_on_a_taken_device_id_is_reported(
    tmp_path: Path, sample_videos: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from sharpeyes.api.node.runtime import NodeRuntime
    from sharpeyes.api.node.settings import ServiceConfig
    from sharpeyes.models.factory import create_detector
    from sharpeyes.pipeline.config import CameraConfig

    clip = str(sample_videos / "highway_640x360.mp4")
    d = delivery()
    d.update(base_url="http://127.0.0.1:9", password="x", password_env=None)
    cfg = ServiceConfig.model_validate(
        {
            "cameras": [cam("first", url=clip, live=True, device_id="1" * 20)],
            "store": {"url": str(tmp_path / "e.db"), "files_root": str(tmp_path)},
            "delivery": d,
        }
    )
    detector = create_detector("yolov5n", providers="cpu", input_size=(384, 640), download=False)
    rt = NodeRuntime(cfg, detector=detector).start()
    try:
        with caplog.at_level(logging.ERROR):
            rt.add_camera(CameraConfig.model_validate(cam("own", url=clip, device_id="2" * 20)))
            assert not [r for r in caplog.records if "GA/T 1400 object ids" in r.getMessage()]
            rt.add_camera(CameraConfig.model_validate(cam("twin", url=clip, device_id="1" * 20)))
        lines = [r.getMessage() for r in caplog.records if "GA/T 1400 object ids" in r.getMessage()]
        assert len(lines) == 1 and "shared by first, twin" in lines[0], lines
    finally:
        rt.stop(timeout_s=5)
