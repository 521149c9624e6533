"""Fault levels as the service plan defines them, with their response rules.

The wording is the plan's; the deadlines themselves are computed in
:mod:`portalops.runbook.workcal`, which knows the working-hours calendar.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    """一级 / 二级 / 三级 of the plan; 1 is the most severe."""

    L1 = 1
    L2 = 2
    L3 = 3

    @property
    def spec(self) -> LevelSpec:
        return LEVELS[self]

    @property
    def label(self) -> str:
        return f"L{int(self)} {self.spec.name_zh}"


@dataclass(frozen=True)
class LevelSpec:
    """What a level means and how fast it must be answered, in both languages."""

    name_zh: str
    meaning_zh: str
    meaning_en: str
    response_zh: str
    response_en: str


LEVELS: dict[Level, LevelSpec] = {
    Level.L1: LevelSpec(
        name_zh="一级",
        meaning_zh="业务中断，或仍在运行但已不能及时、正确地提供服务",
        meaning_en="business interrupted, or running but no longer timely or correct",
        response_zh="立即响应；工作时间内立即到场，工作时间外 1 小时内到场",
        response_en="respond at once; on site at once in working hours, within 1 h outside them",
    ),
    Level.L2: LevelSpec(
        name_zh="二级",
        meaning_zh="业务未中断、结果仍正确，但性能下降",
        meaning_en="not interrupted and still correct, but performance degraded",
        response_zh="电话未能解决时 15 分钟内回电；工作时间内 1 小时内到场",
        response_en="call back within 15 min if the phone did not solve it; on site within 1 h in working hours",
    ),
    Level.L3: LevelSpec(
        name_zh="三级",
        meaning_zh="轻微故障：告警，无实际影响",
        meaning_en="minor: warnings, no real impact",
        response_zh="30 分钟内回电；工作时间内 2 小时内到场，或按约定",
        response_en="call back within 30 min; on site within 2 h in working hours, or as agreed",
    ),
}
