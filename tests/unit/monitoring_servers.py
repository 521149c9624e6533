"""Real loopback HTTP servers for the monitoring commands' tests: a Prometheus and an Alertmanager that
answer recorded API JSON, and a webhook receiver that counts notices."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SITE = "portal"
DOMAINS = ("portal.lab.test", "www.portal.lab.test")
EXPR_PROBES = 'probe_success{job=~"http_portal|http_portal_defacement"}'
EXPR_24H = "avg by (site) (portalops:probe_loaded:ratio_24h)"
EXPR_7D = "portalops:site_availability:ratio_7d"
EXPR_MARGIN = "portalops:site_availability:veto_margin_7d"


def go_time(moment: datetime) -> str:
    """As Alertmanager writes its times: milliseconds, Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def vector(now: datetime, *series: tuple[dict[str, str], float]) -> dict[str, Any]:
    """Prometheus' answer to an instant query (GET /api/v1/query), as recorded from mon1."""
    ts = round(now.timestamp(), 3)
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": metric, "value": [ts, repr(value)]} for metric, value in series],
        },
    }


def probe(job: str, domain: str, ok: bool) -> tuple[dict[str, str], float]:
    labels = {"__name__": "probe_success", "domain": domain, "instance": domain, "job": job, "site": SITE}
    return labels, 1.0 if ok else 0.0


def prometheus_answers(
    now: datetime, up: bool = True, defaced: bool = False, ratio_7d: float = 0.9981
) -> dict[str, dict[str, Any]]:
    """The four queries of ``portalops status`` and their answers."""
    probes = [probe("http_portal", d, up if i == 0 else True) for i, d in enumerate(DOMAINS)]
    probes += [probe("http_portal_defacement", d, not defaced) for d in DOMAINS]
    return {
        EXPR_PROBES: vector(now, *probes),
        EXPR_24H: vector(now, ({"site": SITE}, 0.9993 if up else 0.91)),
        EXPR_7D: vector(now, ({"__name__": "portalops:site_availability:ratio_7d", "site": SITE}, ratio_7d)),
        EXPR_MARGIN: vector(
            now, ({"__name__": "portalops:site_availability:veto_margin_7d", "site": SITE}, round(ratio_7d - 0.95, 4))
        ),
    }


def am_alert(
    name: str, labels: dict[str, str], starts: datetime, updated: datetime, **annotations: str
) -> dict[str, Any]:
    """An alert of Alertmanager's GET /api/v2/alerts (v0.25 as on Debian 12)."""
    return {
        "annotations": annotations,
        "endsAt": go_time(updated + timedelta(minutes=4)),
        "fingerprint": hashlib.sha256(json.dumps([name, labels], sort_keys=True).encode()).hexdigest()[:16],
        "receivers": [{"name": "portalops-responder"}],
        "startsAt": go_time(starts),
        "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
        "updatedAt": go_time(updated),
        "generatorURL": "http://mon1:9090/graph?g0.expr=vector%281%29&g0.tab=1",
        "labels": {"alertname": name, "monitor": "mon1", **labels},
    }


def watchdog(now: datetime, age: timedelta = timedelta(seconds=20)) -> dict[str, Any]:
    return am_alert(
        "Watchdog",
        {"severity": "none"},
        now - timedelta(days=2),
        now - age,
        summary="The alerting pipeline works (always firing; when it stops, Prometheus or Alertmanager is dead)",
    )


def site_down_alert(now: datetime) -> dict[str, Any]:
    return am_alert(
        "PortalSiteDown",
        {
            "runbook": "l1_portal_unreachable",
            "level": "L1",
            "severity": "critical",
            "site": SITE,
            "instance": DOMAINS[0],
            "domain": DOMAINS[0],
            "job": "http_portal",
        },
        now - timedelta(minutes=3),
        now - timedelta(seconds=10),
        summary="A site's domain fails through the edge: no answer, an error status, a TLS failure or over 15 s",
    )


class Monitoring:
    """What the fake servers answer (changed by the tests between requests) and what they were asked."""

    def __init__(self) -> None:
        self.queries: dict[str, dict[str, Any]] = {}
        self.alerts: list[dict[str, Any]] = []
        self.ready = True
        self.asked: list[str] = []
        self.notices: list[dict[str, Any]] = []


def _handler(world: Monitoring) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def answer(self, code: int, body: Any, kind: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            world.asked.append(self.path)
            if url.path == "/-/ready":
                if world.ready:
                    self.answer(200, "Prometheus Server is Ready.\n", "text/plain; charset=utf-8")
                else:
                    self.answer(503, "Service Unavailable", "text/plain; charset=utf-8")
            elif url.path in ("/api/v1/query", "/api/v1/query_range"):
                expr = urllib.parse.parse_qs(url.query)["query"][0]
                kind = "matrix" if url.path.endswith("_range") else "vector"
                self.answer(
                    200, world.queries.get(expr, {"status": "success", "data": {"resultType": kind, "result": []}})
                )
            elif url.path == "/api/v2/alerts":
                self.answer(200, world.alerts)
            else:
                self.answer(404, "404 page not found\n", "text/plain")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            world.notices.append(json.loads(body))
            self.answer(200, {"ok": True})

    return Handler


@contextmanager
def serve(world: Monitoring) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (a free port) answering from ``world``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(world))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    """A loopback URL nothing listens on (a port just released)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}"
