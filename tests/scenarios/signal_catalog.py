"""Signal-only scenarios: the synthetic scene's heads under camera perturbations, with truth.

Each :class:`SignalScenario` runs the same phase plan (main head green → amber → red → green,
pedestrian head red → green → red) under one :class:`SignalLook` — exposure, white balance,
blur, JPEG artefacts, a dim LED, a PWM-flickering LED, or misread frames inside the red phase.
:func:`tests.scenarios.render.render_signal_frame` draws frame ``i``; the ground truth is
:func:`tests.scenarios.model.color_at` of the phase plan (the lamp drawn dark on a flicker or
misread frame is still the phase's colour).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sharpeyes.pipeline.types import LampColor
from tests.scenarios.model import Phase

G, A, R = LampColor.GREEN, LampColor.AMBER, LampColor.RED

MAIN_PLAN = (Phase(0.0, G), Phase(4.0, A), Phase(7.0, R), Phase(19.0, G))
PED_PLAN = (Phase(0.0, R), Phase(8.0, G), Phase(16.0, R))


@dataclass(frozen=True, slots=True)
class SignalLook:
    """How the camera and the lamps misbehave in one scenario."""

    exposure: float = 1.0
    wb_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gains (white balance)
    blur_sigma: float = 0.0
    jpeg_quality: int = 0  # 0 = no JPEG round trip
    dim: float = 1.0  # lit-lamp brightness of the main head (1 = nominal LED)
    flicker_every: int = 0  # main lamp drawn dark on every Nth frame (PWM beat); 0 = steady
    dark_frames: tuple[int, ...] = ()  # main lamp drawn dark on these frames (misread)
    wrong_frames: tuple[tuple[int, LampColor], ...] = ()  # main lamp drawn in another colour
    dark_from_s: float | None = None  # main head dark from here on (signal fault)


@dataclass(frozen=True, slots=True)
class SignalScenario:
    """A named signal-only case."""

    name: str
    look: SignalLook = field(default_factory=SignalLook)
    fps: float = 10.0
    duration_s: float = 24.0
    phases: tuple[Phase, ...] = MAIN_PLAN
    ped_phases: tuple[Phase, ...] = PED_PLAN
    seed: int = 11
    description: str = ""

    @property
    def n_frames(self) -> int:
        return round(self.duration_s * self.fps)

    def pts(self, i: int) -> float:
        return i / self.fps


WARM = (0.75, 1.0, 1.3)  # BGR gains: orange cast (tungsten / sunset)
COOL = (1.3, 1.0, 0.75)  # BGR gains: blue cast (shade / overcast)

SIGNAL_SCENARIOS: dict[str, SignalScenario] = {
    s.name: s
    for s in [
        SignalScenario("nominal", description="the scene as rendered"),
        SignalScenario("exposure_x0.4", SignalLook(exposure=0.4), description="under-exposed"),
        SignalScenario("exposure_x0.7", SignalLook(exposure=0.7)),
        SignalScenario("exposure_x1.3", SignalLook(exposure=1.3)),
        SignalScenario("exposure_x1.6", SignalLook(exposure=1.6), description="over-exposed"),
        SignalScenario("wb_warm", SignalLook(wb_bgr=WARM), description="orange white balance"),
        SignalScenario("wb_cool", SignalLook(wb_bgr=COOL), description="blue white balance"),
        SignalScenario("blur", SignalLook(blur_sigma=2.0), description="defocus, sigma 2 px"),
        SignalScenario("jpeg_q8", SignalLook(jpeg_quality=8), description="heavy JPEG (q=8)"),
        SignalScenario("dim_led", SignalLook(dim=0.35), description="main LED at 35 %"),
        SignalScenario(
            "flicker_pwm",
            SignalLook(flicker_every=2),
            description="main LED dark on every other frame (PWM beating with the shutter)",
        ),
        SignalScenario(
            "red_misreads",
            SignalLook(
                dark_frames=(90, 91, 92, 120, 141, 142, 143, 144, 145, *range(160, 172)),
                wrong_frames=((100, G), (130, A)),
            ),
            description="red phase (7–19 s) with 21 dark frames (runs of 1, 3, 5 and 12 = 1.2 s) "
            "and two frames drawn in another colour",
        ),
    ]
}

FAULT_SCENARIO = SignalScenario(
    "fault_dark",
    SignalLook(dark_from_s=12.0),
    duration_s=18.0,
    description="main head goes dark at 12 s in the red phase and stays dark (signal fault)",
)
