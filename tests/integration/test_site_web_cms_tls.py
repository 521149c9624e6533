"""Web -> CMS over TLS: plaintext gets no page, the CMS's certificate verifies, the portal still answers.

The client runs on web1 (Python's ssl, as web1 has no curl), so it speaks from where the edge's nginx
speaks, over the private network to cms1's `portal_cms_port`. "Refused" here means: a plaintext HTTP
request to the CMS port is answered by nginx's TLS listener with 400 and carries none of the site's
page (the TCP port is open to the web tier, so the refusal is at the HTTP layer, not a reset).
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import subprocess
import uuid
from typing import Any

import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.integration.helpers import on

PORTAL = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())
SITES: list[dict[str, Any]] = PORTAL["portal_sites"]
HOSTS = yaml.safe_load((REPO_ROOT / "inventory/lab/hosts.yml").read_text())
CMS1 = HOSTS["all"]["children"]["cms"]["hosts"]["cms1"]["ansible_host"]
PORT = PORTAL["portal_cms_port"]
# The name every CMS certificate carries and the edge verifies (proxy_ssl_name).
CMS_NAME = PORTAL["portal_cms_tls_name"]
# On web1: the CA bundle the edge trusts for the CMS tier, and a CA that did not sign cms1's
# certificate (the edge's own lab CA, which signs the public sites' certificates).
CMS_CA = "/etc/nginx/tls/upstream-ca.crt"
WRONG_CA = "/etc/nginx/tls/ca/portal-ca.crt"

# argv: mode (plain | tls), address, port, Host header, TLS name, CA file. Prints "status=<n>" and the
# body after a blank line; "verify-failed <reason>" with exit 3 when the certificate does not verify.
CLIENT = r"""
import socket, ssl, sys
mode, address, port, host, name, cafile = sys.argv[1:7]
sock = socket.create_connection((address, int(port)), timeout=15)
if mode == "tls":
    context = ssl.create_default_context(cafile=cafile)
    try:
        sock = context.wrap_socket(sock, server_hostname=name)
    except ssl.SSLCertVerificationError as error:
        print("verify-failed", error.verify_message)
        sys.exit(3)
sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: portalops-test\r\n\r\n".encode())
data = b""
while chunk := sock.recv(65536):
    data += chunk
head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
print("status=" + head.split()[1])
print()
print(body)
"""


def from_web1(mode: str, host: str, name: str = CMS_NAME, cafile: str = CMS_CA) -> subprocess.CompletedProcess[str]:
    code = base64.b64encode(CLIENT.encode()).decode()
    return on(
        "web1", f'python3 -c "$(echo {code} | base64 -d)" {mode} {CMS1} {PORT} {host} {name} {cafile}', check=False
    )


def status_and_body(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    head, _, body = result.stdout.partition("\n\n")
    return head.strip().removeprefix("status="), body


def test_plaintext_from_the_web_tier_gets_no_page(converged: LabConfig) -> None:
    for site in SITES:
        result = from_web1("plain", site["domains"][0])
        assert result.returncode == 0, (result.stdout, result.stderr)
        status, body = status_and_body(result)
        assert status == "400", result.stdout[:500]
        assert "plain HTTP request was sent to HTTPS port" in body, body[:500]
        assert site["title"] not in body


def test_tls_verified_against_the_cms_ca_serves_each_site(converged: LabConfig) -> None:
    for site in SITES:
        # The name the edge verifies, and cms1's own address (also in its certificate).
        for name in (CMS_NAME, CMS1):
            result = from_web1("tls", site["domains"][0], name)
            assert result.returncode == 0, (result.stdout, result.stderr)
            status, body = status_and_body(result)
            assert status == "200", result.stdout[:500]
            assert site["title"] in body, body[:500]


def test_a_ca_that_did_not_sign_the_cms_certificate_fails_verification(converged: LabConfig) -> None:
    assert on("web1", f"test -s {WRONG_CA}", check=False).returncode == 0
    result = from_web1("tls", SITES[0]["domains"][0], cafile=WRONG_CA)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stdout.startswith("verify-failed"), result.stdout


def test_a_name_the_certificate_does_not_carry_fails_verification(converged: LabConfig) -> None:
    result = from_web1("tls", SITES[0]["domains"][0], name="not-the-cms.invalid")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stdout.startswith("verify-failed"), result.stdout


def test_the_portal_answers_through_the_edge_from_the_cms(converged: LabConfig) -> None:
    # A query never asked before is a cache MISS: the page comes from the CMS now, over the only
    # way the edge can reach it (plaintext gets no page).
    context = ssl.create_default_context(cafile=str(converged.state_dir / "tls" / "web1-ca.crt"))
    for site in SITES:
        host = site["domains"][0]
        with socket.create_connection(("127.0.0.1", 8443), timeout=15) as raw:
            conn = http.client.HTTPSConnection(host, 8443, context=context, timeout=30)
            conn.sock = context.wrap_socket(raw, server_hostname=host)
            conn.request("GET", f"/?portalops-tls={uuid.uuid4().hex}", headers={"Host": host})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
        assert response.status == 200, (response.status, body[:300])
        assert response.getheader("X-Cache-Status") == "MISS", response.getheaders()
        assert site["title"] in body, body[:300]
