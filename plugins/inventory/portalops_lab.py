"""The lab's state directory, and the variables of group all built on it, rendered once per run.

Written as templates in group_vars (``"{{ lab_state_dir }}/ssh/id_ed25519"`` over a ``lookup('env', ...)``),
the connection settings were compiled and rendered by every worker Ansible forks, for every task on every host:
a tenth to a fifth of the controller's CPU time in a re-run of site.yml (see the plugin's file in
inventory/lab). Here they are rendered when the inventory is read, and each host gets plain strings.

The state directory is PORTALOPS_LAB_DIR when it is set (``portalops lab`` and its clone set it), else
``.lab`` next to the ansible.cfg in use, as ``portalops lab`` puts it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible import constants
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.template import Templar, trust_as_template

DOCUMENTATION = """
    name: portalops_lab
    short_description: the lab's state directory and the settings built on it, rendered once per run
    description:
      - Sets V(lab_state_dir) on group all, then each of O(vars) rendered over it, as plain values.
      - The state directory is E(PORTALOPS_LAB_DIR) when set, else C(.lab) next to the ansible.cfg in use.
    options:
      plugin:
        description: the name of this plugin, to mark the file as its configuration
        required: true
        choices: ['portalops_lab']
      vars:
        description:
          - variables of group all; a string may use C({{ lab_state_dir }}) and nothing else
        type: dict
        default: {}
"""

STATE_DIR_ENV = "PORTALOPS_LAB_DIR"
SUFFIXES = (".portalops_lab.yml", ".portalops_lab.yaml")


def lab_state_dir(environ: Mapping[str, str], config_file: str | None) -> str:
    """PORTALOPS_LAB_DIR, else .lab next to the ansible.cfg in use."""
    if STATE_DIR_ENV in environ:
        return environ[STATE_DIR_ENV]
    if not config_file:
        raise AnsibleParserError(
            f"the lab's state directory is {STATE_DIR_ENV}, or .lab next to an ansible.cfg: none is set"
        )
    return str(Path(config_file).parent / ".lab")


def render(name: str, value: Any, state_dir: str) -> Any:
    """A string rendered over lab_state_dir alone; anything else as it is.

    The result is trusted as a template as a value read from a file is: an untrusted one is printed by
    ``ansible-inventory --list`` as ``{"__ansible_unsafe": ...}``. Having no ``{{``, it is never rendered again."""
    if not isinstance(value, str):
        return value
    try:
        rendered = Templar(loader=None, variables={"lab_state_dir": state_dir}).template(trust_as_template(value))
    except AnsibleError as exc:
        raise AnsibleParserError(f"{name}: only {{{{ lab_state_dir }}}} can be used here: {exc.message}") from exc
    return trust_as_template(str(rendered))


class InventoryModule(BaseInventoryPlugin):  # type: ignore[misc]
    NAME = "portalops_lab"

    def verify_file(self, path: str) -> bool:
        return bool(super().verify_file(path)) and path.endswith(SUFFIXES)

    def parse(self, inventory: InventoryData, loader: DataLoader, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        state_dir = lab_state_dir(os.environ, constants.config._config_file)
        self.inventory.set_variable("all", "lab_state_dir", trust_as_template(state_dir))
        for name, value in (self.get_option("vars") or {}).items():
            self.inventory.set_variable("all", str(name), render(str(name), value, state_dir))
