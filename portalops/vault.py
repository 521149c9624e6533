"""The lab's committed vault password opens the lab's vault and nothing else.

ansible.cfg names no vault password. The lab's vault is labelled ``lab``
(``$ANSIBLE_VAULT;1.2;AES256;lab``) and ``vault_id_match`` is on, so only a
secret labelled ``lab`` is tried on it and the lab's secret is tried on
nothing else. portalops adds that secret (``ANSIBLE_VAULT_IDENTITY_LIST``) to
the environment of the Ansible commands it runs only when the inventory is
the lab's; a production inventory brings its own ``--vault-id`` through the
same variable (``portalops ... --vault-id site@FILE``).

A production inventory whose vault the public lab password opens is refused
before anything runs (:func:`refuse_lab_password`, also in preflight.yml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from portalops.errors import BadInput

REPO_ROOT = Path(__file__).resolve().parent.parent
LAB_INVENTORY = REPO_ROOT / "inventory" / "lab"
LAB_PASSWORD_FILE = REPO_ROOT / "inventory" / "vault-password.LAB-ONLY"
LAB_VAULT_LABEL = "lab"
LAB_VAULT_ID = f"{LAB_VAULT_LABEL}@{LAB_PASSWORD_FILE}"
IDENTITY_LIST = "ANSIBLE_VAULT_IDENTITY_LIST"
VAULT_HEADER = "$ANSIBLE_VAULT;"
MAX_FILE = 1_000_000  # bytes: an inventory file larger than this is no vars file


def is_lab(source: str | Path) -> bool:
    """The lab's inventory directory or a file inside it."""
    path, lab = Path(source).resolve(), LAB_INVENTORY.resolve()
    return path == lab or lab in path.parents


def with_identities(env: Mapping[str, str], identities: Sequence[str]) -> dict[str, str]:
    """``env`` with ``identities`` (``label@source``) appended to the vault identity list, each once."""
    found = [item for item in env.get(IDENTITY_LIST, "").split(",") if item]
    found += [item for item in identities if item not in found]
    result = dict(env)
    if found:
        result[IDENTITY_LIST] = ",".join(found)
    return result


def ansible_env(source: str | Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an Ansible command on ``source``: the lab's secret only for the lab."""
    env = dict(os.environ if base is None else base)
    env.setdefault("ANSIBLE_CONFIG", str(REPO_ROOT / "ansible.cfg"))
    return with_identities(env, [LAB_VAULT_ID]) if is_lab(source) else env


def lab_secret(name: str) -> str:
    """One value of the lab's vault (group_vars/all/vault.yml), read with `ansible-vault view`."""
    tool = shutil.which("ansible-vault") or str(Path(sys.executable).with_name("ansible-vault"))
    shown = subprocess.run(
        [tool, "view", str(LAB_INVENTORY / "group_vars" / "all" / "vault.yml")],
        env=ansible_env(LAB_INVENTORY),
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        raise BadInput(f"the lab's vault does not open: {shown.stderr.strip()[-300:]}")
    data = yaml.safe_load(shown.stdout) or {}
    if name not in data:
        raise BadInput(f"the lab's vault has no {name}")
    return str(data[name])


def use_vault_ids(identities: Sequence[str]) -> None:
    """``--vault-id`` of a portalops command: every Ansible command it runs gets them."""
    if identities:
        os.environ.update(with_identities(os.environ, identities))


class _InlineVault(str):
    """The ciphertext of an inline ``!vault`` value."""


class _Loader(yaml.SafeLoader):
    pass


def _inline(loader: yaml.SafeLoader, node: yaml.Node) -> _InlineVault:
    return _InlineVault(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("!vault", _inline)
_Loader.add_constructor("!unsafe", lambda loader, node: "")


def _inline_vaults(data: Any) -> Iterator[str]:
    if isinstance(data, _InlineVault):
        yield str(data)
    elif isinstance(data, dict):
        for value in data.values():
            yield from _inline_vaults(value)
    elif isinstance(data, list):
        for value in data:
            yield from _inline_vaults(value)


def inventory_files(source: str | Path) -> list[Path]:
    """The files Ansible reads variables from for ``source``: the directory, or a file and its vars dirs."""
    path = Path(source)
    roots = [path] if path.is_dir() else [path, path.parent / "group_vars", path.parent / "host_vars"]
    files: list[Path] = []
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size <= MAX_FILE)
    return files


def vaults_in(source: str | Path) -> Iterator[tuple[Path, str]]:
    """Every vault of an inventory: whole encrypted files and inline ``!vault`` values."""
    for path in inventory_files(source):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.startswith(VAULT_HEADER):
            yield path, text
            continue
        if "!vault" not in text:
            continue
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError:
            continue
        for ciphertext in _inline_vaults(data):
            yield path, ciphertext


def label_of(vaulttext: str) -> str:
    """A vault's label: ``default`` for an unlabelled (1.1) vault."""
    header = vaulttext.strip().split("\n", 1)[0].split(";")
    return header[3].strip() if len(header) > 3 and header[3].strip() else "default"


def opens_with(vaulttext: str, password: bytes) -> bool:
    """Whether ``password`` decrypts ``vaulttext``, whatever label the vault carries."""
    # Ansible is heavy and untyped; only this check needs it.
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import CIPHER_MAPPING, VaultSecret, parse_vaulttext_envelope

    try:
        ciphertext, _version, cipher, _label = parse_vaulttext_envelope(vaulttext.strip().encode())
        CIPHER_MAPPING[cipher].decrypt(ciphertext, VaultSecret(password))
    except (AnsibleError, KeyError, ValueError):
        return False
    return True


def lab_password() -> bytes:
    return LAB_PASSWORD_FILE.read_bytes().strip()


def opened_by_lab_password(source: str | Path) -> dict[Path, str]:
    """Files of ``source`` holding a vault the public lab password opens, with that vault's label."""
    password = lab_password()
    return {path: label_of(text) for path, text in vaults_in(source) if opens_with(text, password)}


def refuse_lab_password(source: str | Path) -> None:
    """A non-lab inventory whose secrets the committed lab password opens is not a production inventory."""
    if is_lab(source):
        return
    found = opened_by_lab_password(source)
    if found:
        password = LAB_PASSWORD_FILE.relative_to(REPO_ROOT)
        names = "; ".join(f"{path} (label {label})" for path, label in found.items())
        label = next(iter(found.values()))
        raise BadInput(
            f"inventory {source} is not the lab but its vault opens with the lab's public password ({password}):"
            f" {names}. Give it its own password: ansible-vault rekey --vault-id {label}@{password}"
            " --new-vault-id site@prompt FILE (re-encrypt inline !vault values with encrypt_string)"
        )
