from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def lock_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs in unit tests lock hosts here, never beside a real run's locks."""
    directory = tmp_path_factory.mktemp("locks")
    monkeypatch.setattr("portalops.runbook.lock.LOCK_DIR", directory)
    return directory


@pytest.fixture(autouse=True)
def closed_dropin(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A physical restore in a unit test closes and reopens MariaDB with a drop-in here, never under /run."""
    path = tmp_path_factory.mktemp("run") / "mariadb.service.d" / "zz-portalops-restore-closed.conf"
    monkeypatch.setattr("portalops_host.closed.CLOSED_DROPIN", path)
    return path


@pytest.fixture(autouse=True)
def nothing_resolved() -> Iterator[None]:
    """Each test asks Ansible (or its fake) afresh: what one test resolved is not another's answer."""
    from portalops.inventory import RESOLVED

    RESOLVED.clear()
    yield
    RESOLVED.clear()


@pytest.fixture
def inventory_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "inventory_list.json").read_text())
    return data


class SmtpSink(socketserver.StreamRequestHandler):
    """Just enough SMTP to take one message: what smtplib sends, answered with 2xx/3xx."""

    received: list[bytes]

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ready")
        while line := self.rfile.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"EHLO":
                self.reply("250-sink")
                self.reply("250 8BITMIME")
            elif verb == b"DATA":
                self.reply("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.server.received.append(data)  # type: ignore[attr-defined]
                self.reply("250 queued")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SmtpSink)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
