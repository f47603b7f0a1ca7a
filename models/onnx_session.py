"""ONNX Runtime session factory: providers by config, threads, graph optimisation, warm-up.

``providers="auto"`` means TensorRT → CUDA → CPU, filtered by what this onnxruntime build offers;
``"cpu"``, ``"cuda"`` or ``"tensorrt"`` ask for one (with its fallbacks behind it); a list may mix
the short names and full provider names. A provider that was asked for but is not available, or
that onnxruntime silently dropped while creating the session, is a :class:`ModelError`. The
providers actually in use come from ``session.get_providers()``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from sharpeyes.pipeline.errors import ModelError

log = logging.getLogger(__name__)

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "auto": (TRT, CUDA, CPU),
        "tensorrt": (TRT, CUDA, CPU),
        "cuda": (CUDA, CPU),
        "cpu": (CPU,),
    }
)
GraphOpt = Literal["disable", "basic", "extended", "all"]
_GRAPH_OPT: Mapping[str, ort.GraphOptimizationLevel] = MappingProxyType(
    {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How to build a session. ``intra_op_threads=0`` lets onnxruntime choose (all cores)."""

    providers: str | Sequence[str] = "auto"
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    graph_optimization: GraphOpt = "all"
    trt_fp16: bool = True
    trt_engine_cache_dir: Path | None = None
    trt_max_workspace_bytes: int = 2 << 30
    cuda_device_id: int = 0
    cuda_options: Mapping[str, str] = field(default_factory=dict)
    # Worker threads of the CPU provider busy-wait between operators by default; on a small
    # box where decoding and tracking share the cores that burns the CPU they need.
    allow_spinning: bool = False


def _expand(requested: str | Sequence[str]) -> tuple[list[str], set[str]]:
    """Expand aliases; return (ordered candidates, names that must be available)."""
    items = [requested] if isinstance(requested, str) else list(requested)
    ordered: list[str] = []
    required: set[str] = set()
    for item in items:
        key = item.lower()
        if key in ALIASES:
            names = ALIASES[key]
            if key != "auto":
                required.add(names[0])
        else:
            names = (item,)
            required.add(item)
        ordered += [n for n in names if n not in ordered]
    return ordered, required


def select_providers(requested: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """Providers to ask onnxruntime for, in priority order.

    Raises:
        ModelError: an explicitly requested provider is not in ``available``.
    """
    ordered, required = _expand(requested)
    missing = sorted(required - set(available))
    if missing:
        raise ModelError(
            f"execution provider(s) {', '.join(missing)} requested ({requested!r}) but this "
            f"onnxruntime offers only {', '.join(available)}"
        )
    chosen = [p for p in ordered if p in available]
    if not chosen:
        raise ModelError(f"no usable execution provider for {requested!r} in {list(available)}")
    return chosen


def _provider_options(name: str, cfg: SessionConfig) -> dict[str, Any]:
    if name == TRT:
        opts: dict[str, Any] = {
            "device_id": cfg.cuda_device_id,
            "trt_fp16_enable": cfg.trt_fp16,
            "trt_max_workspace_size": cfg.trt_max_workspace_bytes,
        }
        if cfg.trt_engine_cache_dir is not None:
            cfg.trt_engine_cache_dir.mkdir(parents=True, exist_ok=True)
            opts["trt_engine_cache_enable"] = True
            opts["trt_engine_cache_path"] = str(cfg.trt_engine_cache_dir)
        return opts
    if name == CUDA:
        return {"device_id": cfg.cuda_device_id, **dict(cfg.cuda_options)}
    return {}


def _session_options(cfg: SessionConfig) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(0, cfg.intra_op_threads)
    so.inter_op_num_threads = max(0, cfg.inter_op_threads)
    so.graph_optimization_level = _GRAPH_OPT[cfg.graph_optimization]
    so.log_severity_level = 3
    so.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if cfg.allow_spinning else "0"
    )
    so.add_session_config_entry(
        "session.inter_op.allow_spinning", "1" if cfg.allow_spinning else "0"
    )
    return so


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxModel:
    """One onnxruntime session with its single image input described."""

    def __init__(self, path: Path, cfg: SessionConfig | None = None) -> None:
        self.path = Path(path)
        self.config = cfg or SessionConfig()
        wanted = select_providers(self.config.providers, ort.get_available_providers())
        providers = [(p, _provider_options(p, self.config)) for p in wanted]
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=_session_options(self.config), providers=providers
            )
        except Exception as e:  # onnxruntime raises its own untyped errors
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            why = lines[0] if lines else type(e).__name__
            size = self.path.stat().st_size if self.path.is_file() else 0
            raise ModelError(
                f"cannot load ONNX model {self.path} ({size} bytes; truncated or not ONNX?): {why}"
            ) from e
        self._check_in_use(wanted)
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_shape: tuple[int | None, ...] = tuple(_dim(d) for d in inp.shape)
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        log.info("loaded %s with providers %s", self.path.name, ", ".join(self.providers))

    def _check_in_use(self, wanted: list[str]) -> None:
        _, required = _expand(self.config.providers)
        dropped = sorted(required - set(self.session.get_providers()))
        if dropped:
            raise ModelError(
                f"onnxruntime could not initialise {', '.join(dropped)} for {self.path.name} "
                f"(asked {wanted}, in use {self.session.get_providers()})"
            )

    @property
    def providers(self) -> tuple[str, ...]:
        """Providers actually in use, best first."""
        return tuple(self.session.get_providers())

    @property
    def fixed_batch(self) -> int | None:
        return self.input_shape[0] if self.input_shape else None

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        """(height, width) of a static NCHW input, else None."""
        if len(self.input_shape) == 4 and None not in self.input_shape[2:]:
            return int(self.input_shape[2] or 0), int(self.input_shape[3] or 0)
        return None

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """Run the model on one input tensor; returns every output."""
        outputs = self.session.run(self.output_names, {self.input_name: tensor})
        return [np.asarray(o) for o in outputs]

    def warmup(self, n: int = 1, hw: tuple[int, int] | None = None) -> None:
        """Run ``n`` dummy inferences (builds kernels / TensorRT engines before real traffic)."""
        h, w = self.fixed_hw or hw or (640, 640)
        channels = self.input_shape[1] if len(self.input_shape) > 1 else 3
        dummy = np.zeros((self.fixed_batch or 1, channels or 3, h, w), dtype=np.float32)
        for _ in range(max(0, n)):
            self.run(dummy)


def create_session(path: Path, cfg: SessionConfig | None = None, *, warmup: int = 0) -> OnnxModel:
    """Build an :class:`OnnxModel` and warm it up ``warmup`` times."""
    model = OnnxModel(path, cfg)
    model.warmup(warmup)
    return model
