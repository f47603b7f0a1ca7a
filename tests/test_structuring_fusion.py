"""Plate fusion: confidence-weighted per-character voting, never an invented plate."""

from __future__ import annotations

from sharpeyes.pipeline.structuring.plate_fusion import PlateVote, fuse_plate_reads


def v(text: str | None, conf: float = 0.9, color: str | None = "blue") -> PlateVote:
    return PlateVote(text, color, conf)


def test_voting_corrects_single_misread_characters() -> None:
    fused = fuse_plate_reads([v("京A12345"), v("京A12845", 0.5), v("京A72345", 0.6), v("京A12345")])
    assert fused.text == "京A12345"
    assert fused.color == "blue"
    assert fused.visible and fused.support == 2 and fused.reason is None


def test_confidence_outweighs_count() -> None:
    fused = fuse_plate_reads(
        [v("京B11111", 0.95), v("京B11111", 0.95), v("京B17111", 0.3), v("京B17111", 0.3)]
    )
    assert fused.text == "京B11111"


def test_length_vote_ignores_the_minority_length() -> None:
    fused = fuse_plate_reads([v("京A12345"), v("京A12345"), v("京AD12345", 0.5, "green")])
    assert fused.text == "京A12345" and fused.color == "blue"


def test_no_votes_means_no_plate_visible() -> None:
    fused = fuse_plate_reads([])
    assert fused.text is None and not fused.visible and fused.reason == "no_plate_visible"


def test_unreadable_plate_is_visible_but_null() -> None:
    fused = fuse_plate_reads([v(None, 0.2, "yellow"), v(None, 0.1, "yellow")])
    assert fused.text is None and fused.visible and fused.color == "yellow"
    assert fused.reason == "unreadable"


def test_a_single_read_is_not_enough() -> None:
    fused = fuse_plate_reads([v("京A12345"), v(None)])
    assert fused.text is None and fused.reason == "too_few_reads"
    assert fuse_plate_reads([v("京A12345")], min_reads=1).text == "京A12345"


def test_disagreeing_reads_give_no_plate() -> None:
    fused = fuse_plate_reads([v("京A12345"), v("京A67890")])
    assert fused.text is None and fused.reason == "reads_disagree"
