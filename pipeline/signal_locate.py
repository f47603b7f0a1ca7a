"""Find static signal heads in a video: where lamps light, in which colour, and how they line up.

An installer writing a camera config must type each head's ``region`` by hand; this module
proposes it (``sharpeyes signal-check VIDEO --find-heads``) and corrects a region that the
reader's calibration checks doubt (``signal-check``'s warnings).

How (:class:`HeadFinder`): frames are sampled (``sample_hz``, 3 a second by default) and
reduced to a working picture at most ``MAX_WORK_W`` px wide; only per-pixel counters are kept
(bounded memory, whatever the length of the clip). On each sample a pixel is a *lit lamp pixel*
of a colour when

* its hue (OpenCV HSV, 0–179) is in that colour's band (red, amber, green);
* it is saturated (chroma ``max − min`` of its channels ≥ half its brightness) and its chroma is
  at least ``LIT_CHROMA`` of the scene's own white level (the 99.5th percentile of brightness of
  that frame) — a lamp is a light source, about as bright as the brightest things in the
  picture, while paint (a red sign, a red car) is lit by the scene and darker: the threshold
  moves with exposure and white balance instead of being fixed grey levels;
* it stands out from its surroundings (top-hat: brighter than the picture opened with a disc
  wider than a lamp by ``LOCAL_CONTRAST`` of its brightness) — a lamp on a dark housing, not a
  large coloured surface.

Per colour the number of samples each pixel was lit is counted; pixels lit for at least
``MIN_LIT_S`` seconds of samples form *lamp blobs* (connected components). A moving tail light
lights each pixel for a sample or two and never forms a blob; a blob whose surroundings changed
over the clip (the grey-level standard deviation of a ring around it, against the scene's) is
not static — a car that stopped and left, a person — and is dropped.

Blobs become proposals (:class:`HeadProposal`):

* ``head`` — blobs of two or three colours at different places along one line (vertical or
  horizontal), in the order of GB 14886 (red on top / left, green at the bottom / right) and
  spaced like lamps of one head. A 3-lamp head seen in red and green only keeps the amber
  place between them (``unseen``). Highest scores.
* ``countdown`` — one cell lighting several colours at the same place: a countdown display
  (or a one-lamp head); noted as such, not proposed as a lamp head.
* ``one-colour`` — a static blob of one colour that was also seen dark at the same place, or a
  lamp-sized disc lit all along in a clip where no head changed colour (a clip entirely in red):
  proposed with a lower score, the lamps not seen listed. A blob lit all along while a head of
  the scene changed colour is a sign (the red no-turn sign), not proposed.

**Dim lamps.** A head whose LEDs are old or dimmed at night has lamps under ``LIT_CHROMA`` of the
white level (the rendered ``dim_led``: chroma 76–94 against a white level of 235, under the
129 the lit test asks). The same counts are kept for a second, ``dim`` tier (chroma from
``DIM_SHARE`` × ``LIT_CHROMA`` of the white level, the other tests unchanged), but its blobs are
weaker evidence — paint, tail lights and signs reach that level — and are proposed only as a
whole ``head``: two or three colours in order and spacing, away from every lit blob and
proposal, each lamp static and seen going dark at its place (dark ratio ≤ ``MAX_DARK_RATIO``,
≤ ``MAX_FLIPS`` flips, not lit all along: ≈ 0.07 and 1–2 for the dim LED; 0.38–0.74 and 5–10 for
the dim-tier blobs of the urban_buses clip, which would otherwise line up as a head). Never a
dim countdown or a dim one-colour candidate; the score is 0.1 lower and the note says "dim".

Everything is relative to the frame (the working scale, the lamp size from the blob itself,
the thresholds from the scene's levels); there is no threshold tuned to one clip.
:func:`suggest_region` picks the proposal that corrects a configured region (looked for inside
and around it, up to ``SEARCH_SCALE`` × its size).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from sharpeyes.pipeline.types import ImageBGR

Box = tuple[int, int, int, int]
"""Pixel box ``(x0, y0, x1, y1)`` (x1, y1 exclusive)."""

COLOURS = ("red", "amber", "green")
MAX_WORK_W = 960  # px: frames wider than this are reduced before counting
LIT_CHROMA = 0.55  # a lit lamp's chroma ≥ this share of the scene's white level
DIM_SHARE = 0.4  # a dim lamp: chroma ≥ this share of LIT_CHROMA (proposed only as a whole head)
LOCAL_CONTRAST = 0.3  # … and it is this share of its brightness above its opened surroundings
MIN_LIT_S = 1.5  # seconds of samples a pixel must be lit to belong to a lamp blob
STEADY_SHARE = 0.95  # a blob lit on this share of the samples never went dark
MAX_DARK_RATIO = 0.35  # a lamp that went dark: its unlit chroma ≤ this share of its lit one
MIN_SOLID = 0.45  # … and most of its pixels lit as often as its core (a disc, not digits)
MAX_FLIPS = 6  # … and it went on / off at most this often (a phase or two)
FRINGE = 3.0  # a neighbouring hue at the same place lit this many times less: a lamp's fringe
LENIENT = 4.0  # ring ≤ this × the scene's quiet level: a lamp whose glow spreads into its ring
TEXT_SHARE = 0.3  # things lit this often beside a steady blob, on its line, make it text
MAX_SAMPLES = 60_000  # counters are uint16: later frames are not counted (≈ 5.5 h at 3 Hz)
SEARCH_SCALE = 3.0  # suggest_region looks up to this many times the configured region's size
# Hue bands (OpenCV 0–179) of lit lamps: red wraps around 0; LED greens are cyan-ish.
_HUE_BANDS: dict[str, tuple[tuple[int, int], ...]] = {
    "red": ((0, 9), (166, 179)),
    "amber": ((10, 34),),
    "green": ((45, 100),),
}
Layout = Literal["vertical", "horizontal", "single"]
Kind = Literal["head", "countdown", "one-colour"]


@dataclass(frozen=True, slots=True)
class LampBlob:
    """Where one colour lit steadily (working-picture pixels)."""

    colour: str
    cx: float
    cy: float
    box: Box
    area: int
    lit_s: float
    """Seconds of samples its most-lit pixels were lit."""
    lit_share: float
    """Share of the samples its most-lit pixels were lit."""
    ring_std: float
    """Median grey-level standard deviation over the clip of a ring around it."""
    flips: float
    """How often its most-lit pixels went on or off (median over them)."""
    solid: float
    """Share of its pixels lit at least half as often as its most-lit ones: ≈ 1 for a lamp
    disc, low for changing digits."""
    dark_ratio: float
    """Mean chroma of those pixels when not lit over when lit: ≈ 0.1–0.3 for a lamp over a
    dark lens; near 1 for paint that hovers about the threshold (1.0 when never seen unlit)."""

    @property
    def size(self) -> float:
        """Lamp diameter estimate: the larger side of its box."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclass(frozen=True, slots=True)
class HeadProposal:
    """A proposed signal head (or a display noted as not being one)."""

    kind: Kind
    box: Box
    """Pixel box in the full frame, margin included."""
    frame_size: tuple[int, int]
    layout: Layout
    lamps: tuple[str, ...]
    """Lamp colours in layout order (what the config's ``lamps`` should say)."""
    seen_s: dict[str, float]
    """Seconds each colour was seen lit (sampled)."""
    unseen: tuple[str, ...]
    score: float
    note: str = ""
    lamp_px: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Centre of each seen lamp (full-frame px)."""

    @property
    def region(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The box relative to the frame (0–1, 4 decimals), as the config's ``region``."""
        w, h = self.frame_size
        x0, y0, x1, y1 = self.box
        return (
            (round(x0 / w, 4), round(y0 / h, 4)),
            (round(x1 / w, 4), round(y1 / h, 4)),
        )

    def region_yaml(self) -> str:
        """``[[x0, y0], [x1, y1]]   # (x0,y0)-(x1,y1) px`` for a config line."""
        (a, b), (c, d) = self.region
        x0, y0, x1, y1 = self.box
        return f"[[{a:.4f}, {b:.4f}], [{c:.4f}, {d:.4f}]]   # ({x0},{y0})-({x1},{y1}) px"

    def evidence(self) -> str:
        """``red 40.1 s, green 21.0 s; amber not seen``."""
        seen = ", ".join(f"{c} {s:.1f} s" for c, s in self.seen_s.items())
        return seen + (f"; {', '.join(self.unseen)} not seen" if self.unseen else "")

    def as_dict(self) -> dict[str, object]:
        """JSON form."""
        return {
            "kind": self.kind,
            "region": [list(p) for p in self.region],
            "box_px": list(self.box),
            "layout": self.layout,
            "lamps": list(self.lamps),
            "seen_s": {c: round(s, 1) for c, s in self.seen_s.items()},
            "unseen": list(self.unseen),
            "score": round(self.score, 2),
            "note": self.note,
        }

    def yaml_entry(self, head_id: str, group: str) -> str:
        """A ready-to-paste ``signal_heads:`` list entry (indented for ``intersection:``)."""
        lines = [
            f"    - id: {head_id}",
            f"      group: {group}",
            f"      region: {self.region_yaml()}",
            f"      layout: {self.layout}",
            f"      lamps: [{', '.join(self.lamps)}]",
        ]
        return "\n".join(lines)


Tier = Literal["lit", "dim"]


@dataclass(slots=True)
class _Counters:
    """Per colour and pixel: samples lit, on/off flips, the previous sample, chroma summed
    over the lit samples."""

    counts: dict[str, np.ndarray]
    flips: dict[str, np.ndarray]
    prev: dict[str, np.ndarray]
    chroma_lit: dict[str, np.ndarray]
    prev_any: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def zeros(cls, shape: tuple[int, int]) -> _Counters:
        def u16() -> dict[str, np.ndarray]:
            return {c: np.zeros(shape, np.uint16) for c in COLOURS}

        return cls(u16(), u16(), u16(), {c: np.zeros(shape, np.float32) for c in COLOURS})

    def add(self, masks: dict[str, np.ndarray], chroma: np.ndarray, *, first: bool) -> None:
        for c, m in masks.items():
            lit = bool(m.any())  # most samples light nothing of a colour: skip the full sums
            if lit:
                self.counts[c] += m
                self.chroma_lit[c] += chroma * m
            if not first and (lit or self.prev_any.get(c, False)):
                self.flips[c] += m != self.prev[c]
            self.prev[c] = m
            self.prev_any[c] = lit


def _odd(n: float) -> int:
    k = max(3, round(n))
    return k if k % 2 else k + 1


class HeadFinder:
    """Counts where lamps light over sampled frames; :meth:`proposals` turns that into heads.

    ``frame_size`` is the full frame's ``(w, h)``; ``roi`` a pixel box of the frame to look in
    (None: all of it). Memory is a few counters of the working picture, whatever the clip's
    length. Feed every decoded frame to :meth:`offer`; it keeps ``sample_hz`` a second.
    """

    def __init__(
        self, frame_size: tuple[int, int], roi: Box | None = None, sample_hz: float = 3.0
    ) -> None:
        w, h = frame_size
        self.frame_size = frame_size
        x0, y0, x1, y1 = roi if roi is not None else (0, 0, w, h)
        self.roi: Box = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
        self.scale = min(1.0, MAX_WORK_W / w)
        rw = max(1, round((self.roi[2] - self.roi[0]) * self.scale))
        rh = max(1, round((self.roi[3] - self.roi[1]) * self.scale))
        self.work_size = (rw, rh)
        self.sample_hz = sample_hz
        self.samples = 0
        self._scene_std = 0.0
        self._steady: list[tuple[str, Box]] = []  # components lit often (text, signs)
        self.first_pts: float | None = None
        self.last_pts: float | None = None
        self._next: float | None = None
        self._rng = np.random.default_rng(0)
        self._tiers = {t: _Counters.zeros((rh, rw)) for t in ("lit", "dim")}
        self._chroma_all = np.zeros((rh, rw), np.float32)
        self._sum = np.zeros((rh, rw), np.float64)
        self._sq = np.zeros((rh, rw), np.float64)
        # Opening disc: wider than a lamp of a head in view (lamps are ≲ 1/40 of the width).
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (_odd(w * self.scale / 30),) * 2)

    @property
    def interval_s(self) -> float:
        """Seconds one sample stands for."""
        return 1.0 / self.sample_hz

    def due(self, pts: float) -> bool:
        """Whether a frame at ``pts`` would be sampled (a caller may skip decoding others);
        a jump back in time (a restarted clock) samples at once."""
        nxt = self._next
        return nxt is None or pts >= nxt or pts < nxt - 2.0 / self.sample_hz

    def offer(self, image: ImageBGR, pts: float) -> bool:
        """Look at one frame if a sample is due (True when it was sampled)."""
        if not self.due(pts) or self.samples >= MAX_SAMPLES:
            return False
        # A jittered step (mean 1 / sample_hz): a fixed one can beat with a flickering LED
        # and see it dark on every sample.
        self._next = pts + (0.5 + float(self._rng.random())) / self.sample_hz
        if self.first_pts is None:
            self.first_pts = pts
        self.last_pts = pts
        self.add(image)
        return True

    def add(self, image: ImageBGR) -> None:
        """Count one sampled frame (full frame; the roi is cut here)."""
        white = _white_level(image)
        x0, y0, x1, y1 = self.roi
        part: ImageBGR = image[y0:y1, x0:x1]
        if part.shape[1] != self.work_size[0] or part.shape[0] != self.work_size[1]:
            part = np.asarray(
                cv2.resize(part, self.work_size, interpolation=cv2.INTER_AREA), np.uint8
            )
        tiers, chroma = lit_masks(part, white, self._kernel)
        chroma_f = chroma.astype(np.float32)
        self._chroma_all += chroma_f
        for tier, masks in tiers.items():
            self._tiers[tier].add(masks, chroma_f, first=self.samples == 0)
        grey = cv2.cvtColor(part, cv2.COLOR_BGR2GRAY).astype(np.float64)
        self._sum += grey
        self._sq += grey * grey
        self.samples += 1

    # -- results -------------------------------------------------------------------------
    def blobs(self, tier: Tier = "lit") -> list[LampBlob]:
        """The lamp blobs of every colour (``tier``: ``lit`` lamps, or ``dim`` ones — chroma
        from ``DIM_SHARE`` × ``LIT_CHROMA`` of the white level, the lit ones included)."""
        if self.samples == 0:
            return []
        n = self.samples
        mean = self._sum / n
        std = np.sqrt(np.maximum(self._sq / n - mean * mean, 0.0)).astype(np.float32)
        min_count = max(3, math.ceil(MIN_LIT_S * self.sample_hz))
        counters = self._tiers[tier]
        any_lit = np.zeros(std.shape, bool)
        for cnt in counters.counts.values():
            any_lit |= cnt >= 2
        scene_std = float(np.percentile(std, 25))
        if tier == "lit":
            self._steady = []
        max_side = max(4.0, self.frame_size[0] * self.scale / 12)
        out: list[LampBlob] = []
        for colour, cnt in counters.counts.items():
            raw = (cnt >= min_count).astype(np.uint8)
            if not raw.any():
                continue
            mask = np.asarray(cv2.morphologyEx(raw, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)))
            k, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for i in range(1, k):
                bx, by, bw, bh, area = (int(v) for v in stats[i])
                win = (slice(by, by + bh), slice(bx, bx + bw))  # the component's box only
                sel = labels[win] == i
                if tier == "lit" and float(cnt[win][sel].max()) >= TEXT_SHARE * n:
                    self._steady.append((colour, (bx, by, bx + bw, by + bh)))
                if area < 3 or bw > max_side or bh > max_side or max(bw, bh) > 3 * min(bw, bh):
                    continue
                weights = cnt[win][sel].astype(np.float64)
                if weights.sum() <= 0:
                    continue
                ys, xs = np.nonzero(sel)
                ys, xs = ys + by, xs + bx
                top = float(np.percentile(weights, 90))
                core = weights >= top
                flips = float(np.median(counters.flips[colour][win][sel][core]))
                lit_n = weights[core].sum()
                lit_sum = float(counters.chroma_lit[colour][win][sel][core].sum())
                unlit_n = n * int(core.sum()) - lit_n
                unlit_sum = float(self._chroma_all[win][sel][core].sum()) - lit_sum
                dark_ratio = (
                    (unlit_sum / unlit_n) / max(lit_sum / lit_n, 1e-6) if unlit_n > 0 else 1.0
                )
                box = (bx, by, bx + bw, by + bh)
                ring = _ring_std(std, any_lit, box)
                out.append(
                    LampBlob(
                        colour,
                        float((xs * weights).sum() / weights.sum()),
                        float((ys * weights).sum() / weights.sum()),
                        box,
                        area,
                        top / self.sample_hz,
                        top / n,
                        ring if ring is not None else scene_std,
                        flips,
                        float((weights >= 0.5 * top).mean()),
                        dark_ratio,
                    )
                )
        self._scene_std = scene_std
        return out

    def proposals(self) -> list[HeadProposal]:
        """Proposed heads (best first), countdowns and one-colour candidates."""
        lit = self.blobs()
        props = self._complete(lit, self._proposals(lit))
        props += self._dim_heads(lit, props)
        props.sort(key=lambda p: -p.score)
        return props

    def _dim_lamps(self, lit: list[LampBlob]) -> list[LampBlob]:
        """Dim-tier blobs that behave like lamps (static, seen going dark at their place, a
        phase or two of flips) and are not at the place of a lit blob."""
        return [
            b
            for b in _drop_fringes([b for b in self.blobs("dim") if self._static(b, LENIENT)])
            if not any(_same_place(b, a) for a in lit)
            and b.lit_share < STEADY_SHARE
            and b.dark_ratio <= MAX_DARK_RATIO
            and b.flips <= MAX_FLIPS
        ]

    def _complete(self, lit: list[LampBlob], props: list[HeadProposal]) -> list[HeadProposal]:
        """A one-colour candidate completed into a head by dim lamps of its other colours in
        the standard order and spacing. A far head's red keeps its colour while its green's
        core blooms white and only a thin rim is green: hanoi_b's far-side head (lamps about
        6 px) lit red, its green only in the dim tier, and was proposed as one-colour with the
        region of an assumed layout. Scored 0.1 under a head of lit lamps; noted."""
        ones = [p for p in props if p.kind == "one-colour"]
        if not ones:
            return props
        dims = self._dim_lamps(lit)
        if not dims:
            return props
        out: list[HeadProposal] = []
        for p in props:
            base = next(
                (
                    b
                    for b in lit
                    if p.kind == "one-colour"
                    and p.lamp_px.get(b.colour) == _int_pt(self._to_frame(b.cx, b.cy))
                ),
                None,
            )
            if base is None:
                out.append(p)
                continue
            group = [base, *dims]
            best: HeadProposal | None = None
            for combo in _head_combos(group, list(range(len(group)))):
                if 0 not in combo:
                    continue
                h = self._head([group[i] for i in combo])
                if h is not None and (best is None or h.score > best.score):
                    best = h
            if best is None:
                out.append(p)
                continue
            faint = ", ".join(c for c in best.seen_s if c != base.colour)
            dim = f"chroma under {LIT_CHROMA:.2f} of the white level"
            note = f"{best.note}; the {faint} lamp dim ({dim})"
            out.append(dataclasses.replace(best, score=round(best.score - 0.1, 3), note=note))
        return out

    def _dim_heads(self, lit: list[LampBlob], props: list[HeadProposal]) -> list[HeadProposal]:
        """Heads whose lamps are dim (under ``LIT_CHROMA`` of the white level, from
        ``DIM_SHARE`` of it), away from every lit blob and proposal: only as a whole head —
        two or three colours in the standard order and spacing, each lamp static and seen
        going dark at its place (a dim lamp alone is no evidence; paint and tail lights that
        reach the lower level do not line up as a head)."""
        taken = [p.box for p in props]

        def free(b: LampBlob) -> bool:
            x, y = self._to_frame(b.cx, b.cy)
            return not any(_same_place(b, a) for a in lit) and not any(
                t[0] <= x < t[2] and t[1] <= y < t[3] for t in taken
            )

        dim = [
            b
            for b in _drop_fringes([b for b in self.blobs("dim") if self._static(b, LENIENT)])
            if free(b)
            and b.lit_share < STEADY_SHARE
            and b.dark_ratio <= MAX_DARK_RATIO
            and b.flips <= MAX_FLIPS
        ]
        heads: list[tuple[float, tuple[int, ...], HeadProposal]] = []
        for combo in _head_combos(dim, list(range(len(dim)))):
            if not any(self._static(dim[i]) for i in combo):
                continue
            p = self._head([dim[i] for i in combo])
            if p is not None:
                heads.append((p.score, combo, p))
        heads.sort(key=lambda t: -t[0])
        used: set[int] = set()
        out: list[HeadProposal] = []
        for _, combo, p in heads:
            if used & set(combo):
                continue
            used |= set(combo)
            note = f"{p.note}; dim lamps (chroma under {LIT_CHROMA:.2f} of the white level)"
            out.append(dataclasses.replace(p, score=round(p.score - 0.1, 3), note=note))
        return out

    def _proposals(self, lit: list[LampBlob]) -> list[HeadProposal]:
        """Heads, countdowns and one-colour candidates from the lit blobs."""
        blobs = _drop_fringes([b for b in lit if self._static(b, LENIENT)])
        if not blobs:
            return []
        used: set[int] = set()
        props = self._countdowns(blobs, used)
        free = [i for i in range(len(blobs)) if i not in used]
        heads: list[tuple[float, tuple[int, ...], HeadProposal]] = []
        for combo in _head_combos(blobs, free):
            if not any(self._static(blobs[i]) for i in combo):
                continue
            p = self._head([blobs[i] for i in combo])
            if p is not None:
                heads.append((p.score, combo, p))
        heads.sort(key=lambda t: -t[0])
        for _, combo, p in heads:
            if used & set(combo):
                continue
            used |= set(combo)
            props.append(p)
        changed = any(p.kind == "head" for p in props)
        for i in range(len(blobs)):
            if i in used or _in_text_line(blobs[i], self._steady) or not self._static(blobs[i]):
                continue
            p1 = self._one_colour(blobs[i], changed)
            if p1 is not None:
                props.append(p1)
        props.sort(key=lambda p: -p.score)
        return props

    # -- helpers -------------------------------------------------------------------------
    def _countdowns(self, blobs: list[LampBlob], used: set[int]) -> list[HeadProposal]:
        """Same place, several colours: a countdown (or a one-lamp head) when static; the
        blobs are marked ``used`` either way (colours changing at a place that moved are
        traffic)."""
        out = []
        for group in _same_place_groups(blobs):
            if len({blobs[i].colour for i in group}) < 2:
                continue
            used |= set(group)
            if all(self._static(blobs[i]) for i in group):
                out.append(self._countdown([blobs[i] for i in group]))
        return out

    def _static(self, b: LampBlob, factor: float = 2.0) -> bool:
        """Its surroundings did not change over the clip more than ``factor`` × the scene's
        quiet part (a lamp's own glow, blurred into the ring, raises it: a lamp of a head
        needs only ``LENIENT`` when another lamp of the head is static)."""
        return b.ring_std <= max(6.0, factor * self._scene_std)

    def _to_frame(self, x: float, y: float) -> tuple[float, float]:
        return self.roi[0] + x / self.scale, self.roi[1] + y / self.scale

    def _frame_box(self, cx: float, cy: float, half_w: float, half_h: float) -> Box:
        w, h = self.frame_size
        x, y = self._to_frame(cx, cy)
        hw, hh = half_w / self.scale, half_h / self.scale
        return (
            max(0, math.floor(x - hw)),
            max(0, math.floor(y - hh)),
            min(w, math.ceil(x + hw)),
            min(h, math.ceil(y + hh)),
        )

    def _countdown(self, group: list[LampBlob]) -> HeadProposal:
        x0 = min(b.box[0] for b in group)
        y0 = min(b.box[1] for b in group)
        x1 = max(b.box[2] for b in group)
        y1 = max(b.box[3] for b in group)
        seen = {
            c: max(b.lit_s for b in group if b.colour == c)
            for c in COLOURS
            if any(b.colour == c for b in group)
        }
        box = self._frame_box((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 + 1, (y1 - y0) / 2 + 1)
        return HeadProposal(
            "countdown",
            box,
            self.frame_size,
            "single",
            tuple(seen),
            seen,
            (),
            0.2,
            "one cell lights several colours at the same place: a countdown display (or a "
            "one-lamp head) — not a lamp head",
        )

    def _head(self, group: list[LampBlob]) -> HeadProposal | None:
        vertical = _axis(group) == "vertical"
        along = [(b.cy if vertical else b.cx) for b in group]
        order = sorted(range(len(group)), key=lambda i: along[i])
        lamps_seen = [group[i] for i in order]
        pos = [along[i] for i in order]
        cross = float(np.mean([(b.cx if vertical else b.cy) for b in group]))
        d = float(np.median([b.size for b in group]))
        colours = [b.colour for b in lamps_seen]
        # Lamp places: the standard order, with the unseen lamp's place kept.
        lamps: tuple[str, ...]
        if colours == ["red", "amber", "green"]:
            pitch = (pos[2] - pos[0]) / 2
            first = pos[0]
            lamps = ("red", "amber", "green")
        elif colours == ["red", "green"]:
            gap = pos[1] - pos[0]
            if gap >= 1.7 * d:
                pitch, first, lamps = gap / 2, pos[0], ("red", "amber", "green")
            else:
                pitch, first, lamps = gap, pos[0], ("red", "green")
        elif colours == ["red", "amber"]:
            pitch, first, lamps = pos[1] - pos[0], pos[0], ("red", "amber", "green")
        elif colours == ["amber", "green"]:
            pitch = pos[1] - pos[0]
            first, lamps = pos[0] - pitch, ("red", "amber", "green")
        else:
            return None
        if pitch < 0.8 * d or pitch > 3.2 * d:
            return None
        n = len(lamps)
        margin = 0.1 * pitch
        centre_along = first + pitch * (n - 1) / 2
        half_along = pitch * n / 2 + margin
        half_cross = max(d, 0.8 * pitch) / 2 + margin
        if vertical:
            box = self._frame_box(cross, centre_along, half_cross, half_along)
        else:
            box = self._frame_box(centre_along, cross, half_along, half_cross)
        seen = {b.colour: b.lit_s for b in lamps_seen}
        unseen = tuple(c for c in lamps if c not in seen)
        steadiness = min(1.0, sum(seen.values()) / max(1.0, 3 * MIN_LIT_S))
        score = (0.7 if len(seen) >= 3 else 0.6) + 0.3 * steadiness
        if any(b.lit_share >= STEADY_SHARE for b in lamps_seen):  # a lamp never went dark
            score -= 0.3
        note = f"{n}-lamp head, {'vertical' if vertical else 'horizontal'}"
        if unseen:
            note += f"; the {', '.join(unseen)} lamp's place is assumed (not seen lit)"
        return HeadProposal(
            "head",
            box,
            self.frame_size,
            "vertical" if vertical else "horizontal",
            lamps,
            seen,
            unseen,
            round(min(1.0, score), 3),
            note,
            {b.colour: _int_pt(self._to_frame(b.cx, b.cy)) for b in lamps_seen},
        )

    def _one_colour(self, b: LampBlob, changed: bool) -> HeadProposal | None:
        steady = b.lit_share >= STEADY_SHARE
        if steady and changed:
            return None  # lit all along while a head of the scene changed: a sign, not a lamp
        fill = b.area / max(1, (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))
        bw, bh = b.box[2] - b.box[0], b.box[3] - b.box[1]
        if fill < 0.4 or b.solid < MIN_SOLID or max(bw, bh) > 1.6 * min(bw, bh):
            return None  # not a disc (a ring of a sign, changing digits, a strip)
        if not steady and (b.dark_ratio > MAX_DARK_RATIO or b.flips > MAX_FLIPS):
            return None  # not a lamp going dark: paint about the threshold, flicker, digits
        d = b.size
        pitch = 1.2 * d
        k = COLOURS.index(b.colour)
        centre = b.cy + (1 - k) * pitch
        margin = 0.1 * pitch
        box = self._frame_box(b.cx, centre, max(d, 0.8 * pitch) / 2 + margin, 1.5 * pitch + margin)
        unseen = tuple(c for c in COLOURS if c != b.colour)
        score = 0.25 if steady else 0.4
        note = (
            f"only {b.colour} seen ({'lit all along' if steady else 'lit, then dark'}): the "
            f"region assumes a vertical 3-lamp head with the {b.colour} lamp where it lit — "
            "check on a clip where the colour changes"
        )
        return HeadProposal(
            "one-colour",
            box,
            self.frame_size,
            "vertical",
            COLOURS,
            {b.colour: b.lit_s},
            unseen,
            score,
            note,
            {b.colour: _int_pt(self._to_frame(b.cx, b.cy))},
        )


def _in_text_line(b: LampBlob, steady: list[tuple[str, Box]]) -> bool:
    """A steady blob with things of its colour lit often (``TEXT_SHARE``) beside it on the
    same line, together at least twice its width (any shape: characters merged into one strip
    count): a text overlay (a timestamp) or a sign, not a lamp (a lamp with a two-digit
    countdown beside it has one neighbour about its size)."""
    if b.lit_share < STEADY_SHARE:
        return False
    x0, y0, x1, y1 = b.box
    d = b.size
    row = 0
    for colour, (a0, b0, a1, b1) in steady:
        if colour != b.colour or (a0, b0, a1, b1) == b.box:
            continue
        if min(y1, b1) <= max(y0, b0):  # not on the same line
            continue
        if max(a0 - x1, x0 - a1) <= 2 * d:
            row += a1 - a0
    return row >= 2 * (x1 - x0) + d


def _int_pt(p: tuple[float, float]) -> tuple[int, int]:
    return round(p[0]), round(p[1])


def _white_level(image: ImageBGR) -> float:
    """The scene's white level: 99.5th percentile of brightness (strided sample)."""
    sample = image[::4, ::4].max(axis=2).reshape(-1)
    if sample.size == 0:
        return 255.0
    k = int(sample.size * 0.995)
    return float(max(np.partition(sample, k)[k], 16))


def lit_masks(
    part: ImageBGR, white: float, kernel: np.ndarray
) -> tuple[dict[Tier, dict[str, np.ndarray]], np.ndarray]:
    """Per tier (``lit``: chroma ≥ ``LIT_CHROMA`` of the white level; ``dim``: ≥ ``DIM_SHARE``
    of that) and colour, the pixels of ``part`` that look like a lamp (uint16 0/1); and the
    chroma of every pixel."""
    b, g, r = cv2.split(part)
    vmax = cv2.max(cv2.max(b, g), r)
    chroma = cv2.subtract(vmax, cv2.min(cv2.min(b, g), r))
    dim = (chroma >= DIM_SHARE * LIT_CHROMA * white) & (chroma.astype(np.uint16) * 2 >= vmax)
    out: dict[Tier, dict[str, np.ndarray]] = {
        t: {c: np.zeros(dim.shape, np.uint16) for c in _HUE_BANDS} for t in ("lit", "dim")
    }
    if not dim.any():
        return out, chroma
    opened = cv2.morphologyEx(vmax, cv2.MORPH_OPEN, kernel)
    dim &= cv2.subtract(vmax, opened) >= LOCAL_CONTRAST * vmax
    if not dim.any():
        return out, chroma
    ys, xs = np.nonzero(dim)  # the hue of the candidates only (few pixels of the frame)
    hue = cv2.cvtColor(part[ys, xs].reshape(-1, 1, 3), cv2.COLOR_BGR2HSV)[:, 0, 0]
    bright = chroma[ys, xs] >= LIT_CHROMA * white
    for c, bands in _HUE_BANDS.items():
        in_band = np.zeros(hue.shape, bool)
        for lo, hi in bands:
            in_band |= (hue >= lo) & (hue <= hi)
        out["dim"][c][ys[in_band], xs[in_band]] = 1
        both = in_band & bright
        out["lit"][c][ys[both], xs[both]] = 1
    return out, chroma


def _ring_std(std: np.ndarray, lit: np.ndarray, box: Box) -> float | None:
    x0, y0, x1, y1 = box
    pad = max(2, round(0.4 * max(x1 - x0, y1 - y0)))
    h, w = std.shape
    a0, b0, a1, b1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    sel = ~lit[b0:b1, a0:a1]
    sel[y0 - b0 : y1 - b0, x0 - a0 : x1 - a0] = False
    vals = std[b0:b1, a0:a1][sel]
    return float(np.percentile(vals, 25)) if vals.size >= 4 else None


def _same_place(a: LampBlob, b: LampBlob) -> bool:
    dist = math.hypot(a.cx - b.cx, a.cy - b.cy)
    return dist < 0.6 * max(a.size, b.size) or _iou(a.box, b.box) > 0.2


def _drop_fringes(blobs: list[LampBlob]) -> list[LampBlob]:
    """Drop a blob of a neighbouring hue (red–amber, amber–green) at the same place as a blob
    lit ``FRINGE`` times longer or twice its size: the orange rim of a red lamp, not another
    lamp."""
    out = []
    for a in blobs:
        ka = COLOURS.index(a.colour)
        if not any(
            abs(COLOURS.index(b.colour) - ka) == 1
            and (b.lit_s >= FRINGE * a.lit_s or b.area >= 2 * a.area)
            and _same_place(a, b)
            for b in blobs
        ):
            out.append(a)
    return out


def _same_place_groups(blobs: list[LampBlob]) -> list[list[int]]:
    """Groups of blobs (of any colour) that overlap: one cell."""
    parent = list(range(len(blobs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(blobs)), 2):
        a, b = blobs[i], blobs[j]
        if a.colour != b.colour and _same_place(a, b):
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(blobs)):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _axis(group: list[LampBlob]) -> str:
    xs = [b.cx for b in group]
    ys = [b.cy for b in group]
    return "vertical" if max(ys) - min(ys) >= max(xs) - min(xs) else "horizontal"


def _compatible(a: LampBlob, b: LampBlob) -> bool:
    """Two lamps of different colours that could be lamps of one head (aligned, spaced, in
    the standard order: red on top / left, green at the bottom / right)."""
    if a.colour == b.colour:
        return False
    d = max(a.size, b.size)
    if min(a.size, b.size) < 0.4 * d:
        return False
    dx, dy = b.cx - a.cx, b.cy - a.cy
    rank = COLOURS.index(b.colour) - COLOURS.index(a.colour)
    if abs(dy) >= abs(dx):  # vertical
        if abs(dx) > 0.5 * d:
            return False
        along = dy
    else:
        if abs(dy) > 0.5 * d:
            return False
        along = dx
    if along * rank <= 0:  # wrong order
        return False
    return 0.8 * d <= abs(along) <= 1.8 * d * abs(rank)


def _head_combos(blobs: list[LampBlob], free: list[int]) -> list[tuple[int, ...]]:
    """Sets of 2–3 free blobs of different colours, pairwise compatible, on one axis."""
    out: list[tuple[int, ...]] = []
    by_colour = {c: [i for i in free if blobs[i].colour == c] for c in COLOURS}
    options = [by_colour[c] + [-1] for c in COLOURS]
    for pick in itertools.product(*options):
        chosen = tuple(i for i in pick if i >= 0)
        if len(chosen) < 2:
            continue
        members = [blobs[i] for i in chosen]
        if all(_compatible(a, b) for a, b in itertools.combinations(members, 2)):
            axes = {_axis([a, b]) for a, b in itertools.combinations(members, 2)}
            if len(axes) == 1:
                out.append(chosen)
    return out


def expand_box(box: Box, factor: float, frame_size: tuple[int, int]) -> Box:
    """``box`` grown ``factor`` times about its centre, clipped to the frame."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) * factor / 2, (y1 - y0) * factor / 2
    w, h = frame_size
    return (
        max(0, math.floor(cx - hw)),
        max(0, math.floor(cy - hh)),
        min(w, math.ceil(cx + hw)),
        min(h, math.ceil(cy + hh)),
    )


def suggest_region(proposals: list[HeadProposal], configured: Box) -> HeadProposal | None:
    """The proposal that corrects a configured head region: a lamp head (else a one-colour
    candidate) found inside or around it, preferring one whose lamps are inside the configured
    box, then the best score, then the nearest. None when nothing lamp-like lit there."""
    x0, y0, x1, y1 = configured
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def inside(p: HeadProposal) -> float:
        pts = list(p.lamp_px.values())
        if not pts:
            return 0.0
        return sum(x0 <= x < x1 and y0 <= y < y1 for x, y in pts) / len(pts)

    def dist(p: HeadProposal) -> float:
        bx0, by0, bx1, by1 = p.box
        return math.hypot((bx0 + bx1) / 2 - cx, (by0 + by1) / 2 - cy)

    usable = [p for p in proposals if p.kind != "countdown"]
    if not usable:
        return None
    return max(usable, key=lambda p: (p.kind == "head", inside(p) > 0, p.score, -dist(p)))
