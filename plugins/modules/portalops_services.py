"""Many systemd units enabled and started (or stopped, restarted, reloaded) in one call.

A loop of ansible.builtin.systemd_service costs, per unit and host, a worker's templating, a module
call and four or five systemctl processes (show, is-enabled twice, the action), even when every
unit is as wanted. This module asks ``systemctl show`` and ``systemctl is-enabled`` once each for all
the units and decides for each exactly as ansible.builtin.systemd_service does (the same reading of
``is-enabled``, of a running, starting or stopping unit, of restarted and reloaded), then acts unit by
unit, in order: enable or disable first, then the state. Check mode reports what would be done.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: portalops_services
short_description: Enable and start (or stop, restart, reload) many systemd units in one call
description:
  - For each unit of O(services), in order, what ansible.builtin.systemd_service does with O(services[].enabled) and
    O(services[].state), with one C(systemctl show) and one C(systemctl is-enabled) for all of them. A unit systemd
    does not know fails the task before any unit is acted on.
options:
  services:
    description: the units
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: the unit (C(.service) may be left out)
        type: str
        required: true
      enabled:
        description: whether it starts at boot; left as it is when not given
        type: bool
      state:
        description: started and stopped act only when needed; restarted and reloaded always (a stopped unit is started)
        type: str
        choices: [started, stopped, restarted, reloaded]
  daemon_reload:
    description: C(systemctl daemon-reload) first (not counted as a change; not in check mode)
    type: bool
    default: false
author: portalops
"""

RETURN = r"""
services:
  description: each unit, in order, with whether it changed and what was done
  type: list
  returned: always
changed_services:
  description: the units that changed (or would, in check mode)
  type: list
  returned: always
"""

# What `systemctl is-enabled` answers, with exit 0, for a unit ansible.builtin.systemd_service leaves alone when
# asked to enable it; it still enables one only enabled for this boot (enabled-runtime), indirectly or through
# an alias, and every answer with another exit code (disabled, masked, linked, bad, ...).
ENABLED = ("enabled", "static", "generated", "transient")
PROPERTIES = ("Id", "LoadState", "ActiveState", "LoadError")


def shown(stdout: str, count: int) -> list[dict[str, str]]:
    """``systemctl show --property=...`` of ``count`` units: one block of Key=Value lines each, blank-line separated."""
    blocks: list[dict[str, str]] = [{}]
    for line in stdout.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, _, value = line.partition("=")
        blocks[-1][key] = value
    blocks = [block for block in blocks if block]
    return blocks if len(blocks) == count else []


def enablement(stdout: str, count: int) -> list[bool]:
    """``systemctl is-enabled`` of ``count`` units: one word each, in order; [] for any other answer."""
    words = stdout.split()
    return [word in ENABLED for word in words] if len(words) == count else []


def action_for(state: str | None, active: str) -> str | None:
    """What ansible.builtin.systemd_service runs for ``state`` given the unit's ActiveState."""
    running = active in ("active", "activating")
    if state == "started":
        return None if running else "start"
    if state == "stopped":
        return "stop" if running or active == "deactivating" else None
    if state in ("restarted", "reloaded"):
        return state[:-2] if running else "start"
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "services": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "enabled": {"type": "bool"},
                    "state": {"type": "str", "choices": ["started", "stopped", "restarted", "reloaded"]},
                },
            },
            "daemon_reload": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    systemctl = module.get_bin_path("systemctl", required=True)
    wanted: list[dict[str, Any]] = module.params["services"]
    if module.params["daemon_reload"] and not module.check_mode:
        module.run_command([systemctl, "daemon-reload"], check_rc=True)
    results: list[dict[str, Any]] = []
    if not wanted:
        module.exit_json(changed=False, services=results, changed_services=[])
    names = [service["name"] for service in wanted]
    rc, out, err = module.run_command([systemctl, "show", f"--property={','.join(PROPERTIES)}", "--", *names])
    statuses = shown(out, len(names)) if rc == 0 else []
    if not statuses:
        module.fail_json(msg=f"systemctl show could not answer for {', '.join(names)}: {err.strip() or out.strip()}")
    for name, status in zip(names, statuses, strict=True):
        if status.get("LoadState", "not-found") == "not-found":
            module.fail_json(msg=f"Could not find the requested service {name}: host")
        if status.get("LoadState") != "masked" and status.get("LoadError"):
            module.fail_json(msg=f"Error loading unit file '{name}': {status['LoadError']}")
    # One is-enabled for every unit whose enablement is wanted (its exit code says only whether all are enabled).
    asked = [service["name"] for service in wanted if service["enabled"] is not None]
    enabled: dict[str, bool] = {}
    if asked:
        rc, out, err = module.run_command([systemctl, "is-enabled", "--", *asked])
        answers = enablement(out, len(asked))
        if not answers:
            reason = err.strip() or out.strip()
            module.fail_json(msg=f"systemctl is-enabled could not answer for {', '.join(asked)}: {reason}")
        enabled = dict(zip(asked, answers, strict=True))
    for service, status in zip(wanted, statuses, strict=True):
        name = service["name"]
        done: list[str] = []
        if service["enabled"] is not None and enabled[name] != service["enabled"]:
            done.append("enable" if service["enabled"] else "disable")
        action = action_for(service["state"], status.get("ActiveState", ""))
        if action:
            done.append(action)
        if not module.check_mode:
            for step in done:
                rc, out, err = module.run_command([systemctl, step, name])
                if rc != 0:
                    module.fail_json(msg=f"Unable to {step} service {name}: {(out + err).strip()}", services=results)
        results.append({"name": name, "changed": bool(done), "done": done})
    changed = [result["name"] for result in results if result["changed"]]
    module.exit_json(changed=bool(changed), services=results, changed_services=changed)


if __name__ == "__main__":
    main()
