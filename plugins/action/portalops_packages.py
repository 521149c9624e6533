"""ansible.builtin.apt, asked only when dpkg says there is something to do.

The apt module loads the whole package cache (about a CPU-second per host) before it finds that
every package is installed already, and most runs (an idempotent converge, ``--check --diff``) find
exactly that. This action asks dpkg-query through the connection first (milliseconds) and calls the
apt module, with the task's own arguments, only when a package named for ``state: present`` is not
installed or one named for ``state: absent`` is still on disk. Anything it cannot judge from dpkg's
status alone (another state, a version or wildcard in a name, a .deb, upgrade, autoremove, no
dpkg-query) goes to the apt module directly, so the task means what the same apt task would mean.

One more thing apt cannot do here: without python3-apt, the apt module installs it and starts itself
again in a new interpreter, which Mitogen (the lab's and production's strategy) does not allow. On a
host without it, this action installs python3-apt with apt-get first (not in check mode).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DOCUMENTATION = """
    name: portalops_packages
    short_description: ansible.builtin.apt, called only when dpkg says a package is missing or present
    description:
      - Takes the arguments of ansible.builtin.apt. For O(state=present) or O(state=absent) with plain
        package names, asks dpkg-query first and returns unchanged, without loading apt's cache, when
        there is nothing to do; otherwise runs ansible.builtin.apt with the same arguments.
      - Installs python3-apt with apt-get first where the apt module would need it and it is missing.
    options:
      name:
        description: the packages (ansible.builtin.apt's O(name))
        type: list
        elements: str
        aliases: [package, pkg]
      state:
        description: ansible.builtin.apt's O(state); only present and absent are answered from dpkg
        type: str
        default: present
      purge:
        description: with O(state=absent), a package's configuration files count as still present
        type: bool
        default: false
"""

QUERY_FORMAT = r"${Package}\t${db:Status-Abbrev}\n"
APT_MODULE = "ansible.builtin.apt"
BOOTSTRAP = "python3-apt"
# What makes a request more than "these packages, installed or not".
APT_ONLY_ARGS = frozenset({"deb", "upgrade", "autoremove", "autoclean", "only_upgrade", "build_dep", "default_release"})
NAME_OPERATORS = frozenset("=<>*?[")


def judgeable(args: Mapping[str, Any]) -> list[str] | None:
    """The package names when dpkg's status alone can tell whether ``args`` ask for a change; else None."""
    if args.get("state", "present") not in ("present", "absent"):
        return None
    if any(args.get(key) for key in APT_ONLY_ARGS):
        return None
    raw = args.get("name", args.get("package", args.get("pkg")))
    if raw is None:
        return None
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    if not names or not all(isinstance(name, str) and name for name in names):
        return None
    if any(NAME_OPERATORS & set(name) or name.endswith(".deb") for name in names):
        return None
    return [str(name) for name in names]


def statuses(stdout: str) -> dict[str, str]:
    """dpkg-query's ``Package<TAB>Status-Abbrev`` lines: each package's two status letters (e.g. ``ii``).
    A package dpkg has never heard of has no line."""
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        package, _, status = line.partition("\t")
        if package and status:
            found[package.split(":", 1)[0]] = status.strip()[:2]
    return found


def pending(names: Iterable[str], status: Mapping[str, str], state: str, purge: bool) -> list[str]:
    """The packages apt would act on. Installed means dpkg's wanted and current state agree on it
    (``ii``); gone means not installed (``n``), or only configuration files left (``c``) unless purging."""
    if state == "present":
        return [name for name in names if status.get(name) != "ii"]
    gone = ("n",) if purge else ("n", "c")
    return [name for name in names if status.get(name, "un")[1:2] not in gone]


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = dict(self._task.args)
        names = judgeable(args)
        try:
            if names is not None:
                status = self._query(list(dict.fromkeys([*names, BOOTSTRAP])))
                if status is not None:
                    todo = pending(names, status, args.get("state", "present"), bool(args.get("purge")))
                    if not todo:
                        result.update(changed=False, msg=f"nothing to do: dpkg reports {', '.join(names)} as wanted")
                        return result
                    if status.get(BOOTSTRAP) != "ii" and not self._task.check_mode:
                        self._bootstrap()
            result.update(self._execute_module(module_name=APT_MODULE, module_args=args, task_vars=task_vars))
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _query(self, names: list[str]) -> dict[str, str] | None:
        """Each named package's status from dpkg-query on the host; None when dpkg-query cannot answer
        (then the apt module decides, and reports what is wrong)."""
        command = shlex.join(["dpkg-query", "-W", f"--showformat={QUERY_FORMAT}", "--", *names])
        answer = self._low_level_execute_command(f"LC_ALL=C {command}")
        # Exit 1: some package unknown to dpkg (listed on stderr), the others answered.
        if answer["rc"] not in (0, 1):
            return None
        return statuses(answer["stdout"])

    def _bootstrap(self) -> None:
        install = "apt-get install -y -q --no-install-recommends python3-apt"
        command = f"export DEBIAN_FRONTEND=noninteractive; {install} || {{ apt-get update -q && {install}; }}"
        answer = self._low_level_execute_command(f"sh -c {shlex.quote(command)}")
        if answer["rc"] != 0:
            raise AnsibleActionFail(
                f"python3-apt (which the apt module needs) could not be installed: {answer['stderr'].strip()[-500:]}"
            )
