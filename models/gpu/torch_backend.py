"""The PyTorch detector backend: the yolov5 checkpoint run by torch on a GPU (or the CPU).

Same input, output and postprocess as the exported ONNX model (see :mod:`models.gpu.yolov5_torch`),
so sites that prefer torch — or GPU machines without onnxruntime-gpu — get the same detections.
On CUDA it runs in fp16 and replays a CUDA graph per input shape: batches are padded up to the
next power of two (at most ``max_batch``) so a handful of graphs cover every batch a cross-stream
batcher forms. The graph's output buffer is reused, so :meth:`_forward`'s result is only valid
until the next call; ``detect`` consumes it at once.

Capture runs while decoder threads keep using the GPU (NVDEC sessions, frame copies). In CUDA's
default *global* capture mode their calls fail (error 900, "operation not permitted when stream
is capturing") and invalidate the capture, which is what the first run on an H200 showed; graphs
are therefore captured in *thread-local* mode, :meth:`TorchYoloDetector.capture_graphs` captures
every batch bucket of a shape up front, and a shape whose capture still fails runs eagerly from
then on instead of failing its streams.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sharpeyes.models.gpu.common import YoloGpuBase
from sharpeyes.models.gpu.preprocess import TorchPreprocessor
from sharpeyes.models.gpu.yolov5_torch import load_yolov5
from sharpeyes.models.yolo import DetectorOptions
from sharpeyes.pipeline.errors import ModelError

log = logging.getLogger(__name__)


#: Frame sizes whose batch buckets are captured when the detector is built: 16:9 and 4:3 cameras
#: and the square model input. A capture while decoders run can fail (see above), so the usual
#: shapes are captured before any stream starts.
CAPTURE_AT_START: tuple[tuple[int, int] | None, ...] = ((1080, 1920), (1080, 1440), None)


def batch_bucket(n: int, max_batch: int) -> int:
    """The padded batch size for ``n`` images: the next power of two, at most ``max_batch``."""
    if n < 1:
        raise ValueError(f"batch size must be >= 1, got {n}")
    bucket = 1
    while bucket < n:
        bucket *= 2
    return max(n, min(bucket, max_batch))


@dataclass
class _Graph:
    graph: Any
    static_in: torch.Tensor
    static_out: torch.Tensor


class CudaGraphRunner:
    """Captures ``net`` once per input shape (LRU of ``max_graphs``) and replays it.

    A shape whose capture fails is remembered in :attr:`eager` and runs without a graph.
    """

    def __init__(self, net: nn.Module, max_graphs: int = 8, warmup_iters: int = 3) -> None:
        self.net = net
        self.max_graphs = max_graphs
        self.warmup_iters = warmup_iters
        self._graphs: OrderedDict[tuple[int, ...], _Graph] = OrderedDict()
        self.captures = 0
        self.eager: set[tuple[int, ...]] = set()

    def _capture(self, x: torch.Tensor) -> _Graph:
        static_in = x.clone()
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup_iters):
                self.net(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self.net(static_in)
        self.captures += 1
        log.info("captured a CUDA graph for input %s", tuple(x.shape))
        return _Graph(graph, static_in, static_out)

    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key in self.eager:
            return self._eager(x)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = self._capture(x)
            except Exception as e:  # a CUDA graph is an optimisation: never fail a batch for it
                log.warning(
                    "CUDA graph capture for input %s failed (%s); running it eagerly", key, e
                )
                self.eager.add(key)
                return self._eager(x)
            self._graphs[key] = entry
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
            entry.static_in.copy_(x)
        entry.graph.replay()
        return entry.static_out


class TorchYoloDetector(YoloGpuBase):
    """yolov5 on torch: on-device preprocessing, fp16, CUDA graphs, shared NMS."""

    def __init__(
        self,
        net: nn.Module,
        *,
        name: str,
        options: DetectorOptions | None = None,
        device: str = "cuda:0",
        fp16: bool = True,
        cuda_graphs: bool = True,
        max_batch: int = 64,
        default_size: tuple[int, int] = (640, 640),
        fixed_hw: tuple[int, int] | None = None,
    ) -> None:
        dev = torch.device(device)
        on_cuda = dev.type == "cuda"
        self.fp16 = fp16 and on_cuda
        self.cuda_graphs = cuda_graphs and on_cuda
        self.max_batch = max_batch
        self.device = dev
        self.net = net.to(dev).eval()
        if self.fp16:
            self.net = self.net.half()
        self.graphs = CudaGraphRunner(self.net, max_graphs=24) if self.cuda_graphs else None
        label = f"torch:{dev}" + (":fp16" if self.fp16 else ":fp32")
        label += ":cudagraph" if self.cuda_graphs else ""
        super().__init__(
            name=name,
            options=options or DetectorOptions(),
            preprocessor=TorchPreprocessor(str(dev), fp16=self.fp16),
            default_size=default_size,
            fixed_hw=fixed_hw,
            providers=(label,),
            threads=torch.get_num_threads(),
        )

    def graph_shapes(self, image_hw: tuple[int, int]) -> list[tuple[int, int, int, int]]:
        """The padded input shapes that batches of ``image_hw`` frames run at, one per bucket."""
        geometry = self.plan([np.zeros((*image_hw, 3), np.uint8)])[0]
        in_h, in_w = geometry.in_hw
        shapes, b = [], 1
        while True:
            shapes.append((b, 3, in_h, in_w))
            if b >= self.max_batch:
                return shapes
            b = min(2 * b, self.max_batch)

    def capture_graphs(self, image_hw: tuple[int, int] | None = None) -> int:
        """Capture every batch bucket for frames of ``image_hw`` now, before streams start.

        Returns the number of graphs captured so far (0 without CUDA graphs).
        """
        if self.graphs is None:
            return 0
        dtype = torch.float16 if self.fp16 else torch.float32
        with torch.inference_mode():
            for shape in self.graph_shapes(image_hw or self.input_hw):
                self.graphs(torch.zeros(shape, dtype=dtype, device=self.device))
        torch.cuda.synchronize(self.device)
        return self.graphs.captures

    def _forward(self, tensor: Any) -> Any:
        n = int(tensor.shape[0])
        with torch.inference_mode():
            if self.graphs is None:
                return self.net(tensor)
            padded = batch_bucket(n, self.max_batch)
            if padded != n:
                pad = tensor.new_zeros((padded - n, *tensor.shape[1:]))
                tensor = torch.cat((tensor, pad))
            return self.graphs(tensor)


def create_torch_detector(
    weights: Path,
    *,
    name: str = "yolov5n",
    options: DetectorOptions | None = None,
    device: str = "cuda:0",
    fp16: bool = True,
    cuda_graphs: bool = True,
    max_batch: int = 64,
    warmup: int = 1,
) -> TorchYoloDetector:
    """Load ``weights`` (a yolov5 ``.pt``) and build a warmed-up :class:`TorchYoloDetector`.

    Raises:
        ModelError: the checkpoint cannot be loaded, or ``device`` is not usable.
    """
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"torch backend: device {device} requested but CUDA is not available")
    net, names = load_yolov5(weights)
    if len(names) != 80:
        log.warning("%s has %d classes; sharpeyes maps COCO-80 class ids", weights, len(names))
    detector = TorchYoloDetector(
        net,
        name=name,
        options=options,
        device=device,
        fp16=fp16,
        cuda_graphs=cuda_graphs,
        max_batch=max_batch,
    )
    detector.warmup(warmup)
    if warmup > 0:
        for hw in CAPTURE_AT_START:
            detector.capture_graphs(hw)
    return detector
