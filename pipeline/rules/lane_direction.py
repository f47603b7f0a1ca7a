"""Not following the lane's direction (不按导向车道行驶): a vehicle that entered the
intersection from a lane whose allowed ``movements`` exclude the movement it actually made
(left from a straight-only lane, straight from a right-turn lane).

The movement comes from :class:`pipeline.rules.movement.MovementTracker` (trajectory after the
stop line, decided only when certain; a vehicle straddling two lanes is charged only when the
movement is wrong for both). A U-turn from a lane that allows a left turn is allowed when
``u_turn_with_left`` (实施条例 art. 49 forbids it only under a sign — that is the no-turn rule's
business). Signal-independent: it charges on green as well as red. Charged once per track; an
exempt class never is.

Evidence stages: 1 the last position behind the stop line (in the lane, under its arrow), 2 the
first past it, 3 where the movement was read (clearly turned or clearly straight on).

Default code ``1208`` — 机动车通过有灯控路口时，不按所需行进方向驶入导向车道的 (Regulations on
the Implementation of the Road Traffic Safety Law art. 51 item 1, Law art. 90), as listed in the
Ministry's 交通违法行为代码 table; read from public copies of the table, not verified against an
official text offline. Set ``lane_direction.code`` from the deploying province's table.
"""

from __future__ import annotations

from sharpeyes.pipeline.calibration import IntersectionCalibration, Lane, Movement
from sharpeyes.pipeline.rules.charge import exempt_class, needed
from sharpeyes.pipeline.rules.movement import (
    LaneGeo,
    MovementDecision,
    MovementJudgeBase,
    MovementRule,
)
from sharpeyes.pipeline.types import Event

NAME = "lane_direction"


class LaneDirectionJudge(MovementJudgeBase):
    """Movements not allowed by the lane a vehicle came from (judges settled movements)."""

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        self.cfg = needed(calib.lane_direction, "LaneDirectionJudge", "lane_direction")
        super().__init__(stream_id, calib, frame_size)
        self._watched = set(self.cfg.lanes)

    def allowed(self, lane: Lane, mv: Movement) -> bool:
        """Whether ``mv`` is allowed from ``lane`` (or the lane is not watched)."""
        if self._watched and lane.id not in self._watched:
            return True
        if mv in lane.movements:
            return True
        return (
            mv is Movement.U_TURN and self.cfg.u_turn_with_left and Movement.LEFT in lane.movements
        )

    def judge(self, decisions: list[MovementDecision]) -> list[Event]:
        events: list[Event] = []
        for d in decisions:
            mv = d.movement(self._turn, self.cfg.margin_deg)
            if mv is None or any(self.allowed(ln.cfg, mv) for ln in d.lanes):
                continue
            if exempt_class(d.hist, self.cfg.exempt_class_ids):
                continue
            events.append(self._charge(d, d.lanes[0], mv))
        return events

    def _charge(self, d: MovementDecision, lane: LaneGeo, mv: Movement) -> Event:
        allowed = "/".join(m.value for m in lane.cfg.movements)
        return self._charge_movement(
            d,
            lane,
            mv,
            name=NAME,
            code=self.cfg.code,
            detail=f"lane {lane.cfg.number} ({allowed}) made a {mv.value} "
            f"(heading {d.angle_deg:+.0f} deg), crossed the stop line at {d.cross_pts:.2f}s",
        )


class LaneDirectionRule(MovementRule):
    """The lane-direction rule on its own tracker (the registry shares one: ``movement``)."""

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        super().__init__(calib, frame_size, [LaneDirectionJudge(stream_id, calib, frame_size)])
