"""Scheduled posts (held back by WordPress, read on the CMS host) told apart from falsified (future) dates."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from portalops import wpphp
from portalops.inspect import scheduled, veto
from tests.unit.test_content_runbooks import RecordedHost

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
AHEAD = NOW + dt.timedelta(days=21)


def rest_post(post_id: int, date: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {"id": post_id, "link": f"https://portal.lab.test/?p={post_id}", "date": date, **extra}


def test_a_post_the_public_reads_dated_ahead_is_falsified_a_scheduled_one_is_not() -> None:
    posts = [
        rest_post(1, AHEAD),  # the anonymous REST API answers published posts only, without a status
        rest_post(2, AHEAD, status="publish"),
        rest_post(3, AHEAD, status="future"),  # scheduled: only an authenticated reader is shown it
        rest_post(4, NOW + dt.timedelta(minutes=4)),  # clocks differ a little
        rest_post(5, NOW - dt.timedelta(days=1)),
    ]
    assert scheduled.falsified(posts, NOW) == [
        "https://portal.lab.test/?p=1: dated 2026-12-24 12:00 UTC",
        "https://portal.lab.test/?p=2: dated 2026-12-24 12:00 UTC",
    ]


def post(post_id: int, date: dt.datetime) -> scheduled.Post:
    return scheduled.Post(post_id, "post", f"通知 {post_id}", date, f"https://portal.lab.test/?p={post_id}")


def test_scheduled_posts_are_listed_with_their_dates_and_no_veto() -> None:
    item = scheduled.item(scheduled.Scheduled([post(7, AHEAD)], read=True), NOW)
    assert (item.id, item.veto, item.status) == ("scheduled_posts", False, veto.PASS)
    assert item.margin == "1 held back until their time, not public: no falsified date"
    assert item.evidence == [
        "https://portal.lab.test/?p=7: post '通知 7' scheduled for 2026-12-24 12:00 UTC, in 21.0 days"
    ]
    assert scheduled.item(scheduled.Scheduled([], read=True), NOW).status == veto.PASS


def test_a_scheduled_post_past_its_time_missed_its_schedule() -> None:
    late = NOW - dt.timedelta(hours=2)
    item = scheduled.item(scheduled.Scheduled([post(7, AHEAD), post(8, late)], read=True), NOW)
    assert item.status == veto.AT_RISK and not item.veto
    assert item.margin.endswith("; 1 past their time and not published (wp-cron missed the schedule)")
    assert item.evidence[1] == "https://portal.lab.test/?p=8: post '通知 8' MISSED, due 2026-12-03 10:00 UTC"
    # Minutes late is the clocks, not a missed schedule.
    assert scheduled.item(scheduled.Scheduled([post(9, NOW - dt.timedelta(minutes=4))], read=True), NOW).status == (
        veto.PASS
    )


def test_unread_scheduled_posts_are_not_checked_or_cannot_tell() -> None:
    assert scheduled.item(None, NOW).status == veto.NOT_CHECKED
    assert scheduled.item(scheduled.Scheduled(), NOW).status == veto.NOT_CHECKED
    unread = scheduled.item(scheduled.Scheduled(error="cms1: unreachable: timed out"), NOW)
    assert (unread.status, unread.margin) == (
        veto.UNKNOWN,
        "cannot read them in WordPress: cms1: unreachable: timed out",
    )


def test_scheduled_posts_are_read_in_the_sites_wordpress_as_its_user() -> None:
    answer = [{"id": 7, "type": "post", "title": "通知", "date_gmt": "2026-12-24T12:00:00", "link": "https://p/?p=7"}]
    host = RecordedHost(0, "PHP notice\n" + json.dumps(answer, ensure_ascii=False) + "\n")
    found = scheduled.read_site(host, "portal", "portal.lab.test")
    assert found == scheduled.Scheduled([scheduled.Post(7, "post", "通知", AHEAD, "https://p/?p=7")], read=True)
    [command] = host.commands
    assert (
        command.startswith(f"cd /tmp && runuser -u {wpphp.USER_PREFIX}portal -- ")
        and "post_status = 'future'" in command
    )
    failed = scheduled.read_site(RecordedHost(2, ""), "portal", "portal.lab.test")
    assert (failed.read, failed.error) == (False, "cms1: PHP Fatal error: no database")
    garbled = scheduled.read_site(RecordedHost(0, '{"id": 7}\n'), "portal", "portal.lab.test")
    assert garbled.error == "cms1: portal: not a list of posts"


@pytest.mark.parametrize(
    "data", [{"id": 7}, [{"id": 7}], [{"id": "x", "type": "post", "title": "", "date_gmt": "", "link": ""}]]
)
def test_an_answer_that_is_no_list_of_posts_is_refused(data: Any) -> None:
    with pytest.raises(ValueError, match="not a list of posts"):
        scheduled.parse(data)


def test_without_a_cms_host_nothing_is_read() -> None:
    hostvars = {"web1": {"groups": ["web"], "address": "10.0.0.1"}}
    assert scheduled.read_sites(hostvars, [{"name": "portal", "domains": ["portal.lab.test"]}]) == {}
