"""PlateReliability (号牌可信度) says how far a track's plate reads agree with the stated plate:
few reads, or reads that disagree, give lower values — and lower values go with plates that are
more often wrong, measured on the real per-read output of the Beijing and highway clips
(``tests/data/plate_reads.json``)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sharpeyes.api.viid.mapping import EventImages, EventMapper
from sharpeyes.pipeline.structuring.plate_fusion import (
    PlateVote,
    fuse_plate_reads,
    plate_agreement,
    single_read_reliability,
)
from sharpeyes.pipeline.types import Event, EventType, ObjectKind, Plate
from tests._viid_fixtures import mapping_config

READS = Path(__file__).parent / "data" / "plate_reads.json"
BEIJING_PLATES = {
    1: "京GPL768",
    3: "京BF1144",
    4: "京M76967",
    5: "京B06498",
    7: "京L87802",
    8: "京J27373",
    9: "京KS0537",
    10: "京JZ9445",
}


def votes(texts: Sequence[str | None], conf: float = 1.0) -> list[PlateVote]:
    return [PlateVote(t, "blue", conf) for t in texts]


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(READS.read_text(encoding="utf-8"))
    return data


def grouped(clip: str, key: str, *, raw: bool) -> dict[int, list[PlateVote]]:
    """The clip's reads per vehicle / track; ``raw``: the reader's gate off (its raw strings)."""
    out: dict[int, list[PlateVote]] = defaultdict(list)
    for r in load()[clip]["reads"]:
        text = (r["raw"] or None) if raw else r["text"]
        out[int(r[key])].append(PlateVote(text, r["color"], float(r["confidence"])))
    return out


def test_more_agreeing_reads_say_more() -> None:
    plate = "京A12345"
    values = [plate_agreement(votes([plate] * n), plate).reliability for n in (1, 2, 4, 12)]
    assert values == [67, 75, 83, 93]  # (n + 1) / (n + 2): never 100 on finite evidence
    assert single_read_reliability(1.0) == 67


def test_a_disagreeing_character_is_the_weakest() -> None:
    plate = "京A12345"
    agreement = plate_agreement(votes([plate] * 5 + ["京A12845"]), plate)
    assert agreement.weakest == 4  # the '3' / '8' position
    assert agreement.reliability < plate_agreement(votes([plate] * 5), plate).reliability
    assert agreement.reliability == round(100 * 6 / 8)


def test_reads_that_found_a_plate_but_not_this_text_count_against_it() -> None:
    plate = "京A12345"
    clean = plate_agreement(votes([plate] * 4), plate)
    unreadable = plate_agreement([*votes([plate] * 4), PlateVote(None, "blue", 0.9)], plate)
    other_length = plate_agreement([*votes([plate] * 4), PlateVote("京A1234", "blue", 0.9)], plate)
    assert unreadable.reads == 5
    assert unreadable.reliability < clean.reliability
    assert other_length.reliability < clean.reliability
    # a read with no confidence at all adds (next to) nothing
    blank = plate_agreement([*votes([plate] * 4), PlateVote(None, "blue", 0.0)], plate)
    assert blank.reliability == clean.reliability


def test_beijing_tracks_as_shipped() -> None:
    """The eight read plates of the Beijing clip, fused over each track as the stage does: all
    right, and none at 100 (was 100 for every one: the recogniser's saturated confidence)."""
    for vehicle, vs in grouped("beijing", "vehicle", raw=False).items():
        fused = fuse_plate_reads(vs)
        assert fused.text == BEIJING_PLATES[vehicle]
        assert 75 <= plate_agreement(vs, fused.text).reliability <= 93


def test_lower_values_go_with_wrong_plates_on_beijing() -> None:
    """Fusions over every subset of each Beijing vehicle's reads, with the reader's gate off so
    that wrong reads take part: every wrong plate scores below 70, and below 60 plates are
    wrong more often than at 60–69, where they are wrong more often than at 70 and above (never).
    The old value (the fused confidence) gave a wrong plate 96."""
    wrong_by_bin: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    old_wrong: list[int] = []
    for vehicle, vs in grouped("beijing", "vehicle", raw=True).items():
        for k in range(1, len(vs) + 1):
            for subset in itertools.combinations(vs, k):
                fused = fuse_plate_reads(subset, min_reads=1)
                if fused.text is None:
                    continue
                value = plate_agreement(subset, fused.text).reliability
                wrong = fused.text != BEIJING_PLATES[vehicle]
                b = "<60" if value < 60 else "60-69" if value < 70 else ">=70"
                wrong_by_bin[b][0] += 1
                wrong_by_bin[b][1] += int(wrong)
                if wrong:
                    old_wrong.append(round(fused.confidence * 100))
    rate = {b: w / n for b, (n, w) in wrong_by_bin.items()}
    assert wrong_by_bin[">=70"][0] > 1000 and rate[">=70"] == 0.0
    assert rate["<60"] > rate["60-69"] > 0.0
    assert max(old_wrong) >= 90  # the old PlateReliability vouched for a wrong plate


def test_highway_us_plates_read_as_chinese_score_low() -> None:
    """The highway clip's plates are US plates: any Chinese string fused from them is wrong.
    With the reader's gate off, every such fusion over a track scores below the lowest Beijing
    track (75); the old value gave three of them 98-99."""
    values, old = [], []
    for vs in grouped("highway", "track", raw=True).values():
        fused = fuse_plate_reads(vs, min_reads=1)
        if fused.text is not None:
            values.append(plate_agreement(vs, fused.text).reliability)
            old.append(round(fused.confidence * 100))
    assert len(values) >= 10
    assert max(values) < 70
    assert sum(v >= 90 for v in old) >= 3


def _event(extra: tuple[tuple[str, str], ...], confidence: float = 1.0) -> Event:
    return Event(
        event_id="e1",
        type=EventType.VEHICLE_PASS,
        stream_id="cam1",
        first_seen_ms=1_700_000_000_000,
        last_seen_ms=1_700_000_002_000,
        first_pts=0.0,
        last_pts=2.0,
        kind=ObjectKind.MOTOR_VEHICLE,
        class_name="car",
        class_code="K33",
        track_id=1,
        plate=Plate(text="京A12345", color="blue", confidence=confidence),
        extra=extra,
    )


def test_mapping_sends_the_agreement_not_the_recogniser_confidence() -> None:
    mapper = EventMapper(mapping_config())
    fused = _event((("plate_status", "read"), ("plate_reliability", "83")))
    obj = mapper.map(fused, EventImages.from_event(fused))
    assert obj is not None and obj.payload["PlateReliability"] == "83"
    once = _event(())  # a plate read once (no fusion): one read's worth, never 100
    obj = mapper.map(once, EventImages.from_event(once))
    assert obj is not None and obj.payload["PlateReliability"] == "67"
