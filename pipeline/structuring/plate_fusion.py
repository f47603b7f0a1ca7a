"""Fuse a track's per-frame plate reads into one plate by confidence-weighted character voting.

Only *readable* reads take part (the reader already turned implausible or low-confidence text
into ``None``). The winning length is the one with the largest summed confidence; then each
character position is voted on by the reads of that length, each weighted by its confidence.
The plate colour and its layers (a double-layer plate: the rear plate of a large vehicle, a
trailer, a motorcycle) are voted on the same way — by the reads of the winning length when the
text is read, by every read otherwise.

A fused text is returned only when it is supported: at least ``min_reads`` reads of the winning
length, at every position the winning character holds at least ``min_share`` of the weight, and
at least ``min_reads`` reads read that very text whole. Otherwise the text is ``None`` and
``reason`` says why — the plate is never invented. (Voting still picks among the texts read:
reads that each get another character wrong do not add up to a text nobody read twice. Of about
150 plates stated on the Beijing clip, its zooms, compressions and the stills driven past a
camera, the one text read whole once was false — 川KD6498 for 京B06498 at CRF 44, one of six
reads — and every true one was read whole at least twice.)

:func:`plate_agreement` says how far the track's reads back a fused text (GA/T 1400
``PlateReliability``, 0–100): every read that found a plate (readable or not) is evidence of
weight = its confidence; per character position, the agreeing weight ``a`` (reads of the fused
length with that character) against all of it ``n`` gives ``(a + 1) / (n + 2)`` — Laplace's rule
of succession, so two agreeing reads cannot say more than 75, twelve say 93 — and the plate's
value is its weakest character's. No constant in it is fitted to a clip.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "FusedPlate",
    "PlateAgreement",
    "PlateVote",
    "fuse_plate_reads",
    "plate_agreement",
    "single_read_reliability",
]

REASON_NONE_VISIBLE = "no_plate_visible"
REASON_UNREADABLE = "unreadable"
REASON_TOO_FEW = "too_few_reads"
REASON_DISAGREE = "reads_disagree"


@dataclass(frozen=True, slots=True)
class PlateVote:
    """One per-frame plate read: ``text`` None when unreadable; ``confidence`` in [0, 1]."""

    text: str | None
    color: str | None
    confidence: float
    pts: float | None = None  # the picture read (one picture is one piece of evidence)
    layers: int | None = 1  # 1 or 2: the plate detector's single- or double-layer plate (None:
    # not judged — a plate too small to read, whose class the detector guesses)


@dataclass(frozen=True, slots=True)
class FusedPlate:
    """The fused plate of a track.

    ``text`` None with a ``reason`` when no supported reading exists; ``visible`` False only
    when no plate was detected in any read; ``support`` = reads that agree with ``text``.
    """

    text: str | None
    color: str | None
    confidence: float
    visible: bool
    reads: int
    support: int
    reason: str | None = None
    layers: int = 1


def _vote_color(votes: Sequence[PlateVote]) -> str | None:
    weight: dict[str, float] = defaultdict(float)
    for v in votes:
        if v.color is not None:
            weight[v.color] += max(v.confidence, 1e-3)
    return max(weight.items(), key=lambda kv: kv[1])[0] if weight else None


def _vote_layers(votes: Sequence[PlateVote]) -> int:
    weight: dict[int, float] = defaultdict(float)
    for v in votes:
        if v.layers is not None:
            weight[v.layers] += max(v.confidence, 1e-3)
    return max(weight.items(), key=lambda kv: (kv[1], -kv[0]))[0] if weight else 1


def fuse_plate_reads(
    votes: Sequence[PlateVote], *, min_reads: int = 2, min_share: float = 0.6
) -> FusedPlate:
    """Fuse ``votes`` (see module docstring). ``votes`` empty = no plate visible."""
    if not votes:
        return FusedPlate(None, None, 0.0, False, 0, 0, REASON_NONE_VISIBLE)
    readable = [v for v in votes if v.text]
    n = len(votes)
    if not readable:
        return FusedPlate(
            None, _vote_color(votes), 0.0, True, n, 0, REASON_UNREADABLE, _vote_layers(votes)
        )
    by_len: dict[int, float] = defaultdict(float)
    for v in readable:
        assert v.text is not None
        by_len[len(v.text)] += v.confidence
    length = max(by_len.items(), key=lambda kv: (kv[1], kv[0]))[0]
    same = [v for v in readable if v.text is not None and len(v.text) == length]
    color, layers = _vote_color(same), _vote_layers(same)
    if len(same) < min_reads:
        return FusedPlate(None, color, 0.0, True, n, len(same), REASON_TOO_FEW, layers)
    chars: list[str] = []
    shares: list[float] = []
    for pos in range(length):
        weight: dict[str, float] = defaultdict(float)
        for v in same:
            assert v.text is not None
            weight[v.text[pos]] += max(v.confidence, 1e-3)
        ch, w = max(weight.items(), key=lambda kv: kv[1])
        chars.append(ch)
        shares.append(w / sum(weight.values()))
    text = "".join(chars)
    support = sum(1 for v in same if v.text == text)
    if min(shares) < min_share or support < max(1, min_reads):
        return FusedPlate(None, color, 0.0, True, n, support, REASON_DISAGREE, layers)
    best = max(v.confidence for v in same if v.text == text)
    return FusedPlate(text, color, round(min(shares) * best, 4), True, n, support, layers=layers)


@dataclass(frozen=True, slots=True)
class PlateAgreement:
    """How far a track's reads agree with its fused ``text``: ``reads`` that found a plate, their
    summed weight, and per character ``(agreeing weight + 1) / (weight + 2)``."""

    text: str
    reads: int
    weight: float
    chars: tuple[float, ...]

    @property
    def weakest(self) -> int:
        """Index of the least supported character."""
        return min(range(len(self.chars)), key=lambda i: self.chars[i])

    @property
    def reliability(self) -> int:
        """The weakest character's support, 0–100 (GA/T 1400 ``PlateReliability``)."""
        return round(100 * self.chars[self.weakest]) if self.chars else 0


def plate_agreement(votes: Sequence[PlateVote], text: str) -> PlateAgreement:
    """The agreement of ``votes`` with ``text`` (see the module docstring)."""
    weight = 0.0
    agree = [0.0] * len(text)
    for v in votes:
        w = max(v.confidence, 1e-3)
        weight += w
        if v.text is not None and len(v.text) == len(text):
            for i, (a, b) in enumerate(zip(v.text, text, strict=True)):
                agree[i] += w if a == b else 0.0
    chars = tuple((a + 1.0) / (weight + 2.0) for a in agree)
    return PlateAgreement(text, len(votes), round(weight, 4), chars)


def single_read_reliability(confidence: float) -> int:
    """:attr:`PlateAgreement.reliability` of one read of ``confidence`` (a plate read once, e.g.
    on a violation's evidence frame): ``(c + 1) / (c + 2)``, at most 67."""
    c = max(1e-3, min(1.0, confidence))
    return round(100 * (c + 1.0) / (c + 2.0))
