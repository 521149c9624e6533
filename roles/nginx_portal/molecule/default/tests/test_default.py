"""What nginx_portal leaves on a host, observed from inside it."""

import pytest
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://nginx-portal"]


def test_nginx_runs_and_listens_on_80_and_443(host: Host) -> None:
    assert host.service("nginx").is_running
    assert host.service("nginx").is_enabled
    assert host.socket("tcp://0.0.0.0:80").is_listening
    assert host.socket("tcp://0.0.0.0:443").is_listening


def test_health_endpoint_answers_on_both_ports(host: Host) -> None:
    assert host.check_output("curl -s http://127.0.0.1/healthz") == "ok"
    assert host.check_output("curl -sk https://127.0.0.1/healthz") == "ok"


def test_http_redirects_to_https(host: Host) -> None:
    out = host.check_output(
        "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: news.test' http://127.0.0.1/a?b=1"
    )
    assert out == "301 https://news.test/a?b=1"


def test_the_certificate_verifies_against_the_lab_ca_for_every_domain(host: Host) -> None:
    ca = host.check_output("ls /etc/nginx/tls/ca/*.crt | head -1")
    for domain in ("portal.test", "www.portal.test", "news.test"):
        cmd = host.run(
            f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {ca} --resolve {domain}:443:127.0.0.1 https://{domain}/healthz"
        )
        assert cmd.stdout == "200", domain


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_old_tls_is_refused(host: Host, flag: str) -> None:
    cmd = host.run(f"openssl s_client {flag} -cipher DEFAULT@SECLEVEL=0 -connect 127.0.0.1:443 </dev/null")
    assert cmd.rc != 0


def test_security_headers_and_no_version(host: Host) -> None:
    headers = host.check_output("curl -sk -D - -o /dev/null -H 'Host: portal.test' https://127.0.0.1/healthz").lower()
    assert "server: nginx\r\n" in headers
    assert "strict-transport-security: max-age=" in headers


def test_private_keys_are_root_only(host: Host) -> None:
    for key in host.check_output("find /etc/nginx/tls -name '*.key'").split():
        assert host.file(key).mode == 0o600, key
        assert host.file(key).user == "root", key


def test_xmlrpc_is_blocked(host: Host) -> None:
    code = host.check_output(
        "curl -sk -o /dev/null -w '%{http_code}' -X POST -H 'Host: portal.test' https://127.0.0.1/xmlrpc.php"
    )
    assert code == "403"


def test_the_proxy_verifies_the_cms_over_tls(host: Host) -> None:
    config = host.check_output("nginx -T 2>/dev/null")
    for directive in (
        "proxy_ssl_verify on;",
        "proxy_ssl_trusted_certificate /etc/nginx/tls/upstream-ca.crt;",
        "proxy_ssl_name cms.portal.internal;",
        "proxy_ssl_server_name on;",
        "proxy_ssl_session_reuse on;",
    ):
        assert directive in config, directive
    assert "proxy_pass https://portal_cms;" in config
    assert "proxy_pass http://" not in config
    bundle = host.check_output("openssl x509 -noout -subject -in /etc/nginx/tls/upstream-ca.crt")
    assert "stand-in upstream CA" in bundle
