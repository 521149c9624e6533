"""plugins/action/portalops_packages.py: the roles' package installs ask dpkg before the apt module.

Its judgement (which requests dpkg's status can answer, what is still to do) on dpkg-query's output,
then the action itself through ansible-playbook on this machine (a Debian system: dpkg-query answers),
in check mode. The interpreter the test's tasks run with has no python3-apt, so any call of the apt
module fails: an answer that is ``ok`` proves the action did not call it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portalops.ansible_json import JSON_CALLBACK_ENV, callback_document, host_results
from portalops.vault import REPO_ROOT
from tests.unit.hostscripts import load

action = load("portalops_packages_under_test", "plugins/action/portalops_packages.py")

MISSING = "portalops-no-such-package"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ({"name": ["nginx", "php-fpm"], "state": "present"}, ["nginx", "php-fpm"]),
        ({"name": "nginx,php-fpm"}, ["nginx", "php-fpm"]),
        ({"pkg": ["telnet"], "state": "absent", "purge": True}, ["telnet"]),
        ({"name": ["nginx"], "state": "latest"}, None),
        ({"name": ["nginx=1.22.1-9"]}, None),
        ({"name": ["php*"]}, None),
        ({"name": ["nginx"], "update_cache": True, "cache_valid_time": 3600}, ["nginx"]),
        ({"name": ["nginx"], "upgrade": "dist"}, None),
        ({"name": ["nginx"], "autoremove": True}, None),
        ({"deb": "/tmp/x.deb"}, None),
        ({"name": ["/tmp/x.deb"]}, None),
        ({"update_cache": True}, None),
        ({"name": []}, None),
    ],
)
def test_only_plain_names_installed_or_removed_are_judged_from_dpkg(args: dict[str, Any], names: Any) -> None:
    assert action.judgeable(args) == names


def test_dpkg_status_lines_give_each_package_its_two_letters() -> None:
    stdout = "nginx\tii \nlibc6:amd64\tii \ntelnet\trc \nphp-fpm\tun \n"
    assert action.statuses(stdout) == {"nginx": "ii", "libc6": "ii", "telnet": "rc", "php-fpm": "un"}


def test_present_means_installed_and_absent_means_gone_or_only_configuration_unless_purged() -> None:
    status = {"nginx": "ii", "telnet": "rc", "rsh-client": "un", "half": "iU", "held": "hi"}
    names = ["nginx", "telnet", "rsh-client", "half", "held", MISSING]
    assert action.pending(names, status, "present", False) == ["telnet", "rsh-client", "half", "held", MISSING]
    assert action.pending(names, status, "absent", False) == ["nginx", "half", "held"]
    assert action.pending(names, status, "absent", True) == ["nginx", "telnet", "half", "held"]


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: installed
      portalops_packages:
        name: [dpkg, coreutils]
        state: present
        update_cache: true
        cache_valid_time: 3600
      register: installed
    - name: never installed, to be purged
      portalops_packages:
        name: [{missing}]
        state: absent
        purge: true
    - name: not installed
      portalops_packages:
        name: [dpkg, {missing}]
        state: present
      ignore_errors: true
    - name: not judged from dpkg
      portalops_packages:
        name: [dpkg]
        state: latest
      ignore_errors: true
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    work: Path = tmp_path_factory.mktemp("packages")
    (work / "site.yml").write_text(PLAYBOOK.format(missing=MISSING))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        **JSON_CALLBACK_ENV,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,  # the virtualenv's: no python3-apt, no apt module
    }
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", "--check", str(work / "site.yml")]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False)
    document = callback_document(done.stdout)
    return {task: result for task, _host, result in host_results(document)}


def test_the_interpreter_of_the_tasks_cannot_run_the_apt_module() -> None:
    found = subprocess.run([sys.executable, "-c", "import apt_pkg"], capture_output=True, check=False)
    assert found.returncode != 0, "this test needs an interpreter without python3-apt"


def test_installed_packages_and_absent_ones_cost_no_apt_call(results: dict[str, dict[str, Any]]) -> None:
    for task in ("installed", "never installed, to be purged"):
        assert not results[task].get("failed"), results[task]
        assert results[task]["changed"] is False
        assert results[task]["msg"].startswith("nothing to do: dpkg reports")


def test_a_missing_package_or_a_request_dpkg_cannot_judge_goes_to_the_apt_module(
    results: dict[str, dict[str, Any]],
) -> None:
    for task in ("not installed", "not judged from dpkg"):
        assert results[task].get("failed"), results[task]
        assert "nothing to do" not in str(results[task].get("msg"))
