"""What a restore drill proves, read from its report and the hosts: side_effect.yml backed the source
up and ran the drill; the report says pass for the snapshots just made, with the source's newest
titles served by the drill's site; the drill host keeps none of the restored data; and its account
reads the repositories and changes nothing in them."""

import json
import os
from pathlib import Path
from typing import Any

import testinfra

# Talk to the containers directly: one podman exec per check, not one Ansible run.
SOURCE = testinfra.get_host("podman://drill-source")
DRILL = testinfra.get_host("podman://restore-drill")
# side_effect.yml writes the reports here, as playbooks/restore_drill.yml does into reports/drills.
REPORTS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "drills"
SFTP = "sftp -F /etc/portalops/backup-ssh.conf -b - portalops-backup-repository"


def report() -> dict[str, Any]:
    """The newest drill report (its name is the drill's start, UTC)."""
    found: dict[str, Any] = json.loads(max(REPORTS.glob("*.json")).read_text())
    return found


def test_the_drill_report_says_pass_for_every_check() -> None:
    summary = report()["summary"]
    assert summary["ok"] is True, summary["failed_checks"]
    assert summary["failed_checks"] == []
    checks = [(c["name"], c["ok"]) for c in report()["result"]["checks"]]
    assert checks == [
        ("database (physical backup)", True),
        ("database (logical dump)", True),
        ("site portal.lab.test serves the newest published titles", True),
    ]
    assert summary["checks_passed"] == summary["checks_total"] == 3
    assert summary["restored_bytes"] > 0


def test_the_drill_restored_the_snapshots_the_source_just_made() -> None:
    listed = json.loads(SOURCE.check_output("portalops-backup snapshots"))
    newest = {}
    for snapshot in sorted(listed, key=lambda s: s["time"]):
        job = next(t.removeprefix("job:") for t in snapshot["tags"] if t.startswith("job:"))
        newest[f"drill-source:{job}"] = snapshot["id"]
    restored = {key: snap["id"] for key, snap in report()["result"]["snapshots"].items()}
    assert restored == newest
    # The recovery point is the backup side_effect.yml made moments before the drill.
    assert 0 <= report()["summary"]["rpo_s"] < 600


def test_the_site_served_the_sources_newest_published_titles() -> None:
    """The titles the drill's site had to serve are those of the live source database, not of an empty one."""
    live = SOURCE.check_output(
        "mariadb --default-character-set=utf8mb4 -N -B wp_portal -e "
        "\"SELECT post_title FROM wp_posts WHERE post_status = 'publish' AND post_type = 'post'\""
    ).splitlines()
    titles = report()["result"]["titles"]["wp_portal"]
    assert len(titles) == min(10, len(live)) > 0
    assert set(titles) <= set(live)


def test_the_drill_host_keeps_none_of_the_restored_data() -> None:
    assert not DRILL.file("/var/lib/portalops-drill").exists
    assert not DRILL.file("/var/lib/mysql").exists
    assert not DRILL.service("mariadb").is_running
    # No repository of its own, so no password of its own; the source's password is root's only.
    assert not DRILL.file("/etc/portalops/restic.pass").exists
    assert DRILL.file("/etc/portalops/drill-restic-drill-source.pass").mode == 0o400


def test_the_drill_account_reads_the_repositories_and_changes_nothing() -> None:
    assert "/drill-source" in DRILL.check_output(f"echo 'ls /' | {SFTP}")
    removed = DRILL.run(f"echo 'rm /drill-source/repo/config' | {SFTP}")
    assert removed.rc != 0
    assert "Permission denied" in removed.stderr
    written = DRILL.run(f"echo 'put /etc/hostname /drill-source/repo/molecule' | {SFTP}")
    assert written.rc != 0
    assert "Permission denied" in written.stderr
