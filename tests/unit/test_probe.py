"""The probe against a local TLS server on 127.0.0.1 with a CA and certificate made here; its verdicts as data."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portalops.cli import main
from portalops.errors import BadInput
from portalops.faultdrill import DEFACE_MARKER
from portalops.inventory import REPO_ROOT
from portalops.probe import (
    DEFAULT_FORBIDDEN,
    NONCE_PARAMETER,
    Target,
    format_results,
    judge,
    probe,
    targets_from_vars,
)

DOMAINS = ("portal.lab.test", "other.lab.test")
VERDICTS = yaml.safe_load((Path(__file__).parent / "data" / "probe" / "verdicts.yaml").read_text())
GBK_TITLE = "某县人民政府门户网站"


def make_cert(directory: Path, domains: tuple[str, ...] = DOMAINS, days: int = 30) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``domains`` signed by it: (ca.crt, server.crt, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portalops test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Site(BaseHTTPRequestHandler):
    """portal.lab.test; under /stale as the edge serves it while the CMS is down; under /gbk in GBK."""

    protocol_version = "HTTP/1.1"
    targets: ClassVar[list[str]] = []  # every request target, in order

    def do_GET(self) -> None:
        Site.targets.append(self.path)
        known = self.headers["Host"] == "portal.lab.test"
        body = b"<html>portal</html>" * 100 if known else b"no such site"
        self.send_response(200 if known else 404)
        if self.path.startswith("/stale"):
            self.send_header("X-Cache-Status", "STALE")
        if self.path.startswith("/gbk"):
            body = f"<html><title>{GBK_TITLE}</title></html>".encode("gbk")
            self.send_header("Content-Type", "text/html; charset=GBK")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextlib.contextmanager
def serve_tls(
    handler: type[BaseHTTPRequestHandler], directory: Path, domains: tuple[str, ...] = DOMAINS
) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback with a certificate for ``domains`` from a CA of its own: (URL, CA file)."""
    ca, cert, key = make_cert(directory, domains)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with serve_tls(Site, tmp_path) as served:
        yield served


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_site_answers_with_every_phase_timed(tls_server: tuple[str, Path]) -> None:
    url, ca = tls_server
    result = probe(url, "portal.lab.test", site="portal", cafiles=[str(ca)])
    assert (result.status, result.ok, result.error) == (200, True, "")
    assert result.bytes == len(b"<html>portal</html>") * 100
    assert result.address == "127.0.0.1"
    assert set(result.timings_ms) == {"dns", "connect", "tls", "first_byte", "total"}
    phases = sum(result.timings_ms[p] for p in ("dns", "connect", "tls", "first_byte"))
    assert all(v >= 0 for v in result.timings_ms.values())
    assert result.timings_ms["total"] >= phases - 0.5  # rounding
    assert result.cert_days_left is not None
    assert 29 < result.cert_days_left <= 30


def test_the_host_header_picks_the_site(tls_server: tuple[str, Path]) -> None:
    url, ca = tls_server
    result = probe(url, "other.lab.test", cafiles=[str(ca)])
    assert result.status == 404
    assert not result.ok


def test_an_untrusted_or_wrong_name_certificate_fails_in_the_tls_phase(tls_server: tuple[str, Path]) -> None:
    url, ca = tls_server
    untrusted = probe(url, "portal.lab.test")
    assert untrusted.error.startswith("tls: ")
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    wrong = probe(url, "news.lab.test", cafiles=[str(ca)])
    assert wrong.error.startswith("tls: ")
    assert wrong.status is None
    assert "first_byte" not in wrong.timings_ms


def test_a_closed_port_fails_in_the_connect_phase() -> None:
    result = probe("https://127.0.0.1:9", "portal.lab.test", timeout=2)
    assert result.error.startswith("connect: ")
    assert not result.ok
    assert "total" in result.timings_ms


def test_plain_http_has_no_tls_phase(http_server: str) -> None:
    result = probe(http_server, "portal.lab.test")
    assert result.ok
    assert "tls" not in result.timings_ms
    assert result.cert_days_left is None


def test_targets_come_from_portal_sites_and_the_fetched_lab_ca(tmp_path: Path) -> None:
    (tmp_path / "web1-ca.crt").write_text("x")
    hostvars: dict[str, dict[str, Any]] = {
        "db1": {"sites": [], "url": "https://127.0.0.1:8443", "groups": ["db"], "ca_dir": str(tmp_path)},
        "web1": {
            "sites": [{"name": "portal", "domains": ["portal.lab.test", "www.portal.lab.test"]}, {"name": "news"}],
            "url": "https://127.0.0.1:8443",
            "groups": ["web"],
            "ca_dir": str(tmp_path),
        },
    }
    with pytest.raises(BadInput, match="no site with a domain"):
        targets_from_vars(hostvars)
    hostvars["db1"]["sites"] = hostvars["web1"]["sites"]
    url, sites, forbidden, cas = targets_from_vars(hostvars)
    assert url == "https://127.0.0.1:8443"
    assert sites == [Target("portal", "portal.lab.test", "portal")]  # no title: the name, as WordPress has it
    assert forbidden == list(DEFAULT_FORBIDDEN)
    assert cas == [str(tmp_path / "web1-ca.crt")]
    with pytest.raises(BadInput, match="no portal_public_url"):
        targets_from_vars({"web1": {"url": ""}})


def test_cli_probe_reads_the_inventory_and_exits_by_result(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca = tls_server
    sites = [{"name": "portal", "domains": ["portal.lab.test"]}, {"name": "other", "domains": ["other.lab.test"]}]
    rendered = {"web1": {"sites": sites, "url": url, "groups": ["web"], "ca_dir": str(ca.parent)}}
    (ca.parent / "web1-ca.crt").write_bytes(ca.read_bytes())
    monkeypatch.setattr("portalops.probe.resolve_vars", lambda *args, **kwargs: rendered)
    out = io.StringIO()
    assert main(["probe", "--json"], out=out, err=io.StringIO()) == 1  # other.lab.test answers 404
    data = json.loads(out.getvalue())
    assert [(d["site"], d["status"], d["ok"]) for d in data] == [("portal", 200, True), ("other", 404, False)]
    assert [(d["marker"], d["title_found"], d["cache_status"]) for d in data] == [
        ("portal", True, ""),
        ("other", False, ""),
    ]
    assert data[1]["error"] == "HTTP 404, not the page; the site's title (or marker) 'other' is not in the page"
    table = format_results([probe(url, "portal.lab.test", site="portal", marker="portal", cafiles=[str(ca)])])
    assert table.splitlines()[1].startswith("portal     portal.lab.test             200")
    assert table.splitlines()[0].endswith("cache    title result  cert")
    assert " -        yes       ok" in table.splitlines()[1]
    assert "first_byte" in table


@pytest.mark.parametrize("case", VERDICTS, ids=[c["id"] for c in VERDICTS])
def test_verdict(case: dict[str, Any]) -> None:
    verdict = judge(
        case["status"], case["cache"], case["body"], case["marker"], case.get("forbidden", ()), case.get("location", "")
    )
    assert (verdict.ok, verdict.title_found) == (case["ok"], case["title_found"]), verdict
    assert (verdict.error == "") == case["ok"], verdict
    for text in case.get("error", []):
        assert text in verdict.error


def test_the_default_forbidden_text_is_the_drills_defacement() -> None:
    assert DEFACE_MARKER in DEFAULT_FORBIDDEN


def test_the_edge_passes_the_probes_preview_to_the_cms_and_stores_none() -> None:
    template = (REPO_ROOT / "roles/nginx_portal/templates/etc/nginx/nginx.conf.j2").read_text()
    assert "~[?&]preview=true 1;" in template
    assert "proxy_cache_bypass $portal_skip_cookie $portal_skip_method $portal_skip_uri;" in template
    assert "proxy_no_cache $portal_skip_cookie $portal_skip_method $portal_skip_uri;" in template


def test_every_request_goes_around_the_cache_with_its_own_key(tls_server: tuple[str, Path]) -> None:
    url, ca = tls_server
    Site.targets.clear()
    for target in (url, url, url + "/news/?lang=zh"):
        assert probe(target, "portal.lab.test", marker="portal", cafiles=[str(ca)]).ok
    first, second, third = Site.targets
    assert first.startswith("/?preview=true&" + NONCE_PARAMETER + "=")
    assert second.startswith("/?preview=true&") and second != first
    assert third.startswith("/news/?lang=zh&preview=true&" + NONCE_PARAMETER + "=")


def test_a_stale_page_over_the_wire_is_not_up(tls_server: tuple[str, Path]) -> None:
    url, ca = tls_server
    result = probe(url + "/stale", "portal.lab.test", site="portal", marker="portal", cafiles=[str(ca)])
    assert (result.status, result.ok, result.cache_status, result.title_found) == (200, False, "STALE", True)
    assert result.error.startswith("served stale from the edge cache (X-Cache-Status STALE)")
    assert "total" in result.timings_ms
    line = format_results([result]).splitlines()[1]
    assert "STALE" in line and "FAIL" in line and "served stale" in line


def test_the_title_is_read_in_the_pages_charset(tls_server: tuple[str, Path]) -> None:
    url, ca = tls_server
    found = probe(url + "/gbk", "portal.lab.test", marker=GBK_TITLE, cafiles=[str(ca)])
    assert (found.ok, found.title_found) == (True, True), found.error
    other = probe(url + "/gbk", "portal.lab.test", marker="某县新闻中心", cafiles=[str(ca)])
    assert (other.ok, other.title_found) == (False, False)
    assert other.error == "the site's title (or marker) '某县新闻中心' is not in the page"


def test_a_sites_marker_overrides_its_title_and_forbidden_texts_come_from_the_inventory() -> None:
    sites = [
        {"name": "portal", "title": "County Portal", "marker": 'id="portal-home"', "domains": ["portal.lab.test"]},
        {"name": "news", "title": "News Centre", "domains": ["news.lab.test"]},
    ]
    hostvars: dict[str, dict[str, Any]] = {"web1": {"sites": sites, "url": "https://x", "forbidden": ["Hacked by"]}}
    _, targets, forbidden, _ = targets_from_vars(hostvars)
    assert [t.marker for t in targets] == ['id="portal-home"', "News Centre"]
    assert forbidden == ["Hacked by"]
    hostvars["web1"]["forbidden"] = []
    assert targets_from_vars(hostvars)[2] == []
    hostvars["web1"]["forbidden"] = "Hacked by"
    with pytest.raises(BadInput, match="portal_probe_forbidden must be a list"):
        targets_from_vars(hostvars)
