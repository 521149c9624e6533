"""Changes: the store (written once, schema-checked, numbered, malformed records kept) and the command line.

Records are written the way their writers write them (``changes.record_playbook`` as the callback
does, ``changes.record`` as the engine does) into a records directory under ``tmp_path``; the
command line is ``portalops.cli.main``.
"""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portalops import cli
from portalops.errors import BadInput
from portalops.service import changes, records

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 Thursday in Beijing
SUMMARY = {"ok": 12, "failures": 0, "unreachable": 0, "changed": 3, "skipped": 1, "rescued": 0, "ignored": 0}


def site_run(root: Path, start: datetime = NOW, **hosts: dict[str, int]) -> changes.Change:
    return changes.record_playbook(
        root,
        "/opt/portalops/playbooks/site.yml",
        start,
        start + timedelta(seconds=95),
        hosts or {"web1": SUMMARY, "db1": SUMMARY},
        limit="web1,db1",
        tags=["nginx_portal"],
        extra_vars=["vault_db_password", "restore_drill_keep"],
        reports=["reports/patch/x.md", "reports/patch/x.md"],
        controller="ops1",
        by="张三",
    )


def portalops(root: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["change", *argv, "--incidents", str(root)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_playbook_run_is_a_record_an_auditor_reads(tmp_path: Path) -> None:
    change = site_run(tmp_path)
    assert change.id == "CHG-2026-001"
    assert change.record.path == tmp_path / "changes" / "CHG-2026-001.md"
    meta, body = records.split(change.record.path.read_text())
    assert meta["kind"] == "playbook" and meta["result"] == "ok" and meta["by"] == "张三"
    assert meta["title"] == "ansible-playbook playbooks/site.yml --limit web1,db1"
    assert meta["started"] == "2026-12-03T02:00:00.000Z" and meta["ended"] == "2026-12-03T02:01:35.000Z"
    assert meta["hosts"] == [
        {"host": "db1", "ok": 12, "changed": 3, "failed": 0, "unreachable": 0, "skipped": 1, "rescued": 0},
        {"host": "web1", "ok": 12, "changed": 3, "failed": 0, "unreachable": 0, "skipped": 1, "rescued": 0},
    ]
    assert meta["extra_vars"] == ["restore_drill_keep", "vault_db_password"]  # names, never values
    assert meta["reports"] == ["reports/patch/x.md"] and meta["tags"] == ["nginx_portal"]
    assert "| started | 2026-12-03 10:00 Thu (UTC+8)" in body
    assert "- web1 (ok=12 changed=3 skipped=1)" in body
    assert changes.read(change.record.path).meta == meta


def test_a_failed_or_unreachable_host_fails_the_change(tmp_path: Path) -> None:
    assert site_run(tmp_path, db1={**SUMMARY, "failures": 1}).meta["result"] == "failed"
    assert site_run(tmp_path, db1={**SUMMARY, "unreachable": 1}).meta["result"] == "failed"
    assert site_run(tmp_path, db1=SUMMARY).meta["result"] == "ok"


def test_a_restore_drill_is_a_restore_and_ids_count_per_year(tmp_path: Path) -> None:
    drill = changes.record_playbook(tmp_path, "playbooks/restore_drill.yml", NOW, NOW, {"drill1": SUMMARY})
    assert drill.meta["kind"] == "restore" and drill.id == "CHG-2026-001"
    assert site_run(tmp_path).id == "CHG-2026-002"
    both = changes.record_playbook(tmp_path, ["playbooks/site.yml", "playbooks/restore_drill.yml"], NOW, NOW, {})
    assert (
        both.meta["kind"] == "playbook"
        and both.meta["title"] == "ansible-playbook playbooks/site.yml playbooks/restore_drill.yml"
    )
    # 2026-12-31 17:00 UTC is already 2027 in Beijing: the county's year.
    assert site_run(tmp_path, datetime(2026, 12, 31, 17, 0, tzinfo=UTC)).id == "CHG-2027-001"


def test_the_playbooks_whose_runs_are_changes() -> None:
    assert changes.wanted("/x/playbooks/site.yml", changes.PLAYBOOKS)
    assert changes.wanted("playbooks/patch.yml", changes.PLAYBOOKS)
    assert not changes.wanted("playbooks/audit.yml", changes.PLAYBOOKS)
    assert not changes.wanted("playbooks/backup.yml", changes.PLAYBOOKS)  # a backup changes no service
    assert not changes.wanted("playbooks/my-site.yml", changes.PLAYBOOKS)
    assert changes.wanted("playbooks/audit.yml", ["audit.yml ", ""])
    assert changes.report_links(["PASS: RTO 40 s", "report: /r/drills/20261203T020000Z.md", 7]) == [
        "/r/drills/20261203T020000Z.md"
    ]


def test_a_record_that_would_be_invalid_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="would be invalid: hosts: web1: its counts are not numbers"):
        changes.record(tmp_path, changes.Kind.RUNBOOK, "x", NOW, NOW, changes.Result.OK, [{"host": "web1", "ok": "9"}])
    good = site_run(tmp_path / "other").meta
    assert changes.check({**good, "hosts": ["web1"]}) == ["hosts: 'web1' is not a mapping with a host name"]
    assert changes.check({**good, "id": "CHG-20261203-site"}) == ["id: 'CHG-20261203-site' is not like CHG-2026-007"]
    assert not list((tmp_path / "changes").glob("*.md"))


def test_concurrent_writers_get_distinct_ids(tmp_path: Path) -> None:
    threads = [threading.Thread(target=site_run, args=(tmp_path,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found, malformed = changes.load(tmp_path)
    assert sorted(c.id for c in found) == [f"CHG-2026-{n:03d}" for n in range(1, 9)] and not malformed


def test_list_since_and_json(tmp_path: Path) -> None:
    site_run(tmp_path, NOW - timedelta(days=3))
    site_run(tmp_path, NOW)
    code, out, err = portalops(tmp_path, "list")
    assert code == 0 and not err
    assert out.splitlines()[0].split()[:4] == ["CHANGE", "STARTED", "(UTC+8)", "KIND"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["CHG-2026-001", "CHG-2026-002"]
    assert "2026-12-03 10:00  playbook ok     张三" in out and "db1,web1" in out
    code, out, _ = portalops(tmp_path, "list", "--since", "2026-12-02", "--json")
    assert code == 0 and [c["id"] for c in json.loads(out)] == ["CHG-2026-002"]
    # A day is the county's (UTC+8): 2026-12-03 begins at 2026-12-02T16:00Z.
    code, out, _ = portalops(tmp_path, "list", "--since", "2026-12-03", "--json")
    assert [c["id"] for c in json.loads(out)] == ["CHG-2026-002"]
    code, out, _ = portalops(tmp_path, "list", "--since", "2026-12-03T02:00:01Z", "--json")
    assert json.loads(out) == []
    code, _, err = portalops(tmp_path, "list", "--since", "last week")
    assert code == 2 and "--since 'last week' is not a day like 2026-12-01" in err


def test_show(tmp_path: Path) -> None:
    change = site_run(tmp_path)
    code, out, _ = portalops(tmp_path, "show", change.id)
    assert code == 0
    assert "kind       playbook" in out and "by         张三 on ops1" in out
    assert "host       web1 (ok=12 changed=3 skipped=1)" in out and "report     reports/patch/x.md" in out
    assert "extra vars restore_drill_keep, vault_db_password" in out
    code, out, _ = portalops(tmp_path, "show", change.id, "--json")
    assert json.loads(out)["hosts"][1]["host"] == "web1"
    code, _, err = portalops(tmp_path, "show", "CHG-2026-009")
    assert code == 2 and "no change CHG-2026-009" in err
    code, _, err = portalops(tmp_path, "show", "PRB-2026-001")
    assert code == 2 and "'PRB-2026-001' is not a change id" in err


def test_a_malformed_record_is_named_with_exit_2_and_never_written_over(tmp_path: Path) -> None:
    first = site_run(tmp_path)
    text = first.record.path.read_text().replace("result: ok", "result: fine")
    first.record.path.write_text(text)
    code, out, err = portalops(tmp_path, "list")
    assert code == 2
    assert f"portalops: change {first.record.path} is malformed: result: 'fine' is none of ok, failed" in err
    code, _, err = portalops(tmp_path, "show", first.id)
    assert code == 2 and "mend it by hand" in err
    assert site_run(tmp_path).id == "CHG-2026-002"  # its number is never given again
    assert first.record.path.read_text() == text
    code, out, _ = portalops(tmp_path, "list")
    assert code == 2 and "CHG-2026-002" in out


def test_show_names_the_problems_that_link_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    change = site_run(tmp_path)
    monkeypatch.setattr(cli, "utc_now", lambda: NOW)
    out = io.StringIO()
    argv = ["problem", "open", "--title", "nginx 配置反复被改", "--by", "李四", "--incidents", str(tmp_path)]
    assert cli.main(argv, out=out, err=io.StringIO()) == 0
    problem = out.getvalue().split()[1].rstrip(":")
    link = ["problem", "link", problem, "--change", change.id, "--by", "李四", "--incidents", str(tmp_path)]
    assert cli.main(link, out=io.StringIO(), err=io.StringIO()) == 0
    code, shown, _ = portalops(tmp_path, "show", change.id)
    assert code == 0 and f"linked     problem {problem} (open)" in shown
    code, shown, _ = portalops(tmp_path, "show", change.id, "--json")
    assert json.loads(shown)["linked"] == [f"problem {problem} (open)"]
