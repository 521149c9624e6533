"""``portalops probe``: fetch every site of the portal from outside and time each phase.

Each site of ``portal_sites`` is requested at ``portal_public_url`` with its
own Host header and TLS server name, the way a browser would reach it, with
socket, ssl and http.client so every phase is measured on its own: DNS,
TCP connect, TLS handshake, first byte (request sent to first response
byte), and the total. Runbooks detect and verify with it.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from glob import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from portalops.errors import BadInput
from portalops.runbook.resolve import resolve_vars

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

PROBE_VARS = {
    "sites": "portal_sites | default([])",
    "url": "portal_public_url | default('')",
    "groups": "group_names",
    "ca_dir": "nginx_portal_tls_ca_fetch_dir | default('')",
}


@dataclass
class ProbeResult:
    site: str
    domain: str
    url: str
    status: int | None = None
    ok: bool = False
    error: str = ""
    address: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)  # dns, connect, tls, first_byte, total
    bytes: int = 0
    cert_days_left: float | None = None


class _Replay(io.RawIOBase):
    """The socket's stream with the first byte, already read to time it, put back in front."""

    def __init__(self, first: bytes, sock: socket.socket) -> None:
        self.pending = first
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.pending:
            n = min(len(view), len(self.pending))
            view[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n
        return self.sock.recv_into(view)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(self)


def probe(
    url: str,
    domain: str,
    *,
    site: str = "",
    timeout: float = 10.0,
    cafiles: Sequence[str] = (),
    clock: Callable[[], float] = time.perf_counter,
) -> ProbeResult:
    """GET ``url`` with ``Host: domain`` (and SNI ``domain`` over TLS, verified)."""
    parts = urllib.parse.urlsplit(url)
    tls = parts.scheme == "https"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"portal_public_url {url!r} is not an http(s) URL")
    port = parts.port or (443 if tls else 80)
    result = ProbeResult(site or domain, domain, url)
    marks = {"start": clock()}
    phase = "dns"
    sock: socket.socket | None = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)[0]
        result.address = str(address[0])
        marks["dns"] = clock()
        phase = "connect"
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        sock.connect(address)
        marks["connect"] = clock()
        if tls:
            phase = "tls"
            context = ssl.create_default_context()
            for cafile in cafiles:
                context.load_verify_locations(cafile)
            sock = context.wrap_socket(sock, server_hostname=domain)
            marks["tls"] = clock()
            not_after = (sock.getpeercert() or {}).get("notAfter")
            if isinstance(not_after, str):
                result.cert_days_left = round((ssl.cert_time_to_seconds(not_after) - time.time()) / 86400, 1)
        phase = "first_byte"
        target = parts.path or "/"
        request = (
            f"GET {target}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\nHost: {domain}\r\n"
            "User-Agent: portalops-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        sent = clock()
        sock.sendall(request.encode("ascii"))
        first = sock.recv(1)
        if not first:
            raise ConnectionError("closed before any response")
        marks["first_byte"] = clock()
        marks["sent"] = sent
        phase = "body"
        response = http.client.HTTPResponse(cast(socket.socket, _Replay(first, sock)))
        response.begin()
        result.status = response.status
        result.bytes = len(response.read())
        marks["total"] = clock()
        result.ok = 200 <= response.status < 400
    except (OSError, http.client.HTTPException, UnicodeError) as exc:
        result.error = f"{phase}: {exc}"
        marks.setdefault("total", clock())
    finally:
        if sock is not None:
            sock.close()
    result.timings_ms = _phases(marks)
    return result


def _phases(marks: dict[str, float]) -> dict[str, float]:
    """Each phase's own duration; ``total`` runs from the start to the end."""
    ms: dict[str, float] = {}
    previous = marks["start"]
    for name in ("dns", "connect", "tls"):
        if name in marks:
            ms[name] = round((marks[name] - previous) * 1000, 1)
            previous = marks[name]
    if "first_byte" in marks:
        ms["first_byte"] = round((marks["first_byte"] - marks["sent"]) * 1000, 1)
    ms["total"] = round((marks["total"] - marks["start"]) * 1000, 1)
    return ms


def targets_from_vars(hostvars: dict[str, dict[str, Any]]) -> tuple[str, list[tuple[str, str]], list[str]]:
    """The public URL, (site, first domain) of every site, and the lab CA files the web hosts fetched."""
    first = next((v for v in hostvars.values() if v.get("url")), None)
    if first is None:
        raise BadInput("the inventory sets no portal_public_url")
    sites = [(str(s["name"]), str(s["domains"][0])) for s in first.get("sites") or [] if s.get("domains")]
    if not sites:
        raise BadInput("the inventory's portal_sites has no site with a domain")
    cafiles: list[str] = []
    for host, values in sorted(hostvars.items()):
        if "web" in values.get("groups", []) and values.get("ca_dir"):
            cafiles += glob(str(Path(values["ca_dir"]) / f"{host}-ca.crt"))
    return str(first["url"]), sites, cafiles


def probe_inventory(source: str | Path, timeout: float = 10.0, cafiles: Sequence[str] = ()) -> list[ProbeResult]:
    if not Path(source).exists():
        raise BadInput(f"inventory not found: {source}")
    url, sites, lab_cas = targets_from_vars(resolve_vars(source, ["all"], PROBE_VARS, exact=False))
    return [probe(url, domain, site=name, timeout=timeout, cafiles=[*cafiles, *lab_cas]) for name, domain in sites]


def format_results(results: Sequence[ProbeResult]) -> str:
    header = f"{'site':<10} {'domain':<24} {'status':>6} " + " ".join(
        f"{p:>10}" for p in ("dns", "connect", "tls", "first_byte", "total")
    )
    lines = [header + "  result  cert"]
    for r in results:
        cells = " ".join(f"{r.timings_ms[p]:>10.1f}" if p in r.timings_ms else f"{'-':>10}" for p in _PHASES)
        cert = f"{r.cert_days_left:.0f} d" if r.cert_days_left is not None else "-"
        status = str(r.status) if r.status is not None else "-"
        line = f"{r.site:<10} {r.domain:<24} {status:>6} {cells}  {'ok' if r.ok else 'FAIL':>6}  {cert}"
        lines.append(line + (f"  {r.error}" if r.error else ""))
    lines.append("times in ms; first_byte: from the request sent to the first byte of the answer")
    return "\n".join(lines)


_PHASES = ("dns", "connect", "tls", "first_byte", "total")


def to_json(results: Sequence[ProbeResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False)
