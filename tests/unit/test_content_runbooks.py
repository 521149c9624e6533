"""The content runbooks (issue 16 item 3): l1_sensitive_content and l2_content_stale, their logic on recorded
REST answers, WordPress script outputs and inspection results, their evidence and notices, and whole
incidents against a fake lab answering the plan's own commands. No hosts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from portalops import faultdrill, wpphp
from portalops.errors import BadInput, CommandFailed
from portalops.inspect import content, freshness, sensitive, veto
from portalops.inspect.edge import Edge
from portalops.inspect.site import SiteReport
from portalops.inspect.words import WordMatcher
from portalops.inventory import REPO_ROOT, Inventory
from portalops.runbook.engine import Options
from portalops.runbook.hosts import CommandResult
from portalops.runbook.model import StepKind
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.registry import get
from tests.unit.test_runbooks_more import INVENTORY, Lab, record, results

DATA = Path(__file__).parent / "data"
WORD = "portalops-sensitive-test-词"
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
SENSITIVE = get("l1_sensitive_content")
STALE = get("l2_content_stale")
# The fake lab's inventory with a monitoring host: the hosts l2_content_stale holds (it writes their metrics).
WITH_MONITORING = Inventory(
    INVENTORY.source, {**INVENTORY.hostvars, "mon1": {}}, {**INVENTORY.groups, "monitoring": ["mon1"]}
)


def rest(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((DATA / "inspect" / name).read_text())
    return items


# --------------------------------------------------------------------------- l1: finding the posts


def test_the_posts_holding_a_word_are_found_with_what_the_public_saw() -> None:
    found = sensitive.matches("portal", "portal.lab.test", rest("posts.json") + rest("pages.json"), WordMatcher([WORD]))
    assert [(f.site, f.id, f.link, f.words) for f in found] == [
        ("portal", 16, "https://portal.lab.test/?p=16", (WORD,))
    ]
    [post] = found
    # Matched case-insensitively; the content kept as the public saw it.
    assert post.title == "County Signs an Agreement" and "portalops-SENSITIVE-test-词" in post.content
    assert post.date_gmt == "2026-11-01T12:00:00"
    assert post.line() == f"portal: post 16 https://portal.lab.test/?p=16: {WORD}"
    assert not sensitive.matches("portal", "portal.lab.test", rest("posts.json"), WordMatcher(["no-such-word"]))


def test_evidence_is_kept_root_only_with_its_checksum_and_never_overwritten(tmp_path: Path) -> None:
    found = sensitive.matches("portal", "portal.lab.test", rest("posts.json"), WordMatcher([WORD]))
    directory = tmp_path / "incidents" / "X" / "evidence"
    first = sensitive.keep(directory, sensitive.FOUND_PREFIX, sensitive.found_document(found, NOW, 1), NOW)
    second = sensitive.keep(directory, sensitive.FOUND_PREFIX, sensitive.found_document(found, NOW, 1), NOW)
    assert (first.name, second.name) == ("sensitive-20261203T120000Z.json", "sensitive-20261203T120000Z-2.json")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()} == {0o600}
    sums = (directory / "SHA256SUMS").read_text().splitlines()
    assert sums == [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in (first, second)]
    kept = json.loads(first.read_text())["found"]
    assert [(e["id"], e["link"], e["words"]) for e in kept] == [(16, "https://portal.lab.test/?p=16", [WORD])]
    assert "portalops-SENSITIVE-test-词" in kept[0]["content"]
    assert sensitive.kept_findings(directory) == found  # each post once


def test_the_evidence_directory_is_the_running_incidents(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PORTALOPS_INCIDENTS_DIR", str(tmp_path))
    monkeypatch.delenv("PORTALOPS_INCIDENT", raising=False)
    assert sensitive.incident_evidence() is None
    with pytest.raises(BadInput, match="keeps its evidence in an incident"):
        content.unpublish("inventory/lab", "", "", False, NOW)  # refused before the inventory is read
    monkeypatch.setenv("PORTALOPS_INCIDENT", "20261203T120000Z-l1_sensitive_content")
    assert sensitive.incident_evidence() == tmp_path / "20261203T120000Z-l1_sensitive_content" / "evidence"
    assert sensitive.incident_evidence("/elsewhere") == Path("/elsewhere")
    monkeypatch.setenv("PORTALOPS_INCIDENT", "../escape")
    with pytest.raises(BadInput):
        sensitive.incident_evidence()


# --------------------------------------------------------------------------- l1: unpublishing


class RecordedHost:
    """A CMS host answering the unpublish script with a recorded output."""

    name = "cms1"

    def __init__(self, rc: int, out: str) -> None:
        self.rc, self.out = rc, out
        self.commands: list[str] = []

    def run(self, command: str, timeout: float) -> CommandResult:
        self.commands.append(command)
        return CommandResult(self.rc, self.out, "" if self.rc == 0 else "PHP Fatal error: no database", 0.2)

    def stop(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def test_unpublishing_sets_each_post_to_draft_as_the_sites_user_and_keeps_what_the_database_held() -> None:
    found = sensitive.matches("portal", "portal.lab.test", rest("posts.json"), WordMatcher([WORD]))
    gone = sensitive.Finding(
        "portal", "portal.lab.test", 99, "post", "https://portal.lab.test/?p=99", "x", (WORD,), "", ""
    )
    host = RecordedHost(0, "PHP Notice: noise first\n" + (DATA / "content" / "unpublish_portal.out").read_text())
    records = sensitive.unpublish(host, [*found, gone])
    [command] = host.commands  # one script per site, every post of it at once
    assert command.startswith("cd /tmp && runuser -u wp-portal -- /usr/bin/php8.2 -- portal.lab.test 16 99 <<'PHP'\n")
    assert sensitive.UNPUBLISH_PHP in command and command.endswith("PHP")
    assert "wp_update_post" not in sensitive.UNPUBLISH_PHP  # the text kept as evidence is never filtered
    assert records[0] | {"content": ""} == {
        "site": "portal",
        "domain": "portal.lab.test",
        "id": 16,
        "found": True,
        "type": "post",
        "title": "County Signs an Agreement",
        "status_before": "publish",
        "status": "draft",
        "modified_gmt": "2026-12-02 01:00:00",
        "content": "",
    }
    assert WORD in records[0]["content"]  # the raw text, as the database held it
    done, failed = sensitive.unpublished_lines(records)
    assert done == [
        "portal: post 16 'County Signs an Agreement': publish -> draft",
        "portal: post 99: no longer exists",
    ]
    assert failed == []
    assert sensitive.unpublished_lines([{**records[0], "status": "publish"}])[1] == ["portal: post 16: still published"]


def test_a_script_that_fails_or_says_nothing_is_a_failure_naming_the_posts() -> None:
    found = sensitive.matches("portal", "portal.lab.test", rest("posts.json"), WordMatcher([WORD]))
    with pytest.raises(CommandFailed, match="cms1: unpublishing portal posts 16: PHP Fatal error"):
        sensitive.unpublish(RecordedHost(2, ""), found)
    with pytest.raises(CommandFailed, match="no JSON answer"):
        sensitive.unpublish(RecordedHost(0, ""), found)


# --------------------------------------------------------------------------- l1: verified from outside


class Portal(BaseHTTPRequestHandler):
    """The edge: each path answers visitors (the cache) and the CMS (with the bypass) as set."""

    pages: ClassVar[dict[tuple[str, bool], tuple[int, str]]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        fresh = "preview=true" in query
        key = path + "?" + "&".join(q for q in query.split("&") if q and not q.startswith(("preview", "portalops")))
        status, body = self.pages.get((key, fresh), (404, "<p>页面不存在</p>"))
        data = f"<html><body>{body}</body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_post_still_served_from_the_cache_or_the_cms_is_named(portal: str) -> None:
    post = sensitive.Finding(
        "portal", "portal.lab.test", 16, "post", "https://portal.lab.test/?p=16", "t", (WORD,), "", ""
    )
    edge = Edge(portal, "portal.lab.test")
    matcher = WordMatcher(post.words)
    Portal.pages = {}
    assert sensitive.served(edge, post, matcher) == ([], [])  # 404 both ways: gone
    Portal.pages = {("/?p=16", False): (200, f"<p>{WORD}</p>")}  # the edge cache still holds it
    assert sensitive.served(edge, post, matcher) == (
        [f"https://portal.lab.test/?p=16 as visitors get it: HTTP 200 still shows {WORD}"],
        [],
    )
    Portal.pages = {("/?p=16", False): (200, "<p>corrected</p>"), ("/?p=16", True): (200, "<p>corrected</p>")}
    assert sensitive.served(edge, post, matcher) == ([], [])  # republished without the word: fine
    edge.close()
    silent = Edge("http://127.0.0.1:9", "portal.lab.test", timeout=2)  # nothing listens
    still, quiet = sensitive.served(silent, post, matcher)
    assert still == [] and len(quiet) == 2 and "no answer" in quiet[0]


# --------------------------------------------------------------------------- l2: the early warnings


def report(
    ages: dict[str, float | None], blank: int = 0, failed: tuple[str, ...] = (), unknown: str = ""
) -> SiteReport:
    sections = [
        {"name": name, "slug": name, "class": veto.DYNAMIC, "posts": 3, "age_days": age, "blank": False, "link": "L"}
        for name, age in ages.items()
    ]
    sections += [
        {
            "name": f"空{i}",
            "slug": f"b{i}",
            "class": veto.STATIC,
            "posts": 0,
            "age_days": None,
            "blank": True,
            "link": "",
        }
        for i in range(blank)
    ]
    items = [
        veto.Item(i, i, i.replace("_", " "), True, veto.FAIL, "1 found, veto at 1", [f"{i} evidence"]) for i in failed
    ]
    if unknown:
        items.append(veto.Item(unknown, unknown, unknown, True, veto.UNKNOWN, "the REST API did not answer"))
    return SiteReport("portal", "portal.lab.test", "https://portal.lab.test/", veto.PASS, items, sections)


def test_dynamic_sections_warn_at_10_days_and_are_stale_at_13() -> None:
    found, unknown = freshness.warnings(report({"政务动态": 9.9, "要闻": 10.0, "Government News": 13.2}))
    assert found == [
        "portal: at risk: dynamic section 要闻 (要闻): 10 days since its newest item (warning at 10, alert at 13,"
        " veto at 14); L",
        "portal: STALE: dynamic section Government News (Government News): 13.2 days since its newest item (warning at"
        " 10, alert at 13, veto at 14); L",
    ]
    assert unknown == []
    assert freshness.warnings(report({"政务动态": None, "要闻": 2.0})) == ([], [])  # no post yet: the blank count's


def test_blank_sections_warn_from_four_and_failed_content_veto_items_are_named() -> None:
    assert freshness.warnings(report({}, blank=3)) == ([], [])
    found, _ = freshness.warnings(report({}, blank=4))
    assert found == [
        "portal: 4 blank sections and pages (alert at 4, veto at 5): 空0 (b0), 空1 (b1), 空2 (b2), 空3 (b3)"
    ]
    found, unknown = freshness.warnings(
        report(
            {},
            failed=("personal_data", "sensitive_content", "broken_links", "site_unreachable"),
            unknown="future_dates",
        )
    )
    # Sensitive words and the availability have runbooks of their own; broken links cost points only.
    assert found == [
        "portal: veto item FAILED: personal_data / personal data: 1 found, veto at 1: personal_data evidence"
    ]
    assert unknown == ["portal: future_dates: cannot tell: the REST API did not answer"]


def contacts() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/contacts.yml").read_text())[
        "portalops_contacts"
    ]
    return data


def test_the_content_editors_are_the_contacts_naming_the_role() -> None:
    editors = freshness.editors(contacts())
    assert [e["email"] for e in editors] == ["editors@portal.lab.test"]
    assert freshness.who(editors[0]).startswith("内容编辑 / Content editor (publishes on the portal): ")
    assert freshness.editors(None) == [] and freshness.editors("x") == []


def test_the_editors_are_emailed_the_sections_through_the_first_mail_channel(smtp: Any) -> None:
    notify = {
        "enabled": True,
        "channels": [
            {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/never"},
            {
                "name": "mail",
                "type": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.server_address[1],
                "from": "portalops@portal.lab.test",
                "to": ["oncall@portal.lab.test"],
                "levels": [1],  # the duty's filter, not the editors'
            },
        ],
    }
    lines, _ = freshness.warnings(report({"政务动态": 13.2}))
    deliveries, why = freshness.tell(notify, freshness.editors(contacts()), freshness.notice(lines, "INC-1"))
    assert (why, [(d.channel, d.ok) for d in deliveries]) == ("", [("mail (content editors)", True)])
    [raw] = smtp.received
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"] == "editors@portal.lab.test"
    body = message.get_content()
    assert "STALE: dynamic section 政务动态" in body and "13.2 days" in body and "INC-1" in body
    # Off, or no mail channel, or nobody to write to: nothing sent, and why.
    assert freshness.tell({"enabled": False}, freshness.editors(contacts()), freshness.notice(lines))[1].startswith(
        "notifications are off"
    )
    assert freshness.tell(notify, [], freshness.notice(lines)) == (
        [],
        "no content editor with an e-mail address in portalops_contacts",
    )


def test_telling_the_editors_without_a_way_to_reach_them_fails_and_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    stale = report({"政务动态": 13.2})
    monkeypatch.setattr(content, "_inspect", lambda *_args: [stale])
    vars_ = {"web1": {"contacts": contacts(), "notify": {"enabled": False}}}
    monkeypatch.setattr(content, "resolve_vars", lambda *_args, **_kw: vars_)
    outcome = content.stale("inventory/lab", "", Path("/nonexistent"), False, True, NOW)
    assert outcome.code == 1
    assert "content editor: 内容编辑 / Content editor (publishes on the portal): 信息发布" in outcome.lines[1]
    assert outcome.lines[-1].startswith("the editors were not told (notifications are off")
    assert content.stale("inventory/lab", "", Path("/nonexistent"), False, False, NOW).code == 1
    monkeypatch.setattr(content, "_inspect", lambda *_args: [report({"政务动态": 2.0})])
    assert content.stale("inventory/lab", "", Path("/nonexistent"), False, True, NOW).code == 0


# --------------------------------------------------------------------------- the runbooks as plans and incidents


def test_unpublishing_is_the_only_destructive_step_and_asks_first(tmp_path: Path) -> None:
    assert [s.id for s in SENSITIVE.steps if s.destructive] == ["unpublish_posts"]
    assert not [s for s in STALE.steps if s.destructive]  # may run unattended
    lab = Lab(SENSITIVE)
    lab.on("find_posts", "run", lambda _h: (1, f"portal: post 16 https://portal.lab.test/?p=16: {WORD}"))
    lab.on("unpublish_posts", "check", lambda _h: (1, "1 published posts or pages hold a word"))
    result = lab.go(tmp_path, Options(unattended=True))
    assert result.exit is RunbookExit.ABORTED
    assert lab.ran("unpublish_posts") == [] and lab.ran("find_posts") == ["controller"]
    assert results(tmp_path, result.incident)["unpublish_posts"] == "declined"


def test_a_confirmed_run_unpublishes_purges_and_recovers_once_verified_from_outside(tmp_path: Path) -> None:
    lab = Lab(SENSITIVE)
    published = {"portal": True}
    lab.on("unpublish_posts", "check", lambda _h: (1, "found") if published["portal"] else (0, "none"))

    def unpublish(_host: str) -> tuple[int, str]:
        published["portal"] = False
        return 0, "portal: post 16 'x': publish -> draft"

    lab.on("unpublish_posts", "run", unpublish)
    lab.on("purge_edge_cache", "check", lambda _h: (1, "3 cached responses"))
    result = lab.go(tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.RECOVERED
    assert lab.ran("unpublish_posts") == ["controller"] and lab.ran("purge_edge_cache") == ["web1"]
    steps = results(tmp_path, result.incident)
    assert steps["posts_not_served"] == steps["inspection_clean"] == "passed"
    assert steps["security_officer"] == "skipped"
    assert "review_with_editors_and_security_officer" in record(tmp_path, result.incident)


def test_a_post_still_served_ends_escalated_to_the_security_officer(tmp_path: Path) -> None:
    lab = Lab(SENSITIVE)
    lab.on("unpublish_posts", "check", lambda _h: (1, "found"))
    lab.on("posts_not_served", "run", lambda _h: (1, "https://portal.lab.test/?p=16 as visitors get it: HTTP 200"))
    result = lab.go(tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.NOT_RECOVERED
    assert results(tmp_path, result.incident)["security_officer"] == "escalated"


def test_stale_content_tells_the_editors_and_ends_escalated_until_they_publish(tmp_path: Path) -> None:
    lab = Lab(STALE, inventory=WITH_MONITORING)
    lab.on("inspection_warnings", "run", lambda _h: (1, "portal: STALE: dynamic section 政务动态: 13.2 days"))
    lab.on("no_inspection_warning", "run", lambda _h: (1, "1 warnings of the inspection"))
    result = lab.go(tmp_path, Options(unattended=True))
    assert result.exit is RunbookExit.NOT_RECOVERED
    assert lab.ran("tell_content_editors") == ["controller"]
    assert results(tmp_path, result.incident)["content_owner"] == "escalated"
    published = Lab(STALE, inventory=WITH_MONITORING)  # the editors published meanwhile: recovered
    assert published.go(tmp_path, Options(unattended=True)).exit is RunbookExit.RECOVERED


def test_the_steps_run_the_content_commands_the_cli_knows() -> None:
    plan = {p.step.id: p for p in Lab(SENSITIVE).plan}
    assert plan["find_posts"].run == "python -m portalops.cli content sensitive -i inventory/test --keep"
    assert plan["unpublish_posts"].run == "python -m portalops.cli content unpublish -i inventory/test"
    assert plan["inspection_clean"].run.endswith("content sensitive -i inventory/test --inspect --metrics")
    verifies = [s.id for s in STALE.steps if s.kind is StepKind.VERIFY]
    assert verifies == ["no_inspection_warning"] and STALE.step("no_inspection_warning").run.endswith("--metrics")
    from portalops.cli import build_parser

    for planned in [*Lab(SENSITIVE).plan, *Lab(STALE, inventory=WITH_MONITORING).plan]:
        for text in (planned.run, planned.check):
            for command in text.split("; "):
                if " portalops.cli content " in command:
                    build_parser().parse_args(command.split(" portalops.cli ", 1)[1].split())


# --------------------------------------------------------------------------- alerts and drills


def test_the_early_warnings_are_declared_by_the_stale_runbook_at_their_levels() -> None:
    alerts = {a.name: (int(STALE.alert_level(a)), a.expr) for a in STALE.alerts}
    assert alerts == {
        "PortalSectionAging": (3, 'portalops_inspect_section_age_days{class="dynamic"} >= 10 < 13'),
        "PortalSectionStale": (2, 'portalops_inspect_section_age_days{class="dynamic"} >= 13'),
        "PortalBlankSections": (2, "portalops_inspect_blank_sections >= 4"),
        "PortalInspectionVetoFailed": (
            2,
            'portalops_inspect_item_status{item=~"site_not_updated|sections_not_updated|personal_data|future_dates'
            '|interaction"} == 2',
        ),
    }
    assert [a.name for a in SENSITIVE.alerts] == ["PortalSensitiveContent"]
    assert "PortalSensitiveContent" not in [a.name for a in get("l1_defacement").alerts]


def test_the_content_drills_run_the_sites_wordpress_as_its_user() -> None:
    values = {"site": "portal", "domain": "portal.lab.test", "word": WORD}

    def filled(command: str) -> str:
        for key, value in values.items():
            command = command.replace("{" + key + "}", value)
        return command

    publish = filled(faultdrill.fault("sensitive_word_published").inject)
    assert f"runuser -u wp-portal -- {wpphp.PHP} -- 'portal.lab.test' '{WORD}' <<'PHP'\n" in publish
    kept = filled(faultdrill.fault("sensitive_word_published").intact)
    assert f"'portal.lab.test' kept '{WORD}' <<'PHP'\n" in kept
    stale = faultdrill.fault("content_stale")
    assert stale.expect is RunbookExit.NOT_RECOVERED and faultdrill.default_fault("l2_content_stale") is stale
    assert filled(stale.undo).count("<<'PHP' && rm -f /run/portalops-drill-content-stale.json\n") == 1
