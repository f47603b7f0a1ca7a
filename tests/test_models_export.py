"""The dynamic yolov5n export (needs the optional torch + yolov5 + onnx install)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sharpeyes.models.export.yolov5_onnx import exporter_available
from sharpeyes.models.onnx_session import OnnxModel, SessionConfig
from sharpeyes.models.yolo import DetectorOptions, YoloV5Detector
from tests._models_fixtures import REPO, load_image, require_shared, skip_or_fail

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not exporter_available():
        skip_or_fail("the yolov5 exporter needs pip install 'sharpeyes[export]'")
    weights = require_shared("models/yolov5n.pt")
    out = tmp_path_factory.mktemp("export") / "yolov5n_dynamic.onnx"
    cmd = [sys.executable, "-m", "sharpeyes.models.export.yolov5_onnx", "--weights", str(weights)]
    proc = subprocess.run(
        [*cmd, "--out", str(out), "--dynamic"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote" in proc.stdout and out.is_file()
    return out


def test_export_has_dynamic_axes_and_metadata(exported: Path) -> None:
    model = OnnxModel(exported, SessionConfig(providers="cpu", intra_op_threads=1))
    assert model.fixed_hw is None and model.fixed_batch is None
    assert model.metadata["stride"] == "32" and "'bus'" in model.metadata["names"]
    assert model.run(np.zeros((2, 3, 384, 640), np.float32))[0].shape == (2, 15120, 85)


def test_export_equals_static_model_on_bus_at_640(exported: Path) -> None:
    static_path = require_shared("models/yolov5n.onnx")
    cfg = SessionConfig(providers="cpu", intra_op_threads=1)
    opts = DetectorOptions(keep_other_classes=True, merge_vehicle_nms=False, input_size=None)
    static = YoloV5Detector(OnnxModel(static_path, cfg), name="static", options=opts)
    dynamic = YoloV5Detector(OnnxModel(exported, cfg), name="dynamic", options=opts)
    img = load_image("images/bus.jpg")
    batch = static.preprocess([img])  # square 640x640 letterbox for both
    raw_s, raw_d = static.infer(batch), dynamic.infer(batch)
    assert raw_s.shape == raw_d.shape == (1, 25200, 85)
    # coordinates reach ~600 px: compare relative to magnitude (torch version rounding differs)
    np.testing.assert_allclose(raw_s, raw_d, rtol=1e-5, atol=1e-3)
    a, b = static.postprocess(raw_s, batch)[0], dynamic.postprocess(raw_d, batch)[0]
    assert len(a) == len(b) >= 4
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
    assert a.class_id.tolist() == b.class_id.tolist()


def test_cli_failure_is_one_line_error(tmp_path: Path) -> None:
    if not exporter_available():
        skip_or_fail("the yolov5 exporter needs pip install 'sharpeyes[export]'")
    proc = subprocess.run(
        [sys.executable, "-m", "models.export.yolov5_onnx", "--weights", str(tmp_path / "no.pt"),
         "--out", str(tmp_path / "x.onnx")],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: yolov5 export of") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()
