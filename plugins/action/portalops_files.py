"""Many small files from templates (or literal content) in one task and one call to the host.

A loop of ansible.builtin.template costs, per file and host, a worker's templating and two module
calls (a stat for the checksum, then the file module for owner and mode), even when nothing changes:
a role rendering a dozen settings files spends over a second per host doing nothing. This action
renders every file in the controller exactly as ansible.builtin.template does (the same search path,
``ansible_managed`` and template variables, trim_blocks) and sends them all, as one JSON file, to the
portalops_files module (plugins/modules), which replaces only those whose content differs, atomically,
and sets owner, group and mode where they differ. Check mode and ``--diff`` report what would change.

Each file is a dict: ``dest`` and one of ``src`` (a template, found as ansible.builtin.template finds
it), ``file`` (a text file copied as it is, found as ansible.builtin.copy finds its ``src``) or
``content``, with ``owner``, ``group`` and ``mode`` (the task's are each file's defaults), ``vars``
(variables for its template alone, as a loop's item would be) and ``validate`` (as in
ansible.builtin.template: the command must accept a changed file before it replaces the old one;
files are done in order and a refusal stops the task, those before it staying replaced, as in a
loop). ``state: directory`` makes a directory (and its missing parents) with those attributes,
``state: absent`` removes a path (a directory with all it holds), as ansible.builtin.file does.
Other keys are the caller's own and are passed over.

The result: ``changed``, ``files`` (each ``dest`` with its ``changed``) and ``changed_files``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ansible._internal._templating import _template_vars
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

DOCUMENTATION = """
    name: portalops_files
    short_description: many files from templates or content, in one call to the host
    description:
      - Renders each file of O(files) in the controller as ansible.builtin.template does and puts them all in
        place with one call of the portalops_files module (changed only where content or attributes differ).
    options:
      files:
        description: the files; each has dest, one of src (a template), file or content, and optionally owner, group,
          mode, vars and validate
        type: list
        elements: dict
        required: true
      owner:
        description: each file's owner unless it names its own
        type: str
      group:
        description: each file's group unless it names its own
        type: str
      mode:
        description: each file's mode unless it names its own
        type: raw
"""

MODULE = "portalops_files"
# ansible.builtin.template's and copy's options this action does not have: refused, never ignored. Other keys
# of a file are the caller's own (e.g. which control it belongs to) and are passed over.
UNSUPPORTED = frozenset(
    {"backup", "force", "follow", "remote_src", "local_follow", "decrypt", "checksum", "directory_mode"}
    | {"attributes", "attr", "selevel", "serole", "setype", "seuser", "unsafe_writes", "output_encoding"}
    | {"newline_sequence", "trim_blocks", "lstrip_blocks", "variable_start_string", "variable_end_string"}
    | {"block_start_string", "block_end_string", "comment_start_string", "comment_end_string"}
)
DEFAULTS = ("owner", "group", "mode")
SOURCES = ("src", "file", "content")
STATES = ("file", "directory", "absent")


def entries(args: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The task's files, each checked and given the task's defaults (AnsibleActionFail names the first problem)."""
    unknown = set(args) - {"files", *DEFAULTS}
    if unknown:
        raise AnsibleActionFail(f"unsupported parameters: {', '.join(sorted(unknown))}")
    files = args.get("files")
    if not isinstance(files, list):
        raise AnsibleActionFail("files must be a list of dicts (dest and src or content)")
    checked: list[dict[str, Any]] = []
    for position, entry in enumerate(files, 1):
        if not isinstance(entry, Mapping):
            raise AnsibleActionFail(f"files[{position}] is not a dict: {entry!r}")
        name = entry.get("dest", f"files[{position}]")
        refused = set(entry) & UNSUPPORTED
        if refused:
            raise AnsibleActionFail(f"{name}: unsupported keys {', '.join(sorted(refused))}")
        if not isinstance(entry.get("vars", {}), Mapping):
            raise AnsibleActionFail(f"{name}: vars must be a dict")
        if not isinstance(entry.get("dest"), str) or not os.path.isabs(entry["dest"]):
            raise AnsibleActionFail(f"{name}: dest must be an absolute path")
        state = entry.get("state", "file")
        if state not in STATES:
            raise AnsibleActionFail(f"{name}: state must be one of {', '.join(STATES)}, not {state!r}")
        sources = sum(key in entry for key in SOURCES)
        if state == "file" and sources != 1:
            raise AnsibleActionFail(f"{name}: give one of src (a template), file (copied as it is) or content")
        if state != "file" and (sources or "validate" in entry):
            raise AnsibleActionFail(f"{name}: state {state} takes no src, file, content or validate")
        checked.append({**{key: args.get(key) for key in DEFAULTS}, **dict(entry)})
    dests = [entry["dest"] for entry in checked]
    twice = sorted({dest for dest in dests if dests.count(dest) > 1})
    if twice:
        raise AnsibleActionFail(f"the same destination twice: {', '.join(twice)}")
    return checked


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result: dict[str, Any] = super().run(tmp, task_vars)
        try:
            files = [self._wanted(entry, task_vars) for entry in entries(self._task.args)]
            if not files:
                result.update(changed=False, files=[], changed_files=[])
                return result
            # The contents go as one file in the task's temporary directory: as module arguments they would be
            # in the host's journal (AnsibleModule records its arguments) and in -vvv's invocation.
            tmp = self._connection._shell.tmpdir or self._make_tmp_path()
            src = self._connection._shell.join_path(tmp, "portalops_files.json")
            self._transfer_data(src, json.dumps({"files": files}))
            self._fixup_perms2((tmp, src))
            result.update(self._execute_module(module_name=MODULE, module_args={"src": src}, task_vars=task_vars))
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _wanted(self, entry: Mapping[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        """What the module gets for one file: its content rendered here, its attributes and its check."""
        state = entry.get("state", "file")
        content = self._content(entry, task_vars) if state == "file" else None
        wanted = {key: entry[key] for key in DEFAULTS}
        return {"dest": entry["dest"], "state": state, "content": content, **wanted, "validate": entry.get("validate")}

    def _content(self, entry: Mapping[str, Any], task_vars: dict[str, Any]) -> str:
        if "src" in entry:
            return self._render(entry["src"], entry["dest"], {**task_vars, **entry.get("vars", {})})
        if "file" in entry:
            try:
                return str(self._loader.get_text_file_contents(self._find_needle("files", entry["file"])))
            except (AnsibleError, UnicodeDecodeError) as exc:
                raise AnsibleActionFail(f"{entry['dest']}: {exc}") from None
        return str(entry["content"])

    def _render(self, src: str, dest: str, task_vars: dict[str, Any]) -> str:
        """``src`` rendered as ansible.builtin.template renders it (its defaults: trim_blocks, ``\\n``)."""
        try:
            source = self._find_needle("templates", src)
        except AnsibleError as exc:
            raise AnsibleActionFail(str(exc)) from None
        searchpath = [*task_vars.get("ansible_search_path", []), self._loader._basedir, os.path.dirname(source)]
        searchpath = [path for base in searchpath for path in (os.path.join(base, "templates"), base)]
        variables = {
            **task_vars,
            **_template_vars.generate_ansible_template_vars(
                path=src,
                fullpath=source,
                dest_path=dest,
                include_ansible_managed="ansible_managed" not in task_vars,
            ),
        }
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=variables)
        text = templar.template(
            trust_as_template(self._loader.get_text_file_contents(source)),
            escape_backslashes=False,
            overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"},
        )
        return "" if text is None else str(text)
