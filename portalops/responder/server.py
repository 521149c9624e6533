"""The responder's HTTP side (aiohttp): ``POST /alerts`` from Alertmanager, ``GET /healthz``, and
when configured the duty board (``GET /board``, :mod:`portalops.responder.boardweb`).

``/alerts`` wants ``Authorization: Bearer <token>`` (compared in constant time; 401 otherwise) and
Alertmanager's webhook payload, version 4 (400 otherwise, logged, nothing started). A background
task reconciles with Alertmanager's API at start and every ``reconcile_interval`` seconds, and closes
incidents whose run recovered after their alert resolved.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from portalops.responder.alerts import Alert, BadPayload, parse_api_alerts, parse_webhook
from portalops.responder.boardweb import BoardSite, add_board
from portalops.responder.service import Responder
from portalops.runbook.journal import stamp, utc_now

LOG = logging.getLogger("portalops.responder")
RESPONDER = web.AppKey("responder", Responder)
TOKEN = web.AppKey("token", str)
MAX_BODY = 1 << 20  # Alertmanager's groups are far smaller; a bigger body is refused (413)


def make_app(
    responder: Responder, token: str, reconcile: bool = True, board: BoardSite | None = None
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[RESPONDER] = responder
    app[TOKEN] = token
    app.router.add_post("/alerts", post_alerts)
    app.router.add_get("/healthz", healthz)
    if board is not None:
        add_board(app, board)
    if reconcile:
        app.cleanup_ctx.append(_background)
    return app


def authorized(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def post_alerts(request: web.Request) -> web.Response:
    peer = request.remote or "?"
    if not authorized(request.headers.get("Authorization", ""), request.app[TOKEN]):
        LOG.warning("POST /alerts from %s: refused, no or wrong bearer token", peer)
        return web.json_response(
            {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": 'Bearer realm="portalops"'}
        )
    body = await request.read()
    try:
        alerts = parse_webhook(json.loads(body))
    except json.JSONDecodeError as exc:
        LOG.warning("POST /alerts from %s: malformed JSON (%s); nothing started", peer, exc)
        return web.json_response({"error": f"malformed JSON: {exc}"}, status=400)
    except (BadPayload, UnicodeDecodeError) as exc:
        LOG.warning("POST /alerts from %s: not an Alertmanager webhook (%s); nothing started", peer, exc)
        return web.json_response({"error": f"not an Alertmanager webhook (version 4): {exc}"}, status=400)
    received = request.app[RESPONDER].receive(alerts, "webhook")
    return web.json_response({"incidents": sorted({r.incident for r in received})})


async def healthz(request: web.Request) -> web.Response:
    responder = request.app[RESPONDER]
    return web.json_response(
        {
            "status": "ok",
            "open_incidents": len(set(responder.store.fingerprints().values())),
            "last_reconcile": responder.last_reconcile,
            "reconcile_error": responder.reconcile_error,
            "last_heartbeat": responder.last_heartbeat,
        }
    )


async def fetch_active(base: str, receiver: str = "", timeout: float = 10.0) -> list[Alert]:
    """Alertmanager's active (not silenced, not inhibited) alerts."""
    params = {"active": "true", "silenced": "false", "inhibited": "false"}
    if receiver:
        params["receiver"] = receiver
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(f"{base}/api/v2/alerts", params=params) as response,
    ):
        response.raise_for_status()
        return parse_api_alerts(await response.json(content_type=None))


async def reconcile_once(responder: Responder) -> None:
    config = responder.config
    if config.alertmanager:
        try:
            active = await fetch_active(config.alertmanager, config.receiver)
        except (aiohttp.ClientError, TimeoutError, BadPayload, ValueError) as exc:
            responder.reconcile_error = f"{type(exc).__name__}: {exc}"
            LOG.warning("reconcile with %s failed: %s", config.alertmanager, responder.reconcile_error)
        else:
            received = responder.reconcile(active)
            responder.last_reconcile, responder.reconcile_error = stamp(utc_now()), ""
            opened = [r.incident for r in received if r.opened]
            LOG.info("reconciled with %s: %d active, opened %s", config.alertmanager, len(active), opened or "none")
    responder.sweep()


async def _background(app: web.Application) -> AsyncIterator[None]:
    responder = app[RESPONDER]

    async def loop() -> None:
        while True:
            await reconcile_once(responder)
            await asyncio.sleep(responder.config.reconcile_interval)

    pending = responder.start_pending()
    if pending:
        LOG.info("starting the runs a previous responder left unstarted: %s", ", ".join(pending))
    task = asyncio.create_task(loop())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@dataclass
class Running:
    """A server on a thread of its own (tests; an embedding program)."""

    url: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    runner: web.AppRunner

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


def start_in_thread(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Serve ``app`` on ``host:port`` (0: an ephemeral port) from a new thread; returns once it listens."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="responder-http")
    thread.start()

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        return f"http://{bound[0]}:{bound[1]}"

    url = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    return Running(url, loop, thread, runner)


def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT (systemd's stop, Ctrl-C)."""
    web.run_app(app, host=host, port=port, print=lambda text: LOG.info("%s", text), access_log=LOG)
