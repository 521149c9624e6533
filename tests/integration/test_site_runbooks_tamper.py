"""Tampering drill: a theme file defaced, an upload deleted and a web shell dropped on cms1, then
`l1_defacement` run as a responder would.

Takes its own fresh backup of cms1 first (so it depends on no other module's order) and makes sure the
defaced page is in web1's cache before the runbook runs. Then checks the package files are clean, the
upload is back with the manifest's sha256, owner and mode, the shell is gone from the site and kept in
the evidence, visitors get no defaced page, and the incident journal names every changed file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from portalops import faultdrill
from portalops.lab.config import LabConfig
from portalops.runbook.journal import parse_stamp
from tests.integration.helpers import incident_journal, on, portalops
from tests.integration.test_site import SITES, get

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
