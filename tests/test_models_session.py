"""ONNX Runtime session factory: provider selection, errors, threads, warm-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sharpeyes.models.onnx_session import CPU, CUDA, TRT, OnnxModel, SessionConfig, select_providers
from sharpeyes.pipeline.errors import ModelError
from tests._models_fixtures import require_shared, skip_or_fail

ALL = [TRT, CUDA, CPU, "AzureExecutionProvider"]


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        ("auto", [CPU, "AzureExecutionProvider"], [CPU]),
        ("auto", ALL, [TRT, CUDA, CPU]),
        ("auto", [CUDA, CPU], [CUDA, CPU]),
        ("cpu", ALL, [CPU]),
        ("cuda", ALL, [CUDA, CPU]),
        ("tensorrt", ALL, [TRT, CUDA, CPU]),
        ("TensorRT", [TRT, CPU], [TRT, CPU]),
        (["cuda", "cpu"], ALL, [CUDA, CPU]),
        ([CUDA, CPU], ALL, [CUDA, CPU]),
    ],
)
def test_select_providers(
    requested: str | list[str], available: list[str], expected: list[str]
) -> None:
    assert select_providers(requested, available) == expected


@pytest.mark.parametrize("requested", ["cuda", "tensorrt", ["CUDAExecutionProvider"], "rocm"])
def test_unavailable_provider_is_a_clear_error(requested: str | list[str]) -> None:
    with pytest.raises(ModelError) as err:
        select_providers(requested, [CPU])
    assert "CPUExecutionProvider" in str(err.value) and "requested" in str(err.value)


@pytest.fixture(scope="module")
def yolox_path() -> Path:
    return require_shared("models/yolox_nano.onnx")


def test_cpu_session_reports_providers_in_use_and_input(yolox_path: Path) -> None:
    model = OnnxModel(
        yolox_path, SessionConfig(providers="auto", intra_op_threads=1, graph_optimization="basic")
    )
    assert model.providers == ("CPUExecutionProvider",)
    assert model.input_name == "images" and model.fixed_hw == (416, 416)
    assert model.fixed_batch == 1
    model.warmup(2)
    out = model.run(np.zeros((1, 3, 416, 416), np.float32))
    assert out[0].shape == (1, 3549, 85)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="a CUDA build is installed"
)
def test_requesting_cuda_on_a_cpu_build_fails(yolox_path: Path) -> None:
    with pytest.raises(ModelError, match="CUDAExecutionProvider"):
        OnnxModel(yolox_path, SessionConfig(providers="cuda"))


def test_unloadable_file_is_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not onnx")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        OnnxModel(bad, SessionConfig(providers="cpu"))


def test_dynamic_model_warms_up_at_given_shape() -> None:
    from sharpeyes.models.resolve import resolve_model
    from sharpeyes.pipeline.errors import ModelNotFoundError

    try:
        path = resolve_model("yolov5n", download=False)
    except ModelNotFoundError as e:
        skip_or_fail(str(e))
    model = OnnxModel(path, SessionConfig(providers="cpu", intra_op_threads=1))
    assert model.fixed_hw is None and model.fixed_batch is None
    model.warmup(1, hw=(384, 640))
    assert model.run(np.zeros((2, 3, 384, 640), np.float32))[0].shape == (2, 15120, 85)
