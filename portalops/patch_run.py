"""The judgements of a patch run (playbooks/patch.yml over the patching role), as pure functions.

The role's tasks observe - stat, dpkg, df, the backup status, apt's simulation, needrestart, the
gate's probes - and hand the registered results to these functions through the role's filter plugin
roles/patching/filter_plugins/portalops_patching.py; what they answer (a list of problems, the hosts
in order, the upgrades to apply) is what the tasks act on. Standard library only: the filter plugin loads this
file by itself, from its own checkout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_TIER_ORDER = ("drill", "backup", "db", "cms", "web")
HOST_LOCK = "/run/portalops-patch.lock"
BACKUP_STATUS = "/var/lib/portalops/backup/run.json"
NEEDRESTART_SERVICE = "NEEDRESTART-SVC: "

# apt-get -s: "Inst openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])"
INST = re.compile(r"^Inst (?P<name>\S+) (?:\[(?P<old>[^\]]+)\] )?\((?P<new>\S+) (?P<origin>[^)]*)\)")


@dataclass(frozen=True)
class Limits:
    """What a host must satisfy before any host is patched (patching_min_free_mb and the backup age)."""

    min_free_mb: int = 1024
    max_backup_age_hours: float = 26.0
    ignore_backup_age: bool = False


def rollout(tier_order: Sequence[str], groups: Mapping[str, Sequence[str]], selected: Iterable[str]) -> list[str]:
    """The hosts of the run in order: tier by tier, inventory order within a tier, each once, only
    those ``selected`` (patch_only's hosts); a tier without a group adds nothing."""
    chosen = set(selected)
    order: list[str] = []
    for host in (host for tier in tier_order for host in groups.get(tier, [])):
        if host in chosen and host not in order:
            order.append(host)
    return order


def free_mb(df: str) -> int:
    """The least free MiB of the filesystems in ``df -Pm`` output (the column Available)."""
    return min(int(line.split()[3]) for line in df.splitlines()[1:])


def _number(value: Any) -> float:
    """A number as Jinja's float filter reads it: anything else (absent, null, text) is 0."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def backup_age_hours(status: Mapping[str, Any], now: float) -> float | None:
    """Hours since the oldest job (run or not run) last succeeded, to 0.1 h; None when a job never
    succeeded or none is recorded - no backup at all."""
    jobs = [*(status.get("jobs") or []), *(status.get("not_run") or [])]
    oldest = min((_number(job.get("last_success_ts")) for job in jobs), default=0.0)
    return round((now - oldest) / 3600, 1) if oldest > 0 else None


def backup_problems(status_text: str, limits: Limits, now: float) -> list[str]:
    """A backup client's status file (its text; '' when there is none) against the age limit."""
    try:
        status = json.loads(status_text) if status_text.strip() else {}
    except ValueError:
        status = None
    if not isinstance(status, dict):
        return [f"the backup status {BACKUP_STATUS} is not readable JSON; run playbooks/backup.yml first"]
    age = backup_age_hours(status, now)
    if age is None:
        return [f"no successful backup recorded ({BACKUP_STATUS}); run playbooks/backup.yml first"]
    if age <= limits.max_backup_age_hours:
        return []
    return [
        f"the newest backup is {age} h old (limit {float(limits.max_backup_age_hours)} h); run playbooks/backup.yml"
        " first, or set patch_ignore_backup_age=true to patch anyway"
    ]


def precheck_problems(
    *,
    host_locked: bool,
    apt: Mapping[str, Any],
    disk: str,
    backup_status: str | None,
    limits: Limits,
    now: float,
) -> list[str]:
    """Why a host must not be patched now; [] when it may.

    ``apt`` is the result of ``dpkg --audit`` and ``apt-get check`` (rc, stderr); ``disk`` the
    output of ``df -Pm / /var``; ``backup_status`` the text of the backup status file, '' when it
    could not be read, None when the host is no backup client (nothing to check).
    """
    problems = [f"another patch run holds {HOST_LOCK}"] if host_locked else []
    if apt.get("rc") != 0:
        problems.append(f"apt is broken (dpkg --audit / apt-get check): {apt.get('stderr', '')}")
    free = free_mb(disk)
    if free < limits.min_free_mb:
        problems.append(f"only {free} MiB free on / or /var (need {limits.min_free_mb})")
    if backup_status is not None and not limits.ignore_backup_age:
        problems += backup_problems(backup_status, limits, now)
    return problems


def pending(simulation: str, mode: str) -> list[dict[str, str]]:
    """The upgrades apt would make; security mode keeps those from a Debian-Security origin."""
    found = []
    for line in simulation.splitlines():
        match = INST.match(line)
        if not match:
            continue
        item = {k: v or "" for k, v in match.groupdict().items()}
        if mode == "security" and "Debian-Security" not in item["origin"]:
            continue
        found.append(item)
    return found


def pending_lines(packages: Sequence[Mapping[str, str]]) -> list[str]:
    """The upgrades as a person reads them: 'name: old -> new' ('(new)' for a new dependency)."""
    return [f"{p['name']}: {p['old'] or '(new)'} -> {p['new']}" for p in packages] or ["nothing to upgrade"]


def needrestart_services(lines: Sequence[str]) -> list[str]:
    """The services ``needrestart -b`` names as running replaced code."""
    return [line.removeprefix(NEEDRESTART_SERVICE) for line in lines if line.startswith(NEEDRESTART_SERVICE)]


def reboot_verdict(required: bool, container: bool) -> str:
    """What the run did about a required reboot: a container cannot reboot itself, so it reports it."""
    if not required:
        return "not required"
    return "reported (container)" if container else "rebooted"


def tier_of(group_names: Sequence[str], tier_order: Sequence[str]) -> str:
    """The host's tier: its first group (in group_names' order) that is a tier; '' for none."""
    return next((group for group in group_names if group in tier_order), "")


def gate_services(services: Mapping[str, Sequence[str]], group_names: Sequence[str]) -> list[str]:
    """The units the gate finds active on a host: those of 'all' (ssh when unset), then its groups', each once."""
    units = [*services.get("all", ["ssh"])]
    for group in group_names:
        units += [unit for unit in services.get(group, []) if unit not in units]
    return units


def gate_problems(
    units: Sequence[Mapping[str, Any]],
    *,
    portal: Mapping[str, Any],
    database: Mapping[str, Any],
    title: str,
    url: str,
    db_host: str,
) -> list[str]:
    """Why a patched host fails its health gate; [] when it passes.

    ``units`` are the results of ``systemctl is-active`` per unit (item, rc); ``portal`` the uri
    result of the portal through the web tier (status, content, x_cache_status); ``database`` the
    result of ``SELECT 1`` on ``db_host`` (rc, stdout, stderr).
    """
    problems = [f"service {unit['item']} is not active" for unit in units if unit.get("rc") != 0]
    fresh = (
        portal.get("status", 0) == 200
        and title in (portal.get("content") or "")
        and portal.get("x_cache_status", "") != "STALE"
    )
    if not fresh:
        problems.append(
            f"the portal answered {portal.get('status', 'nothing')} {portal.get('x_cache_status', '')}"
            f" without a fresh page with its title at {url}"
        )
    if not (database.get("rc", 1) == 0 and database.get("stdout", "") == "1"):
        problems.append(f"the database on {db_host} does not answer: {database.get('stderr', '')}")
    return problems
