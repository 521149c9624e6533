"""CMS -> database over TLS: plaintext refused, the server's certificate verified, the sites on TLS.

The client is PHP's mysqlnd on cms1 with the site's own wp-config (DB_HOST, DB_USER, DB_PASSWORD and
MYSQL_CLIENT_FLAGS), so the test speaks exactly as WordPress does; the password is read on the host
and never leaves it.
"""

from __future__ import annotations

import base64
import subprocess
from typing import Any

import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.integration.helpers import ansible, on

PORTAL = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())
SITES: list[dict[str, Any]] = PORTAL["portal_sites"]

# Connects with the site's credentials. argv[1]: the config file; argv[2]: "plain" (no TLS flag) or
# "site" (the site's MYSQL_CLIENT_FLAGS). Prints the session's Ssl_cipher, or "refused <errno>" and exits 3.
CLIENT = r"""
mysqli_report(MYSQLI_REPORT_OFF);
require $argv[1];
[$host, $port] = explode(':', DB_HOST);
$flags = $argv[2] === 'plain' ? 0 : (defined('MYSQL_CLIENT_FLAGS') ? MYSQL_CLIENT_FLAGS : 0);
$db = mysqli_init();
if (!@mysqli_real_connect($db, $host, DB_USER, DB_PASSWORD, DB_NAME, (int) $port, null, $flags)) {
    echo 'refused ', mysqli_connect_errno(), "\n";
    exit(3);
}
echo 'cipher=', $db->query("SHOW STATUS LIKE 'Ssl_cipher'")->fetch_row()[1], "\n";
"""
# A CA in Debian's bundle that did not issue the database's certificate.
FOREIGN_CA = "/etc/ssl/certs/ISRG_Root_X1.pem"


def connect(site: dict[str, Any], mode: str, php_options: str = "") -> subprocess.CompletedProcess[str]:
    code = base64.b64encode(CLIENT.encode()).decode()
    config = f"/etc/wordpress/config-{site['domains'][0]}.php"
    return on("cms1", f'php {php_options} -r "$(echo {code} | base64 -d)" {config} {mode}', check=False)


def test_plaintext_from_the_cms_is_refused(converged: LabConfig) -> None:
    for site in SITES:
        result = connect(site, "plain")
        assert result.returncode == 3, (result.stdout, result.stderr)
        assert result.stdout.startswith("refused"), result.stdout


def test_the_sites_connect_over_tls(converged: LabConfig) -> None:
    for site in SITES:
        result = connect(site, "site")
        assert result.returncode == 0, (result.stdout, result.stderr)
        cipher = result.stdout.strip().removeprefix("cipher=")
        assert cipher, result.stdout


def test_the_sites_verify_the_database_certificate(converged: LabConfig) -> None:
    # The same flags trusting only a CA that did not sign the server's certificate: no connection.
    assert on("cms1", f"test -f {FOREIGN_CA}", check=False).returncode == 0
    result = connect(SITES[0], "site", f"-d openssl.cafile={FOREIGN_CA}")
    assert result.returncode == 3, (result.stdout, result.stderr)


def test_the_server_refuses_plaintext_and_old_protocols(converged: LabConfig) -> None:
    query = "SELECT @@require_secure_transport, @@tls_version, @@have_ssl"
    row = ansible("db1", "ansible.builtin.command", f'mariadb --batch --skip-column-names -e "{query}"')["db1"]
    assert row["stdout"].split("\t") == ["1", "TLSv1.2,TLSv1.3", "YES"], row


def test_the_portal_still_serves_its_pages(converged: LabConfig) -> None:
    # Plaintext is refused, so a page built from the database proves the site's own connection is TLS.
    for site in SITES:
        status = on(
            "cms1",
            f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {site['domains'][0]}' http://127.0.0.1:"
            f"{PORTAL['portal_cms_port']}/",
            check=False,
        )
        assert status.stdout == "200", status
