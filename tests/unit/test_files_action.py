"""plugins/action/portalops_files.py and its module: many files rendered and put in place in one task.

Through ansible-playbook on this machine (connection local, the repository's ansible.cfg): what a
first run writes, that a second run and check mode change nothing, that a change of content or of
mode is found, reported in --diff and made only outside check mode, that the rendering is
ansible.builtin.template's (compared byte for byte with it), and that bad input fails naming the file.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from tests.unit.hostscripts import load
from tests.unit.localplay import play

action = load("portalops_files_under_test", "plugins/action/portalops_files.py")

TEMPLATE = """# {{ ansible_managed }}
{% for name in names %}
{{ name }} = {{ values[name] }}
{% endfor %}
path={{ template_destpath }}
"""

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    names: [a, b]
    values: {{a: 1, b: "two"}}
  tasks:
    - name: files
      portalops_files:
        owner: root
        group: root
        mode: "0640"
        files:
          - {{dest: "{out}/one.conf", src: one.conf.j2}}
          - {{dest: "{out}/secret", content: "s3cret\\n", mode: "0600"}}
          - {{dest: "{out}/copied", file: copied.txt}}
          - {{dest: "{out}/made/deeper", state: directory, mode: "0750"}}
          - {{dest: "{out}/gone", state: absent}}
          - dest: "{out}/other.conf"
            src: one.conf.j2
            vars: {{names: [c], values: {{c: 3}}}}
            validate: "grep -qx c.=.3 %s"
      register: files
    - name: template
      ansible.builtin.template:
        src: one.conf.j2
        dest: "{out}/reference.conf"
        mode: "0640"
"""


@pytest.fixture
def work(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "one.conf.j2").write_text(TEMPLATE)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "copied.txt").write_text("{{ not rendered }}\n")
    (out / "gone").mkdir()
    (out / "gone" / "old.conf").write_text("retired\n")
    (tmp_path / "site.yml").write_text(PLAYBOOK.format(out=out))
    return tmp_path


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_a_first_run_writes_what_the_template_module_writes_and_a_second_changes_nothing(work: Path) -> None:
    out = work / "out"
    first = play(work)
    assert first["files"]["changed"] is True, first["files"]
    assert first["files"]["changed_files"] == [
        f"{out}/one.conf",
        f"{out}/secret",
        f"{out}/copied",
        f"{out}/made/deeper",
        f"{out}/gone",
        f"{out}/other.conf",
    ]
    assert (mode(out / "made"), mode(out / "made" / "deeper")) == ("0o750", "0o750")
    assert not (out / "gone").exists()
    assert (out / "copied").read_text() == "{{ not rendered }}\n"
    rendered = (out / "one.conf").read_text()
    reference = (out / "reference.conf").read_text().replace("reference.conf", "one.conf")
    assert rendered == reference
    assert "a = 1\nb = two\n" in rendered
    assert (mode(out / "one.conf"), mode(out / "secret")) == ("0o640", "0o600")
    assert (out / "secret").read_text() == "s3cret\n"
    assert "c = 3\n" in (out / "other.conf").read_text() and "a = 1" not in (out / "other.conf").read_text()
    again = play(work)
    assert again["files"]["changed"] is False, again["files"]
    checked = play(work, "--check", "--diff")
    assert checked["files"]["changed"] is False, checked["files"]


def test_check_mode_reports_a_changed_content_and_mode_with_a_diff_and_changes_nothing(work: Path) -> None:
    out = work / "out"
    play(work)
    (out / "one.conf").write_text("edited by hand\n")
    (out / "secret").chmod(0o644)
    checked = play(work, "--check", "--diff")
    assert checked["files"]["changed_files"] == [f"{out}/one.conf", f"{out}/secret"]
    diffs = checked["files"]["diff"]
    assert diffs[0]["before"] == "edited by hand\n" and "a = 1" in diffs[0]["after"]
    assert diffs[1]["before"]["mode"] == "0644" and diffs[1]["after"]["mode"] == "0600"
    assert (out / "one.conf").read_text() == "edited by hand\n" and mode(out / "secret") == "0o644"
    fixed = play(work)
    assert fixed["files"]["changed_files"] == [f"{out}/one.conf", f"{out}/secret"]
    assert "a = 1" in (out / "one.conf").read_text() and mode(out / "secret") == "0o600"
    assert not list(out.glob(".portalops_files.*")), "a temporary file was left behind"


def test_the_contents_are_not_module_arguments(work: Path) -> None:
    """AnsibleModule writes its arguments to the host's journal, and -vvv shows them: no content may be one."""
    first = play(work)
    assert "s3cret" not in repr(first["files"].get("invocation", {})), first["files"].get("invocation")
    assert list(first["files"]["invocation"]["module_args"]) == ["src"]


def test_a_file_its_validate_command_refuses_is_not_replaced_and_the_task_fails(work: Path) -> None:
    out = work / "out"
    play(work)
    site = work / "site.yml"
    site.write_text(site.read_text().replace("grep -qx c.=.3 %s", "grep -qx zzz %s"))
    (out / "other.conf").write_text("before\n")
    results = play(work)
    assert results["files"].get("failed"), results["files"]
    assert f"{out}/other.conf: not replaced, 'grep -qx zzz %s' refused the new content" in results["files"]["msg"]
    assert (out / "other.conf").read_text() == "before\n"
    assert not list(out.glob(".portalops_files.*")), "a temporary file was left behind"


def test_a_missing_directory_fails_naming_the_file_and_writes_nothing_else(work: Path) -> None:
    out = work / "out"
    site = work / "site.yml"
    site.write_text(site.read_text().replace(f"{out}/secret", f"{out}/missing/secret"))
    results = play(work)
    assert results["files"].get("failed"), results["files"]
    assert f"{out}/missing/secret: its directory {out}/missing does not exist" in results["files"]["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"files": "x"}, "files must be a list"),
        ({"files": [{"dest": "relative", "content": ""}]}, "relative: dest must be an absolute path"),
        ({"files": [{"dest": "/a"}]}, "/a: give one of src (a template), file (copied as it is) or content"),
        ({"files": [{"dest": "/a", "src": "x", "content": "y"}]}, "/a: give one of src"),
        ({"files": [{"dest": "/a", "content": "", "backup": True}]}, "/a: unsupported keys backup"),
        ({"files": [{"dest": "/a", "src": "x", "vars": "y"}]}, "/a: vars must be a dict"),
        ({"files": [{"dest": "/a", "state": "link"}]}, "/a: state must be one of file, directory, absent, not 'link'"),
        ({"files": [{"dest": "/a", "state": "directory", "content": "x"}]}, "/a: state directory takes no src"),
        ({"files": [], "backup": True}, "unsupported parameters: backup"),
        ({"files": [{"dest": "/a", "content": ""}, {"dest": "/a", "content": ""}]}, "the same destination twice: /a"),
    ],
)
def test_bad_input_is_refused_naming_the_file(args: dict[str, Any], message: str) -> None:
    with pytest.raises(action.AnsibleActionFail, match=message.replace("(", r"\(").replace(")", r"\)")):
        action.entries(args)


def test_each_file_gets_the_task_defaults_unless_it_names_its_own() -> None:
    entry = {"dest": "/a", "content": "", "mode": "0600", "control": "pam"}
    files = action.entries({"mode": "0644", "owner": "root", "files": [entry]})
    assert files == [{"dest": "/a", "content": "", "owner": "root", "group": None, "mode": "0600", "control": "pam"}]
