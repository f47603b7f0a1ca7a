"""How wide a camera's plates are: counted by the checkpoint stage, said by ``analyze`` and
``camera-check`` — a camera zoomed out too far to read plates is told so
(``pipeline/structuring/plate_tally.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sharpeyes.api.commands import cli
from sharpeyes.models.plate import MIN_TEXT_PX
from sharpeyes.pipeline.structuring.plate_tally import PlateTally, describe
from tests.conftest import need
from tests.test_structuring_eval import _segment


def test_the_tally_counts_found_read_and_too_small() -> None:
    tally = PlateTally(MIN_TEXT_PX)
    for width, text in ((40.0, None), (42.0, None), (44.0, "京A12345"), (120.0, None)):
        tally.add(width, text)
    sizes = tally.sizes()
    assert (sizes.seen, sizes.read, sizes.too_small) == (4, 1, 2)
    assert sizes.median_px == 43.0
    assert describe(sizes) == (
        "plates: 4 found, 1 read, 2 too small to read (median 43 px wide, 50 px needed: zoom in "
        "or move the camera closer)"
    )
    assert describe(sizes, "zh").startswith(
        "车牌：检出 4 次，识别 1 次，2 次过小无法识别（中位宽度 43"
    )
    wide = PlateTally(MIN_TEXT_PX)
    wide.add(107.0, "京M76967")
    assert describe(wide.sizes()) == "plates: 1 found, 1 read (median 107 px wide)"


@pytest.mark.integration
def test_camera_check_tells_a_checkpoint_zoomed_out_too_far(
    sample_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Beijing checkpoint's first 12 s shrunk to 3/8 (plates about 40 px wide): a checkpoint
    camera (structuring only, no geometry) can be checked, its plates are found and too small
    to read — a problem under ``structuring`` with the fix; at full size, read and no problem."""
    src = sample_videos / "plates_closeup_beijing_640x360.mp4"
    need(src.is_file(), f"{src} not found")
    config = tmp_path / "kakou.yaml"
    config.write_text(yaml.safe_dump({"id": "kakou", "structuring": {"enabled": True}}))
    reports = {}
    for scale in (0.375, 1.0):
        clip = tmp_path / f"x{scale}.mp4"
        _segment(src, clip, 0, 300, scale)
        args = ["camera-check", str(clip), "--config", str(config), "--seconds", "12", "--json"]
        rc = cli.main([*args, "--strict"])
        reports[scale] = (rc, json.loads(capsys.readouterr().out))
    rc, small = reports[0.375]
    plates = small["picture"]["plates"]
    assert rc == 3 and plates["seen"] >= 5 and plates["read"] == 0
    assert plates["median_px"] < MIN_TEXT_PX
    assert [p["key"] for p in small["problems"]] == ["structuring"]
    assert "zoom in" in small["problems"][0]["message"]
    rc, full = reports[1.0]
    assert rc == 0 and full["problems"] == []
    assert full["picture"]["plates"]["read"] >= 5
    assert full["picture"]["plates"]["median_px"] > 2 * MIN_TEXT_PX


def test_analyze_says_how_many_vehicle_passes_state_a_plate_and_why_not() -> None:
    from sharpeyes.api.commands.analyze import describe_statuses

    line = describe_statuses({"read": 8, "plate_out_of_view": 1, "no_plate_visible": 1})
    assert line == "vehicle plates: 8 of 10 stated (1 no plate (无牌), 1 plate out of view)"
    assert describe_statuses({"read": 3}) == "vehicle plates: 3 of 3 stated"
    assert "2 reads disagree" in describe_statuses({"reads_disagree": 2})


@pytest.mark.integration
def test_analyze_with_the_defaults_says_plates_were_not_read_and_structuring_reads_them(
    sample_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's first complaint, as a new user meets it: ``analyze`` on a checkpoint clip
    with the defaults gives passes without plates. It now says why and how to get them
    (``NOT_STRUCTURED``), and ``--structuring`` reads them with the config's other settings
    kept (the Beijing checkpoint's first 12 s: plates read on the same events)."""
    from sharpeyes.api.commands.analyze import NOT_STRUCTURED

    src = sample_videos / "plates_closeup_beijing_640x360.mp4"
    need(src.is_file(), f"{src} not found")
    clip = tmp_path / "kakou.mp4"
    _segment(src, clip, 0, 300, 1.0)
    start = ["--start-time", "2026-12-01T10:00:00", "--no-progress"]
    outputs: dict[str, list[dict[str, Any]]] = {}
    for name, extra in (("plain", []), ("structured", ["--structuring"])):
        out = tmp_path / name
        assert cli.main(["analyze", str(clip), "--out", str(out), *start, *extra]) == 0
        said = capsys.readouterr().out
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        outputs[name] = [e for e in events if e["type"] == "vehicle_pass"]
        assert outputs[name], said
        if name == "plain":
            assert NOT_STRUCTURED in said and "vehicle plates:" not in said
        else:
            assert NOT_STRUCTURED not in said and "vehicle plates:" in said
    assert all(e["plate"] is None for e in outputs["plain"])
    plates = [e["plate"]["text"] for e in outputs["structured"] if (e["plate"] or {}).get("text")]
    assert len(plates) >= 2 and all(p.startswith("京") for p in plates), plates
    assert all("plate_status" in e["extra"] for e in outputs["structured"])
