"""The CMDB from recorded answers of playbooks/cmdb.yml: the document, its Markdown, the diff, snapshots."""

from __future__ import annotations

import copy
import io
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.cli import main
from portalops.cmdb import build, markdown, roles, run
from portalops.cmdb.diff import diff
from portalops.errors import BadInput, ExitCode
from portalops.inventory import REPO_ROOT, Inventory, parse_inventory
from tests.unit.hostscripts import load

DATA = Path(__file__).parent / "data" / "cmdb"
collector = load("cmdb_collect", "playbooks/files/cmdb_collect.py")
WHEN = datetime(2026, 12, 1, 1, 0, 9, tzinfo=UTC)


def lab_inventory() -> Inventory:
    groups = {"web": ["web1"], "cms": ["cms1"], "db": ["db1"], "backup": ["backup1"]}
    data: dict[str, Any] = {name: {"hosts": hosts} for name, hosts in groups.items()}
    data["backup_clients"] = {"children": ["web", "cms", "db"]}
    data["all"] = {"children": [*groups, "backup_clients"]}
    data["_meta"] = {
        "hostvars": {
            h: {"ansible_host": f"10.89.60.{11 + i}"}
            for i, h in enumerate(h for hosts in groups.values() for h in hosts)
        }
    }
    return parse_inventory(data, "inventory/lab")


def recorded() -> dict[str, Any]:
    return build.callback_document((DATA / "playbook-2026-12-01.json").read_text())


@pytest.fixture
def doc() -> dict[str, Any]:
    return build.build(lab_inventory(), recorded(), WHEN, roles.site_plays(run.SITE))


def test_every_inventory_host_is_in_the_document_with_its_groups_and_os(doc: dict[str, Any]) -> None:
    assert sorted(doc["hosts"]) == ["backup1", "cms1", "db1", "web1"]
    web1 = doc["hosts"]["web1"]
    assert web1["groups"] == ["backup_clients", "web"]
    assert web1["address"] == "10.89.60.11"
    assert web1["os"]["name"] == "Debian GNU/Linux 12 (bookworm)"
    assert web1["os"]["kernel"] == "6.1.0-28-amd64"
    assert web1["packages"]["nginx"] == "1.22.1-9+deb12u2"
    assert {(s["port"], s["process"]) for s in web1["listening"]} >= {(443, "nginx"), (22, "sshd")}
    assert doc["hosts"]["db1"]["certificates"][0]["not_after"] == "2029-03-07 22:41:00Z"
    assert doc["date"] == "2026-12-01"
    assert doc["groups"]["backup_clients"] == ["cms1", "db1", "web1"]


def test_a_host_that_did_not_answer_is_listed_as_unreachable_not_dropped(doc: dict[str, Any]) -> None:
    cms1 = doc["hosts"]["cms1"]
    assert cms1["reachable"] is False
    assert "unreachable" in cms1["error"] and "Connection refused" in cms1["error"]
    assert cms1["packages"] == {} and cms1["groups"] == ["backup_clients", "cms"]
    backup1 = doc["hosts"]["backup1"]  # in the play's first task, absent from the collector's
    assert backup1["reachable"] is False and "no answer" in backup1["error"]
    text = markdown.render(doc)
    assert "| cms1 | 10.89.60.12 | backup_clients, cms |" in text and "**no**: unreachable" in text


def test_sites_backups_and_contacts_come_from_the_inventory(doc: dict[str, Any]) -> None:
    assert [(s["name"], s["database"], s["database_hosts"]) for s in doc["sites"]] == [
        ("portal", "wp_portal", ["db1"]),
        ("news", "wp_news", ["db1"]),
    ]
    jobs = {(j["host"], j["name"]): j for j in doc["backup"]["jobs"]}
    assert set(jobs) == {("web1", "etc"), ("db1", "etc"), ("db1", "db-dump"), ("cms1", "cms-files")}
    assert jobs[("db1", "db-dump")]["databases"] == ["wp_portal", "wp_news"]
    assert jobs[("db1", "db-dump")]["repository"] == "sftp:restic-db1@backup1:/repo"
    assert doc["backup"]["repositories"] == [
        {"host": "backup1", "root": "/srv/restic", "copy_root": "/srv/restic-copy", "clients": ["web1", "cms1", "db1"]}
    ]
    assert doc["contacts"][0]["phone"] == "+86 000-0000-0001"


def test_the_markdown_shows_versions_ports_and_days_left_of_each_certificate(doc: dict[str, Any]) -> None:
    text = markdown.render(doc)
    assert "| nginx | 1.22.1-9+deb12u2 |" in text
    assert "tcp 0.0.0.0:443 (nginx)" in text
    assert "| /etc/nginx/tls/portal.crt | CN = portal.lab.test | 2029-03-07 22:40:05Z | 827 |" in text
    assert "| portal | portal.lab.test, www.portal.lab.test | wp_portal (user wp_portal) | db1 | cms |" in text
    assert "+86 000-0000-0001" in text


def later(doc: dict[str, Any]) -> dict[str, Any]:
    """The same lab a week on: nginx upgraded, the exporter's port closed, a certificate renewed, mon1 added."""
    new = copy.deepcopy(doc)
    new["generated"], new["date"] = "2026-12-08T01:00:00Z", "2026-12-08"
    web1 = new["hosts"]["web1"]
    web1["packages"]["nginx"] = "1.22.1-9+deb12u3"
    web1["listening"] = [s for s in web1["listening"] if s["port"] != 9113]
    web1["certificates"][1].update(not_after="2029-03-14 01:00:00Z", sha256="99:88")
    new["hosts"]["mon1"] = {**copy.deepcopy(web1), "groups": ["monitoring"]}
    new["hosts"]["cms1"] = {**copy.deepcopy(web1), "groups": ["cms"]}  # answers again
    return new


def test_the_diff_finds_a_changed_version_a_closed_port_a_renewed_certificate_and_a_new_host(
    doc: dict[str, Any],
) -> None:
    changes = diff(doc, later(doc))
    assert changes["changed"] is True
    assert changes["hosts_added"] == ["mon1"] and changes["hosts_removed"] == []
    web1 = changes["hosts"]["web1"]
    assert web1["versions_changed"] == {"nginx": ["1.22.1-9+deb12u2", "1.22.1-9+deb12u3"]}
    assert web1["ports_closed"] == ["tcp 127.0.0.1:9113 (prometheus-ngin)"]
    assert "ports_opened" not in web1
    assert web1["certificates_renewed"] == {
        "/etc/nginx/tls/portal.crt": ["2029-03-07 22:40:05Z", "2029-03-14 01:00:00Z"]
    }
    # cms1 did not answer then: nothing of it is compared (no "every port opened").
    assert changes["hosts"]["cms1"] == {"not_compared": "unreachable then, reachable now"}
    assert "db1" not in changes["hosts"]
    assert changes["unreachable"] == ["backup1"]
    text = markdown.render_diff(changes)
    assert "- Hosts added: mon1" in text
    assert "- nginx: 1.22.1-9+deb12u2 -> 1.22.1-9+deb12u3" in text
    assert "- port closed: tcp 127.0.0.1:9113 (prometheus-ngin)" in text


def test_a_host_removed_and_a_port_opened_and_no_change(doc: dict[str, Any]) -> None:
    new = copy.deepcopy(doc)
    del new["hosts"]["db1"]
    new["hosts"]["web1"]["listening"].append({"proto": "tcp6", "address": "::", "port": 8080, "process": "nginx"})
    changes = diff(doc, new)
    assert changes["hosts_removed"] == ["db1"]
    assert changes["hosts"]["web1"] == {"ports_opened": ["tcp6 [::]:8080 (nginx)"]}
    same = diff(doc, copy.deepcopy(doc))
    assert same["changed"] is False and same["hosts"] == {}
    assert same["unreachable"] == ["backup1", "cms1"]  # unreachable then and now: said, not a change
    assert "Not compared, no answer now: backup1, cms1" in markdown.render_diff(same)
    assert "No change." in markdown.render_diff(same)


def test_snapshots_are_kept_by_date_and_read_back(doc: dict[str, Any], tmp_path: Path) -> None:
    json_path, md_path = run.write_snapshot(doc, tmp_path)
    assert json_path == tmp_path / "2026-12-01.json" and md_path.read_text().startswith("# CMDB 2026-12-01")
    assert run.load_snapshot(tmp_path, "2026-12-01") == doc
    assert run.snapshot_dates(tmp_path) == ["2026-12-01"]


def test_an_unknown_diff_date_names_the_dates_there_are(doc: dict[str, Any], tmp_path: Path) -> None:
    run.write_snapshot(doc, tmp_path)
    with pytest.raises(BadInput, match=r"no CMDB snapshot of '2026-11-30'.*snapshots there are: 2026-12-01"):
        run.load_snapshot(tmp_path, "2026-11-30")
    with pytest.raises(BadInput, match="there is no snapshot yet"):
        run.load_snapshot(tmp_path / "none", "2026-12-01")


def test_cmdb_diff_of_an_unknown_date_exits_2_before_asking_any_host(doc: dict[str, Any], tmp_path: Path) -> None:
    run.write_snapshot(doc, tmp_path)
    out, err = io.StringIO(), io.StringIO()
    code = main(["cmdb", "--diff", "../etc/passwd", "--out", str(tmp_path)], out, err)
    assert code == ExitCode.BAD_INPUT
    assert "snapshots there are: 2026-12-01" in err.getvalue() and out.getvalue() == ""


def test_ansible_output_without_a_json_document_is_bad_input() -> None:
    with pytest.raises(BadInput):
        build.callback_document("ERROR! the playbook could not be found\n")


def test_each_host_has_the_roles_site_yml_gives_its_groups(doc: dict[str, Any]) -> None:
    common = ["base", "hardening", "patching"]
    assert doc["hosts"]["web1"]["roles"] == [
        *common,
        "nginx_portal",
        "exporters",
        "restic_backup",
        "central_logs",
        "logrotate",
    ]
    assert doc["hosts"]["db1"]["roles"] == [
        *common,
        "mariadb",
        "exporters",
        "restic_backup",
        "central_logs",
        "logrotate",
    ]
    assert doc["hosts"]["backup1"]["roles"] == [*common, "exporters", "backup_repository", "central_logs", "logrotate"]
    plays = [("web:!db", ["a"]), ("backup_clients:drill", ["b"]), ("cms1", ["c"])]
    assert roles.roles_of("web1", ["web"], plays) == ["a"]
    assert roles.roles_of("drill1", ["drill"], plays) == ["b"]
    assert roles.roles_of("cms1", ["cms"], plays) == ["c"]


# The host-side collector's parsers, on text recorded from Debian 12 hosts.


def test_listening_sockets_from_proc_net_tcp_and_tcp6() -> None:
    v4 = collector.parse_proc_net_tcp((DATA / "proc_net_tcp").read_text(), socket.AF_INET)
    assert v4 == [
        ("0.0.0.0", 443, "1594"),  # noqa: S104 (a recorded address, not a bind)
        ("127.0.0.1", 3306, "29091576"),
    ]  # the ESTABLISHED row is not listening
    v6 = collector.parse_proc_net_tcp((DATA / "proc_net_tcp6").read_text(), socket.AF_INET6)
    assert v6 == [("::", 443, "29675400"), ("::1", 44301, "29675401")]


def test_only_installed_packages_from_dpkg_query() -> None:
    assert collector.parse_dpkg((DATA / "dpkg_query.txt").read_text()) == {
        "nginx": "1.22.1-9+deb12u2",
        "nginx-common": "1.22.1-9+deb12u2",
        "restic": "0.14.0-1+b5",
    }


def test_certificate_fields_from_openssl() -> None:
    assert collector.parse_openssl((DATA / "openssl_x509.txt").read_text()) == {
        "subject": "CN = portal.lab.test",
        "not_after": "2029-03-07 23:12:55Z",
        "sha256": "2A:70:AD:A1:DC:A1:79:99:6A:DF:63:52:0E:9D:93:A0:4A:D3:02:F2:F6:AF:AD:8E:03:4D:82:53:3A:C2:DC:CE",
    }
    assert markdown.days_left("2029-03-07 23:12:55Z", "2026-12-01T01:00:09Z") == 827
    assert markdown.days_left("not a date", "2026-12-01T01:00:09Z") is None


def test_os_release() -> None:
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n# comment\n'
    assert collector.parse_os_release(text) == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
        "ID": "debian",
        "VERSION_ID": "12",
    }


def test_the_collector_answers_with_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Run on this machine (a Debian 12 controller): every part present, a missing directory skipped."""
    assert collector.main(["--packages", "python3*", "--cert-dir", str(tmp_path / "none")]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert set(answer) == {"hostname", "os", "packages", "listening", "certificates", "errors"}
    assert answer["certificates"] == [] and answer["os"]["kernel"]


# The playbook and the code agree.


def test_the_playbook_uses_the_roles_certificate_directories_and_the_task_names_build_reads() -> None:
    play = yaml.safe_load((REPO_ROOT / "playbooks" / "cmdb.yml").read_text())[0]
    dirs = "\n".join(play["vars"]["cmdb_cert_dirs"])
    for role, variable in (
        ("nginx_portal", "nginx_portal_tls_dir"),
        ("wordpress", "wordpress_tls_dir"),
        ("mariadb", "mariadb_tls_dir"),
    ):
        default = yaml.safe_load((REPO_ROOT / "roles" / role / "defaults" / "main.yml").read_text())[variable]
        assert f"{variable} | default('{default}')" in dirs
    assert [t["name"] for t in play["tasks"]] == [build.VIEW_TASK, build.COLLECT_TASK]
    restic = yaml.safe_load((REPO_ROOT / "roles" / "restic_backup" / "defaults" / "main.yml").read_text())
    view = play["tasks"][0]["ansible.builtin.debug"]["msg"]["backup_repository"]
    assert f"restic_backup_repository_path | default('{restic['restic_backup_repository_path']}')" in view
