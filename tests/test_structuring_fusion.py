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


def test_a_double_layer_plate_stays_double_layer() -> None:
    """The plate detector says single or double layer per read (a yellow double-layer plate is
    a large vehicle's rear plate); the fused plate states what the reads of its text said,
    weighted by confidence — until round 27 every fused plate said one layer."""

    def d(text: str | None, layers: int, conf: float = 0.9) -> PlateVote:
        return PlateVote(text, "yellow", conf, None, layers)

    fused = fuse_plate_reads([d("京EA5331", 2), d("京EA5331", 2), d("京EA5331", 1, 0.5)])
    assert fused.text == "京EA5331" and fused.layers == 2
    # reads of another length do not vote; unreadable plates vote among themselves
    fused = fuse_plate_reads([d("京EA5331", 1), d("京EA5331", 1), d("京EA53311", 2, 1.0)])
    assert fused.text == "京EA5331" and fused.layers == 1
    assert fuse_plate_reads([d(None, 2, 0.4), d(None, 1, 0.2)]).layers == 2
    assert fuse_plate_reads([d("京EA5331", 2)]).layers == 2  # too few reads: still stated
    assert fuse_plate_reads([v("京A12345"), v("京A12345")]).layers == 1


def test_a_text_read_whole_only_once_is_not_stated() -> None:
    """Character voting picks among texts read; it does not state one that a single read
    gives and the others each contradict somewhere (CRF 44: 川KD6498 for 京B06498, one of
    six reads). Two reads of the whole text state it, as before."""
    once = [v("京A12345"), v("京A12845"), v("京A72345")]
    fused = fuse_plate_reads(once)
    assert fused.text is None and fused.reason == "reads_disagree" and fused.support == 1
    fused = fuse_plate_reads([*once, v("京A12345", 0.5)])
    assert fused.text == "京A12345" and fused.support == 2
    assert fuse_plate_reads(once, min_reads=1).text == "京A12345"  # a camera set to one read
