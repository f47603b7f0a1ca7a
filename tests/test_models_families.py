"""Any modern detector: family from metadata + output layout, class names, one config, one
factory, user registry, ``sharpeyes models`` actions, and parity with Ultralytics.

The parity golden (tests/golden/ultralytics_golden.json) was made by
tests/tools/make_ultralytics_golden.py with Ultralytics' own ``YOLO(onnx).predict`` on the same
ONNX file; this test runs without ultralytics and must reproduce every box (same class,
IoU >= 0.99, |Δconf| <= 0.01) and add none.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sharpeyes.models.classes import COCO80_NAMES, ClassMap
from sharpeyes.models.factory import DetectorChoice, create_detector, detector_models
from sharpeyes.models.nms import NmsParams
from sharpeyes.models.ultralytics import (
    ModelMetadata,
    detect_family,
    parse_names,
    select_class_scores,
)
from sharpeyes.pipeline.config import (
    CameraConfig,
    OnnxRuntimeDetectorConfig,
    TorchDetectorConfig,
)
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.types import ObjectKind
from tests._models_fixtures import REPO, load_image, match_boxes, require_shared

GOLDEN = REPO / "tests" / "golden" / "ultralytics_golden.json"
V8 = "models/yolov8n_int8_dynamic.onnx"


@functools.cache
def ultra_golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


def _meta(names: tuple[str, ...] | None = None, end2end: bool | None = None) -> ModelMetadata:
    return ModelMetadata(names, 32, (640, 640), "detect", end2end, None, (1, 3, 640, 640), ())


# --- family detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "names", "end2end", "family"),
    [
        ((1, 84, 8400), COCO80_NAMES, False, "yolov8"),
        ((1, 84, 8400), None, None, "yolov8"),
        ((1, 25200, 85), COCO80_NAMES, None, "yolov5"),
        ((1, 25200, 85), None, None, "yolov5"),
        ((1, 300, 6), COCO80_NAMES, True, "yolov10"),
        ((1, 300, 6), None, None, "yolov10"),
        ((1, 7, 8400), ("a", "b", "c"), None, "yolov8"),
    ],
)
def test_family_from_layout(
    shape: tuple[int, ...], names: tuple[str, ...] | None, end2end: bool | None, family: str
) -> None:
    assert detect_family(_meta(names, end2end), shape, "m.onnx") == family


@pytest.mark.parametrize("shape", [(1, 3, 640, 640), (1, 90, 8400), (1, 2, 2)])
def test_unknown_layout_is_one_line_model_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelError, match="unknown detector layout") as e:
        detect_family(_meta(COCO80_NAMES), shape, "m.onnx")
    found = "[" + ", ".join(str(d) for d in shape) + "]"
    assert "\n" not in str(e.value) and found in str(e.value)


def test_metadata_names_parse() -> None:
    assert parse_names("{0: 'person', 1: 'bus'}") == ("person", "bus")
    assert parse_names("['a', 'b']") == ("a", "b")
    assert parse_names("not a literal") is None


def test_noobj_selection_matches_bruteforce() -> None:
    rng = np.random.default_rng(0)
    xywh = np.column_stack([rng.uniform(50, 500, (200, 2)), rng.uniform(10, 80, (200, 2))])
    scores = rng.uniform(0, 0.5, (200, 3)).astype(np.float32)
    sel = select_class_scores(
        xywh.astype(np.float32), scores, NmsParams(0.3, 0.5), np.arange(3, dtype=np.int64)
    )
    assert len(sel.score) > 0 and np.all(sel.score > 0.3)
    assert np.all(np.diff(sel.score) <= 0)
    assert set(sel.class_id.tolist()) <= {0, 1, 2}


# --- class names → kinds ---------------------------------------------------------------------


def test_custom_class_list_maps_by_name() -> None:
    cm = ClassMap(
        names=("Car", "pedestrian", "van", "traffic_light", "motorbike", "pothole"),
        kind_overrides={"van": ObjectKind.MOTOR_VEHICLE},
    )
    assert [ObjectKind(int(k)) for k in cm.kind_of] == [
        ObjectKind.MOTOR_VEHICLE,
        ObjectKind.PERSON,
        ObjectKind.MOTOR_VEHICLE,
        ObjectKind.TRAFFIC_LIGHT,
        ObjectKind.NON_MOTOR,
        ObjectKind.OTHER,
    ]
    assert cm.allowed.all()  # a custom class ("pothole") is kept as its own class
    assert cm.nms_group[0] == cm.nms_group[2]  # vehicles share one NMS group
    coco = ClassMap()
    assert not coco.allowed[COCO80_NAMES.index("dog")]


# --- one config, one factory -----------------------------------------------------------------


def test_config_union_keeps_old_keys_and_picks_backend() -> None:
    cam = CameraConfig.model_validate(
        {"detector": {"model": "yolov5n", "providers": "cpu", "intra_op_threads": 2}}
    )
    assert isinstance(cam.detector, OnnxRuntimeDetectorConfig)
    cam = CameraConfig.model_validate({"detector": {"backend": "torch", "device": "cpu"}})
    assert isinstance(cam.detector, TorchDetectorConfig) and cam.detector.max_batch == 64
    with pytest.raises(ValueError):
        CameraConfig.model_validate({"detector": {"backend": "torch", "providers": "cpu"}})
    with pytest.raises(ValueError):
        CameraConfig.model_validate({"detector": {"backend": "tensorflow"}})


def test_sample_configs_still_load() -> None:
    from sharpeyes.api.node.settings import load_service_config
    from sharpeyes.pipeline.config import load_camera_config

    cam = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    assert cam.detector.motorcycle_is_non_motor is False
    svc = load_service_config(REPO / "sample_videos" / "service_demo.yaml")
    assert isinstance(svc.detector, OnnxRuntimeDetectorConfig)
    assert svc.detector.input_size == (384, 640)


def test_registered_yolov8_is_a_detector() -> None:
    require_shared(V8)
    assert "yolov8n_int8" in detector_models()
    choice = create_detector(
        OnnxRuntimeDetectorConfig(model="yolov8n_int8", providers="cpu", download=False)
    )
    assert isinstance(choice, DetectorChoice)
    assert choice.backend_text == "onnxruntime (CPUExecutionProvider)"
    assert choice.fallback_reason is None
    assert choice.detector.info.class_names == COCO80_NAMES
    dets = choice.detector.detect([load_image("images/bus.jpg")])[0]
    assert (dets.kind == ObjectKind.PERSON).sum() >= 3


def test_model_path_alone_picks_the_family() -> None:
    path = require_shared(V8)
    cam = CameraConfig.model_validate({"detector": {"model_path": str(path), "providers": "cpu"}})
    det = create_detector(cam.detector).detector
    assert type(det).__name__ == "UltralyticsDetector"
    assert det.info.model == "yolov8n_int8_dynamic"
    # the old call form (default model name + model_path) also takes the file's family
    old = create_detector("yolov5n", model_path=path, providers="cpu")
    assert type(old).__name__ == "UltralyticsDetector"


def test_truncated_file_is_one_line_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(require_shared(V8).read_bytes()[:4096])
    with pytest.raises(ModelError, match=r"cut\.onnx") as e:
        create_detector(OnnxRuntimeDetectorConfig(model_path=bad, providers="cpu"))
    assert "\n" not in str(e.value) and "4096 bytes" in str(e.value)


def _tiny_onnx(path: Path, in_shape: list[int], out_is_input: bool = True) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, in_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_wrong_input_rank_and_layout_are_model_errors(tmp_path: Path) -> None:
    rank3 = _tiny_onnx(tmp_path / "r3.onnx", [1, 3, 640])
    with pytest.raises(ModelError, match="rank 3") as e:
        create_detector(OnnxRuntimeDetectorConfig(model_path=rank3, providers="cpu"))
    assert "\n" not in str(e.value)
    rank4 = _tiny_onnx(tmp_path / "id.onnx", [1, 3, 64, 64])
    with pytest.raises(ModelError, match=r"unknown detector layout: output \[1, 3, 64, 64\]"):
        create_detector(OnnxRuntimeDetectorConfig(model_path=rank4, providers="cpu"))


def test_gpu_backend_falls_back_to_cpu_for_yolov8() -> None:
    path = require_shared(V8)
    cam = CameraConfig.model_validate(
        {"detector": {"backend": "onnxruntime-gpu", "model_path": str(path), "fallback": "cpu"}}
    )
    choice = create_detector(cam.detector)
    if choice.fallback_reason is None:
        pytest.skip("a GPU backend is usable here")
    assert choice.backend == "onnxruntime" and choice.requested == "onnxruntime-gpu"
    assert "fallback from onnxruntime-gpu" in choice.backend_text
    assert type(choice.detector).__name__ == "UltralyticsDetector"


# --- user registry and the models command ----------------------------------------------------


@pytest.fixture()
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHARPEYES_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cmd(*argv: str) -> int:
    from sharpeyes.api.commands.models_cmd import add_parser, run

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", *argv])
    rc: int = run(args)
    return rc


def test_models_add_registers_and_builds_by_name(
    user_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "my_v8.onnx"
    shutil.copy(require_shared(V8), src)
    assert _cmd("add", str(src), "--licence", "AGPL-3.0") == 0
    out = capsys.readouterr().out
    assert "added my_v8: family yolov8, 80 classes" in out
    entry = json.loads((user_cache / "user_models.json").read_text())["models"]["my_v8"]
    assert entry["licence"] == "AGPL-3.0" and len(entry["sha256"]) == 64
    assert "my_v8" in detector_models()
    assert _cmd("list") == 0 and "my_v8" in capsys.readouterr().out
    choice = create_detector(OnnxRuntimeDetectorConfig(model="my_v8", providers="cpu"))
    assert choice.detector.info.model == "my_v8"
    src.write_bytes(src.read_bytes()[:-10] + b"0123456789")  # changed file: integrity error
    with pytest.raises(ModelError, match="sha256"):
        create_detector(OnnxRuntimeDetectorConfig(model="my_v8", providers="cpu"))


def test_models_bench_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    clip = require_shared("sample_videos/highway_640x360.mp4")
    require_shared(V8)
    rc = _cmd(
        "bench", str(clip), "--frames", "3", "--threads", "1",
        "--models", "yolov8n_int8", "yolox_nano", "--reference", "yolov5n_static",
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "agreement vs yolov5n_static" in out and "(reference)" in out
    assert "yolov8n_int8" in out and "F1 " in out
    # what was measured is said: rounds, threads, provider, machine, each model's input size
    assert "3 frames, 3 alternating rounds (fps = median), 1 intra-op threads" in out
    assert "CPUExecutionProvider" in out and "logical cores" in out
    assert "416x416" in out  # yolox_nano's input, not the others'


def test_models_bench_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cmd("bench", str(tmp_path / "none.mp4"), "--frames", "3") == 1
    assert "no such video file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _cmd("bench", str(tmp_path / "none.mp4"), "--frames", "0")
    assert e.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    assert _cmd("bench", str(bad), "--frames", "3") == 1
    assert "cannot decode" in capsys.readouterr().err


# --- parity with Ultralytics (golden made by tests/tools/make_ultralytics_golden.py) --------


def _parity_cases() -> list[tuple[str, int]]:
    return [
        (name, i) for name, m in ultra_golden()["models"].items() for i in range(len(m["images"]))
    ]


@pytest.mark.parametrize(("model", "index"), _parity_cases())
def test_parity_with_ultralytics(model: str, index: int) -> None:
    g = ultra_golden()
    entry = g["models"][model]
    path = require_shared(f"models/{entry['file']}")
    image = entry["images"][index]
    det = _parity_detector(str(path), g["conf"], g["iou"])
    ours = det.detect([load_image(image["source"])])[0]
    ref_xyxy = np.asarray(image["xyxy"], np.float32).reshape(-1, 4)
    ref_cls = np.asarray(image["cls"], np.int64)
    pairs, missed, extra = match_boxes(ours.xyxy, ours.class_id, ref_xyxy, ref_cls)
    assert not missed and not extra, (missed, extra)
    assert min(p[2] for p in pairs) >= 0.99 if pairs else True
    for r, o, _ in pairs:
        assert abs(float(ours.confidence[o]) - image["conf"][r]) <= 0.01


@functools.cache
def _parity_detector(path: str, conf: float, iou: float) -> Any:
    # Ultralytics' NMS: class-aware over all classes (no vehicle merge, nothing dropped)
    return create_detector(
        "yolov8n_int8" if path.endswith(V8.split("/")[1]) else "yolov5n",
        model_path=Path(path),
        providers="cpu",
        intra_op_threads=1,
        confidence_threshold=conf,
        iou_threshold=iou,
        merge_vehicle_nms=False,
        keep_other_classes=True,
        warmup=0,
    )


# --- export with Ultralytics (random weights) ------------------------------------------------


@pytest.mark.slow
def test_export_yolo11n_from_yaml_runs_through_our_detector(tmp_path: Path) -> None:
    from sharpeyes.models.export.ultralytics_onnx import export_ultralytics_onnx, ultralytics_python

    if ultralytics_python() is None:
        pytest.skip("no interpreter with ultralytics (set SHARPEYES_ULTRALYTICS_PYTHON)")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    # yolo11n.yaml builds YOLO11n with RANDOM weights (no checkpoint is available offline)
    result = export_ultralytics_onnx(
        "yolo11n.yaml", tmp_path / "yolo11n.onnx", names=list(COCO80_NAMES)
    )
    assert result.random_weights
    choice = create_detector(
        OnnxRuntimeDetectorConfig(model_path=result.out, providers="cpu", confidence_threshold=0.5)
    )
    det = choice.detector
    assert type(det).__name__ == "UltralyticsDetector"
    assert det.info.class_names == COCO80_NAMES and det.info.batch is None  # dynamic batch
    frame = load_image("images/highway_1280x720_f0.jpg")
    batch = det.preprocess([frame, frame])
    assert batch.tensor.shape == (2, 3, 384, 640)  # dynamic shape: rectangular letterbox
    assert det.infer(batch).shape == (2, 84, 5040)
    assert len(det.detect([frame])) == 1


# --- sharpeyes analyze with a YOLOv8 model_path ----------------------------------------------


@pytest.mark.integration
def test_analyze_runs_with_yolov8_model_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video

    require_shared(V8)
    clip = require_shared("sample_videos/highway_640x360.mp4")
    cfg = tmp_path / "cam.yaml"
    cfg.write_text(
        "detector:\n"
        "  model_path: ../shared/models/yolov8n_int8_dynamic.onnx\n"
        "  providers: cpu\n"
        "  intra_op_threads: 2\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(REPO)
    result = analyze_video(
        AnalyzeOptions(video=clip, config=cfg, out=tmp_path / "out", progress=False, analysis_fps=3)
    )
    assert result.summary.frames_analysed >= 30
    assert result.detector_info is not None
    assert result.detector_info.model == "yolov8n_int8_dynamic"
    assert result.detector_info.class_names == COCO80_NAMES
    assert (tmp_path / "out" / "events.jsonl").exists()
