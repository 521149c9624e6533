#!/usr/bin/env python3
"""L2 content going stale: name the sections the inspection warns of, tell the content editors, verify, escalate.

The national indicators fail a site whose dynamic sections (news, 要闻, 动态) go two weeks without a new
item, that has five blank sections, or that fails any other veto item of its content (a leaked ID
number, a date in the future, enquiries left unanswered). The inspection (``portalops inspect``, daily)
writes its findings as metrics, and these alerts warn before the veto: a dynamic section 10 days old
(L3), 13 days old or 4 blank sections (L2), a veto item of the content failed (L2). Operations cannot
publish for the site: the runbook names every section and item with its age and margin, tells the content
editors of ``portalops_contacts`` by e-mail, and verifies by inspecting again (its metrics rewritten, so
the alerts follow). It is recovered only once the editors have published; otherwise it ends escalated
to them and the portal's owning department. Nothing is changed on any host: it may run unattended.

Run: portalops runbook run l2_content_stale [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.inspect.freshness import BLANK_SECTIONS, CONTENT_VETO_ITEMS, LIMIT_DAYS, STALE_DAYS, WARN_DAYS
from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, verify

STALE = "{{ python }} -m portalops.cli content stale -i {{ inventory }}"
AGE = 'portalops_inspect_section_age_days{class="dynamic"}'
# The inspection runs once a day (or by hand), so each metric holds its value until the next run: a longer for:
# would only delay the warning by as much. 10 min lets an editor who publishes and inspects again at once clear
# it before anyone is paged, and rides out a textfile being rewritten.
FOR = "10m"
WHY = (
    f"for: {FOR}: the inspection writes the metric once a day (portalops-inspect.timer) or when run by hand, "
    "so a longer for: only delays the warning; 10 min lets an editor who publishes and inspects again at once "
    "clear it before anyone is paged."
)

ALERTS = (
    Alert(
        name="PortalSectionAging",
        expr=f"{AGE} >= {WARN_DAYS} < {STALE_DAYS}",
        summary_zh=f"动态类栏目 {WARN_DAYS} 天未更新（{LIMIT_DAYS} 天即单项否决）",
        summary_en=f"A dynamic section has had no new item for {WARN_DAYS} days (the veto is at {LIMIT_DAYS})",
        duration=FOR,
        level=Level.L3,
        why=f"{WARN_DAYS} days: the inspection's own warning age, four days before the veto; below {STALE_DAYS} "
        f"only, where PortalSectionStale takes over. " + WHY,
    ),
    Alert(
        name="PortalSectionStale",
        expr=f"{AGE} >= {STALE_DAYS}",
        summary_zh=f"动态类栏目 {STALE_DAYS} 天以上未更新（{LIMIT_DAYS} 天即单项否决）",
        summary_en=f"A dynamic section has had no new item for {STALE_DAYS} days or more (the veto is at {LIMIT_DAYS})",
        duration=FOR,
        why=f"{STALE_DAYS} days: a day before the veto, while a post today still saves the site. " + WHY,
    ),
    Alert(
        name="PortalBlankSections",
        expr=f"portalops_inspect_blank_sections >= {BLANK_SECTIONS}",
        summary_zh=f"空白栏目（无内容的栏目和页面）达到 {BLANK_SECTIONS} 个（{BLANK_SECTIONS + 1} 个即单项否决）",
        summary_en=f"{BLANK_SECTIONS} or more blank sections and pages (the veto is at {BLANK_SECTIONS + 1})",
        duration=FOR,
        why=f"{BLANK_SECTIONS}: one below the veto. " + WHY,
    ),
    Alert(
        name="PortalInspectionVetoFailed",
        expr=f'portalops_inspect_item_status{{item=~"{"|".join(CONTENT_VETO_ITEMS)}"}} == 2',
        summary_zh="网站检查单项否决指标不合格（内容：更新、空白栏目、个人信息、发布日期、互动回应）",
        summary_en="An inspection veto item of the content failed (updates, blank sections, personal data, dates, "
        "interaction)",
        duration=FOR,
        why="Status 2 is a failed item; sensitive words (PortalSensitiveContent, L1) and the 7-day availability "
        "(PortalAvailabilityBurn) have alerts and runbooks of their own, broken links cost points only. " + WHY,
    ),
)

RUNBOOK = Runbook(
    id="l2_content_stale",
    title_zh="栏目更新不及时或检查否决项不合格",
    title_en="Content going stale or an inspection veto item failed",
    level=Level.L2,
    triggers=(
        (
            f"动态类栏目 {WARN_DAYS} 天未更新，或空白栏目达到 {BLANK_SECTIONS} 个",
            f"a dynamic section without a new item for {WARN_DAYS} days, or {BLANK_SECTIONS} blank sections",
        ),
        (
            "portalops inspect 报告内容类单项否决指标不合格",
            "portalops inspect reports a failed veto item of the content",
        ),
    ),
    # Nothing on the portal's hosts is changed: the run holds only the monitoring hosts its verification
    # writes the inspection's metrics to, so it never keeps a repair of the CMS waiting.
    targets=("monitoring",),
    alerts=ALERTS,
    steps=(
        diagnose(
            "inspection_warnings",
            "检查各站点：列出即将或已经超期的栏目（含天数）、空白栏目和不合格的否决项",
            "Inspect every site: the sections going or gone stale (with their ages), blank ones, failed veto items",
            run=STALE,
            timeout=600,
        ),
        act(
            "tell_content_editors",
            "通过邮件通知内容编辑需要更新的栏目",
            "E-mail the content editors the sections to update",
            run=f"{STALE} --tell-editors",
            timeout=600,
        ),
        verify(
            "no_inspection_warning",
            "再次检查不再有预警（并更新检查指标）",
            "Inspected again, nothing to warn of (the metrics rewritten)",
            run=f"{STALE} --metrics",
            timeout=600,
        ),
        escalate(
            "content_owner",
            "升级至内容编辑与门户主管单位",
            "Escalate to the content editors and the portal's owning department",
            to_zh="内容编辑与门户主管单位（发布新内容或补充空白栏目；运维无法代为发布）",
            to_en="the content editors and the portal's owning department (publish, or fill the blank sections; "
            "operations cannot publish for them)",
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
