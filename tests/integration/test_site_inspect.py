"""`portalops inspect` on the real portal: a falsified (future) date, a leaked ID number and a sensitive word
are found with their posts' URLs, and are gone once the posts are.

Two posts are published on the portal site (cms1, through WordPress' own functions as the site's user,
the way the role seeds it: Debian has no WP-CLI): one whose date is set three weeks ahead in the
database (WordPress itself would have scheduled it, so a falsified date is exactly this), and one whose
text holds the GB 11643 example ID number (checksum valid, nobody's) and the lab inventory's made-up
test word. Both carry a post meta key; every post with it is deleted afterwards, whatever happened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.integration.helpers import on, portalops
from tests.integration.test_site import SITES

SITE = SITES[0]
DOMAIN = SITE["domains"][0]
TEST_ID = "11010519491231002X"  # the standard's own example number
MASKED_ID = "110105********002X"
WORD = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/inspect.yml").read_text())[
    "portalops_sensitive_words"
][0]
META = "_portalops_inspect_test"
# Run as the site's user with the command and the domain as arguments; prints JSON.
PHP = (
    r"""<?php
[, $command, $host] = $argv;
$_SERVER['HTTP_HOST'] = $_SERVER['SERVER_NAME'] = $host;
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['REMOTE_ADDR'] = '127.0.0.1';
define('WP_INSTALLING', true);
require '/usr/share/wordpress/wp-load.php';
global $wpdb;
$ids = get_posts(['post_type' => 'post', 'post_status' => 'any', 'meta_key' => '@META@',
                  'numberposts' => -1, 'fields' => 'ids']);
if ($command === 'delete') {
    foreach ($ids as $id) { wp_delete_post($id, true); }
    echo json_encode(['deleted' => count($ids)]), "\n";
    exit(0);
}
$admins = get_users(['role' => 'administrator', 'number' => 1, 'fields' => 'ID']);
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
)


def wordpress(command: str) -> dict[str, int]:
    """Run :data:`PHP` on cms1 as the site's user; its JSON."""
    user = f"wp-{SITE['name']}"
    result = on("cms1", f"cd /tmp && runuser -u {user} -- /usr/bin/php8.2 -- {command} {DOMAIN} <<'PHP'\n{PHP}PHP")
    found: dict[str, int] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def inspect() -> tuple[int, dict[str, Any], str]:
    result = portalops("inspect", "--site", SITE["name"], "--json", timeout=600)
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

    assert wordpress("delete") == {"deleted": 2}
    _, document, _ = inspect()
    found = items(document)
    assert [found[k]["status"] for k in ("future_dates", "personal_data", "sensitive_content")] == ["pass"] * 3, found
