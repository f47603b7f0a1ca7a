"""Benchmarks as a newcomer runs them: a bad argument is a clear argparse error (exit 2, the
argument named), never a traceback or a run that "succeeds" with zeros; tables say what they
measured. No timing is asserted here (BENCHMARKS.md: performance is checked by benchmarks)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _cli


def test_argument_types_accept_good_values() -> None:
    assert _cli.positive_int("3") == 3
    assert _cli.non_negative_int("0") == 0
    assert _cli.positive_float("0.5") == 0.5
    assert _cli.non_negative_float("0") == 0.0
    assert _cli.int_list("2, 4,6") == [2, 4, 6]
    assert _cli.hxw("384X640") == (384, 640)


@pytest.mark.parametrize(
    ("fn", "text", "says"),
    [
        (_cli.positive_int, "0", "at least 1"),
        (_cli.positive_int, "x", "not an integer"),
        (_cli.non_negative_int, "-1", "not be negative"),
        (_cli.positive_float, "0", "greater than 0"),
        (_cli.positive_float, "nan", "greater than 0"),
        (_cli.non_negative_float, "-2", "not be negative"),
        (_cli.int_list, "a,b", "not an integer"),
        (_cli.int_list, "0", "at least 1"),
        (_cli.int_list, ",", "comma-separated"),
        (_cli.hxw, "12", "HxW"),
        (_cli.hxw, "0x640", "at least 1"),
        (_cli.existing_file, "/no/such/clip.mp4", "no such file"),
    ],
)
def test_argument_types_refuse_bad_values(fn: Any, text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=says):
        fn(text)


def test_machine_records_cpu_cores_gpu_and_load() -> None:
    m = _cli.machine()
    assert m["cores"] >= 1 and m["cores_usable"] >= 1
    assert isinstance(m["cpu"], str) and m["cpu"]
    assert isinstance(m["gpus"], list)
    assert len(m["load_avg"]) in (0, 3)
    line = _cli.machine_line({"cores": 2, "cpu": "Xeon", "gpus": [], "load_avg": [1.5, 2, 3]})
    assert line == "2 cores (Xeon) · no GPU · load 1.5/2/3"
    assert "H200" in _cli.machine_line({"cores": 16, "cpu": "c", "gpus": ["NVIDIA H200"]})


def _exit_message(capsys: pytest.CaptureFixture[str], main: Any, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--repeats", "0"], "--repeats: '0': must be at least 1"),
        (["--clip", "/no/such.mp4"], "--clip: /no/such.mp4: no such file"),
        (["--model", "nosuch"], "unknown model 'nosuch'"),
        (["--detector-frames", "0"], "--detector-frames"),
    ],
)
def test_run_bad_arguments_are_clear(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    from benchmarks.run import main

    assert says in _exit_message(capsys, main, argv)


def test_run_missing_default_clip_names_the_fix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks import run

    monkeypatch.setattr(run, "shared_dir", lambda: tmp_path)
    assert "SHARPEYES_SHARED" in _exit_message(capsys, run.main, [])


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--ks", "0"], "--ks: '0': must be at least 1"),
        (["--ks", "a,b"], "not an integer"),
        (["--input", "12"], "expected HxW"),
        (["--fps", "0"], "--fps"),
        (["--clip", "/no/such.mp4"], "--clip /no/such.mp4: no such file"),
    ],
)
def test_multistream_bad_arguments_are_clear(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    from benchmarks.multistream import parse_args

    assert says in _exit_message(capsys, parse_args, argv)


def test_multistream_header_says_what_it_measures(tmp_path: Path) -> None:
    from benchmarks.multistream import header, parse_args

    clip = tmp_path / "cam.mp4"
    clip.write_bytes(b"")
    args = parse_args(["--clip", str(clip), "--ks", "1", "--threads", "1", "--input", "320x320"])
    machine = {"cores": 2, "cpu": "EPYC", "gpus": [], "load_avg": [4.0, 3.0, 2.0]}
    text = header(args, machine)
    for part in ("cam.mp4", "yolov5n 320x320", "CPUExecutionProvider", "1 intra-op threads"):
        assert part in text
    assert "2 cores (EPYC) · no GPU · load 4/3/2" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--clip", "/no/such.mp4", "--model", "a=/x.onnx"],
        ["--model", "nolabel"],
        ["--model", "a=/no/such.onnx"],
        ["--model", "a=/x.onnx:diagonal"],
    ],
)
def test_vs_baselines_bad_arguments_are_clear(
    capsys: pytest.CaptureFixture[str], argv: list[str], tmp_path: Path
) -> None:
    from benchmarks.vs_baselines import main

    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"")
    args = argv if "--clip" in argv else ["--clip", str(clip), *argv]
    err = _exit_message(capsys, main, args)
    assert "error: argument --" in err and "Traceback" not in err


def test_vs_baselines_frames_must_exceed_warm(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from benchmarks.vs_baselines import main

    clip, onnx = tmp_path / "c.mp4", tmp_path / "m.onnx"
    clip.write_bytes(b"")
    onnx.write_bytes(b"")
    argv = ["--clip", str(clip), "--model", f"m={onnx}", "--frames", "5", "--warm", "5"]
    assert "must be more than --warm" in _exit_message(capsys, main, argv)


def test_vs_baselines_tools_without_interpreter_are_named() -> None:
    from benchmarks.vs_baselines import pick_pythons

    tools = ["sharpeyes", "ultralytics", "supervision"]
    pythons, skipped = pick_pythons(tools, {}, importable=lambda name: name != "ultralytics")
    assert set(pythons) == {"sharpeyes", "supervision"}  # supervision found in this venv
    assert "--ultralytics-python" in skipped["ultralytics"]
    pythons, skipped = pick_pythons(tools, {"ultralytics": "/opt/u/python"}, lambda _n: False)
    assert pythons["ultralytics"] == "/opt/u/python"
    assert list(skipped) == ["supervision"]


def test_run_table_states_frames_machine_and_baseline(tmp_path: Path) -> None:
    from benchmarks.run import format_table

    r: dict[str, Any] = {
        "clip": "highway.mp4",
        "model": "yolov5n",
        "providers": ["CPUExecutionProvider"],
        "threads": 2,
        "repeats": 3,
        "input_size": [384, 640],
        "baseline_input_size": [640, 640],
        "baseline_kind": "upstream-yolov5",
        "baseline_threads": "its own defaults (ONNX Runtime and torch)",
        "baseline_note": "pure-torch NMS stand-in",
        "baseline_nms_time_limit_hits": [0, 2, 1],
        "frames": {"e2e": [227, 227, 227], "detector": 150, "baseline": 150},
        "e2e_fps_median": 30.0,
        "e2e_clip_fps_median": 59.5,
        "e2e_frames_repeated": [223, 223, 223],
        "detector_only_fps_median": 32.0,
        "baseline_fps_median": 15.0,
        "ratio_e2e_over_detector": 0.94,
        "ratio_e2e_over_baseline": 2.0,
        "peak_rss_mb_after_e2e": 300.0,
        "stage_median_ms": {"inference": 20.0},
        "machine": {
            "cores": 2,
            "cpu": "EPYC",
            "gpus": [],
            "load_avg_before": [1.0, 1.0, 1.0],
            "load_avg_after": [2.0, 1.0, 1.0],
        },
    }
    text = format_table(r)
    assert "2 cores (EPYC) · no GPU · load 1/1/1 before, 2/1/1 after" in text
    assert "end-to-end analysed fps (384x640, 227 fr)" in text
    assert "end-to-end clip fps (223 repeats not analysed)" in text and "59.5" in text
    assert "baseline fps (upstream-yolov5, 640x640, 150 fr)" in text
    assert "pure-torch NMS stand-in" in text
    assert "NMS hit its time limit 3 times" in text
    assert "not reliable on a busy machine" not in text
    r["machine"]["load_avg_before"] = [7.5, 6.0, 5.0]
    assert "warning: load average 7.5 on 2 cores" in format_table(r)


def test_baseline_counts_nms_time_limit_warnings() -> None:
    from benchmarks.baseline import nms_time_limit_hits

    log = "x\nWARNING ⚠️ NMS time limit 0.550s exceeded\nWARNING ⚠️ NMS time limit 0.550s exceeded\n"
    assert nms_time_limit_hits(log) == 2
    assert nms_time_limit_hits("") == 0


def test_rules_cost_reports_the_median_run_not_the_best() -> None:
    from benchmarks.rules_cost import median_run

    def run(ms: float) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        return {"added_total": {"median_ms": ms}}, {"added_total": {"median_ms": ms + 1}}

    assert median_run([run(0.9), run(0.2), run(0.5)])[0]["added_total"]["median_ms"] == 0.5
    assert median_run([run(0.9), run(0.2)])[0]["added_total"]["median_ms"] == 0.2
    assert median_run([run(0.4)])[1]["added_total"]["median_ms"] == 1.4


@pytest.mark.parametrize(
    ("module", "argv", "says"),
    [
        ("rules_cost", ["--frames", "5"], "at least 20"),
        ("rules_cost", ["--repeats", "0"], "--repeats"),
        ("store_writer", ["--events", "0"], "--events"),
        ("store_writer", ["--cameras", "x"], "not an integer"),
        ("viid_throughput", ["--records", "0"], "--records"),
        ("structuring_cost", ["/no/such.mp4"], "no such video"),
        ("structuring_cost", ["--frames", "0"], "--frames"),
    ],
)
def test_small_benchmarks_refuse_bad_arguments(
    capsys: pytest.CaptureFixture[str], module: str, argv: list[str], says: str
) -> None:
    import importlib

    main = importlib.import_module(f"benchmarks.{module}").main
    assert says in _exit_message(capsys, main, argv)


def test_structuring_cost_refuses_a_file_with_no_frames(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from benchmarks.structuring_cost import main

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert "no frames decoded" in _exit_message(capsys, main, [str(bad), "--frames", "2"])


@pytest.mark.parametrize(
    ("module", "argv", "says"),
    [
        ("api_load", ["--duration", "0"], "--duration"),
        ("api_load", ["--pollers", "0", "--subscribers", "0"], "nothing to measure"),
        ("failover", ["--runs", "0"], "--runs"),
        ("redlight_eval", ["hanoi", "/no/events.jsonl"], "/no/events.jsonl: no such file"),
        ("violations_eval", ["/no/labels.json"], "/no/labels.json: no such file"),
        ("eval_plates", ["/no/events.jsonl"], "/no/events.jsonl: no such file"),
        ("colour_eval", ["--videos", "/no/videos"], "/no/videos: no such folder"),
        ("attribute_eval", ["--videos", "/no/videos"], "/no/videos: no such folder"),
    ],
)
def test_missing_inputs_are_argparse_errors(
    capsys: pytest.CaptureFixture[str], module: str, argv: list[str], says: str
) -> None:
    import importlib

    main = importlib.import_module(f"benchmarks.{module}").main
    assert says in _exit_message(capsys, main, argv)


def test_gpu_check_table_marks_a_dry_run_and_names_the_detector() -> None:
    from benchmarks.gpu_check import _rows

    results: dict[str, Any] = {
        "dry": True,
        "environment": {"cpu_count": 2, "platform": "Linux"},
        "detector": {
            "detector": "yolov5n",
            "providers": ["torch:cpu:fp32"],
            "input_hw": [320, 320],
            "points": [{"batch": 1, "images_per_s": 1.0, "ms_per_batch": 981.0}],
        },
    }
    text = "\n".join(_rows(results))
    assert "| – | dry run |" in text and "measure nothing" in text
    assert "| a | host | 2 cores, Linux |" in text
    assert "| c | model | yolov5n 320×320 on torch:cpu:fp32 |" in text
    assert "dry run" not in "\n".join(_rows({**results, "dry": False}))


def test_gpu_check_log_line_hides_internal_objects(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.gpu_check import _part

    results: dict[str, Any] = {}
    value = _part(results, "detector_backend", lambda: {"_detector": object(), "backend": "x"})
    out = capsys.readouterr().out
    assert '"backend": "x"' in out and "_detector" not in out and "object at" not in out
    assert "_detector" in value  # the caller still gets it


def test_gpu_check_wrapper_parses() -> None:
    import subprocess

    for script in ("benchmarks/gpu_check.sh", "benchmarks/gpu_carry.sh"):
        subprocess.run(["bash", "-n", script], check=True, cwd=Path(__file__).parents[1])


def test_vs_ultralytics_table_puts_ratios_beside_medians() -> None:
    from benchmarks.vs_ultralytics import format_table

    side = {"fps": 4.0, "cpu_s_per_frame": 0.3, "peak_rss_mib": 250.0}
    result = {
        "clip": "/c/highway.mp4",
        "onnx": "/m/int8.onnx",
        "frames": 150,
        "rounds": 2,
        "machine": {"cores": 2, "cpu": "EPYC", "gpus": [], "load_avg": [], "cores_pinned": "0,1"},
        "sharpeyes": side,
        "ultralytics": {"fps": 2.0, "cpu_s_per_frame": 0.6, "peak_rss_mib": 1000.0},
        "agreement": {"f1_iou50": 1.0},
    }
    text = format_table(result)
    assert "highway.mp4 · int8.onnx · 150 frames · 2 alternating rounds" in text
    assert "| ours ÷ theirs | 2.00 | 0.50 | 0.25 |" in text


def test_vs_ultralytics_needs_its_interpreter(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks.vs_ultralytics import main

    monkeypatch.delenv("SHARPEYES_ULTRALYTICS_PYTHON", raising=False)
    clip, onnx = tmp_path / "c.mp4", tmp_path / "m.onnx"
    clip.write_bytes(b"")
    onnx.write_bytes(b"")
    err = _exit_message(capsys, main, ["--clip", str(clip), "--onnx", str(onnx)])
    assert "--ultralytics-python" in err


def test_viid_faults_names_request_faults_nobody_met() -> None:
    from benchmarks.viid_faults import unfired_faults
    from sharpeyes.api.viid.receiver.state import FaultMode, FaultPlan, ReceiverState

    state = ReceiverState()
    assert unfired_faults(state) == []
    state.set_faults(FaultPlan(FaultMode.ERROR_500, count=3))
    assert state.take_fault("/VIID/MotorVehicles") is not None
    assert unfired_faults(state) == ["ERROR_500 x2"]
    state.take_fault("/VIID/MotorVehicles")
    state.take_fault("/VIID/MotorVehicles")
    assert unfired_faults(state) == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--seconds", "0"], "--seconds"),
        (["--source", "/no/such.mp4"], "/no/such.mp4: no such file"),
        (["--width", "321"], "must be even"),
    ],
)
def test_make_gpu_clip_bad_arguments_are_clear(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str, tmp_path: Path
) -> None:
    from benchmarks.make_gpu_clip import main

    err = _exit_message(capsys, main, ["--out", str(tmp_path / "c.mp4"), *argv])
    assert says in err
    assert not (tmp_path / "c.mp4").exists()


def test_metamorphic_rules_report_does_not_count_the_original_as_a_difference() -> None:
    from benchmarks.metamorphic import format_rules_check

    text = format_rules_check(
        {"red-light": {"original_events": 15, "differences": {"hflip": [], "pad": ["x moved"]}}}
    )
    assert text.splitlines() == [
        "red-light original tracks: 15 events",
        "red-light hflip            0 differences",
        "red-light pad              1 differences",
        "    x moved",
    ]


def test_poll_cursor_percentiles_never_exceed_the_maximum() -> None:
    from benchmarks.poll_cursor import _pct

    values = [100.0, 200.0, 764.5, 1500.0, 2084.0]  # few samples: "exclusive" extrapolates
    p = _pct(values)
    assert p["p50"] <= p["p95"] <= p["p99"] <= p["max"] == 2084.0
    assert _pct([5.0]) == {"p50": 5.0, "p95": 5.0, "p99": 5.0, "max": 5.0}


def test_gpu_check_saves_the_parts_done_so_far(tmp_path: Path) -> None:
    import json

    from benchmarks import gpu_check

    out = tmp_path / "gpu_check.json"
    results: dict[str, Any] = {"dry": True}
    gpu_check._SAVE[:] = [out]
    try:
        gpu_check._part(results, "decode", lambda: {"points": [1]})
        saved = json.loads(out.read_text())
        assert saved["complete"] is False and saved["decode"]["points"] == [1]
        gpu_check._part(results, "detector_backend", lambda: {"_detector": object(), "b": 1})
        saved = json.loads(out.read_text())
        assert saved["detector_backend"] == {"b": 1, "seconds": 0.0}
    finally:
        gpu_check._SAVE.clear()


def test_gpu_check_wrapper_stops_50_s_after_the_budget(tmp_path: Path) -> None:
    import subprocess

    root = Path(__file__).parents[1]
    text = (root / "benchmarks/gpu_check.sh").read_text()
    assert '"${GPU_CHECK_TIMEOUT_S:-$((budget + 50))}"' in text
    bad = subprocess.run(
        ["bash", str(root / "benchmarks/gpu_check.sh"), "--budget-s", "soon"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "WHEELS": str(tmp_path), "PYTHON": "false"},
        check=False,
    )
    assert bad.returncode == 2 and "--budget-s must be a number" in bad.stderr
