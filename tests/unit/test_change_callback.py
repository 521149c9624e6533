"""The callback plugin (plugins/callback/portalops_changes.py) in a real ansible-playbook run.

A tiny playbook named site.yml runs against localhost only (``-i localhost, -c local``) with the
repository's ansible.cfg (so the plugin is enabled the way it is for the lab and production) and
the records directory in ``tmp_path``: a run is recorded, a ``--check`` run is not, and a records
directory that cannot be written warns without failing the play.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from portalops.service import changes, records
from portalops.vault import REPO_ROOT

PLAYBOOK = """\
- name: A tiny converge
  hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: hello
    - name: Write a report
      ansible.builtin.command: "echo 'report: {report}'"
      changed_when: true
"""
VALUE = "never-written-9f3a"  # an extra var's value: a secret for all the callback knows


def run(
    tmp_path: Path, records_dir: Path, *extra: str, playbook: str = "site.yml", text: str = PLAYBOOK, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir(exist_ok=True)
    (playbooks / playbook).write_text(text.format(report=tmp_path / "report.md"))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "PORTALOPS_INCIDENTS_DIR": str(records_dir),
        "ANSIBLE_NOCOLOR": "1",
        "PORTALOPS_CHANGE_PLAYBOOKS": "",
        "PORTALOPS_INCIDENT": "",
        **env_vars,
    }
    env.pop("PYTHONPATH", None)  # the plugin finds the portalops of its own checkout (as under cron)
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", f"playbooks/{playbook}", *extra]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_playbook_run_is_recorded_and_a_check_run_is_not(tmp_path: Path) -> None:
    root = tmp_path / "incidents"
    done = run(tmp_path, root, "--limit", "localhost", "-e", f"vault_db_password={VALUE}")
    assert done.returncode == 0, done.stdout + done.stderr
    found, malformed = changes.load(root)
    assert len(found) == 1 and found[0].id.endswith("-001") and not malformed
    change = found[0]
    assert f"portalops: change {change.id} recorded" in done.stderr
    assert change.meta["kind"] == "playbook" and change.meta["result"] == "ok"
    assert change.meta["title"] == "ansible-playbook playbooks/site.yml --limit localhost"
    assert change.meta["limit"] == "localhost" and change.meta["by"] == changes.user()
    assert change.meta["hosts"] == [
        {"host": "localhost", "ok": 2, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0, "rescued": 0}
    ]
    assert change.meta["reports"] == [str(tmp_path / "report.md")]
    assert change.meta["extra_vars"] == ["vault_db_password"]
    assert VALUE not in change.record.path.read_text()
    assert change.meta["started"] <= change.meta["ended"]

    checked = run(tmp_path, root, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [c.id for c in changes.load(root)[0]] == [change.id]  # a check run changed nothing
    assert "recorded" not in checked.stdout + checked.stderr
    assert records.split(change.record.path.read_text())[0] == change.meta


def test_a_failure_to_record_warns_and_never_fails_the_play(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    done = run(tmp_path, blocked)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "portalops_changes: the change was NOT recorded" in done.stdout + done.stderr
    assert "ok=2    changed=1    unreachable=0    failed=0" in done.stdout


def test_the_playbooks_are_configurable(tmp_path: Path) -> None:
    root = tmp_path / "incidents"
    done = run(tmp_path, root, PORTALOPS_CHANGE_PLAYBOOKS="patch.yml, monitoring.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert changes.load(root) == ([], [])  # site.yml is not one of them now


def test_a_runbook_steps_playbook_names_its_incident(tmp_path: Path) -> None:
    """A runbook run tells its controller shell the incident (portalops.runbook.live.controller)."""
    root = tmp_path / "incidents"
    done = run(tmp_path, root, "--limit", "localhost", PORTALOPS_INCIDENT="l3_certificate_expiry-20261203T020000Z")
    assert done.returncode == 0, done.stdout + done.stderr
    [change], _ = changes.load(root)
    assert change.meta["incident"] == "l3_certificate_expiry-20261203T020000Z"


def test_a_failed_restore_drill_is_a_failed_restore_linked_to_its_report(tmp_path: Path) -> None:
    """restore_drill.yml (run by hand or by scripts/nightly) as its last play does: the report, then the verdict."""
    drill = (
        PLAYBOOK
        + """\
    - name: Fail when any check failed
      ansible.builtin.assert:
        that: false
        fail_msg: The restore drill failed
"""
    )
    root = tmp_path / "incidents"
    done = run(tmp_path, root, playbook="restore_drill.yml", text=drill)
    assert done.returncode == 2, done.stdout + done.stderr
    [change], _ = changes.load(root)
    assert change.meta["kind"] == "restore" and change.meta["result"] == "failed"
    assert change.meta["title"] == "ansible-playbook playbooks/restore_drill.yml"
    assert change.meta["reports"] == [str(tmp_path / "report.md")]
    assert change.meta["hosts"][0]["failed"] == 1


def test_stdout_stays_a_json_document_for_programs_that_read_it(tmp_path: Path) -> None:
    root = tmp_path / "incidents"
    done = run(
        tmp_path, root, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_CALLBACKS_ENABLED="portalops_changes"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["stats"]["localhost"]["changed"] == 1
    assert len(changes.load(root)[0]) == 1 and "portalops: change" in done.stderr
