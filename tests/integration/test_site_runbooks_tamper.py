"""Tampering drill: a theme file defaced, an upload deleted and a web shell dropped on cms1, then
`l1_defacement` run as a responder would; and files planted in the code directories (a web shell in a
packaged theme of cms1, a configuration file in web1's nginx directory) found and quarantined, while a
file the inventory declares site-owned stays.

Takes its own fresh backup of cms1 first (so it depends on no other module's order) and makes sure the
defaced page is in web1's cache before the runbook runs. Then checks the package files are clean, the
upload is back with the manifest's sha256, owner and mode, the shell is gone from the site and kept in
the evidence, visitors get no defaced page, and the incident journal names every changed file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from portalops import faultdrill
from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from portalops.runbook.journal import parse_stamp
from tests.integration.helpers import incident_journal, on, portalops
from tests.integration.test_site import SITES, get

# Mostly waiting on the hosts, its CPUs idle: it runs right after the converge (conftest.lab_order).
pytestmark = pytest.mark.waits

BACKUP = "/usr/local/sbin/portalops-backup"
MANIFEST = "/var/lib/portalops/backup/manifests/cms-files.json"
EVIDENCE = "/var/lib/portalops/evidence"
MARKER = faultdrill.DEFACE_MARKER
DEFACED_FILE = faultdrill.DEFACED_FILE
PACKAGE = faultdrill.DEFACED_PACKAGE
CACHE = "/var/cache/nginx/portal"  # the nginx_portal role's nginx_portal_cache_dir
DOMAINS = [site["domains"][0] for site in SITES]


def evidence_dirs() -> set[str]:
    return set(on("cms1", f"ls -d {EVIDENCE}/*/ 2>/dev/null || true").stdout.split())


def output_of(events: list[dict[str, Any]], step: str, role: str = "run", host: str = "cms1") -> str:
    return "\n".join(
        str(e["stdout"])
        for e in events
        if e["event"] == "command" and e["step"] == step and e["role"] == role and e["host"] == host
    )


@pytest.fixture
def defaced(converged: LabConfig) -> Iterator[dict[str, Any]]:
    """The fault on a fresh backup; afterwards whatever the runbook left is undone."""
    before = evidence_dirs()
    backup = on("cms1", f"{BACKUP} run", check=False)
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-2000:]
    manifest: dict[str, Any] = json.loads(on("cms1", f"cat {MANIFEST}").stdout)
    upload = sorted(p for p in manifest["files"] if "/wp-content/uploads/" in p and p.endswith(".png"))[0]
    shell = upload.split("/wp-content/uploads/")[0] + "/wp-content/uploads/x.php"
    fault = {
        "upload": upload,
        "sha256": manifest["files"][upload]["sha256"],
        "owner_mode": on("cms1", f"stat -c '%U:%G %a' {upload}").stdout.strip(),
        "shell": shell,
        "before": before,
    }
    try:
        on(
            "cms1",
            f"echo '<p>{MARKER}</p>' >> {DEFACED_FILE} && rm {upload} && "
            f"printf '<?php // {MARKER}\\n@eval($_POST[0]);\\n' > {shell} && "
            f"chown --reference={upload.rsplit('/', 1)[0]} {shell}",
        )
        yield fault
    finally:
        on("cms1", faultdrill.UNDEFACE, check=False)
        on("web1", f"find {CACHE} -type f -delete", check=False)  # no defaced page left in the cache
        for path in evidence_dirs() - before:  # the evidence this drill made; the tool itself never deletes it
            on("cms1", f"rm -rf {path}")


def test_defacement_is_kept_as_evidence_restored_and_no_longer_served(
    defaced: dict[str, Any], converged: LabConfig
) -> None:
    # The fault is real: debsums sees the theme file, visitors get the defaced page, and web1 caches it.
    assert on("cms1", f"debsums -c {PACKAGE}", check=False).returncode != 0
    on("web1", f"find {CACHE} -type f -delete")
    for domain in DOMAINS:
        status, _, body = get(converged, domain)
        assert status == 200 and MARKER in body, f"{domain}: the defacement does not show"
        _, headers, body = get(converged, domain)
        assert headers.get("x-cache-status") == "HIT" and MARKER in body, f"{domain}: not cached ({headers})"

    result = portalops("runbook", "run", "l1_defacement", "--yes", timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    events = incident_journal(result)

    # Package files: clean again, the defaced one kept as evidence first.
    assert on("cms1", f"debsums -c {PACKAGE} wordpress", check=False).returncode == 0
    assert MARKER not in on("cms1", f"cat {DEFACED_FILE}").stdout
    new = sorted(evidence_dirs() - defaced["before"])
    (packages,) = [d for d in new if d.rstrip("/").endswith("-packages")]
    assert DEFACED_FILE in on("cms1", f"cat {packages}changed-files").stdout
    assert DEFACED_FILE.lstrip("/") in on("cms1", f"tar -tf {packages}evidence.tar").stdout

    # Site data: the upload back as the manifest recorded it, the shell moved into the evidence.
    upload, shell = defaced["upload"], defaced["shell"]
    assert on("cms1", f"sha256sum {upload}").stdout.split()[0] == defaced["sha256"]
    assert on("cms1", f"stat -c '%U:%G %a' {upload}").stdout.strip() == defaced["owner_mode"]
    assert on("cms1", f"test -e {shell}", check=False).returncode != 0, "the web shell is still in the site"
    restore = output_of(events, "restore_site_files")
    summary = json.loads(restore.strip().splitlines()[-1])
    assert summary["ok"] and summary["missing"] == [upload] and summary["added"] == [shell], summary
    evidence = summary["evidence"]
    assert MARKER in on("cms1", f"cat {evidence}/quarantine{shell}").stdout
    assert shell.lstrip("/") in on("cms1", f"tar -tf {evidence}/evidence.tar").stdout
    assert shell in on("cms1", f"cat {evidence}/SHA256SUMS").stdout
    assert on("cms1", f"stat -c %a {EVIDENCE} {evidence}").stdout.split() == ["700", "700"]
    assert on("cms1", f"{BACKUP} verify-files cms-files", check=False).returncode == 0

    # Visitors: no defaced page, not even from web1's cache.
    for domain in DOMAINS:
        status, _, body = get(converged, domain)
        assert status == 200 and MARKER not in body, f"{domain} still serves the defacement"

    # The journal: what was found, where, and what was done; the security officer is a follow-up.
    assert DEFACED_FILE in output_of(events, "package_files")
    found = output_of(events, "site_files")
    assert f"MISSING: {upload}" in found and f"ADDED: {shell}" in found, found
    results = {str(e["step"]): str(e["result"]) for e in events if e["event"] == "step_end"}
    assert results["restore_site_files"] == "done" and results["reinstall_changed_packages"] == "done", results
    assert results["purge_edge_cache"] == "done" and results["report_to_security_officer"] == "pending", results
    assert all(results[s] == "passed" for s in ("packages_clean", "site_files_match_backup", "portal_back")), results
    start = next(e for e in events if e["event"] == "start")
    end = next(e for e in events if e["event"] == "end")
    assert end["outcome"] == "recovered"
    mttr = (parse_stamp(end["ts"]) - parse_stamp(start["ts"])).total_seconds()
    print(f"l1_defacement MTTR {mttr:.1f} s (incident {start['incident']})")


def test_the_site_defaced_drill_recovers_with_no_data_lost(converged: LabConfig) -> None:
    before = evidence_dirs()
    try:
        result = portalops("drill", "run", "l1_defacement", timeout=1800)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "data intact" in result.stdout and "PASS" in result.stdout, result.stdout[-2000:]
    finally:
        for path in evidence_dirs() - before:
            on("cms1", f"rm -rf {path}")
    assert on("cms1", f"debsums -c {PACKAGE}", check=False).returncode == 0


# Files no package owns, planted in the code directories; each test plants its own.
SHELL = "/usr/share/wordpress/wp-content/themes/twentytwentythree/patterns/wp-cache.php"
NGINX_EXTRA = "/etc/nginx/conf.d/zz-planted.conf"
# inventory/lab/group_vars/cms/wordpress.yml declares this theme site-owned (wordpress_declared_code_files).
DECLARED = "/usr/share/wordpress/wp-content/themes/county-lab/index.php"


@pytest.fixture
def planted(converged: LabConfig) -> Iterator[dict[str, str]]:
    """A web shell owned, moded and dated like the theme's files, a declared file, an nginx extra; on a
    fresh backup of the sites' files (so the runbook has nothing else to restore)."""
    before = {
        "cms1": evidence_dirs(),
        "web1": set(on("web1", f"ls -d {EVIDENCE}/*/ 2>/dev/null || true").stdout.split()),
    }
    backup = on("cms1", f"{BACKUP} run --job cms-files", check=False)
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-2000:]
    style = "/usr/share/wordpress/wp-content/themes/twentytwentythree/style.css"
    try:
        on(
            "cms1",
            f"printf '<?php // {MARKER} %s\\n@eval($_POST[0]);\\n' \"$(date +%s.%N)\" > {SHELL} && "
            f"chown --reference={style} {SHELL} && chmod --reference={style} {SHELL} && touch -r {style} {SHELL} && "
            f"mkdir -p $(dirname {DECLARED}) && echo '<?php // the county theme' > {DECLARED}",
        )
        on("web1", f"echo '# {MARKER}' > {NGINX_EXTRA}")
        yield {
            "sha256": on("cms1", f"sha256sum {SHELL}").stdout.split()[0],
            "owner_mode": on("cms1", f"stat -c '%U:%G %a %Y' {SHELL}").stdout.strip(),
        }
    finally:
        on("cms1", f"rm -f {SHELL}; rm -rf $(dirname {DECLARED})", check=False)
        on("web1", f"rm -f {NGINX_EXTRA}", check=False)
        for host, dirs in before.items():
            after = set(on(host, f"ls -d {EVIDENCE}/*/ 2>/dev/null || true").stdout.split())
            for path in after - dirs:  # the evidence this test made; the tool itself never deletes it
                on(host, f"rm -rf {path}")


def test_files_planted_in_the_code_directories_are_quarantined_and_declared_ones_kept(
    planted: dict[str, str], converged: LabConfig
) -> None:
    # The fault is real and invisible to the old checks: the theme's package is clean, the shell looks
    # like its neighbours, and the backup manifest does not cover the code tree.
    assert on("cms1", f"debsums -c {PACKAGE}", check=False).returncode == 0
    assert on("cms1", f"{BACKUP} verify-files cms-files", check=False).returncode == 0

    result = portalops("runbook", "run", "l1_defacement", "--yes", timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    events = incident_journal(result)

    # Gone from the code tree, kept in a quarantine with its record; the declared file is where it was.
    assert on("cms1", f"test -e {SHELL}", check=False).returncode != 0, "the web shell is still in the theme"
    assert on("cms1", f"cat {DECLARED}").stdout.strip() == "<?php // the county theme"
    quarantine = output_of(events, "quarantine_added_code_files")
    summary = json.loads(quarantine.strip().splitlines()[-1])
    assert summary["ok"] and summary["quarantined"] == [SHELL], summary
    evidence = summary["evidence"]
    assert MARKER in on("cms1", f"cat {evidence}/quarantine{SHELL}").stdout
    (record,) = json.loads(on("cms1", f"cat {evidence}/quarantine.json").stdout)["files"]
    owner_group, mode, mtime = planted["owner_mode"].split()
    owner, group = owner_group.split(":")
    assert record["path"] == SHELL and record["sha256"] == planted["sha256"], record
    assert (record["owner"], record["group"], record["mode"]) == (owner, group, f"{int(mode, 8):04o}"), record
    assert record["first_bytes"].startswith(f"<?php // {MARKER}") and record["size"] > 0, record
    assert record["mtime"] == dt.datetime.fromtimestamp(int(mtime), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert on("cms1", f"stat -c %a {evidence} {evidence}/quarantine.json").stdout.split() == ["700", "600"]

    # web1: the nginx extra quarantined too, and nginx reloaded without it.
    assert on("web1", f"test -e {NGINX_EXTRA}", check=False).returncode != 0
    web = json.loads(output_of(events, "quarantine_added_code_files", host="web1").strip().splitlines()[-1])
    assert web["quarantined"] == [NGINX_EXTRA], web
    assert "reloaded nginx" in "\n".join(
        str(e.get("stderr", "")) for e in events if e["event"] == "command" and e["host"] == "web1"
    )

    # The record names what was found; the verify step passed because nothing unexpected is left.
    found = output_of(events, "added_code_files")
    assert SHELL in found and DECLARED in found and NGINX_EXTRA in output_of(events, "added_code_files", host="web1")
    journal = re.search(r"^incident \S+: journal (\S+)$", result.stdout + "\n" + result.stderr, re.MULTILINE)
    assert journal
    incident = (REPO_ROOT / journal.group(1)).with_name("incident.md").read_text()
    assert SHELL in incident and NGINX_EXTRA in incident, incident[-3000:]
    results = {str(e["step"]): str(e["result"]) for e in events if e["event"] == "step_end"}
    assert results["quarantine_added_code_files"] == "done" and results["no_added_code_files"] == "passed", results
    assert next(e for e in events if e["event"] == "end")["outcome"] == "recovered"
    assert on("cms1", "/usr/local/sbin/portalops-code-files check", check=False).returncode == 0


def test_the_theme_file_planted_drill_quarantines_the_shell(converged: LabConfig) -> None:
    before = evidence_dirs()
    try:
        result = portalops("drill", "run", "l1_defacement", "--fault", "theme_file_planted", timeout=1800)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "data intact" in result.stdout and "PASS" in result.stdout, result.stdout[-2000:]
        assert "quarantined in" in result.stderr, result.stderr[-2000:]
    finally:
        for path in evidence_dirs() - before:
            on("cms1", f"rm -rf {path}")
