"""``signal-check`` (api/commands/signal_check.py), called through its own parser and ``run``."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
import yaml

from sharpeyes.api.commands import cli
from sharpeyes.api.commands.signal_check import add_parser, run
from tests.scenarios import scene_calibration
from tests.scenarios.model import FRAME_SIZE
from tests.scenarios.render import render_signal_frame, signal_background, signal_noise_bank
from tests.scenarios.signal_catalog import SignalScenario

SCENARIO = SignalScenario("check", duration_s=11.0)


def _render(
    path: Path, grey: bool = False, scenario: SignalScenario = SCENARIO, grey_from: int = 0
) -> Path:
    s, bg, bank = scenario, signal_background(), signal_noise_bank(scenario)
    with av.open(str(path), "w") as out:
        stream: Any = out.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height = FRAME_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "ultrafast"}
        for i in range(s.n_frames):
            img = render_signal_frame(s, i, bg, bank)
            if grey and i >= grey_from:  # a camera in monochrome (infrared) night mode
                mono = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
                img = np.asarray(mono, np.uint8)
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
            for pkt in stream.encode(vf):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(tmp_path_factory.mktemp("signal_check") / "heads.mp4")


@pytest.fixture(scope="module")
def grey_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(tmp_path_factory.mktemp("signal_check") / "heads_grey.mp4", grey=True)


def _config(tmp_path: Path, bogus_head: bool = False) -> Path:
    intersection = scene_calibration().model_dump(mode="json", exclude_defaults=True)
    intersection = {k: intersection[k] for k in ("signal_groups", "signal_heads")}
    if bogus_head:  # a head drawn on the road: never lights → calibration problem
        intersection["signal_groups"].append({"id": "bogus"})
        intersection["signal_heads"].append(
            {"id": "road", "group": "bogus", "region": [[0.45, 0.8], [0.48, 0.95]]}
        )
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump({"id": "synthetic", "intersection": intersection}))
    return path


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["signal-check", *argv])


def test_json_lines_and_strip_png(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "strip.png"
    args = _args(str(video), "--config", str(_config(tmp_path)), "--json", "--png", str(png))
    assert args.func is run
    assert run(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert len(frames) == SCENARIO.n_frames
    assert [f["frame"] for f in frames] == list(range(SCENARIO.n_frames))
    assert set(frames[0]) >= {"frame", "pts", "groups", "heads"}
    assert set(frames[0]["groups"]) == {"main", "ped"}
    assert frames[50]["groups"] == {"main": "amber", "ped": "red"}
    assert frames[100]["groups"] == {"main": "red", "ped": "green"}
    assert summary["frames"] == SCENARIO.n_frames and summary["problems"] == {}
    assert summary["shares"]["main"]["red"] == pytest.approx(0.36, abs=0.02)
    got = [(c["group"], c["from"], c["to"], c["pts"]) for c in summary["changes"]]
    assert got == [
        ("main", "green", "amber", 4.0),
        ("main", "amber", "red", 7.0),
        ("ped", "red", "green", 8.0),
    ]
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 48 and img.shape[1] > 100
    # labelled: a legend of the colours on top, the head / group id left of each row
    from sharpeyes.api.commands.signal_check import _BAR_BGR, _LABEL_W

    legend = img[:40].reshape(-1, 3)
    for bgr in _BAR_BGR.values():
        assert (legend == bgr).all(axis=1).sum() >= 100, bgr  # a swatch of each colour
    label = img[40 : 40 + 48, :_LABEL_W]
    assert (label > 150).all(axis=2).sum() > 50  # text: "main_head (main)"
    assert not (img[40:, _LABEL_W : _LABEL_W + 200] > 150).all(axis=2).all()


def test_text_report_and_problems(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(_config(tmp_path, bogus_head=True))
    assert run(_args(str(video), "--config", cfg)) == 0
    out, err = capsys.readouterr()
    assert "group main:" in out and "main: amber -> red" in out
    assert "warning: road:" in err and "no lamp lit" in err
    assert run(_args(str(video), "--config", cfg, "--strict", "--max-frames", "105")) == 3


def test_bad_input_is_one_error_line(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(_config(tmp_path))
    assert run(_args(str(tmp_path / "missing.mp4"), "--config", cfg)) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    bare = tmp_path / "bare.yaml"
    bare.write_text("id: cam\n")
    assert run(_args(str(video), "--config", str(bare))) == 2
    assert capsys.readouterr().err.startswith("error: ")
    broken = tmp_path / "broken.yaml"
    broken.write_text("intersection: {signal_groups: []}\n")
    assert run(_args(str(video), "--config", str(broken))) == 2
    assert capsys.readouterr().err.startswith("error: ")
    not_video = tmp_path / "not_video.mp4"
    not_video.write_text("hello")
    assert run(_args(str(not_video), "--config", cfg)) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_a_monochrome_picture_is_named_as_the_problem(
    grey_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same heads filmed in monochrome. These standard heads are still read by which cell
    is lit (the same phases as in colour), but the installer is told that the picture has no
    colour: evidence images could not show a red lamp."""
    cfg = str(_config(tmp_path))
    assert run(_args(str(grey_video), "--config", cfg, "--json")) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert frames[50]["groups"] == {"main": "amber", "ped": "red"}
    assert frames[100]["groups"] == {"main": "red", "ped": "green"}
    assert set(summary["problems"]) == {"picture"}
    assert "no colour" in summary["problems"]["picture"]
    assert "which cell is lit" in summary["problems"]["picture"]
    assert run(_args(str(grey_video), "--config", cfg, "--strict")) == 3
    assert "no colour" in capsys.readouterr().err


def test_a_camera_turning_to_night_mode_midway_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A camera in colour at first that turns to monochrome (infrared night mode at dusk): the
    picture is followed for as long as the camera runs, not judged once — the installer is told
    it has had no colour since it turned, and the heads are still read by which cell is lit."""
    scenario = SignalScenario("check", duration_s=15.0)
    video = _render(tmp_path / "dusk.mp4", grey=True, scenario=scenario, grey_from=20)
    assert run(_args(str(video), "--config", str(_config(tmp_path)), "--json")) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert frames[50]["groups"] == {"main": "amber", "ped": "red"}  # grey by then
    assert frames[100]["groups"] == {"main": "red", "ped": "green"}
    assert set(summary["problems"]) == {"picture"}
    assert "no colour for 13 s" in summary["problems"]["picture"]


def test_analyze_states_the_signal_problem(
    grey_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``analyze`` of a camera whose signal cannot be read says so in its summary (it charges
    nobody, and an operator must know why)."""
    cfg = str(_config(tmp_path))
    out = tmp_path / "run"
    rc = cli.main(["analyze", str(grey_video), "--config", cfg, "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "signal problem (picture): the picture has had no colour" in printed


def test_damaged_frames_are_marked_and_not_read(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes overwritten in a P-frame of the rendered clip (one keyframe: every later frame
    refers back to it): the frames from there on are marked damaged, the lamps are not read on
    them (the group carries on green, the state before), and the report says why."""
    with av.open(str(video)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    hit = packets[30]
    assert hit.pos is not None and not hit.is_keyframe
    data = bytearray(video.read_bytes())
    pos, size = int(hit.pos), int(hit.size)
    data[pos + size // 3 : pos + size - 2] = bytes(
        (i * 97) % 256 for i in range(size - 2 - size // 3)
    )
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    assert run(_args(str(damaged), "--config", str(_config(tmp_path)), "--json")) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(x) for x in out.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    bad = [f["frame"] for f in frames if f.get("damaged")]
    assert bad and bad[0] >= 30 and bad == list(range(bad[0], len(frames)))
    assert all(f["groups"]["main"] == "green" for f in frames if f.get("damaged"))
    assert any(
        f"{len(bad)} frame(s) decoded from damaged data" in n for n in summary["source_notes"]
    )
    assert "decoded from damaged data" in err
