"""The CLI's error contract: bad input → one clear line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.test_streams_file import wholly_damaged_clip

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sharpeyes.api.commands.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def make_clip(path: Path, frames: int = 30, size: tuple[int, int] = (160, 120)) -> Path:
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=15)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(frames):
            img = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def test_missing_video(tmp_path: Path) -> None:
    proc = run_cli("analyze", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "not found", "nope.mp4")


def test_garbage_video(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(11).bytes(50_000))  # fixed: a CI run is repeatable
    proc = run_cli("analyze", str(bad), "--out", str(tmp_path / "o"), "--no-progress")
    assert_one_line_error(proc, "garbage.mp4")


def test_a_video_whose_every_frame_is_damaged(tmp_path: Path) -> None:
    """What random bytes now and then probe as (a stream FFmpeg conceals its way through):
    an error, not an analysis of nothing."""
    _, broken = wholly_damaged_clip(tmp_path)
    proc = run_cli("analyze", str(broken), "--out", str(tmp_path / "o"), "--no-progress")
    assert_one_line_error(proc, "broken.mp4", "not one of its 30 decoded frame")


def test_truncated_video(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "full.mp4")
    data = clip.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    proc = run_cli("analyze", str(cut), "--out", str(tmp_path / "o"), "--no-progress")
    assert_one_line_error(proc, "truncated.mp4")


def test_malformed_config_names_the_field(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4")
    cfg = tmp_path / "cam.yaml"
    cfg.write_text("detector:\n  iou_threshold: 7\n")
    proc = run_cli("analyze", str(clip), "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert_one_line_error(proc, "detector.iou_threshold")
    cfg.write_text("detectr: {}\n")
    assert_one_line_error(run_cli("analyze", str(clip), "--config", str(cfg)), "detectr")
    cfg.write_text("device_id: '123'\n")
    assert_one_line_error(run_cli("analyze", str(clip), "--config", str(cfg)), "device_id")
    cfg.write_text("detector: [unclosed\n")
    assert_one_line_error(run_cli("analyze", str(clip), "--config", str(cfg)), "YAML")


def test_missing_model_names_every_place(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4")
    empty_shared = tmp_path / "shared"
    (empty_shared / "models").mkdir(parents=True)
    env = {
        "SHARPEYES_SHARED": str(empty_shared),
        "SHARPEYES_CACHE": str(tmp_path / "cache"),
        "SHARPEYES_OFFLINE": "1",
    }
    proc = run_cli("analyze", str(clip), "--model", "yolox_nano", "--no-progress", env=env)
    line = assert_one_line_error(proc, "yolox_nano")
    assert str(empty_shared / "models") in line
    assert str(tmp_path / "cache") in line


def test_wrong_sha256(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4")
    shared = tmp_path / "shared"
    (shared / "models").mkdir(parents=True)
    (shared / "models" / "yolox_nano.onnx").write_bytes(b"not really a model" * 100)
    env = {
        "SHARPEYES_SHARED": str(shared),
        "SHARPEYES_CACHE": str(tmp_path / "cache"),
        "SHARPEYES_OFFLINE": "1",
    }
    proc = run_cli("analyze", str(clip), "--model", "yolox_nano", "--no-progress", env=env)
    assert_one_line_error(proc, "sha256", "yolox_nano.onnx")


@pytest.mark.integration
def test_analyze_writes_outputs(tmp_path: Path) -> None:
    """A tiny synthetic clip runs end to end (no detections expected) and writes every output."""
    clip = make_clip(tmp_path / "c.mp4", frames=20)
    out = tmp_path / "out"
    proc = run_cli("analyze", str(clip), "--out", str(out), "--annotate", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "analysed 20 frames" in proc.stdout
    assert (out / "events.jsonl").exists()
    assert (out / "events.db").exists()
    with av.open(str(out / "annotated.mp4")) as c:
        assert c.streams.video[0].frames == 20


@pytest.mark.integration
def test_analyze_never_mixes_runs_in_one_folder(tmp_path: Path) -> None:
    """Running ``analyze`` again into the same --out is an error that names --overwrite and
    leaves the earlier results alone; with --overwrite they are replaced (not appended to —
    events.jsonl once doubled its lines on every ``make demo``), other files are kept."""
    clip = make_clip(tmp_path / "c.mp4", frames=10)
    out = tmp_path / "out"
    first = run_cli("analyze", str(clip), "--out", str(out), "--no-progress")
    assert first.returncode == 0, first.stderr
    with (out / "events.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"earlier": "run"}\n')
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    again = run_cli("analyze", str(clip), "--out", str(out), "--no-progress")
    assert_one_line_error(again, "earlier run", "events.jsonl", "--overwrite")
    assert "earlier" in (out / "events.jsonl").read_text(encoding="utf-8")  # untouched
    replaced = run_cli("analyze", str(clip), "--out", str(out), "--no-progress", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert "earlier" not in (out / "events.jsonl").read_text(encoding="utf-8")
    assert (out / "events.db").exists() and (out / "notes.txt").read_text() == "mine"


def test_default_output_folder_is_never_an_earlier_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sharpeyes.api.commands.analyze import AnalyzeOptions, output_dir

    monkeypatch.chdir(tmp_path)
    opts = AnalyzeOptions(video=Path("/videos/cam7.mp4"))
    assert output_dir(opts) == Path("out/cam7")
    (tmp_path / "out" / "cam7").mkdir(parents=True)
    assert output_dir(opts) == Path("out/cam7")  # an empty folder holds no run
    (tmp_path / "out" / "cam7" / "events.db").write_bytes(b"")
    assert output_dir(opts) == Path("out/cam7-2")
    (tmp_path / "out" / "cam7-2").mkdir()
    (tmp_path / "out" / "cam7-2" / "evidence").mkdir()
    assert output_dir(opts) == Path("out/cam7-3")


def test_start_time_stamps_the_recordings_own_time(sample_videos: Path, tmp_path: Path) -> None:
    clip = sample_videos / "highway_640x360.mp4"
    out = tmp_path / "o"
    proc = run_cli(
        *("analyze", str(clip), "--out", str(out), "--no-progress", "--fps", "5"),
        *("--start-time", "2022-09-25T16:40:00"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "times: from the given --start-time" in proc.stdout
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events
    start = 1_664_095_200_000  # 2022-09-25 16:40:00 Beijing time
    for e in events:
        assert e["first_seen_ms"] == start + round(e["first_pts"] * 1000)
    bad = run_cli("analyze", str(clip), "--out", str(tmp_path / "b"), "--start-time", "yesterday")
    assert bad.returncode == 2 and "not an ISO 8601 time" in bad.stderr


def test_start_time_is_beijing_time_unless_an_offset_is_given() -> None:
    from sharpeyes.api.commands.cli import start_time_ms

    assert start_time_ms("2022-09-25T16:40:00") == 1_664_095_200_000
    assert start_time_ms("2022-09-25T16:40:00+07:00") == 1_664_095_200_000 + 3_600_000
    assert start_time_ms("2022-09-25T08:40:00Z") == 1_664_095_200_000


def test_a_misspelt_nested_key_is_named_with_the_key_it_resembles(tmp_path: Path) -> None:
    from sharpeyes.pipeline.config import load_camera_config
    from sharpeyes.pipeline.errors import ConfigError

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "sample_videos" / "intersection_hanoi_b.yaml").read_text("utf-8")
    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("stop_line:", "stopline:", 1), "utf-8")
    with pytest.raises(ConfigError) as err:
        load_camera_config(typo)
    assert "approaches.0.stopline: Extra inputs are not permitted (did you mean 'stop_line'?)" in (
        str(err.value)
    )


def test_a_misspelt_optional_key_is_named_with_the_key_it_resembles(tmp_path: Path) -> None:
    """An optional key has no "field required" sibling to compare with: the suggestion comes
    from the keys the config takes at that place (through lists, maps and the detector's
    backend variants), and up to three errors are named in the one line."""
    from sharpeyes.pipeline.config import load_camera_config
    from sharpeyes.pipeline.errors import ConfigError

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "sample_videos" / "intersection_hanoi_b.yaml").read_text("utf-8")
    cases = {
        "violation_code:": "intersection.violaton_code: Extra inputs are not permitted "
        "(did you mean 'violation_code'?)",
        "confidence_threshold:": "detector.confidence_treshold: Extra inputs are not permitted "
        "(did you mean 'confidence_threshold'?)",
        "source:": "intersection.signal_groups.0.sorce: Extra inputs are not permitted "
        "(did you mean 'source'?)",
    }
    typo = tmp_path / "typo.yaml"
    for key, expected in cases.items():
        assert key in text, key
        wrong = {
            "violation_code:": "violaton_code:",
            "confidence_threshold:": "confidence_treshold:",
        }
        typo.write_text(text.replace(key, wrong.get(key, "sorce:"), 1), "utf-8")
        with pytest.raises(ConfigError) as err:
            load_camera_config(typo)
        assert expected in str(err.value), str(err.value)
    typo.write_text(text + "\nfoo: 1\nbar: 2\nbaz: 3\nqux: 4\n", "utf-8")
    with pytest.raises(ConfigError) as err:
        load_camera_config(typo)
    message = str(err.value)
    assert message.count("Extra inputs are not permitted") == 3 and message.endswith("(+1 more)")
    assert "\n" not in message
    # the service config: the same suggestions
    from sharpeyes.api.node.settings import load_service_config

    service = tmp_path / "service.yaml"
    for text, expected in (
        ("phase_inputs:\n  udp_port: 9000\n", "phase_inputs: Extra inputs are not permitted "
         "(did you mean 'phase_input'?)"),
        ("phase_input:\n  udp_hots: 0.0.0.0\n", "phase_input.udp_hots: Extra inputs are not "
         "permitted (did you mean 'udp_host'?)"),
    ):  # fmt: skip
        service.write_text("cameras: []\n" + text, "utf-8")
        with pytest.raises(ConfigError) as err:
            load_service_config(service)
        assert expected in str(err.value), str(err.value)


def test_a_folder_is_not_a_video(tmp_path: Path) -> None:
    proc = run_cli("analyze", str(tmp_path), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "is a folder; analyze takes one video file")


def test_verbose_works_after_the_subcommand_too() -> None:
    from sharpeyes.api.commands.cli import build_parser, verbose_first

    args = build_parser().parse_args(verbose_first(["analyze", "clip.mp4", "-vv"]))
    assert args.verbose == 2 and args.video == "clip.mp4"
    assert verbose_first(["analyze", "--", "-v"]) == ["analyze", "--", "-v"]
