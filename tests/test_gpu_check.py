"""The GPU check script's dry run (CPU, tiny sizes) end to end, and its clip generator."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from benchmarks import gpu_check
from benchmarks.make_gpu_clip import make_clip
from tests._models_fixtures import require_shared


def test_make_clip_writes_h264_of_the_requested_size(tmp_path: Path) -> None:
    out = make_clip(tmp_path / "c.mp4", width=192, height=108, fps=25, seconds=1.0, source=None)
    assert out["source"] == "synthetic" and out["frames"] == 25
    with av.open(str(tmp_path / "c.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and (s.width, s.height) == (192, 108)
        assert sum(1 for _ in c.decode(video=0)) == 25


@pytest.mark.integration
def test_dry_run_exercises_every_part(tmp_path: Path) -> None:
    require_shared("models/yolov5n.pt")
    weights = require_shared("models/yolov5n.pt")
    assert gpu_check.main(["--dry", "--out", str(tmp_path), "--weights", str(weights)]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["dry"] is True
    assert set(result["environment"]["decoders"]) == {"cpu", "pyav-cuda", "nvdec"}
    assert [p["sessions"] for p in result["decode"]["points"]] == [1, 2]
    assert all(p["fps_total"] > 0 for p in result["decode"]["points"])
    assert result["detector_backend"]["backend"] == "torch"
    assert [p["batch"] for p in result["detector"]["points"]] == [1, 2]
    trials = result["pipeline"]["trials"]
    assert trials and trials[0]["streams"] == 1 and trials[0]["latency_p50_ms"] > 0
    assert result["pipeline"]["largest_k_zero_drops"] in (0, 1, 2)
    assert {"startup_lag_s", "decode_lag_s"} <= set(trials[0])
    spread = result["pipeline_procs"]  # d2: the streams over 2 spawned worker processes
    assert spread["processes"] == 2, spread
    (t2,) = spread["trials"]
    assert t2["streams"] == 2 and t2["analysed_fps_min"] > 0 and t2["latency_p50_ms"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| c | batch 1 |" in table and "largest K" in table
    assert "| d2 | K=2 in 2 processes |" in table


def test_dmon_without_nvidia_smi_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    assert gpu_check.Dmon().stop() == "nvidia-smi not available"
