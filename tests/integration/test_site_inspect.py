"""`portalops inspect` on the real portal: the seeded findings, exactly, and all below the alert lines; a
falsified (future) date, a leaked ID number and a sensitive word are found with their posts' URLs, and are gone
once the posts are.

The role's seed (roles/wordpress, lab only) gives the checks real things to find and the monitoring nothing to
alert on: notices 1 to 5 months old, news from the last days, one blank category, a page with a broken internal
link (a page that answers 404) and a broken external one (a .invalid name: broken without a request, nothing
leaves the lab), a post scheduled a month ahead (held back by WordPress: listed, never a falsified date). The
first test checks that baseline on the inspection it runs after its planted posts are gone.

Two posts are published on the portal site (cms1, through WordPress' own functions as the site's user,
the way the role seeds it: Debian has no WP-CLI): one whose date is set three weeks ahead in the
database (WordPress itself would have scheduled it, so a falsified date is exactly this), and one whose
text holds the GB 11643 example ID number (checksum valid, nobody's) and the lab inventory's made-up
test word. Both carry a post meta key; every post with it is deleted afterwards, whatever happened.

The second test moves every published post back so the newest is over 15 days old (the site and its dynamic
sections stale) and adds an empty category (one more blank section); then publishes one post in the dynamic
section 政务动态, holding a broken internal link and the test word, and removes the category: each finding
comes and goes with its cause, and the word's L1 alert fires in mon1's Prometheus from the metrics
``portalops inspect --metrics`` writes there, and resolves once the post is gone. Dates moved back, post and
category deleted, metrics rewritten afterwards, whatever happened.

The third publishes a post with the test word, reads it through the edge (so web1 caches it), and runs the
alert's runbook, l1_sensitive_content, with --yes as the person on duty would: the post is no longer public
through the edge, the incident's evidence holds it (id, URL, word, content) and its status before, it is a
draft (not deleted), and the inspection is clean again. The post is deleted afterwards, whatever happened.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from portalops.lab.wordpress import run_php
from tests.integration.helpers import incident_journal, portalops
from tests.integration.test_site import SITES, get
from tests.integration.test_site_monitoring import api

SITE = SITES[0]
DOMAIN = SITE["domains"][0]
TEST_ID = "11010519491231002X"  # the standard's own example number
MASKED_ID = "110105********002X"
WORD = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/inspect.yml").read_text())[
    "portalops_sensitive_words"
][0]
META = "_portalops_inspect_test"
BLANK_SLUG = "portalops-inspect-blank"
DYNAMIC = "政务动态"  # a dynamic section of the seed (inventory/lab/group_vars/all/portal.yml)
MISSING = "/?p=999999999"  # no such post (a path would be the home page under plain permalinks): a broken link
ALERT = "PortalSensitiveContent"
STALE_DAYS = 15
# What the role seeds (its vars): the blank category, the page's links, the scheduled post.
SEED = yaml.safe_load((REPO_ROOT / "roles/wordpress/vars/main.yml").read_text())
BLANK_SEEDED = SEED["__wordpress_seed_blank_category"]["slug"]
SEED_LINKS = [link["href"] for link in SEED["__wordpress_seed_page"]["links"]]
SCHEDULED = SEED["__wordpress_seed_scheduled"]
# The alerts on the inspection's metrics (runbooks l2_content_stale and l1_sensitive_content).
INSPECTION_ALERTS = ("PortalSectionAging", "PortalSectionStale", "PortalBlankSections", "PortalInspectionVetoFailed")
# Run in WordPress as the site's user (portalops.lab.wordpress) with the command and its argument; prints JSON.
PHP = (
    r"""
[$command, $argument] = $args + ['', ''];
$ids = get_posts(['post_type' => 'post', 'post_status' => 'any', 'meta_key' => '@META@',
                  'numberposts' => -1, 'fields' => 'ids']);
$blank = get_term_by('slug', '@BLANK@', 'category');
if ($command === 'delete' || $command === 'uncategory') {
    if ($command === 'delete') { foreach ($ids as $id) { wp_delete_post($id, true); } }
    if ($blank) { wp_delete_term($blank->term_id, 'category'); }
    echo json_encode(['deleted' => $command === 'delete' ? count($ids) : 0, 'categories' => $blank ? 1 : 0]), "\n";
    exit(0);
}
$published = "post_type = 'post' AND post_status = 'publish'";
if ($command === 'status') {  // how many of the test posts there are in each status
    $statuses = array_count_values(array_map('get_post_status', $ids));
    echo json_encode((object) $statuses), "\n";
    exit(0);
}
if ($command === 'newest') {
    $newest = $wpdb->get_var("SELECT MAX(post_date_gmt) FROM {$wpdb->posts} WHERE $published");
    echo json_encode(['newest' => strtotime($newest . ' UTC')]), "\n";
    exit(0);
}
if ($command === 'shift') {  // every published post's dates moved by $argument seconds
    $moved = $wpdb->query($wpdb->prepare(
        "UPDATE {$wpdb->posts} SET post_date = post_date + INTERVAL %d SECOND,
         post_date_gmt = post_date_gmt + INTERVAL %d SECOND WHERE $published", (int) $argument, (int) $argument));
    wp_cache_flush();
    echo json_encode(['shifted' => (int) $moved]), "\n";
    exit(0);
}
if ($command === 'category') {
    $term = wp_insert_term('portalops inspect test: 空白栏目', 'category', ['slug' => '@BLANK@']);
    if (is_wp_error($term)) { fwrite(STDERR, $term->get_error_message() . "\n"); exit(2); }
    echo json_encode(['category' => (int) $term['term_id']]), "\n";
    exit(0);
}
$admins = get_users(['role' => 'administrator', 'number' => 1, 'fields' => 'ID']);
if ($command === 'publish') {  // now, in the section $argument, with a broken internal link and the test word
    $section = get_term_by('name', $argument, 'category');
    $id = wp_insert_post(['post_title' => 'portalops inspect test: 今日动态', 'post_status' => 'publish',
                          'post_content' => '<p>@WORD@ <a href="@MISSING@">详情</a></p>',
                          'post_category' => [(int) $section->term_id], 'post_author' => (int) $admins[0],
                          'meta_input' => ['@META@' => '1']], true);
    if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message() . "\n"); exit(2); }
    echo json_encode(['post' => $id]), "\n";
    exit(0);
}
$made = [];
$titles = ['future' => 'portalops inspect test: dated ahead', 'personal' => 'portalops inspect test: 报名名单'];
foreach ($titles as $key => $title) {
    $content = $key === 'personal' ? '<p>报名者 张三, 身份证号 @ID@; @WORD@</p>' : '<p>dated ahead</p>';
    $id = wp_insert_post(['post_title' => $title, 'post_content' => $content, 'post_status' => 'publish',
                          'post_author' => (int) $admins[0], 'meta_input' => ['@META@' => '1']], true);
    if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message() . "\n"); exit(2); }
    $made[$key] = $id;
}
$ahead = gmdate('Y-m-d H:i:s', time() + 21 * 86400);
$wpdb->update($wpdb->posts, ['post_date_gmt' => $ahead, 'post_date' => get_date_from_gmt($ahead)],
              ['ID' => $made['future']]);
clean_post_cache($made['future']);
echo json_encode($made), "\n";
""".replace("@META@", META)
    .replace("@ID@", TEST_ID)
    .replace("@WORD@", WORD)
    .replace("@BLANK@", BLANK_SLUG)
    .replace("@MISSING@", MISSING)
)


def wordpress(command: str, argument: str = "") -> dict[str, int]:
    """Run :data:`PHP` on cms1 as the site's user; its JSON."""
    found: dict[str, int] = run_php("portalops-cms1", SITE["name"], DOMAIN, PHP, command, argument)
    return found


def inspect(*extra: str) -> tuple[int, dict[str, Any], str]:
    result = portalops("inspect", "--site", SITE["name"], "--json", *extra, timeout=600)
    assert result.stdout.strip(), result.stderr[-2000:]
    return result.returncode, json.loads(result.stdout), result.stdout


def items(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [site] = document["sites"]
    return {item["id"]: item for item in site["items"]}


@pytest.fixture
def planted(converged: LabConfig) -> Iterator[dict[str, int]]:
    """The two test posts on the portal site; deleted afterwards (and any left by an earlier run)."""
    wordpress("delete")
    try:
        yield wordpress("create")
    finally:
        wordpress("delete")


def test_inspect_finds_a_future_date_an_id_number_and_a_sensitive_word_until_they_are_deleted(
    planted: dict[str, int],
) -> None:
    code, document, text = inspect()
    found = items(document)
    assert (code, document["exit"]) == (1, 1), found
    future, personal, sensitive = found["future_dates"], found["personal_data"], found["sensitive_content"]
    assert future["status"] == "fail", future
    assert [e for e in future["evidence"] if re.search(rf"[?&]p={planted['future']}: dated ", e)], future
    # Only the planted post is falsified: the seeded scheduled one, also dated ahead, is held back, not public.
    others = [
        e for e in future["evidence"] if not re.search(rf"[?&]p={planted['future']}: dated |: home page shows ", e)
    ]
    assert not others and found["scheduled_posts"]["status"] == "pass", found
    assert personal["status"] == "fail", personal
    assert [e for e in personal["evidence"] if e.endswith(f"p={planted['personal']}: id_card {MASKED_ID}")], personal
    assert TEST_ID not in text  # the report names the post, never the whole number
    assert sensitive["status"] == "fail", sensitive
    assert [e for e in sensitive["evidence"] if e.endswith(f"p={planted['personal']}: {WORD}")], sensitive
    # The rest of the table is there, judged from the real portal: sections with their classes and ages.
    [site] = document["sites"]
    classes = {s["name"]: s["class"] for s in site["sections"]}
    assert (classes["政务动态"], classes["通知公告"], classes["便民服务"]) == ("dynamic", "notice", "static")
    assert site["stats"]["posts"] >= 2 and site["stats"]["links_checked"] > 0
    # The 7-day availability is mon1's recorded figure (whatever the lab's drills made of it), never "not checked".
    assert site["availability_7d"]["source"] == "http://127.0.0.1:9090", site["availability_7d"]
    assert 0 <= site["availability_7d"]["ratio_7d"] <= 1, site["availability_7d"]
    assert found["site_unreachable"]["status"] in ("pass", "at_risk", "fail"), found["site_unreachable"]

    assert wordpress("delete")["deleted"] == 2
    code, document, _ = inspect()
    found = items(document)
    assert [found[k]["status"] for k in ("future_dates", "personal_data", "sensitive_content")] == ["pass"] * 3, found
    assert_seeded_baseline(code, document)


def assert_seeded_baseline(code: int, document: dict[str, Any]) -> None:
    """Exactly the seed's findings, each below its alert line. The 7-day availability is whatever the lab's
    drills made of it (the exit code follows it), so every other item is judged here."""
    found = items(document)
    [site] = document["sites"]
    if found["site_unreachable"]["status"] != "fail":
        assert (code, document["exit"]) == (0, 0), found
    sections = {s["name"]: s for s in site["sections"]}
    # The old and the new: notices 1 to 5 months old (notice class, at risk at 150 days), news from the last days
    # (the dynamic alerts start at 10); dated from the converge day, so they age with the lab.
    notices, news = sections["通知公告"], sections[DYNAMIC]
    assert notices["class"] == "notice" and 34 <= notices["age_days"] < 150, notices
    assert news["class"] == "dynamic" and 0.9 <= news["age_days"] < 10, news
    assert not [s for s in site["sections"] if s["stale"]], site["sections"]
    # One blank category, counted (the alert is at 4, the veto at 5); WordPress's default one is exempt (inventory).
    assert sections["未分类"]["class"] == "exempt" and not sections["未分类"]["blank"], sections["未分类"]
    assert [s["slug"] for s in site["sections"] if s["blank"]] == [BLANK_SEEDED], site["sections"]
    assert found["sections_not_updated"]["status"] == "pass" and blank_count(found["sections_not_updated"]) == 1
    # The page's two broken links, with the page: the internal one answered 404, the external one's name never
    # resolves (known without a request); nothing else is broken.
    broken = found["broken_links"]
    assert (broken["status"], broken["veto"]) == ("fail", False), broken  # points, never a veto
    page = rf" on https://{re.escape(DOMAIN)}/\?page_id=\d+$"
    internal, external = f"https://{DOMAIN}{SEED_LINKS[0]}", SEED_LINKS[1]
    [dead, missing] = sorted(broken["evidence"], key=lambda line: not line.startswith(external))
    assert re.match(re.escape(f"{internal} (404)") + page, missing), broken
    assert re.match(re.escape(f"{external} (the name never resolves: reserved, RFC 6761)") + page, dead), broken
    # The scheduled post: dated ahead, listed, not falsified.
    scheduled = found["scheduled_posts"]
    assert (scheduled["status"], found["future_dates"]["status"]) == ("pass", "pass"), found
    [line] = scheduled["evidence"]
    ahead = re.search(rf"^https://\S+: post '{SCHEDULED['zh']}' scheduled for .* UTC, in ([\d.]+) days$", line)
    assert ahead and 0 < float(ahead.group(1)) <= SCHEDULED["ahead_days"], line
    # Nothing else: no content veto item failed, no error page, no sensitive word or personal data.
    failed = {k for k, i in found.items() if i["status"] == "fail"} - {"site_unreachable"}
    assert failed == {"broken_links"}, found
    assert found["site_not_updated"]["status"] == "pass", found["site_not_updated"]
    assert not found["error_pages"]["evidence"] and not found["personal_data"]["evidence"], found


def alerts(name: str) -> list[dict[str, Any]]:
    """The site's alerts of that name in mon1's Prometheus (pending or firing)."""
    found: list[dict[str, Any]] = [a for a in api("/api/v1/alerts")["alerts"] if a["labels"].get("alertname") == name]
    return [a for a in found if a["labels"].get("site") == SITE["name"]]


def wait_until(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition`` held (scrape 15 s + rule evaluation 15 s); fails after ``seconds``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds:g} s"
        time.sleep(3)
    return time.monotonic() - started


def blank_count(item: dict[str, Any]) -> int:
    match = re.search(r"blank: (\d+), veto at 5", item["margin"])
    assert match, item
    return int(match.group(1))


def days(pattern: str, lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(pattern, line))]


def test_each_finding_comes_and_goes_with_its_cause_and_a_published_sensitive_word_fires_the_l1_alert(
    converged: LabConfig,
) -> None:
    wordpress("delete")  # whatever an earlier run left
    newest = wordpress("newest")["newest"]
    shift = min(0, int(time.time()) - STALE_DAYS * 86400 - 3600 - newest)  # newest item 15 days and an hour old
    shifted = 0
    try:
        assert wordpress("shift", str(shift))["shifted"] > 0
        shifted = shift
        wordpress("category")
        # 1. Stale: the site (its home page) fails and exits 1, the dynamic section is named with its margin;
        #    the empty category is a blank section.
        code, document, _ = inspect()
        found = items(document)
        stale_home, stale_sections = found["site_not_updated"], found["sections_not_updated"]
        assert (code, document["exit"], stale_home["status"]) == (1, 1, "fail"), stale_home
        assert (
            days(r"^(\d+) days since the newest item on the home page \(.*\), veto at 14$", [stale_home["margin"]])[0]
            >= STALE_DAYS
        ), stale_home
        pattern = rf"^STALE: dynamic section {DYNAMIC}: (\d+) days since the last item, veto at 14; "
        assert days(pattern, stale_sections["evidence"])[0] >= STALE_DAYS, stale_sections
        [site] = document["sites"]
        assert [s["blank"] for s in site["sections"] if s["slug"] == BLANK_SLUG] == [True], site["sections"]
        assert f"blank section portalops inspect test: 空白栏目 ({BLANK_SLUG}, static): no post; " in " ".join(
            stale_sections["evidence"]
        )
        blanks_with_category = blank_count(stale_sections)

        # 2. A new post in the dynamic section, holding a broken internal link and the test word; the category gone.
        post = wordpress("publish", DYNAMIC)["post"]
        assert wordpress("uncategory")["categories"] == 1
        _, document, _ = inspect("--metrics")
        found = items(document)
        assert found["site_not_updated"]["status"] == "pass", found["site_not_updated"]
        assert not days(pattern, found["sections_not_updated"]["evidence"]), found["sections_not_updated"]
        assert blank_count(found["sections_not_updated"]) == blanks_with_category - 1, found["sections_not_updated"]
        [site] = document["sites"]
        assert BLANK_SLUG not in [s["slug"] for s in site["sections"]]
        broken = [e for e in found["broken_links"]["evidence"] if e.startswith(f"https://{DOMAIN}{MISSING} (404) on ")]
        assert [e for e in broken if e.endswith(f"?p={post}")], found["broken_links"]
        sensitive = found["sensitive_content"]
        assert sensitive["status"] == "fail", sensitive
        assert [e for e in sensitive["evidence"] if e.endswith(f"p={post}: {WORD}")], sensitive
        # The L1 alert, from the metrics the inspection wrote on mon1 (node_exporter's textfile collector).
        wait_until(lambda: any(a["state"] == "firing" for a in alerts(ALERT)), 120)
        [alert] = alerts(ALERT)
        assert (alert["labels"]["level"], alert["labels"]["runbook"]) == ("L1", "l1_sensitive_content"), alert
        blank_metric = api("/api/v1/query", query=f'portalops_inspect_blank_sections{{site="{SITE["name"]}"}}')
        assert [float(r["value"][1]) for r in blank_metric["result"]] == [blank_count(found["sections_not_updated"])]
    finally:
        wordpress("delete")
        wordpress("shift", str(-shifted))
        # 3. Everything as it was: the post's findings gone, the metrics on mon1 rewritten with them.
        _, document, _ = inspect("--metrics")
    found = items(document)
    assert found["sensitive_content"]["status"] == "pass", found["sensitive_content"]
    assert not [e for e in found["broken_links"]["evidence"] if MISSING in e], found["broken_links"]
    wait_until(lambda: not alerts(ALERT), 120)
    assert wordpress("newest")["newest"] == newest
    # The seeded lab's metrics, now in Prometheus, are below every alert line: not even pending (those the
    # moved dates raised clear at their groups' next evaluation).
    wait_until(lambda: not [a for name in INSPECTION_ALERTS for a in alerts(name)], 60)


def test_the_sensitive_content_runbook_unpublishes_the_post_and_keeps_it_as_evidence(converged: LabConfig) -> None:
    """About 40 s on a converged lab (40.4 s measured): the runbook (REST scans, the unpublishing over SSH, the
    cache emptied, the post asked from outside, the whole inspection of both sites) and one inspection of the portal."""
    wordpress("delete")
    post = wordpress("publish", DYNAMIC)["post"]
    try:
        status, _, body = get(converged, DOMAIN, f"/?p={post}")  # as visitors get it: web1 caches it now
        assert status == 200 and WORD in body, status
        result = portalops("runbook", "run", "l1_sensitive_content", "--yes", timeout=600)
        assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
        events = incident_journal(result)
        steps = {str(e["step"]): str(e["result"]) for e in events if e["event"] == "step_end"}
        assert (steps["find_posts"], steps["unpublish_posts"], steps["purge_edge_cache"]) == (
            "problem",
            "done",
            "done",
        ), steps
        assert steps["posts_not_served"] == steps["inspection_clean"] == "passed", steps

        # Not public any more, from outside through the edge (its cache was emptied), and not deleted: a draft.
        status, _, body = get(converged, DOMAIN, f"/?p={post}")
        assert status == 404 and WORD not in body, status
        assert wordpress("status") == {"draft": 1}

        # The evidence, in the incident's directory: the post as the public saw it, and as the database held it.
        start = next(e for e in events if e["event"] == "start")
        evidence = REPO_ROOT / "incidents" / str(start["incident"]) / "evidence"
        found = [
            entry
            for path in sorted(evidence.glob("sensitive-*.json"))
            for entry in json.loads(path.read_text())["found"]
            if entry["id"] == post
        ]
        assert found and found[0]["words"] == [WORD.casefold()], found
        assert found[0]["link"].endswith(f"?p={post}") and WORD in found[0]["content"], found[0]
        [unpublished] = [json.loads(p.read_text()) for p in evidence.glob("unpublished-*.json")]
        [record] = [r for r in unpublished["posts"] if r["id"] == post]
        assert (record["status_before"], record["status"]) == ("publish", "draft") and WORD in record["content"]
        assert oct(evidence.stat().st_mode & 0o777) == "0o700"

        # The inspection is clean again.
        _, document, _ = inspect()
        assert items(document)["sensitive_content"]["status"] == "pass", items(document)["sensitive_content"]
    finally:
        wordpress("delete")
