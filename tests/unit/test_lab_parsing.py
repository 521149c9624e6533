from __future__ import annotations

from portalops.lab.hosts import Health, parse_failed_units
from portalops.lab.lab import HostReport, format_status
from portalops.lab.podman import parse_ps

PS_JSON = """[{"Id": "abc", "Names": ["portalops-web1"], "State": "running",
  "Labels": {"portalops.lab": "portalops", "portalops.spec": "1234"}},
 {"Id": "def", "Names": ["portalops-db1"], "State": "exited", "Labels": null}]"""


def test_parse_ps() -> None:
    web, db = parse_ps(PS_JSON)
    assert (web.name, web.id, web.state, web.labels["portalops.spec"]) == ("portalops-web1", "abc", "running", "1234")
    assert (db.state, db.labels) == ("exited", {})


def test_parse_ps_empty() -> None:
    assert parse_ps("") == []
    assert parse_ps("null") == []


def test_failed_units_are_named() -> None:
    text = "nginx.service loaded failed failed A high performance web server\nfoo.mount loaded failed failed Foo\n"
    assert parse_failed_units(text) == ("nginx.service", "foo.mount")
    assert Health("degraded", ("nginx.service",)).describe() == "degraded (failed: nginx.service)"
    assert Health("degraded").good and Health("running").good
    assert not Health("starting").good


def test_status_table_lines_up() -> None:
    text = format_status(
        [
            HostReport("web1", "10.89.60.11", "running", "running"),
            HostReport("backup1", "10.89.60.14", "absent", "-"),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["HOST", "ADDRESS", "CONTAINER", "SYSTEMD"]
    assert lines[2].split() == ["backup1", "10.89.60.14", "absent", "-"]
    assert len({line.index("10.89") for line in lines[1:]}) == 1
    assert HostReport("a", "b", "running", "degraded (failed: x)").good
    assert not HostReport("a", "b", "absent", "-").good
