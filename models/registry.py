"""The model registry: name → file, sha256, official URL, input facts and licence.

Facts come from ``shared/models/MODELS.md`` and ``shared/models/SOURCES.md``. ``filename`` is
the path relative to a models directory (the shared data folder or the user cache), so
``plate/y5fu_320x_sim.onnx`` lives in a ``plate`` sub-folder in both.

A model with ``sha256=None`` is *derived* (made by one of our export scripts from the model
named in ``derived_from``) and is verified through its export record instead of a pinned hash,
because its bytes depend on the exporter's torch version. Its *published* artefact
(``published_sha256``: our export with the pinned torch, byte-identical on every machine) is
fetched like any pinned model from a mirror (``SHARPEYES_MODEL_MIRROR``) or its release ``url``,
so only users with their own checkpoints need the export tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from sharpeyes.pipeline.errors import ModelNotFoundError

Family = Literal["yolov5", "yolox", "yolov8", "yolo11", "yolov10", "plate_det", "plate_rec", "face"]
Layout = Literal["NCHW", "none"]
ChannelOrder = Literal["RGB", "BGR", "none"]
Letterbox = Literal["centre", "top_left", "none"]

AGPL = "AGPL-3.0 (Ultralytics)"
APACHE = "Apache-2.0"


@dataclass(frozen=True, slots=True)
class InputFacts:
    """What a model expects as input.

    ``size`` is (height, width) of the default input; ``dynamic`` means batch and spatial size
    may vary (a rectangular letterbox is then used for 16:9 video). ``normalisation`` is a
    human-readable formula applied to 0..255 pixel values.
    """

    size: tuple[int, int]
    layout: Layout = "NCHW"
    channel_order: ChannelOrder = "RGB"
    normalisation: str = "x/255"
    dynamic: bool = False
    letterbox: Letterbox = "centre"
    name: str = "images"


NO_INPUT = InputFacts(size=(0, 0), layout="none", channel_order="none", normalisation="none")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One registered model (or companion data file)."""

    name: str
    filename: str
    sha256: str | None
    url: str | None
    family: Family
    input: InputFacts
    licence: str
    derived_from: str | None = None
    notes: str = ""
    size_bytes: int | None = None
    also_accept_sha256: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    # A derived model's published artefact: the bytes our exporter makes with the pinned torch
    # (export is deterministic), served from a release or a site mirror; a copy with this hash
    # is used as is, so a node that only runs sharpeyes never needs torch.
    published_sha256: str | None = None

    @property
    def accepted_sha256(self) -> tuple[str, ...]:
        """Every hash this model may carry (the pinned one plus e.g. the official release's)."""
        pinned = (self.sha256,) if self.sha256 else ()
        return pinned + self.also_accept_sha256

    @property
    def is_derived(self) -> bool:
        """True when the file is made locally by an export script (no pinned hash)."""
        return self.sha256 is None and self.derived_from is not None


_YOLOV5_IN = InputFacts(size=(640, 640))
_HYPERLPR = "https://raw.githubusercontent.com/szad670401/HyperLPR/58ad4ef736fec5289e8c8cb842e066e70c4672c3/resource/models/onnx/"

_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="yolov5n",
        filename="yolov5n_dynamic.onnx",
        sha256=None,
        url=None,
        family="yolov5",
        input=InputFacts(size=(640, 640), dynamic=True),
        licence="AGPL-3.0 (derived from Ultralytics yolov5n.pt)",
        derived_from="yolov5n.pt",
        # models.export.yolov5_onnx v1 --dynamic, opset 12, torch 2.13.0+cpu (same bytes on
        # every run; checked twice on 2026-12-03).
        published_sha256="8d3566e56ae4323fcc5522203c484293dd2f8e9e6c2b02e4e0440c4b6b9fefcc",
        notes="default detector: yolov5n.pt exported by models.export.yolov5_onnx with dynamic "
        "batch, height and width (opset 12); rectangular letterbox, e.g. 384x640 for 16:9",
    ),
    ModelSpec(
        name="yolov5n_static",
        filename="yolov5n.onnx",
        sha256="8e580ce0b1816b24a73452798137fbaf07bea101c12776e570830892d28e8c4c",
        url=None,
        family="yolov5",
        input=_YOLOV5_IN,
        licence="AGPL-3.0 (derived from Ultralytics yolov5n.pt)",
        derived_from="yolov5n.pt",
        size_bytes=7916373,
        notes="static 1x3x640x640 export of yolov5n.pt (shared data folder only; no URL)",
    ),
    ModelSpec(
        name="yolov5n.pt",
        filename="yolov5n.pt",
        sha256="4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3",
        url="https://github.com/ultralytics/yolov5/releases/download/v7.0/yolov5n.pt",
        family="yolov5",
        input=NO_INPUT,
        licence=AGPL,
        size_bytes=4062133,
        notes="source PyTorch checkpoint (fp16) of the yolov5n exports; export only",
    ),
    ModelSpec(
        name="yolox_nano",
        filename="yolox_nano.onnx",
        sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
        url="https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
        family="yolox",
        input=InputFacts(
            size=(416, 416), channel_order="BGR", normalisation="none", letterbox="top_left"
        ),
        licence=APACHE,
        size_bytes=3660092,
        # The official release asset holds the same weights in other bytes (MODELS.md).
        also_accept_sha256=("c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d",),
        notes="raw output [1,3549,85]: needs grid/stride decode (strides 8/16/32)",
    ),
    ModelSpec(
        name="yolov8n_int8",
        filename="yolov8n_int8_dynamic.onnx",
        sha256="83de8f0d2cd521e00ae2b138c340a03dece35b060b3898509bdc69afff417312",
        url="https://raw.githubusercontent.com/Lamri-Meriem/edge-object-detection/a6844ef947be6d0dd3aeafcf4cac6f3d01806e10/yolov8n_int8.onnx",
        family="yolov8",
        input=_YOLOV5_IN,
        licence="AGPL-3.0 (Ultralytics, per model metadata)",
        size_bytes=3504119,
        notes="third-party dynamic-int8 YOLOv8n; output [1,84,8400] without objectness",
    ),
    ModelSpec(
        name="plate_det_320",
        filename="plate/y5fu_320x_sim.onnx",
        sha256="2a985dc63a5cc947ec36d18503d6fc0fd54525b9dba17f2fe29a71e86b44456d",
        url=_HYPERLPR + "y5fu_320x_sim.onnx",
        family="plate_det",
        input=InputFacts(size=(320, 320), name="input"),
        licence=APACHE,
        size_bytes=2343161,
        notes="HyperLPR3 plate detector, output [1,6300,15] with 4 corners",
    ),
    ModelSpec(
        name="plate_det_640",
        filename="plate/y5fu_640x_sim.onnx",
        sha256="0306de937471b87f56eb3f5620815e7e7058f8ab7428e0734fc64627cc4d716c",
        url=_HYPERLPR + "y5fu_640x_sim.onnx",
        family="plate_det",
        input=InputFacts(size=(640, 640), name="input"),
        licence=APACHE,
        size_bytes=3930791,
        notes="HyperLPR3 plate detector for large frames, output [1,25200,15]",
    ),
    ModelSpec(
        name="plate_rec_color",
        filename="plate/plate_rec_color.onnx",
        sha256="1ce19c14020cff51467b3ab6659cde82e3fcef9a21b58c056da7401837278a72",
        url="https://github.com/we0091234/chinese_plate_tensorrt/raw/master/plate_rec.onnx",
        family="plate_rec",
        input=InputFacts(
            size=(48, 168),
            channel_order="BGR",
            normalisation="(x/255-0.588)/0.193",
            letterbox="none",
        ),
        licence="none stated (ask the author before commercial use)",
        size_bytes=2663983,
        companions=("plate_rec_chars",),
        notes="CRNN + colour head: CTC logits [1,21,78] and colour [1,5]",
    ),
    ModelSpec(
        name="plate_rec_chars",
        filename="plate/plate_rec_chars.txt",
        sha256="05d5aee9278537eb4d8a0603d96beac4315f52c336d0c9f3ceab89f158ddbd82",
        url=None,
        family="plate_rec",
        input=NO_INPUT,
        licence="written for sharpeyes",
        size_bytes=242,
        notes="78-symbol alphabet of plate_rec_color (line 0 '#' = CTC blank)",
    ),
    ModelSpec(
        name="yunet_face",
        filename="face/face_detection_yunet_2026may.onnx",
        sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        url="https://raw.githubusercontent.com/RuDr8A/RealTime-PPE-Compliance/d876a822bbb20180b9ed7850c1d3229d72883067/face_detection_yunet_2026may.onnx",
        family="face",
        input=InputFacts(size=(0, 0), name="input", dynamic=True, letterbox="none"),
        licence="MIT (YuNet upstream, opencv_zoo)",
        size_bytes=229738,
        notes="run with cv2.FaceDetectorYN on person crops",
    ),
)

MODEL_SPECS: Mapping[str, ModelSpec] = MappingProxyType({s.name: s for s in _SPECS})
REGISTRY = MODEL_SPECS  # the name the CLI uses
DEFAULT_DETECTOR = "yolov5n"


def all_model_specs() -> Mapping[str, ModelSpec]:
    """Built-in models plus the user's (``sharpeyes models add``; built-in names win)."""
    from sharpeyes.models.user_registry import load_user_specs

    user = load_user_specs()
    return MappingProxyType({**user, **MODEL_SPECS})


def known_models() -> tuple[str, ...]:
    """Names of every registered model (built-in first, then the user's)."""
    return tuple(all_model_specs())


def get_model_spec(name: str) -> ModelSpec:
    """Return the spec of a registered model (built-in or added by the user).

    Raises:
        ModelNotFoundError: the name is not registered (the message lists the known names).
    """
    spec = MODEL_SPECS.get(name) or all_model_specs().get(name)
    if spec is None:
        known = ", ".join(known_models())
        raise ModelNotFoundError(f"unknown model {name!r}; known models: {known}")
    return spec
