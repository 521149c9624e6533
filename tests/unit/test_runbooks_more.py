"""The L2/L3 runbooks (disk pressure, slow response, degraded services): whole incidents against a fake lab that
answers the very commands the plan holds, and their shell run for real on made-up state."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portalops.inventory import REPO_ROOT, Inventory, parse_inventory
from portalops.runbook import Runbook
from portalops.runbook.checks import (
    MARIADB_SLOW_LOG,
    NGINX_ACCESS_LOG,
    PHP_FPM_LOG,
    PHP_FPM_POOLS,
    PROBE,
    fpm_pools_not_saturated,
    no_failed_units,
    probe_within,
    restart_failed,
    unit_restart,
    units_not_failed,
)
from portalops.runbook.engine import Options, RunResult, Runtime, run_runbook
from portalops.runbook.hosts import CommandResult, LocalHost
from portalops.runbook.journal import read_events
from portalops.runbook.notify import Notifier
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.planning import describe, fill, make_plan
from portalops.runbook.registry import get
from tests.unit.hostscripts import on_this_machine

DISK = get("l2_disk_pressure")
SLOW = get("l2_slow_response")
DEGRADED = get("l3_degraded_services")
HOSTS = ("web1", "cms1", "db1", "backup1")
INVENTORY = parse_inventory(
    {
        "_meta": {"hostvars": {h: {} for h in HOSTS}},
        "all": {"children": ["web", "cms", "db", "backup"]},
        "web": {"hosts": ["web1"]},
        "cms": {"hosts": ["cms1"]},
        "db": {"hosts": ["db1"]},
        "backup": {"hosts": ["backup1"]},
    },
    "inventory/test",
)
CONTEXT = {"python": "python", "inventory": "inventory/test", "repo": "."}
Handler = Callable[[str], tuple[int, str]]


# --------------------------------------------------------------------------- a fake lab answering planned commands


@dataclass
class Lab:
    """Hosts that answer only the commands of the runbook's plan: each by its step and role, through a handler."""

    runbook: Runbook
    handlers: dict[str, Handler] = field(default_factory=dict)
    log: list[tuple[str, str]] = field(default_factory=list)
    inventory: Inventory = INVENTORY

    def __post_init__(self) -> None:
        self.plan = make_plan(self.runbook, self.inventory, [], CONTEXT)
        for planned in self.plan:
            for text in (planned.run, planned.check):
                if text:
                    self.handlers.setdefault(text, lambda host: (0, "as expected"))

    def command(self, step: str, role: str = "run") -> str:
        planned = next(p for p in self.plan if p.step.id == step)
        return planned.check if role == "check" else planned.run

    def on(self, step: str, role: str, handler: Handler) -> None:
        self.handlers[self.command(step, role)] = handler

    def run(self, host: str, command: str) -> CommandResult:
        self.log.append((host, command))
        if command not in self.handlers:
            raise AssertionError(f"{host} was asked to run a command the plan does not hold: {command!r}")
        rc, out = self.handlers[command](host)
        return CommandResult(rc, out, "", 0.01)

    def ran(self, step: str, role: str = "run") -> list[str]:
        text = self.command(step, role)
        return [h for h, c in self.log if c == text]

    def go(self, tmp_path: Path, options: Options, answers: tuple[bool, ...] = ()) -> RunResult:
        replies = list(answers)
        runtime = Runtime(
            hosts=lambda name: FakeHost(name, self),
            local=FakeHost("controller", self),
            notifier=Notifier([]),
            confirm=lambda question: replies.pop(0) if replies else False,
            progress=lambda line: None,
            incidents=tmp_path / "incidents",
            context=CONTEXT,
            clock=Clock(),
            sleep=lambda seconds: None,
        )
        return run_runbook(self.runbook, self.plan, runtime, options)


@dataclass
class FakeHost:
    name: str
    lab: Lab

    def run(self, command: str, timeout: float) -> CommandResult:
        return self.lab.run(self.name, command)

    def stop(self) -> list[str]:
        return []

    def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def results(tmp_path: Path, incident: str) -> dict[str, str]:
    found = read_events(tmp_path / "incidents" / incident / "journal.jsonl")
    return {e["step"]: e["result"] for e in found if e["event"] == "step_end"}


def record(tmp_path: Path, incident: str) -> str:
    return (tmp_path / "incidents" / incident / "incident.md").read_text()


# --------------------------------------------------------------------------- L2 disk pressure

FREEABLE = ("apt_clean", "restic_cache", "staging_leftovers", "journal_vacuum", "old_rotated_logs")


def disk_lab(usage: dict[str, int], freeable: dict[str, dict[str, int]], locked: tuple[str, ...] = ()) -> Lab:
    """``usage``: percent used per host, changed by the acts; ``freeable``: percent points each act frees;
    ``locked``: hosts where a backup run holds the lock."""
    lab = Lab(DISK)

    def below(host: str) -> tuple[int, str]:
        used = usage[host]
        return (0, f"/ {used}% used\nevery filesystem below 85%") if used < 85 else (1, f"at or above 85%: / ({used}%)")

    def check(step: str) -> Handler:
        return lambda host: (0, "fine") if usage[host] < 85 or not freeable.get(host, {}).get(step) else (1, "some")

    def act(step: str) -> Handler:
        def run(host: str) -> tuple[int, str]:
            if step in ("restic_cache", "staging_leftovers") and host in locked:
                return 75, "a portalops-backup run holds /run/lock/portalops-backup.lock: left alone"
            usage[host] -= freeable.setdefault(host, {}).pop(step, 0)
            return 0, "freed"

        return run

    lab.on("usage", "run", below)
    lab.on("below_limit", "run", below)
    for step in FREEABLE:
        lab.on(step, "check", check(step))
        lab.on(step, "run", act(step))
    return lab


def test_disk_pressure_frees_only_where_full_and_recovers(tmp_path: Path) -> None:
    usage = {"web1": 40, "cms1": 60, "db1": 92, "backup1": 70}
    lab = disk_lab(usage, {"db1": {"apt_clean": 3, "old_rotated_logs": 5}, "web1": {"apt_clean": 10}})
    result = lab.go(tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.RECOVERED
    assert usage["db1"] == 84
    assert lab.ran("apt_clean") == ["db1"]  # web1 has a cache too, but no pressure
    assert lab.ran("old_rotated_logs") == ["db1"]
    assert lab.ran("journal_vacuum") == lab.ran("staging_leftovers") == []
    steps = results(tmp_path, result.incident)
    assert steps["apt_clean"] == steps["old_rotated_logs"] == "done"
    assert steps["below_limit"] == "passed"
    assert steps["storage_owner"] == "skipped"


def test_disk_pressure_that_retention_cannot_free_is_escalated(tmp_path: Path) -> None:
    usage = {"web1": 40, "cms1": 60, "db1": 50, "backup1": 95}  # the restic repositories grew
    lab = disk_lab(usage, {"backup1": {"apt_clean": 1, "staging_leftovers": 4}}, locked=("backup1",))
    result = lab.go(tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.NOT_RECOVERED
    assert usage["backup1"] == 94  # staging kept: a backup run holds the lock
    steps = results(tmp_path, result.incident)
    assert steps["staging_leftovers"] == "failed"
    assert steps["below_limit"] == "failed"
    assert steps["storage_owner"] == "escalated"
    assert sorted(lab.ran("storage_owner")) == sorted(HOSTS)  # evidence from every host
    text = record(tmp_path, result.incident)
    assert "below_limit failed: backup1: at or above 85%: / (94%)" in text
    assert "escalated to the system administrator" in text


def test_disk_pressure_asks_before_deleting_anything_that_does_not_come_back(tmp_path: Path) -> None:
    assert {s.id for s in DISK.steps if s.destructive} == {"staging_leftovers", "journal_vacuum", "old_rotated_logs"}
    usage = {"web1": 40, "cms1": 60, "db1": 92, "backup1": 70}
    lab = disk_lab(usage, {"db1": {"old_rotated_logs": 10}})
    result = lab.go(tmp_path, Options(), answers=(True, False))  # yes to the plan, no to deleting old logs
    assert result.exit is RunbookExit.ABORTED
    assert lab.ran("old_rotated_logs") == []
    assert usage["db1"] == 92


def _module(runbook: Runbook) -> Any:
    """The runbook's file as a module, for the constants its commands are built from."""
    spec = importlib.util.spec_from_file_location(f"{runbook.id}_under_test", REPO_ROOT / runbook.source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_disk_pressure_never_targets_anything_younger_than_the_retention() -> None:
    """Every command the plan holds, as --dry-run shows it: whatever deletes logs is bounded by $ret, set first
    from the host's logrotate policies and never below 180 days; the other deletions stay in two caches."""
    module = _module(DISK)
    assert module.RETENTION_DAYS == 180
    plan = make_plan(DISK, INVENTORY, [], CONTEXT)
    shown = describe(DISK, plan, CONTEXT)
    commands = [text for p in plan for text in (p.check, p.run) if text]
    for command in commands:
        assert command in shown
        if "$ret" in command:
            before, found, _ = command.partition(module.RETENTION)
            assert found and "$ret" not in before, command
    deleting = [c for c in commands if re.search(r"-delete|rm -|--vacuum", c)]
    assert [p.step.id for p in plan if p.run in deleting] == [
        "restic_cache",
        "staging_leftovers",
        "journal_vacuum",
        "old_rotated_logs",
    ]
    for command in deleting:
        assert not re.search(r"-mmin|-[acm]newer|-[ac]time|--vacuum-(size|files)", command), command
        assert re.findall(r"-mtime \S+", command) in ([], ['-mtime +"$ret"']), command
        assert "rm -rf" not in command or "-exec rm -rf {} +" in command
        if "--vacuum" in command:
            assert re.findall(r"--vacuum\S*", command) == ['--vacuum-time="${ret}d"']
            continue
        (target,) = re.findall(r"\bfind (\S+)", command)
        if target == "/var/log":
            assert "-name '*.gz' -mtime +\"$ret\" -print -delete" in command
        else:
            assert target in (module.RESTIC_CACHE, module.STAGING)
            assert f"flock -n -E 75 {module.BACKUP_LOCK} find {target} -mindepth 1" in command


def _age(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    moment = time.time() - days * 86400
    os.utime(path, (moment, moment))
    return path


def _local(command: str, tmp_path: Path, bin_dir: Path | None = None, **env: str) -> tuple[int, str]:
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    result = LocalHost(tmp_path, env).run(command, timeout=60)
    return result.rc, result.stdout + result.stderr


@pytest.mark.parametrize(("policy", "retention"), [(None, 180), ("rotate 30", 180), ("rotate 365", 365)])
def test_old_log_deletion_spares_every_log_younger_than_the_retention(
    tmp_path: Path, policy: str | None, retention: int
) -> None:
    logs, policies = tmp_path / "log", tmp_path / "logrotate.d"
    policies.mkdir()
    if policy:
        (policies / "portalops-nginx").write_text(f'"/var/log/nginx/*.log"\n{{\n\tdaily\n\t{policy}\n}}\n')
    files = {
        "young.gz": _age(logs / "nginx/access.log-20260101-000000.gz", retention - 1),
        "edge.gz": _age(logs / "syslog-20250101-000000.gz", retention - 0.5),
        "old.gz": _age(logs / "nginx/access.log-20240101-000000.gz", retention + 2),
        "old.log": _age(logs / "sudo.log", retention + 400),
        "old-plain": _age(logs / "mysql/mariadb-slow.log.1", retention + 400),
    }
    command = (
        DISK.step("old_rotated_logs")
        .run.replace("/etc/logrotate.d/portalops-*", f"{policies}/portalops-*")
        .replace("/var/log", str(logs))
    )
    rc, out = _local(command, tmp_path)
    assert rc == 0, out
    assert f"retention {retention} days" in out
    assert {name for name, path in files.items() if not path.exists()} == {"old.gz"}


@pytest.mark.parametrize(("policy", "days"), [("rotate 7", "180d"), ("rotate 400", "400d")])
def test_journal_vacuum_keeps_at_least_the_retention(tmp_path: Path, policy: str, days: str) -> None:
    bin_dir, policies = tmp_path / "bin", tmp_path / "logrotate.d"
    bin_dir.mkdir()
    policies.mkdir()
    (policies / "portalops-syslog").write_text(f"/var/log/syslog {{\n\t{policy}\n}}\n")
    journalctl = bin_dir / "journalctl"
    journalctl.write_text('#!/bin/sh\necho "journalctl $*"\n')
    journalctl.chmod(0o755)
    command = DISK.step("journal_vacuum").run.replace("/etc/logrotate.d/portalops-*", f"{policies}/portalops-*")
    rc, out = _local(command, tmp_path, bin_dir)
    assert rc == 0, out
    assert out.strip() == f"journalctl --vacuum-time={days}"


def test_staging_is_left_alone_while_a_backup_run_holds_the_lock(tmp_path: Path) -> None:
    staging, lock = tmp_path / "staging", tmp_path / "portalops-backup.lock"
    _age(staging / "db-physical/ibdata1", 1)
    command = (
        DISK.step("staging_leftovers")
        .run.replace("/run/lock/portalops-backup.lock", str(lock))
        .replace("/var/backups/portalops", str(staging))
    )
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as portalops_backup.py's run_lock does
        rc, out = _local(command, tmp_path)
    assert rc == 75
    assert "holds" in out
    assert (staging / "db-physical/ibdata1").exists()
    rc, out = _local(command, tmp_path)
    assert rc == 0, out
    assert staging.is_dir()
    assert list(staging.iterdir()) == []


# --------------------------------------------------------------------------- L2 slow response


def slow_lab(cause: str) -> tuple[Lab, dict[str, Any]]:
    state: dict[str, Any] = {"slow": True, "saturated": cause == "fpm", "queries": 7 if cause == "db" else 0}
    lab = Lab(SLOW)

    def probe(host: str) -> tuple[int, str]:
        return (1, "main total 4210.0 ms ok SLOW\nover 2 s or failing: main") if state["slow"] else (0, "within 2 s")

    def pools(host: str) -> tuple[int, str]:
        if state["saturated"]:
            return (
                1,
                "wordpress-main: 10 of 10 children, 4 reached pm.max_children in 10 min\nsaturated: wordpress-main",
            )
        return 0, "wordpress-main: 2 of 10 children, 0 reached pm.max_children in 10 min\nno pool saturated"

    def reload(host: str) -> tuple[int, str]:
        state["saturated"] = False
        state["slow"] = cause != "fpm"
        return 0, "active"

    def queries(host: str) -> tuple[int, str]:
        count = state["queries"]
        return int(bool(count)), f"{count} slow queries (over long_query_time) in the last hour"

    lab.on("probe", "run", probe)
    lab.on("fpm_pools", "run", pools)
    lab.on("reload_php_fpm", "run", reload)
    lab.on("slow_queries", "run", queries)
    return lab, state


def test_slow_response_from_saturated_pools_is_mitigated_by_a_reload(tmp_path: Path) -> None:
    lab, state = slow_lab("fpm")
    result = lab.go(tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.RECOVERED
    assert not state["saturated"]
    assert lab.ran("reload_php_fpm") == ["cms1"]
    assert lab.command("reload_php_fpm") == "systemctl reload php8.2-fpm && systemctl is-active php8.2-fpm"
    assert not [c for _, c in lab.log if "restart" in c]
    steps = results(tmp_path, result.incident)
    assert steps["fpm_pools"] == "problem"
    assert steps["fast_again"] == "passed"
    assert "fpm_pools on cms1: saturated: wordpress-main" in record(tmp_path, result.incident)


def test_slow_response_from_slow_queries_is_escalated_with_the_evidence(tmp_path: Path) -> None:
    lab, state = slow_lab("db")
    result = lab.go(tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.NOT_RECOVERED
    assert state["slow"]
    assert lab.ran("reload_php_fpm") == []  # not saturated: nothing to do there
    assert lab.ran("fast_again").count("controller") == 1 + 5  # the diagnosis, then five attempts
    steps = results(tmp_path, result.incident)
    assert steps["reload_php_fpm"] == "not_needed"
    assert steps["performance_owner"] == "escalated"
    text = record(tmp_path, result.incident)
    assert "slow_queries on db1: 7 slow queries (over long_query_time) in the last hour" in text
    assert "fast_again failed: controller: over 2 s or failing: main" in text
    assert sorted(lab.ran("performance_owner")) == ["cms1", "db1", "web1"]


def test_slow_response_changes_nothing_destructive() -> None:
    assert not [s for s in SLOW.steps if s.destructive]
    assert [s.id for s in SLOW.steps if s.kind == "act"] == ["reload_php_fpm"]
    assert SLOW.step("probe").run.startswith(PROBE + " --json | ")  # the same probe as the L1 runbook


def test_probe_threshold(tmp_path: Path) -> None:
    answer = tmp_path / "probe.json"
    command = fill(probe_within(2), {"python": sys.executable, "inventory": "x"})
    command = command.replace(fill(PROBE, {"python": sys.executable, "inventory": "x"}) + " --json", f"cat {answer}")
    site = {"site": "main", "domain": "www.example.cn", "ok": True, "status": 200, "error": ""}
    answer.write_text(json.dumps([{**site, "timings_ms": {"total": 350.5}}]))
    assert _local(command, tmp_path) == (0, "main www.example.cn total 350.5 ms ok\nevery site within 2 s\n")
    answer.write_text(answer.read_text().replace("350.5", "2400.0"))
    rc, out = _local(command, tmp_path)
    assert (rc, out.splitlines()[-1]) == (1, "over 2 s or failing: main")
    answer.write_text("")
    assert _local(command, tmp_path)[0] == 1


def _bin(tmp_path: Path, ps_lines: tuple[str, ...] = ()) -> Path:
    """A ``ps`` printing ``ps_lines``, as the hosts have."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ps").write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(ps_lines) + "\nEOF\n")
    (bin_dir / "ps").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("busy", "warned_min_ago", "saturated"),
    [(3, None, False), (10, None, True), (2, 4, True), (2, 120, False)],
    ids=["idle", "all children busy", "reached max recently", "reached max long ago"],
)
def test_pool_saturation(tmp_path: Path, busy: int, warned_min_ago: int | None, saturated: bool) -> None:
    pools, log = tmp_path / "pool.d", tmp_path / "php8.2-fpm.log"
    pools.mkdir()
    for name in ("main", "news"):
        (pools / f"wordpress-{name}.conf").write_text(f"[wordpress-{name}]\npm = ondemand\npm.max_children = 10\n")
    bin_dir = _bin(
        tmp_path,
        ("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",)
        + ("php-fpm: pool wordpress-main   ",) * busy
        + ("php-fpm: pool wordpress-news", "nginx: worker process"),
    )
    lines = ["[10-Mar-2026 10:00:00] NOTICE: ready to handle connections"]
    if warned_min_ago is not None:
        when = time.strftime("%d-%b-%Y %H:%M:%S", time.localtime(time.time() - warned_min_ago * 60))
        # As php-fpm 8.2 logs it for an ondemand pool (pm = dynamic says "pm.max_children").
        lines.append(
            f"[{when}] WARNING: [pool wordpress-main] server reached max_children setting (10), consider raising"
        )
    log.write_text("\n".join(lines) + "\n")
    command = on_this_machine(
        fpm_pools_not_saturated(10).replace(PHP_FPM_POOLS, f"{pools}/wordpress-*.conf").replace(PHP_FPM_LOG, str(log))
    )
    rc, out = _local(command, tmp_path, bin_dir)
    assert f"wordpress-main: {busy} of 10 children" in out
    assert "wordpress-news: 1 of 10 children, 0 reached" in out
    assert (rc, out.splitlines()[-1]) == ((1, "saturated: wordpress-main") if saturated else (0, "no pool saturated"))


def test_slow_query_count_covers_the_last_hour(tmp_path: Path) -> None:
    log, bin_dir = tmp_path / "mariadb-slow.log", _bin(tmp_path)

    def entry(minutes_ago: int) -> str:
        stamp = time.strftime("%y%m%d %H:%M:%S", time.localtime(time.time() - minutes_ago * 60))
        return f"# Time: {stamp}\n# User@Host: wp[wp] @ cms1 []\n# Query_time: 3.2  Lock_time: 0.0\nSELECT 1;\n"

    log.write_text(entry(150) + entry(30) + entry(5))
    command = on_this_machine(SLOW.step("slow_queries").run.replace(MARIADB_SLOW_LOG, str(log)))
    rc, out = _local(command, tmp_path, bin_dir)
    assert (rc, out.splitlines()[-1]) == (1, "2 slow queries (over long_query_time) in the last hour")
    log.write_text(entry(150))
    assert _local(command, tmp_path, bin_dir)[0] == 0


def test_cache_bypass_share_of_the_access_log(tmp_path: Path) -> None:
    log = tmp_path / "access.log"

    def line(cs: str, rt: str) -> str:
        return (
            '10.0.0.1 - - [10/Mar/2026:10:00:00 +0800] "GET / HTTP/2.0" 200 512 "-" "agent cs=HIT rt=0" '
            f"host=www.example.cn rt={rt} uct=0.001 uht={rt} urt={rt} ua=10.89.60.12:8080 us=200 cs={cs} rid=abc"
        )

    log.write_text("\n".join([line("MISS", "2.5")] * 5 + [line("BYPASS", "0.3")] * 2 + [line("HIT", "0.01")] * 3))
    command = SLOW.step("cache_bypass").run.replace(NGINX_ACCESS_LOG, str(log))
    rc, out = _local(command, tmp_path)
    assert rc == 1
    assert "5 of 10 requests took over 2 s (rt)" in out
    assert out.splitlines()[-1] == "cache MISS/BYPASS: 70% of the last 10 requests (over 50%)"
    log.write_text("\n".join([line("HIT", "0.01")] * 9 + [line("-", "0.2")]))
    rc, out = _local(command, tmp_path)
    assert (rc, out.splitlines()[-1]) == (0, "cache MISS/BYPASS: 0% of the last 10 requests")


# --------------------------------------------------------------------------- L3 degraded services

PORTAL = ("mariadb", "php8.2-fpm", "nginx", "fail2ban")


def degraded_lab(failed: dict[str, set[str]], broken: frozenset[str] = frozenset()) -> Lab:
    lab = Lab(DEGRADED)

    def listing(host: str) -> tuple[int, str]:
        units = sorted(failed.get(host, set()))
        return (1, "failed: " + " ".join(units)) if units else (0, "no failed units")

    def none_failed(units: tuple[str, ...]) -> Handler:
        return lambda host: (1, "failed") if failed.get(host, set()) & set(units) else (0, "none failed")

    def restart(units: tuple[str, ...]) -> Handler:
        def run(host: str) -> tuple[int, str]:
            down = failed.get(host, set()) & set(units)
            failed[host] = (failed.get(host, set()) - down) | (down & broken)
            return int(bool(down & broken)), "restarting failed " + " ".join(sorted(down))

        return run

    lab.on("failed_units", "run", listing)
    lab.on("no_failed_units", "run", listing)
    lab.on("restart_failed_services", "check", none_failed(PORTAL))
    lab.on("restart_failed_services", "run", restart(PORTAL))
    lab.on("restart_failed_firewall", "check", none_failed(("nftables",)))
    lab.on("restart_failed_firewall", "run", restart(("nftables",)))
    return lab


def test_degraded_failed_portal_service_is_restarted_and_recovers(tmp_path: Path) -> None:
    failed = {"cms1": {"php8.2-fpm"}}
    lab = degraded_lab(failed)
    result = lab.go(tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.RECOVERED
    assert lab.ran("restart_failed_services") == ["cms1"]  # checked failed there, and only there
    assert sorted(lab.ran("restart_failed_services", "check")) == sorted(HOSTS)
    assert lab.ran("restart_failed_firewall") == []
    assert failed["cms1"] == set()
    steps = results(tmp_path, result.incident)
    assert steps["review_warnings"] == "pending"  # --yes: the person's review becomes a follow-up
    assert "manual step review_warnings" in record(tmp_path, result.incident)


def test_degraded_units_that_stay_failed_are_escalated(tmp_path: Path) -> None:
    failed = {"db1": {"mariadb"}, "web1": {"lab-extra.service"}}  # mariadb will not start; the other is no portal unit
    lab = degraded_lab(failed, broken=frozenset({"mariadb"}))
    result = lab.go(tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.NOT_RECOVERED
    assert lab.ran("restart_failed_services") == ["db1"]
    assert lab.ran("no_failed_units").count("web1") == 1 + 3  # the diagnosis, then three attempts
    steps = results(tmp_path, result.incident)
    assert steps["restart_failed_services"] == "failed"
    assert steps["second_line"] == "escalated"
    text = record(tmp_path, result.incident)
    assert "no_failed_units failed: web1: failed: lab-extra.service" in text
    assert "no_failed_units failed: db1: failed: mariadb" in text


def test_degraded_firewall_restart_asks_first(tmp_path: Path) -> None:
    failed = {"web1": {"nftables"}}
    lab = degraded_lab(failed)
    result = lab.go(tmp_path, Options(), answers=(True, False))
    assert result.exit is RunbookExit.ABORTED
    assert results(tmp_path, result.incident)["restart_failed_firewall"] == "declined"
    assert failed["web1"] == {"nftables"}


def _fake_systemctl(bin_dir: Path, restarted: Path) -> None:
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  is-failed) for u in $FAILED; do [ "$u" = "$3" ] && exit 0; done; exit 1 ;;\n'
        f'  restart) echo "$2" >> {restarted}; exit 0 ;;\n'
        "  is-active) echo active ;;\n"
        '  --failed) for u in $FAILED; do echo "$u.service loaded failed failed Unit $u"; done ;;\n'
        "esac\n"
    )
    (bin_dir / "systemctl").chmod(0o755)


def test_only_failed_portal_units_are_restarted(tmp_path: Path) -> None:
    bin_dir, restarted = tmp_path / "bin", tmp_path / "restarted"
    _fake_systemctl(bin_dir, restarted)
    failed = "nginx lab-extra"
    rc, out = _local(units_not_failed(*PORTAL), tmp_path, bin_dir, FAILED=failed)
    assert (rc, out.strip()) == (1, "failed: nginx")
    rc, out = _local(restart_failed(*PORTAL), tmp_path, bin_dir, FAILED=failed)
    assert rc == 0, out
    assert restarted.read_text().split() == ["nginx"]
    rc, out = _local(no_failed_units(), tmp_path, bin_dir, FAILED=failed)
    assert (rc, out.splitlines()[-1]) == (1, "failed: nginx.service lab-extra.service")
    assert _local(no_failed_units(), tmp_path, bin_dir, FAILED="") == (0, "no failed units\n")


def test_warnings_of_needrestart_aide_and_rkhunter(tmp_path: Path) -> None:
    module = _module(DEGRADED)
    bin_dir = _bin(tmp_path)
    (bin_dir / "needrestart").write_text(
        "#!/bin/sh\nprintf 'NEEDRESTART-VER: 3.6\\nNEEDRESTART-KSTA: 1\\nNEEDRESTART-SVC: nginx.service\\n"
        "NEEDRESTART-SVC: php8.2-fpm.service\\n'\n"
    )
    (bin_dir / "needrestart").chmod(0o755)
    rc, out = _local(module.NEEDRESTART, tmp_path, bin_dir)
    assert (rc, out.splitlines()[-1].strip()) == (1, "restart pending after upgrades: nginx.service php8.2-fpm.service")
    rkhunter, aide = tmp_path / "rkhunter.log", tmp_path / "aide.log"
    command = module.INTEGRITY.replace(module.RKHUNTER_LOG, str(rkhunter)).replace(module.AIDE_LOG, str(aide))
    assert _local(command, tmp_path)[0] == 0  # no logs yet: nothing to report
    rkhunter.write_text("[03:10:01] Info: Starting test\n[03:10:05] Warning: The file properties have changed:\n")
    aide.write_text("AIDE found differences between database and filesystem!!\nChanged entries:\t1\n")
    rc, out = _local(command, tmp_path)
    assert "rkhunter: 1 warning(s) in its last log" in out
    assert (rc, out.splitlines()[-1]) == (1, "warnings from: rkhunter AIDE")
    aide.write_text("AIDE found NO differences between database and filesystem. Looks okay!!\n")
    rkhunter.write_text("[03:10:01] Info: Starting test\n")
    assert _local(command, tmp_path) == (
        0,
        "rkhunter: 0 warning(s) in its last log\nAIDE: its last check found no differences\n"
        "no AIDE or rkhunter warnings\n",
    )


@pytest.mark.parametrize("state", ["deactivating", "failed"])
def test_a_unit_stuck_stopping_has_its_remainder_killed_before_the_restart(tmp_path: Path, state: str) -> None:
    bin_dir = _bin(tmp_path)
    calls = tmp_path / "calls"
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n'
        f'if [ "$1" = is-active ] && [ ! -e {tmp_path}/restarted ]; then echo {state}; exit 3; fi\n'
        f'if [ "$1" = restart ]; then touch {tmp_path}/restarted; fi\n'
        'if [ "$1" = is-active ]; then echo active; fi\n'
    )
    (bin_dir / "systemctl").chmod(0o755)
    (bin_dir / "sleep").write_text("#!/bin/sh\n")
    (bin_dir / "sleep").chmod(0o755)
    rc, _out = _local(unit_restart("php8.2-fpm"), tmp_path, bin_dir)
    lines = calls.read_text().splitlines()
    assert rc == 0 and lines[-2:] == ["restart php8.2-fpm", "is-active php8.2-fpm"]
    assert ("kill --signal=SIGKILL php8.2-fpm" in lines) == (state == "deactivating")
