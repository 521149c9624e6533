"""The loop with no human command: mon1's probes see the fault, Alertmanager posts to the responder
on this machine, the responder opens the incident with its level and deadlines, runs the runbook
unattended, and closes the incident once the runbook verified recovery and the alert resolved.

The responder runs as `portalops responder` would as a service (its own process, the lab's
configuration, the token from the lab's vault), with its incidents in a directory of the test's.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from portalops.vault import lab_secret
from tests.integration.helpers import ENV, on, read_journal

LAB_CONFIG = REPO_ROOT / "contrib" / "portalops-responder-lab.yml"
URL = "http://10.89.60.1:9099"


def vault_token() -> str:
    """The webhook token Alertmanager on mon1 got (monitoring_alertmanager_webhook_token), from the vault."""
    return lab_secret("vault_alertmanager_webhook_token")


def post(body: bytes, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{URL}/alerts", data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - fixed http:// URL
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def responder(converged: LabConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`portalops responder` with the lab's configuration; yields its incidents directory."""
    work = tmp_path_factory.mktemp("responder")
    token = work / "token"
    token.touch(mode=0o600)
    token.write_text(vault_token())
    config = yaml.safe_load(LAB_CONFIG.read_text())
    config.update(incidents=str(work / "incidents"), token_file=str(token))
    (work / "responder.yml").write_text(yaml.safe_dump(config))
    log = (work / "responder.log").open("w")
    process = subprocess.Popen(
        ["portalops", "responder", "--config", str(work / "responder.yml")],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{URL}/healthz", timeout=5) as answer:  # noqa: S310
                    if json.load(answer)["status"] == "ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the responder did not start: {(work / 'responder.log').read_text()[-2000:]}")
            time.sleep(1)
        yield work / "incidents"
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def test_the_webhook_refuses_a_missing_or_wrong_token_and_bad_payloads(responder: Path) -> None:
    """Each refused request carries a real-looking alert of its own: none of them may open an incident.
    (Other incidents may exist: at start the responder reconciles alerts earlier tests left firing.)"""
    token = vault_token()
    fingerprint = uuid.uuid4().hex[:16]
    alert = {
        "status": "firing",
        "labels": {"alertname": "PortalSiteDown", "runbook": "l1_portal_unreachable", "level": "L1", "site": "refused"},
        "annotations": {},
        "startsAt": "2026-12-03T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }
    valid = {"version": "4", "status": "firing", "receiver": "portalops-responder", "alerts": [alert]}
    assert post(json.dumps(valid).encode(), None) == 401
    assert post(json.dumps(valid).encode(), token[:-1] + ("x" if token[-1] != "x" else "y")) == 401
    assert post(json.dumps(valid).encode()[:-2], token) == 400
    assert post(json.dumps({**valid, "alerts": "none"}).encode(), token) == 400
    assert post(json.dumps({**valid, "version": "3"}).encode(), token) == 400
    opened = [
        journal.parent.name
        for journal in (responder.glob("*/journal.jsonl") if responder.exists() else [])
        if fingerprint in journal.read_text()
    ]
    assert opened == []


def incidents_of(root: Path, runbook: str) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for journal in sorted(root.glob("*/journal.jsonl")) if root.exists() else []:
        events = read_journal(journal)
        if events and events[0].get("runbook") == runbook:
            found[journal.parent.name] = events
    return found


def test_a_stopped_edge_is_detected_repaired_and_closed_with_no_human_command(responder: Path) -> None:
    """Every probe of the edge fails, so several alerts fire (one per domain, the edge's exporter): one
    incident each, one runbook run at a time; the first restarts nginx, the others find it running."""
    on("web1", "systemctl stop nginx")
    try:
        deadline = time.monotonic() + 600
        while True:
            incidents = incidents_of(responder, "l1_portal_unreachable")
            closed = {i for i, e in incidents.items() if any(ev.get("event") == "closed" for ev in e)}
            if incidents and closed == set(incidents):
                break
            if time.monotonic() > deadline:
                shown = json.dumps(incidents, indent=1)[-6000:]
                raise AssertionError(f"not every incident closed within 600 s: {shown}")
            time.sleep(3)
    finally:
        # Whatever the loop did, the edge is left running.
        on("web1", "systemctl start nginx")
    restarts = []
    for incident, events in incidents.items():
        start = events[0]
        assert (start["level"], start["opened_by"]) == (1, "responder"), start
        assert [d["name"] for d in start["deadlines"]], start
        kinds = [e.get("event") for e in events]
        assert "run_started" in kinds, (incident, kinds)
        assert [e["outcome"] for e in events if e.get("event") == "end"][-1] == "recovered", (incident, kinds)
        restarts += [e for e in events if e.get("event") == "step_end" and e["step"] == "start_web_nginx"]
        closing = next(e for e in events if e.get("event") == "closed")
        assert 0 < closing["mttd_s"] < closing["mttr_s"], closing
        alert = start["alert"]["labels"].get("alertname")
        print(f"incident {incident}: {alert} MTTD {closing['mttd_s']} s, MTTR {closing['mttr_s']} s")
    # One run restarted the edge; the runs after it (the lock let one in at a time) found it running.
    assert [e["result"] for e in restarts].count("done") == 1, restarts
