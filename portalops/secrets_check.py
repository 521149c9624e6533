"""Refuse plaintext secrets in an inventory: every secret must come from ansible-vault.

A secret is any variable whose name says so (password, secret, salt, token,
private key...). Its value must be a vault reference (``{{ vault_... }}``),
an inline ``!vault`` value, or live in a vault-encrypted file. Anything else
is reported by file and variable path, and site.yml stops before touching a
host.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from portalops.errors import BadInput
from portalops.vault import refuse_lab_password

SECRET_NAME = re.compile(r"(passw(or)?d|secret|salt|token|api_?key|private_?key|credential)", re.IGNORECASE)
# Names that speak of a secret without holding one: paths to it, policies about it.
NOT_A_SECRET = re.compile(r"_(file|path|dir|days|age|length|enabled|rounds|tries|minlen|policy)$", re.IGNORECASE)
VAULT_REFERENCE = re.compile(r"^\s*\{\{\s*vault_\w+")
INVENTORY_SUFFIXES = ("", ".yml", ".yaml", ".json")


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
    elif _is_plaintext(data) and secret:
        yield path


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
        try:
            documents = list(yaml.load_all(text, Loader=_Loader))
        except yaml.YAMLError:
            continue  # not YAML (an INI inventory, a script): ansible-inventory reports those
        for document in documents:
            problems += [f"{path}: {var}" for var in find_plaintext(document)]
    return problems


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
