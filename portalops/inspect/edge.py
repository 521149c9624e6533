"""Requests to a site through the portal's public edge, as ``portalops probe`` makes them.

The edge is reached at ``portal_public_url`` (its address and port) with the site's domain as TLS
server name and Host, verified against the lab's CA files as the probe finds them; every request goes
around the edge cache the probe's way (:data:`portalops.probe.CACHE_BYPASS`), so what is inspected is
what the CMS publishes now, not a page cached minutes ago. One kept-alive connection per site; a
request or time budget stops a crawl before it becomes a load test.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from portalops.errors import BadInput
from portalops.probe import CACHE_BYPASS

USER_AGENT = "portalops-inspect"
MAX_BODY = 8 * 1024 * 1024


@dataclass
class Answer:
    url: str
    status: int | None  # None: no answer (the error says why)
    headers: dict[str, str]
    body: bytes
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")

    def is_html(self) -> bool:
        return "html" in self.headers.get("content-type", "").lower()


class _EdgeConnection(http.client.HTTPSConnection):
    """HTTPS to the edge's address with the site's domain as server name (SNI and verification)."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_name = server_name
        self.tls_context = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self.tls_context.wrap_socket(self.sock, server_hostname=self.server_name)


class Edge:
    """GETs of one site's URLs (``https://<domain>/...``) sent to the edge, counted and timed."""

    def __init__(
        self,
        public_url: str,
        domain: str,
        cafiles: Sequence[str] = (),
        timeout: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urllib.parse.urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"portal_public_url {public_url!r} is not an http(s) URL")
        self.tls = parts.scheme == "https"
        self.address = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.domain = domain
        self.timeout = timeout
        self.clock = clock
        self.context = ssl.create_default_context()
        for cafile in cafiles:
            self.context.load_verify_locations(cafile)
        self.connection: http.client.HTTPConnection | None = None
        self.requests = 0
        self.seconds = 0.0

    @property
    def base(self) -> str:
        return f"https://{self.domain}/" if self.tls else f"http://{self.domain}/"

    def _connect(self) -> http.client.HTTPConnection:
        if self.connection is None:
            if self.tls:
                self.connection = _EdgeConnection(self.address, self.port, self.domain, self.context, self.timeout)
            else:
                self.connection = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def get(self, url: str, fresh: bool = True) -> Answer:
        """GET ``url`` (one of this site's, absolute or a path), around the edge cache unless not ``fresh``;
        never raises for a network failure: the answer's ``status`` is None and ``error`` says what happened."""
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(self.base, url))
        query = (f"{parts.query}&{CACHE_BYPASS}" if parts.query else CACHE_BYPASS) if fresh else parts.query
        target = f"{parts.path or '/'}?{query}" if query else parts.path or "/"
        started = self.clock()
        self.requests += 1
        try:
            for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more, anew
                connection = self._connect()
                try:
                    connection.request(
                        "GET", target, headers={"Host": self.domain, "User-Agent": USER_AGENT, "Accept": "*/*"}
                    )
                    response = connection.getresponse()
                    body = response.read(MAX_BODY + 1)
                    headers = {k.lower(): v for k, v in response.getheaders()}
                    if response.will_close or len(body) > MAX_BODY:
                        self.close()
                    return Answer(parts.geturl(), response.status, headers, body[:MAX_BODY])
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    self.close()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else str(exc) or type(exc).__name__
            return Answer(parts.geturl(), None, {}, b"", reason)
        finally:
            self.seconds += self.clock() - started
