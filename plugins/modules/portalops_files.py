"""The host side of portalops_files (plugins/action): many small files in one call.

The action renders each file in the controller (as ansible.builtin.template does) and sends their
contents here in one module call; each is compared with what is on disk, replaced atomically only
when it differs (and its ``validate`` command accepts the new content), and given its owner, group
and mode. Files are done in order: one refused stops the call, those before it stay replaced.
ansible.builtin.template costs two module calls per file (a stat, then the file module for the
attributes) even when nothing changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: portalops_files
short_description: Put many small files in place in one call (the host side of the portalops_files action)
description:
  - Each file's content, owner, group and mode; a file is replaced (atomically, in its directory) only when its
    content differs and its O(validate) command, if any, accepts the new content; its attributes are set only
    when they differ. Check mode reports without changing.
  - Called by the portalops_files action, which renders the contents in the controller and sends them as one
    JSON file (O(src)), never as module arguments, which the host's journal would record.
options:
  src:
    description:
      - A JSON file of the files, in order, each with dest (absolute; its directory must exist), content (UTF-8
        text), owner, group, mode and validate (a command that must accept the new content, C(%s) its path).
    type: path
    required: true
author: portalops
"""

RETURN = r"""
files:
  description: each file, in order, with whether it changed
  type: list
  returned: always
changed_files:
  description: the destinations that changed (or would, in check mode)
  type: list
  returned: always
"""

# A diff of a file larger than this shows its size, not its text.
DIFF_LIMIT = 256 * 1024


def current(dest: str) -> bytes | None:
    try:
        with open(dest, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def attributes_of(path: str, wanted: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": path,
        "owner": wanted["owner"],
        "group": wanted["group"],
        "mode": wanted["mode"],
        "seuser": None,
        "serole": None,
        "selevel": None,
        "setype": None,
        "secontext": [None, None, None, None],
        "attributes": None,
    }


def attributes(module: AnsibleModule, path: str, wanted: dict[str, Any], diffs: list[dict[str, Any]]) -> bool:
    """The wanted owner, group and mode on an existing ``path``; what differed goes into ``diffs``."""
    diff: dict[str, Any] = {"before": {"path": path}, "after": {"path": path}}
    changed = bool(module.set_fs_attributes_if_different(attributes_of(path, wanted), False, diff=diff))
    if changed:
        diffs.append(diff)
    return changed


def put(module: AnsibleModule, dest: str, wanted: dict[str, Any], diffs: list[dict[str, Any]]) -> bool:
    """``dest`` with the wanted content (replaced only when it differs) and attributes."""
    if os.path.isdir(dest) and not os.path.islink(dest):
        module.fail_json(msg=f"{dest}: is a directory, not a file")
    data = wanted["content"].encode("utf-8")
    before = current(dest)
    if before == data:
        return attributes(module, dest, wanted, diffs)
    diffs.append(content_diff(dest, before, data))
    if not module.check_mode:
        write(module, dest, data, wanted)
    return True


def write(module: AnsibleModule, dest: str, data: bytes, wanted: dict[str, Any]) -> None:
    """A new file beside ``dest`` (mkstemp: 0600), given the wanted attributes (or those of the file it
    replaces) before it is renamed over ``dest``: a secret is never readable by others, not for a moment."""
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        module.fail_json(msg=f"{dest}: its directory {directory} does not exist")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".portalops_files.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            with contextlib.suppress(FileNotFoundError):
                old = os.stat(dest)
                os.fchown(out.fileno(), old.st_uid, old.st_gid)
                os.fchmod(out.fileno(), stat.S_IMODE(old.st_mode))
        module.set_fs_attributes_if_different(attributes_of(temporary, wanted), False)
        if wanted["validate"]:
            check(module, dest, wanted["validate"], temporary)
        os.replace(temporary, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def check(module: AnsibleModule, dest: str, validate: str, temporary: str) -> None:
    """ansible.builtin.template's ``validate``: the command (``%s``: the new file) must exit 0."""
    if "%s" not in validate:
        module.fail_json(msg=f"{dest}: validate must name the file as %s: {validate}")
    rc, out, err = module.run_command(validate % temporary)
    if rc != 0:
        module.fail_json(msg=f"{dest}: not replaced, {validate!r} refused the new content: {(err or out).strip()}")


def content_diff(dest: str, before: bytes | None, after: bytes) -> dict[str, str]:
    def text(data: bytes | None) -> str:
        if data is None:
            return ""
        if len(data) > DIFF_LIMIT or b"\0" in data:
            return f"({len(data)} bytes)\n"
        return data.decode("utf-8", errors="replace")

    return {"before_header": dest, "after_header": dest, "before": text(before), "after": text(after)}


def absent(module: AnsibleModule, dest: str, diffs: list[dict[str, Any]]) -> bool:
    """Remove ``dest`` (a file, a link, or a directory with all it holds, as ansible.builtin.file does)."""
    if not os.path.lexists(dest):
        return False
    kind = "directory" if os.path.isdir(dest) and not os.path.islink(dest) else "file"
    diffs.append({"before": {"path": dest, "state": kind}, "after": {"path": dest, "state": "absent"}})
    if not module.check_mode:
        if kind == "directory":
            shutil.rmtree(dest)
        else:
            os.unlink(dest)
    return True


def directory(module: AnsibleModule, dest: str, wanted: dict[str, Any], diffs: list[dict[str, Any]]) -> bool:
    """``dest`` a directory with the wanted attributes; missing parents made with them too (as ansible.builtin.file
    does)."""
    if os.path.isdir(dest):
        return attributes(module, dest, wanted, diffs)
    if os.path.lexists(dest):
        module.fail_json(msg=f"{dest}: exists and is not a directory")
    diffs.append({"before": {"path": dest, "state": "absent"}, "after": {"path": dest, "state": "directory"}})
    if module.check_mode:
        return True
    missing = []
    path = dest
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        os.mkdir(path, 0o700 if wanted["mode"] is not None else 0o777)  # 0o777: less the umask, as mkdir(1)
        module.set_fs_attributes_if_different(attributes_of(path, wanted), False)
    return True


def wanted_files(module: AnsibleModule) -> list[dict[str, Any]]:
    try:
        with open(module.params["src"], encoding="utf-8") as handle:
            files = json.load(handle)["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        module.fail_json(msg=f"cannot read the files to put in place from {module.params['src']}: {exc}")
    defaults = {"owner": None, "group": None, "mode": None, "validate": None, "state": "file"}
    return [{**defaults, **entry} for entry in files]


def main() -> None:
    module = AnsibleModule(argument_spec={"src": {"type": "path", "required": True}}, supports_check_mode=True)
    files: list[dict[str, Any]] = []
    diffs: list[dict[str, Any]] = []
    for wanted in wanted_files(module):
        dest = wanted["dest"]
        if not os.path.isabs(dest):
            module.fail_json(msg=f"{dest}: not an absolute path")
        if wanted["state"] == "absent":
            changed = absent(module, dest, diffs)
        elif wanted["state"] == "directory":
            changed = directory(module, dest, wanted, diffs)
        else:
            changed = put(module, dest, wanted, diffs)
        files.append({"dest": dest, "changed": changed})
    changed_files = [entry["dest"] for entry in files if entry["changed"]]
    module.exit_json(changed=bool(changed_files), files=files, changed_files=changed_files, diff=diffs)


if __name__ == "__main__":
    main()
