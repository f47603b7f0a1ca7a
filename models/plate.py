"""Chinese licence-plate reader: detector → perspective rectify → CRNN recogniser.

Pre/post-processing follows ``shared/models/MODELS.md`` ("Chinese licence plates"):

1. HyperLPR3 ``y5fu_{320,640}x_sim.onnx``: centred letterbox (pad 114), RGB, /255; output rows
   ``cx, cy, w, h, obj, 4 corners (tl, tr, br, bl), 2 class scores (single, double layer)``;
   score = obj × max(cls), keep ≥ 0.3, NMS 0.5, undo the letterbox.
2. Perspective warp from the 4 corners; double-layer plates are split (top rows [0, 5h/12),
   bottom rows [h/3, h)) and placed side by side.
3. ``plate_rec_color.onnx``: 48×168 BGR, (x/255 − 0.588)/0.193; CTC greedy decode over
   ``plate_rec_chars.txt`` (index 0 = blank) and a 5-way colour head.

A reading whose text does not look like a Chinese plate or whose confidence is low gets
``text=None`` — the reader never invents a plate number.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.data import shared_dir
from sharpeyes.pipeline.denoise import NOISE_ON, SIGMA_COLOUR_PER_NOISE, noise_sigma
from sharpeyes.pipeline.errors import ModelError, ModelNotFoundError
from sharpeyes.pipeline.types import Box, ImageBGR, Plate

log = logging.getLogger(__name__)

PLATE_COLORS: tuple[str, ...] = ("black", "blue", "green", "white", "yellow")
DET_MODEL_FILES: dict[str, str] = {
    "plate_det_320": "y5fu_320x_sim.onnx",
    "plate_det_640": "y5fu_640x_sim.onnx",
}
REC_MODEL_FILES: dict[str, str] = {"plate_rec_color": "plate_rec_color.onnx"}
CHARS_FILE = "plate_rec_chars.txt"
REC_SIZE = (168, 48)  # (width, height) of the recogniser input
REC_MEAN, REC_STD = 0.588, 0.193
PROVINCES = "京沪津渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新"
# Civil plates: province + issuing-authority letter + 5 (blue/yellow) or 6 (new-energy green)
# characters, optionally a trailing class character (学 learner, 警 police, 挂 trailer, …).
PLATE_RE = re.compile(
    rf"^[{PROVINCES}][A-Z][A-Z0-9]{{5,6}}$|^[{PROVINCES}][A-Z][A-Z0-9]{{4}}[学警港澳挂领]$"
)


LARGE_NEV_RE = re.compile(rf"^[{PROVINCES}][A-Z][0-9]{{5}}[DF]$")
"""A large new-energy vehicle's plate (GA 36-2018 大型新能源汽车号牌: a bus, a lorry): five digits
then D (battery electric) or F (other), on a yellow-and-green background — which a colour head
that knows only black, blue, green, white and yellow may call either."""


def plausible_plate(text: str, color: str | None) -> bool:
    """True when ``text`` has the shape of a civil Chinese plate consistent with its colour.

    New-energy plates (green) have 8 characters; blue/yellow/black/white plates have 7 — and a
    yellow one 8 where it is a large new-energy plate (:data:`LARGE_NEV_RE`: an electric bus's
    yellow-green plate read as yellow). A reading that fails this is more likely a misread
    (dropped or doubled character) than a plate.
    """
    if PLATE_RE.match(text) is None:
        return False
    if color == "green":
        return len(text) == 8
    if color == "yellow" and len(text) == 8:
        return LARGE_NEV_RE.match(text) is not None
    return len(text) == 7


Corners = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
FloatArr = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class PlateReading:
    """One plate found in an image.

    ``text`` is None when the characters could not be read with confidence (never invented);
    ``confidence`` is the recogniser's (minimum per-character probability), ``det_confidence``
    the detector's; ``corners`` are tl, tr, br, bl in image pixels; ``layers`` is 1 or 2.
    """

    text: str | None
    color: str | None
    confidence: float
    det_confidence: float
    box: Box
    corners: Corners
    layers: int
    raw_text: str = ""

    def to_plate(self) -> Plate:
        return Plate(
            text=self.text, color=self.color, confidence=self.confidence, layers=self.layers
        )


def shared_plate_dir() -> Path:
    """Folder holding the plate models when no registry resolves them."""
    return shared_dir() / "models" / "plate"


def _registry_resolver() -> Callable[[str], Any] | None:
    """``models.resolve.resolve_model`` if that module exists (written by the registry work)."""
    try:
        mod = importlib.import_module("sharpeyes.models.resolve")
    except ImportError:
        return None
    fn = getattr(mod, "resolve_model", None)
    return fn if callable(fn) else None


def locate_plate_model(name: str) -> Path:
    """Resolve a plate model name (or explicit path) to a file.

    Uses ``models.resolve.resolve_model`` when that module exists; falls back to the shared
    data folder. Raises :class:`ModelNotFoundError` naming the places searched.
    """
    as_path = Path(name)
    if as_path.suffix == ".onnx" and as_path.is_file():
        return as_path
    resolver = _registry_resolver()
    if resolver is not None:
        try:
            return Path(resolver(name))
        except ModelNotFoundError as e:  # integrity and download errors propagate
            log.debug("resolve_model(%s) failed: %s; trying the shared folder", name, e)
    fname = DET_MODEL_FILES.get(name) or REC_MODEL_FILES.get(name) or name
    path = shared_plate_dir() / fname
    if not path.is_file():
        raise ModelNotFoundError(f"plate model {name!r} not found (looked for {path})")
    return path


def load_alphabet(path: Path) -> list[str]:
    try:
        chars = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ModelNotFoundError(f"plate alphabet {path} unreadable: {e}") from e
    if len(chars) < 2 or chars[0] != "#":
        raise ModelError(f"plate alphabet {path} must start with the CTC blank '#'")
    return chars


def _session(path: Path, providers: str | Sequence[str], threads: int) -> Any:
    """An ONNX Runtime session; ``providers`` as in :mod:`models.onnx_session` ("auto", "cpu",
    "cuda", "tensorrt" or provider names)."""
    import onnxruntime as ort

    from sharpeyes.models.onnx_session import select_providers

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    chosen = select_providers(providers, ort.get_available_providers())
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load plate model {path}: {e}") from e


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was scaled (``r``) and shifted (``dx``, ``dy``) into the network input."""

    r: float
    dx: float
    dy: float


def letterbox(image: ImageBGR, size: int) -> tuple[FloatArr, Letterbox]:
    """Centred letterbox to ``size``² (pad 114), RGB, /255, NCHW: resized straight into the
    canvas and converted in one pass (bit-identical to ``astype(float32) / 255``)."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    canvas = np.full((size, size, 3), 114, np.uint8)
    dx, dy = (size - nw) // 2, (size - nh) // 2
    place = canvas[dy : dy + nh, dx : dx + nw]
    out = cv2.resize(image, (nw, nh), dst=place, interpolation=cv2.INTER_LINEAR)
    if out is not place:  # OpenCV chose its own buffer: copy it in
        place[...] = out
    blob = np.empty((1, 3, size, size), np.float32)
    np.divide(canvas[:, :, ::-1].transpose(2, 0, 1)[None], np.float32(255.0), out=blob)
    return blob, Letterbox(r, float(dx), float(dy))


def nms(boxes: FloatArr, scores: FloatArr, iou: float) -> list[int]:
    """Greedy NMS over xyxy boxes; returns kept indices in descending score order."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clip(0) * (yy2 - yy1).clip(0)
        ious = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[ious <= iou]
    return keep


@dataclass(frozen=True, slots=True)
class _RawPlate:
    box: FloatArr  # xyxy in image px
    corners: FloatArr  # (4, 2) in image px
    score: float
    layers: int


def decode_detections(out: FloatArr, lb: Letterbox, conf: float, iou: float) -> list[_RawPlate]:
    """Turn the detector's [N, 15] rows into plates in image pixels (letterbox undone)."""
    cls = out[:, 13:15]
    scores = out[:, 4] * cls.max(axis=1)
    rows = out[scores >= conf]
    scores = scores[scores >= conf]
    if not len(rows):
        return []
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes = (boxes - np.array([lb.dx, lb.dy, lb.dx, lb.dy], np.float32)) / lb.r
    corners = (rows[:, 5:13].reshape(-1, 4, 2) - np.array([lb.dx, lb.dy], np.float32)) / lb.r
    layers = rows[:, 13:15].argmax(axis=1) + 1
    return [
        _RawPlate(boxes[i], corners[i], float(scores[i]), int(layers[i]))
        for i in nms(boxes.astype(np.float32), scores.astype(np.float32), iou)
    ]


MIN_TEXT_PX = 50.0
"""A plate narrower than this in the picture (pixels, its longer horizontal edge) is seen but
not read: its text is None. Measured (docs/STRUCTURING.md, "A plate too small to read"): the
Beijing checkpoint clip shrunk to 3/8 and 3/10 (plates 31–49 px wide) gave 27 right and 42 wrong
reads — almost all a wrong province glyph (川/豫/粤 for 京), plausible enough to pass the plate
grammar — against 71 right and 3 wrong at 50 px and over; the labelled still photos shrunk so
their plates were 30–45 px wide read 21 right, 31 wrong, 8 nothing; at 50 px 10 / 5, at 55–70 px
41 / 4. One wrong province is a false plate in a view library."""


def plate_width(corners: FloatArr) -> float:
    """A plate's width in picture pixels: the longer of its top and bottom edges (tl, tr, br,
    bl corners)."""
    tl, tr, br, bl = corners.astype(np.float32)
    return max(float(np.linalg.norm(tr - tl)), float(np.linalg.norm(br - bl)))


def rectify(image: ImageBGR, corners: FloatArr) -> ImageBGR:
    """Perspective-warp the quadrilateral (tl, tr, br, bl) to an upright rectangle."""
    tl, tr, br, bl = corners.astype(np.float32)
    fw = max(float(np.linalg.norm(tr - tl)), float(np.linalg.norm(br - bl)))
    fh = max(float(np.linalg.norm(bl - tl)), float(np.linalg.norm(br - tr)))
    w, h = max(round(fw), 8), max(round(fh), 4)
    dst = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    m = cv2.getPerspectiveTransform(np.stack([tl, tr, br, bl]), dst)
    return np.asarray(cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_CUBIC), np.uint8)


def join_double_layer(plate: ImageBGR) -> ImageBGR:
    """Double-layer plate: top rows [0, 5h/12) beside bottom rows [h/3, h) (MODELS.md)."""
    h = plate.shape[0]
    top = plate[: int(5 * h / 12)]
    bottom = plate[int(h / 3) :]
    top = np.asarray(cv2.resize(top, (bottom.shape[1], bottom.shape[0])), np.uint8)
    joined: ImageBGR = np.hstack([top, bottom])
    return joined


def rec_blob(plate: ImageBGR) -> FloatArr:
    img = cv2.resize(plate, REC_SIZE).astype(np.float32)
    img = (img / 255.0 - REC_MEAN) / REC_STD
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def _softmax(x: FloatArr, axis: int = -1) -> FloatArr:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out: FloatArr = e / e.sum(axis=axis, keepdims=True)
    return out


def ctc_greedy(logits: FloatArr, alphabet: Sequence[str]) -> tuple[str, float]:
    """Greedy CTC decode of [T, C] logits. Returns (text, min per-character probability)."""
    probs = _softmax(logits.astype(np.float32))
    best = probs.argmax(axis=1)
    chars: list[str] = []
    confs: list[float] = []
    prev = 0
    for t, kk in enumerate(best):
        k = int(kk)
        if k not in (0, prev) and k < len(alphabet):
            chars.append(alphabet[k])
            confs.append(float(probs[t, k]))
        prev = k
    return "".join(chars), (min(confs) if confs else 0.0)


def laplacian_sharpness(image: ImageBGR) -> float:
    """Variance of the Laplacian of the grey image: higher = sharper."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _corners(cs: FloatArr) -> Corners:
    p = [(float(x), float(y)) for x, y in cs[:4]]
    return (p[0], p[1], p[2], p[3])


def _clip_roi(roi: Box, w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1 = max(0, int(roi.x1)), max(0, int(roi.y1))
    x2, y2 = min(w, int(np.ceil(roi.x2))), min(h, int(np.ceil(roi.y2)))
    return x1, y1, x2, y2


class PlateReader:
    """Reads Chinese licence plates from BGR images (thread-safe: ONNX Runtime sessions are)."""

    def __init__(
        self,
        det_model: Literal["plate_det_320", "plate_det_640"] | str = "plate_det_320",
        rec_model: str = "plate_rec_color",
        providers: str | Sequence[str] = "auto",
        threads: int = 0,
        *,
        det_threshold: float = 0.3,
        nms_iou: float = 0.5,
        min_char_confidence: float = 0.4,
        min_text_px: float = MIN_TEXT_PX,
    ) -> None:
        det_path = locate_plate_model(det_model)
        rec_path = locate_plate_model(rec_model)
        self._det = _session(det_path, providers, threads)
        self._rec = _session(rec_path, providers, threads)
        self._det_input = self._det.get_inputs()[0].name
        self._det_size = int(self._det.get_inputs()[0].shape[2])
        self._rec_input = self._rec.get_inputs()[0].name
        self._alphabet = load_alphabet(rec_path.parent / CHARS_FILE)
        self.det_threshold = det_threshold
        self.nms_iou = nms_iou
        self.min_char_confidence = min_char_confidence
        self.min_text_px = min_text_px

    @property
    def providers(self) -> tuple[str, ...]:
        """Execution providers actually in use by the detector session."""
        return tuple(self._det.get_providers())

    def read(
        self,
        image_bgr: ImageBGR,
        roi: Box | None = None,
        *,
        max_plates: int | None = None,
        retry_padded: bool = True,
        balance: FloatArr | None = None,
        noise: float | None = None,
    ) -> list[PlateReading]:
        """Find and read every plate in ``image_bgr`` (or in ``roi`` of it), best first.

        When nothing readable is found, the detector is retried once on the region padded by
        half its longest side (grey 114): a tight crop — a pre-cropped plate, or a vehicle box
        that cuts the plate — then has the context the detector was trained with.
        ``max_plates`` reads only that many of the detector's best plates (one for a vehicle
        box: the recogniser costs about as much as the detector); ``retry_padded=False`` skips
        the padded retry (a region that already has margin around the vehicle). ``balance``:
        BGR gains applied to the region first — the picture's own white balance
        (:func:`sharpeyes.pipeline.picture.picture_balance`): under a colour cast the colour
        head named a blue plate black. ``noise``: the sensor noise σ of the whole picture
        (:func:`~sharpeyes.pipeline.denoise.noise_sigma`; measured on the picture, not the
        region: a tight plate crop is all character edges and reads 4.5 clean); from
        :data:`~sharpeyes.pipeline.denoise.NOISE_ON` the region is read bilateral-filtered, as
        the detector is shown noisy pictures (:mod:`sharpeyes.pipeline.denoise`). The Beijing
        checkpoint clip with noise σ ≈ 11 (two seeds) read 5 and 6 of its 8 plates, 6 and 8
        filtered.
        """
        h, w = image_bgr.shape[:2]
        ox, oy = 0, 0
        crop = image_bgr
        if roi is not None:
            x1, y1, x2, y2 = _clip_roi(roi, w, h)
            if x2 - x1 < 4 or y2 - y1 < 4:
                return []
            crop, ox, oy = image_bgr[y1:y2, x1:x2], x1, y1
        if balance is not None:
            crop = np.clip(crop.astype(np.float32) * balance, 0, 255).astype(np.uint8)
        if noise is not None and noise >= NOISE_ON:
            colour = SIGMA_COLOUR_PER_NOISE * noise
            crop = np.asarray(cv2.bilateralFilter(crop, 9, colour, 9), np.uint8)
        readings = self._read_region(crop, ox, oy, 0, (w, h), max_plates=max_plates)
        if any(r.text is not None for r in readings) or not retry_padded:
            return readings
        pad = max(crop.shape[:2]) // 2
        grey = (114, 114, 114)
        padded = np.asarray(
            cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=grey),
            np.uint8,
        )
        retry = self._read_region(padded, ox, oy, pad, (w, h), max_plates=max_plates)
        if any(r.text is not None for r in retry) or (retry and not readings):
            return retry
        return readings

    def _read_region(
        self,
        region: ImageBGR,
        ox: int,
        oy: int,
        pad: int,
        size: tuple[int, int],
        *,
        max_plates: int | None = None,
    ) -> list[PlateReading]:
        """Detect and read plates in ``region``; map coordinates back to the full image."""
        w, h = size
        shift = np.array([ox - pad, oy - pad], np.float32)
        out = []
        for raw in self.detect(region)[:max_plates]:
            text, color, conf, raw_text = self.recognise(region, raw.corners, raw.layers)
            cs = (raw.corners + shift).clip([0, 0], [w - 1, h - 1])
            bx = (raw.box + np.tile(shift, 2)).clip(0, [w, h, w, h])
            out.append(
                PlateReading(
                    text=text,
                    color=color,
                    confidence=conf,
                    det_confidence=raw.score,
                    box=Box(float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3]), w, h),
                    corners=_corners(cs),
                    layers=raw.layers,
                    raw_text=raw_text,
                )
            )
        return out

    def detect(self, image_bgr: ImageBGR) -> list[_RawPlate]:
        """Run the plate detector on a whole image; plates in that image's pixels."""
        blob, lb = letterbox(image_bgr, self._det_size)
        out = self._det.run(None, {self._det_input: blob})[0][0]
        return decode_detections(np.asarray(out, np.float32), lb, self.det_threshold, self.nms_iou)

    def recognise(
        self, image_bgr: ImageBGR, corners: FloatArr, layers: int
    ) -> tuple[str | None, str | None, float, str]:
        """Rectify and read one plate. Returns (text or None, colour, confidence, raw text);
        the text is None for a plate narrower than :attr:`min_text_px` (:data:`MIN_TEXT_PX`),
        whatever the recogniser made of it."""
        plate = rectify(image_bgr, corners)
        if layers == 2:
            plate = join_double_layer(plate)
        text, color, conf, raw = self.recognise_crop(plate)
        if plate_width(corners) < self.min_text_px:
            return None, color, conf, raw
        return text, color, conf, raw

    def recognise_crop(self, plate_bgr: ImageBGR) -> tuple[str | None, str | None, float, str]:
        """Read an already rectified plate crop."""
        logits, color_logits = self._rec.run(None, {self._rec_input: rec_blob(plate_bgr)})
        raw_text, conf = ctc_greedy(np.asarray(logits[0], np.float32), self._alphabet)
        color = PLATE_COLORS[int(np.argmax(color_logits[0]))]
        readable = conf >= self.min_char_confidence and plausible_plate(raw_text, color)
        return (raw_text if readable else None), color, conf, raw_text

    def read_best(self, frames_and_boxes: Sequence[tuple[ImageBGR, Box | None]]) -> Plate:
        """Read the plate from the sharpest vehicle crop among ``(frame, vehicle box)`` pairs.

        Sharpness is the variance of the Laplacian over the vehicle box. The other frames are
        tried in decreasing sharpness only when the sharpest yields no readable plate. Returns
        ``Plate(text=None, …)`` when none is readable.
        """
        best = self.read_best_reading(frames_and_boxes)
        if best is None:
            return Plate(text=None, color=None, confidence=0.0)
        return best[1].to_plate()

    def read_best_reading(
        self, frames_and_boxes: Sequence[tuple[ImageBGR, Box | None]]
    ) -> tuple[int, PlateReading] | None:
        """Like :meth:`read_best` but returns (index of the frame used, reading) or None."""
        order = rank_by_sharpness(frames_and_boxes)
        fallback: tuple[int, PlateReading] | None = None
        for idx in order:
            image, box = frames_and_boxes[idx]
            readings = self.read(image, box, noise=noise_sigma(image))
            readable = [r for r in readings if r.text is not None]
            if readable:
                return idx, max(readable, key=lambda r: (r.det_confidence, r.confidence))
            if readings and fallback is None:
                fallback = idx, readings[0]
        return fallback


def rank_by_sharpness(frames_and_boxes: Sequence[tuple[ImageBGR, Box | None]]) -> list[int]:
    """Indices of ``frames_and_boxes`` by decreasing Laplacian variance of the box region."""
    scores = []
    for image, box in frames_and_boxes:
        region = image
        if box is not None:
            x1, y1, x2, y2 = _clip_roi(box, image.shape[1], image.shape[0])
            if x2 - x1 >= 4 and y2 - y1 >= 4:
                region = image[y1:y2, x1:x2]
        scores.append(laplacian_sharpness(region))
    return sorted(range(len(scores)), key=lambda i: -scores[i])
