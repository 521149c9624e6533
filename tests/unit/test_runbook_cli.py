"""``portalops runbook list|show|run`` and runbook files run directly (no host is contacted)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portalops.cli import main
from portalops.inventory import REPO_ROOT
from portalops.runbook.engine import Runtime
from portalops.runbook.hosts import CommandResult
from portalops.runbook.notify import Notifier
from portalops.runbook.outcome import RunbookExit
from tests.unit.test_runbook_engine import FakeHost, World


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_list_and_show() -> None:
    code, out, _ = cli("runbook", "list")
    assert code == 0
    assert out.splitlines()[0].startswith("l1_")  # L1 first
    assert any(line.startswith("l1_portal_unreachable") for line in out.splitlines())
    assert "L3  备份过期或失败 / Backups stale or failing" in out
    code, out, _ = cli("runbook", "show", "l3_backup_stale")
    assert code == 0
    assert "run: ansible-playbook playbooks/backup.yml" in out


def test_unknown_runbook_is_one_line_and_exit_2() -> None:
    code, _, err = cli("runbook", "run", "l9_nope", "--dry-run")
    assert code == RunbookExit.BAD_INPUT
    assert err.startswith("portalops: no runbook 'l9_nope'; known: l1_") and "l1_portal_unreachable" in err
    assert len(err.splitlines()) == 1


def test_dry_run_prints_every_command_on_inventory_hosts_and_runs_none(tmp_path: Path) -> None:
    code, out, err = cli("runbook", "run", "l1_portal_unreachable", "--dry-run", "--incidents", str(tmp_path))
    assert code == 0
    assert "on web1; timeout 60 s" in out
    assert "systemctl restart nginx && systemctl is-active nginx" in out
    assert f"{sys.executable} -m portalops.cli probe -i {REPO_ROOT / 'inventory/lab'}" in out
    assert "destructive: asks first" in out
    assert "nothing was run" in err
    assert list(tmp_path.iterdir()) == []


def test_limit_to_an_unknown_host_is_bad_input() -> None:
    code, _, err = cli("runbook", "run", "l1_portal_unreachable", "--dry-run", "--limit", "web9")
    assert code == RunbookExit.BAD_INPUT
    assert "has no host or group 'web9'" in err


class Always:
    """A host whose every command exits ``rc``: all well (0) or all broken (1)."""

    def __init__(self, name: str, rc: int, log: list[tuple[str, str]]) -> None:
        self.name, self.rc, self.log = name, rc, log

    def run(self, command: str, timeout: float) -> CommandResult:
        self.log.append((self.name, command))
        return CommandResult(self.rc, "", "broken" if self.rc else "", 0.0)

    def stop(self) -> list[str]:
        return []

    def close(self) -> None:
        return None


@pytest.mark.parametrize(("rc", "exit_code"), [(0, RunbookExit.RECOVERED), (1, RunbookExit.NOT_RECOVERED)])
def test_run_exits_with_the_runbook_outcome(
    rc: int, exit_code: RunbookExit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[tuple[str, str]] = []

    def fake_runtime(
        source: str, inventory: Any, plan: Any, context: Any, progress: Any, confirm: Any, incidents: Path
    ) -> Runtime:
        return Runtime(
            hosts=lambda name: Always(name, rc, log),
            local=Always("controller", rc, log),
            notifier=Notifier(),
            confirm=confirm,
            progress=progress,
            incidents=incidents,
            context=context,
        )

    monkeypatch.setattr("portalops.runbook.live.live_runtime", fake_runtime)
    code, _, err = cli(
        "runbook", "run", "l3_backup_stale", "--yes", "--limit", "db1,backup1", "--incidents", str(tmp_path)
    )
    assert code == exit_code
    (incident,) = tmp_path.iterdir()
    assert f"l3_backup_stale: {'recovered' if rc == 0 else 'not recovered'}" in err
    assert f"record {incident / 'incident.md'}" in err
    assert (incident / "journal.jsonl").exists()
    playbooks = [c for h, c in log if c.startswith("ansible-playbook")]
    assert playbooks == (
        [] if rc == 0 else [f"ansible-playbook -i {REPO_ROOT / 'inventory/lab'} playbooks/backup.yml --limit db1"]
    )
    assert {h for h, _ in log} == {"db1", "backup1"} | ({"controller"} if rc else set())


def test_without_yes_and_without_a_terminal_nothing_is_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    monkeypatch.setattr(
        "portalops.runbook.live.live_runtime",
        lambda source, inventory, plan, context, progress, confirm, incidents: Runtime(
            hosts=lambda name: FakeHost(name, world),
            local=FakeHost("controller", world),
            notifier=Notifier(),
            confirm=confirm,
            progress=progress,
            incidents=incidents,
            context=context,
        ),
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.delenv("PORTALOPS_YES", raising=False)
    code, _, err = cli("runbook", "run", "l1_portal_unreachable", "--incidents", str(tmp_path))
    assert code == RunbookExit.ABORTED
    assert "Run this plan? [y/N] no (not a terminal: pass --yes)" in err
    assert world.log == []
    assert list(tmp_path.iterdir()) == []


def test_a_runbook_file_runs_on_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "runbooks/l3_certificate_expiry.py", "--dry-run"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "l3_certificate_expiry: L3 三级 · 证书即将过期 / Certificate near expiry" in result.stdout
    assert "ansible-playbook -i" in result.stdout


class InterruptOnce(Always):
    interrupted = False

    def run(self, command: str, timeout: float) -> CommandResult:
        if not InterruptOnce.interrupted:
            InterruptOnce.interrupted = True
            raise KeyboardInterrupt
        return super().run(command, timeout)


def test_resume_keeps_the_incidents_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "portalops.runbook.live.live_runtime",
        lambda source, inventory, plan, context, progress, confirm, incidents: Runtime(
            hosts=lambda name: InterruptOnce(name, 0, log),
            local=Always("controller", 0, log),
            notifier=Notifier(),
            confirm=confirm,
            progress=progress,
            incidents=incidents,
            context=context,
            inventory_source=source,
        ),
    )
    code, _, err = cli("runbook", "run", "l3_backup_stale", "--yes", "--limit", "db1", "--incidents", str(tmp_path))
    assert code == RunbookExit.ABORTED
    assert "interrupted at backup_status" in err
    (incident,) = tmp_path.iterdir()
    code, _, _ = cli(
        "runbook", "run", "l3_backup_stale", "--yes", "--resume", incident.name, "--incidents", str(tmp_path)
    )
    assert code == RunbookExit.RECOVERED
    assert {h for h, _ in log} == {"db1"}
    code, _, err = cli("runbook", "run", "l3_backup_stale", "--resume", "nope", "--incidents", str(tmp_path))
    assert code == RunbookExit.BAD_INPUT
    assert err == f"portalops: no incident 'nope' under {tmp_path}\n"
