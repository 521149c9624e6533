"""``portalops probe``: fetch every site of the portal from outside, time each phase, judge the page.

Each site of ``portal_sites`` is requested at ``portal_public_url`` with its
own Host header and TLS server name, the way a browser would reach it, with
socket, ssl and http.client so every phase is measured on its own: DNS,
TCP connect, TLS handshake, first byte (request sent to first response
byte), and the total. Runbooks detect and verify with it, so "up" has to mean
that the CMS itself rendered the site's page just now:

- The request goes around the edge cache. nginx_portal answers from its cache
  while the CMS or the database is down (``proxy_cache_use_stale``) and for
  ``nginx_portal_cache_valid`` after each fetch whatever the CMS does, so a
  cached page proves nothing. The probe adds ``preview=true``, which the edge
  already sends to the CMS and never stores (its ``$portal_skip_uri``, there
  for WordPress previews), and ``portalops-probe=<random>``, a parameter
  WordPress ignores. Neither opens a door: anyone can send ``preview=true``
  today, and any query string of one's own misses the cache anyway (the key is
  the whole URI). Asking for a preview means the probe's pages are never
  stored (a unique URL alone would leave one cache entry per probe for
  ``nginx_portal_cache_inactive``); the random parameter means that an edge
  that does not skip previews (another version of the role, another cache in
  front) can only miss, never answer with a page the CMS rendered earlier.
- Whatever was asked, the answer's ``X-Cache-Status`` (which the edge adds to
  every response) is read: STALE and UPDATING (an old page because the CMS
  failed or is being asked) and HIT (a page the CMS was not asked for) are
  not "up", however good the page.
- Only a 2xx whose body holds the site's title (its ``title``, or the
  ``marker`` a site may set when the title is not printed as is) is up; and
  any text of ``portal_probe_forbidden`` (a defacement's signature, by default
  the fault drills' own) in the body fails it.
"""

from __future__ import annotations

import html
import http.client
import io
import json
import secrets
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
from portalops.resolve import resolve_vars

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

PROBE_VARS = {
    "sites": "portal_sites | default([])",
    "url": "portal_public_url | default('')",
    "groups": "group_names",
    "ca_dir": "nginx_portal_tls_ca_fetch_dir | default('')",
    "forbidden": "portal_probe_forbidden | default(none)",
}
# What a site's page must never hold when portal_probe_forbidden is not set: the fault drills'
# defacement (portalops.faultdrill.DEFACE_MARKER), so the l1_defacement drill sees its own fault.
DEFAULT_FORBIDDEN = ("portalops-drill-defaced",)
# Added to the request: preview=true is passed to the CMS and never stored by the edge (nginx_portal's
# $portal_skip_uri); the parameter named here, with a random value, makes every probe its own cache key.
CACHE_BYPASS = "preview=true"
NONCE_PARAMETER = "portalops-probe"
# X-Cache-Status values of a page the CMS did not render for this request.
STALE = frozenset({"STALE", "UPDATING"})
CACHED = frozenset({"HIT"})


@dataclass(frozen=True)
class Target:
    """A site as the probe asks for it: its name, the domain in the Host header, the text its page must hold."""

    site: str
    domain: str
    marker: str = ""


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
    cache_status: str = ""  # the edge's X-Cache-Status, "" when it sent none
    marker: str = ""  # the text the page must hold (the site's title or its marker), "" when none asked
    title_found: bool | None = None  # the marker in the body; None when not asked or no body came
    forbidden_found: list[str] = field(default_factory=list)  # portal_probe_forbidden texts in the body


@dataclass(frozen=True)
class Verdict:
    ok: bool
    error: str
    title_found: bool | None
    forbidden_found: list[str]


def judge(
    status: int,
    cache_status: str,
    body: str,
    marker: str = "",
    forbidden: Sequence[str] = (),
    location: str = "",
) -> Verdict:
    """Whether an answer shows the site as its CMS renders it now; every reason it does not, in one line.

    ``body`` is the page as received (HTML); entities are decoded before looking for ``marker``
    (WordPress escapes the title: ``&amp;``, ``&#8211;``) and the ``forbidden`` texts.
    """
    text = html.unescape(body)
    problems: list[str] = []
    cache = cache_status.strip().upper()
    if cache in STALE:
        problems.append(f"served stale from the edge cache (X-Cache-Status {cache}), not by the CMS")
    elif cache in CACHED:
        problems.append(f"served from the edge cache (X-Cache-Status {cache}), not by the CMS")
    if not 200 <= status < 300:
        moved = f" to {location}" if location and 300 <= status < 400 else ""
        problems.append(f"HTTP {status}{moved}, not the page")
    found = [f for f in forbidden if f and f in text]
    if found:
        problems.append("defacement marker in the page: " + ", ".join(repr(f) for f in found))
    title_found = (marker in text) if marker else None
    if title_found is False:
        problems.append(f"the site's title (or marker) {marker!r} is not in the page")
    return Verdict(not problems, "; ".join(problems), title_found, found)


def probe_target(url: str) -> str:
    """The request target for ``url``: its path and query, plus the preview and a fresh random parameter."""
    parts = urllib.parse.urlsplit(url)
    extra = f"{CACHE_BYPASS}&{NONCE_PARAMETER}={secrets.token_hex(8)}"
    return f"{parts.path or '/'}?{parts.query + '&' if parts.query else ''}{extra}"


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
    marker: str = "",
    forbidden: Sequence[str] = DEFAULT_FORBIDDEN,
    timeout: float = 10.0,
    cafiles: Sequence[str] = (),
    clock: Callable[[], float] = time.perf_counter,
) -> ProbeResult:
    """GET ``url`` with ``Host: domain`` (and SNI ``domain`` over TLS, verified), around the edge cache
    (see :func:`probe_target`), and :func:`judge` the answer: ``marker`` must be in the page, none of
    ``forbidden``."""
    parts = urllib.parse.urlsplit(url)
    tls = parts.scheme == "https"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"portal_public_url {url!r} is not an http(s) URL")
    port = parts.port or (443 if tls else 80)
    result = ProbeResult(site or domain, domain, url, marker=marker)
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
        request = (
            f"GET {probe_target(url)} HTTP/1.1\r\nHost: {domain}\r\n"
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
        result.cache_status = response.getheader("X-Cache-Status") or ""
        body = response.read()
        result.bytes = len(body)
        marks["total"] = clock()
        charset = response.headers.get_content_charset() or "utf-8"
        try:
            text = body.decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            text = body.decode("utf-8", "replace")
        verdict = judge(
            response.status, result.cache_status, text, marker, forbidden, response.getheader("Location") or ""
        )
        result.ok, result.error = verdict.ok, verdict.error
        result.title_found, result.forbidden_found = verdict.title_found, verdict.forbidden_found
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


def targets_from_vars(hostvars: dict[str, dict[str, Any]]) -> tuple[str, list[Target], list[str], list[str]]:
    """The public URL, every site with a domain (its first one, its marker or title), the texts no page may
    hold (``portal_probe_forbidden``, else :data:`DEFAULT_FORBIDDEN`) and the lab CA files the web hosts fetched."""
    first = next((v for v in hostvars.values() if v.get("url")), None)
    if first is None:
        raise BadInput("the inventory sets no portal_public_url")
    sites = [
        # The wordpress role names a site without a title by its name (wordpress_sites[].title), so does this.
        Target(str(s["name"]), str(s["domains"][0]), str(s.get("marker") or s.get("title") or s["name"]))
        for s in first.get("sites") or []
        if s.get("domains")
    ]
    if not sites:
        raise BadInput("the inventory's portal_sites has no site with a domain")
    forbidden = first.get("forbidden")
    if forbidden is None:
        forbidden = list(DEFAULT_FORBIDDEN)
    if not isinstance(forbidden, list) or not all(isinstance(f, str) and f for f in forbidden):
        raise BadInput("portal_probe_forbidden must be a list of non-empty strings")
    cafiles: list[str] = []
    for host, values in sorted(hostvars.items()):
        if "web" in values.get("groups", []) and values.get("ca_dir"):
            cafiles += glob(str(Path(values["ca_dir"]) / f"{host}-ca.crt"))
    return str(first["url"]), sites, forbidden, cafiles


def probe_inventory(source: str | Path, timeout: float = 10.0, cafiles: Sequence[str] = ()) -> list[ProbeResult]:
    if not Path(source).exists():
        raise BadInput(f"inventory not found: {source}")
    url, sites, forbidden, lab_cas = targets_from_vars(resolve_vars(source, ["all"], PROBE_VARS, exact=False))
    return [
        probe(
            url,
            t.domain,
            site=t.site,
            marker=t.marker,
            forbidden=forbidden,
            timeout=timeout,
            cafiles=[*cafiles, *lab_cas],
        )
        for t in sites
    ]


def format_results(results: Sequence[ProbeResult]) -> str:
    header = f"{'site':<10} {'domain':<24} {'status':>6} " + " ".join(f"{p:>10}" for p in _PHASES)
    lines = [header + f"  {'cache':<8} {'title':<5} result  cert"]
    for r in results:
        cells = " ".join(f"{r.timings_ms[p]:>10.1f}" if p in r.timings_ms else f"{'-':>10}" for p in _PHASES)
        cert = f"{r.cert_days_left:.0f} d" if r.cert_days_left is not None else "-"
        status = str(r.status) if r.status is not None else "-"
        title = {True: "yes", False: "NO", None: "-"}[r.title_found]
        line = (
            f"{r.site:<10} {r.domain:<24} {status:>6} {cells}  {r.cache_status or '-':<8} {title:<5} "
            f"{'ok' if r.ok else 'FAIL':>6}  {cert}"
        )
        lines.append(line + (f"  {r.error}" if r.error else ""))
    lines.append("times in ms; first_byte: from the request sent to the first byte of the answer")
    lines.append(
        "cache: the edge's X-Cache-Status (asked with preview=true, so BYPASS when the CMS answered); "
        "title: the site's title or marker in the page"
    )
    return "\n".join(lines)


_PHASES = ("dns", "connect", "tls", "first_byte", "total")


def to_json(results: Sequence[ProbeResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False)


def within(results: Sequence[dict[str, Any]], seconds: float) -> tuple[list[str], bool]:
    """The probe's ``--json`` results (``results``) as a line per site and a verdict line, and whether every
    site answered, each within ``seconds`` in total (the l2_slow_response runbook)."""
    lines, slow = [], []
    for r in results:
        total = (r.get("timings_ms") or {}).get("total")
        fast = total is not None and total <= seconds * 1000
        verdict = "ok" if r.get("ok") else "FAILED " + str(r.get("error") or r.get("status"))
        lines.append(f"{r.get('site')} {r.get('domain')} total {total} ms {verdict}{'' if fast else ' SLOW'}")
        if not (fast and r.get("ok")):
            slow.append(str(r.get("site")))
    lines.append(f"over {seconds:g} s or failing: " + ", ".join(slow) if slow else f"every site within {seconds:g} s")
    return lines, not slow
