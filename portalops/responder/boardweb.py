"""The duty board over HTTP: ``GET /board`` behind a sign-in of its own.

Browsers cannot send the webhook's bearer token, and must never hold it, so the board has its own
secret (``board_token_file`` / ``board_token_env`` of the responder's configuration). A person signs in
once with it (``POST /board/signin``, a form) and gets a session cookie: ``v1.<expiry>.<HMAC-SHA256>``
keyed by a key derived from the board token (a new token ends every session; a restart ends none),
HttpOnly, SameSite=Strict, Secure over HTTPS, for ``board_session`` seconds. Without a valid cookie
``/board`` redirects to the sign-in. A wrong token is answered after a second (no fast guessing) and
logged with the peer, never with what was typed. Pages carry a Content-Security-Policy that runs only
their own nonce'd style and script.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from portalops.responder.board import Sources, gather, render, signin_page
from portalops.runbook.journal import utc_now

LOG = logging.getLogger("portalops.responder")
COOKIE = "portalops_board"
REFUSED_DELAY_S = 1.0


@dataclass(frozen=True)
class Sessions:
    """Issues and checks the board's session cookies."""

    token: str = field(repr=False)  # the board token: never logged, never in a repr
    lifetime: float = 43200.0  # seconds

    def _sign(self, body: str) -> str:
        key = hmac.new(self.token.encode(), b"portalops duty board session v1", hashlib.sha256).digest()
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()

    def accepts(self, given: str) -> bool:
        """The token a person typed, compared in constant time."""
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    def issue(self, now: datetime) -> str:
        body = f"v1.{int(now.timestamp() + self.lifetime)}"
        return f"{body}.{self._sign(body)}"

    def valid(self, cookie: str, now: datetime) -> bool:
        """Signed by this token (untampered) and not expired."""
        version, _, rest = cookie.partition(".")
        expiry, _, signature = rest.partition(".")
        if version != "v1" or not expiry.isdigit():
            return False
        signed = hmac.compare_digest(signature.encode(), self._sign(f"v1.{expiry}").encode())
        return signed and now.timestamp() < int(expiry)


@dataclass(frozen=True)
class BoardSite:
    sources: Sources
    sessions: Sessions
    clock: Callable[[], datetime] = utc_now


BOARD = web.AppKey("board", BoardSite)


def add_board(app: web.Application, board: BoardSite) -> None:
    app[BOARD] = board
    app.router.add_get("/board", show_board)
    app.router.add_get("/board/signin", signin_form)
    app.router.add_post("/board/signin", signin)
    app.router.add_post("/board/signout", signout)


def _html(text: str, nonce: str, status: int = 200) -> web.Response:
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=headers)


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def show_board(request: web.Request) -> web.StreamResponse:
    board = request.app[BOARD]
    now = board.clock()
    if not board.sessions.valid(request.cookies.get(COOKIE, ""), now):
        return see_other("/board/signin")
    model = await asyncio.to_thread(gather, board.sources, now)  # blocking HTTP reads, off the event loop
    nonce = secrets.token_urlsafe(16)
    return _html(render(model, nonce), nonce)


async def signin_form(request: web.Request) -> web.StreamResponse:
    nonce = secrets.token_urlsafe(16)
    return _html(signin_page(nonce), nonce)


async def signin(request: web.Request) -> web.StreamResponse:
    board = request.app[BOARD]
    form = await request.post()
    given = form.get("token", "")
    peer = request.remote or "?"
    if not isinstance(given, str) or not board.sessions.accepts(given):
        LOG.warning("board sign-in from %s: refused, wrong token", peer)
        await asyncio.sleep(REFUSED_DELAY_S)
        nonce = secrets.token_urlsafe(16)
        return _html(signin_page(nonce, "口令不对 wrong token"), nonce, status=401)
    LOG.info("board sign-in from %s", peer)
    response = see_other("/board")
    response.set_cookie(
        COOKIE,
        board.sessions.issue(board.clock()),
        max_age=int(board.sessions.lifetime),
        path="/board",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    response = see_other("/board/signin")
    response.del_cookie(COOKIE, path="/board")
    return response
