#!/usr/bin/env python3
"""L1 sensitive content published: find the posts, keep the evidence, unpublish them with a person's yes, verify.

A published post or page holding a word of the customer's list (``portalops_sensitive_words``) is a
serious error of the national indicators (a single veto), and the law treats published prohibited content
like defacement: L1. The posts are found the inspection's way (through the edge and WordPress' REST API,
the inspection's matcher over the visible text), kept in the incident's evidence directory
(``incidents/<incident>/evidence/``: post id, URL, matched words, title and content as the public saw
them), then, with a person's yes, set back to draft in the site's WordPress on a CMS host (nothing is
deleted: what the database held is kept too, and an editor republishes the corrected text). The edge
cache is emptied, since it would serve the post for minutes more, and the recovery is verified from
outside: no post URL serves its words, and the whole inspection (its metrics rewritten, so the alert
resolves with its cause) finds none. The security officer is told even when it recovered.

Run: portalops runbook run l1_sensitive_content [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, manual, verify
from portalops.runbook.checks import CACHE_EMPTY, PURGE_CACHE

CONTENT = "{{ python }} -m portalops.cli content"
FIND = f"{CONTENT} sensitive -i {{{{ inventory }}}}"

ALERTS = (
    Alert(
        name="PortalSensitiveContent",
        expr='portalops_inspect_findings{item="sensitive_content"} > 0',
        summary_zh="已发布内容含敏感词（portalops inspect，清单 portalops_sensitive_words）",
        summary_en="Published content holds a sensitive word (portalops inspect, portalops_sensitive_words)",
        duration="0s",
        why="portalops inspect --metrics (its timer, daily) writes the count of posts holding a word of the "
        "customer's list; for: 0s: the word is exact, and the law treats published prohibited content like "
        "defacement. The runbook keeps the posts as evidence; unpublishing them waits for a person.",
    ),
)

RUNBOOK = Runbook(
    id="l1_sensitive_content",
    title_zh="已发布内容含敏感词",
    title_en="Sensitive content published",
    level=Level.L1,
    triggers=(
        (
            "portalops inspect 在已发布内容中发现敏感词（清单 portalops_sensitive_words）",
            "portalops inspect finds a word of portalops_sensitive_words in published content",
        ),
        (
            "群众、上级或检查方反映网站发布了违禁或敏感内容",
            "the public, a superior or an inspector reports prohibited content on the portal",
        ),
    ),
    targets=("cms", "web"),
    alerts=ALERTS,
    steps=(
        diagnose(
            "find_posts",
            "查找含敏感词的已发布文章和页面并留存证据",
            "Find the published posts and pages holding a sensitive word and keep them as evidence",
            run=f"{FIND} --keep",
            timeout=120,
        ),
        act(
            "unpublish_posts",
            "再次留存证据后将含敏感词的文章撤回为草稿",
            "Keep the evidence again, then set the posts holding a sensitive word back to draft (on a CMS host)",
            check=FIND,
            run=f"{CONTENT} unpublish -i {{{{ inventory }}}}",
            destructive=True,  # takes posts off the site; nothing is deleted, the evidence is kept first
            timeout=300,
        ),
        act(
            "purge_edge_cache",
            "清空边缘缓存，避免继续提供已撤回的文章",
            "Empty the edge cache so no unpublished post is served from it",
            on=("web",),
            check=CACHE_EMPTY,
            run=PURGE_CACHE,
        ),
        verify(
            "posts_not_served",
            "从外部确认各文章地址不再显示敏感词（含缓存）",
            "From outside, no post URL serves its words any more, the edge cache included",
            run=f"{CONTENT} gone -i {{{{ inventory }}}}",
            attempts=3,
            interval=5,
            timeout=120,
        ),
        verify(
            "inspection_clean",
            "网站检查不再发现敏感词（并更新检查指标）",
            "The inspection finds no sensitive word any more (its metrics rewritten)",
            run=f"{FIND} --inspect --metrics",
            timeout=600,
        ),
        manual(
            "review_with_editors_and_security_officer",
            "向安全负责人报告，并由内容编辑审核后重新发布",
            "Report to the security officer; the content editors review and republish",
            instructions_zh="即使已恢复也须报告：将事件证据目录（incidents/<事件>/evidence/）交给安全负责人，由其决定是否"
            "向主管部门报告；查明发布经过（作者、审核）；内容编辑修改后再发布（文章为草稿，未删除）。",
            instructions_en="Report it even when recovered: hand the incident's evidence directory "
            "(incidents/<incident>/evidence/) to the security officer, who decides whether to report to the "
            "supervising authority; find out how it was published (author, review); the content editors "
            "correct the posts (now drafts, nothing deleted) and publish them again.",
        ),
        escalate(
            "security_officer",
            "升级至安全负责人与二线，保留证据",
            "Escalate to the security officer and the second line, keeping the evidence",
            to_zh="安全负责人与二线工程师（文章未能撤回或仍被访问到：在 WordPress 后台手工撤回，检查边缘缓存）",
            to_en="the security officer and the second-line engineer (a post could not be unpublished or is "
            "still served: unpublish it in the WordPress admin, check the edge cache)",
            run=f"{FIND}; {CONTENT} gone -i {{{{ inventory }}}}",
            timeout=240,
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
