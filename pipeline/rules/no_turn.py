"""Prohibited movements by sign (违反禁令标志): a movement a sign forbids on an approach (or
some of its lanes), in daily time windows — e.g. no left turn 07:00–09:00.

The movement comes from :class:`pipeline.rules.movement.MovementTracker` (decided only when
certain); the time window is judged at the stop-line crossing, in Beijing time from frame time.
A no-left-turn sign also forbids U-turns when ``left_includes_u_turn`` (实施条例 art. 49); a
U-turn where no sign forbids it is not charged. A vehicle straddling two lanes is charged only
when the movement is prohibited from both. Charged once per track; an exempt class never is.

Evidence stages: 1 the last position behind the stop line, 2 the first past it, 3 where the
movement was read (clearly turned).

Default code ``1344`` — 机动车违反禁令标志指示的 (Road Traffic Safety Law art. 38, art. 90), as
listed in the Ministry's 交通违法行为代码 table; read from public copies of the table, not
verified against an official text offline (points and some codes changed with 公安部令第163号,
2022). Set ``no_turn.code`` from the deploying province's table.
"""

from __future__ import annotations

from sharpeyes.pipeline.calibration import IntersectionCalibration, Movement, ProhibitedMovement
from sharpeyes.pipeline.rules.charge import exempt_class, needed
from sharpeyes.pipeline.rules.common import in_windows
from sharpeyes.pipeline.rules.movement import (
    LaneGeo,
    MovementDecision,
    MovementJudgeBase,
    MovementRule,
)
from sharpeyes.pipeline.types import Event

NAME = "no_turn"


class NoTurnJudge(MovementJudgeBase):
    """Movements prohibited by sign on the calibrated approaches (judges settled movements)."""

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        self.cfg = needed(calib.no_turn, "NoTurnJudge", "no_turn")
        super().__init__(stream_id, calib, frame_size)

    def _covers(self, pm: ProhibitedMovement, mv: Movement) -> bool:
        if pm.movement is mv:
            return True
        return (
            mv is Movement.U_TURN and pm.movement is Movement.LEFT and self.cfg.left_includes_u_turn
        )

    def sign_for(self, lane: LaneGeo, mv: Movement, wall_ms: int) -> ProhibitedMovement | None:
        """The sign that prohibits ``mv`` from ``lane`` at ``wall_ms``, if any."""
        for pm in self.cfg.prohibited:
            if pm.approach != lane.approach.id or (pm.lanes and lane.cfg.id not in pm.lanes):
                continue
            if self._covers(pm, mv) and in_windows(pm.windows, wall_ms):
                return pm
        return None

    def judge(self, decisions: list[MovementDecision]) -> list[Event]:
        events: list[Event] = []
        for d in decisions:
            mv = d.movement(self._turn, self.cfg.margin_deg)
            if mv is None:
                continue
            wall_ms = d.post.wall_ms - round((d.post.pts - d.cross_pts) * 1000)
            signs = [self.sign_for(ln, mv, wall_ms) for ln in d.lanes]
            sign = signs[0]
            if sign is None or any(s is None for s in signs):
                continue
            if exempt_class(d.hist, self.cfg.exempt_class_ids):
                continue
            events.append(self._charge(d, d.lanes[0], sign, mv))
        return events

    def _charge(
        self, d: MovementDecision, lane: LaneGeo, sign: ProhibitedMovement, mv: Movement
    ) -> Event:
        windows = ",".join(f"{w.start}-{w.end}" for w in sign.windows) or "always"
        return self._charge_movement(
            d,
            lane,
            mv,
            name=NAME,
            code=self.cfg.code,
            detail=f"{mv.value} from lane {lane.cfg.number} of {lane.approach.id} "
            f"where {sign.movement.value} is prohibited ({windows}), crossed the stop line "
            f"at {d.cross_pts:.2f}s",
            extra=(("prohibited", sign.movement.value), ("windows", windows)),
        )


class NoTurnRule(MovementRule):
    """The no-turn rule on its own tracker (the registry shares one: ``movement``)."""

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        super().__init__(calib, frame_size, [NoTurnJudge(stream_id, calib, frame_size)])
