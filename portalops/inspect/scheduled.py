"""Items dated ahead: scheduled posts WordPress holds back, told apart from falsified dates.

A post an editor publishes with a date in the future is *scheduled* (WordPress gives it the status
``future``): nobody sees it until its time, when wp-cron publishes it, so it is no falsified date. A
falsified date (严重表述错误: 发布日期造假, a veto item) is a post the public reads *now* dated ahead
(:func:`falsified`): WordPress never publishes one by itself, so its date was changed behind its back.

The public edge and the anonymous REST API never show scheduled posts, so they are read in each site's
WordPress on the first CMS host over SSH (:mod:`portalops.wpphp`, as the content runbooks act there):
reported with their dates, never counted as falsified; one past its time and still held back missed its
schedule (wp-cron did not run), an item the editors announced that is not out: at risk, no veto.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portalops import wpphp
from portalops.errors import PortalopsError
from portalops.inspect import veto
from portalops.runbook.hosts import Host, SshHost
from portalops.runbook.live import connections_for

# Clocks differ a little: a post minutes ahead is not falsified, one minutes late not a missed schedule.
TOLERANCE = dt.timedelta(minutes=5)
ITEM = ("scheduled_posts", "定时发布 (未公开, 非日期造假)", "Scheduled posts (not public yet; no falsified date)")
# Prints the site's scheduled posts and pages as JSON (portalops.wpphp runs it as the site's user).
SCHEDULED_PHP = r"""
$rows = $wpdb->get_results(
    "SELECT ID, post_type, post_title, post_date_gmt FROM {$wpdb->posts}
     WHERE post_status = 'future' AND post_type IN ('post', 'page') ORDER BY post_date_gmt, ID", ARRAY_A);
$found = [];
foreach ($rows as $row) {
    $found[] = ['id' => (int) $row['ID'], 'type' => $row['post_type'], 'title' => $row['post_title'],
                'date_gmt' => str_replace(' ', 'T', $row['post_date_gmt']), 'link' => get_permalink((int) $row['ID'])];
}
echo json_encode($found, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
"""


@dataclass(frozen=True)
class Post:
    """A post or page its WordPress holds back until ``date``."""

    id: int
    type: str
    title: str
    date: dt.datetime  # UTC
    link: str


@dataclass
class Scheduled:
    """A site's scheduled posts as read in its WordPress; ``error``: why they could not be read; neither
    read nor an error: the inventory has no CMS host to read them on."""

    posts: list[Post] = field(default_factory=list)
    read: bool = False
    error: str = ""


def parse(data: Any) -> list[Post]:
    """:data:`SCHEDULED_PHP`'s answer; ValueError when it is something else."""
    if not isinstance(data, list):
        raise ValueError("not a list of posts")
    try:
        return [
            Post(
                int(p["id"]),
                str(p["type"]),
                str(p["title"]),
                dt.datetime.fromisoformat(str(p["date_gmt"])).replace(tzinfo=dt.UTC),
                str(p["link"]),
            )
            for p in data
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a list of posts ({exc})") from exc


def read_site(host: Host, site: str, domain: str, timeout: float = 60) -> Scheduled:
    """The scheduled posts of one site, read in its WordPress on ``host``."""
    result = host.run(wpphp.command(site, domain, SCHEDULED_PHP), timeout)
    if not result.ok:
        return Scheduled(error=f"{host.name}: {result.why_unknown() if result.unknown else result.last_line()}")
    try:
        return Scheduled(parse(wpphp.last_json(result.stdout)), read=True)
    except ValueError as exc:
        return Scheduled(error=f"{host.name}: {site}: {exc}")


def read_sites(
    hostvars: Mapping[str, Mapping[str, Any]], sites: Sequence[Mapping[str, Any]], timeout: float = 60
) -> dict[str, Scheduled]:
    """Every site's scheduled posts, read on the first CMS host (``hostvars``: rendered with the connection
    variables and ``groups``); none when the inventory has no CMS host."""
    cms = sorted(h for h, v in hostvars.items() if wpphp.CMS_GROUP in (v.get("groups") or []))
    if not cms:
        return {}
    try:
        connection = connections_for({cms[0]: dict(hostvars[cms[0]])}, cms[:1])[cms[0]]
    except (PortalopsError, KeyError, ValueError) as exc:
        return {str(s["name"]): Scheduled(error=f"{cms[0]}: {exc}") for s in sites}
    host = SshHost(connection)
    try:
        return {str(s["name"]): read_site(host, str(s["name"]), str(s["domains"][0]), timeout) for s in sites}
    finally:
        host.close()


def falsified(posts: Sequence[Mapping[str, Any]], now: dt.datetime) -> list[str]:
    """REST posts the public reads now, dated ahead: falsified dates. A scheduled one (status ``future``,
    which only an authenticated reader is shown) is held back and no finding."""
    return [
        f"{p.get('link', '')}: dated {p['date']:%Y-%m-%d %H:%M} UTC"
        for p in posts
        if p.get("status", "publish") == "publish" and p["date"] > now + TOLERANCE
    ]


def item(scheduled: Scheduled | None, now: dt.datetime) -> veto.Item:
    """The scheduled posts as a line of the table: listed with their dates, at risk when one missed its time."""
    result = veto.Item(*ITEM, veto=False, status=veto.PASS)
    if scheduled is None or (not scheduled.read and not scheduled.error):
        result.status = veto.NOT_CHECKED
        result.margin = f"the inventory has no host in group {wpphp.CMS_GROUP!r} to read them on (not public)"
        return result
    if scheduled.error:
        result.status = veto.UNKNOWN
        result.margin = f"cannot read them in WordPress: {scheduled.error}"
        return result
    missed = [p for p in scheduled.posts if p.date < now - TOLERANCE]
    result.status = veto.AT_RISK if missed else veto.PASS
    result.margin = f"{len(scheduled.posts)} held back until their time, not public: no falsified date"
    if missed:
        result.margin += f"; {len(missed)} past their time and not published (wp-cron missed the schedule)"
    for p in scheduled.posts:
        when = "MISSED, due" if p in missed else "scheduled for"
        days = (p.date - now).total_seconds() / 86400
        ahead = f", in {days:.1f} days" if days > 0 else ""
        result.evidence.append(f"{p.link}: {p.type} {p.title!r} {when} {p.date:%Y-%m-%d %H:%M} UTC{ahead}")
    return result
