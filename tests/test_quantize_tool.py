"""The INT8 quantisation tool's pure parts: which nodes stay in float, and box agreement."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from sharpeyes.models.export.quantize import agreement, float_nodes
from sharpeyes.pipeline.types import Detections


def dets(boxes: list[list[float]], classes: list[int]) -> Detections:
    return Detections.create(boxes, [0.9] * len(boxes), classes, [1] * len(boxes))


def tiny_graph() -> onnx.ModelProto:
    """conv → shape arithmetic → resize, and a head with a conv and a sigmoid."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="/model.0/conv/Conv"),
        helper.make_node("Shape", ["c"], ["s"], name="/model.11/Shape"),
        helper.make_node("Cast", ["s"], ["sf"], name="/model.11/Cast", to=1),
        helper.make_node("Mul", ["sf", "two"], ["sz"], name="/model.11/Mul"),
        helper.make_node("Resize", ["c", "", "sz"], ["r"], name="/model.11/Resize"),
        helper.make_node("Conv", ["r", "w"], ["h"], name="/model.24/m.0/Conv"),
        helper.make_node("Sigmoid", ["h"], ["y"], name="/model.24/Sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph)


def test_shape_arithmetic_and_head_decoding_stay_float() -> None:
    model = tiny_graph()
    assert float_nodes(model) == [
        "/model.11/Shape",
        "/model.11/Cast",
        "/model.11/Mul",
        "/model.24/Sigmoid",
    ]
    assert "/model.24/m.0/Conv" in float_nodes(model, head_convs=True)
    assert "/model.11/Resize" not in float_nodes(model, head_convs=True)


def test_agreement_counts_same_class_matches() -> None:
    ref = [dets([[0, 0, 10, 10], [20, 20, 30, 30]], [2, 7])]
    same = agreement(ref, ref)
    assert same.f1 == 1.0 and same.worst_iou == 1.0
    shifted = [dets([[1, 0, 11, 10], [20, 20, 30, 30]], [2, 5])]  # second box: other class
    found = agreement(shifted, ref)
    assert (found.matched, found.ours, found.reference) == (1, 2, 2)
    assert found.f1 == 0.5
    assert np.isclose(found.worst_iou, 90 / 110)
    assert agreement([dets([], [])], [dets([], [])]).f1 == 1.0
