"""网站不能访问: the 7-day availability under the 15 s rule, as the monitoring measures it, with its veto margin.

The indicators fail a site when, over a week of spaced samples, 5 % or more did not open within 15 s.
The monitoring probes every domain through the edge and records each site's figure and its margin to the
line (``portalops:site_availability:ratio_7d`` and ``:veto_margin_7d``); this reads them the way
``portalops status`` does (:func:`portalops.monitoring.status.availability_7d`, one query for both) and
judges them. A figure that cannot be read is "unknown", never a pass; no monitoring at all in the
inventory is "not checked", with that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from portalops.inspect import veto
from portalops.monitoring.api import Prometheus, Unreachable
from portalops.monitoring.status import availability_7d

# Under one point above the line the site is at risk: 1 % of a week is 1.7 h of failed probes left.
WARN_MARGIN = 0.01
WEEK_HOURS = 7 * 24


@dataclass(frozen=True)
class Figure:
    """One site's figure as Prometheus answered it; ``source`` empty when no Prometheus is known."""

    source: str = ""
    ratio_7d: float | None = None
    veto_margin_7d: float | None = None
    error: str = ""


NOT_MEASURED = Figure()


def read(prometheus: Prometheus | None, names: Sequence[str]) -> dict[str, Figure]:
    """Every site's figure, in two queries for all of them."""
    if prometheus is None:
        return {name: NOT_MEASURED for name in names}
    try:
        sites = availability_7d(prometheus, list(names))
    except Unreachable as exc:
        return {name: Figure(prometheus.url, error=str(exc)) for name in names}
    return {s.name: Figure(prometheus.url, s.ratio_7d, s.veto_margin_7d) for s in sites if s.name in names}


def item(figure: Figure, home_now: str, home_answered: bool) -> veto.Item:
    """The veto item from the figure; the home page's answer now is evidence, and a site down now is at
    least at risk."""
    found = veto.Item("site_unreachable", "网站不能访问", "Site unreachable", True, veto.PASS)
    found.evidence = [f"home page now: {home_now}"]
    if not figure.source:
        found.status = veto.NOT_CHECKED if home_answered else veto.UNKNOWN
        found.margin = (
            "no monitoring host in the inventory (or --prometheus URL): the 7-day share of samples over 15 s"
            " is not measured"
        )
        return found
    found.evidence.append(f"Prometheus {figure.source}: portalops:site_availability:ratio_7d, :veto_margin_7d")
    if figure.error or figure.ratio_7d is None or figure.veto_margin_7d is None:
        found.status = veto.UNKNOWN
        found.margin = (
            f"Prometheus did not answer: {figure.error}"
            if figure.error
            else "Prometheus has no 7-day figure for the site (not probed, or the recording rules not evaluated yet)"
        )
        return found
    margin = figure.veto_margin_7d
    line = figure.ratio_7d - margin
    if margin <= 0:  # the failed share *reaches* 5 %: on the line is over it
        found.status = veto.FAIL
    elif margin < WARN_MARGIN or not home_answered:
        found.status = veto.AT_RISK
    left = (
        f"about {margin * WEEK_HOURS:.1f} h of failed samples left in the week"
        if margin > 0
        else f"{-margin * WEEK_HOURS:.1f} h of failed samples over"
    )
    found.margin = (
        f"7-day share of samples loaded within 15 s: {figure.ratio_7d * 100:.2f} %, veto at {line * 100:.2f} % or less"
        f" (margin {margin * 100:+.2f} points: {left})"
    )
    return found
