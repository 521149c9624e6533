"""Refuse plaintext secrets in an inventory: every secret must come from ansible-vault.

A secret is any variable whose name says so (password, secret, salt, token,
private key, Ansible's ``ansible_ssh_pass``/``ansible_become_pass``, ``*_pw``...),
and any credential written into a URL (``https://user:pass@host``, a webhook's
``?key=``/``access_token=``/``token=``/``sig=``, a Slack or Teams hook path)
whatever the variable's name; a receiver on the controller itself (loopback)
is a local test receiver and carries no secret. Its value must be a vault
reference (``{{ vault_... }}``), an inline ``!vault`` value, or live in a
vault-encrypted file. YAML and INI inventories are read (host lines and
``[group:vars]``). Anything else is reported by file and variable path, and
site.yml stops before touching a host.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from portalops.errors import BadInput
from portalops.vault import refuse_lab_password

SECRET_NAME = re.compile(
    r"(passw(or)?d|secret|salt|token|api_?key|private_?key|credential|(^|_)pass$|(^|_)pwd?$)", re.IGNORECASE
)
# Names that speak of a secret without holding one: paths to it, policies about it.
NOT_A_SECRET = re.compile(r"_(file|path|dir|days|age|length|enabled|rounds|tries|minlen|policy)$", re.IGNORECASE)
VAULT_REFERENCE = re.compile(r"^\s*\{\{\s*vault_\w+")
INVENTORY_SUFFIXES = ("", ".yml", ".yaml", ".json", ".ini")
# Query parameters and path shapes that carry a webhook's credential.
URL_SECRET_PARAMS = frozenset({"key", "access_token", "token", "secret", "sig", "signature", "api_key", "apikey"})
URL_SECRET_PATH = re.compile(r"hooks\.slack\.com/services/|webhook\.office\.com/webhookb2/|/api/webhooks/\d+/")


class _Vaulted(str):
    """Marker for an inline ``!vault`` value: encrypted, so acceptable."""


class _Loader(yaml.SafeLoader):
    pass


def _vault(loader: yaml.SafeLoader, node: yaml.Node) -> _Vaulted:
    return _Vaulted("vaulted")


_Loader.add_constructor("!vault", _vault)
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def find_plaintext(data: Any, path: str = "", secret: bool = False) -> Iterator[str]:
    """Yield the path of every secret leaf that is neither vaulted nor a vault reference."""
    if isinstance(data, dict):
        for key, value in data.items():
            named = bool(SECRET_NAME.search(str(key))) and not NOT_A_SECRET.search(str(key))
            yield from find_plaintext(value, f"{path}.{key}" if path else str(key), secret or named)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from find_plaintext(value, f"{path}[{i}]", secret)
    elif _is_plaintext(data) and (secret or url_credential(data)):
        yield path


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name, not an address


def url_credential(value: str) -> bool:
    """A URL that carries a credential in plain text (not a ``{{ vault_* }}`` reference, not loopback)."""
    if "://" not in value or "{{" in value:
        return False
    try:
        url = urlsplit(value.strip())
        host = url.hostname or ""
    except ValueError:
        return False  # not a URL after all
    if host == "localhost" or _loopback(host):
        return False
    if url.password:
        return True
    if URL_SECRET_PATH.search(value):
        return True
    return any(name.lower() in URL_SECRET_PARAMS and item for name, item in parse_qsl(url.query))


def _is_plaintext(value: Any) -> bool:
    """A non-empty string that is neither an inline ``!vault`` value nor a vault reference."""
    return (
        isinstance(value, str)
        and not isinstance(value, _Vaulted)
        and bool(value.strip())
        and not VAULT_REFERENCE.match(value)
    )


def inventory_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
        if path.is_file() and path.suffix in INVENTORY_SUFFIXES and not path.name.startswith("."):
            yield path


def check(root: Path) -> list[str]:
    """Problems as ``file: variable`` lines; empty when every secret is vaulted."""
    problems: list[str] = []
    for path in inventory_files(root):
        text = path.read_text(errors="replace")
        if text.startswith("$ANSIBLE_VAULT;"):
            continue
        if path.suffix == ".ini" or _looks_ini(text):
            problems += [f"{path}: {var}" for var in find_plaintext_ini(text)]
            continue
        try:
            documents = list(yaml.load_all(text, Loader=_Loader))
        except yaml.YAMLError:
            continue  # not YAML nor INI (a script): ansible-inventory reports those
        for document in documents:
            problems += [f"{path}: {var}" for var in find_plaintext(document)]
    return problems


def _looks_ini(text: str) -> bool:
    """An INI inventory: its first meaningful line is a ``[section]`` header, not YAML."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "---")):
            return bool(re.fullmatch(r"\[[^\]\s]+\]", line))
    return False


def find_plaintext_ini(text: str) -> Iterator[str]:
    """Secret ``key=value`` pairs of an INI inventory's host lines and ``[group:vars]`` sections."""
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if not section.endswith(":vars"):
            words = words[1:]  # the host name
        for word in words:
            key, sep, value = word.partition("=")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            where = f"[{section}] line {number}: {key}"
            named = bool(SECRET_NAME.search(key)) and not NOT_A_SECRET.search(key)
            if _is_plaintext(value) and (named or url_credential(value)):
                yield where


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m portalops.secrets_check INVENTORY...", file=sys.stderr)
        return 2
    problems = [p for root in argv for p in check(Path(root))]
    for problem in problems:
        print(
            f"plaintext secret in inventory: {problem} - move the value into an ansible-vault file as "
            "vault_<name> and reference it with '{{ vault_<name> }}'",
            file=sys.stderr,
        )
    public = 0
    for root in argv:
        try:
            refuse_lab_password(root)
        except BadInput as exc:
            print(exc.message, file=sys.stderr)
            public += 1
    return 1 if problems or public else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
