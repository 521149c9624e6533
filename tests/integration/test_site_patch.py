"""playbooks/patch.yml on the converged lab: a local apt repository offers newer canary versions.

Runs last among the test_site* modules (file order). Each lab host gets the repository as a
flat file: repository; the tests publish the versions they need and watch patch.yml roll them
out host by host, stop at a failing gate, refuse a stale backup, and change nothing in --check.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from portalops import patch_run
from portalops.inventory import REPO_ROOT
from portalops.lab import aptrepo
from portalops.lab.config import LabConfig
from tests.integration.helpers import changed_tasks, failed_tasks, on, playbook, podman, portalops, task_result

ROLLOUT = ["drill1", "backup1", "db1", "cms1", "web1"]
PATCH = "playbooks/patch.yml"


def each(hosts: list[str], do: Callable[[str], object]) -> None:
    """``do`` on every host at once (each host's apt is its own); the first failure is raised."""
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        list(pool.map(do, hosts))


def canary(host: str) -> str:
    return on(host, f"dpkg-query -W -f '${{Version}}' {aptrepo.PACKAGE}", check=False).stdout.strip()


def versions() -> dict[str, str]:
    return {host: canary(host) for host in ROLLOUT}


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path

    def offer(self, *available: str) -> None:
        aptrepo.publish(self.path, list(available))
        each(ROLLOUT, self.copy_to)

    def copy_to(self, host: str) -> None:
        on(host, f"rm -rf {aptrepo.REMOTE}")
        podman("cp", str(self.path), f"portalops-{host}:{aptrepo.REMOTE}")


@pytest.fixture(scope="module")
def repo(converged: LabConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """Canary 1.0 installed everywhere from the local repository; fresh backups for the pre-check."""
    local = Repo(tmp_path_factory.mktemp("apt") / "repo")
    local.offer("1.0")
    # Only the test repository's list is read here (Debian's lists are patch.yml's to refresh). The canary goes
    # in with dpkg, not apt: apt's DPkg::Post-Invoke would refresh rkhunter's baseline on every host (APT_AUTOGEN,
    # ~8 CPU-s each) for the test's own setup; patch.yml's upgrades still go through apt and pay for theirs.
    only_ours = f"-o Dir::Etc::sourcelist={aptrepo.SOURCES} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
    each(
        ROLLOUT,
        lambda host: on(
            host,
            f"echo 'deb [trusted=yes] file:{aptrepo.REMOTE} ./' > {aptrepo.SOURCES} && apt-get update -q {only_ours}"
            f" >/dev/null && dpkg -i {aptrepo.REMOTE}/{aptrepo.deb_name('1.0')} >/dev/null",
        ),
    )
    # The pre-check refuses a client whose newest backup is older than 26 h. A backup an earlier module made
    # (test_site_backup's, in make test) passes it with hours to spare and is not made again: backup.yml runs
    # only on the clients without one younger than 2 h (the module takes minutes).
    fresh_enough = patch_run.Limits(max_backup_age_hours=2.0)
    stale = [
        host
        for host in (h.name for h in converged.hosts if "backup_clients" in h.groups)  # the inventory's group
        if patch_run.backup_problems(
            on(host, f"cat {patch_run.BACKUP_STATUS}", check=False).stdout, fresh_enough, time.time()
        )
    ]
    if stale:
        code, _, output = playbook("playbooks/backup.yml", "--limit", ",".join(stale), log_name="backup-before-patch")
        assert code == 0, failed_tasks(output)
    yield local
    # The repository's list files go with it; apt rebuilds its cache from the lists that remain.
    each(
        ROLLOUT,
        lambda host: on(
            host,
            f"dpkg --purge {aptrepo.PACKAGE}; rm -rf {aptrepo.SOURCES} {aptrepo.REMOTE}"
            f" /var/lib/apt/lists/*portalops-test-repo*",
            check=False,
        ),
    )


def newest_report() -> dict[str, Any]:
    reports = sorted((REPO_ROOT / "reports/patch").glob("*.json"))
    assert reports, "no patch report"
    data: dict[str, Any] = json.loads(reports[-1].read_text())
    return data


def cmdb(*argv: str) -> dict[str, Any]:
    result = portalops("cmdb", "--json", *argv, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_a_newer_package_is_rolled_out_host_by_host_in_tier_order(repo: Repo, tmp_path: Path) -> None:
    assert set(versions().values()) == {"1.0"}
    snapshot = cmdb("--out", str(tmp_path))  # the CMDB of today, before (the lab follows the canary too)
    assert {snapshot["hosts"][host]["packages"].get(aptrepo.PACKAGE) for host in ROLLOUT} == {"1.0"}
    repo.offer("1.0", "1.1")
    code, _, output = playbook(PATCH, "-e", "patch_mode=full", log_name="patch")
    assert code == 0, failed_tasks(output)
    assert set(versions().values()) == {"1.1"}
    report = newest_report()
    assert report["ok"] and [h["host"] for h in report["hosts"]] == ROLLOUT
    for host in report["hosts"]:
        assert {"name": aptrepo.PACKAGE, "old": "1.0", "new": "1.1"} in host["packages"], host
        assert host["ok"] and host["reboot"] in {"not required", "reported (container)"}
    markdown = sorted((REPO_ROOT / "reports/patch").glob("*.md"))[-1].read_text()
    assert "Verdict: **PASS**" in markdown and f"{aptrepo.PACKAGE} 1.0 -> 1.1" in markdown
    # The CMDB's diff against the snapshot before shows the upgrade on every host, and no other version moved.
    changes = cmdb("--diff", snapshot["date"], "--out", str(tmp_path))
    moved = {host: found["versions_changed"] for host, found in changes["hosts"].items() if "versions_changed" in found}
    assert moved == {host: {aptrepo.PACKAGE: ["1.0", "1.1"]} for host in ROLLOUT}, changes["hosts"]


def test_a_second_run_changes_nothing(repo: Repo) -> None:
    code, stats, output = playbook(PATCH, "-e", "patch_mode=full", log_name="patch-rerun")
    assert code == 0, failed_tasks(output)
    assert {h: stats[h]["changed"] for h in ROLLOUT} == dict.fromkeys(ROLLOUT, 0), changed_tasks(output)
    assert all(not h["packages"] for h in newest_report()["hosts"])


def test_check_mode_lists_pending_upgrades_and_changes_nothing(repo: Repo) -> None:
    repo.offer("1.1", "1.2")
    code, stats, output = playbook(PATCH, "--check", "-e", "patch_mode=full", log_name="patch-check")
    assert code == 0, failed_tasks(output)
    assert f"{aptrepo.PACKAGE}: 1.1 -> 1.2" in output
    assert set(versions().values()) == {"1.1"}
    assert {h: stats[h]["changed"] for h in ROLLOUT} == dict.fromkeys(ROLLOUT, 0), changed_tasks(output)


def test_security_mode_leaves_a_non_security_upgrade_alone(repo: Repo) -> None:
    """The canary's origin is the lab repository, not Debian-Security: a security run keeps it at 1.1."""
    assert set(versions().values()) == {"1.1"}
    code, _, output = playbook(PATCH, "-e", "patch_mode=security", "-e", "patch_only=drill1", log_name="patch-security")
    assert code == 0, failed_tasks(output)
    simulated = task_result(output, "List the pending upgrades (simulated)", "drill1")["stdout"]
    assert f"Inst {aptrepo.PACKAGE} [1.1] (1.2 " in simulated, "apt offers the canary; the run must leave it"
    pending = task_result(output, "List them", "drill1")["patch_pending_lines"]
    assert not [line for line in pending if aptrepo.PACKAGE in line], pending
    assert canary("drill1") == "1.1"
    report = newest_report()
    assert report["ok"] and [h["host"] for h in report["hosts"]] == ["drill1"]
    assert aptrepo.PACKAGE not in [p["name"] for p in report["hosts"][0]["packages"]], report


def container_started(host: str) -> str:
    return podman("inspect", "-f", "{{.State.StartedAt}}", f"portalops-{host}").stdout.strip()


@pytest.fixture
def reboot_required_on_drill1() -> Iterator[str]:
    """drill1 says a reboot is required (as a kernel or libc upgrade would); yields its container's start time."""
    started = container_started("drill1")
    already = on("drill1", "test -e /var/run/reboot-required", check=False).returncode == 0
    on("drill1", "touch /var/run/reboot-required")
    try:
        yield started
    finally:
        if not already:  # a flag drill1 had before the test is left for a person
            on("drill1", "rm -f /var/run/reboot-required")


def test_a_required_reboot_in_a_container_is_reported_not_done(repo: Repo, reboot_required_on_drill1: str) -> None:
    code, _, output = playbook(PATCH, "-e", "patch_only=drill1", log_name="patch-reboot")
    assert code == 0, failed_tasks(output)
    shown = task_result(output, "Report a required reboot a container cannot do", "drill1")
    assert shown.get("msg") == "drill1: reboot required, not done (a container; reboot it from its host)", shown
    report = newest_report()
    assert [(h["host"], h["reboot"]) for h in report["hosts"]] == [("drill1", "reported (container)")]
    markdown = sorted((REPO_ROOT / "reports/patch").glob("*.md"))[-1].read_text()
    row = r"^\| drill1 \| drill \| .* \| reported \(container\) \| ok \| [\d.]+ \|$"
    assert re.search(row, markdown, re.M), markdown
    assert container_started("drill1") == reboot_required_on_drill1, "a container must not be restarted"
    assert on("drill1", "test -e /var/run/reboot-required", check=False).returncode == 0, "left for a person"


@pytest.fixture
def stale_db1_backup() -> Iterator[None]:
    """db1's status file says its jobs last succeeded 30 hours ago."""
    on("db1", "cp -p /var/lib/portalops/backup/run.json /root/run.json.keep")
    on(
        "db1",
        "python3 -c \"import json,time; p='/var/lib/portalops/backup/run.json'; d=json.load(open(p)); "
        "[j.update(last_success_ts=time.time()-30*3600) for j in d['jobs']]; json.dump(d, open(p,'w'))\"",
    )
    try:
        yield
    finally:
        on("db1", "mv /root/run.json.keep /var/lib/portalops/backup/run.json")


def test_a_stale_backup_blocks_patching_naming_host_and_age(repo: Repo, stale_db1_backup: None) -> None:
    code, _, output = playbook(PATCH, "-e", "patch_mode=full", log_name="patch-stale")
    assert code != 0
    assert re.search(r"db1: the newest backup is 30\.\d h old \(limit 26\.0 h\)", output), failed_tasks(output)
    assert set(versions().values()) == {"1.1"}, "no host may change when a pre-check fails"
    assert not (REPO_ROOT / "reports/patch/.lock").exists(), "a refused run must release the lock"


@pytest.fixture
def nftables_stopped_on_cms1() -> Iterator[None]:
    """A fault of cms1 alone (its firewall unit down): the portal keeps working, cms1's gate fails."""
    on("cms1", "systemctl stop nftables")
    try:
        yield
    finally:
        on("cms1", "systemctl start nftables")


def test_a_failing_gate_stops_the_rollout_and_the_report_says_where(repo: Repo, nftables_stopped_on_cms1: None) -> None:
    repo.offer("1.1", "1.2")
    assert set(versions().values()) == {"1.1"}
    code, _, output = playbook(PATCH, "-e", "patch_mode=full", log_name="patch-gate")
    assert code != 0
    found = versions()
    assert [found[h] for h in ROLLOUT] == ["1.2", "1.2", "1.2", "1.2", "1.1"], (
        f"web1 must stay untouched: {failed_tasks(output)}"
    )
    report = newest_report()
    assert not report["ok"] and report["stopped_at"] == "cms1"
    assert "service nftables is not active" in report["why"]
    assert "web1" not in [h["host"] for h in report["hosts"]]
    assert not (REPO_ROOT / "reports/patch/.lock").exists(), "a stopped run must release the lock"
