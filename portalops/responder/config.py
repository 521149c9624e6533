"""The responder's configuration file (YAML); contrib/portalops-responder.yml is the example."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from portalops.errors import BadInput
from portalops.inventory import LAB_INVENTORY, REPO_ROOT
from portalops.runbook.live import INCIDENTS_DIR
from portalops.runbook.notify import Channel, channels_from_config

DEFAULT_LISTEN = "127.0.0.1:9099"
TOKEN_ENV = "PORTALOPS_RESPONDER_TOKEN"  # noqa: S105 - the variable's name, not a secret
BOARD_TOKEN_ENV = "PORTALOPS_BOARD_TOKEN"  # noqa: S105 - the variable's name, not a secret
KEYS = {
    "listen",
    "incidents",
    "token_file",
    "token_env",
    "alertmanager",
    "receiver",
    "inventory",
    "auto_run",
    "reconcile_interval",
    "settle",
    "lock_wait",
    "notify",
    "board_enabled",
    "board_token_file",
    "board_token_env",
    "board_session",
    "prometheus",
    "reports",
}


@dataclass(frozen=True)
class Config:
    listen: str = DEFAULT_LISTEN
    incidents: Path = INCIDENTS_DIR
    token_file: str = ""  # the bearer token Alertmanager sends; a file (0600) ...
    token_env: str = TOKEN_ENV  # ... or, without a file, this environment variable
    alertmanager: str = ""  # e.g. http://10.89.60.16:9093; empty: no reconciliation
    receiver: str = ""  # only alerts routed to this Alertmanager receiver are reconciled (regex)
    inventory: str = str(LAB_INVENTORY)
    auto_run: tuple[str, ...] = ()  # runbooks that run unattended; destructive acts wait for a person regardless
    reconcile_interval: float = 60.0  # seconds between reconciliations with Alertmanager
    # Seconds after a run's verified recovery in which an alert of the same runbook still joins its incident (the
    # monitoring's lag: a probe alert's for:, a scrape, an evaluation, group_wait; ~55 s in the shipped rules);
    # one still firing that long after it joined opens an incident of its own. An incident closes no sooner.
    settle: float = 60.0
    lock_wait: float = 3600.0  # how long a run waits for the hosts another run holds
    # The notice channels, shaped as portalops_notify; None: the inventory's portalops_notify.
    notify: tuple[Channel, ...] | None = None
    board_enabled: bool = False  # serve the duty board (GET /board) behind its sign-in
    board_token_file: str = ""  # the token people sign in to the board with; a file (0600) ...
    board_token_env: str = BOARD_TOKEN_ENV  # ... or, without a file, this environment variable
    board_session: float = 43200.0  # seconds a board sign-in lasts (its cookie's expiry)
    prometheus: str = ""  # the board's Prometheus; empty: the inventory's, as `portalops status` finds it
    reports: Path = REPO_ROOT / "reports"  # where the drill reports are (reports/drills/)

    def token(self) -> str:
        """The shared secret; the responder refuses to start without one."""
        return secret(self.token_file, self.token_env, "token_file")

    def board_token(self) -> str:
        """The board's sign-in secret, apart from the webhook's: browsers never get that one."""
        return secret(self.board_token_file, self.board_token_env, "board_token_file")


def secret(file: str, env: str, key: str) -> str:
    """A token from ``file`` (the config's ``key``), else from the variable ``env``: at least 16 characters."""
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BadInput(f"responder {key} {file}: {exc.strerror}") from None
    else:
        text = os.environ.get(env, "").strip()
    if len(text) < 16:
        where = file or f"${env}"
        raise BadInput(f"responder {key.removesuffix('_file')} from {where}: missing or shorter than 16 characters")
    return text


def listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise BadInput(f"listen address {text!r}: HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.strip("[]"), int(port)


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BadInput(f"responder config {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise BadInput(f"responder config {path}: not YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise BadInput(f"responder config {path}: a mapping of {', '.join(sorted(KEYS))}")
        data = dict(loaded or {})
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise BadInput(f"responder config: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    if not isinstance(data.get("board_enabled", False), bool):
        raise BadInput("responder config: board_enabled is true or false")
    auto = data.get("auto_run") or []
    if not isinstance(auto, list) or not all(isinstance(a, str) for a in auto):
        raise BadInput("responder config: auto_run is a list of runbook ids")
    config = Config(
        listen=str(data.get("listen", DEFAULT_LISTEN)),
        incidents=Path(data.get("incidents", INCIDENTS_DIR)),
        token_file=str(data.get("token_file", "")),
        token_env=str(data.get("token_env", TOKEN_ENV)),
        alertmanager=str(data.get("alertmanager", "")).rstrip("/"),
        receiver=str(data.get("receiver", "")),
        inventory=str(data.get("inventory", LAB_INVENTORY)),
        auto_run=tuple(auto),
        reconcile_interval=float(data.get("reconcile_interval", 60.0)),
        settle=float(data.get("settle", 60.0)),
        lock_wait=float(data.get("lock_wait", 3600.0)),
        notify=None if data.get("notify") is None else tuple(channels_from_config(data["notify"])),
        board_enabled=data.get("board_enabled", False),
        board_token_file=str(data.get("board_token_file", "")),
        board_token_env=str(data.get("board_token_env", BOARD_TOKEN_ENV)),
        board_session=float(data.get("board_session", 43200.0)),
        prometheus=str(data.get("prometheus", "")).rstrip("/"),
        reports=Path(data.get("reports", REPO_ROOT / "reports")),
    )
    if not 60 <= config.board_session <= 7 * 86400:
        raise BadInput("responder config: board_session is seconds, from 60 to 604800 (a week)")
    listen_address(config.listen)
    return config
