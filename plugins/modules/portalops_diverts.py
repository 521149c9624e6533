"""Many local dpkg diversions added (the file renamed aside) or removed (the file given back) in one call.

A loop of community.general.dpkg_divert costs, per path and host, a worker's templating, a module call
and three dpkg-divert processes (the holder, the true name, a test run), even when every diversion is as
wanted. This module asks ``dpkg-divert --listpackage`` and ``--truename`` for each path in the same call
and runs dpkg-divert only where a diversion is to be added or removed, always with ``--local --rename``
as the role's loop did (``rename: true``). A path diverted by a package, or locally to another place, is
not ours to change: the task fails naming it. Check mode reports what would be done.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: portalops_diverts
short_description: Add or remove many local dpkg diversions (with rename) in one call
description:
  - For each entry of O(diverts), in order, a local diversion of O(diverts[].path) to O(diverts[].divert)
    (state C(present)) or none (state C(absent)), the file moved with it (C(dpkg-divert --rename)).
  - A path a package diverts, or one diverted locally elsewhere than O(diverts[].divert), fails the task.
options:
  diverts:
    description: the diversions
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: the file dpkg would install
        type: path
        required: true
      divert:
        description: where dpkg puts it instead; required with state C(present)
        type: path
      state:
        description: whether the local diversion exists
        type: str
        choices: [present, absent]
        default: present
  root:
    description: the root directory dpkg works in (C(dpkg-divert --root)); for chroots and tests
    type: path
    default: /
author: portalops
"""

RETURN = r"""
diverts:
  description: each path, in order, with whether it changed and the dpkg-divert action (C(add), C(remove)) if any
  type: list
  returned: always
changed_paths:
  description: the paths whose diversion changed (or would, in check mode)
  type: list
  returned: always
"""

LOCAL = "LOCAL"


def action_for(wanted: dict[str, Any], holder: str, truename: str) -> str | None:
    """``add``, ``remove`` or None for ``wanted`` given dpkg-divert's ``--listpackage`` (``holder``:
    empty for no diversion, LOCAL for a local one, else the package) and ``--truename`` answers.
    Raises ValueError for a diversion that is not ours to change."""
    path = wanted["path"]
    if holder not in ("", LOCAL):
        raise ValueError(f"{path} is diverted by the package {holder}, not locally")
    if wanted["state"] == "absent":
        return "remove" if holder == LOCAL else None
    if not holder:
        return "add"
    if truename != wanted["divert"]:
        raise ValueError(f"{path} is diverted locally to {truename}, not to {wanted['divert']}")
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "diverts": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "divert": {"type": "path"},
                    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
                },
                "required_if": [("state", "present", ("divert",))],
            },
            "root": {"type": "path", "default": "/"},
        },
        supports_check_mode=True,
    )
    dpkg_divert = [module.get_bin_path("dpkg-divert", required=True), f"--root={module.params['root']}"]

    def ask(option: str, path: str) -> str:
        rc, out, err = module.run_command([*dpkg_divert, option, path])
        if rc != 0:
            module.fail_json(msg=f"dpkg-divert {option} {path} failed: {(err or out).strip()}")
        return str(out).strip()

    results: list[dict[str, Any]] = []
    for wanted in module.params["diverts"]:
        path = wanted["path"]
        try:
            action = action_for(wanted, ask("--listpackage", path), ask("--truename", path))
        except ValueError as refused:
            module.fail_json(msg=str(refused), diverts=results)
        if action and not module.check_mode:
            argv = [*dpkg_divert, "--local", "--rename"]
            argv += ["--divert", wanted["divert"], "--add", path] if action == "add" else ["--remove", path]
            rc, out, err = module.run_command(argv)
            if rc != 0:
                reason = (err or out).strip()
                module.fail_json(msg=f"Unable to {action} the diversion of {path}: {reason}", diverts=results)
        results.append({"path": path, "changed": bool(action), "action": action})
    changed = [result["path"] for result in results if result["changed"]]
    module.exit_json(changed=bool(changed), diverts=results, changed_paths=changed)


if __name__ == "__main__":
    main()
