"""``portalops responder``: build the real responder from its configuration and serve it."""

from __future__ import annotations

import logging
from pathlib import Path

from portalops.inventory import load_inventory
from portalops.monitoring.api import Alertmanager, Prometheus
from portalops.monitoring.endpoints import from_inventory, inventory_sites
from portalops.responder.board import Sources
from portalops.responder.boardweb import BoardSite, Sessions
from portalops.responder.config import Config, listen_address, load_config
from portalops.responder.incidents import Store
from portalops.responder.runner import SubprocessRunner
from portalops.responder.server import make_app, serve
from portalops.responder.service import LOG, Responder, policy
from portalops.runbook import registry
from portalops.runbook.notify import Notifier
from portalops.runbook.reporting import notifier_for


def board_site(config: Config) -> BoardSite:
    """The duty board's sources, found as `portalops status` finds them (config's URLs first, then the inventory)."""
    sessions = Sessions(config.board_token(), config.board_session)  # no board token, no board (nor server)
    inventory = load_inventory(config.inventory)
    where = from_inventory(inventory, config.prometheus, config.alertmanager)
    sources = Sources(
        Prometheus(where.prometheus),
        Alertmanager(where.alertmanager),
        config.incidents,
        config.reports,
        tuple(inventory_sites(inventory)),
    )
    LOG.info(
        "duty board on /board: Prometheus %s, Alertmanager %s, sites %s",
        where.prometheus,
        where.alertmanager,
        ", ".join(sources.sites) or "none named",
    )
    return BoardSite(sources, sessions)


def run_responder(config_file: Path | None, listen: str | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_file, {"listen": listen})
    token = config.token()  # no token, no server
    board = board_site(config) if config.board_enabled else None
    host, port = listen_address(config.listen)
    runbooks = registry.discover()
    config.incidents.mkdir(parents=True, exist_ok=True)
    store = Store(config.incidents, config.inventory, runbooks, settle=config.settle)
    notifier = notifier_for(config.inventory) if config.notify is None else Notifier(list(config.notify))
    runner = SubprocessRunner(config.inventory, config.incidents, config.lock_wait)
    responder = Responder(config, store, notifier, runner)
    channels = len(notifier.channels)
    LOG.info("incidents %s; inventory %s; %d notice channel(s)", config.incidents, config.inventory, channels)
    LOG.info("open incidents from before: %d; Alertmanager: %s", len(store.open), config.alertmanager or "none")
    for runbook_id in sorted(runbooks):
        LOG.info("runbook %s", policy(runbook_id, config, runbooks))
    unknown = sorted(set(config.auto_run) - set(runbooks))
    if unknown:
        LOG.warning("auto_run names runbooks that do not exist: %s", ", ".join(unknown))
    try:
        serve(make_app(responder, token, board=board), host, port)
    finally:
        responder.shutdown()
