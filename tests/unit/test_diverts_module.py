"""plugins/modules/portalops_diverts.py: many local dpkg diversions in one call.

Its decision on dpkg-divert's answers, and the module through ansible-playbook on this machine with
dpkg-divert working in a directory of its own (``root``): a first run diverts and gives back, renaming
the files; a second run and check mode change nothing; check mode reports a change without making it;
a path diverted by a package or elsewhere is refused, naming it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.hostscripts import load
from tests.unit.localplay import play

module = load("portalops_diverts_under_test", "plugins/modules/portalops_diverts.py")

NGINX = {"path": "/etc/logrotate.d/nginx", "divert": "/etc/logrotate.d/nginx.disabled", "state": "present"}
MARIADB = {"path": "/etc/logrotate.d/mariadb", "divert": None, "state": "absent"}


@pytest.mark.parametrize(
    ("wanted", "holder", "truename", "action"),
    [
        (NGINX, "", "/etc/logrotate.d/nginx", "add"),
        (NGINX, "LOCAL", "/etc/logrotate.d/nginx.disabled", None),
        (MARIADB, "LOCAL", "/etc/logrotate.d/mariadb.disabled", "remove"),
        (MARIADB, "", "/etc/logrotate.d/mariadb", None),
    ],
)
def test_dpkg_diverts_answers_decide_the_action(
    wanted: dict[str, Any], holder: str, truename: str, action: str | None
) -> None:
    assert module.action_for(wanted, holder, truename) == action


def test_a_diversion_that_is_not_ours_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="nginx is diverted by the package dash"):
        module.action_for(NGINX, "dash", "/etc/logrotate.d/nginx.distrib")
    with pytest.raises(ValueError, match="mariadb is diverted by the package dash"):
        module.action_for(MARIADB, "dash", "/etc/logrotate.d/mariadb.distrib")
    with pytest.raises(ValueError, match=r"diverted locally to /etc/logrotate\.d/nginx\.old, not to .*nginx\.disabled"):
        module.action_for(NGINX, "LOCAL", "/etc/logrotate.d/nginx.old")


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: diverts
      portalops_diverts:
        root: "{root}"
        diverts:
          - {{path: /etc/logrotate.d/nginx, divert: /etc/logrotate.d/nginx.disabled}}
          - {{path: /etc/logrotate.d/mariadb, state: absent}}
          - {{path: /etc/logrotate.d/rsyslog, state: absent}}
"""


def dpkg_divert(root: Path, *argv: str) -> str:
    return subprocess.run(["dpkg-divert", f"--root={root}", *argv], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A dpkg root: nginx's and mariadb's packaged files, mariadb's already diverted by an earlier run."""
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc/logrotate.d").mkdir(parents=True)
    (root / "etc/logrotate.d/nginx").write_text("nginx's\n")
    (root / "etc/logrotate.d/mariadb").write_text("mariadb's\n")
    divert = (
        "--local",
        "--rename",
        "--divert",
        "/etc/logrotate.d/mariadb.disabled",
        "--add",
        "/etc/logrotate.d/mariadb",
    )
    dpkg_divert(root, *divert)
    (tmp_path / "site.yml").write_text(PLAYBOOK.format(root=root))
    return root


def test_diverts_and_gives_back_once_and_check_mode_only_reports(root: Path) -> None:
    work = root.parent
    checked = play(work, "--check")
    wanted = ["/etc/logrotate.d/nginx", "/etc/logrotate.d/mariadb"]
    assert checked["diverts"]["changed_paths"] == wanted, checked["diverts"]
    assert sorted(path.name for path in (root / "etc/logrotate.d").iterdir()) == ["mariadb.disabled", "nginx"]
    first = play(work)
    assert [(entry["path"], entry["action"]) for entry in first["diverts"]["diverts"]] == [
        ("/etc/logrotate.d/nginx", "add"),
        ("/etc/logrotate.d/mariadb", "remove"),
        ("/etc/logrotate.d/rsyslog", None),
    ]
    assert sorted(path.name for path in (root / "etc/logrotate.d").iterdir()) == ["mariadb", "nginx.disabled"]
    assert dpkg_divert(root, "--listpackage", "/etc/logrotate.d/nginx").strip() == "LOCAL"
    assert dpkg_divert(root, "--listpackage", "/etc/logrotate.d/mariadb").strip() == ""
    for options in ((), ("--check",)):
        again = play(work, *options)
        assert again["diverts"]["changed"] is False, again["diverts"]


def test_a_path_diverted_elsewhere_fails_the_task_and_is_left_as_it_is(root: Path) -> None:
    dpkg_divert(
        root, "--local", "--rename", "--divert", "/etc/logrotate.d/nginx.old", "--add", "/etc/logrotate.d/nginx"
    )
    failed = play(root.parent)
    assert failed["diverts"].get("failed") is True
    assert "nginx is diverted locally to /etc/logrotate.d/nginx.old" in failed["diverts"]["msg"]
    assert dpkg_divert(root, "--truename", "/etc/logrotate.d/nginx").strip() == "/etc/logrotate.d/nginx.old"
    # Nothing after the refused path was touched: mariadb's diversion is still there.
    assert dpkg_divert(root, "--listpackage", "/etc/logrotate.d/mariadb").strip() == "LOCAL"
