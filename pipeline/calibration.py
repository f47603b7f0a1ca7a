"""Signalised-intersection calibration (relative 0–1 coordinates).

Placeholder model: the red-light work fills in approaches, lanes, stop lines, signal heads,
crosswalks and exemptions here, each field described and validated.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class IntersectionCalibration(BaseModel):
    """Calibration of one signalised intersection as seen by one camera."""

    model_config = ConfigDict(extra="forbid")
