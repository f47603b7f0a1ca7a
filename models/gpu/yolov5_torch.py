"""Load an Ultralytics yolov5 ``.pt`` checkpoint into plain torch modules, without yolov5.

The checkpoint pickles its layers as ``models.common.Conv``, ``models.yolo.Detect`` … — names
that clash with sharpeyes' own ``models`` package, and the yolov5 package is not installed on
GPU nodes. Instead of importing upstream code, :func:`load_yolov5` unpickles with a custom
``find_class`` that maps each yolov5 layer class to a small ``nn.Module`` of ours with the same
attribute names; ``nn.Module.__setstate__`` then restores submodules, parameters and the graph
wiring (``f``, ``i``, ``save``) exactly as stored. Any other class from the checkpoint's
``sharpeyes.models.*`` or ``utils.*`` modules is refused with a :class:`ModelError`.

The forward pass is the *exported* graph of ``models.export.yolov5_onnx``: Detect in export mode,
decoded boxes ``[B, N, 5 + nc]`` with ``xy = (2σ - 0.5 + grid) · stride`` and
``wh = (2σ)² · anchor · stride`` (yolov5 v7.0 ``Detect.forward``, Ultralytics AGPL-3.0), so the
output feeds the same NMS as the ONNX model. Conv + BatchNorm are fused for inference.
"""

from __future__ import annotations

import logging
import pickle
import types
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from sharpeyes.pipeline.errors import ModelError

log = logging.getLogger(__name__)


class Conv(nn.Module):
    """``conv → bn → act`` (bn is dropped by :func:`fuse`)."""

    conv: nn.Conv2d
    act: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = getattr(self, "bn", None)
        y = self.conv(x)
        out: torch.Tensor = self.act(bn(y) if bn is not None else y)
        return out


class Bottleneck(nn.Module):
    cv1: Conv
    cv2: Conv
    add: bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    cv1: Conv
    cv2: Conv
    cv3: Conv
    m: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))
        return out


class SPPF(nn.Module):
    cv1: Conv
    cv2: Conv
    m: nn.MaxPool2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        out: torch.Tensor = self.cv2(torch.cat((x, y1, y2, self.m(y2)), dim=1))
        return out


class Concat(nn.Module):
    d: int

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, dim=self.d)


class Detect(nn.Module):
    """Per level: 1×1 conv → sigmoid → decode against the grid and anchors → concat."""

    m: nn.ModuleList
    anchors: torch.Tensor  # (nl, na, 2) in grid units
    stride: torch.Tensor
    na: int
    no: int

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = []
        for i, conv in enumerate(self.m):
            y = conv(xs[i])
            b, _, ny, nx = y.shape
            y = y.view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            stride = self.stride[i].to(y.dtype)
            gy, gx = torch.meshgrid(
                torch.arange(ny, device=y.device, dtype=y.dtype),
                torch.arange(nx, device=y.device, dtype=y.dtype),
                indexing="ij",
            )
            grid = torch.stack((gx, gy), dim=-1).view(1, 1, ny, nx, 2) - 0.5
            anchor = (self.anchors[i] * self.stride[i]).to(y.dtype).view(1, self.na, 1, 1, 2)
            xy = (y[..., 0:2] * 2 + grid) * stride
            wh = (y[..., 2:4] * 2) ** 2 * anchor
            out.append(torch.cat((xy, wh, y[..., 4:]), dim=-1).view(b, -1, self.no))
        return torch.cat(out, dim=1)


class Model(nn.Module):
    """yolov5's graph runner: each layer reads the previous output or saved outputs ``f``."""

    model: nn.Sequential
    save: list[int]

    def forward(self, x: Any) -> torch.Tensor:
        saved: list[Any] = []
        keep = set(self.save)
        for layer in self.model:
            src: Any = layer.f
            if isinstance(src, int) and src != -1:
                x = saved[src]
            elif not isinstance(src, int):
                x = [x if j == -1 else saved[j] for j in src]
            x = layer(x)
            saved.append(x if layer.i in keep else None)
        out: torch.Tensor = x
        return out


LAYERS: Mapping[str, type[nn.Module]] = MappingProxyType(
    {
        "models.common.Conv": Conv,
        "models.common.Bottleneck": Bottleneck,
        "models.common.C3": C3,
        "models.common.SPPF": SPPF,
        "models.common.Concat": Concat,
        "models.yolo.Detect": Detect,
        "models.yolo.Model": Model,
    }
)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".", maxsplit=1)[0] in ("models", "utils"):
            layer = LAYERS.get(f"{module}.{name}")
            if layer is None:
                raise ModelError(f"unsupported yolov5 checkpoint class {module}.{name}")
            return layer
        return super().find_class(module, name)


_PICKLE = types.SimpleNamespace(Unpickler=_Unpickler, load=pickle.load, __name__="pickle")


def _fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One conv with the batch norm folded into its weights and bias."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=True,
    )
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        assert fused.bias is not None
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fuse(model: nn.Module) -> nn.Module:
    """Fold every ``Conv``'s batch norm into its convolution (in place)."""
    for m in model.modules():
        bn = getattr(m, "bn", None)
        if isinstance(m, Conv) and isinstance(bn, nn.BatchNorm2d):
            m.conv = _fuse_conv_bn(m.conv, bn)
            del m.bn
    return model


def load_yolov5(weights: Path) -> tuple[nn.Module, dict[int, str]]:
    """A fused fp32 eval yolov5 network and its class names from a ``.pt`` checkpoint.

    Raises:
        ModelError: the file is missing, is not a yolov5 checkpoint, or uses layers not mapped
            in :data:`LAYERS`.
    """
    try:
        ckpt = torch.load(
            str(weights), map_location="cpu", pickle_module=_PICKLE, weights_only=False
        )
    except ModelError:
        raise
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, AttributeError) as e:
        raise ModelError(f"cannot load yolov5 checkpoint {weights}: {e}") from e
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(model, Model):
        raise ModelError(f"{weights} holds no yolov5 model (found {type(model).__name__})")
    names = getattr(model, "names", {})
    names = dict(enumerate(names)) if isinstance(names, list | tuple) else dict(names)
    for m in model.modules():
        if isinstance(m, nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None
    net = fuse(model.float()).eval()
    log.info("loaded yolov5 checkpoint %s (%d classes)", weights, len(names))
    return net, names
