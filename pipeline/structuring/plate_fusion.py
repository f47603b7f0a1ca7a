"""Fuse a track's per-frame plate reads into one plate by confidence-weighted character voting.

Only *readable* reads take part (the reader already turned implausible or low-confidence text
into ``None``). The winning length is the one with the largest summed confidence; then each
character position is voted on by the reads of that length, each weighted by its confidence.
The plate colour is voted on by every read (readable or not), weighted the same way.

A fused text is returned only when it is supported: at least ``min_reads`` reads of the winning
length, and at every position the winning character holds at least ``min_share`` of the weight.
Otherwise the text is ``None`` and ``reason`` says why — the plate is never invented.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FusedPlate", "PlateVote", "fuse_plate_reads"]

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


def _vote_color(votes: Sequence[PlateVote]) -> str | None:
    weight: dict[str, float] = defaultdict(float)
    for v in votes:
        if v.color is not None:
            weight[v.color] += max(v.confidence, 1e-3)
    return max(weight.items(), key=lambda kv: kv[1])[0] if weight else None


def fuse_plate_reads(
    votes: Sequence[PlateVote], *, min_reads: int = 2, min_share: float = 0.6
) -> FusedPlate:
    """Fuse ``votes`` (see module docstring). ``votes`` empty = no plate visible."""
    if not votes:
        return FusedPlate(None, None, 0.0, False, 0, 0, REASON_NONE_VISIBLE)
    readable = [v for v in votes if v.text]
    n = len(votes)
    if not readable:
        return FusedPlate(None, _vote_color(votes), 0.0, True, n, 0, REASON_UNREADABLE)
    by_len: dict[int, float] = defaultdict(float)
    for v in readable:
        assert v.text is not None
        by_len[len(v.text)] += v.confidence
    length = max(by_len.items(), key=lambda kv: (kv[1], kv[0]))[0]
    same = [v for v in readable if v.text is not None and len(v.text) == length]
    color = _vote_color(same)
    if len(same) < min_reads:
        return FusedPlate(None, color, 0.0, True, n, len(same), REASON_TOO_FEW)
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
    if min(shares) < min_share or support < 1:
        return FusedPlate(None, color, 0.0, True, n, support, REASON_DISAGREE)
    best = max(v.confidence for v in same if v.text == text)
    return FusedPlate(text, color, round(min(shares) * best, 4), True, n, support)
