"""The runbooks' shell checks, run for real through the controller runner on made-up state."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from portalops.runbook import tiercheck
from portalops.runbook.checks import (
    backups_younger_than,
    certificates_valid_for,
    disk_below,
    unit_restart,
)
from portalops.runbook.hosts import LocalHost
from tests.unit.hostscripts import on_this_machine
from tests.unit.test_probe import make_cert


def run(command: str, tmp_path: Path, path: str = "") -> tuple[int, str]:
    env = {"PATH": f"{path}:{os.environ['PATH']}"} if path else {}
    result = LocalHost(tmp_path, env).run(command, timeout=30)
    return result.rc, result.stdout + result.stderr


def with_config(tmp_path: Path) -> str:
    """The check as the runbook sends it, run by the role's portalops-host executable from this checkout and
    reading a wrapper configuration whose status directory is ``tmp_path/status``."""
    config = tmp_path / "backup.json"
    config.write_text(json.dumps({"status_dir": str(tmp_path / "status")}))
    (tmp_path / "status").mkdir(exist_ok=True)
    return f"{on_this_machine(backups_younger_than(26))} --config {config}"


def status(tmp_path: Path, jobs: list[dict[str, object]]) -> str:
    command = with_config(tmp_path)
    (tmp_path / "status" / "run.json").write_text(json.dumps({"command": "run", "jobs": jobs}))
    return command


def test_the_backup_check_is_the_host_command() -> None:
    assert backups_younger_than(26) == "/usr/local/sbin/portalops-host check backup-age --hours 26"


def test_fresh_backups_pass(tmp_path: Path) -> None:
    jobs: list[dict[str, object]] = [{"name": "db-dump", "ok": True, "last_success_ts": time.time() - 3600}]
    rc, out = run(status(tmp_path, jobs), tmp_path)
    assert rc == 0, out
    assert "db-dump ok last success 1.0 h ago" in out


@pytest.mark.parametrize(
    "job",
    [
        {"name": "files", "ok": True, "last_success_ts": time.time() - 27 * 3600},
        {"name": "files", "ok": False, "last_success_ts": time.time() - 3600},
        {"name": "files", "ok": False, "last_success_ts": None},
    ],
    ids=["older than 26 h", "last run failed", "never succeeded"],
)
def test_stale_or_failing_backups_fail(tmp_path: Path, job: dict[str, object]) -> None:
    rc, out = run(status(tmp_path, [job]), tmp_path)
    assert rc == 1
    assert "STALE" in out


def test_missing_status_fails_with_a_reason(tmp_path: Path) -> None:
    rc, out = run(with_config(tmp_path), tmp_path)
    assert rc == 1
    assert "no backup status" in out


def test_disk_threshold(tmp_path: Path) -> None:
    assert run(disk_below(101), tmp_path)[0] == 0
    rc, out = run(disk_below(0), tmp_path)
    assert rc == 1
    assert "is at or above 0%" in out


def test_certificate_check_reads_what_nginx_serves(tmp_path: Path) -> None:
    _, cert, _ = make_cert(tmp_path, days=20)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nginx = bin_dir / "nginx"
    nginx.write_text(f"#!/bin/sh\necho 'server {{'\necho '    ssl_certificate {cert};'\necho '}}'\n")
    nginx.chmod(0o755)
    rc, out = run(on_this_machine(certificates_valid_for(7)), tmp_path, str(bin_dir))
    assert rc == 0, out
    assert f"{cert} expires" in out
    rc, out = run(on_this_machine(certificates_valid_for(30)), tmp_path, str(bin_dir))
    assert rc == 1
    assert "UNDER 30" in out


# --------------------------------------------------------------------------- unit_restart


def fake_systemd(tmp_path: Path, state: str, enabled: str, activating_for: int = 0) -> str:
    """A systemctl over files: the unit's state (activating for ``activating_for`` more looks, then
    active), whether it is enabled; every call logged. ``sleep`` returns at once."""
    bin_dir, unit = tmp_path / "bin", tmp_path / "unit"
    bin_dir.mkdir()
    unit.mkdir()
    (unit / "state").write_text(state)
    (unit / "enabled").write_text(enabled)
    (unit / "looks").write_text(str(activating_for))
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\ncd {unit}\necho "$*" >> calls\n'
        'case "$1" in\n'
        "is-active) s=$(cat state); n=$(cat looks);\n"
        '  if [ "$s" = activating ] && [ "$n" -le 0 ]; then s=active; echo active > state; fi;\n'
        "  echo $((n - 1)) > looks; echo $s; [ $s = active ];;\n"
        "is-enabled) cat enabled; [ $(cat enabled) = enabled ];;\n"
        "enable) if [ $(cat enabled) = masked ]; then exit 1; fi; echo enabled > enabled;;\n"
        "unmask) echo disabled > enabled;;\n"
        'restart) if [ $(cat enabled) = masked ]; then echo "Unit is masked." >&2; exit 1; fi;\n'
        "  echo restarted >> restarts; echo active > state;;\n"
        "esac\n"
    )
    (bin_dir / "sleep").write_text("#!/bin/sh\n")
    for tool in ("systemctl", "sleep"):
        (bin_dir / tool).chmod(0o755)
    return str(bin_dir)


def test_a_unit_still_starting_is_waited_for_never_restarted(tmp_path: Path) -> None:
    path = fake_systemd(tmp_path, "activating", "enabled", activating_for=5)
    rc, out = run(unit_restart("mariadb", wait=30), tmp_path, path)
    assert rc == 0, out
    assert "mariadb is starting: waiting up to 30 s for it, not restarting it" in out
    assert "mariadb active after 5 s" in out
    assert not (tmp_path / "unit" / "restarts").exists()


def test_a_unit_starting_longer_than_the_wait_is_unknown_and_not_restarted(tmp_path: Path) -> None:
    path = fake_systemd(tmp_path, "activating", "enabled", activating_for=100)
    rc, out = run(unit_restart("mariadb", wait=10), tmp_path, path)
    assert (rc, out.splitlines()[-1]) == (75, "mariadb still starting after 10 s: not restarted")
    assert not (tmp_path / "unit" / "restarts").exists()


def test_a_stopped_and_disabled_unit_is_started_and_enabled_again(tmp_path: Path) -> None:
    path = fake_systemd(tmp_path, "inactive", "disabled")
    rc, out = run(unit_restart("mariadb"), tmp_path, path)
    assert rc == 0, out
    assert "mariadb was disabled: enabled again, it starts at boot" in out
    assert (tmp_path / "unit" / "enabled").read_text().strip() == "enabled"
    assert (tmp_path / "unit" / "restarts").read_text().strip() == "restarted"


def test_a_masked_unit_is_never_unmasked(tmp_path: Path) -> None:
    path = fake_systemd(tmp_path, "inactive", "masked")
    rc, out = run(unit_restart("nginx"), tmp_path, path)
    assert rc != 0 and "Unit is masked." in out
    calls = (tmp_path / "unit" / "calls").read_text().split("\n")
    assert not [c for c in calls if c.startswith(("unmask", "enable"))]
    assert (tmp_path / "unit" / "enabled").read_text().strip() == "masked"


def test_enable_false_leaves_a_disabled_unit_disabled(tmp_path: Path) -> None:
    path = fake_systemd(tmp_path, "inactive", "disabled")
    rc, _out = run(unit_restart("nginx", enable=False), tmp_path, path)
    assert rc == 0 and (tmp_path / "unit" / "enabled").read_text().strip() == "disabled"


# --------------------------------------------------------------------------- tier-check

DB1_SAYS = {"stdout": "check-database: said", "stderr": ""}


@pytest.mark.parametrize(
    ("hosts", "ansible_rc", "want"),
    [
        ({"db1": {**DB1_SAYS, "rc": 0}}, 0, (0, "sound")),
        ({"db1": {**DB1_SAYS, "rc": 1, "failed": True}}, 2, (1, "broken on db1")),
        ({"db1": {**DB1_SAYS, "rc": 75, "failed": True}}, 2, (75, "unknown, cannot tell on db1 (exit 75)")),
        ({"db1": {**DB1_SAYS, "rc": 124, "failed": True}}, 2, (75, "unknown, cannot tell on db1 (exit 124)")),
        (
            {"db1": {"unreachable": True, "msg": "Failed to connect to the host via ssh"}},
            4,
            (75, "unknown, cannot tell on db1 (unreachable)"),
        ),
        ({"db1": {"failed": True, "msg": "MODULE FAILURE"}}, 2, (75, "unknown, cannot tell on db1 (no exit code)")),
        (
            {"db1": {**DB1_SAYS, "rc": 75, "failed": True}, "db2": {**DB1_SAYS, "rc": 1, "failed": True}},
            2,
            (1, "broken on db2"),
        ),
        ({"db1": {**DB1_SAYS, "rc": 0}, "db2": {**DB1_SAYS, "rc": 0}}, 0, (0, "sound")),
        ({}, 0, (75, "unknown, cannot tell on (ansible exit 0, no host answered)")),
        (None, 1, (75, "unknown, cannot tell on (ansible exit 1, no host answered)")),
    ],
    ids=[
        "sound",
        "broken",
        "unknown",
        "timed out",
        "unreachable",
        "no exit code",
        "broken wins",
        "all sound",
        "no host",
        "ansible failed",
    ],
)
def test_tier_check_keeps_the_three_states_through_ansibles_json(
    tmp_path: Path, hosts: dict[str, object] | None, ansible_rc: int, want: tuple[int, str]
) -> None:
    """A fake `ansible` prints what the JSON callback prints (or, None, an error and no document)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    document = {"plays": [{"play": {"name": "adhoc"}, "tasks": [{"task": {"name": "command"}, "hosts": hosts}]}]}
    printed = json.dumps(document) if hosts is not None else "ERROR! the inventory could not be parsed"
    (tmp_path / "printed").write_text(printed)
    (bin_dir / "ansible").write_text(
        f'#!/bin/sh\necho "$*" > {tmp_path}/argv\necho "$ANSIBLE_STDOUT_CALLBACK" > {tmp_path}/callback\n'
        f"cat {tmp_path}/printed\nexit {ansible_rc}\n"
    )
    (bin_dir / "ansible").chmod(0o755)
    command = tiercheck.command_line("db", "/usr/local/sbin/portalops-backup check-database")
    command = command.replace("{{ inventory }}", "inv").replace("{{ python }}", sys.executable)
    rc, out = run(command, tmp_path, str(bin_dir))
    assert (rc, out.splitlines()[-1]) == want, out
    if hosts:  # each host's answer stays in the journal
        assert all(line.startswith(tuple(hosts)) for line in out.splitlines()[:-1]), out
    argv = (tmp_path / "argv").read_text()
    assert argv.startswith("db -i inv -m ansible.builtin.command -a timeout 240 /usr/local/sbin/portalops-backup")
    assert (tmp_path / "callback").read_text().strip() == "ansible.posix.json"
    # composes as one command
    assert run(f"if ! {command}; then echo no; else echo yes; fi", tmp_path, str(bin_dir))[1].splitlines()[-1] == (
        "yes" if want[0] == 0 else "no"
    )
