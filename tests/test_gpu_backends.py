"""GPU detector backends on the CPU: checkpoint loading, parity with the ONNX CPU detector
(IoU >= 0.99, same classes), I/O binding, batching, registry selection and fallback.

The parity test also runs on a real GPU with ``-m gpu`` (torch fp16 + CUDA graphs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sharpeyes.models.gpu.registry import (
    DETECTOR_BACKENDS,
    DetectorBackendConfig,
    create_backend_detector,
    probe_backends,
)
from sharpeyes.models.gpu.torch_backend import batch_bucket
from sharpeyes.models.nms import iou_one_to_many
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.types import Detections
from tests._models_fixtures import load_image, require_shared

CLIP = "sample_videos/highway_1280x720.mp4"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [load_image(CLIP, i) for i in (0, 40, 80)]


@pytest.fixture(scope="module")
def cpu_reference() -> Any:
    from sharpeyes.models.onnx_session import OnnxModel, SessionConfig
    from sharpeyes.models.yolo import YoloV5Detector

    path = require_shared("models/yolov5n.onnx")
    model = OnnxModel(path, SessionConfig(providers="cpu", intra_op_threads=1))
    return YoloV5Detector(model, name="yolov5n_static")


SMALL_PX = 24  # boxes with a shorter side below this get the small-box bound


def assert_parity(ours: list[Detections], ref: list[Detections]) -> None:
    """Same number of boxes, same classes; IoU >= 0.99 per box, >= 0.97 for tiny boxes.

    The GPU path resizes in floating point, OpenCV in 11-bit fixed point: pixels differ by at
    most one grey level, which moves a ~20 px box by ~0.1 px (IoU ~0.989). Boxes with a shorter
    side of at least ``SMALL_PX`` must reach 0.99, and the mean over all boxes too.
    """
    ious = []
    for a, b in zip(ours, ref, strict=True):
        assert len(a) == len(b)
        for box, cls in zip(b.xyxy, b.class_id, strict=True):
            same = a.class_id == cls
            assert same.any(), f"class {cls} missing"
            iou = float(iou_one_to_many(box, a.xyxy[same]).max())
            small = min(box[2] - box[0], box[3] - box[1]) < SMALL_PX
            assert iou >= (0.97 if small else 0.99), (box, iou)
            ious.append(iou)
    assert len(ious) >= 10  # the frames hold real vehicles
    assert float(np.mean(ious)) >= 0.99


def torch_detector(device: str, **kw: Any) -> Any:
    from sharpeyes.models.gpu.torch_backend import create_torch_detector

    weights = require_shared("models/yolov5n.pt")
    return create_torch_detector(weights, device=device, **kw)


def test_checkpoint_loads_without_yolov5_and_matches_onnx_raw_output() -> None:
    import onnxruntime as ort
    import torch

    from sharpeyes.models.gpu.yolov5_torch import load_yolov5

    net, names = load_yolov5(require_shared("models/yolov5n.pt"))
    assert len(names) == 80 and names[2] == "car"
    x = torch.rand(1, 3, 640, 640, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = net(x).numpy()
    sess = ort.InferenceSession(
        str(require_shared("models/yolov5n.onnx")), providers=["CPUExecutionProvider"]
    )
    ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert ours.shape == ref.shape == (1, 25200, 85)
    assert np.abs(ours - ref).max() < 5e-3


def test_load_rejects_non_checkpoint(tmp_path: Path) -> None:
    from sharpeyes.models.gpu.yolov5_torch import load_yolov5

    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        load_yolov5(bad)


def test_torch_cpu_detections_match_onnx_cpu(frames: list[np.ndarray], cpu_reference: Any) -> None:
    det = torch_detector("cpu")
    det.dynamic, det.input_hw = False, (640, 640)  # the static reference's square input
    assert_parity(det.detect(frames), cpu_reference.detect(frames))
    batch = det.preprocess(frames)
    raw = det.infer(batch)
    assert raw.shape == (3, 25200, 85)
    assert_parity(det.postprocess(raw, batch), cpu_reference.detect(frames))


@pytest.mark.gpu
def test_torch_cuda_fp16_graphs_match_onnx_cpu(
    frames: list[np.ndarray], cpu_reference: Any
) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    det = torch_detector("cuda:0", fp16=True, cuda_graphs=True)
    det.dynamic, det.input_hw = False, (640, 640)
    device_frames = [torch.from_numpy(f).cuda() for f in frames]
    ours = det.detect(device_frames)
    ref = cpu_reference.detect(frames)
    for a, b in zip(ours, ref, strict=True):  # fp16: allow a box or two at the threshold
        assert abs(len(a) - len(b)) <= 1
        assert set(a.class_id.tolist()) <= set(b.class_id.tolist()) | {0}
    assert det.graphs is not None and det.graphs.captures >= 1


def test_ort_io_binding_on_cpu_matches_reference(
    frames: list[np.ndarray], cpu_reference: Any
) -> None:
    from sharpeyes.models.gpu.ort_gpu import OrtGpuOptions, create_ort_gpu_detector, describe_buffer

    det = create_ort_gpu_detector(
        require_shared("models/yolov5n.onnx"),
        name="yolov5n_static",
        gpu=OrtGpuOptions(providers="cpu"),
        warmup=0,
    )
    assert det.info.providers == ("CPUExecutionProvider",) and det.info.batch == 1
    assert det.preprocessor.name == "numpy-float32"
    assert_parity(det.detect(frames), cpu_reference.detect(frames))
    buf = describe_buffer(np.zeros((1, 3, 4, 4), np.float32))
    assert buf.device_type == "cpu" and buf.shape == (1, 3, 4, 4)


def test_ort_gpu_options_map_to_session_config(tmp_path: Path) -> None:
    from sharpeyes.models.gpu.ort_gpu import OrtGpuOptions

    cfg = OrtGpuOptions(providers="tensorrt", fp16=True, engine_cache_dir=tmp_path).session_config()
    assert cfg.trt_fp16 and cfg.trt_engine_cache_dir == tmp_path
    assert cfg.cuda_options["cudnn_conv_algo_search"] == "HEURISTIC"


@pytest.mark.parametrize(("n", "want"), [(1, 1), (3, 4), (8, 8), (33, 64), (64, 64), (70, 70)])
def test_batch_bucket(n: int, want: int) -> None:
    assert batch_bucket(n, 64) == want


def test_registry_lists_backends_and_probes() -> None:
    assert set(DETECTOR_BACKENDS) == {"onnxruntime", "onnxruntime-gpu", "torch"}
    probes = {p.name: p for p in probe_backends()}
    assert probes["onnxruntime"].usable
    assert set(probes) == set(DETECTOR_BACKENDS)


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError):
        DetectorBackendConfig.model_validate({"backend": "torch", "gpu": 1})
    with pytest.raises(ValueError):
        DetectorBackendConfig.model_validate({"backend": "tensorflow"})


def test_unusable_backend_fails_or_falls_back() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: the fallback path is not reachable")
    weights = require_shared("models/yolov5n.pt")
    onnx = require_shared("models/yolov5n.onnx")
    with pytest.raises(ModelError, match="CUDA"):
        create_backend_detector(DetectorBackendConfig(backend="torch", model_path=weights))
    cfg = DetectorBackendConfig(
        backend="onnxruntime-gpu", providers="cuda", model="yolov5n_static", model_path=onnx
    )
    choice = create_backend_detector(cfg.model_copy(update={"fallback": "cpu"}))
    assert choice.backend == "onnxruntime" and choice.requested == "onnxruntime-gpu"
    assert choice.fallback_reason and "CUDAExecutionProvider" in choice.fallback_reason
    assert choice.detector.info.providers == ("CPUExecutionProvider",)


def test_torch_backend_via_registry_on_cpu() -> None:
    weights = require_shared("models/yolov5n.pt")
    cfg = DetectorBackendConfig(backend="torch", device="cpu", model_path=weights, warmup=0)
    choice = create_backend_detector(cfg)
    assert choice.backend == "torch" and choice.fallback_reason is None
    assert choice.detector.info.providers == ("torch:cpu:fp32",)


def test_cuda_graph_capture_failure_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shape whose capture fails (H200: NVDEC threads invalidated it) runs without a graph."""
    import torch

    from sharpeyes.models.gpu.torch_backend import CudaGraphRunner

    net = torch.nn.Conv2d(3, 2, 1)
    runner = CudaGraphRunner(net)
    attempts: list[tuple[int, ...]] = []

    def failing_capture(x: torch.Tensor) -> None:
        attempts.append(tuple(x.shape))
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(runner, "_capture", failing_capture)
    x = torch.rand(2, 3, 4, 4)
    with torch.inference_mode():
        first, second = runner(x), runner(x)
        want = net(x)
    assert torch.allclose(first, want) and torch.allclose(second, want)
    assert attempts == [(2, 3, 4, 4)], "a failed shape is not captured again"
    assert runner.eager == {(2, 3, 4, 4)} and runner.captures == 0


def test_graph_shapes_cover_every_batch_bucket() -> None:
    """capture_graphs' shapes: each power-of-two bucket at the letterboxed shape of the frames."""
    weights = require_shared("models/yolov5n.pt")
    det = create_backend_detector(
        DetectorBackendConfig(backend="torch", device="cpu", model_path=weights, warmup=0)
    ).detector
    shapes = det.graph_shapes((1080, 1920))
    assert [s[0] for s in shapes] == [1, 2, 4, 8, 16, 32, 64]
    assert {s[1:] for s in shapes} == {(3, 384, 640)}, "1080p letterboxes to 384x640"
    assert {s[0] for s in shapes} >= {batch_bucket(n, 64) for n in range(1, 65)}
    assert det.capture_graphs() == 0, "no CUDA graphs on the CPU"
