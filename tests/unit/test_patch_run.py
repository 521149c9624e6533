"""The patch run's judgements (portalops.patch_run): what the pre-checks, the gate and apt's answers mean.

The messages are the ones operators and the lab tests read (tests/integration/test_site_patch.py
finds "db1: the newest backup is 30.x h old (limit 26.0 h)" and "service nftables is not active").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portalops import patch_run
from portalops.ansible_json import callback_document
from portalops.patch_run import Limits
from tests.roleplay import run_play

NOW = 1_800_000_000.0
HOUR = 3600.0

SIMULATION = """NOTE: This is only a simulation!
Reading package lists...
Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
Inst openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64]) []
Inst portalops-canary [1.0] (1.1 portalops-lab:lab [all])
Inst newdep (2.0 Debian:12.8/stable [amd64])
Conf libssl3 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
"""

# df -Pm / /var on a lab host: / has 5120 MiB available, /var 812.
DF = """Filesystem     1048576-blocks  Used Available Capacity Mounted on
overlay                 40960 35840      5120      88% /
/dev/sdb1               10240  9428       812      93% /var
"""
APT_OK = {"rc": 0, "stdout": "", "stderr": ""}
GROUPS = {
    "all": ["web1", "cms1", "db1", "backup1", "drill1", "mon1"],
    "web": ["web1"],
    "cms": ["cms1"],
    "db": ["db1"],
    "backup": ["backup1"],
    "drill": ["drill1"],
    "backup_clients": ["web1", "cms1", "db1"],
}


def status(*ages_hours: float | None, not_run: tuple[float | None, ...] = ()) -> str:
    """A backup status file whose jobs last succeeded ``ages_hours`` ago (None: never)."""

    def job(age: float | None) -> dict[str, Any]:
        return {"job": "files", "last_success_ts": 0 if age is None else NOW - age * HOUR}

    return json.dumps({"jobs": [job(a) for a in ages_hours], "not_run": [job(a) for a in not_run]})


def precheck(**observed: Any) -> list[str]:
    arguments: dict[str, Any] = {
        "host_locked": False,
        "apt": APT_OK,
        "disk": DF.replace("812", "2048"),
        "backup_status": status(2.0),
        "limits": Limits(),
        "now": NOW,
    }
    return patch_run.precheck_problems(**{**arguments, **observed})


# -- the rollout order ------------------------------------------------------------------------


def test_the_rollout_goes_tier_by_tier_in_inventory_order_each_host_once() -> None:
    groups = {**GROUPS, "web": ["web2", "web1"], "drill": ["drill1", "web1"]}
    assert patch_run.rollout(
        ["drill", "backup", "db", "cms", "web"], groups, ["web1", "web2", "cms1", "db1", "backup1", "drill1"]
    ) == ["drill1", "web1", "backup1", "db1", "cms1", "web2"]


def test_patch_only_narrows_the_rollout_and_a_missing_tier_adds_nothing() -> None:
    assert patch_run.rollout(["drill", "monitoring", "db", "web"], GROUPS, ["db1", "web1", "mon1"]) == ["db1", "web1"]


def test_a_host_in_no_tier_is_not_patched() -> None:
    assert "mon1" not in patch_run.rollout(list(patch_run.DEFAULT_TIER_ORDER), GROUPS, GROUPS["all"])


# -- the pre-checks ---------------------------------------------------------------------------


def test_free_space_is_the_least_available_of_the_filesystems() -> None:
    assert patch_run.free_mb(DF) == 812


def test_a_healthy_host_with_a_fresh_backup_passes() -> None:
    assert precheck() == []


def test_another_runs_host_lock_blocks() -> None:
    assert precheck(host_locked=True) == ["another patch run holds /run/portalops-patch.lock"]


def test_broken_apt_blocks_with_apts_own_words() -> None:
    broken = {"rc": 1, "stdout": "", "stderr": "E: Unmet dependencies."}
    assert precheck(apt=broken) == ["apt is broken (dpkg --audit / apt-get check): E: Unmet dependencies."]


def test_too_little_free_disk_blocks_naming_space_and_need() -> None:
    assert precheck(disk=DF) == ["only 812 MiB free on / or /var (need 1024)"]
    assert precheck(disk=DF, limits=Limits(min_free_mb=800)) == []


def test_a_stale_backup_blocks_naming_its_age_and_the_limit() -> None:
    assert precheck(backup_status=status(2.0, 30.04)) == [
        "the newest backup is 30.0 h old (limit 26.0 h); run playbooks/backup.yml first,"
        " or set patch_ignore_backup_age=true to patch anyway"
    ]


def test_the_oldest_job_counts_including_those_not_run_this_time() -> None:
    assert patch_run.backup_age_hours(json.loads(status(1.0, not_run=(27.26,))), NOW) == 27.3
    assert precheck(backup_status=status(1.0, not_run=(27.26,)), limits=Limits(max_backup_age_hours=28)) == []


@pytest.mark.parametrize(
    "text",
    [status(2.0, None), status(), "", json.dumps({"jobs": [{"job": "db"}]}), json.dumps({"jobs": None})],
    ids=["a-job-never-succeeded", "no-jobs", "no-status-file", "no-timestamp", "null-jobs"],
)
def test_no_successful_backup_blocks(text: str) -> None:
    assert precheck(backup_status=text) == [
        "no successful backup recorded (/var/lib/portalops/backup/run.json); run playbooks/backup.yml first"
    ]


def test_an_unreadable_status_file_blocks_instead_of_failing_the_play() -> None:
    for text in ("{not json", "[]"):
        assert precheck(backup_status=text) == [
            "the backup status /var/lib/portalops/backup/run.json is not readable JSON; run playbooks/backup.yml first"
        ]


def test_the_backup_age_is_not_checked_on_other_hosts_or_when_ignored() -> None:
    assert precheck(backup_status=None) == []
    assert precheck(backup_status=status(300.0), limits=Limits(ignore_backup_age=True)) == []


def test_every_problem_of_a_host_is_named() -> None:
    problems = precheck(host_locked=True, apt={"rc": 100, "stderr": "E"}, disk=DF, backup_status="")
    assert [p.split(" ")[0] for p in problems] == ["another", "apt", "only", "no"]


# -- the upgrades -----------------------------------------------------------------------------


def test_security_mode_keeps_only_debian_security_upgrades() -> None:
    found = patch_run.pending(SIMULATION, "security")
    assert [(p["name"], p["old"], p["new"]) for p in found] == [
        ("libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
        ("openssl", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
    ]


def test_full_mode_keeps_everything_including_new_dependencies() -> None:
    names = [p["name"] for p in patch_run.pending(SIMULATION, "full")]
    assert names == ["libssl3", "openssl", "portalops-canary", "newdep"]
    assert patch_run.pending(SIMULATION, "full")[3]["old"] == ""


def test_pending_upgrades_read_as_old_to_new() -> None:
    lines = patch_run.pending_lines(patch_run.pending(SIMULATION, "full"))
    assert lines[2:] == ["portalops-canary: 1.0 -> 1.1", "newdep: (new) -> 2.0"]
    assert patch_run.pending_lines([]) == ["nothing to upgrade"]


def test_exactly_the_services_needrestart_names_are_restarted() -> None:
    batch = ["NEEDRESTART-VER: 3.6", "NEEDRESTART-KSTA: 0", "NEEDRESTART-SVC: nginx.service", "NEEDRESTART-SVC: cron"]
    assert patch_run.needrestart_services(batch) == ["nginx.service", "cron"]
    assert patch_run.needrestart_services([]) == []


@pytest.mark.parametrize(
    ("required", "container", "verdict"),
    [(False, False, "not required"), (False, True, "not required"), (True, True, "reported (container)"),
     (True, False, "rebooted")],
)  # fmt: skip
def test_a_required_reboot_is_done_on_real_hosts_and_reported_in_containers(
    required: bool, container: bool, verdict: str
) -> None:
    assert patch_run.reboot_verdict(required, container) == verdict


def test_a_hosts_tier_is_its_first_group_that_is_a_tier() -> None:
    assert patch_run.tier_of(["backup_clients", "cms", "lab"], patch_run.DEFAULT_TIER_ORDER) == "cms"
    assert patch_run.tier_of(["monitoring"], patch_run.DEFAULT_TIER_ORDER) == ""


# -- the gate ---------------------------------------------------------------------------------

SERVICES = {"all": ["ssh", "nftables"], "web": ["nginx"], "cms": ["nginx", "php8.2-fpm"], "db": ["mariadb"]}
TITLE = "Example County"
URL = "https://127.0.0.1:8443"
PORTAL_OK = {"status": 200, "content": f"<title>{TITLE}</title>", "x_cache_status": "BYPASS"}
DB_OK = {"rc": 0, "stdout": "1", "stderr": ""}


def units(**rcs: int) -> list[dict[str, Any]]:
    return [{"item": unit, "rc": rc} for unit, rc in rcs.items()]


def gate(
    found: list[dict[str, Any]], portal: dict[str, Any] = PORTAL_OK, database: dict[str, Any] = DB_OK
) -> list[str]:
    return patch_run.gate_problems(found, portal=portal, database=database, title=TITLE, url=URL, db_host="db1")


def test_the_gate_checks_the_units_of_all_hosts_and_of_the_hosts_groups_each_once() -> None:
    found = patch_run.gate_services(SERVICES, ["backup_clients", "cms", "web"])
    assert found == ["ssh", "nftables", "nginx", "php8.2-fpm"]
    assert patch_run.gate_services(SERVICES, ["drill"]) == ["ssh", "nftables"]
    assert patch_run.gate_services({}, ["web"]) == ["ssh"]


def test_a_healthy_host_passes_the_gate() -> None:
    assert gate(units(ssh=0, nginx=0)) == []


def test_an_inactive_unit_fails_the_gate_by_name() -> None:
    assert gate(units(ssh=0, nftables=3, nginx=0)) == ["service nftables is not active"]


@pytest.mark.parametrize(
    ("portal", "answered"),
    [
        ({"status": 502, "content": "Bad Gateway", "x_cache_status": "MISS"}, "502 MISS"),
        ({**PORTAL_OK, "x_cache_status": "STALE"}, "200 STALE"),
        ({**PORTAL_OK, "content": "<title>Site maintenance</title>"}, "200 BYPASS"),
        ({"status": -1, "msg": "Status code was -1: Connection refused"}, "-1 "),
        ({}, "nothing "),
    ],
    ids=["error", "stale-page", "no-title", "refused", "no-answer"],
)
def test_the_portal_must_answer_a_fresh_page_with_its_title(portal: dict[str, Any], answered: str) -> None:
    assert gate(units(ssh=0), portal=portal) == [
        f"the portal answered {answered} without a fresh page with its title at {URL}"
    ]


@pytest.mark.parametrize(
    "database",
    [{"rc": 1, "stdout": "", "stderr": "ERROR 2002 (HY000)"}, {"rc": 0, "stdout": "", "stderr": "ERROR 2002 (HY000)"}],
)
def test_the_database_must_answer(database: dict[str, Any]) -> None:
    assert gate(units(ssh=0), database=database) == ["the database on db1 does not answer: ERROR 2002 (HY000)"]
    assert gate(units(ssh=0), database={}) == ["the database on db1 does not answer: "]


# -- the filter plugin ------------------------------------------------------------------------

PLAYBOOK = """\
- name: The patch run's filters
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Judge
      ansible.builtin.debug:
        msg:
          rollout: "{{ ['drill', 'web'] | patching_rollout(tiers, ['web1', 'drill1']) }}"
          precheck: >-
            {{ {'rc': 0} | patching_precheck_problems(host_locked=true, disk=df, backup_status=none,
                 min_free_mb='1024', max_backup_age_hours=26, ignore_backup_age=false) }}
          pending: "{{ simulation | patching_pending('full') | patching_pending_lines }}"
          restarts: "{{ ['NEEDRESTART-SVC: cron'] | patching_restarts }}"
          reboot: "{{ true | patching_reboot(true) }}"
          tier: "{{ ['backup_clients', 'db'] | patching_tier(['db']) }}"
          services: "{{ {'all': ['ssh'], 'db': ['mariadb']} | patching_gate_services(['db']) }}"
          gate: >-
            {{ [{'item': 'mariadb', 'rc': 3}] | patching_gate_problems(portal={'status': 200, 'content': 'T'},
                 database={'rc': 0, 'stdout': '1'}, title='T', url='u', db_host='db1') }}

    # The filters are the patching role's (its filter_plugins): a play has them once it loads the role,
    # which an import does when the play is read, before the task above runs; none of its tasks runs.
    - name: Load the patching role
      ansible.builtin.import_role:
        name: patching
        tasks_from: validate
      when: false
"""


def test_the_filter_plugin_hands_the_functions_to_jinja(tmp_path: Path) -> None:
    """A real ansible-playbook with the repository's ansible.cfg, in a play that loads the patching role;
    without PYTHONPATH the role's plugin finds portalops/patch_run.py of its own checkout."""
    variables = {"df": DF, "simulation": SIMULATION, "tiers": {"web": ["web1"], "drill": ["drill1"]}}
    done = run_play(
        tmp_path,
        PLAYBOOK,
        variables,
        "localhost,",
        "-c",
        "local",
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "PYTHONPATH": None},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    msg = callback_document(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert msg == {
        "rollout": ["drill1", "web1"],
        "precheck": ["another patch run holds /run/portalops-patch.lock", "only 812 MiB free on / or /var (need 1024)"],
        "pending": patch_run.pending_lines(patch_run.pending(SIMULATION, "full")),
        "restarts": ["cron"],
        "reboot": "reported (container)",
        "tier": "db",
        "services": ["ssh", "mariadb"],
        "gate": ["service mariadb is not active"],
    }
